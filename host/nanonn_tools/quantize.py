"""int8 quantization on the host (docs/quantization.md is the contract).

- `QuantDenseSpec`: the stored parameters of one int8 dense layer (what the
  `.nnm` writer stores and the TFLite importer produces); `validate()` checks
  dtypes, shapes, ranges and the 32-bit accumulator bound.
- `QuantModelSpec`: a chain of them, with the int8 reference forward pass.
- `quantize_model(spec, X)`: nanonn's quantizer, numpy float32, the same
  integers as `Network.quantize(X)` on the device for the same float32 weights.
- `quantize_multiplier(...)`: TFLite's QuantizeMultiplier, computed exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NoReturn

import numpy as np

from . import NanonnError, qreference
from .device_package import device_module
from .model import ModelSpec

ACTIVATIONS = ("linear", "relu", "leaky_relu", "sigmoid", "tanh", "softplus", "softmax", "softmax_tflite")
SOFTMAXES = ("softmax", "softmax_tflite")  # last layer only
F32_ONE = 0x3F800000  # float32 bits of 1.0
LUT_ACTIVATIONS = ("sigmoid", "tanh", "softplus")
INT32_MAX = (1 << 31) - 1
SOFTMAX_MAX_UNITS = 16383
F32 = np.float32
LN2 = F32(11629080 / 16777216.0)  # float32 0x3F317218
INV_LN2 = F32(12102203 / 8388608.0)  # float32 0x3FB8AA3B
FIXED_DOMAINS = {"sigmoid": (1.0 / 256.0, -128), "softmax": (1.0 / 256.0, -128), "tanh": (1.0 / 128.0, 0)}


@dataclass
class QuantDenseSpec:
    """One int8 dense layer: exactly the stored fields of docs/quantization.md.

    Arrays: w int8 (units, inputs); w_scale float32 (units,); bias, mult int32
    (units,); shift int8 (units,); lut int8 (256,) or None; exp_table int32
    (256,) or None (softmax: Q16 values; softmax_tflite: float32 bits). Scales are Python floats holding exact float32 values.
    """

    w: np.ndarray
    w_scale: np.ndarray
    bias: np.ndarray
    in_scale: float
    in_zp: int
    out_scale: float
    out_zp: int
    activation: str = "linear"
    mult: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    shift: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    pre_scale: float = 0.0
    pre_zp: int = 0
    alpha: float = 0.0
    mult_pos: int = 0
    shift_pos: int = 0
    mult_neg: int = 0
    shift_neg: int = 0
    lut: np.ndarray | None = None
    exp_table: np.ndarray | None = None

    @property
    def units(self) -> int:
        return int(self.w.shape[0])

    @property
    def inputs(self) -> int:
        return int(self.w.shape[1])

    def accumulator_bound(self) -> int:
        """Worst-case |partial sum| the device kernel can reach, times 2^max(shift, 0).

        The accumulator is acc0 + sum_i w[u, i] * (x[i] + 128) (x + 128 in [0, 255]),
        acc0 = bias - (in_zp + 128) * rowsum(w), so |acc| <= |acc0| + 255 * sum |w|.
        The kernel (`qkernels.dense`) adds (w + 128) * (x + 128) >= 0 to
        acc0 - 128 * sum_i (x[i] + 128), whose partial sums rise from at least
        acc0 - 32640 * inputs: that bounds them from below."""
        w = self.w.astype(np.int64)
        acc0 = self.bias.astype(np.int64) - (self.in_zp + 128) * w.sum(axis=1)
        bound = (np.abs(acc0) + 255 * np.abs(w).sum(axis=1)) << np.maximum(self.shift.astype(np.int64), 0)
        low = 32640 * w.shape[1] - acc0
        return int(np.maximum(bound, low).max())

    def validate(self, where: str = "layer") -> QuantDenseSpec:
        """Check every field; raise NanonnError naming the field, expected and actual value."""

        def fail(name, expected, got) -> NoReturn:
            raise NanonnError("%s (int8 dense) %s: expected %s, got %s" % (where, name, expected, got))

        if self.activation not in ACTIVATIONS:
            fail("activation", "one of %s" % ", ".join(ACTIVATIONS), repr(self.activation))
        w = np.asarray(self.w)
        if w.dtype != np.int8 or w.ndim != 2 or 0 in w.shape:
            fail("w", "a non-empty int8 array (units, inputs)", "%s %s" % (w.dtype, w.shape))
        u = w.shape[0]
        for name, dtype in (
            ("w_scale", np.float32),
            ("bias", np.int32),
            ("mult", np.int32),
            ("shift", np.int8),
        ):
            a = np.asarray(getattr(self, name))
            if a.dtype != dtype or a.shape != (u,):
                fail(name, "%s (%d,)" % (np.dtype(dtype).name, u), "%s %s" % (a.dtype, a.shape))
        if not (np.all(np.isfinite(self.w_scale)) and np.all(self.w_scale > 0)):
            fail("w_scale", "finite values > 0", self.w_scale)
        if np.any(self.mult < 0) or np.any((self.mult > 0) & (self.mult < 1 << 30)):
            fail("mult", "0 or ints in [2^30, 2^31 - 1]", self.mult)
        if np.any(self.shift < -31) or np.any(self.shift > 30):
            fail("shift", "ints in [-31, 30]", self.shift)
        if self.activation in ("linear", "relu"):
            if (self.pre_scale, self.pre_zp) != (self.out_scale, self.out_zp):
                fail(
                    "pre_scale/pre_zp",
                    "the output domain for %s" % self.activation,
                    (self.pre_scale, self.pre_zp),
                )
        for name in ("in_scale", "out_scale", "pre_scale"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0 and float(F32(v)) == v):
                fail(name, "a finite float32 value > 0", repr(v))
        for name in ("in_zp", "out_zp", "pre_zp"):
            v = getattr(self, name)
            if int(v) != v or not -128 <= v <= 127:
                fail(name, "an int in [-128, 127]", repr(v))
        if self.activation == "leaky_relu":
            for name in ("mult_pos", "mult_neg"):
                if not 0 <= getattr(self, name) <= INT32_MAX:
                    fail(name, "an int in [0, 2^31 - 1]", getattr(self, name))
            for name in ("shift_pos", "shift_neg"):
                if not -31 <= getattr(self, name) <= 23:
                    fail(name, "an int in [-31, 23]", getattr(self, name))
        if self.activation in LUT_ACTIVATIONS:
            if (
                self.lut is None
                or np.asarray(self.lut).dtype != np.int8
                or np.asarray(self.lut).shape != (256,)
            ):
                fail("lut", "an int8 array (256,)", None if self.lut is None else np.asarray(self.lut).shape)
        if self.activation == "softmax":
            t = self.exp_table
            if t is None or np.asarray(t).dtype != np.int32 or np.asarray(t).shape != (256,):
                fail("exp_table", "an int32 array (256,)", None if t is None else np.asarray(t).shape)
            if t[0] != 65536 or np.any(t < 0) or np.any(t > 65536):
                fail("exp_table", "T[0] = 65536 and values in [0, 65536]", t[:4])
            if u > SOFTMAX_MAX_UNITS:
                fail("units", "<= %d for softmax" % SOFTMAX_MAX_UNITS, u)
        if self.activation == "softmax_tflite":
            t = self.exp_table
            if t is None or np.asarray(t).dtype != np.int32 or np.asarray(t).shape != (256,):
                fail(
                    "exp_table",
                    "an int32 array (256,) of float32 bits",
                    None if t is None else np.asarray(t).shape,
                )
            if t[0] != F32_ONE or np.any(t < 0) or np.any(t > F32_ONE):
                fail("exp_table", "float32 bits with T[0] = 1.0 and values in [0, 1.0]", t[:4])
            if (self.out_scale, self.out_zp) != FIXED_DOMAINS["softmax"]:
                fail("out_scale/out_zp", FIXED_DOMAINS["softmax"], (self.out_scale, self.out_zp))
            if u > SOFTMAX_MAX_UNITS:
                fail("units", "<= %d for softmax" % SOFTMAX_MAX_UNITS, u)
        for u_, ws in enumerate(self.w_scale):  # the requantization uses the scales' double ratio
            expected = scales_multiplier(self.in_scale, ws, self.pre_scale)
            if expected != (int(self.mult[u_]), int(self.shift[u_])):
                fail(
                    "mult[%d]/shift[%d]" % (u_, u_),
                    "%d/%d (QuantizeMultiplier of in_scale * w_scale / pre_scale)" % expected,
                    "%d/%d" % (self.mult[u_], self.shift[u_]),
                )
        bound = self.accumulator_bound()
        if bound > INT32_MAX:
            fail("accumulator bound", "<= 2^31 - 1 (32-bit safety)", bound)
        return self

    def device_params(self) -> dict:
        """Keyword arguments of `nanonn.int8.network.QDense.from_params` (plain lists and numbers)."""
        return {
            "inputs": self.inputs,
            "units": self.units,
            "w": self.w.ravel().tolist(),
            "w_scale": [float(v) for v in self.w_scale],
            "bias": self.bias.tolist(),
            "in_scale": float(self.in_scale),
            "in_zp": int(self.in_zp),
            "out_scale": float(self.out_scale),
            "out_zp": int(self.out_zp),
            "activation": self.activation,
            "mult": self.mult.tolist(),
            "shift": self.shift.tolist(),
            "pre_scale": float(self.pre_scale),
            "pre_zp": int(self.pre_zp),
            "alpha": float(self.alpha),
            "mult_pos": int(self.mult_pos),
            "shift_pos": int(self.shift_pos),
            "mult_neg": int(self.mult_neg),
            "shift_neg": int(self.shift_neg),
            "lut": None if self.lut is None else self.lut.tolist(),
            "exp_table": None if self.exp_table is None else self.exp_table.tolist(),
        }


@dataclass
class QuantModelSpec:
    """A chain of int8 dense layers (layer k's output domain = layer k+1's input domain)."""

    layers: list = field(default_factory=list)
    source: str = ""

    @property
    def inputs(self) -> int:
        return self.layers[0].inputs

    @property
    def outputs(self) -> int:
        return self.layers[-1].units

    def validate(self) -> QuantModelSpec:
        if not self.layers:
            raise NanonnError("int8 model: expected at least one layer, got none")
        for i, layer in enumerate(self.layers):
            where = "layer %d" % i
            if not isinstance(layer, QuantDenseSpec):
                raise NanonnError("%s: expected QuantDenseSpec, got %s" % (where, type(layer).__name__))
            layer.validate(where)
            if i:
                prev = self.layers[i - 1]
                if layer.inputs != prev.units:
                    raise NanonnError(
                        "%s (int8 dense) inputs: expected %d (the previous layer's units), got %d"
                        % (where, prev.units, layer.inputs)
                    )
                if (layer.in_scale, layer.in_zp) != (prev.out_scale, prev.out_zp):
                    raise NanonnError(
                        "%s (int8 dense) input domain: expected %r (the previous output), got %r"
                        % (where, (prev.out_scale, prev.out_zp), (layer.in_scale, layer.in_zp))
                    )
            if layer.activation in SOFTMAXES and i != len(self.layers) - 1:
                raise NanonnError("%s (int8 dense): softmax is allowed on the last layer only" % where)
        return self

    def quantize_input(self, x) -> np.ndarray:
        """float inputs (..., inputs) -> int8 (as int64) in the first layer's input domain."""
        first = self.layers[0]
        F, m, s = input_quantizer(first.in_scale)
        return qreference.quantize_input(x, first.in_zp, F, m, s)

    def predict_int8(self, xq) -> np.ndarray:
        """int8 outputs (int64 array) for int8 inputs (..., inputs) in the input domain."""
        v = np.asarray(xq, dtype=np.int64)
        for layer in self.layers:
            v = qreference.layer_int8(layer, v)
        return v

    def predict(self, x) -> np.ndarray:
        """float32 outputs as the device's `QNetwork.predict` computes them."""
        v = self.quantize_input(x)
        for layer in self.layers[:-1]:
            v = qreference.layer_int8(layer, v)
        last = self.layers[-1]
        y, e, s = qreference.activate(last, qreference.pre_activation(last, qreference.accumulate(last, v)))
        if last.activation == "softmax":
            return qreference.f32_ratio(e, s)
        return (y - last.out_zp).astype(F32) * F32(last.out_scale)


