"""Typed buffers at every public entry point that hands a buffer to a kernel
(issue 12): every array typecode the runtime has, memoryviews and their slices,
bytes-likes, and objects that are not sequences of numbers.

A float entry point (`QNetwork.predict`, `Network.predict`/`train`) converts any
sequence of numbers exactly as the list of the same values; `predict_int8` takes
exactly `inputs` bytes (bytes, bytearray, array('b'/'B'), memoryviews of them) and
refuses anything else; no kernel reads outside the caller's buffer. Reference: the
list of the same values (the path that was right before), compared to the bit.
"""

import gc
import sys
from array import array

from check import HEAP_MEASURED, IS_MICROPYTHON, NATIVE, bytes_per_call, eq, ok, raises, skip
from nanonn import Dense, Network, inputs, load
from nanonn.int8.network import KERNELS, QDense, QNetwork
from nanonn.nnm.layers import LoadedDense
from nanonn.nnm.write import dumps
from nanonn.rand import Random

# Ports without the native emitter read the header through uctypes; a port with neither
# tells typecodes by the copy fallback, which cannot tell signed from unsigned.
NO_SIGNEDNESS = "neither viper nor uctypes on this port: the copy fallback (inputs._copy_code) cannot tell signed from unsigned typecodes"


def _exact():
    """Whether typecode tells every typecode apart here (not the copy fallback)."""
    return not IS_MICROPYTHON or inputs._HEADER or inputs._slow_code is not inputs._copy_code


N = 4
ALL_TYPECODES = "bBhHiIlLqQfd"
# Sample values per kind: signed ints (raw readings), unsigned ints, floats that are
# not float32 values (array('d') must round them as the list path does) and floats
# that are (array('f') holds them exactly).
SIGNED = [-2, 1, 0, 2]
UNSIGNED = [2, 0, 1, 3]
DOUBLES = [0.1, -1.3, 1.7000000000000002, -0.45]
FLOAT32S = [0.5, -1.25, 1.75, -0.375]


def _typecodes():
    """The array typecodes this runtime has (MicroPython builds may lack q/Q/d)."""
    have = []
    for c in ALL_TYPECODES:
        try:
            array(c, [0])
        except ValueError:
            continue
        have.append(c)
    return have


def _values(c):
    if c == "d":
        return DOUBLES
    if c == "f":
        return FLOAT32S
    return UNSIGNED if c in "BHILQ" else SIGNED


def _float_net():
    return Network(Dense(8, inputs=N, activation="relu"), Dense(3, activation="softmax"), seed=2)


def _calibration():
    rng = Random(3)
    return [[rng.uniform(-2.0, 2.0) for _ in range(N)] for _ in range(16)]


def _qnets():
    """The 4-8-3 network of the issue, quantized, once per kernel set."""
    q = _float_net().quantize(_calibration())
    return [QNetwork(q.layers, kernels=name) for name in sorted(KERNELS)]


def _padded_view(c, values):
    """memoryview(array(c, [pad] + values + [pad]))[1:-1]: a slice inside a larger buffer."""
    pad = values[0]
    return memoryview(array(c, [pad] + values + [pad]))[1 : 1 + len(values)]


def test_every_typecode_is_tested():
    have = _typecodes()
    for c in "bBhHiIlLf":
        ok(c in have, "typecode %r available" % c)
    if NATIVE:
        ok(inputs._HEADER, "the viper header read passed its import check and is in use")
    elif IS_MICROPYTHON:
        ok(not inputs._HEADER, "no viper header read on a port without the native emitter")
        try:
            import uctypes  # noqa: F401
        except ImportError:
            return
        ok(
            inputs._slow_code is inputs._uctypes_code,
            "the uctypes header read passed its import check and is in use",
        )


