"""TFLite converter, int8 models: imported networks against the TFLite
interpreter (ai-edge-litert 2.3.0), exactly, on the host (nanonn_tools.qreference
via QuantModelSpec) and on the device (nanonn.int8.network.QNetwork: viper and the
plain-Python kernels, MicroPython unix port and CPython).

The ground truth is the interpreter's reference kernels (`BUILTIN_REF`):
every int8 tensor of the imported networks, softmax included, is equal. The
other configurations round differently (measured below and in
docs/converters.md): the optimized kernels without delegates
(`BUILTIN_WITHOUT_DEFAULT_DELEGATES`) requantize FULLY_CONNECTED with ruy's
rounding (`_ruy_mbqm`), the default XNNPACK delegate (`BUILTIN`) in float32
(`_xnnpack_fc`) and computes LEAKY_RELU its own way.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import tflite_writer as tw
from ai_edge_litert import interpreter as litert

from nanonn_tools import NanonnError, nnm, qreference
from nanonn_tools.converters import _tflite_int8
from nanonn_tools.converters import tflite as tflite_converter
from nanonn_tools.quantize import QuantModelSpec
from support import run_device_json

T = tw.T


REF = "BUILTIN_REF"  # the interpreter configuration nanonn matches exactly


def _interpreter(data: bytes, resolver: str = REF):
    it = litert.Interpreter(
        model_content=data,
        experimental_op_resolver_type=getattr(litert.OpResolverType, resolver),
        experimental_preserve_all_tensors=True,
    )
    it.allocate_tensors()
    return it


def _run_all(data: bytes, rows, resolver: str = REF) -> list[dict]:
    """Every named tensor of the interpreter for each input row."""
    it = _interpreter(data, resolver)
    inp = it.get_input_details()[0]
    out = []
    for row in rows:
        it.set_tensor(inp["index"], np.asarray(row, dtype=inp["dtype"]).reshape(inp["shape"]))
        it.invoke()
        out.append({t["name"]: it.get_tensor(t["index"]).reshape(-1).copy() for t in it.get_tensor_details()})
    return out


def _ruy_mbqm(acc, mult, shift):
    """The optimized kernels' FC requantization (BUILTIN_WITHOUT_DEFAULT_DELEGATES): rounding
    doubling high multiply, then a rounding right shift that rounds half up."""
    acc, mult, shift = (np.asarray(v, dtype=np.int64) for v in (acc, mult, shift))
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    a = (acc << left) * mult
    v = a + np.where(a >= 0, 1 << 30, 1 - (1 << 30))
    v = np.where(v >= 0, v >> 31, -((-v) >> 31))
    return np.where(right > 0, (v + (np.int64(1) << np.maximum(right - 1, 0))) >> right, v)


def _layers(sizes, acts, seed):
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(size=(u, n)) * np.sqrt(2.0 / n) * 1.5, rng.normal(size=u) * 0.5, fused, act)
        for n, u, (fused, act) in zip(sizes[:-1], sizes[1:], acts)
    ]


@pytest.mark.parametrize("kind", ["LOGISTIC", "TANH"])
def test_tflite_int8_lut_matches_interpreter_exactly(kind):
    rng = np.random.default_rng(11)
    out_scale, out_zp = tw.FIXED_DOMAINS[kind]
    everything = np.arange(-128, 128).astype(np.int8)
    for _ in range(12):
        scale, zp = float(np.float32(10 ** rng.uniform(-3, -0.3))), int(rng.integers(-128, 128))
        data = tw.build(
            [
                T("x", (1, 256), "int8", scale=[scale], zero_point=[zp]),
                T("y", (1, 256), "int8", scale=[out_scale], zero_point=[out_zp]),
            ],
            [(kind, [0], [1], {})],
            [0],
            [1],
        )
        expected = _run_all(data, [everything])[0]["y"]
        table = _tflite_int8.lut("sigmoid" if kind == "LOGISTIC" else "tanh", scale, zp, out_scale, out_zp)
        np.testing.assert_array_equal(table, expected, err_msg="%s scale %r zp %d" % (kind, scale, zp))


ACTS = [
    (1, None),
    (0, ("LOGISTIC", {})),
    (0, ("TANH", {})),
    (0, ("LEAKY_RELU", {"alpha": 0.1})),
    (0, ("LEAKY_RELU", {"alpha": 0.6})),
    (0, ("RELU", {})),  # its own domain: requantizes
    (0, None),
    (0, ("SOFTMAX", {})),
]


@pytest.fixture(scope="module")
def deep_model():
    """Float-in/out int8 model of every supported op, its import and the interpreter's tensors."""
    sizes = [6, 24, 20, 18, 16, 14, 12, 10, 5]
    layers = _layers(sizes, ACTS, seed=3)
    x = np.random.default_rng(4).normal(size=(120, 6)) * 1.5
    data = tw.int8_mlp(layers, x[:60], per_channel=True, float_io=True)
    spec = tflite_converter.convert(tflite_converter.read_graph(data), "deep")
    return data, spec, x.astype(np.float32), _run_all(data, x.astype(np.float32))


