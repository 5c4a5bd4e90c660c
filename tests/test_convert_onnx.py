"""ONNX converter: parity with onnxruntime for a model exported from torch
and for hand-built graphs of every supported op, and the refused cases."""

from __future__ import annotations

import re
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from convert_support import activations, check_parity
from onnx import TensorProto, helper, numpy_helper

from nanonn_tools import NanonnError, install_hint
from nanonn_tools.converters import onnx as onnx_converter


def _run(path_or_model, x):
    model = path_or_model if isinstance(path_or_model, (str, bytes)) else path_or_model.SerializeToString()
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    out = session.run(None, {name: np.asarray(x, dtype=np.float32)})[0]
    assert isinstance(out, np.ndarray), type(out)
    return out


def _x(n=20, inputs=4, seed=3):
    return np.random.default_rng(seed).normal(size=(n, inputs)).astype(np.float32)


def test_onnx_parity_torch_export(tmp_path):
    import torch

    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(4, 10),
        nn.LeakyReLU(0.1),
        nn.Dropout(0.2),
        nn.Linear(10, 8),
        nn.Softplus(),
        nn.Linear(8, 6),
        nn.Sigmoid(),
        nn.Linear(6, 5),
        nn.Tanh(),
        nn.Linear(5, 4),
        nn.ReLU(),
        nn.Linear(4, 3),
        nn.Softmax(dim=1),
    )
    x = torch.from_numpy(_x(64, seed=1))
    y = (x[:, 0] * x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(20):
        opt.zero_grad()
        nn.functional.nll_loss(torch.log(model(x) + 1e-9), y).backward()
        opt.step()
    model.eval()
    path = str(tmp_path / "m.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated but needs no extra package
        torch.onnx.export(
            model, (x[:1],), path, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}}
        )
    spec = onnx_converter.load(path)
    assert activations(spec) == ["leaky_relu", "softplus", "sigmoid", "tanh", "relu", "softmax"]
    xt = _x()
    check_parity(spec, xt, _run(path, xt))


def _graph(nodes, inits, inputs=4, outputs=3, opset=13, in_shape=None, out_name="y"):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape or ["n", inputs])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["n", outputs])],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _hand_built():
    rng = np.random.default_rng(4)
    inits = {
        "w1": rng.normal(size=(4, 7)),  # MatMul B: (inputs, units)
        "b1": rng.normal(size=(7,)),
        "w2": rng.normal(size=(7, 6)) * 0.5,  # Gemm transB=0
        "c2": rng.normal(size=(1, 6)),
        "w3": rng.normal(size=(5, 6)),  # Gemm transB=1
        "c3": rng.normal(size=(5,)),
        "w4": rng.normal(size=(3, 5)),
    }
    ratio = helper.make_tensor("r", TensorProto.FLOAT, [], [0.25])
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "w1"], ["m1"]),
        helper.make_node("Add", ["b1", "m1"], ["a1"]),
        helper.make_node("LeakyRelu", ["a1"], ["h1"], alpha=0.2),
        helper.make_node("Constant", [], ["ratio"], value=ratio),
        helper.make_node("Dropout", ["h1", "ratio"], ["d1"]),
        helper.make_node("Gemm", ["d1", "w2", "c2"], ["g2"], alpha=0.7, beta=1.5),
        helper.make_node("Softplus", ["g2"], ["h2"]),
        helper.make_node("Identity", ["h2"], ["i2"]),
        helper.make_node("Gemm", ["i2", "w3", "c3"], ["g3"], transB=1),
        helper.make_node("Tanh", ["g3"], ["h3"]),
        helper.make_node("Gemm", ["h3", "w4"], ["g4"], transB=1),
        helper.make_node("Softmax", ["g4"], ["y"]),
    ]
    return _graph(nodes, inits)


def test_onnx_parity_hand_built_ops(tmp_path):
    model = _hand_built()
    onnx.checker.check_model(model)
    path = str(tmp_path / "h.onnx")
    onnx.save(model, path)
    spec = onnx_converter.load(path)
    assert activations(spec) == ["leaky_relu", "dropout", "softplus", "tanh", "softmax"]
    assert spec.layers[1].rate == pytest.approx(0.25) and spec.layers[4].b is None
    x = _x()
    check_parity(spec, x, _run(path, x))