# ---- exact multipliers -------------------------------------------------------------


# The device's own exact-integer code (nanonn/int8/multiplier.py) is the one source of these
# multipliers; the host's functions call it, its ValueError for a scale it cannot take becoming
# the host's NanonnError.
_multiplier = device_module("int8.multiplier")


def _device(fn, *args):
    try:
        return fn(*args)
    except ValueError as exc:
        raise NanonnError(str(exc)) from None


def f32_parts(v) -> tuple[int, int]:
    """(m, e) with float32(v) = m * 2^e exactly (sign dropped)."""
    return _multiplier.f32_parts(v)


def quantize_multiplier(num: int, den: int, e2: int) -> tuple[int, int]:
    """TFLite QuantizeMultiplier of real = num / den * 2^e2, with TFLite's double
    rounding of `real` reproduced exactly: (mult, shift), real ~= mult * 2^(shift - 31)."""
    return _device(_multiplier.quantize_multiplier, num, den, e2)


def scales_multiplier(in_scale, w_scale, out_scale) -> tuple[int, int]:
    """Multiplier of double(in_scale) * double(w_scale) / double(out_scale), as TFLite computes it."""
    return _device(_multiplier.scales_multiplier, in_scale, w_scale, out_scale)


def float_multiplier(real) -> tuple[int, int]:
    """(mult, shift) of a real multiplier given as a float32 (TFLite's QuantizeMultiplier)."""
    return _device(_multiplier.float_multiplier, real)