def _layer_tensors(i):
    act = ACTS[i][1]
    return "fc%d" % i, None if act is None else "%s%d" % (act[0].lower(), i)


def test_tflite_int8_import_structure(deep_model):
    _, spec, _, _ = deep_model
    assert [layer.activation for layer in spec.layers] == [
        "relu", "sigmoid", "tanh", "leaky_relu", "leaky_relu", "leaky_relu", "linear", "softmax_tflite",
    ]  # fmt: skip
    assert spec.layers[5].mult_neg == 0 and spec.layers[5].alpha == 0.0  # RELU with requantization
    assert spec.layers[1].out_scale == 1.0 / 256 and spec.layers[1].out_zp == -128


def _inputs_of(spec):
    """Name of each layer's input tensor in the interpreter's tensors."""
    return ["input_q"] + [
        "%s" % (a or f) for f, a in (_layer_tensors(i) for i in range(len(spec.layers) - 1))
    ]


def test_tflite_int8_every_tensor_exact(deep_model):
    """Given the interpreter's own input of each layer, its FULLY_CONNECTED output and its
    activation's output (softmax included) equal the interpreter's exactly."""
    _, spec, _, runs = deep_model
    inputs = _inputs_of(spec)
    for i, layer in enumerate(spec.layers):
        fc, act = _layer_tensors(i)
        xq = np.array([run[inputs[i]] for run in runs], dtype=np.int64)
        p = qreference.pre_activation(layer, qreference.accumulate(layer, xq))
        np.testing.assert_array_equal(p, [run[fc] for run in runs], err_msg="layer %d FC" % i)
        if act is not None:
            y = qreference.activate(layer, p)[0]
            np.testing.assert_array_equal(y, [run[act] for run in runs], err_msg="layer %d %s" % (i, act))


def test_tflite_int8_end_to_end(deep_model):
    """Float in, float out through every layer: host and device equal the interpreter."""
    data, spec, x, runs = deep_model
    expected = np.array([run["output"] for run in runs])
    xq = np.array([run["input_q"] for run in runs])
    np.testing.assert_array_equal(spec.quantize_input(x), xq)
    np.testing.assert_array_equal(spec.predict_int8(xq), [run["softmax7"] for run in runs])
    host = spec.predict(x)
    np.testing.assert_array_equal(host, expected)
    reloaded = nnm.loads(nnm.dumps(spec))
    np.testing.assert_array_equal(reloaded.predict(x), host)
    xq_out = spec.predict_int8(xq)
    for runtime in ("micropython", "cpython"):
        device = _device_predict(runtime, spec, x)
        assert sorted(device) == sorted(_KINDS[runtime]), runtime
        for kind, got in device.items():  # QDense.from_params per kernel set, and nanonn.load of the .nnm
            np.testing.assert_array_equal(got["int8"], xq_out, err_msg=runtime + kind)
            np.testing.assert_array_equal(
                np.asarray(got["float"], np.float32), expected, err_msg=runtime + kind
            )
        assert xq_out.shape == (len(x), 5)


