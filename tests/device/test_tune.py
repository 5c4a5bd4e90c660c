"""Fine-tuning an int8 network's last layers on the device (nanonn.int8.tune): the frozen
int8 layers are the network's own, the float copies are within a derived bound of the int8
layers, training on a shifted task helps, the re-quantized network loads back and agrees.
Sized for a board's heap (networks of at most 10 units, 12-30 samples)."""

import gc
import math
from array import array

from check import HEAP_MEASURED, NATIVE, TMPDIR, CheckFailed, bytes_per_call, eq, ok, raises, skip
from nanonn import Dense, Network, argmax, load
from nanonn.int8.network import QNetwork
from nanonn.int8.quantize import quantize_inputs
from nanonn.int8.tune import Tuner
from nanonn.nnm.write import dumps
from nanonn.rand import Random

NEEDS_FILESYSTEM = ("test_save_writes_a_model_that_loads_back",)
TMP = TMPDIR + "/tune.nnm"
TEMP_FILES = (TMP, TMP + ".tmp")  # removed by the runner after each test
N_IN, N_CLS = 6, 3
_F = array("f", bytes(4))


def f32(v):
    """v rounded to float32 (the device's numbers)."""
    _F[0] = v
    return _F[0]


def _rows(rng, count, n):
    # array('f') rows: lists of boxed floats made between Random's temporaries fragment a board's heap
    return [array("f", [rng.uniform(-1.0, 1.0) for _ in range(n)]) for _ in range(count)]


def _random_int8(sizes, acts, seed, count=12):
    """(an int8 network quantized from a seeded random float network with biases in
    [-0.5, 0.5], its calibration rows)."""
    layers = [Dense(sizes[1], inputs=sizes[0], activation=acts[0])]
    for i in range(1, len(acts)):
        layers.append(Dense(sizes[i + 1], activation=acts[i]))
    net = Network(*layers, seed=seed)
    rng = Random(seed)
    for layer in layers:
        for u in range(layer.units):
            layer.b[u] = rng.uniform(-0.5, 0.5)
    X = _rows(rng, count, sizes[0])
    return net.quantize(X), X


def _task(rng, centers, count, shifted):
    """`count` samples of N_CLS noisy clusters (one-hot targets); `shifted`: the sensor moved
    (coordinates rotated by one place, gain 1.3, offset 0.2). The rows are allocated first, in
    one run of the heap, then filled: rows made one by one between Random's temporaries
    scatter over a board's heap (its largest free block fell from 40 KB to 4 KB)."""
    X = [array("f", bytes(4 * N_IN)) for _ in range(count)]
    Y = [array("f", bytes(4 * N_CLS)) for _ in range(count)]
    v = [0.0] * N_IN  # the noisy point before the shift, at the port's float precision
    for j in range(count):
        c, x = j % N_CLS, X[j]
        for i in range(N_IN):
            v[i] = centers[c][i] + rng.uniform(-0.25, 0.25)
        for i in range(N_IN):
            x[i] = 1.3 * v[(i + 1) % N_IN] + 0.2 if shifted else v[i]
        Y[j][c] = 1.0
    return X, Y


def _classifier():
    """(int8 6-12-3 relu/softmax network trained on the task, the shifted task's adaptation
    set (12) and test set (30)). The three sets are made before training, the training's
    garbage collected before quantizing: what the caller keeps sits low in the heap."""
    rng = Random(11)
    centers = [[rng.uniform(-1.0, 1.0) for _ in range(N_IN)] for _ in range(N_CLS)]
    X, Y = _task(rng, centers, 30, False)
    adapt, test = _task(rng, centers, 12, True), _task(rng, centers, 30, True)
    net = Network(Dense(12, inputs=N_IN, activation="relu"), Dense(N_CLS, activation="softmax"), seed=3)
    net.set_loss("cross_entropy")
    net.fit(X, Y, epochs=30, rate=0.05, momentum=0.9)
    gc.collect()
    q = net.quantize(X)
    ok(_accuracy(q.predict, X, Y) >= 0.9, "the int8 base classifies the original task")
    return q, adapt, test


