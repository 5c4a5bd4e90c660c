"""Write small TFLite flatbuffers for the converter tests, without TensorFlow.

`build(tensors, ops, inputs, outputs)` serializes one subgraph with the TFLite
schema's generated builder functions (the `tflite` package) and `flatbuffers`.
A tensor is a `T(name, shape, dtype, data=None, scale=None, zero_point=None)`;
an op is `(kind, input indices, output indices, options)` with kind a
`nanonn_tools.converters.tflite.OPS` or `OTHER_OPS` name. The test files check every model
with the reference interpreter (ai-edge-litert).
"""

from __future__ import annotations

from dataclasses import dataclass

import flatbuffers
import numpy as np
import tflite

from nanonn_tools.converters.tflite import OPS

# ops the converter does not take, for the negative tests
OTHER_OPS = {"ADD": 0, "RELU6": 21, "ABS": 101}
CODES = {**OPS, **OTHER_OPS}
TYPE_CODES = {"float32": 0, "int32": 2, "int8": 9, "float16": 1, "uint8": 3}


@dataclass
class T:
    name: str
    shape: tuple
    dtype: str = "float32"
    data: np.ndarray | None = None
    scale: list | None = None
    zero_point: list | None = None
    quantized_dimension: int = 0


def _vector(b, start, items, prepend):
    start(b, len(items))
    for item in reversed(items):
        prepend(item)
    return b.EndVector()


def _ints(b, start, values):
    return _vector(b, start, [int(v) for v in values], b.PrependInt32)


def _options(b, kind, options):
    """(BuiltinOptions type code, table offset) for an op's options."""
    if kind == "FULLY_CONNECTED":
        tflite.FullyConnectedOptionsStart(b)
        tflite.FullyConnectedOptionsAddFusedActivationFunction(b, options.get("fused", 0))
        tflite.FullyConnectedOptionsAddWeightsFormat(b, options.get("weights_format", 0))
        return tflite.BuiltinOptions.FullyConnectedOptions, tflite.FullyConnectedOptionsEnd(b)
    if kind == "SOFTMAX":
        tflite.SoftmaxOptionsStart(b)
        tflite.SoftmaxOptionsAddBeta(b, options.get("beta", 1.0))
        return tflite.BuiltinOptions.SoftmaxOptions, tflite.SoftmaxOptionsEnd(b)
    if kind == "LEAKY_RELU":
        tflite.LeakyReluOptionsStart(b)
        tflite.LeakyReluOptionsAddAlpha(b, options.get("alpha", 0.2))
        return tflite.BuiltinOptions.LeakyReluOptions, tflite.LeakyReluOptionsEnd(b)
    if kind == "RESHAPE":
        shape = _ints(b, tflite.ReshapeOptionsStartNewShapeVector, options["new_shape"])
        tflite.ReshapeOptionsStart(b)
        tflite.ReshapeOptionsAddNewShape(b, shape)
        return tflite.BuiltinOptions.ReshapeOptions, tflite.ReshapeOptionsEnd(b)
    return 0, None


