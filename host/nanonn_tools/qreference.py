"""The numpy int8 oracle: the integer semantics of docs/quantization.md.

Written from TFLite's formulas directly (64-bit products, no 16-bit halves, no
folded offsets), so it checks the device kernels independently. All integer
arrays are int64; every function accepts a batch (leading axes).
"""

from __future__ import annotations

import numpy as np

CAP = 1 << 30  # fixed-point float inputs saturate here


def round_away(v) -> np.ndarray:
    """Round half away from zero (exact for float arrays), as int64."""
    v = np.asarray(v)
    t = np.trunc(v)
    d = v - t
    return (t + (d >= 0.5) - (d <= -0.5)).astype(np.int64)


def mbqm(x, m, s) -> np.ndarray:
    """MultiplyByQuantizedMultiplier with one rounding, half away from zero (the float-input
    quantizer): sign(x) * ((|x| * m + 2^(k - 1)) >> k), k = 31 - s; x int32,
    m in [0, 2^31), s in [-31, 30]."""
    x = np.asarray(x, dtype=np.int64)
    m = np.asarray(m, dtype=np.int64)
    k = 31 - np.asarray(s, dtype=np.int64)
    r = (np.abs(x) * m + (np.int64(1) << (k - 1))) >> k  # |x| * m < 2^62: no int64 overflow
    return np.where(x < 0, -r, r)


def mbqm_dr(x, m, s) -> np.ndarray:
    """gemmlowp's MultiplyByQuantizedMultiplier (double rounding: TFLite's LEAKY_RELU):
    x int32, m in [0, 2^31), s in [-31, 30]."""
    x = np.asarray(x, dtype=np.int64)
    m = np.asarray(m, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    left = np.maximum(s, 0)
    right = np.maximum(-s, 0)
    a = x << left
    ab = a * m
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    num = ab + nudge
    hi = np.where(num >= 0, num >> 31, -((-num) >> 31))  # C division: toward zero
    mask = (np.int64(1) << right) - 1
    rem = hi & mask
    threshold = (mask >> 1) + (hi < 0)
    return (hi >> right) + (rem > threshold)


def fc_requant(acc, layer) -> np.ndarray:
    """A dense layer's requantization (ai-edge-litert's reference FULLY_CONNECTED):
    round(double(acc) * R), half away from zero, R = double(in_scale) * double(w_scale)
    / double(pre_scale) per unit (numpy float64: the C++ double operations)."""
    real = np.float64(layer.in_scale) * np.asarray(layer.w_scale, np.float64) / np.float64(layer.pre_scale)
    return round_away(np.asarray(acc, dtype=np.int64).astype(np.float64) * real)


def accumulate(layer, x) -> np.ndarray:
    """int32 accumulators bias + w @ (x - in_zp) for int8 inputs x (..., inputs)."""
    x = np.asarray(x, dtype=np.int64)
    return (x - layer.in_zp) @ layer.w.astype(np.int64).T + layer.bias.astype(np.int64)


def pre_activation(layer, acc) -> np.ndarray:
    """The int8 pre-activation: clamp(pre_zp + MBQM(acc)), relu's lower bound applied."""
    lo = max(-128, layer.out_zp) if layer.activation == "relu" else -128
    r = fc_requant(acc, layer)
    return np.clip(r + layer.pre_zp, lo, 127)


def activate(layer, p) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(int8 outputs, softmax e, softmax sums) from pre-activations p."""
    act = layer.activation
    if act in ("linear", "relu"):
        return p, None, None
    if act == "leaky_relu":
        d = p - layer.pre_zp
        pos = mbqm_dr(d, layer.mult_pos, layer.shift_pos)
        neg = mbqm_dr(d, layer.mult_neg, layer.shift_neg)
        return np.clip(layer.out_zp + np.where(d >= 0, pos, neg), -128, 127), None, None
    if act == "softmax":
        table = layer.exp_table.astype(np.int64)
        e = table[p.max(axis=-1, keepdims=True) - p]
        s = e.sum(axis=-1, keepdims=True)
        y = np.clip(((e << 8) + (s >> 1)) // s - 128, -128, 127)
        return y, e, s
    if act == "softmax_tflite":
        return tflite_softmax(layer.exp_table, p), None, None
    return layer.lut.astype(np.int64)[p + 128], None, None


def tflite_softmax(table_bits, p) -> np.ndarray:
    """TFLite's int8 SOFTMAX (float-table kernel) in numpy float32: T = table_bits as
    float32 (T[d] = expf(-beta * in_scale * d)); per row: s = T[max - p] summed in float32
    in order, inv = 1 / (s * (1/256)), y = round_away(T[max - p] * inv) - 128."""
    table = np.asarray(table_bits, dtype=np.int32).view(np.float32)
    t = table[p.max(axis=-1, keepdims=True) - p]
    s = np.zeros(t.shape[:-1], dtype=np.float32)
    for j in range(t.shape[-1]):
        s = (s + t[..., j]).astype(np.float32)
    inv = (np.float32(1.0) / (s * np.float32(1.0 / 256))).astype(np.float32)
    prob = (t * inv[..., None]).astype(np.float32)
    return np.clip(round_away(prob) - 128, -128, 127)


def layer_int8(layer, x) -> np.ndarray:
    """int8 outputs (as int64) of one layer for int8 inputs x (..., inputs)."""
    return activate(layer, pre_activation(layer, accumulate(layer, x)))[0]


def input_fixed(x, F: int) -> np.ndarray:
    """round(|x| * 2^F) with x's sign, saturated at 2^30; NaN -> 0 (x float32)."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    nan = np.isnan(x)
    a = np.abs(np.where(nan, 0.0, x))
    inf = np.isinf(a)
    f, e = np.frexp(np.where(inf, 0.0, a))
    m = (f * 16777216.0).astype(np.int64)  # exact 24-bit significand
    k = e.astype(np.int64) - 24 + F
    up = np.minimum(np.maximum(k, 0), 31)
    big = (k > 30) | (m > (CAP >> up))
    left = np.where(big, CAP, m << np.minimum(up, 30))
    down = np.clip(-k, 1, 62)
    right = np.where(-k > 25, 0, (m + (np.int64(1) << (down - 1))) >> down)
    v = np.where(m == 0, 0, np.where(k >= 0, left, right))
    v = np.where(inf, CAP, v)
    return np.where(x < 0, -v, v)


def quantize_input(x, in_zp: int, F: int, mult: int, shift: int) -> np.ndarray:
    """The float-input quantizer of docs/quantization.md (x float32 -> int8 as int64)."""
    return np.clip(in_zp + mbqm(input_fixed(x, F), mult, shift), -128, 127)


def f32_ratio(e, s) -> np.ndarray:
    """float32(e / s) correctly rounded (nearest even) for ints 0 <= e <= s < 2^31."""
    e = np.asarray(e, dtype=np.int64)
    s = np.broadcast_to(np.asarray(s, dtype=np.int64), e.shape)
    out = np.zeros(e.shape, dtype=np.float32)
    for idx in np.ndindex(e.shape):
        a, b = int(e[idx]), int(s[idx])
        if a == 0:
            continue
        j = 0
        while (a << (23 + j)) // b < 1 << 23:
            j += 1
        q, rem = divmod(a << (23 + j), b)
        if 2 * rem > b or (2 * rem == b and q & 1):
            q += 1
        out[idx] = np.float32(q * 2.0 ** -(23 + j))
    return out
