"""Device int8 path: allocation, reused buffers, errors (bit-exactness against
the numpy oracle is in tests/test_quant.py)."""

import gc
from array import array

from check import HEAP_MEASURED, NATIVE, SMALL_HEAP, bytes_per_call, close, eq, ok, raises, skip
from nanonn import Dense, Dropout, Network
from nanonn.float32.activations import Activation, LeakyReLU
from nanonn.int8.multiplier import scales_multiplier
from nanonn.int8.network import DEFAULT_KERNELS, KERNELS, QDense, QNetwork, kernel_set
from nanonn.rand import Random


def _net_and_data(sizes, acts, seed, count=16):
    rng = Random(seed)
    layers = [Dense(sizes[1], inputs=sizes[0], activation=acts[0])]
    for i in range(1, len(acts)):
        layers.append(Dense(sizes[i + 1], activation=acts[i]))
    net = Network(*layers, seed=seed)
    # rows as array('f'): a list of boxed floats, each made between the long-int
    # temporaries of Random, would scatter over (and fragment) a board-sized heap
    X = [array("f", [rng.uniform(-1.0, 1.0) for _ in range(sizes[0])]) for _ in range(count)]
    return net, X


def _bench_net():
    """The 784-36-14-10 benchmark network; 32-36-14-10 on a board-sized heap (the float
    network it is quantized from, and its calibration data, do not fit there)."""
    inputs = 32 if SMALL_HEAP else 784
    return _net_and_data([inputs, 36, 14, 10], [LeakyReLU(0.01), LeakyReLU(0.01), "softmax"], 3, count=4)


def test_kernel_selection():
    if NATIVE:
        eq(DEFAULT_KERNELS, "viper", "default kernels on the unix port")
        ok("python" in KERNELS, "the fallback is always available")
    else:
        eq(DEFAULT_KERNELS, "python", "default kernels on CPython and the WebAssembly port")
        eq(sorted(KERNELS), ["python"], "kernel sets on CPython and the WebAssembly port")
    net, X = _net_and_data([3, 2], ["relu"], 1)
    raises(ValueError, net.quantize, X, kernels="cuda", contains=("kernels", "cuda"))


def _tflite_softmax_variant(q):
    """q (ending in softmax) with its last layer as softmax_tflite (TFLite's softmax)."""
    import math

    last = q.layers[-1].params()
    last["activation"] = "softmax_tflite"
    last["exp_table"] = list(
        array("i", bytes(array("f", [math.exp(-last["pre_scale"] * d) for d in range(256)])))
    )
    last["exp_table"][0] = 0x3F800000
    return QNetwork(q.layers[:-1] + [QDense.from_params(**last)], kernels=q.kernels)


def test_no_allocation_in_predict_int8_and_predict():
    """MicroPython: predict_int8 and float predict allocate nothing with the viper
    kernels (heap_lock and micropython.mem_total), for every activation (softmax_tflite too). On CPython
    and the WebAssembly port (the plain-Python kernels, which allocate): the same calls run and return
    the same buffers."""
    # one network at a time (built, quantized, checked, dropped): a board-sized heap does
    # not hold them all
    net, X = _bench_net()
    q = net.quantize(X)
    net = None
    _check_no_allocation(q, X)
    _check_no_allocation(_tflite_softmax_variant(q), X)
    q = None
    for act in ("linear", "relu", "sigmoid", "tanh", "softplus"):
        net, X = _net_and_data([6, 5, 4], [act, act], 7)
        q = net.quantize(X)
        net = None
        _check_no_allocation(q, X)
        q = None


def _check_no_allocation(q, X):
    """predict_int8 and predict of `q` return its reused buffers and, with viper, allocate
    nothing (heap_lock and mem_total)."""
    gc.collect()
    x8 = array("b", [(i * 37) % 256 - 128 for i in range(q.inputs)])
    xf = array("f", X[0])
    xl = list(X[1])
    a = q.predict_int8(x8)
    b = q.predict(xf)
    q.predict(xl)
    a2 = b2 = b3 = None  # the outputs of the calls below
    if NATIVE:
        import micropython

        micropython.heap_lock()
        try:
            for _ in range(3):
                a2 = q.predict_int8(x8)
                b2 = q.predict(xf)
                b3 = q.predict(xl)
        finally:
            micropython.heap_unlock()
        # heap_lock alone is not proof: MicroPython puts large call frames on the
        # heap when it can and on the C stack when the heap is locked.
        for fn, arg, what in ((q.predict_int8, x8, "predict_int8"), (q.predict, xf, "predict(array)")):
            used = None  # bytes allocated in the last window below
            for _ in range(2):  # the first window may include one-time allocations
                gc.collect()
                before = micropython.mem_total()
                for _ in range(5):
                    fn(arg)
                used = micropython.mem_total() - before
            eq(used, 0, "bytes allocated by 5 calls of %s" % what)
    else:
        a2 = q.predict_int8(x8)
        b2 = q.predict(xf)
        b3 = q.predict(xl)
    ok(a2 is a and b2 is b and b3 is b, "outputs are the network's reused buffers")


