"""CRC-32 in plain Python: the last fallback of `nanonn.crc32`.

Used on ports with neither `binascii.crc32` nor the native emitter, imported only there."""


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
