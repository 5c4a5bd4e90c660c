"""TFLite converter, int8 models: imported layers against the TFLite
interpreter (ai-edge-litert, builtin kernels without delegates), on the host
(nanonn_tools.qreference via QuantModelSpec) and on the MicroPython unix port
(nanonn.quant.QNetwork).

What is exact and what is not (measured, see the tests):
- LOGISTIC and TANH tables, LEAKY_RELU, RELU (fused or requantizing): exact.
- FULLY_CONNECTED requantization: nanonn implements gemmlowp's double rounding
  (docs/quantization.md); ai-edge-litert's optimized kernel rounds the final
  shift half up instead (its reference kernels use single rounding), so about
  0.3 % of outputs differ by one step (at rounding ties). `_ruy_mbqm` and
  `_single_rounding` reproduce the interpreter's kernels and show that ties are
  the only difference.
- SOFTMAX: nanonn's integer softmax is within one step of TFLite's float one.
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
from support import run_device_json

T = tw.T


def _interpreter(data: bytes, resolver: str = "BUILTIN_WITHOUT_DEFAULT_DELEGATES"):
    it = litert.Interpreter(
        model_content=data,
        experimental_op_resolver_type=getattr(litert.OpResolverType, resolver),
        experimental_preserve_all_tensors=True,
    )
    it.allocate_tensors()
    return it


def _run_all(data: bytes, rows, resolver: str = "BUILTIN_WITHOUT_DEFAULT_DELEGATES") -> list[dict]:
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
    """The interpreter's FC requantization: rounding doubling high multiply, then a
    rounding right shift that rounds half up (not away from zero)."""
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
        "relu", "sigmoid", "tanh", "leaky_relu", "leaky_relu", "leaky_relu", "linear", "softmax",
    ]  # fmt: skip
    assert spec.layers[5].mult_neg == 0 and spec.layers[5].alpha == 0.0  # RELU with requantization
    assert spec.layers[1].out_scale == 1.0 / 256 and spec.layers[1].out_zp == -128


def test_tflite_int8_activations_exact(deep_model):
    """Given the interpreter's own pre-activation tensor, every activation matches exactly
    (softmax: within one step)."""
    _, spec, _, runs = deep_model
    softmax_diffs = []
    for i, layer in enumerate(spec.layers):
        fc, act = _layer_tensors(i)
        if act is None:
            continue
        for run in runs:
            y = qreference.activate(layer, run[fc].astype(np.int64)[None])[0][0]
            if layer.activation == "softmax":
                softmax_diffs.append(np.abs(y - run[act]).max())
            else:
                np.testing.assert_array_equal(y, run[act], err_msg="layer %d (%s)" % (i, layer.activation))
    assert max(softmax_diffs) <= 1


def test_tflite_int8_fully_connected_within_one_step(deep_model):
    """Given the interpreter's own input, each FC's requantized output is within one step;
    the interpreter's rounding (`_ruy_mbqm`) reproduces it exactly, so the only
    difference is the rounding of ties."""
    _, spec, _, runs = deep_model
    inputs = ["input_q"] + [
        "%s" % (a or f) for f, a in (_layer_tensors(i) for i in range(len(spec.layers) - 1))
    ]
    differing = total = 0
    for i, layer in enumerate(spec.layers):
        fc, _ = _layer_tensors(i)
        lo = max(-128, layer.out_zp) if layer.activation == "relu" else -128
        for run in runs:
            acc = qreference.accumulate(layer, run[inputs[i]].astype(np.int64)[None])[0]
            ours = qreference.pre_activation(layer, acc[None])[0]
            theirs = np.clip(_ruy_mbqm(acc, layer.mult, layer.shift) + layer.pre_zp, lo, 127)
            np.testing.assert_array_equal(theirs, run[fc], err_msg="layer %d: interpreter rounding model" % i)
            assert np.abs(ours - run[fc]).max() <= 1, "layer %d" % i
            differing += int(np.count_nonzero(ours != run[fc]))
            total += ours.size
    assert differing < 0.02 * total, "%d of %d FC outputs differ" % (differing, total)


def test_tflite_int8_end_to_end(deep_model):
    """Float in, float out through every layer: host and unix port against the interpreter."""
    data, spec, x, runs = deep_model
    expected = np.array([run["output"] for run in runs])
    host = spec.predict(x)
    step = 1.0 / 256
    diff = np.abs(host - expected).max(axis=1) / step
    # one-step differences can grow through later layers; most rows agree to within a step
    assert np.mean(diff <= 1.0) >= 0.9, "rows within one step: %.3f" % np.mean(diff <= 1.0)
    assert np.mean(np.argmax(host, axis=1) == np.argmax(expected, axis=1)) >= 0.95
    reloaded = nnm.loads(nnm.dumps(spec))
    np.testing.assert_array_equal(reloaded.predict(x), host)
    device = _device_predict(spec, x)
    for kind in ("params", "nnm"):  # QDense.from_params, and nanonn.load of the .nnm bytes
        np.testing.assert_array_equal(device[kind + "_int8"], spec.predict_int8(spec.quantize_input(x)))
        np.testing.assert_allclose(device[kind + "_float"], host, rtol=0, atol=1e-6)


DEVICE_QPREDICT = """
import json, sys
from array import array
from binascii import unhexlify
import nanonn
from nanonn.quant import QDense, QNetwork
p = json.loads(sys.stdin.read())
out = {}
for kind, net in (
    ("params", QNetwork([QDense.from_params(**params) for params in p["layers"]])),
    ("nnm", nanonn.load(unhexlify(p["nnm"]))),
):
    out[kind + "_float"] = [list(net.predict(row)) for row in p["x"]]
    out[kind + "_int8"] = [list(net.predict_int8(array("b", row))) for row in p["xq"]]