def test_python_fallback_allocation_is_bounded():
    """The plain-Python fallback (kernels="python") on the 784-36-14-10 network, under
    MicroPython: the same outputs as the default kernels, and a bounded heap per call.
    Its kernels allocate their call frames (over 11 words) once per call, not per
    element: at most 4096 B per predict_int8 (1344 B measured; 3352 B before the fused
    layer kernel), and per float predict 32 B per input (the element read and its
    scaled value: two 16 B floats) plus 8192 B (29696 B measured). Before the
    per-element helpers were inlined: 28984 B and 274688 B.
    The bytes are held to on 64-bit ports, where every intermediate (below 2^62) is a
    small int; on 32-bit ports ints of 2^30 and more are heap objects as well and the
    bound does not apply. On CPython the fallback is the default and runs unmeasured, and so
    on the WebAssembly port (no viper, no micropython.mem_total)."""
    net, X = _bench_net()
    q = net.quantize(X)
    fb = QNetwork(q.layers, kernels="python")
    ok(fb._k is kernel_set("python"), "the network runs the plain-Python kernels")
    x8 = array("b", [(i * 37) % 256 - 128 for i in range(q.inputs)])
    xf = array("f", X[0])
    eq(list(fb.predict_int8(x8)), list(q.predict_int8(x8)), "fallback predict_int8 vs default kernels")
    eq(list(fb.predict(xf)), list(q.predict(xf)), "fallback predict vs default kernels")
    if HEAP_MEASURED:
        import sys

        ok(q.kernels == "viper", "the reference network runs the viper kernels")
        if sys.maxsize > (1 << 31):
            per8 = bytes_per_call(fb.predict_int8, x8)
            ok(per8 <= 4096, "fallback predict_int8: expected at most 4096 B per call, got %d B" % per8)
            perf = bytes_per_call(fb.predict, xf)
            bound = 8192 + 32 * fb.inputs
            ok(perf <= bound, "fallback predict: expected at most %d B per call, got %d B" % (bound, perf))


def test_predict_int8_accepts_bytes_and_array_b():
    net, X = _net_and_data([5, 4, 3], ["tanh", "softmax"], 2)
    q = net.quantize(X)
    vals = [-128, -1, 0, 1, 127]
    a = list(q.predict_int8(array("b", vals)))
    b = list(q.predict_int8(bytes([v & 0xFF for v in vals])))
    eq(a, b, "array('b') and two's-complement bytes give the same outputs")
    ok(all(-128 <= v <= 127 for v in a), "int8 outputs")
    raises(ValueError, q.predict_int8, bytes(4), contains=("5", "4"))


def test_predict_int8_at_any_input_alignment():
    """The viper input conversion reads word-aligned inputs 4 bytes at a time and others
    byte by byte: an input at every offset within a word, 37 values (words and a tail),
    gives the plain-Python kernels' outputs."""
    net, X = _net_and_data([37, 6, 3], [LeakyReLU(0.01), "softmax"], 5)
    q = net.quantize(X)
    fb = QNetwork(q.layers, kernels="python")
    vals = [(i * 53) % 256 - 128 for i in range(37)]
    want = list(fb.predict_int8(array("b", vals)))
    buf = bytearray(40)
    for off in range(4):
        for i in range(37):
            buf[off + i] = vals[i] & 0xFF
        eq(list(q.predict_int8(memoryview(buf)[off : off + 37])), want, "input at offset %d" % off)


