"""TFLite flatbuffers to a ModelSpec or, for int8 models, a QuantModelSpec
(extra `tflite`: the schema's generated reader).

The graph must be one subgraph with one input and one output, a chain of
FULLY_CONNECTED layers (fused activation NONE or RELU) and the activation
ops SOFTMAX (beta 1 for float), LOGISTIC, TANH, RELU and LEAKY_RELU, with
RESHAPE allowed only as a flatten of the input. Weights are read from the
model's buffers (inside the flatbuffer, or appended after it for large
models); float16 weights behind DEQUANTIZE ops are converted to float32
exactly. Full-integer int8 models (optionally wrapped in QUANTIZE and
DEQUANTIZE) import exactly as nanonn int8 layers: see `_tflite_int8`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import NanonnError
from ._chain import Chain, check_file, check_options, require

SUPPORTED = (
    "FULLY_CONNECTED (fused NONE or RELU), SOFTMAX, LOGISTIC, TANH, RELU, LEAKY_RELU, "
    "RESHAPE (as a flatten of the input); int8: the same plus QUANTIZE first and DEQUANTIZE last"
)
# Builtin operator codes (tflite schema BuiltinOperator) and tensor types used here.
OPS = {
    "DEQUANTIZE": 6,
    "FULLY_CONNECTED": 9,
    "LOGISTIC": 14,
    "RELU": 19,
    "RESHAPE": 22,
    "SOFTMAX": 25,
    "TANH": 28,
    "LEAKY_RELU": 98,
    "QUANTIZE": 114,
}
OP_NAMES = {v: k for k, v in OPS.items()}
TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8", 10: "float64"}
_NUMPY = {
    "float32": "<f4",
    "float16": "<f2",
    "int32": "<i4",
    "uint8": "u1",
    "int64": "<i8",
    "int16": "<i2",
    "int8": "i1",
    "float64": "<f8",
}
FUSED = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
_ACTIVATIONS = {"LOGISTIC": "sigmoid", "TANH": "tanh", "RELU": "relu"}


@dataclass
class Tensor:
    """One tensor of the flatbuffer's subgraph, its constant data decoded with numpy."""

    index: int
    name: str
    shape: tuple
    dtype: str
    data: np.ndarray | None  # constant contents, or None for activations
    scale: np.ndarray | None  # quantization scales (one, or one per channel)
    zero_point: np.ndarray | None
    quantized_dimension: int = 0


@dataclass
class Op:
    """One operator of the subgraph: its kind, tensor indices and decoded options."""

    index: int
    kind: str  # OP_NAMES name, or "BUILTIN_<code>"/"CUSTOM_<name>" when unknown here
    inputs: list  # tensor indices (-1 = absent optional input)
    outputs: list
    options: dict


@dataclass
class Graph:
    """The first subgraph of a `.tflite` file (`read_graph`): tensors, ops, graph inputs/outputs."""

    tensors: list
    ops: list
    inputs: list
    outputs: list


def load(path: str, **options):
    """Read a `.tflite` file; returns a validated ModelSpec."""
    check_options("tflite", options)
    check_file(path)
    with open(path, "rb") as f:
        data = f.read()
    return convert(read_graph(data, path), path)


def read_graph(data: bytes, source: str = "tflite model") -> Graph:
    """Parse the flatbuffer into plain Tensors and Ops (subgraph 0 only)."""
    tfl = require("tflite", "tflite", "reading TFLite files")
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise NanonnError(
            "%s: file identifier: expected b'TFL3', got %r"
            % (source, bytes(data[4:8]) if len(data) >= 8 else b"")
        )
    try:
        model = tfl.Model.GetRootAs(data, 0)
        if model.SubgraphsLength() != 1:
            raise NanonnError("%s subgraphs: expected 1, got %d" % (source, model.SubgraphsLength()))
        sg = model.Subgraphs(0)
        tensors = [_tensor(tfl, model, sg.Tensors(i), i, data, source) for i in range(sg.TensorsLength())]
        ops = [_op(tfl, model, sg.Operators(i), i) for i in range(sg.OperatorsLength())]
        return Graph(tensors, ops, list(sg.InputsAsNumpy()), list(sg.OutputsAsNumpy()))
    except (IndexError, ValueError, TypeError, AttributeError) as exc:  # a malformed flatbuffer
        raise NanonnError(
            "%s: malformed TFLite flatbuffer (%s: %s)" % (source, type(exc).__name__, exc)
        ) from None