print(json.dumps(out))
"""


def _device_predict(spec, x):
    payload = {
        "layers": [layer.device_params() for layer in spec.layers],
        "nnm": nnm.dumps(spec).hex(),
        "x": x.astype(np.float64).tolist(),
        "xq": spec.quantize_input(x).tolist(),
    }
    result = run_device_json("micropython", DEVICE_QPREDICT, payload)
    return {k: np.asarray(v) for k, v in result.items()}


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


def _single_rounding(acc, mult, shift):
    """The reference kernels' requantization (TFLITE_SINGLE_ROUNDING): (acc * m + 2^(k-1)) >> k, k = 31 - shift."""
    k = 31 - np.asarray(shift, dtype=np.int64)
    return (
        np.asarray(acc, dtype=np.int64) * np.asarray(mult, dtype=np.int64) + (np.int64(1) << (k - 1))
    ) >> k


@pytest.mark.parametrize(
    "resolver, rounding",
    [("BUILTIN_WITHOUT_DEFAULT_DELEGATES", _ruy_mbqm), ("BUILTIN_REF", _single_rounding)],
    ids=["optimized-kernels", "reference-kernels"],
)
def test_tflite_int8_import_is_exact_under_interpreter_rounding(deep_model, monkeypatch, resolver, rounding):
    """Every imported parameter is exact: with the kernels' own FC rounding in place of
    nanonn's, the int8 outputs of the whole network (softmax included) equal the
    interpreter's, for its optimized and for its reference kernels."""
    data, spec, x, _ = deep_model
    runs = _run_all(data, x, resolver)

    def pre_activation(layer, acc):
        lo = max(-128, layer.out_zp) if layer.activation == "relu" else -128
        return np.clip(rounding(acc, layer.mult, layer.shift) + layer.pre_zp, lo, 127)

    monkeypatch.setattr(qreference, "pre_activation", pre_activation)
    xq = np.array([run["input_q"] for run in runs])
    expected = np.array([run["softmax7"] for run in runs])
    np.testing.assert_array_equal(spec.predict_int8(xq), expected)
