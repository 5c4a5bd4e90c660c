"""Quantize a float network to int8 on the device (docs/quantization.md).

Every float step is one float32 operation rounded by `_F32`, and multipliers
are computed with exact integer arithmetic, so a float32 board, the unix port
(double floats) and the host (`nanonn_tools.quantize`, numpy float32) produce
the same integers. Allocation is fine here: this runs once, not per inference.
"""

from array import array

from ..float32.activations import builtin_name
from ..float32.layers import Dense, Dropout
from .multiplier import float_multiplier, input_quantizer, scales_multiplier
from .network import QDense, QNetwork, _requant, kernel_set

# Exact float32 constants as integer * 2^-k (no decimal parsing involved).
_LN2 = 11629080 / 16777216.0  # 0x3F317218
_INV_LN2 = 12102203 / 8388608.0  # 0x3FB8AA3B
_HALF = 1 / 2  # exact on every port (a decimal literal goes through the port's parser)


class _F32:
    """r(v): v rounded to float32 (one store into array('f'))."""

    def __init__(self):
        self.b = array("f", [0.0])

    def __call__(self, v):
        self.b[0] = v
        return self.b[0]


def round_away(v):
    """Round half away from zero (TFLite's std::round); exact for floats."""
    t = int(v)
    d = v - t
    if d >= _HALF:
        t += 1
    elif d <= 0.0 - _HALF:
        t -= 1
    return t


def _clamp(v, lo, hi):
    return lo if v < lo else hi if v > hi else v


class Math32:
    """Deterministic float32 exp/log1p and the activations built on them:
    single float32 operations only, in a fixed order (mirrored by numpy on the host)."""

    def __init__(self):
        self.r = r = _F32()
        c = [1.0, 1.0]
        for n in range(2, 9):
            c.append(r(c[-1] / n))
        self.c = c  # 1/n!, n = 0..8
        self.d = [r(1.0 / (2 * k + 1)) for k in range(9)]  # 1/(2k+1)

    def exp(self, x):
        """exp(x) for float32 x <= 0."""
        r = self.r
        if x < -80.0:
            return 0.0
        k = round_away(r(x * _INV_LN2))
        f = r(x - r(k * _LN2))
        c = self.c
        p = c[8]
        for n in range(7, -1, -1):
            p = r(r(p * f) + c[n])
        scale = 1.0
        for _ in range(0 - k):  # exact powers of two (k <= 0 here)
            scale *= _HALF
        return r(p * scale)

    def log1p(self, y):
        """log(1 + y) for float32 y in [0, 1]: 2 atanh(y / (2 + y))."""
        r = self.r
        u = r(y / r(2.0 + y))
        u2 = r(u * u)
        d = self.d
        p = d[8]
        for k in range(7, -1, -1):
            p = r(r(p * u2) + d[k])
        return r(r(2.0 * u) * p)

    def activation(self, name, v):
        r = self.r
        a = v if v >= 0.0 else 0.0 - v
        if name == "sigmoid":
            e = self.exp(0.0 - a)
            return r(1.0 / r(1.0 + e)) if v >= 0.0 else r(e / r(1.0 + e))
        if name == "tanh":
            e = self.exp(r(-2.0 * a))
            t = r(r(1.0 - e) / r(1.0 + e))
            return t if v >= 0.0 else 0.0 - t
        if name == "softplus":
            return r((v if v > 0.0 else 0.0) + self.log1p(self.exp(0.0 - a)))
        raise ValueError("activation: expected sigmoid, tanh or softplus, got %r" % name)

    def lut(self, name, pre_scale, pre_zp, out_scale, out_zp):
        """256 int8 as a bytearray: lut[q + 128] = quantized f(dequantized q)."""
        r = self.r
        out = bytearray(256)  # two's-complement int8 (QDense keeps it without a copy)
        for q in range(-128, 128):
            f = self.activation(name, r((q - pre_zp) * pre_scale))
            out[q + 128] = _clamp(out_zp + round_away(r(f / out_scale)), -128, 127) & 0xFF
        return out

    def exp_table(self, pre_scale):
        """256 ints: T[d] = round(65536 * exp(-d * pre_scale))."""
        r = self.r
        out = [0] * 256  # one block, not a list grown between float temporaries
        for d in range(256):
            out[d] = round_away(r(self.exp(r(-d * pre_scale)) * 65536.0))
        return out

    def domain(self, lo, hi):
        """(scale, zp) of the int8 domain covering [lo, hi] (lo <= 0 <= hi)."""
        r = self.r
        d = r(hi - lo)
        scale = r(d / 255.0) if d > 0.0 else r(1.0 / 255.0)
        return scale, _clamp(round_away(r(-128.0 - r(lo / scale))), -128, 127)