def _accuracy(predict, X, Y):
    return sum(1 for i in range(len(X)) if argmax(predict(X[i])) == argmax(Y[i])) / len(X)


def test_frozen_layers_are_the_int8_networks_own_outputs():
    """The frozen prefix's int8 outputs are byte-identical to an identical int8 network's own
    layer outputs, and `features` is their dequantization f32((q - out_zp) * out_scale),
    exactly as the int8 network dequantizes its output."""
    sizes, acts = [6, 8, 7, 5, 3], ["relu", "leaky_relu", "tanh", "softmax"]
    ref, X = _random_int8(sizes, acts, 5)
    q, _ = _random_int8(sizes, acts, 5)  # the same integers, other buffers
    for k in (1, 2, 3):
        t = Tuner(q, k)
        frozen = len(sizes) - 1 - k
        base = t.base
        ok(base is not None and len(base.layers) == frozen, "k=%d: %d frozen layers" % (k, frozen))
        last = ref.layers[frozen - 1]
        for j in range(len(X)):
            ref.predict(X[j])
            want = [bytes(ref.layers[i].y) for i in range(frozen)]
            q.predict(X[(j + 1) % len(X)])  # the shared layer buffers now hold another window's values
            v = t.features(X[j])
            for i in range(frozen):
                eq(bytes(q.layers[i].y), want[i], "k=%d window %d frozen layer %d int8 output" % (k, j, i))
            for u in range(last.units):
                deq = f32((want[-1][u] - 128 - last.out_zp) * last.out_scale)
                eq(v[u], deq, "k=%d window %d feature %d" % (k, j, u))
    t = Tuner(q, 4)
    ok(t.base is None and t.features(X[0]) is X[0], "k = n: no frozen layers, the input itself")


def test_prefix_allocates_nothing():
    """`features` (the frozen int8 layers, dequantized into the base's array('f')) allocates
    nothing per call with the viper kernels."""
    q, X = _random_int8([6, 8, 7, 3], ["relu", "relu", "softmax"], 2)
    t = Tuner(q, 1)
    out = t.features(X[0])
    ok(t.features(X[1]) is out, "features returns the base's reused buffer")
    if not (NATIVE and HEAP_MEASURED):
        skip("the plain-Python kernels allocate (CPython, WebAssembly); measured on MicroPython with viper")
    eq(bytes_per_call(t.features, X[0]), 0, "bytes allocated per call of features")


def _unit_error(layer, xq, u):
    """The float32 error bound of unit u's pre-activation (real units) computed by the float
    copy from the dequantized int8 input `xq` (offset-binary): each term w_f * x_f is a
    product of two float32 roundings of exact values, rounded again, and summed over n terms
    with the rounded bias (two roundings): at most (n + 3) * 2^-24 relative to
    S = in_scale * w_scale * (sum |w_q| |x_q - in_zp| + |bias_q|); 2^-23 leaves a factor 2."""
    n = layer.inputs
    s = abs(layer.bias[u])
    for i in range(n):
        w = (layer.w[u * n + i] ^ 0x80) - 0x80
        s += abs(w) * abs(xq[i] - 128 - layer.in_zp)
    return (n + 3) * 2.0**-23 * layer.in_scale * layer.w_scale[u] * s


