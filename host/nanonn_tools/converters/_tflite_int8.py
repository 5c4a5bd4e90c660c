"""TFLite full-integer (int8) models to nanonn's int8 dense layers.

The contract of an int8 dense layer is `docs/quantization.md`. Each
FULLY_CONNECTED op (int8 input, int8 weights with zero point 0, int32 bias)
and the one activation op after it become one layer, with every parameter
taken from the file or derived exactly as TFLite's kernels derive it. The
ground truth is ai-edge-litert's reference kernels (`OpResolverType.BUILTIN_REF`);
docs/converters.md lists what matches which interpreter configuration.

- FULLY_CONNECTED: the requantization `round(double(acc) * real)` with
  `real = double(in_scale) * double(w_scale[u]) / double(out_scale)` (nanonn's,
  derived from the scales; `mult, shift = QuantizeMultiplier(real)` stored
  beside it); fused RELU clamps at the output zero point.
- LOGISTIC, TANH: the 256-entry table of TFLite's int8 LUT kernel (float32
  math: dequantize, f, multiply by 1/out_scale, round half away from zero).
- LEAKY_RELU: multipliers of `f32(in/out)` and `f32(f32(in * alpha) / out)`,
  applied with gemmlowp's double rounding as TFLite does.
- RELU as its own op: with equal input and output quantization it is the
  clamp at the zero point; otherwise it requantizes, which is nanonn's
  leaky_relu with a zero negative multiplier (alpha 0).
- SOFTMAX (last layer): activation `softmax_tflite`, TFLite's own int8
  softmax: its float32 table `expf(f32(-in_scale * beta) * d)` stored as
  float32 bits, evaluated by the kernels exactly as TFLite's float code.
- QUANTIZE first / DEQUANTIZE last: the float input and output of the
  network (nanonn's `predict`); without them the model has int8 input and
  output (`predict_int8`).
"""

from __future__ import annotations

import numpy as np

from .. import NanonnError
from ..quantize import float_multiplier, scales_multiplier

# TFLite's fixed int8 output domains (scale, zero point)
SIGMOID_DOMAIN = (1.0 / 256.0, -128)
TANH_DOMAIN = (1.0 / 128.0, 0)
SOFTMAX_DOMAIN = (1.0 / 256.0, -128)


def round_away(v):
    """Round half away from zero (std::round), elementwise."""
    v = np.asarray(v, dtype=np.float64)
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def _multiplier(real32) -> tuple[int, int]:
    """QuantizeMultiplier of a float32 value (0 -> (0, 0))."""
    return (0, 0) if float(real32) == 0.0 else float_multiplier(real32)


def _f32(v) -> np.float32:
    return np.float32(v)


