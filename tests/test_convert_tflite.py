"""TFLite converter, float models: parity with the TFLite interpreter
(ai-edge-litert) on flatbuffers written by tests/tflite_writer.py, and the
refused cases."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import tflite_writer as tw
from ai_edge_litert import interpreter as litert
from convert_support import activations, check_parity

from nanonn_tools import NanonnError, install_hint
from nanonn_tools.converters import tflite as tflite_converter
from nanonn_tools.model import ModelSpec


def interpret(data: bytes, x: np.ndarray) -> np.ndarray:
    """Run the model row by row in the TFLite interpreter (builtin kernels, no delegate)."""
    it = litert.Interpreter(
        model_content=data,
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    rows = []
    for row in x:
        it.set_tensor(inp["index"], np.asarray(row, dtype=inp["dtype"]).reshape(inp["shape"]))
        it.invoke()
        rows.append(it.get_tensor(out["index"]).reshape(-1).copy())
    return np.asarray(rows)


def _layers(sizes, acts, seed=0):
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(size=(u, n)) * np.sqrt(2.0 / n), rng.normal(size=u) * 0.3, fused, act)
        for n, u, (fused, act) in zip(sizes[:-1], sizes[1:], acts)
    ]


FLOAT_ACTS = [
    (1, None),  # fused RELU
    (0, ("LOGISTIC", {})),
    (0, ("TANH", {})),
    (0, ("LEAKY_RELU", {"alpha": 0.3})),
    (0, ("RELU", {})),
    (0, None),
    (0, ("SOFTMAX", {"beta": 1.0})),
]


def test_tflite_float_parity(tmp_path):
    data = tw.float_mlp(_layers([4, 12, 10, 8, 7, 6, 5, 3], FLOAT_ACTS), 4)
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    spec = tflite_converter.load(str(path))
    assert isinstance(spec, ModelSpec)
    assert activations(spec) == ["relu", "sigmoid", "tanh", "leaky_relu", "relu", "linear", "softmax"]
    assert spec.layers[3].alpha == pytest.approx(0.3)
    x = np.random.default_rng(1).normal(size=(20, 4)).astype(np.float32)
    check_parity(spec, x, interpret(data, x))


def test_tflite_float_reshape_input(tmp_path):
    (w, b, _, _), (w2, b2, _, _) = _layers([4, 5, 2], [(0, None), (0, None)], seed=2)
    T = tw.T
    tensors = [
        T("x", (1, 2, 2)),
        T("shape", (2,), "int32", np.array([1, 4], np.int32)),
        T("flat", (1, 4)),
        T("w", w.shape, data=w.astype(np.float32)),
        T("b", b.shape, data=b.astype(np.float32)),
        T("h", (1, 5)),
        T("w2", w2.shape, data=w2.astype(np.float32)),
        T("y", (1, 2)),
    ]
    ops = [
        ("RESHAPE", [0, 1], [2], {"new_shape": [1, 4]}),
        ("FULLY_CONNECTED", [2, 3, 4], [5], {"fused": 1}),
        ("FULLY_CONNECTED", [5, 6, -1], [7], {"fused": 0}),
    ]
    data = tw.build(tensors, ops, [0], [7])
    path = tmp_path / "r.tflite"
    path.write_bytes(data)
    spec = tflite_converter.load(str(path))
    assert isinstance(spec, ModelSpec)
    assert spec.inputs == 4 and spec.layers[1].b is None
    x = np.random.default_rng(3).normal(size=(10, 4)).astype(np.float32)
    check_parity(spec, x, interpret(data, x.reshape(10, 2, 2)))


def _load(tmp_path, data):
    path = tmp_path / "bad.tflite"
    path.write_bytes(data)
    return tflite_converter.load(str(path))


def test_tflite_refuses_unsupported_op(tmp_path):
    data = tw.float_mlp(_layers([4, 5, 3], [(0, ("ABS", {})), (0, None)]), 4)
    with pytest.raises(
        NanonnError, match=re.escape("tflite op '#1 abs0' (ABS): unsupported; supported: FULLY_CONNECTED")
    ):
        _load(tmp_path, data)


@pytest.mark.parametrize(
    "acts, message",
    [
        (
            [(3, None), (0, None)],
            "tflite op '#0 fc0' (FULLY_CONNECTED): unsupported fused activation RELU6 (only NONE or RELU)",
        ),
        (
            [(0, ("RELU6", {})), (0, None)],
            "tflite op '#1 relu60' (RELU6): unsupported; supported: FULLY_CONNECTED",
        ),
        (
            [(0, None), (0, ("SOFTMAX", {"beta": 2.0}))],
            "tflite op '#2 softmax1' (SOFTMAX): unsupported beta 2.0 (only 1)",
        ),
    ],
)
def test_tflite_refuses_unsupported_activation(tmp_path, acts, message):
    with pytest.raises(NanonnError, match=re.escape(message)):
        _load(tmp_path, tw.float_mlp(_layers([4, 5, 3], acts), 4))


def test_tflite_refuses_shape_mismatch(tmp_path):
    layers = _layers([4, 5, 3], [(0, None), (0, None)])
    w, b, f, a = layers[1]
    layers[1] = (np.ones((3, 6)), b, f, a)
    with pytest.raises(
        NanonnError,
        match=re.escape(
            "tflite op '#1 fc1' (FULLY_CONNECTED) inputs: expected 5 (the previous layer's output size), got 6"
        ),
    ):
        _load(tmp_path, tw.float_mlp(layers, 4))


def test_tflite_refuses_non_finite_weights(tmp_path):
    layers = _layers([4, 5, 3], [(0, None), (0, None)])
    layers[0][1][3] = -np.inf
    with pytest.raises(
        NanonnError,
        match=re.escape(
            "tflite op '#0 fc0' (FULLY_CONNECTED) bias: expected finite values, got 1 NaN or infinite"
        ),
    ):
        _load(tmp_path, tw.float_mlp(layers, 4))


def test_tflite_refuses_branches(tmp_path):
    (w, b, _, _), (w2, b2, _, _) = _layers([4, 3, 3], [(0, None), (0, None)])
    T = tw.T
    tensors = [
        T("x", (1, 4)),
        T("w", w.shape, data=w.astype(np.float32)),
        T("b", b.shape, data=b.astype(np.float32)),
        T("h", (1, 3)),
        T("h2", (1, 3)),
        T("y", (1, 3)),
    ]
    ops = [
        ("FULLY_CONNECTED", [0, 1, 2], [3], {}),
        ("FULLY_CONNECTED", [0, 1, 2], [4], {}),
        ("ADD", [3, 4], [5], {}),
    ]
    with pytest.raises(
        NanonnError,
        match=re.escape(
            "tflite op '#1 h2' (FULLY_CONNECTED) inputs: expected the previous output (tensor 3)"
        ),
    ):
        _load(tmp_path, tw.build(tensors, ops, [0], [5]))


def test_tflite_refuses_non_tflite_file(tmp_path):
    with pytest.raises(NanonnError, match=re.escape("file identifier: expected b'TFL3', got b'abcd'")):
        _load(tmp_path, b"1234abcd" + bytes(40))


def test_tflite_missing_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tflite", None)
    with pytest.raises(NanonnError, match=re.escape(install_hint("tflite"))):
        _load(tmp_path, tw.float_mlp(_layers([4, 3], [(0, None)]), 4))


def test_tflite_float16_weights(tmp_path):
    """TFLite's float16 quantization: float16 constants, each behind a DEQUANTIZE op."""
    (w, b, _, _), (w2, b2, _, _) = _layers([4, 6, 3], [(0, None), (0, None)], seed=4)
    h = [np.asarray(a, np.float16) for a in (w, b, w2, b2)]
    T = tw.T
    tensors = [T("x", (1, 4))]
    for i, a in enumerate(h):
        tensors.append(T("h%d" % i, a.shape, "float16", a))
        tensors.append(T("f%d" % i, a.shape))
    tensors += [T("z", (1, 6)), T("y", (1, 3))]
    ops = [("DEQUANTIZE", [1 + 2 * i], [2 + 2 * i], {}) for i in range(4)]
    ops += [("FULLY_CONNECTED", [0, 2, 4], [9], {"fused": 1}), ("FULLY_CONNECTED", [9, 6, 8], [10], {})]
    data = tw.build(tensors, ops, [0], [10])
    path = tmp_path / "f16.tflite"
    path.write_bytes(data)
    spec = tflite_converter.load(str(path))
    assert isinstance(spec, ModelSpec)
    np.testing.assert_array_equal(spec.layers[0].w, h[0].astype(np.float32))
    x = np.random.default_rng(5).normal(size=(10, 4)).astype(np.float32)
    check_parity(spec, x, interpret(data, x))