def input_quantizer(in_scale) -> tuple[int, int, int]:
    """(F, mult, shift) of the float-input quantizer (docs/quantization.md)."""
    return _device(_multiplier.input_quantizer, in_scale)


# ---- deterministic float32 math (mirrors nanonn.int8.quantize.Math32 op for op) ---------------

_C = [F32(1.0), F32(1.0)]
for _n in range(2, 9):
    _C.append(F32(_C[-1] / F32(_n)))
_D = [F32(F32(1.0) / F32(2 * _k + 1)) for _k in range(9)]


def exp32(x) -> np.ndarray:
    """exp(x) for float32 x <= 0 (arrays)."""
    x = np.asarray(x, dtype=F32)
    k = qreference.round_away(x * INV_LN2)
    f = x - (k.astype(F32) * LN2)
    p = _C[8] * np.ones_like(x)
    for n in range(7, -1, -1):
        p = p * f + _C[n]  # two float32 operations, each rounded
    out = np.ldexp(p, k.astype(np.int32)).astype(F32)
    return np.where(x < F32(-80.0), F32(0.0), out)


def log1p32(y) -> np.ndarray:
    """log(1 + y) for float32 y in [0, 1] (arrays; softplus), op for op as the device computes it."""
    y = np.asarray(y, dtype=F32)
    u = y / (F32(2.0) + y)
    u2 = u * u
    p = _D[8] * np.ones_like(y)
    for k in range(7, -1, -1):
        p = p * u2 + _D[k]
    return (F32(2.0) * u) * p


