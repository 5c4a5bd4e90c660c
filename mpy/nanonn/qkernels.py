"""int8 kernels in plain Python: the fallback of `qkernels_viper` (CPython,
CircuitPython, ports without the native emitter). Same signatures, same
integers, same 32-bit-clean arithmetic as the viper kernels (every
intermediate fits a signed 32-bit int; `tests/test_quant_safety.py` checks it
by running these functions on checked ints).

Buffers and offsets in, nothing sliced. Conventions (docs/quantization.md):
activations travel between kernels as offset-binary bytes (`q + 128`, 0..255);
weights, shifts and LUTs are int8 two's-complement bytes (read as 0..255);
accumulators and multipliers are array('i') (int32).

Each kernel writes into the buffers it is given and allocates no buffer or
container; but on 32-bit ports an int of magnitude 2^30 or more (int32
accumulators, multipliers) is a heap object, and `f32_to_fixed`/`div_f32`
work on floats, so these allocate where the viper kernels allocate nothing.
"""

_CAP = 1 << 30  # fixed-point inputs saturate here


def dot(x, w, acc0, acc, n, units):
    """acc[u] = acc0[u] + sum_i w[u, i] * x[i].

    x: (n,) offset-binary uint8; w: (units, n) int8 row-major; acc0, acc: (units,) int32.
    """
    o = 0
    for u in range(units):
        a = acc0[u]
        for i in range(n):
            a += ((w[o + i] ^ 0x80) - 0x80) * x[i]
        acc[u] = a
        o += n


def mbqm(acc, mp, sp, mn, sn, step, n):
    """acc[i] = MultiplyByQuantizedMultiplier(acc[i], m, s), in place.

    acc: (n,) int32; (m, s) = (mp[j], sp[j]) if acc[i] >= 0 else (mn[j], sn[j]),
    j = i * step (step 1: per unit, 0: one multiplier); mp, mn: int32 in
    [0, 2^31); sp, sn: int8 shifts in [-31, 30]; y: (n,) offset-binary out.
    TFLite's rounding doubling high multiply, emulated with 16-bit halves.
    """
    j = 0
    for i in range(n):
        a = acc[i]
        if a >= 0:
            m = mp[j]
            s = (sp[j] ^ 0x80) - 0x80
        else:
            m = mn[j]
            s = (sn[j] ^ 0x80) - 0x80
        j += step
        r = 0
        if s > 0:
            a = a << s  # in range: the layer's bound check covers the left shift
        else:
            r = 0 - s
        # v = (a * m + nudge) / 2^31 truncated toward zero, on |a|
        neg = a < 0
        if neg:
            a = 0 - a
        ah = a >> 16
        al = a & 0xFFFF
        mh = m >> 16
        ml = m & 0xFFFF
        t1 = (al >> 1) * ml  # al * ml = 2 * t1 + (al & 1) * ml, kept below 2^31
        c = ((t1 & 0x7FFF) << 1) + (ml if al & 1 else 0)
        mid1 = ah * ml + (t1 >> 15) + (c >> 16)
        mid2 = al * mh + (mid1 & 0xFFFF)
        hi32 = ah * mh + (mid1 >> 16) + (mid2 >> 16)
        # a * m = hi32 * 2^32 + (mid2 & 0xFFFF) * 2^16 + (c & 0xFFFF)
        if neg:  # nudge 2^30 - 1 on the magnitude (1 - 2^30 on the signed product)
            t = (c & 0xFFFF) + 0xFFFF
            v = (mid2 & 0xFFFF) + 0x3FFF + (t >> 16)
        else:  # nudge 2^30
            v = (mid2 & 0xFFFF) + 0x4000
        v = (hi32 << 1) + (v >> 15)
        if neg:
            v = 0 - v
        if r > 0:  # rounding divide by 2^r
            h = 1 << (r - 1)
            mask = (h - 1) + h
            thr = h - 1
            if v < 0:
                thr += 1
            rem = v & mask
            v = v >> r
            if rem > thr:
                v += 1
        acc[i] = v


def clamp8(acc, y, n, zp, lo, hi):
    """y[i] = clamp(acc[i] + zp, lo, hi) + 128. acc: (n,) int32; y: (n,) offset-binary."""
    for i in range(n):
        v = acc[i] + zp
        if v < lo:
            v = lo
        elif v > hi:
            v = hi
        y[i] = v + 128