def test_typecode_of_arrays_memoryviews_and_bytes():
    if not _exact():
        skip(NO_SIGNEDNESS)
    for c in _typecodes():
        a = array(c, _values(c))
        eq(inputs.typecode(a), ord(c), "typecode of array(%r)" % c)
        eq(inputs.typecode(memoryview(a)), ord(c), "typecode of memoryview(array(%r))" % c)
        eq(inputs.typecode(_padded_view(c, _values(c))), ord(c), "typecode of a slice of array(%r)" % c)
        eq(inputs.typecode(array(c)), ord(c), "typecode of an empty array(%r)" % c)
        eq(inputs.describe(a), "array('%s')" % c, "describe array(%r)" % c)
        eq(inputs.describe(memoryview(a)), "memoryview('%s')" % c, "describe memoryview")
        eq(inputs.is_bytes(a), c in "bB", "is_bytes(array(%r))" % c)
    for x in (b"ab", bytearray(2), memoryview(b"abc")[1:], memoryview(bytearray(3))[1:]):
        eq(inputs.typecode(x), ord("B"), "typecode of %s" % type(x).__name__)
        ok(inputs.is_bytes(x), "is_bytes(%s)" % type(x).__name__)
    for x in ([1, 2], (1.0,), None, 3, 2.5, "ab", {0: 1}, range(3), object()):
        eq(inputs.typecode(x), 0, "typecode of %s" % type(x).__name__)
        ok(not inputs.is_bytes(x), "is_bytes(%s)" % type(x).__name__)
    eq(inputs.describe([1]), "list", "describe list")


def test_the_header_byte_table():
    """inputs._CODES (a constant: it stays in flash) maps each header byte to its typecode:
    1 (a bytearray) to "B", the byte of each of bBhHiIlLqQfd to itself, any other to 0."""
    eq(len(inputs._CODES), 128, "entries")
    for c in range(128):
        want = ord("B") if c == 1 else c if chr(c) in inputs.NUMERIC else 0
        eq(inputs._CODES[c], want, "_CODES[%d]" % c)


def test_header_read_handles_every_id_range():
    """id() of an array: non-negative on 64-bit ports; on 32-bit ports an address in
    [2^30, 2^31) comes back negative (bit 31 set) and the viper read masks it. Where
    the heap lies below 2^31 that case is simulated from a real address (qemu-arm:
    about 2^30, like an ESP32's 0x3FFxxxxx); above 2^31 (x86-32) id() gives a
    positive long int, which the other tests exercise."""
    if not IS_MICROPYTHON:
        return
    if not NATIVE:
        skip("no native emitter on this port: typecode_viper does not compile (test_fallback checks that)")
    from nanonn.typecode_viper import header_code

    a = array("h", [1, 2])
    i = id(a)
    ok(i >= 0, "id() of an array is non-negative here: %d" % i)
    eq(header_code(i, 0, inputs._OFFSET), ord("h"), "the typecode at id()")
    if sys.maxsize >> 32 == 0 and i < (1 << 31):
        wrapped = i - (1 << 31)  # the value id() gives for this address | 2^31
        eq(header_code(wrapped, 1, inputs._OFFSET), ord("h"), "the typecode at a wrapped id()")


def test_copy_fallback_tells_the_kinds_apart():
    """The fallback of ports without the native emitter (MicroPython only; CPython
    reads `typecode`): the element size and kind of every typecode, memoryviews too."""
    if not IS_MICROPYTHON:
        return
    wide = "q" if sys.maxsize >> 32 else "i"  # 'l'/'L': the port's C long
    expected = {"b": "b", "B": "b", "h": "h", "H": "h", "i": "i", "I": "i", "l": wide, "L": wide}
    expected.update({"q": "q", "Q": "q", "f": "f", "d": "d"})
    for c in _typecodes():
        a = array(c, _values(c))
        eq(chr(inputs._copy_code(a)), expected[c], "fallback typecode of array(%r)" % c)
        eq(
            chr(inputs._copy_code(_padded_view(c, _values(c)))),
            expected[c],
            "fallback, memoryview slice %r" % c,
        )


def _id_bytes():
    """Heap bytes of one id() of an array: 0 where addresses are small ints (64-bit
    ports, boards with the heap below 2^31), a long int where they are not (the
    32-bit unix port maps its heap above 2^31)."""
    a = array("f", [0.0])
    return bytes_per_call(id, a)