def lut(kind: str, in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    """TFLite's int8 LUT for LOGISTIC/TANH: entry q + 128 is the output for input q."""
    q = np.arange(-128, 128)
    dequantized = (np.float32(in_scale) * (q - in_zp).astype(np.float32)).astype(np.float32)
    d64 = dequantized.astype(np.float64)
    if kind == "sigmoid":  # 1.0f / (1.0f + expf(-x)), each step in float32 (expf may overflow to inf)
        with np.errstate(over="ignore"):
            e = np.exp(-d64).astype(np.float32)
        transformed = (np.float32(1.0) / (np.float32(1.0) + e)).astype(np.float32)
    elif kind == "tanh":
        transformed = np.tanh(d64).astype(np.float32)
    else:
        raise ValueError("lut kind: expected sigmoid or tanh, got %r" % kind)
    inverse = np.float32(1.0) / np.float32(out_scale)
    rescaled = round_away((transformed * inverse).astype(np.float32))
    return np.clip(rescaled + out_zp, -128, 127).astype(np.int8)


def _libm_expf():
    """The C library's expf (what TFLite's table calls), or None where ctypes cannot load it."""
    try:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("m")
        if name is None:
            return None
        f = ctypes.CDLL(name).expf
    except (OSError, AttributeError, ImportError):
        return None
    f.restype = ctypes.c_float
    f.argtypes = [ctypes.c_float]
    return f


def softmax_table(in_scale: float, beta: float) -> np.ndarray:
    """TFLite's int8 softmax table as float32 bits (int32): T[d] = expf(f32(-in_scale * beta) * d),
    d = qmax - q. expf is the C library's when ctypes finds it (glibc's is TFLite's on
    Linux), else float64 exp rounded to float32 (the correctly rounded value)."""
    scale = np.float32(-np.float32(in_scale) * np.float32(beta))
    args = (scale * np.arange(256).astype(np.float32)).astype(np.float32)
    expf = _libm_expf()
    if expf is None:
        table = np.exp(args.astype(np.float64)).astype(np.float32)
    else:
        table = np.array([expf(float(a)) for a in args], dtype=np.float32)
    return table.view(np.int32).copy()


def _domain(t, what: str, where: str) -> tuple[float, int]:
    if t.scale is None or len(t.scale) != 1:
        raise NanonnError(
            "%s %s tensor %r quantization: expected one scale (per-tensor), got %s"
            % (where, what, t.name, "none" if t.scale is None else len(t.scale))
        )
    scale, zp = float(t.scale[0]), int(t.zero_point[0])
    if not (np.isfinite(scale) and scale > 0) or not -128 <= zp <= 127:
        raise NanonnError(
            "%s %s tensor %r quantization: expected scale > 0 and zero point in [-128, 127], got %r, %d"
            % (where, what, t.name, scale, zp)
        )
    return scale, zp


def fully_connected(where: str, op, graph) -> dict:
    """The contract fields of a FULLY_CONNECTED int8 op (activation from its fused one)."""
    x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    b = graph.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    out = graph.tensors[op.outputs[0]]
    for t, dtype, what in ((x, "int8", "input"), (w, "int8", "weights"), (out, "int8", "output")):
        if t.dtype != dtype:
            raise NanonnError("%s %s tensor %r: expected %s, got %s" % (where, what, t.name, dtype, t.dtype))
    in_scale, in_zp = _domain(x, "input", where)
    out_scale, out_zp = _domain(out, "output", where)
    units, inputs = w.shape
    if w.scale is None or len(w.scale) not in (1, units):
        raise NanonnError(
            "%s weights %r scales: expected 1 or %d (per output unit), got %s"
            % (where, w.name, units, "none" if w.scale is None else len(w.scale))
        )
    if np.any(w.zero_point != 0) or (len(w.scale) > 1 and w.quantized_dimension != 0):
        raise NanonnError(
            "%s weights %r: expected symmetric per-output-unit quantization (zero point 0, dimension 0), "
            "got zero points %s, dimension %d"
            % (where, w.name, sorted(set(w.zero_point.tolist())), w.quantized_dimension)
        )
    w_scale = np.broadcast_to(np.asarray(w.scale, dtype=np.float32), (units,)).copy()
    if not np.all(np.isfinite(w_scale) & (w_scale > 0)):
        raise NanonnError(
            "%s weights %r scales: expected finite values > 0, got %s" % (where, w.name, w_scale)
        )
    wq = np.asarray(w.data, dtype=np.int8)
    if wq.min() < -127:
        raise NanonnError(
            "%s weights %r: expected values in [-127, 127] (TFLite's symmetric int8), got %d"
            % (where, w.name, int(wq.min()))
        )
    if b is None:
        bias = np.zeros(units, np.int32)
    else:
        if b.dtype != "int32" or b.data is None or b.data.shape != (units,):
            raise NanonnError(
                "%s bias %r: expected int32 of shape (%d,), got %s %s"
                % (where, b.name, units, b.dtype, b.shape)
            )
        bias = np.asarray(b.data, dtype=np.int32)
    mults = [scales_multiplier(in_scale, s, out_scale) for s in w_scale]
    return {
        "w": wq.reshape(units, inputs).copy(),
        "w_scale": w_scale,
        "bias": bias.copy(),
        "in_scale": in_scale,
        "in_zp": in_zp,
        "out_scale": out_scale,
        "out_zp": out_zp,
        "pre_scale": out_scale,
        "pre_zp": out_zp,
        "activation": "relu" if op.options.get("fused") == "RELU" else "linear",
        "mult": np.array([m for m, _ in mults], np.int32),
        "shift": np.array([s for _, s in mults], np.int8),
        "alpha": 0.0,
        "mult_pos": 0,
        "shift_pos": 0,
        "mult_neg": 0,
        "shift_neg": 0,
        "lut": None,
        "exp_table": None,
    }


def activation(where: str, op, graph, layer: dict) -> None:
    """Fold an int8 activation op into the layer before it (its output domain becomes the layer's)."""
    src, dst = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if dst.dtype != "int8":
        raise NanonnError("%s output tensor %r: expected int8, got %s" % (where, dst.name, dst.dtype))
    pre_scale, pre_zp = _domain(src, "input", where)
    out_scale, out_zp = _domain(dst, "output", where)
    fixed = {"LOGISTIC": SIGMOID_DOMAIN, "TANH": TANH_DOMAIN, "SOFTMAX": SOFTMAX_DOMAIN}.get(op.kind)
    if fixed is not None and (np.float32(out_scale) != np.float32(fixed[0]) or out_zp != fixed[1]):
        raise NanonnError(
            "%s output quantization: expected TFLite's scale %r, zero point %d, got %r, %d"
            % (where, fixed[0], fixed[1], out_scale, out_zp)
        )
    layer["out_scale"], layer["out_zp"] = out_scale, out_zp
    if op.kind == "RELU" and (np.float32(pre_scale), pre_zp) == (np.float32(out_scale), out_zp):
        layer["activation"] = "relu"
    elif op.kind in ("RELU", "LEAKY_RELU"):
        alpha = float(op.options.get("alpha", 0.2)) if op.kind == "LEAKY_RELU" else 0.0
        identity = _f32(_f32(pre_scale) / _f32(out_scale))
        negative = _f32(_f32(_f32(pre_scale) * _f32(alpha)) / _f32(out_scale))
        layer["activation"] = "leaky_relu"
        layer["alpha"] = float(_f32(alpha))
        layer["mult_pos"], layer["shift_pos"] = _multiplier(identity)
        layer["mult_neg"], layer["shift_neg"] = _multiplier(negative)
    elif op.kind in ("LOGISTIC", "TANH"):
        kind = "sigmoid" if op.kind == "LOGISTIC" else "tanh"
        layer["activation"] = kind
        layer["lut"] = lut(kind, pre_scale, pre_zp, out_scale, out_zp)
    elif op.kind == "SOFTMAX":
        beta = float(op.options.get("beta", 1.0))
        if not (np.isfinite(beta) and beta > 0):
            raise NanonnError("%s beta: expected a finite value > 0, got %r" % (where, beta))
        layer["activation"] = "softmax_tflite"
        layer["exp_table"] = softmax_table(pre_scale, beta)
    else:
        raise NanonnError("%s: no int8 form; expected RELU, LEAKY_RELU, LOGISTIC, TANH or SOFTMAX" % where)