def _tensor(tfl, model, t, index: int, data: bytes, source: str) -> Tensor:
    code = int(t.Type())
    dtype = TYPES.get(code, "type%d" % code)
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    content = None
    if t.Buffer() > 0:
        buf = model.Buffers(t.Buffer())
        if buf.Offset() > 1:  # large models keep buffers after the flatbuffer
            raw = data[buf.Offset() : buf.Offset() + buf.Size()]
        elif buf.DataLength():
            raw = buf.DataAsNumpy().tobytes()
        else:
            raw = b""
        if raw:
            if dtype not in _NUMPY:
                raise NanonnError("%s tensor %r: unsupported type %s" % (source, _name(t), dtype))
            content = np.frombuffer(raw, dtype=_NUMPY[dtype])
            if content.size != int(np.prod(shape)):
                raise NanonnError(
                    "%s tensor %r data: expected %d values for shape %s, got %d"
                    % (source, _name(t), int(np.prod(shape)), shape, content.size)
                )
            content = content.reshape(shape)
    scale = zero_point = None
    qdim = 0
    q = t.Quantization()
    if q is not None and q.ScaleLength():
        scale = q.ScaleAsNumpy().astype(np.float64)
        zero_point = (
            q.ZeroPointAsNumpy().astype(np.int64) if q.ZeroPointLength() else np.zeros(len(scale), np.int64)
        )
        qdim = q.QuantizedDimension()
    return Tensor(index, _name(t), shape, dtype, content, scale, zero_point, qdim)


def _name(t) -> str:
    name = t.Name()
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def _op(tfl, model, o, index: int) -> Op:
    code = model.OperatorCodes(o.OpcodeIndex())
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == 32:  # CUSTOM
        kind = "CUSTOM_%s" % (code.CustomCode() or b"").decode("utf-8", "replace")
    else:
        kind = OP_NAMES.get(builtin) or _builtin_names(tfl).get(builtin, "BUILTIN_%d" % builtin)
    options = {}
    table = o.BuiltinOptions()
    if table is not None:
        if kind == "FULLY_CONNECTED":
            opt = tfl.FullyConnectedOptions()
            opt.Init(table.Bytes, table.Pos)
            options = {
                "fused": FUSED.get(opt.FusedActivationFunction(), str(opt.FusedActivationFunction())),
                "weights_format": opt.WeightsFormat(),
                "keep_num_dims": bool(opt.KeepNumDims()),
            }
        elif kind == "SOFTMAX":
            opt = tfl.SoftmaxOptions()
            opt.Init(table.Bytes, table.Pos)
            options = {"beta": float(opt.Beta())}
        elif kind == "LEAKY_RELU":
            opt = tfl.LeakyReluOptions()
            opt.Init(table.Bytes, table.Pos)
            options = {"alpha": float(opt.Alpha())}
    inputs = list(o.InputsAsNumpy()) if o.InputsLength() else []
    outputs = list(o.OutputsAsNumpy()) if o.OutputsLength() else []
    return Op(index, kind, [int(i) for i in inputs], [int(i) for i in outputs], options)


def _builtin_names(tfl) -> dict:
    """Code -> name of every builtin operator in the schema (for messages)."""
    return {
        v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)
    }


def _where(op: Op, graph: Graph) -> str:
    out = graph.tensors[op.outputs[0]].name if op.outputs else "?"
    return "#%d %s" % (op.index, out)


