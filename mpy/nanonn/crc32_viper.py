"""CRC-32 in @micropython.viper: the fallback of `nanonn.crc32` without `binascii.crc32`.

For ports that have the native emitter (imported by `nanonn.crc32`, which uses the
plain-Python loop where this module does not compile).

Bitwise, no table, no allocation per byte (viper ints are machine words). Its
constants are built from 16-bit halves because a literal >= 2**31 does not compile
for 32-bit targets; on the 64-bit unix port every value stays below 2**32 as well.
"""

import micropython


@micropython.viper
def crc32_viper(buf: ptr8, n: int, crc: uint) -> uint:
    """The CRC-32 of the bytes so far (`crc`, 0 to start) followed by buf[:n]. Allocates nothing."""
    # buf: (n,) bytes; crc: the running CRC (0 to start)
    mask = (uint(0xFFFF) << 16) | uint(0xFFFF)
    poly = (uint(0xEDB8) << 16) | uint(0x8320)
    c = (crc ^ mask) & mask
    for i in range(n):
        c ^= uint(buf[i])
        for _ in range(8):
            if c & 1:
                c = (c >> 1) ^ poly
            else:
                c = c >> 1
    return c ^ mask
