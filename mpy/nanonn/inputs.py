"""Input buffers: what they hold (the typecode, found without allocating) and `check_vector`.

The element typecode of arrays and memoryviews is found without allocating on
MicroPython and CPython; `check_vector` is the input check of both networks'
predict and train.

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
there the typecode byte is read from the object (`typecode_viper`) and mapped by
the 128-byte table `_CODES`: an array, a
bytearray and a memoryview are one C struct, `mp_obj_array_t` (py/objarray.h):
the type pointer, then a word whose low 8 bits are the typecode (bit 7 set on
a writable memoryview; 1 for a bytearray), then the length and the items.
`id(x)` is the object's address: a small int, which allocates nothing, for
heaps below 2^31 (every RP2040/RP2350 and ESP32-family board; on a 32-bit port an
address in [2^30, 2^31) comes back as a negative small int, which the viper
function corrects); at or above 2^31 (some external-SDRAM boards, the 32-bit unix
port) `id` makes a long int, one small allocation per call. The read is checked
at import on arrays and memoryviews of every typecode the port has. A port
without the native emitter (the WebAssembly port) reads the same byte through
`uctypes.bytes_at` (allocates a 1-byte bytes per call), checked the same way;
where neither is available or passes the check, `typecode` falls back to
`_copy_code`: the element size from a copy of the bytes (allocates) and float
or int from the first element (signedness not told apart).

`check_vector(name, v, n)` validates an input of n numbers for both networks'
`predict` (here, not in a network's module, so each imports only its own).
"""

import sys
from array import array

from .errors import NO_NATIVE_CODE

NUMERIC = "bBhHiIlLqQfd"  # the typecodes of numbers (MicroPython has all of them on 64-bit unix)
F32 = 102  # ord("f"): float32, read in place by the float kernels
INT8 = 98  # ord("b"): int8
UINT8 = 66  # ord("B"): bytes (also bytes, bytearray and their memoryviews)
_MICROPYTHON = sys.implementation.name == "micropython"
_OFFSET = 8 if sys.maxsize >> 32 else 4  # the typecode's byte: after the type pointer

header_code = None
_uctypes = None
if _MICROPYTHON:
    try:
        from .typecode_viper import header_code
    except NO_NATIVE_CODE:
        header_code = None  # ports without the native emitter
    if header_code is None:
        try:
            import uctypes as _uctypes
        except ImportError:
            _uctypes = None


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


# The typecode of each header byte (bit 7 cleared): itself for bBhHiIlLqQfd, ord("B")
# for a bytearray's 1, else 0. A constant, not built at import: from a frozen or ROMFS
# .mpy its bytes stay in flash (tests/device/test_inputs.py checks it against NUMERIC).
_CODES = (
    b"\0B\0\0\0\0\0\0\0\0\0\0\0\0\0\0"  # 0-15: 1: a bytearray ("B")
    b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"  # 16-31
    b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"  # 32-47
    b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"  # 48-63
    b"\0\0B\0\0\0\0\0HI\0\0L\0\0\0"  # 64-79: B H I L
    b"\0Q\0\0\0\0\0\0\0\0\0\0\0\0\0\0"  # 80-95: Q
    b"\0\0b\0d\0f\0hi\0\0l\0\0\0"  # 96-111: b d f h i l
    b"\0q\0\0\0\0\0\0\0\0\0\0\0\0\0\0"  # 112-127: q
)


def _uctypes_code(x):
    """The header's typecode byte read through uctypes (ports without viper;
    allocates the 1-byte bytes), mapped by `_CODES` as `typecode` maps header_code's."""
    a = id(x)
    if a < 0:  # a 32-bit port's address in [2^30, 2^31) (see typecode_viper)
        a = a & 0x7FFFFFFF
    return _CODES[_uctypes.bytes_at(a + _OFFSET, 1)[0] & 0x7F]  # pyright: ignore[reportOptionalMemberAccess]  # set when used


def _viper_code(x):
    a = id(x)
    return _CODES[header_code(a, a < 0, _OFFSET)]  # pyright: ignore[reportOptionalCall]  # set when used


def _check(read):
    """Whether `read(x)` gives the typecode of every array and memoryview (run
    once at import, then deleted: its code would only take RAM)."""
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
        if read(xs[i]) != want[i]:
            return False
    return True


_HEADER = (
    _MICROPYTHON and header_code is not None and _check(_viper_code)
)  # typecode reads the header in viper
if not _MICROPYTHON:
    _slow_code = _cpython_code
elif not _HEADER and _uctypes is not None and _check(_uctypes_code):
    _slow_code = _uctypes_code  # no viper: the header through uctypes (exact; one small allocation)
else:
    _slow_code = _copy_code
del _check, _viper_code


def typecode(x):
    """The element typecode of `x` as an int (module docstring): 0 for anything
    that is not a buffer of numbers. Allocates nothing on CPython and, for arrays
    and memoryviews, on MicroPython ports with the native emitter."""
    # on the predict path: one frame, one id() and one viper call for an array
    t = type(x)
    if t is array or t is memoryview:
        if _HEADER:
            a = id(x)
            return _CODES[header_code(a, a < 0, _OFFSET)]  # pyright: ignore[reportOptionalCall]  # set when used
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


def check_vector(name, v, n):
    """Validate a 1-D input of n numbers; raises TypeError/ValueError.

    Accepted: a list or tuple of ints and floats, an array of any numeric
    typecode ('bBhHiIlLqQfd'), bytes, bytearray, or a memoryview of one of these
    (read by value: `v[i]`). Allocates nothing for a valid vector (used on the
    predict hot path).
    """
    # This frame and _check_numbers' stay within 11 words (else each call allocates one).
    t = type(v)
    if t is list or t is tuple:
        _check_length(name, v, n)
        _check_numbers(name, v, n)
    elif typecode(v):
        _check_length(name, v, n)
    else:
        raise TypeError(
            "%s: expected a list, tuple, array, bytes, bytearray or memoryview of %d numbers, got %s"
            % (name, n, describe(v))
        )
    return v


def _check_length(name, v, n):
    if len(v) != n:
        raise ValueError("%s: expected %d values, got %d" % (name, n, len(v)))


def _check_numbers(name, v, n):
    i = 0
    while i < n:
        e = type(v[i])
        if e is not float and e is not int:
            raise TypeError("%s[%d]: expected a number (int or float), got %s" % (name, i, e.__name__))
        i += 1