def test_float_copies_are_within_the_derived_bound_of_the_int8_layers():
    """Each float32 copy, given the int8 layer's dequantized input, gives its int8 output within

        0.5 * out_scale * (1 + 2^-20) + L * (0.5 * pre_scale * (1 + 2^-20) + e) + 1e-6

    after clamping to the int8 layer's representable range: the int8 layer rounds
    acc * R (R = in_scale * w_scale / pre_scale, one double rounding: 2^-20 of a half step
    covers it) to the nearest step, the float copy computes the same real value acc * in_scale
    * w_scale with error e (`_unit_error`), a table activation (tanh L = 1, sigmoid L = 1/4;
    linear and relu: pre = out, no second rounding) rounds once more to out_scale, and 1e-6
    covers the float activations and the dequantization's float32 rounding. Clamping is
    1-Lipschitz, so clamp(float) vs clamp(int8) keeps the bound."""
    acts = ["relu", "tanh", "linear", "sigmoid"]
    q, X = _random_int8([6, 10, 8, 6, 4], acts, 9)
    t = Tuner(q, 4)  # every layer as a float32 copy
    lip = {"relu": 0.0, "linear": 0.0, "tanh": 1.0, "sigmoid": 0.25}
    checked = 0
    for x in X:
        q.predict(x)
        xq = q._xq  # the network's quantized input (offset-binary)
        for li in range(len(acts)):
            L, d = q.layers[li], t.head.layers[li]
            xf = array("f", [f32((xq[i] - 128 - L.in_zp) * L.in_scale) for i in range(L.inputs)])
            y = d.forward(xf, False)
            f = math.tanh if acts[li] == "tanh" else (lambda v: 1.0 / (1.0 + math.exp(-v)))
            lo = L.lo if acts[li] in ("relu", "linear") else -128
            for u in range(L.units):
                deq = (L.y[u] - 128 - L.out_zp) * L.out_scale
                e = _unit_error(L, xq, u)
                if lip[acts[li]]:
                    a, b = f((-128 - L.pre_zp) * L.pre_scale), f((127 - L.pre_zp) * L.pre_scale)
                    bound = 0.5 * L.out_scale * (1 + 2.0**-20) + lip[acts[li]] * (
                        0.5 * L.pre_scale * (1 + 2.0**-20) + e
                    )
                else:
                    a, b = (lo - L.out_zp) * L.out_scale, (127 - L.out_zp) * L.out_scale
                    bound = 0.5 * L.out_scale * (1 + 2.0**-20) + e
                v = min(max(y[u], a), b)
                ok(
                    abs(v - deq) <= bound + 1e-6,
                    "layer %d (%s) unit %d: float %r, int8 %r, bound %r" % (li, acts[li], u, v, deq, bound),
                )
                checked += 1
            xq = L.y
    eq(checked, len(X) * (10 + 8 + 6 + 4), "units checked")


def test_training_on_a_shifted_task_raises_accuracy_and_the_requantized_network_agrees():
    """The sensor moved (rotated coordinates, gain, offset): the base classifies the shifted
    test set at chance or worse; 12 windows train the last layer (k=1) or both (k=2) to
    >= 0.9; the re-quantized network keeps the frozen layer and the fixed input domain
    byte for byte, loads back from its .nnm bytes, and its predict_int8 agrees with the tuned
    float model's argmax on >= 90 % of the shifted test windows."""
    q, (XA, YA), (XT, YT) = _classifier()
    before = _accuracy(q.predict, XT, YT)
    ok(before <= 0.5, "the base on the shifted task: %r" % before)
    for k in (1, 2):
        t = Tuner(q, k, loss="cross_entropy")
        eq(t.head.loss.fuses_softmax, True, "the head trains with cross-entropy")
        ok(_accuracy(t.predict, XT, YT) <= 0.5, "the untrained float copy on the shifted task")
        losses = t.fit(XA, YA, epochs=40, rate=0.05, momentum=0.9)
        ok(losses[-1] < losses[0], "k=%d loss %r -> %r" % (k, losses[0], losses[-1]))
        after = _accuracy(t.predict, XT, YT)
        ok(after >= 0.9 and after >= before + 0.4, "k=%d accuracy %r -> %r" % (k, before, after))
        model = dumps(t.quantize(XA))
        gc.collect()  # the re-quantized network's garbage, before the loaded one's buffers
        tuned = _load_int8(model)
        eq([L.units for L in tuned.layers], [L.units for L in q.layers], "the tuned network's shape")
        for i in range(2 - k):
            _same_params(tuned.layers[i], q.layers[i], "frozen layer %d" % i)
        first = tuned.layers[2 - k]
        eq((first.in_scale, first.in_zp), (t.in_scale, t.in_zp), "the first tuned layer's input domain")
        L0 = tuned.layers[0]
        acts = quantize_inputs(XT, N_IN, L0.in_scale, L0.in_zp)
        agree = 0
        for j in range(len(XT)):
            x8 = bytes(b ^ 0x80 for b in acts[j])  # offset-binary -> int8 bytes
            agree += argmax(tuned.predict_int8(x8)) == argmax(t.predict(XT[j]))
        ok(
            agree >= 0.9 * len(XT),
            "k=%d int8 agrees with the tuned float model on %d/%d" % (k, agree, len(XT)),
        )
        ok(_accuracy(tuned.predict, XT, YT) >= 0.9, "k=%d int8 accuracy after tuning" % k)
        # this k's tuner, model and networks go before the next k's are built: a board's
        # heap (150 KB on rv32imc) holds one set, unfragmented
        t = tuned = model = first = L0 = acts = losses = None
        gc.collect()