def convert(graph: Graph, source: str):
    """Walk the operator chain: a float model gives a ModelSpec, an int8 one a QuantModelSpec."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise NanonnError(
            "%s: expected 1 input and 1 output, got %d and %d"
            % (source, len(graph.inputs), len(graph.outputs))
        )
    if any(op.kind == "FULLY_CONNECTED" and graph.tensors[op.inputs[0]].dtype == "int8" for op in graph.ops):
        return convert_int8(graph, source)
    graph = _fold_float16_weights(graph)
    chain = Chain(source, "tflite op", SUPPORTED)
    first = graph.tensors[graph.inputs[0]]
    shape = list(first.shape[1:])
    if len(shape) == 1 and shape[0] > 0:
        chain.width = shape[0]
    current = graph.inputs[0]
    for op in graph.ops:
        name = _where(op, graph)
        data = [i for i in op.inputs if i >= 0 and graph.tensors[i].data is None]
        if data != [current] or len(op.outputs) != 1:
            raise NanonnError(
                "%s inputs: expected the previous output (tensor %d) plus constants, got tensors %s; "
                "nanonn converts chains of single-input ops (supported: %s)"
                % (chain.where(name, op.kind), current, op.inputs, SUPPORTED)
            )
        for i in [current] + op.outputs:
            if graph.tensors[i].dtype != "float32":
                raise chain.unsupported(
                    name,
                    op.kind,
                    "tensor %r of type %s (this converter reads float32 models)"
                    % (graph.tensors[i].name, graph.tensors[i].dtype),
                )
        if op.kind == "RESHAPE":
            out = list(graph.tensors[op.outputs[0]].shape[1:])
            if len(out) != 1 or chain.layers or (shape and int(np.prod(shape)) != out[0]):
                raise chain.unsupported(name, op.kind, "to shape %s (only a flatten of the input)" % out)
            shape = out
            chain.width = out[0]
        elif len(shape) != 1:
            raise NanonnError(
                "%s input shape: expected a vector per sample, got %s" % (chain.where(name, op.kind), shape)
            )
        elif op.kind == "FULLY_CONNECTED":
            _fully_connected(chain, name, op, graph)
        elif op.kind in _ACTIVATIONS:
            chain.activation(name, op.kind, _ACTIVATIONS[op.kind])
        elif op.kind == "LEAKY_RELU":
            chain.activation(name, op.kind, "leaky_relu", op.options.get("alpha", 0.2))
        elif op.kind == "SOFTMAX":
            if op.options.get("beta", 1.0) != 1.0:
                raise chain.unsupported(name, op.kind, "beta %r (only 1)" % op.options.get("beta"))
            chain.activation(name, op.kind, "softmax")
        else:
            raise chain.unsupported(name, op.kind)
        current = op.outputs[0]
    if graph.outputs[0] != current:
        raise NanonnError(
            "%s: the graph output (tensor %d) is not the last op's output (tensor %d); expected a chain"
            % (source, graph.outputs[0], current)
        )
    return chain.spec()


def _fold_float16_weights(graph: Graph) -> Graph:
    """A float16-quantized model stores weights as float16 constants, each behind a
    DEQUANTIZE op: replace those ops by their exact float32 results."""
    ops = []
    for op in graph.ops:
        src = graph.tensors[op.inputs[0]] if op.inputs else None
        if op.kind == "DEQUANTIZE" and src is not None and src.data is not None and src.dtype == "float16":
            dst = graph.tensors[op.outputs[0]]
            dst.data = src.data.astype(np.float32).reshape(dst.shape)
            continue
        ops.append(op)
    return Graph(graph.tensors, ops, graph.inputs, graph.outputs)


def _fully_connected(chain: Chain, name: str, op: Op, graph: Graph) -> None:
    kind = op.kind
    if op.options.get("weights_format", 0) != 0:
        raise chain.unsupported(
            name, kind, "weights format %r (only DEFAULT)" % op.options.get("weights_format")
        )
    fused = op.options.get("fused", "NONE")
    if fused not in ("NONE", "RELU"):
        raise chain.unsupported(name, kind, "fused activation %s (only NONE or RELU)" % fused)
    w = graph.tensors[op.inputs[1]]
    b = graph.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    for t in (w, b):
        if t is not None and t.dtype != "float32":
            raise chain.unsupported(
                name, kind, "%s tensor %r (hybrid or float16 weights; only float32)" % (t.dtype, t.name)
            )
    chain.dense(name, kind, w.data, None if b is None else b.data, "relu" if fused == "RELU" else "linear")


_INT8_ACTIVATIONS = ("RELU", "LEAKY_RELU", "LOGISTIC", "TANH", "SOFTMAX")


def convert_int8(graph: Graph, source: str):
    """A full-integer model: one nanonn int8 layer per FULLY_CONNECTED (+ activation op)."""
    from ..quantize import QuantDenseSpec, QuantModelSpec
    from . import _tflite_int8

    ops = list(graph.ops)
    current = graph.inputs[0]
    if ops and ops[0].kind == "QUANTIZE":
        if graph.tensors[current].dtype != "float32" or ops[0].inputs != [current]:
            raise NanonnError("%s %s: expected the float32 graph input" % (source, _where(ops[0], graph)))
        current = ops[0].outputs[0]
        ops = ops[1:]
    last = graph.outputs[0]
    dequantize = bool(ops) and ops[-1].kind == "DEQUANTIZE" and ops[-1].outputs == [last]
    if dequantize:
        ops = ops[:-1]
    layers: list[dict] = []
    names: list[str] = []
    activated = True
    shape = list(graph.tensors[current].shape[1:])
    for op in ops:
        name = "tflite op %r (%s)" % (_where(op, graph), op.kind)
        data = [i for i in op.inputs if i >= 0 and graph.tensors[i].data is None]
        if data != [current] or len(op.outputs) != 1:
            raise NanonnError(
                "%s inputs: expected the previous output (tensor %d) plus constants, got tensors %s; "
                "nanonn converts chains of single-input ops (supported: %s)"
                % (name, current, op.inputs, SUPPORTED)
            )
        if op.kind == "RESHAPE":
            src, dst = graph.tensors[current], graph.tensors[op.outputs[0]]
            out = list(dst.shape[1:])
            same = np.array_equal(src.scale, dst.scale) and np.array_equal(src.zero_point, dst.zero_point)
            if len(out) != 1 or layers or int(np.prod(shape)) != out[0] or not same:
                raise NanonnError(
                    "%s: unsupported reshape to %s (only a flatten of the input, same quantization); supported: %s"
                    % (name, out, SUPPORTED)
                )
            shape = out
        elif len(shape) != 1:
            raise NanonnError("%s input shape: expected a vector per sample, got %s" % (name, shape))
        elif op.kind == "FULLY_CONNECTED":
            if op.options.get("fused", "NONE") not in ("NONE", "RELU") or op.options.get("weights_format", 0):
                raise NanonnError(
                    "%s: unsupported fused activation %s / weights format %r (only NONE or RELU, DEFAULT); "
                    "supported: %s"
                    % (name, op.options.get("fused"), op.options.get("weights_format"), SUPPORTED)
                )
            layer = _tflite_int8.fully_connected(name, op, graph)
            if layer["w"].shape[1] != shape[0]:
                raise NanonnError(
                    "%s inputs: expected %d (the previous layer's output size), got %d"
                    % (name, shape[0], layer["w"].shape[1])
                )
            layers.append(layer)
            names.append(name)
            activated = layer["activation"] != "linear"
            shape = [layer["w"].shape[0]]
        elif op.kind in _INT8_ACTIVATIONS:
            if not layers or activated:
                raise NanonnError(
                    "%s: an activation %s; nanonn applies one activation per dense layer"
                    % (name, "before any FULLY_CONNECTED" if not layers else "after one already applied")
                )
            _tflite_int8.activation(name, op, graph, layers[-1])
            activated = True
        else:
            raise NanonnError("%s: unsupported in an int8 model; supported: %s" % (name, SUPPORTED))
        current = op.outputs[0]
    end = graph.ops[-1].inputs[0] if dequantize else last
    if current != end:
        raise NanonnError(
            "%s: the graph output (tensor %d) is not the last op's output (tensor %d); expected a chain"
            % (source, last, current)
        )
    if not layers:
        raise NanonnError(
            "%s: expected at least one FULLY_CONNECTED op, got none; supported: %s" % (source, SUPPORTED)
        )
    for name, layer in zip(names[:-1], layers[:-1]):
        if layer["activation"] == "softmax_tflite":
            raise NanonnError("%s: softmax is supported on the last layer only" % name)
    specs = [QuantDenseSpec(**layer) for layer in layers]
    for name, spec in zip(names, specs):
        spec.validate(name)
    return QuantModelSpec(specs, source).validate()