def test_entry_points_with_the_copy_fallback():
    """A port without the native emitter uses `_copy_code` (MicroPython; CPython reads
    `typecode`): the same conversions, acceptances and refusals through it."""
    if not IS_MICROPYTHON:
        return
    saved = inputs._HEADER
    inputs._HEADER = False
    try:
        test_qnetwork_predict_takes_every_typecode_as_the_list()
        test_float_network_takes_every_typecode_as_the_list()
        test_predict_int8_takes_exactly_n_bytes()
        test_predict_int8_refuses_other_lengths()
        for q in _qnets():
            for c in _typecodes():
                if c not in "bB":
                    raises(TypeError, q.predict_int8, array(c, _values(c)), contains=("predict_int8 input",))
    finally:
        inputs._HEADER = saved


def test_typecode_allocates_nothing():
    """typecode allocates nothing beyond the object's id() (itself nothing on the
    64-bit unix port and on boards with their heap below 2^31)."""
    if not IS_MICROPYTHON:
        return
    if not HEAP_MEASURED:
        skip("this port's heap use cannot be measured inside a program (check.HEAP_MEASURED)")
    per_id = _id_bytes()
    if sys.maxsize >> 32:
        eq(per_id, 0, "bytes per id() on a 64-bit port")
    xs = [array(c, _values(c)) for c in _typecodes()] + [bytearray(4), b"abcd"]
    xs = xs[:-2] + [memoryview(x) for x in xs]  # arrays and memoryviews: probed by id()
    for x in xs:
        eq(bytes_per_call(inputs.typecode, x), per_id, "bytes per typecode(%s)" % inputs.describe(x))
    for x in (bytearray(4), b"abcd", [1.0, 2.0], None):
        eq(bytes_per_call(inputs.typecode, x), 0, "bytes per typecode(%s)" % type(x).__name__)


def test_qnetwork_predict_takes_every_typecode_as_the_list():
    for q in _qnets():
        for c in _typecodes():
            v = _values(c)
            want = list(q.predict(list(v)))
            eq(list(q.predict(array(c, v))), want, "%s predict(array(%r)) vs the list" % (q.kernels, c))
            eq(list(q.predict(tuple(v))), want, "%s predict(tuple) vs the list" % q.kernels)
            eq(list(q.predict(memoryview(array(c, v)))), want, "%s predict(memoryview(%r))" % (q.kernels, c))
            eq(list(q.predict(_padded_view(c, v))), want, "%s predict(memoryview slice %r)" % (q.kernels, c))
        for x in (bytes(UNSIGNED), bytearray(UNSIGNED), memoryview(bytearray([9] + UNSIGNED))[1:]):
            eq(
                list(q.predict(x)),
                list(q.predict(UNSIGNED)),
                "%s predict(%s)" % (q.kernels, type(x).__name__),
            )


def test_qnetwork_predict_distinguishes_values():
    """A guard on the test above: different raw readings give different outputs."""
    for q in _qnets():
        outs = [list(q.predict(array("h", v))) for v in ([-2, 1, 0, 2], [2, -1, 0, -2], [0, 0, 0, 0])]
        ok(
            outs[0] != outs[1] and outs[0] != outs[2],
            "%s outputs depend on the array('h') values" % q.kernels,
        )


def test_float_network_takes_every_typecode_as_the_list():
    net = _float_net()
    for c in _typecodes():
        v = _values(c)
        want = list(net.predict(list(v)))
        for x in (array(c, v), memoryview(array(c, v)), _padded_view(c, v)):
            eq(list(net.predict(x)), want, "Network.predict(%s) vs the list" % inputs.describe(x))
    eq(list(net.predict(bytearray(UNSIGNED))), list(net.predict(UNSIGNED)), "Network.predict(bytearray)")
    eq(list(net.predict(bytes(UNSIGNED))), list(net.predict(UNSIGNED)), "Network.predict(bytes)")


