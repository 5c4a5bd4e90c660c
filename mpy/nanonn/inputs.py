"""What an input buffer holds: the element typecode of arrays and memoryviews,
found without allocating on MicroPython and CPython.

The public entry points (`Network.predict`/`train`, `QNetwork.predict`/
`predict_int8`, `QDense`, `LoadedDense`) hand buffers to viper kernels that read
raw bytes (`ptr8`/`ptr32`): they use `typecode` to tell an `array('f')` (read
as float32 in place) or a buffer of bytes (read as int8 in place) from any
other array, which is converted by value or refused.

`typecode(x)` is the element typecode as an int (`ord("f")`...): arrays and
memoryviews of the numeric typecodes `bBhHiIlLqQfd` give theirs, `bytes` and
`bytearray` give `ord("B")`, anything else 0 (lists, tuples, other objects,
arrays of other typecodes such as MicroPython's 'O' or CPython's 'u').

CPython has `array.typecode` and `memoryview.format`. MicroPython has neither:
there the typecode is read from the object (`typecode_viper`): an array, a
bytearray and a memoryview are one C struct, `mp_obj_array_t` (py/objarray.h):
the type pointer, then a word whose low 8 bits are the typecode (bit 7 set on
a writable memoryview; 1 for a bytearray), then the length and the items.
`id(x)` is the object's address: a small int, which allocates nothing, for
heaps below 2^31 (every RP2040/RP2350 and ESP32-family board; on a 32-bit port an
address in [2^30, 2^31) comes back as a negative small int, which the viper
function corrects); at or above 2^31 (some external-SDRAM boards, the 32-bit unix
port) `id` makes a long int, one small allocation per call. The read is checked
at import on arrays and memoryviews of every typecode the port has; where it is
not available (a port without the native emitter, a failed check) `typecode`
falls back to `_copy_code`: the element size from a copy of the
bytes (allocates) and float or int from the first element.
"""

import sys
from array import array

NUMERIC = "bBhHiIlLqQfd"  # the typecodes of numbers (MicroPython has all of them on 64-bit unix)
F32 = 102  # ord("f"): float32, read in place by the float kernels
INT8 = 98  # ord("b"): int8
UINT8 = 66  # ord("B"): bytes (also bytes, bytearray and their memoryviews)
_BYTEARRAY = 1  # MicroPython's typecode of a bytearray (and of a memoryview of one)
_MICROPYTHON = sys.implementation.name == "micropython"
_KNOWN = bytes(1 if chr(c) in NUMERIC else 0 for c in range(128))  # _KNOWN[c]: c is numeric
_OFFSET = 8 if sys.maxsize >> 32 else 4  # the typecode's byte: after the type pointer

header_byte = header_code = None
if _MICROPYTHON:
    try:
        from .typecode_viper import header_byte, header_code
    except (ImportError, SyntaxError, AttributeError, NotImplementedError, ValueError, TypeError):
        header_byte = header_code = None  # ports without the native emitter


def _viper_code(x):
    """The raw typecode of a MicroPython array/memoryview read from its header."""
    a = id(x)
    c = header_byte(a, _OFFSET, a < 0) & 0x7F  # pyright: ignore[reportOptionalCall]  # set when used
    return UINT8 if c == _BYTEARRAY else c


_SIZE_CODES = {
    (1, False): INT8,
    (2, False): 104,
    (4, False): 105,
    (4, True): F32,
    (8, False): 113,
    (8, True): 100,
}


def _copy_code(x):
    """The typecode of a MicroPython array/memoryview by its element size (from a
    copy of its bytes: allocates) and its first element's type: 'b', 'h', 'i',
    'q', 'f' or 'd' (signedness is not told apart; an empty buffer gives 'b')."""
    n = len(x)
    if not n:
        return INT8
    size = len(bytes(x)) // n
    return _SIZE_CODES.get((size, type(x[0]) is float), 0)


def _header_code(x):
    a = id(x)
    return header_code(a, a < 0, _OFFSET)  # pyright: ignore[reportOptionalCall]  # set when used


def _check_viper():
    """Whether the header reads give the typecode of every array and memoryview."""
    if header_byte is None or header_code is None:
        return False
    for c in NUMERIC:
        try:
            a = array(c, [1])
        except ValueError:  # a port without this typecode
            continue
        for x in (a, memoryview(a)):
            if _viper_code(x) != ord(c) or _header_code(x) != ord(c):
                return False
    for x in (memoryview(bytearray(2)), memoryview(b"ab")):
        if _viper_code(x) != UINT8 or _header_code(x) != UINT8:
            return False
    return True


def _cpython_code(x):
    if type(x) is array:
        return ord(x.typecode)  # pyright: ignore[reportAttributeAccessIssue]  # CPython only
    f = x.format  # pyright: ignore[reportAttributeAccessIssue]  # CPython only
    if f[0] == "@":
        f = f[1:]
    return ord(f) if len(f) == 1 and x.ndim == 1 else 0  # pyright: ignore[reportAttributeAccessIssue]


_HEADER = _MICROPYTHON and _check_viper()  # typecode reads the header in viper
if not _MICROPYTHON:
    _raw_code = _cpython_code
elif _HEADER:
    _raw_code = _viper_code
else:
    _raw_code = _copy_code


def raw_typecode(x):
    """The typecode of an array or memoryview as an int, even when not numeric
    (CPython: 0 for a multi-character or multi-dimensional format). Allocates as `typecode`."""
    return _raw_code(x)


def typecode(x):
    """The element typecode of `x` as an int (module docstring): 0 for anything
    that is not a buffer of numbers. Allocates nothing on CPython and, for arrays
    and memoryviews, on MicroPython ports with the native emitter."""
    # on the predict path: one frame, one id() and one viper call for an array
    t = type(x)
    if t is array or t is memoryview:
        if _HEADER:
            a = id(x)
            return header_code(a, a < 0, _OFFSET)  # pyright: ignore[reportOptionalCall]  # set when used
        c = _raw_code(x)
        return c if c < 128 and _KNOWN[c] else 0
    if t is bytes or t is bytearray:
        return UINT8
    return 0


def is_bytes(x):
    """Whether `x` holds int8 bytes: bytes, bytearray, array('b')/array('B') or a
    memoryview of one (allocates nothing, as `typecode`)."""
    c = typecode(x)
    return c == INT8 or c == UINT8


def describe(x):
    """The type of `x` for an error message: "list", "array('h')",
    "memoryview('B')", ... (allocates)."""
    t = type(x)
    if t is array or t is memoryview:
        c = raw_typecode(x)
        if c:
            return "%s('%s')" % (t.__name__, chr(c))
    return t.__name__
