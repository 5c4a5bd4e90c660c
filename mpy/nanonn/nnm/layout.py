"""The byte layout of a `.nnm` header and layer record, shared by the reader and the writer.

The fields: docs/format.md, section "Layout"."""

from . import codes

try:
    from micropython import const  # the compiler inlines `_NAME = const(n)`: no RAM
except ImportError:  # CPython

    def const(__value):  # position-only, as MicroPython's (a leading __: no `/` in MicroPython)
        return __value


HEADER = "<4sBBHIHHHHIII"  # struct format of the 32-byte header
RECORD = "<BBBBIIfIIII"  # struct format of a 32-byte layer record
DENSE = codes.LAYERS["dense"]
DROPOUT = codes.LAYERS["dropout"]
FLOAT32 = codes.DTYPES["float32"]
INT8 = codes.DTYPES["int8"]
FLAG_INT8 = codes.FLAGS["int8"]
BIAS = codes.LAYER_FLAGS["bias"]


def align(n):
    """`n` rounded up to a multiple of 4 (every data block starts 4-aligned); allocates nothing."""
    return (n + 3) & ~3