_KINDS = {"micropython": ["viper", "python", "nnm"], "cpython": ["python", "nnm"]}


DEVICE_QPREDICT = """
import json, sys
from array import array
from binascii import unhexlify
import nanonn
from nanonn.int8.network import KERNELS, QDense, QNetwork
p = json.loads(sys.stdin.read())
nets = [(k, QNetwork([QDense.from_params(**params) for params in p["layers"]], kernels=k)) for k in KERNELS]
nets.append(("nnm", nanonn.load(unhexlify(p["nnm"]))))
out = {}
for kind, net in nets:
    out[kind] = {
        "float": [list(net.predict(row)) for row in p["x"]],
        "int8": [list(net.predict_int8(array("b", row))) for row in p["xq"]],
    }
print(json.dumps(out))
"""


def _device_predict(runtime, spec, x):
    payload = {
        "layers": [layer.device_params() for layer in spec.layers],
        "nnm": nnm.dumps(spec).hex(),
        "x": x.astype(np.float64).tolist(),
        "xq": spec.quantize_input(x).tolist(),
    }
    return run_device_json(runtime, DEVICE_QPREDICT, payload)


def _int8_model(tmp_path, acts=((0, None), (0, None)), mutate=None, sizes=(4, 5, 3)):
    layers = _layers(list(sizes), list(acts), seed=5)
    x = np.random.default_rng(6).normal(size=(30, sizes[0]))
    data = tw.int8_mlp(layers, x, per_channel=True, float_io=True)
    graph = tflite_converter.read_graph(data)
    if mutate:
        mutate(graph)
    return graph


def test_tflite_int8_refuses_unsupported_op(tmp_path):
    graph = _int8_model(tmp_path)
    graph.ops[1].kind = "HARD_SWISH"
    with pytest.raises(
        NanonnError,
        match=re.escape(
            "tflite op '#1 fc0' (HARD_SWISH): unsupported in an int8 model; supported: FULLY_CONNECTED"
        ),
    ):
        tflite_converter.convert(graph, "m")


def test_tflite_int8_refuses_unsupported_activation(tmp_path):
    graph = _int8_model(tmp_path, acts=((0, None), (0, ("SOFTMAX", {}))), sizes=(4, 5, 3))
    graph.tensors[graph.ops[-2].outputs[0]].scale = np.array([1.0 / 128])
    with pytest.raises(
        NanonnError,
        match=re.escape(
            "(SOFTMAX) output quantization: expected TFLite's scale 0.00390625, zero point -128, got 0.0078125, -128"
        ),
    ):
        tflite_converter.convert(graph, "m")
    graph = _int8_model(tmp_path, acts=((3, None), (0, None)))
    with pytest.raises(NanonnError, match=re.escape("(FULLY_CONNECTED): unsupported fused activation RELU6")):
        tflite_converter.convert(graph, "m")


def test_tflite_int8_refuses_shape_mismatch(tmp_path):
    def shrink(graph):
        w = graph.tensors[graph.ops[2].inputs[1]]
        w.data = w.data[:, :4].copy()
        w.shape = w.data.shape

    graph = _int8_model(tmp_path, mutate=shrink)
    with pytest.raises(
        NanonnError,
        match=re.escape(
            "tflite op '#2 fc1' (FULLY_CONNECTED) inputs: expected 5 (the previous layer's output size), got 4"
        ),
    ):
        tflite_converter.convert(graph, "m")