def activation32(name: str, v) -> np.ndarray:
    """The float32 activation `name` of v (arrays), op for op as the device computes it."""
    v = np.asarray(v, dtype=F32)
    a = np.abs(v)
    if name == "sigmoid":
        e = exp32(-a)
        return np.where(v >= 0, F32(1.0) / (F32(1.0) + e), e / (F32(1.0) + e))
    if name == "tanh":
        e = exp32(F32(-2.0) * a)
        t = (F32(1.0) - e) / (F32(1.0) + e)
        return np.where(v >= 0, t, -t)
    if name == "softplus":
        return np.maximum(v, F32(0.0)) + log1p32(exp32(-a))
    raise NanonnError("activation: expected sigmoid, tanh or softplus, got %r" % name)


def make_lut(name: str, pre_scale, pre_zp: int, out_scale, out_zp: int) -> np.ndarray:
    """int8 (256,): lut[q + 128] = quantized f(dequantized q)."""
    q = np.arange(-128, 128)
    v = (q - pre_zp).astype(F32) * F32(pre_scale)
    f = activation32(name, v)
    return np.clip(out_zp + qreference.round_away(f / F32(out_scale)), -128, 127).astype(np.int8)


def make_exp_table(pre_scale) -> np.ndarray:
    """int32 (256,): T[d] = round(65536 * exp(-d * pre_scale))."""
    d = -np.arange(256).astype(F32) * F32(pre_scale)
    return qreference.round_away(exp32(d) * F32(65536.0)).astype(np.int32)


def domain(lo, hi) -> tuple[float, int]:
    """(scale, zp) of the int8 domain covering [lo, hi] (lo <= 0 <= hi, float32)."""
    lo, hi = F32(lo), F32(hi)
    d = hi - lo
    scale = d / F32(255.0) if d > 0 else F32(1.0) / F32(255.0)
    zp = int(np.clip(qreference.round_away(F32(-128.0) - lo / scale), -128, 127))
    return float(scale), zp


