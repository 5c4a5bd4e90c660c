"""Views of a model's bytes without copying (used by `nanonn.load` for every model).

A bytes-like source (a frozen module's bytes constant in flash, a ROMFS file
mapped with `memoryview`, a bytearray) is used in place: `float_view` gives an
indexable float32 view into it without copying (MicroPython: a `uctypes` array
at the source's address; CPython: a `memoryview.cast("f")`). The view needs the
weights 4-byte aligned in memory; an unaligned source (or a port without
`uctypes`) gets a copy (`float_copy`) instead. `bytes_view` lets `readinto`
fill an array. Imports nothing of the networks, so the int8 path does not pay
for the float one.
"""

import struct
import sys
from array import array

try:
    import uctypes
except ImportError:
    uctypes = None

_MICROPYTHON = sys.implementation.name == "micropython"


def float_view(mv, offset, count):
    """A read-only, indexable view of `count` little-endian float32 values at
    mv[offset:], or None when this port cannot view them in place.

    `mv` is a memoryview of bytes; the caller keeps the source alive (the
    MicroPython view holds only an address). Allocates only the view object."""
    if not _MICROPYTHON:
        return mv[offset : offset + 4 * count].cast("f")
    if uctypes is None:
        return None
    addr = uctypes.addressof(mv) + offset
    if addr & 3:
        return None
    return uctypes.struct(addr, (uctypes.ARRAY | 0, uctypes.FLOAT32 | count))


def bytes_view(buf, nbytes):
    """A writable byte-level view of the first `nbytes` bytes of `buf` (a
    bytearray, a memoryview of bytes or an array), without copying: allocates at
    most the view object."""
    t = type(buf)
    if t is bytearray or (t is memoryview and (_MICROPYTHON or buf.itemsize == 1)):
        return buf
    if not _MICROPYTHON:
        return memoryview(buf).cast("B")
    if uctypes is None:
        raise ValueError("buffer: expected a bytearray on a port without uctypes, got %s" % t.__name__)
    return uctypes.bytearray_at(uctypes.addressof(buf), nbytes)


def float_copy(mv, offset, count):
    """An array('f') copy of `count` float32 values at mv[offset:] (allocates it)."""
    a = array("f", bytes(4 * count))
    if _MICROPYTHON and uctypes is None:
        for i in range(count):
            a[i] = struct.unpack_from("<f", mv, offset + 4 * i)[0]
    else:
        bytes_view(a, 4 * count)[:] = mv[offset : offset + 4 * count]
    return a
