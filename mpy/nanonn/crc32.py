"""CRC-32 (IEEE 802.3, the one of zlib and binascii) over buffers.

`update(crc, data, nbytes)` continues a CRC (start with 0) over a buffer
(bytes, bytearray, memoryview, array) of exactly `nbytes` bytes. It uses
`binascii.crc32` where the port has it (the unix port and CPython do; on the
boards it is a build option); otherwise a viper loop: bitwise, no table, no
allocation per byte (viper ints are machine words). Its constants are built
from 16-bit halves because a literal >= 2**31 does not compile for 32-bit
targets; on the 64-bit unix port every value stays below 2**32 as well.
"""

import sys

try:
    from binascii import crc32 as _binascii_crc32
except ImportError:
    _binascii_crc32 = None

if sys.implementation.name == "micropython":
    import micropython

    @micropython.viper
    def crc32_viper(buf: ptr8, n: int, crc: uint) -> uint:
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


def update(crc, data, nbytes):
    """The CRC-32 of the bytes so far (`crc`) followed by `data` (`nbytes` bytes long)."""
    if _binascii_crc32 is not None:
        return _binascii_crc32(data, crc)
    return crc32_viper(data, nbytes, crc)