def f32_to_fixed(xf, acc, n, F):
    """acc[i] = round(xf[i] * 2^F), saturated to +-2^30; NaN -> 0.

    xf: (n,) float (array('f')); acc: (n,) int32. Uses frexp (exact) where
    the viper kernel reads the IEEE bits: same value, same integer.
    """
    from math import frexp

    for i in range(n):
        x = xf[i]
        if x != x:
            acc[i] = 0
            continue
        neg = x < 0
        if neg:
            x = 0.0 - x
        if x == float("inf"):
            v = _CAP
        else:
            f, e = frexp(x)
            m = int(f * 16777216.0)  # exact: the 24-bit significand
            k = e - 24 + F
            if m == 0:
                v = 0
            elif k >= 0:
                v = _CAP if k > 30 or m > (_CAP >> k) else m << k
            elif k < -25:
                v = 0
            else:
                k = 0 - k
                v = (m + (1 << (k - 1))) >> k
        acc[i] = 0 - v if neg else v


def offset(y, acc, n, zp):
    """acc[i] = (y[i] - 128) - zp. y: (n,) offset-binary; acc: (n,) int32."""
    for i in range(n):
        acc[i] = y[i] - 128 - zp


def lut(y, table, n):
    """y[i] = table[y[i]] (int8 table indexed by q + 128), in place, offset-binary."""
    for i in range(n):
        y[i] = table[y[i]] ^ 0x80


def from_int8(src, dst, n):
    """dst[i] = src[i] + 128: int8 (bytes of two's complement or array('b')) -> offset-binary."""
    for i in range(n):
        dst[i] = (src[i] + 128) & 0xFF


def to_int8(src, dst, n):
    """dst[i] = src[i] - 128: offset-binary -> int8 (dst: array('b'))."""
    for i in range(n):
        dst[i] = src[i] - 128


def softmax(y, e, table, n):
    """Integer softmax in place: y (n,) offset-binary logits -> probabilities
    (scale 1/256, zp -128). e: (n,) int32 scratch receives exp_table[max - q].
    Returns s = sum(e) (< 2^30 for n <= 16383)."""
    top = 0
    for i in range(n):
        if y[i] > top:
            top = y[i]
    s = 0
    for i in range(n):
        v = table[top - y[i]]
        e[i] = v
        s += v
    half = s >> 1
    for i in range(n):
        q = ((e[i] << 8) + half) // s
        y[i] = q if q < 255 else 255
    return s


def div_f32(e, s, out, n):
    """out[i] = float32(e[i] / s), rounded to nearest even, computed in
    integers (0 <= e[i] <= s < 2^30). e: (n,) int32; out: (n,) array('f')."""
    from math import ldexp

    for i in range(n):
        r = e[i]
        if r == 0:
            out[i] = 0.0
            continue
        j = 0
        while r < s:  # s <= r * 2^j < 2s
            r = r << 1
            j += 1
        q = 0
        for _ in range(24):  # 24 significand bits, remainder kept below 2s
            q = q << 1
            if r >= s:
                q = q | 1
                r -= s
            r = r << 1
        if r > s or (r == s and q & 1):
            q += 1
        out[i] = ldexp(q, 0 - 23 - j)


def dequant(y, table, out, n):
    """out[i] = table[y[i]]: y (n,) offset-binary, table (256,) array('f')."""
    for i in range(n):
        out[i] = table[y[i]]


def forward(net):
    """Every layer of a QNetwork on net._xq (offset-binary); returns the last layer's y."""
    x = net._xq
    for L in net._layers:
        u = L.units
        acc, y = L.acc, L.y
        dot(x, L.w, L.acc0, acc, L.inputs, u)
        mbqm(acc, L.mult, L.shift, L.mult, L.shift, 1, u)
        clamp8(acc, y, u, L.pre_zp, L.lo, L.hi)
        if L.code == 1:  # leaky_relu
            offset(y, acc, u, L.pre_zp)
            mbqm(acc, L.mp, L.sp, L.mn, L.sn, 0, u)
            clamp8(acc, y, u, L.out_zp, -128, 127)
        elif L.code == 2:  # lookup table
            lut(y, L.lut, u)
        elif L.code == 3:  # softmax
            L.sum = softmax(y, acc, L.exp_table, u)
        x = y
    return x


def predict_int8(net, x):
    """x: (inputs,) int8 -> net._out8: (outputs,) int8."""
    from_int8(x, net._xq, net.inputs)
    out = net._out8
    to_int8(forward(net), out, net.outputs)
    return out


def predict_float(net, x):
    """x: (inputs,) array('f') -> net._out: (outputs,) array('f')."""
    n = net.inputs
    fx = net._fx
    f32_to_fixed(x, fx, n, net._in_F)
    mbqm(fx, net._in_m, net._in_s, net._in_m, net._in_s, 0, n)
    clamp8(fx, net._xq, n, net._in_zp, -128, 127)
    y = forward(net)
    out = net._out
    last = net._last
    if net._soft:
        div_f32(last.acc, last.sum, out, net.outputs)
    else:
        dequant(y, net._deq, out, net.outputs)
    return out