def build(tensors: list, ops: list, inputs: list, outputs: list) -> bytes:
    b = flatbuffers.Builder(1024)
    # buffers: 0 is the empty sentinel; each constant tensor gets its own
    buffer_of = {}
    blobs: list[bytes | None] = [None]
    for i, t in enumerate(tensors):
        if t.data is not None:
            buffer_of[i] = len(blobs)
            blobs.append(np.ascontiguousarray(t.data).astype(t.data.dtype.newbyteorder("<")).tobytes())
    buffer_offsets = []
    for blob in blobs:
        data = None if blob is None else b.CreateNumpyVector(np.frombuffer(blob, dtype=np.uint8))
        tflite.BufferStart(b)
        if data is not None:
            tflite.BufferAddData(b, data)
        buffer_offsets.append(tflite.BufferEnd(b))
    tensor_offsets = []
    for i, t in enumerate(tensors):
        name = b.CreateString(t.name)
        shape = _ints(b, tflite.TensorStartShapeVector, t.shape)
        quant = None
        if t.scale is not None:
            scale = b.CreateNumpyVector(np.asarray(t.scale, dtype=np.float32))
            zp = b.CreateNumpyVector(np.asarray(t.zero_point, dtype=np.int64))
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, scale)
            tflite.QuantizationParametersAddZeroPoint(b, zp)
            tflite.QuantizationParametersAddQuantizedDimension(b, t.quantized_dimension)
            quant = tflite.QuantizationParametersEnd(b)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, TYPE_CODES[t.dtype])
        tflite.TensorAddBuffer(b, buffer_of.get(i, 0))
        tflite.TensorAddName(b, name)
        if quant is not None:
            tflite.TensorAddQuantization(b, quant)
        tensor_offsets.append(tflite.TensorEnd(b))
    kinds = sorted({op[0] for op in ops}, key=lambda k: CODES[k])
    code_offsets = []
    for kind in kinds:
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(CODES[kind], 127))
        tflite.OperatorCodeAddBuiltinCode(b, CODES[kind])
        tflite.OperatorCodeAddVersion(b, 1)
        code_offsets.append(tflite.OperatorCodeEnd(b))
    op_offsets = []
    for kind, ins, outs, options in ops:
        ins_v = _ints(b, tflite.OperatorStartInputsVector, ins)
        outs_v = _ints(b, tflite.OperatorStartOutputsVector, outs)
        opt_type, opt = _options(b, kind, options or {})
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, kinds.index(kind))
        tflite.OperatorAddInputs(b, ins_v)
        tflite.OperatorAddOutputs(b, outs_v)
        if opt is not None:
            tflite.OperatorAddBuiltinOptionsType(b, opt_type)
            tflite.OperatorAddBuiltinOptions(b, opt)
        op_offsets.append(tflite.OperatorEnd(b))
    tensors_v = _vector(b, tflite.SubGraphStartTensorsVector, tensor_offsets, b.PrependUOffsetTRelative)
    inputs_v = _ints(b, tflite.SubGraphStartInputsVector, inputs)
    outputs_v = _ints(b, tflite.SubGraphStartOutputsVector, outputs)
    ops_v = _vector(b, tflite.SubGraphStartOperatorsVector, op_offsets, b.PrependUOffsetTRelative)
    sg_name = b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensors_v)
    tflite.SubGraphAddInputs(b, inputs_v)
    tflite.SubGraphAddOutputs(b, outputs_v)
    tflite.SubGraphAddOperators(b, ops_v)
    tflite.SubGraphAddName(b, sg_name)
    subgraph = tflite.SubGraphEnd(b)
    subgraphs_v = _vector(b, tflite.ModelStartSubgraphsVector, [subgraph], b.PrependUOffsetTRelative)
    codes_v = _vector(b, tflite.ModelStartOperatorCodesVector, code_offsets, b.PrependUOffsetTRelative)
    buffers_v = _vector(b, tflite.ModelStartBuffersVector, buffer_offsets, b.PrependUOffsetTRelative)
    description = b.CreateString("nanonn test model")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes_v)
    tflite.ModelAddSubgraphs(b, subgraphs_v)
    tflite.ModelAddDescription(b, description)
    tflite.ModelAddBuffers(b, buffers_v)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def float_mlp(layers: list, inputs: int, ops_after: dict | None = None) -> bytes:
    """A float32 model: for each (w (units, inputs), b, fused, activation op or None) a
    FULLY_CONNECTED (fused 0 NONE / 1 RELU) then the optional activation op
    (kind, options). Input shape (1, inputs)."""
    tensors = [T("input", (1, inputs))]
    ops = []
    current = 0
    for i, (w, b, fused, act) in enumerate(layers):
        tensors.append(T("w%d" % i, w.shape, data=np.asarray(w, np.float32)))
        tensors.append(T("b%d" % i, b.shape, data=np.asarray(b, np.float32)))
        tensors.append(T("fc%d" % i, (1, w.shape[0])))
        n = len(tensors)
        ops.append(("FULLY_CONNECTED", [current, n - 3, n - 2], [n - 1], {"fused": fused}))
        current = n - 1
        if act is not None:
            kind, options = act
            tensors.append(T("%s%d" % (kind.lower(), i), (1, w.shape[0])))
            ops.append((kind, [current], [len(tensors) - 1], options))
            current = len(tensors) - 1
    return build(tensors, ops, [0], [current])


def _domain(lo: float, hi: float) -> tuple[float, int]:
    """TFLite-style asymmetric int8 domain (scale, zero point) covering [lo, hi] and 0."""
    lo, hi = min(0.0, float(lo)), max(0.0, float(hi))
    scale = float(np.float32((hi - lo) / 255.0)) if hi > lo else 1.0 / 255.0
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return scale, zp


