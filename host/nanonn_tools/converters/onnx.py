"""ONNX models to a ModelSpec (extra `onnx`; parity is tested with onnxruntime).

The graph must be a chain: one input, one output, each node fed by the one
before plus constants (initializers or Constant nodes). Supported ops: Gemm
(alpha, beta, transB; not transA), MatMul followed by an optional Add of a
bias, Relu, LeakyRelu, Sigmoid, Tanh, Softplus, Softmax (last axis),
Flatten (axis 1, first, or of a vector), Dropout (inference) and Identity.
"""

from __future__ import annotations

import numpy as np

from .. import NanonnError
from ._chain import Chain, check_file, check_options, require

SUPPORTED = (
    "Gemm, MatMul (+ Add bias), Relu, LeakyRelu, Sigmoid, Tanh, Softplus, Softmax (last axis), "
    "Flatten, Dropout, Identity"
)
_SIMPLE = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softplus": "softplus"}


def load(path: str, **options):
    """Read an `.onnx` file; returns a validated ModelSpec."""
    check_options("onnx", options)
    onnx = require("onnx", "onnx", "reading ONNX files")
    check_file(path)
    try:
        model = onnx.load(path)
    except Exception as exc:  # onnx raises DecodeError, OSError, ... for a bad file
        raise NanonnError(
            "%s: not a readable ONNX model (%s: %s)" % (path, type(exc).__name__, exc)
        ) from None
    return from_model(model, path)


def from_model(model, source: str = "onnx model"):
    """Convert an in-memory `onnx.ModelProto`."""
    onnx = require("onnx", "onnx", "reading ONNX models")
    from onnx import numpy_helper

    graph = model.graph
    opset = max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] or [1])
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in consts]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise NanonnError(
            "%s: expected 1 graph input and 1 output, got %d inputs (%s) and %d outputs"
            % (source, len(inputs), [v.name for v in inputs], len(graph.output))
        )
    chain = Chain(source, "onnx node", SUPPORTED)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    shape = dims[1:]  # without the batch axis
    if len(shape) == 1 and shape[0]:
        chain.width = int(shape[0])
    current = inputs[0].name
    previous_op = None
    for index, node in enumerate(graph.node):
        name = node.name or "#%d" % index
        kind = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise chain.unsupported(name, "%s.%s" % (node.domain, kind), "custom domain")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if kind == "Constant":
            if "value" not in attrs:
                raise chain.unsupported(name, kind, "attributes %s (only value)" % sorted(attrs))
            consts[node.output[0]] = numpy_helper.to_array(attrs["value"])
            continue
        data = [x for x in node.input if x and x not in consts]
        if data != [current]:
            raise NanonnError(
                "%s inputs: expected the previous output %r plus constants, got %s; "
                "nanonn converts chains of single-input ops (supported: %s)"
                % (chain.where(name, kind), current, list(node.input), SUPPORTED)
            )
        if kind != "Flatten" and len(shape) > 1:
            raise NanonnError(
                "%s input shape: expected a vector per sample, got %s; add a Flatten first"
                % (chain.where(name, kind), [None] + shape)
            )
        if kind == "Gemm":
            _gemm(chain, name, kind, node, attrs, consts)
        elif kind == "MatMul":
            b = _const(chain, name, kind, node.input[1], consts, "B")
            if node.input[0] != current or b.ndim != 2:
                raise chain.unsupported(
                    name, kind, "operands: expected (input, 2-D constant B), got %s" % list(node.input)
                )
            chain.dense(name, kind, b.T)
        elif kind == "Add":
            other = [x for x in node.input if x != current]
            dense = chain.layers[-1] if chain.layers else None
            if previous_op != "MatMul" or len(other) != 1 or dense is None or dense.b is not None:
                raise chain.unsupported(name, kind, "except as the bias right after a MatMul")
            bias = _const(chain, name, kind, other[0], consts, "bias")
            if bias.size != dense.units or bias.ndim > 2 or (bias.ndim == 2 and bias.shape[0] != 1):
                raise NanonnError(
                    "%s bias: expected shape (%d,) or (1, %d), got %s"
                    % (chain.where(name, kind), dense.units, dense.units, bias.shape)
                )
            chain.layers.pop()
            chain.width = dense.inputs
            chain.dense(name, "MatMul+Add", dense.w, bias.reshape(-1))
        elif kind in _SIMPLE:
            chain.activation(name, kind, _SIMPLE[kind])
        elif kind == "LeakyRelu":
            chain.activation(name, kind, "leaky_relu", float(attrs.get("alpha", 0.01)))
        elif kind == "Softmax":
            axis = attrs.get("axis", -1 if opset >= 13 else 1)
            if axis not in (-1, 1):
                raise chain.unsupported(name, kind, "axis %r (only the last axis, -1 or 1)" % axis)
            chain.activation(name, kind, "softmax")
        elif kind == "Flatten":
            if attrs.get("axis", 1) != 1:
                raise chain.unsupported(name, kind, "axis %r (only 1)" % attrs.get("axis"))
            if len(shape) > 1:
                if chain.layers or None in shape or 0 in shape:
                    raise chain.unsupported(name, kind, "of shape %s (only first, of a fixed shape)" % shape)
                chain.width = int(np.prod([d for d in shape if d is not None]))  # None refused above
            shape = [chain.width]
        elif kind == "Dropout":
            _dropout(chain, name, kind, node, attrs, consts)
        elif kind == "Identity":
            pass
        else:
            raise chain.unsupported(name, kind)
        current = node.output[0]
        previous_op = kind
    if graph.output[0].name != current:
        raise NanonnError(
            "%s: the graph output %r is not the last node's output %r; expected a chain"
            % (source, graph.output[0].name, current)
        )
    return chain.spec()


def _const(chain: Chain, name: str, kind: str, tensor: str, consts: dict, what: str) -> np.ndarray:
    if tensor not in consts:
        raise chain.unsupported(name, kind, "%s %r is not a constant (initializer)" % (what, tensor))
    return np.asarray(consts[tensor], dtype=np.float64)


def _gemm(chain: Chain, name: str, kind: str, node, attrs: dict, consts: dict) -> None:
    if attrs.get("transA", 0):
        raise chain.unsupported(name, kind, "transA=1")
    b = _const(chain, name, kind, node.input[1], consts, "B")
    if b.ndim != 2:
        raise NanonnError("%s B: expected 2 dimensions, got shape %s" % (chain.where(name, kind), b.shape))
    w = (b if attrs.get("transB", 0) else b.T) * float(attrs.get("alpha", 1.0))  # (units, inputs)
    bias = None
    if len(node.input) > 2 and node.input[2]:
        c = _const(chain, name, kind, node.input[2], consts, "C")
        try:
            bias = np.broadcast_to(c, (1, w.shape[0])).reshape(-1) * float(attrs.get("beta", 1.0))
        except ValueError:
            raise NanonnError(
                "%s C: expected a bias broadcastable to (1, %d), got shape %s"
                % (chain.where(name, kind), w.shape[0], c.shape)
            ) from None
    chain.dense(name, kind, w, bias)


def _dropout(chain: Chain, name: str, kind: str, node, attrs: dict, consts: dict) -> None:
    rate = float(attrs.get("ratio", 0.5))
    if len(node.input) > 1 and node.input[1]:
        rate = float(_const(chain, name, kind, node.input[1], consts, "ratio"))
    if (
        len(node.input) > 2
        and node.input[2]
        and bool(_const(chain, name, kind, node.input[2], consts, "training_mode"))
    ):
        raise chain.unsupported(name, kind, "training_mode=true")
    chain.dropout(name, kind, rate)