def test_tflite_int8_refuses_bad_quantization(tmp_path):
    def nan_scale(graph):
        graph.tensors[graph.ops[1].inputs[1]].scale = np.array([np.nan] * 5)

    with pytest.raises(
        NanonnError,
        match=re.escape(
            "tflite op '#1 fc0' (FULLY_CONNECTED) weights 'w0' scales: expected finite values > 0"
        ),
    ):
        tflite_converter.convert(_int8_model(tmp_path, mutate=nan_scale), "m")

    def asymmetric(graph):
        graph.tensors[graph.ops[1].inputs[1]].zero_point = np.array([3] * 5)

    with pytest.raises(
        NanonnError,
        match=re.escape(
            "weights 'w0': expected symmetric per-output-unit quantization (zero point 0, dimension 0), got zero points [3]"
        ),
    ):
        tflite_converter.convert(_int8_model(tmp_path, mutate=asymmetric), "m")


@pytest.mark.parametrize("per_channel", [False, True])
def test_tflite_int8_fc_near_ties_exact(per_channel):
    """FULLY_CONNECTED where acc * real hits or nearly hits a half-integer (scale ratios like
    1/12): the reference kernels compute round(double(acc) * real) half away from zero, and
    so does nanonn (a rounding of the 31-bit TFLite multiplier differs on some of them)."""
    n = 256
    w = np.eye(n, dtype=np.int8)
    x = np.arange(-128, 128)[None]
    triples = [
        (0.5, 0.5, 1.0),
        (0.5, 0.5, 3.0),
        (0.5, 0.5, 6.0),
        (0.25, 0.5, 5.0),
        (0.1, 0.5, 0.3),
        (0.2, 0.5, 0.6),
    ]
    for bias in (0, 1, -1):
        for s_in, s_w, s_out in triples:
            k = n if per_channel else 1
            data = tw.build(
                [
                    T("x", (1, n), "int8", scale=[s_in], zero_point=[0]),
                    T("w", (n, n), "int8", data=w, scale=[s_w] * k, zero_point=[0] * k),
                    T(
                        "b",
                        (n,),
                        "int32",
                        data=np.full(n, bias, np.int32),
                        scale=[s_in * s_w] * k,
                        zero_point=[0] * k,
                    ),
                    T("y", (1, n), "int8", scale=[s_out], zero_point=[0]),
                ],
                [("FULLY_CONNECTED", [0, 1, 2], [3], {})],
                [0],
                [3],
            )
            spec = tflite_converter.convert(tflite_converter.read_graph(data), "ties")
            assert isinstance(spec, QuantModelSpec)
            want = _run_all(data, x)[0]["y"]
            np.testing.assert_array_equal(
                spec.predict_int8(x)[0], want, err_msg=str((s_in, s_w, s_out, bias))
            )


def _xnnpack_fc(acc, layer):
    """The XNNPACK delegate's FC requantization: float32 acc times the float32 scale
    f32(f32(in * w) / out), rounded to nearest even."""
    scale = (np.float32(layer.in_scale) * layer.w_scale).astype(np.float32) / np.float32(layer.pre_scale)
    return np.rint((acc.astype(np.float32) * scale.astype(np.float32)).astype(np.float32)).astype(np.int64)


@pytest.mark.parametrize(
    "resolver, rounding",
    [
        ("BUILTIN_WITHOUT_DEFAULT_DELEGATES", lambda acc, layer: _ruy_mbqm(acc, layer.mult, layer.shift)),
        ("BUILTIN", _xnnpack_fc),
    ],
    ids=["optimized-kernels", "xnnpack"],
)
def test_tflite_int8_other_configurations(deep_model, resolver, rounding):
    """What the other interpreter configurations compute (docs/converters.md): with their FC
    rounding model in place of nanonn's, every FC output of the imported network equals
    theirs, and nanonn's differs from theirs by at most one step (at ties). The optimized
    kernels differ from BUILTIN_REF in FC outputs here; XNNPACK in LEAKY_RELU outputs."""
    data, spec, x, _ = deep_model
    runs = _run_all(data, x, resolver)
    inputs = _inputs_of(spec)
    fc_diff = leaky_diff = 0
    for i, layer in enumerate(spec.layers):
        fc, act = _layer_tensors(i)
        lo = max(-128, layer.out_zp) if layer.activation == "relu" else -128
        xq = np.array([run[inputs[i]] for run in runs], dtype=np.int64)
        acc = qreference.accumulate(layer, xq)
        theirs = np.clip(rounding(acc, layer) + layer.pre_zp, lo, 127)
        want = np.array([run[fc] for run in runs])
        np.testing.assert_array_equal(theirs, want, err_msg="layer %d: %s rounding model" % (i, resolver))
        ours = qreference.pre_activation(layer, acc)
        assert np.abs(ours - want).max() <= 1
        fc_diff += int(np.count_nonzero(ours != want))
        if layer.activation == "leaky_relu":
            y = qreference.activate(layer, want.astype(np.int64))[0]
            leaky_diff += int(np.count_nonzero(y != np.array([run[act] for run in runs])))
    if resolver == "BUILTIN":
        assert leaky_diff > 0
    else:
        assert fc_diff > 0 and leaky_diff == 0