def test_float_network_trains_on_every_typecode_as_the_list():
    for c in _typecodes():
        v = _values(c)
        a, b = _float_net(), _float_net()
        target = [0.0, 1.0, 0.0]
        la = a.train(array(c, v), array("f", target), rate=0.3)
        lb = b.train(list(v), target, rate=0.3)
        eq(la, lb, "train loss for array(%r)" % c)
        eq(a.get_weights(), b.get_weights(), "weights after train on array(%r)" % c)
        la = a.train(_padded_view(c, v), memoryview(array("d", target)), rate=0.3)
        lb = b.train(list(v), target, rate=0.3)
        eq(la, lb, "train loss for memoryview slices of array(%r)" % c)
        eq(a.get_weights(), b.get_weights(), "weights after train on memoryview(%r)" % c)


def test_predict_int8_takes_exactly_n_bytes():
    raw = [0x80, 0x7F, 0x00, 0xFE]  # int8 -128, 127, 0, -2 as bytes
    signed = [-128, 127, 0, -2]
    for q in _qnets():
        want = list(q.predict_int8(bytes(raw)))
        accepted = (
            bytearray(raw),
            array("b", signed),
            array("B", raw),
            memoryview(bytes(raw)),
            memoryview(bytearray([1] + raw + [2]))[1:5],
            memoryview(array("b", [5] + signed + [6]))[1:5],
            memoryview(array("B", [5] + raw + [6]))[1:5],
        )
        for x in accepted:
            eq(list(q.predict_int8(x)), want, "%s predict_int8(%s)" % (q.kernels, inputs.describe(x)))
        ok(want != list(q.predict_int8(bytes(4))), "%s outputs depend on the input bytes" % q.kernels)


def test_predict_int8_refuses_wider_types_and_non_buffers():
    for q in _qnets():
        for c in _typecodes():
            if c in "bB":
                continue
            for x, what in (
                (
                    array(c, _values(c)),
                    "array('%s')" % c if _exact() else "array(",
                ),
                (_padded_view(c, _values(c)), "memoryview"),
            ):
                raises(TypeError, q.predict_int8, x, contains=("predict_int8 input", "array('b')", what))
        for x in ([1, 2, 3, 4], (1, 2, 3, 4), None, 3, 2.5, "abcd", {0: 1}, range(4), object()):
            raises(
                TypeError, q.predict_int8, x, contains=("predict_int8 input", "bytearray", type(x).__name__)
            )