def test_wide_dense_matches_the_plain_python_kernel():
    """kernels_wide_viper.dense (what a Thumb-2 port runs) gives kernels_py.dense's outputs:
    inputs in windows of 256 read at an address whose low byte is 0x80 (`aligned`), the 16
    after them, the rest; the same sizes at a plain address; units that round, saturate
    and take the exact path (weights of every size, scales that put them near 256)."""
    if not NATIVE:
        skip("no native emitter: kernels_wide_viper does not compile here")
    from nanonn.int8 import kernels_py

    try:
        from nanonn.int8 import kernels_wide_viper as wide
    except ImportError:
        skip("kernels_wide_viper is not installed here (an image for a board without Thumb-2)")
        return

    rng = Random(15)
    units = 6
    for n in (16, 256, 272, 300, 528, 784):
        w = bytearray(n * units)  # int8 as two's-complement bytes (a list would not fit a board)
        for i in range(n * units):
            w[i] = rng.below(256)
        scales = [0.0001 * (1 + rng.below(60)) for _ in range(units)]
        bias = [rng.below(20001) - 10000 for _ in range(units)]
        L = QDense.from_params(**_params(inputs=n, units=units, w=w, w_scale=scales, bias=bias))
        table = L.y if L.table is None else L.table  # linear: no table (any bytes)
        plain = bytearray(n + 1)
        for x in (wide.aligned(n), memoryview(plain)[1 : n + 1]):
            for trial in range(4):
                for i in range(n):  # all 0, all 255, then random bytes
                    x[i] = 0 if trial == 0 else 255 if trial == 1 else rng.below(256)
                want = bytearray(units)
                got = bytearray(units)
                kernels_py.dense(L.w, x, want, L.p, table)
                wide.dense(L.w, x, got, L.p, table)
                eq(
                    list(got),
                    list(want),
                    "n=%d at address %% 256 = %d, trial %d" % (n, wide.address(x) & 0xFF, trial),
                )


def test_quantized_softmax_close_to_float():
    net, X = _net_and_data([8, 12, 4], ["relu", "softmax"], 5, count=40)
    q = net.quantize(X)
    for x in X[:10]:
        y = q.predict(x)
        close(sum(y), 1.0, 1e-3, "softmax sum")
        close(list(y), list(net.predict(x)), 0.05, "int8 vs float softmax")


def test_quantize_skips_dropout_and_rejects_custom_layers():
    net = Network(Dense(4, inputs=3, activation="relu"), Dropout(0.5), Dense(2), seed=1)
    q = net.quantize([[0.1, 0.2, 0.3], [-0.3, 0.0, 0.9]])
    eq(len(q.layers), 2, "dense layers kept, dropout dropped")
    square = Activation("square", lambda v: v * v, lambda v, y: 2 * v)
    net = Network(Dense(2, inputs=2, activation=square))
    raises(ValueError, net.quantize, [[0.0, 1.0]], contains=("activation", "square"))
    raises(ValueError, Network(Dense(2, inputs=2)).quantize, [], contains=("calibration_X",))
    raises(ValueError, Network(Dense(2, inputs=2)).quantize, [[1.0]], contains=("2", "1"))


def _params(**over):
    p = dict(
        inputs=2,
        units=2,
        w=[1, -2, 3, -4],
        w_scale=[0.01, 0.02],
        bias=[10, -10],
        in_scale=0.05,
        in_zp=-3,
        out_scale=0.1,
        out_zp=5,
    )
    p.update(over)
    if "mult" not in p or "shift" not in p:  # QuantizeMultiplier of the scales (from_params checks it)
        w_scale = p["w_scale"]
        if not isinstance(w_scale, list):
            raise TypeError("_params w_scale: expected a list, got %r" % (w_scale,))
        try:
            ms = [scales_multiplier(p["in_scale"], w, p.get("pre_scale") or p["out_scale"]) for w in w_scale]
        except ValueError:  # a zero scale: from_params refuses it first
            ms = [(1 << 30, 0)] * len(w_scale)
        p.setdefault("mult", [m for m, _ in ms])
        p.setdefault("shift", [sh for _, sh in ms])
    return p