FIXED_DOMAINS = {"LOGISTIC": (1.0 / 256, -128), "SOFTMAX": (1.0 / 256, -128), "TANH": (1.0 / 128, 0)}


def _float_act(kind, options, z):
    if kind == "LOGISTIC":
        return 1.0 / (1.0 + np.exp(-z))
    if kind == "TANH":
        return np.tanh(z)
    if kind == "RELU":
        return np.maximum(z, 0.0)
    if kind == "LEAKY_RELU":
        return np.where(z > 0, z, options.get("alpha", 0.2) * z)
    if kind == "SOFTMAX":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise ValueError(kind)


def int8_mlp(layers: list, x: np.ndarray, per_channel: bool = True, float_io: bool = True) -> bytes:
    """A full-integer int8 model of the float layers of `float_mlp`, calibrated on x
    (rows) the way TFLite's converter does it: symmetric int8 weights (per output
    channel or per tensor), int32 biases at scale in_scale * w_scale, asymmetric
    activations; fixed output domains for LOGISTIC, TANH and SOFTMAX. With
    `float_io`, QUANTIZE/DEQUANTIZE wrap it (float32 in and out); else int8 in and out."""
    x = np.asarray(x, dtype=np.float64)
    in_scale, in_zp = _domain(x.min(), x.max())
    tensors = []
    ops = []
    if float_io:
        tensors.append(T("input", (1, x.shape[1])))
        tensors.append(T("input_q", (1, x.shape[1]), "int8", scale=[in_scale], zero_point=[in_zp]))
        ops.append(("QUANTIZE", [0], [1], {}))
    else:
        tensors.append(T("input_q", (1, x.shape[1]), "int8", scale=[in_scale], zero_point=[in_zp]))
    current = len(tensors) - 1
    v = x
    for i, (w, b, fused, act) in enumerate(layers):
        w = np.asarray(w, dtype=np.float64)
        if per_channel:
            w_scale = np.maximum(np.abs(w).max(axis=1), 1e-8) / 127.0
        else:
            w_scale = np.full(w.shape[0], max(np.abs(w).max(), 1e-8) / 127.0)
        w_scale = w_scale.astype(np.float32)
        wq = np.clip(np.round(w / w_scale[:, None].astype(np.float64)), -127, 127).astype(np.int8)
        bias_scale = (np.float32(in_scale) * w_scale).astype(np.float32)
        bq = np.round(np.asarray(b, dtype=np.float64) / bias_scale.astype(np.float64)).astype(np.int32)
        z = v @ w.T + b
        if fused == 1:
            z = np.maximum(z, 0.0)
        out_scale, out_zp = _domain(z.min(), z.max())
        scales = list(w_scale) if per_channel else [float(w_scale[0])]
        tensors.append(T("w%d" % i, w.shape, "int8", wq, scale=scales, zero_point=[0] * len(scales)))
        tensors.append(
            T(
                "b%d" % i,
                (w.shape[0],),
                "int32",
                bq,
                scale=list(bias_scale) if per_channel else [float(bias_scale[0])],
                zero_point=[0] * len(scales),
            )
        )
        tensors.append(T("fc%d" % i, (1, w.shape[0]), "int8", scale=[out_scale], zero_point=[out_zp]))
        n = len(tensors)
        ops.append(("FULLY_CONNECTED", [current, n - 3, n - 2], [n - 1], {"fused": fused}))
        current = n - 1
        v = z
        in_scale = out_scale
        if act is not None:
            kind, options = act
            v = _float_act(kind, options or {}, z)
            if kind in FIXED_DOMAINS:
                out_scale, out_zp = FIXED_DOMAINS[kind]
            elif kind == "RELU":  # a wider output domain than its input: the op requantizes
                out_scale, out_zp = _domain(0.0, 1.25 * v.max())
            else:
                out_scale, out_zp = _domain(v.min(), v.max())
            tensors.append(
                T("%s%d" % (kind.lower(), i), (1, w.shape[0]), "int8", scale=[out_scale], zero_point=[out_zp])
            )
            ops.append((kind, [current], [len(tensors) - 1], options))
            current = len(tensors) - 1
            in_scale = out_scale
    if float_io:
        tensors.append(T("output", (1, layers[-1][0].shape[0])))
        ops.append(("DEQUANTIZE", [current], [len(tensors) - 1], {}))
        current = len(tensors) - 1
    return build(tensors, ops, [0], [current])