def quantize_weights(w, b, in_scale) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w int8, w_scale float32, bias int64) with symmetric per-unit scales."""
    w = np.asarray(w, dtype=F32)
    top = np.abs(w).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(top > 0, top / F32(127.0), F32(1.0) / F32(127.0)).astype(F32)
        wq = np.clip(qreference.round_away(w / s[:, None]), -127, 127).astype(np.int8)
        bq = qreference.round_away(np.asarray(b, dtype=F32) / (F32(in_scale) * s))
    return wq, s, bq


def quantize_model(spec: ModelSpec, X) -> QuantModelSpec:
    """nanonn's int8 quantization of a float model, calibrated on inputs X (rows).

    Uses the float32 values of the weights (what the device holds); produces
    the same integers as `Network.quantize(X)` on the device."""
    spec.validate()
    X = np.asarray(X, dtype=F32)
    if X.ndim != 2 or X.shape[1] != spec.inputs or not len(X):
        raise NanonnError("calibration X: expected shape (n > 0, %d), got %s" % (spec.inputs, X.shape))
    if not np.all(np.isfinite(X)):
        raise NanonnError("calibration X: expected finite values, got NaN or infinity")
    in_scale, in_zp = domain(min(F32(0.0), X.min()), max(F32(0.0), X.max()))
    F, m, s = input_quantizer(in_scale)
    acts = qreference.quantize_input(X, in_zp, F, m, s)
    dense = spec.dense_layers()
    layers = []
    for li, layer in enumerate(dense):
        where = "layer %d" % li
        name = layer.activation
        if name == "softmax" and li != len(dense) - 1:
            raise NanonnError("%s: softmax is allowed on the last layer only" % where)
        b = np.zeros(layer.units) if layer.b is None else layer.b
        wq, ws, bq = quantize_weights(layer.w, b, in_scale)
        if np.any(np.abs(bq) > INT32_MAX):
            raise NanonnError(
                "%s bias: expected int32 after quantization, got %d" % (where, np.abs(bq).max())
            )
        acc = (acts - in_zp) @ wq.astype(np.int64).T + bq
        bs = (F32(in_scale) * ws).astype(F32)
        plo = min(F32(0.0), (acc.min(axis=0).astype(F32) * bs).min())
        phi = max(F32(0.0), (acc.max(axis=0).astype(F32) * bs).max())
        pre_scale, pre_zp = domain(plo, phi)
        alpha = 0.0
        if name == "linear":
            out_scale, out_zp = pre_scale, pre_zp
        elif name == "relu":
            out_scale, out_zp = pre_scale, pre_zp = domain(0.0, phi)
        elif name == "leaky_relu":
            alpha = float(F32(layer.alpha))
            out_scale, out_zp = domain(F32(alpha) * plo, phi)
        elif name == "softplus":
            out_scale, out_zp = domain(0.0, phi + LN2)
        else:
            out_scale, out_zp = FIXED_DOMAINS[name]
        ms = [scales_multiplier(in_scale, ws[u], pre_scale) for u in range(layer.units)]
        q = QuantDenseSpec(
            w=wq,
            w_scale=ws,
            bias=bq.astype(np.int32),
            in_scale=in_scale,
            in_zp=in_zp,
            out_scale=out_scale,
            out_zp=out_zp,
            activation=name,
            mult=np.array([m for m, _ in ms], dtype=np.int32),
            shift=np.array([s for _, s in ms], dtype=np.int8),
            pre_scale=pre_scale,
            pre_zp=pre_zp,
            alpha=alpha,
        )
        if name == "leaky_relu":
            q.mult_pos, q.shift_pos = float_multiplier(F32(pre_scale) / F32(out_scale))
            if alpha > 0:
                q.mult_neg, q.shift_neg = float_multiplier((F32(pre_scale) * F32(alpha)) / F32(out_scale))
        elif name in LUT_ACTIVATIONS:
            q.lut = make_lut(name, pre_scale, pre_zp, out_scale, out_zp)
        elif name == "softmax":
            q.exp_table = make_exp_table(pre_scale)
        q.validate(where)
        layers.append(q)
        acts = qreference.layer_int8(q, acts)
        in_scale, in_zp = out_scale, out_zp
    return QuantModelSpec(layers, source=spec.source).validate()