# Output domains fixed by TFLite's int8 conventions.
FIXED_DOMAINS = {"sigmoid": (1.0 / 256.0, -128), "softmax": (1.0 / 256.0, -128), "tanh": (1.0 / 128.0, 0)}


def quantize_weights(r, w, b, units, inputs, in_scale):
    """(w_q, w_scale array('f'), bias_q list, row sums) for float32 weights w (units*inputs
    row-major) and biases b (units), per-unit symmetric scales. w_q is the int8
    weights as a bytearray of units*inputs two's-complement bytes (the QDense keeps
    it without a copy), row sums an array('i') of each unit's int8 weight sum.
    Allocates: units*inputs bytes plus O(units), nothing per weight (a list of
    them would cost 4-8 bytes each, in one block: 9 KB for 64x36 on a 32-bit board)."""
    # Every result is allocated once, before the loop: a list grown between the float
    # temporaries of the loop would leave holes that fragment a board's heap.
    wb = bytearray(units * inputs)
    sums = array("i", bytes(4 * units))
    ws = array("f", bytes(4 * units))
    bq = [0] * units
    for u in range(units):
        o = u * inputs
        top = 0.0
        for i in range(inputs):
            a = r(w[o + i])
            a = a if a >= 0.0 else 0.0 - a
            if a > top:
                top = a
        s = r(top / 127.0) if top > 0.0 else r(1.0 / 127.0)
        ws[u] = s
        total = 0
        for i in range(inputs):
            q = _clamp(round_away(r(r(w[o + i]) / s)), -127, 127)
            wb[o + i] = q & 0xFF
            total += q
        sums[u] = total
        bq[u] = round_away(r(r(b[u]) / r(in_scale * s)))
    return wb, ws, bq, sums


def quantize(network, X, kernels=None):
    """An int8 QNetwork from a float `Network` and calibration inputs X (a
    sequence of input vectors). Dropout layers are dropped (identity at inference)."""
    dense = []
    for i, layer in enumerate(network.layers):
        if isinstance(layer, Dense):
            dense.append(layer)
        elif not isinstance(layer, Dropout):
            raise TypeError(
                "quantize layer %d: expected Dense or Dropout, got %s" % (i, type(layer).__name__)
            )
    if not len(X):
        raise ValueError("quantize calibration_X: expected at least one input vector, got 0")
    m32 = Math32()
    r = m32.r
    n = network.inputs
    # 1. input domain from the calibration data
    lo = hi = 0.0
    for x in X:
        if len(x) != n:
            raise ValueError("quantize calibration_X: expected vectors of %d values, got %d" % (n, len(x)))
        for v in x:
            v = r(v)
            if not v == v or v in (float("inf"), float("-inf")):
                raise ValueError("quantize calibration_X: expected finite values, got %r" % v)
            lo = v if v < lo else lo
            hi = v if v > hi else hi
    in_scale, in_zp = m32.domain(lo, hi)
    acts = quantize_inputs(X, n, in_scale, in_zp, kernels)
    return QNetwork(quantize_layers(dense, acts, in_scale, in_zp, kernels), kernels=kernels)


def quantize_inputs(X, n, in_scale, in_zp, kernels=None):
    """The input vectors X (n numbers each) quantized into the int8 domain (in_scale, in_zp)
    as the int8 network's float `predict` does: a list of offset-binary bytearrays (q + 128).
    Allocates n bytes per vector and O(n) scratch."""
    k = kernel_set(kernels)
    F, im, ish = input_quantizer(in_scale)
    im, ish = array("i", [im]), bytearray([ish & 0xFF])
    xf = array("f", bytes(4 * n))
    fx = array("i", bytes(4 * n))
    acts = []  # offset-binary activations of every calibration sample
    for x in X:
        for i in range(n):
            xf[i] = x[i]
        q = bytearray(n)
        k.f32_to_fixed(xf, fx, n, F)
        _requant(k, fx, im, ish, im, ish, 0, q, n, in_zp, -128, 127)
        acts.append(q)
    return acts