def _simple(nodes_after=(), w2=None, extra=None, **kw):
    rng = np.random.default_rng(5)
    inits = {
        "w1": rng.normal(size=(5, 4)),
        "b1": rng.normal(size=5),
        "w2": rng.normal(size=(3, 5)) if w2 is None else w2,
    }
    inits.update(extra or {})
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1, name="fc1"),
        *nodes_after,
        helper.make_node(
            "Gemm", [nodes_after[-1].output[0] if nodes_after else "h", "w2"], ["y"], transB=1, name="fc2"
        ),
    ]
    return _graph(nodes, inits, **kw)


def test_onnx_refuses_unsupported_op():
    model = _simple([helper.make_node("Mul", ["h", "s"], ["sq"], name="scale")], extra={"s": np.full(5, 2.0)})
    with pytest.raises(
        NanonnError,
        match=re.escape("onnx node 'scale' (Mul): unsupported; supported: Gemm, MatMul (+ Add bias), Relu"),
    ):
        onnx_converter.from_model(model)


@pytest.mark.parametrize(
    "node, message",
    [
        (
            helper.make_node("Elu", ["h"], ["e"], name="elu"),
            r"onnx node 'elu' \(Elu\): unsupported; supported: Gemm",
        ),
        (
            helper.make_node("Softmax", ["h"], ["e"], name="sm", axis=0),
            r"onnx node 'sm' \(Softmax\): unsupported axis 0",
        ),
    ],
)
def test_onnx_refuses_unsupported_activation(node, message):
    with pytest.raises(NanonnError, match=message):
        onnx_converter.from_model(_simple([node]))


def test_onnx_refuses_shape_mismatch():
    model = _simple(w2=np.ones((3, 6)))
    with pytest.raises(
        NanonnError,
        match=re.escape(
            "onnx node 'fc2' (Gemm) inputs: expected 5 (the previous layer's output size), got 6"
        ),
    ):
        onnx_converter.from_model(model)
    with pytest.raises(
        NanonnError,
        match=re.escape(
            "onnx node 'fc1' (Gemm) inputs: expected 6 (the previous layer's output size), got 4"
        ),
    ):
        onnx_converter.from_model(_simple(in_shape=["n", 6]))
    with pytest.raises(
        NanonnError,
        match=re.escape(
            "onnx node 'fc1' (Gemm) input shape: expected a vector per sample, got [None, 2, 2]; add a Flatten first"
        ),
    ):
        onnx_converter.from_model(_simple(in_shape=["n", 2, 2]))


def test_onnx_refuses_non_finite_weights():
    w2 = np.ones((3, 5))
    w2[0, 0] = np.nan
    w2[2, 1] = np.inf
    with pytest.raises(
        NanonnError,
        match=re.escape("onnx node 'fc2' (Gemm) weights: expected finite values, got 2 NaN or infinite"),
    ):
        onnx_converter.from_model(_simple(w2=w2))


def test_onnx_refuses_branches():
    model = _simple([helper.make_node("Add", ["h", "x"], ["skip"], name="residual")])
    with pytest.raises(
        NanonnError,
        match=re.escape("onnx node 'residual' (Add) inputs: expected the previous output 'h' plus constants"),
    ):
        onnx_converter.from_model(model)


def test_onnx_missing_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(NanonnError, match=re.escape(install_hint("onnx"))):
        onnx_converter.load(str(tmp_path / "m.onnx"))


def test_onnx_flatten_of_a_matrix_input(tmp_path):
    rng = np.random.default_rng(6)
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"]),
        helper.make_node("Gemm", ["f", "w", "b"], ["g"], transB=1),
        helper.make_node("Sigmoid", ["g"], ["y"]),
    ]
    model = _graph(nodes, {"w": rng.normal(size=(3, 6)), "b": rng.normal(size=3)}, in_shape=["n", 2, 3])
    spec = onnx_converter.from_model(model)
    assert spec.inputs == 6
    x = _x(inputs=6).reshape(20, 2, 3)
    check_parity(spec, x.reshape(20, 6), _run(model, x))