def _load_int8(source):
    """nanonn.load(source), which must give an int8 network."""
    net = load(source)
    if not isinstance(net, QNetwork):
        raise CheckFailed("expected the tuned model to load as a QNetwork, got %s" % type(net).__name__)
    return net


def _same_params(a, b, what):
    pa, pb = a.params(), b.params()
    eq(sorted(pa), sorted(pb), what + " fields")
    for key in pa:
        va, vb = pa[key], pb[key]
        if key in ("w", "lut") and va is not None and vb is not None:
            va, vb = bytes(va), bytes(vb)  # buffers (a loaded model's may be memoryviews)
        eq(va, vb, "%s %s" % (what, key))


def test_save_writes_a_model_that_loads_back():
    q, (XA, YA), (XT, _) = _classifier()
    t = Tuner(q, 1)
    t.fit(XA, YA, epochs=5, rate=0.05)
    saved = t.save(TMP, XA)
    loaded = _load_int8(TMP)
    for x in XT[:10]:
        eq(bytes(loaded.predict_int8(bytes(6))), bytes(saved.predict_int8(bytes(6))), "int8 outputs")
        eq(list(loaded.predict(x)), list(saved.predict(x)), "float outputs of the loaded model")


def test_softmax_tflite_is_tuned_as_softmax():
    """A TFLite int8 model's softmax_tflite layer trains as the float softmax and is
    re-quantized as nanonn's integer softmax (same output domain, 1/256 and -128)."""
    from test_quant import _tflite_softmax_variant

    q, X = _random_int8([6, 8, 3], ["relu", "softmax"], 4)
    q = _tflite_softmax_variant(q)
    t = Tuner(q, 1)
    eq(t.head.layers[-1].activation.name, "softmax", "the float copy's activation")
    tuned = t.quantize(X)
    last = tuned.layers[-1]
    eq(
        (last.activation, last.out_scale, last.out_zp),
        ("softmax", 1.0 / 256, -128),
        "re-quantized last layer",
    )
    same = sum(1 for x in X if argmax(tuned.predict(x)) == argmax(q.predict(x)))
    ok(
        same >= len(X) - 1,
        "untrained: the re-quantized network agrees with the original on %d/%d" % (same, len(X)),
    )


def test_errors_name_the_value_and_the_allowed_range():
    q, X = _random_int8([6, 8, 3], ["relu", "softmax"], 4)
    for k in (0, 3, -1, "1", 1.0, True):
        raises(ValueError, Tuner, q, k, contains=("Tuner k", "[1, 2]", repr(k)))
    raises(TypeError, Tuner, Network(Dense(2, inputs=3)), 1, contains=("QNetwork", "Network"))
    t = Tuner(q, 1)
    raises(ValueError, t.quantize, [], contains=("calibration_X", "at least one", "got 0"))
    raises(TypeError, t.quantize, X[0], contains=("calibration_X", "list or tuple"))
    raises(
        ValueError, t.quantize, [array("f", [0.0] * 5)], contains=("calibration_X[0]", "expected 6", "got 5")
    )
    raises(
        ValueError, t.fit, [array("f", [0.0] * 7)], [[1.0, 0.0, 0.0]], contains=("Tuner X[0]", "expected 6")
    )
    # every QDense activation has a float counterpart today; one without (a future or foreign
    # activation) is refused by name
    q.layers[-1].activation = "gelu"
    raises(
        ValueError, Tuner, q, 1, contains=("layer 1 activation", "'gelu'", "cannot be dequantized", "relu")
    )
