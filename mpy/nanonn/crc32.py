"""CRC-32 (IEEE 802.3, the one of zlib and binascii) over buffers.

`update(crc, data, nbytes)` continues a CRC (start with 0) over a buffer
(bytes, bytearray, memoryview, array) of exactly `nbytes` bytes. It uses
`binascii.crc32` where the port has it (the unix port, the WebAssembly port and
CPython do; on the boards it is a build option); else the viper loop of
`nanonn.crc32_viper` where the port has the native emitter; else `crc32_py`,
plain Python that allocates nothing per byte either.
"""

from array import array

from .errors import NO_NATIVE_CODE

try:
    from binascii import crc32 as _binascii_crc32
except ImportError:
    _binascii_crc32 = None

_crc32_viper = None
if _binascii_crc32 is None:
    try:
        from .crc32_viper import crc32_viper as _crc32_viper
    except NO_NATIVE_CODE:
        _crc32_viper = None


def crc32_py(buf, n, crc):
    """The CRC-32 of the bytes so far (`crc`, 0 to start) followed by the first `n`
    bytes of `buf` (bytes, bytearray or a memoryview of bytes), in plain Python: bitwise, the CRC held in
    two 16-bit halves so that every value is a small int on 32-bit ports (allocates
    nothing per byte)."""
    hi = (crc >> 16) ^ 0xFFFF
    lo = (crc & 0xFFFF) ^ 0xFFFF
    i = 0
    while i < n:
        lo ^= buf[i]
        k = 8
        while k:
            if lo & 1:
                lo = ((lo >> 1) | ((hi & 1) << 15)) ^ 0x8320
                hi = (hi >> 1) ^ 0xEDB8
            else:
                lo = (lo >> 1) | ((hi & 1) << 15)
                hi >>= 1
            k -= 1
        i += 1
    return ((hi ^ 0xFFFF) << 16) | (lo ^ 0xFFFF)


def update(crc, data, nbytes):
    """The CRC-32 of the bytes so far (`crc`) followed by `data` (`nbytes` bytes long).
    Allocates nothing with binascii or viper; the plain-Python fallback copies an
    array first (its items are not bytes)."""
    if _binascii_crc32 is not None:
        return _binascii_crc32(data, crc)
    if _crc32_viper is not None:
        return _crc32_viper(data, nbytes, crc)
    if type(data) is array:
        data = bytes(data)
    return crc32_py(data, nbytes, crc)