def quantize_layers(dense, acts, in_scale, in_zp, kernels=None):
    """QDense layers (a list) from the float Dense layers `dense`, chained, the first
    taking inputs in the fixed int8 domain (in_scale, in_zp); `acts` are its calibration
    inputs in that domain (offset-binary bytearrays, as `quantize_inputs` gives them).
    Steps 2-5 of docs/quantization.md; allocates the layers and one bytearray per
    calibration vector per layer."""
    k = kernel_set(kernels)
    m32 = Math32()
    r = m32.r
    layers = []
    for li, layer in enumerate(dense):
        units, inputs = layer.units, layer.inputs
        act = layer.activation
        name = builtin_name(act)
        if name is None:
            raise ValueError(
                "quantize layer %d activation: expected a built-in activation, got the custom "
                "activation %r named %r" % (li, act, getattr(act, "name", None))
            )
        if name == "softmax" and li != len(dense) - 1:
            raise ValueError("quantize layer %d: softmax is allowed on the last layer only" % li)
        wb, ws, bq, acc0 = quantize_weights(r, layer.w, layer.b, units, inputs, in_scale)
        # 3. integer calibration: accumulator range per unit (acc0: row sums, then the
        # accumulator's start, bias - (in_zp + 128) * rowsum)
        zp = in_zp + 128
        for u in range(units):
            acc0[u] = bq[u] - zp * acc0[u]
        acc = array("i", bytes(4 * units))
        amin = array("i", bytes(4 * units))
        amax = array("i", bytes(4 * units))
        for j in range(len(acts)):
            k.dot(acts[j], wb, acc0, acc, inputs, units)
            for u in range(units):
                a = acc[u]
                if j == 0 or a < amin[u]:
                    amin[u] = a
                if j == 0 or a > amax[u]:
                    amax[u] = a
        plo = phi = 0.0
        for u in range(units):
            bs = r(in_scale * ws[u])
            v = r(r(float(amin[u])) * bs)
            plo = v if v < plo else plo
            v = r(r(float(amax[u])) * bs)
            phi = v if v > phi else phi
        # 4. output and pre-activation domains
        pre_scale, pre_zp = m32.domain(plo, phi)
        alpha = 0.0
        if name == "linear":
            out_scale, out_zp = pre_scale, pre_zp
        elif name == "relu":
            out_scale, out_zp = m32.domain(0.0, phi)
            pre_scale, pre_zp = out_scale, out_zp
        elif name == "leaky_relu":
            alpha = r(act.alpha)
            out_scale, out_zp = m32.domain(r(alpha * plo), phi)
        elif name == "softplus":
            out_scale, out_zp = m32.domain(0.0, r(phi + _LN2))
        else:
            out_scale, out_zp = FIXED_DOMAINS[name]
        mult = [0] * units
        shift = [0] * units
        for u in range(units):
            mult[u], shift[u] = scales_multiplier(in_scale, ws[u], pre_scale)
        extra = {}
        if name == "leaky_relu":
            mp, sp = float_multiplier(r(pre_scale / out_scale))
            mn, sn = float_multiplier(r(r(pre_scale * alpha) / out_scale)) if alpha > 0.0 else (0, 0)
            extra = {"mult_pos": mp, "shift_pos": sp, "mult_neg": mn, "shift_neg": sn}
        elif name in ("sigmoid", "tanh", "softplus"):
            extra = {"lut": m32.lut(name, pre_scale, pre_zp, out_scale, out_zp)}
        elif name == "softmax":
            extra = {"exp_table": m32.exp_table(pre_scale)}
        q = QDense.from_params(
            inputs,
            units,
            wb,
            ws,
            bq,
            in_scale,
            in_zp,
            out_scale,
            out_zp,
            activation=name,
            mult=mult,
            shift=shift,
            pre_scale=pre_scale,
            pre_zp=pre_zp,
            alpha=alpha,
            **extra,
        )
        layers.append(q)
        if li + 1 < len(dense):  # this layer's int8 outputs feed the next calibration step
            net = QNetwork([q], kernels=kernels)
            nxt = []
            for x in acts:
                net._xq[:] = x
                nxt.append(bytearray(k.forward(net)))
            acts = nxt
        in_scale, in_zp = out_scale, out_zp
    return layers
