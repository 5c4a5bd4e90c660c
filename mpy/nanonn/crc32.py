"""CRC-32 (IEEE 802.3, the one of zlib and binascii) over buffers.

`update(crc, data, nbytes)` continues a CRC (start with 0) over a buffer
(bytes, bytearray, memoryview, array) of exactly `nbytes` bytes. It uses
`binascii.crc32` where the port has it (the unix port, the WebAssembly port and
CPython do; on the boards it is a build option); else the viper loop of
`nanonn.crc32_viper` where the port has the native emitter; else `nanonn.crc32_py`,
plain Python that allocates nothing per byte either (each imported only where used:
this module is imported by every `nanonn.load`, also in a small heap).
"""

from array import array

from .errors import NO_NATIVE_CODE

try:
    from binascii import crc32 as _binascii_crc32
except ImportError:
    _binascii_crc32 = None

_crc32_viper = _crc32_py = None
if _binascii_crc32 is None:
    try:
        from .crc32_viper import crc32_viper as _crc32_viper
    except NO_NATIVE_CODE:
        from .crc32_py import crc32_py as _crc32_py


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
    # set at import where neither binascii nor viper is there
    return _crc32_py(data, nbytes, crc)  # pyright: ignore[reportOptionalCall]