def test_predict_int8_refuses_other_lengths():
    """Shorter buffers are refused before the kernel (it would read past their end),
    longer ones too (their tail would be ignored silently)."""
    for q in _qnets():
        for n in (0, 1, N - 1, N + 1, 2 * N):
            for x in (bytes(n), bytearray(n), array("b", bytes(n)), array("B", bytes(n))):
                raises(ValueError, q.predict_int8, x, contains=("expected %d int8 values" % N, "got %d" % n))
            view = memoryview(bytearray(2 * N + 2))[1 : 1 + n]
            raises(ValueError, q.predict_int8, view, contains=("expected %d int8 values" % N, "got %d" % n))
        # array('h') of N/2 elements has N bytes: still refused (by type, not by byte count)
        raises(TypeError, q.predict_int8, array("h", [0] * (N // 2)), contains=("array('h')",))


def test_the_remembered_buffer_is_still_checked_for_length():
    """QNetwork skips the type check for the buffer it accepted last (an object's
    typecode never changes) but checks its length at every call: an array that grew
    or shrank is refused, and the two entry points remember their buffers apart."""
    for q in _qnets():
        x = array("f", FLOAT32S)
        want = list(q.predict(x))
        eq(list(q.predict(x)), want, "%s predict, the same array('f') again" % q.kernels)
        x.append(0.5)
        raises(ValueError, q.predict, x, contains=("expected %d values" % N, "got %d" % (N + 1)))
        b = array("b", SIGNED)
        q.predict_int8(b)
        eq(
            list(q.predict(b)),
            list(q.predict(SIGNED)),
            "%s predict(array('b')) after predict_int8" % q.kernels,
        )
        b.append(1)
        raises(ValueError, q.predict_int8, b, contains=("expected %d int8 values" % N, "got %d" % (N + 1)))
        raises(TypeError, q.predict_int8, array("f", FLOAT32S), contains=("array('f')",))
        raises(TypeError, q.predict, None, contains=("input", "NoneType"))
        raises(TypeError, q.predict_int8, None, contains=("predict_int8 input", "NoneType"))


def test_float_entry_points_refuse_non_sequences():
    accepted = "list, tuple, array, bytes, bytearray or memoryview"
    net = _float_net()
    entry = [(net.predict, "Network.predict")]
    entry += [(q.predict, "QNetwork.predict (%s)" % q.kernels) for q in _qnets()]
    for fn, what in entry:
        for x in (None, 3, 2.5, "abcd", {0: 1}, range(N), object(), [0.5, "x", 0.5, 0.5]):
            err = raises(TypeError, fn, x, contains=("input",))
            ok(
                accepted in str(err) or "input[1]" in str(err),
                "%s: %s names the accepted types" % (what, err),
            )
        for c in _typecodes():
            raises(ValueError, fn, array(c, _values(c)[:3]), contains=("expected %d values" % N, "got 3"))
            raises(ValueError, fn, _padded_view(c, _values(c))[1:], contains=("expected %d" % N, "got 3"))
    raises(TypeError, net.train, [0.5] * N, range(3), contains=("target", accepted))
    raises(ValueError, net.train, array("h", [1] * N), array("h", [1] * 4), contains=("target", "got 4"))


def _float_box_bytes():
    """Heap bytes of one boxed float on this runtime (a GC block)."""
    import micropython

    a = array("d", [0.1])
    gc.collect()
    before = micropython.mem_total()
    v = a[0]  # one float read: a boxed float
    used = micropython.mem_total() - before
    ok(v == a[0], "the element read")
    return used


def test_inputs_allocate_nothing_but_float_boxing():
    """MicroPython, viper kernels: predict(array('f')) and predict_int8 of every accepted
    type allocate nothing; predict of an integer array or bytes-like (converted into the
    network's own float32 buffer) nothing either; of array('d') at most one boxed float
    per input (the element read), as a list of floats costs; of array('q'/'Q') the long
    ints MicroPython makes of each element read (measured 40 B each on the unix port)."""
    if not IS_MICROPYTHON:
        return
    if not HEAP_MEASURED:
        skip("this port's heap use cannot be measured inside a program (check.HEAP_MEASURED)")
    q = [q for q in _qnets() if q.kernels == "viper"][0]
    box = _float_box_bytes()
    ok(0 < box <= 32, "a boxed float is one small block (%d B)" % box)
    per_id = _id_bytes()  # 0 on the 64-bit unix port (test_typecode_allocates_nothing)
    # array('f') and int8 bytes: the same buffer again skips the probe; two buffers in
    # turn take one probe each (an id() each); other buffers two (predict, check_vector)
    fast = [array("f", FLOAT32S), array("b", SIGNED), array("B", UNSIGNED)]
    fast += [memoryview(bytearray(6))[1:5], memoryview(array("f", [0.0] + FLOAT32S))[1:5]]
    for x in fast:
        fn = q.predict_int8 if inputs.is_bytes(x) else q.predict
        eq(bytes_per_call(fn, x), 0, "bytes per call for the same %s" % inputs.describe(x))

        def in_turn(pair, fn=fn):
            fn(pair[0])
            fn(pair[1])

        twin = array("b", bytes(4)) if inputs.is_bytes(x) else array("f", FLOAT32S)
        used = bytes_per_call(in_turn, (x, twin))
        eq(used, 2 * per_id, "bytes per 2 calls for %s and another buffer in turn" % inputs.describe(x))
    eq(bytes_per_call(q.predict_int8, bytes(4)), 0, "bytes per predict_int8(bytes)")
    eq(bytes_per_call(q.predict_int8, bytearray(4)), 0, "bytes per predict_int8(bytearray)")
    eq(bytes_per_call(q.predict, bytes(UNSIGNED)), 0, "bytes per predict(bytes)")
    for c in _typecodes():
        if c in "fd":
            continue
        used = bytes_per_call(q.predict, array(c, _values(c)))
        if c in "qQ":  # MicroPython reads each int64 element as a long int (a heap object)
            ok(
                used <= 2 * per_id + N * 64,
                "predict(array(%r)): %d B, expected at most %d" % (c, used, N * 64),
            )
        else:
            eq(used, 2 * per_id, "bytes per predict(array(%r))" % c)
    used = bytes_per_call(q.predict, array("d", DOUBLES))
    ok(used <= 2 * per_id + N * box, "predict(array('d')): %d B, expected at most one float per input" % used)


def test_qdense_int8_parameters_from_any_int8_sequence():
    """QDense w/lut: bytes-likes are two's-complement bytes, other sequences are
    converted by value (array('h') of int8 values too); floats and wrong lengths refused."""
    q = _qnets()[0]
    p = q.layers[0].params()
    signed = [(b ^ 0x80) - 0x80 for b in bytes(p["w"])]
    raw = bytes(p["w"])
    x8 = bytes([1, 0xFF, 0x10, 0x80])
    want = list(QNetwork([QDense.from_params(**p)]).predict_int8(x8))
    forms = [signed, tuple(signed), raw, bytearray(raw), array("b", signed), array("B", raw)]
    forms += [memoryview(array("b", [0] + signed + [0]))[1 : 1 + len(signed)], memoryview(raw)]
    forms += [array(c, signed) for c in _typecodes() if c in "hilq"]
    for w in forms:
        p["w"] = w
        got = list(QNetwork([QDense.from_params(**p)]).predict_int8(x8))
        eq(got, want, "QDense w as %s" % inputs.describe(w))
    p["w"] = array("f", signed)
    raises(ValueError, QDense.from_params, **p, contains=("QDense w[0]", "int8"))
    p["w"] = array("h", [300] * len(signed))
    raises(ValueError, QDense.from_params, **p, contains=("QDense w[0]", "300"))
    p["w"] = array("b", signed[:-1])
    raises(ValueError, QDense.from_params, **p, contains=("QDense w", "got %d" % (len(signed) - 1)))
    p["w"] = None
    raises(TypeError, QDense.from_params, **p, contains=("QDense w", "NoneType"))


def test_loaded_dense_takes_float32_buffers_only():
    """The float kernel reads LoadedDense's w and b as raw float32: any other buffer
    or length is refused (array('h') would be read past its end)."""
    u, n = 3, 8
    w = array("f", [0.25] * (u * n))
    b = array("f", [0.5] * u)
    layer = LoadedDense(u, n, "linear", True, w, b, [w, b], False, False)
    ok(layer.w is w and layer.b is b, "array('f') weights kept in place")
    for bad in ([0.25] * (u * n), array("d", [0.25] * (u * n)), array("h", [1] * (u * n)), None):
        raises(
            TypeError,
            LoadedDense,
            u,
            n,
            "linear",
            True,
            bad,
            b,
            [],
            False,
            False,
            contains=("LoadedDense w",),
        )
    for bad in (array("f", [0.25] * (u * n - 1)), memoryview(array("f", [0.0] * (u * n + 1)))[1:u]):
        raises(
            ValueError,
            LoadedDense,
            u,
            n,
            "linear",
            True,
            bad,
            b,
            [],
            False,
            False,
            contains=("LoadedDense w",),
        )
    raises(
        ValueError,
        LoadedDense,
        u,
        n,
        "linear",
        True,
        w,
        array("f", [0.0] * 2),
        [],
        False,
        False,
        contains=("b",),
    )


def test_load_takes_memoryviews_of_bytes_only():
    net = _float_net()
    data = dumps(net)
    want = list(net.predict(SIGNED))
    eq(list(load(memoryview(bytearray(data))).predict(SIGNED)), want, "load(memoryview(bytearray))")
    eq(list(load(memoryview(array("B", data))).predict(SIGNED)), want, "load(memoryview(array('B')))")
    wide = array("h", data + bytes(len(data) % 2))
    raises(TypeError, load, memoryview(wide), contains=("source", "memoryview('h')", "bytes"))
    raises(TypeError, load, wide, contains=("source", "array('h')"))
    q = net.quantize(_calibration())
    data8 = dumps(q)
    want8 = list(q.predict(SIGNED))
    eq(list(load(memoryview(array("b", data8))).predict(SIGNED)), want8, "int8 model from memoryview('b')")