def test_from_params_validates_every_field():
    QDense.from_params(**_params())
    cases = [
        ({"w": [1, 2, 3]}, ("QDense w", "4", "3")),
        ({"w": [1, 2, 300, 4]}, ("QDense w[2]", "300")),
        ({"w_scale": [0.01, -1.0]}, ("w_scale[1]",)),
        ({"bias": [1 << 31, 0]}, ("bias[0]",)),
        ({"in_zp": 128}, ("in_zp", "128")),
        ({"out_scale": 0.0}, ("out_scale",)),
        ({"mult": [5, 1 << 30]}, ("mult[0]", "2^30")),
        ({"shift": [31, 0]}, ("shift[0]", "31")),
        ({"mult": [1 << 30, 1 << 30], "shift": [-3, -4]}, ("mult[0]/shift[0]", "QuantizeMultiplier", "-3")),
        ({"activation": "gelu"}, ("activation", "gelu")),
        ({"activation": "sigmoid", "pre_scale": 0.1, "pre_zp": 0}, ("lut",)),
        ({"activation": "sigmoid"}, ("pre_scale",)),
        ({"activation": "softmax", "pre_scale": 0.1, "pre_zp": 0}, ("exp_table",)),
        ({"activation": "softmax", "pre_scale": 0.1, "pre_zp": 0, "exp_table": [1] * 256}, ("exp_table[0]",)),
        ({"activation": "softmax_tflite", "pre_scale": 0.1, "pre_zp": 0}, ("exp_table", "softmax_tflite")),
        (
            {"activation": "softmax_tflite", "pre_scale": 0.1, "pre_zp": 0, "exp_table": [0x3F800000] * 256},
            ("out_scale/out_zp", "softmax_tflite"),
        ),
        (
            {
                "activation": "softmax_tflite",
                "pre_scale": 0.1,
                "pre_zp": 0,
                "out_scale": 1.0 / 256,
                "out_zp": -128,
                "exp_table": [0x3F000000] * 256,
            },
            ("exp_table[0]", "0x3f800000"),
        ),
        ({"activation": "relu", "pre_scale": 0.3, "pre_zp": 0}, ("pre_scale",)),
        ({"inputs": 0}, ("inputs",)),
    ]
    for over, parts in cases:
        raises(ValueError, QDense.from_params, **_params(**over), contains=parts)
    lut = QDense.from_params(**_params(activation="tanh", pre_scale=0.1, pre_zp=0, lut=bytes(256)))
    eq(None if lut.lut is None else len(lut.lut), 256, "lut kept")
    # an array('f') of scales is kept as the reader's arrays are (checked, not copied)
    p: dict = _params()
    p["w_scale"] = scales = array("f", [0.01, 0.02])
    ok(QDense.from_params(**p).w_scale is scales, "array('f') w_scale kept")
    p["w_scale"] = array("f", [0.01, 0.0])
    raises(ValueError, QDense.from_params, **p, contains=("QDense w_scale[1]", "0.0"))


def test_qnetwork_checks_the_chain():
    a = QDense.from_params(**_params())
    b = QDense.from_params(**_params(in_scale=0.1, in_zp=5))
    QNetwork([a, b])
    c = QDense.from_params(**_params(in_scale=0.2, in_zp=5))
    raises(ValueError, QNetwork, [a, c], contains=("layer 1", "input domain"))
    d = QDense.from_params(**_params(inputs=3, w=[0] * 6, in_scale=0.1, in_zp=5))
    raises(ValueError, QNetwork, [a, d], contains=("layer 1 inputs", "2", "3"))
    raises(TypeError, QNetwork, [a, "x"], contains=("QDense",))
    raises(ValueError, QNetwork, [], contains=("at least one",))
    staging = bytearray(2)  # the input buffer nanonn.load allocates before the layers
    ok(QNetwork([a, b], staging=staging)._xq is staging, "staging used as the input buffer")
    raises(ValueError, QNetwork, [a, b], staging=bytearray(3), contains=("staging", "2 bytes"))
    raises(ValueError, QNetwork, [a, b], staging=b"\x00\x00", contains=("staging", "bytearray"))


def test_float_input_special_values():
    net, X = _net_and_data([3, 2], ["linear"], 4)
    q = net.quantize(X)
    first = q.layers[0]
    nan = float("nan")
    inf = float("inf")
    q.predict([nan, inf, 0.0 - inf])
    got = [b - 128 for b in q._xq]  # offset-binary input buffer
    eq(got, [first.in_zp, 127, -128], "NaN -> zero point, infinities saturate")


def test_params_round_trip():
    """QDense.params() gives from_params arguments that rebuild the same layer."""
    net, X = _net_and_data([7, 6, 5, 4, 3], [LeakyReLU(0.1), "sigmoid", "relu", "softmax"], 12)
    q = net.quantize(X)
    copy = QNetwork([QDense.from_params(**layer.params()) for layer in q.layers])
    for x in X[:6]:
        eq(list(copy.predict(x)), list(q.predict(x)), "rebuilt network output")
    eq(q.layers[0].leaky[0][0], q.layers[0].params()["mult_pos"], "leaky accessor")
    ok(q.layers[1].leaky is None, "no leaky fields on a sigmoid layer")
