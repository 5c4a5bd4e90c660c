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
_MICROPYTHON = sys.implementation.name == "micropython"
_OFFSET = 8 if sys.maxsize >> 32 else 4  # the typecode's byte: after the type pointer

header_code = None
if _MICROPYTHON:
    try:
        from .typecode_viper import header_code
    except (ImportError, SyntaxError, AttributeError, NotImplementedError, ValueError, TypeError):
        header_code = None  # ports without the native emitter


def _copy_code(x):
    """The typecode of a MicroPython array/memoryview by its element size (from a
    copy of its bytes: allocates) and its first element's type: 'b', 'h', 'i',
    'q', 'f' or 'd' (signedness is not told apart; an empty buffer gives 'b')."""
    n = len(x)
    size = len(bytes(x)) // n if n else 1
    if n and type(x[0]) is float:
        return F32 if size == 4 else 100 if size == 8 else 0
    return INT8 if size == 1 else 104 if size == 2 else 105 if size == 4 else 113 if size == 8 else 0


def _cpython_code(x):
    if type(x) is array:
        c = x.typecode  # pyright: ignore[reportAttributeAccessIssue]  # CPython only
    else:
        c = x.format  # pyright: ignore[reportAttributeAccessIssue]  # CPython only
        if c[0] == "@":
            c = c[1:]
        if x.ndim != 1:  # pyright: ignore[reportAttributeAccessIssue]  # CPython only
            return 0
    return ord(c) if len(c) == 1 and c in NUMERIC else 0


def _check_viper():
    """Whether the header read gives the typecode of every array and memoryview (run
    once at import, then deleted: its code would only take RAM)."""
    if header_code is None:
        return False
    xs = [memoryview(bytearray(2)), memoryview(b"ab")]
    want = [UINT8, UINT8]
    for c in NUMERIC:
        try:
            a = array(c, [1])
        except ValueError:  # a port without this typecode
            continue
        xs += [a, memoryview(a)]
        want += [ord(c), ord(c)]
    for i in range(len(xs)):
        a = id(xs[i])
        if header_code(a, a < 0, _OFFSET) != want[i]:
            return False
    return True


_HEADER = _MICROPYTHON and _check_viper()  # typecode reads the header in viper
del _check_viper
_slow_code = _copy_code if _MICROPYTHON else _cpython_code


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
        return _slow_code(x)
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
    "memoryview('B')", "array" for an array of another typecode (allocates)."""
    t = type(x)
    c = typecode(x) if t is array or t is memoryview else 0
    return "%s('%s')" % (t.__name__, chr(c)) if c else t.__name__