def test_tflite_int8_softmax_matches_interpreter_on_every_configuration():
    """SOFTMAX alone, many input scales and betas, logits with ties: nanonn's
    softmax_tflite (host oracle here, kernels in test_softmax_tflite_kernels_equal_oracle)
    equals every interpreter configuration's output exactly."""
    rng = np.random.default_rng(12)
    for trial in range(24):
        n = int(rng.integers(1, 40))
        scale, zp = float(np.float32(10 ** rng.uniform(-3.5, 0.7))), int(rng.integers(-128, 128))
        beta = float(np.float32((1.0, 0.5, 2.7)[trial % 3]))
        data = tw.build(
            [
                T("x", (1, n), "int8", scale=[scale], zero_point=[zp]),
                T("y", (1, n), "int8", scale=[1.0 / 256], zero_point=[-128]),
            ],
            [("SOFTMAX", [0], [1], {"beta": beta})],
            [0],
            [1],
        )
        q = rng.integers(-128, 128, (40, n))
        q[:20] = np.clip(q[:20] // 16 * 16, -128, 127)  # many equal logits
        table = _tflite_int8.softmax_table(scale, beta)
        want = qreference.tflite_softmax(table, q)
        for resolver in (REF, "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "BUILTIN"):
            got = np.array([r["y"] for r in _run_all(data, q, resolver)])
            np.testing.assert_array_equal(want, got, err_msg="%s scale %r beta %r" % (resolver, scale, beta))


SOFTMAX_KERNELS = """
import json, sys
from nanonn.int8.network import KERNELS, kernel_set
p = json.loads(sys.stdin.read())
out = {}
for name in KERNELS:
    k = kernel_set(name)
    res = []
    for table, rows in p:
        from array import array
        t = array("i", table)
        for row in rows:
            y = bytearray([v + 128 for v in row])
            k.softmax_tfl(y, t, len(row))
            res.append([v - 128 for v in y])
    out[name] = res
print(json.dumps(out))
"""


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_softmax_tflite_kernels_equal_oracle(runtime):
    """The integer emulation of TFLite's float softmax (viper and plain Python) equals the
    numpy float32 oracle, over tables from tiny to huge scales (subnormal and zero entries)."""
    rng = np.random.default_rng(13)
    cases, want = [], []
    for scale in (1e-4, 3e-3, 0.02, 0.0625, 0.1, 0.37, 1.0, 2.5, 9.0, 40.0, 300.0):
        table = _tflite_int8.softmax_table(float(np.float32(scale)), 1.0)
        n = int(rng.integers(1, 70))
        rows = rng.integers(-128, 128, (30, n))
        rows[:10] = np.clip(rows[:10] // 8 * 8, -128, 127)
        rows[10] = 5  # all equal
        cases.append((table.tolist(), rows.tolist()))
        want.extend(qreference.tflite_softmax(table, rows).tolist())
    got = run_device_json(runtime, SOFTMAX_KERNELS, cases)
    assert sorted(got) == (["python", "viper"] if runtime == "micropython" else ["python"])
    for name, res in got.items():
        assert res == want, name
