"""int8 kernels in plain Python: the fallback of `kernels_viper`.

For CPython, CircuitPython and ports without the native emitter. Same signatures, same
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
MicroPython also allocates a call frame of more than 11 words (arguments,
locals, evaluation stack; `python tools/mpy_frames.py`) on the heap at every
call: most kernels have one, allocated once per call (per layer), and the
per-element arithmetic is written inline, never as a helper called per
element (a helper that stays within 11 words, like `_bitlen31`, is free).
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


def dense(w, x, y, p, t):
    """One dense layer, fused: y = act(clamp(pre_zp + round(double(acc) * R), lo, hi)).

    w: (units, n) int8 row-major; x: (n,) offset-binary; y: (units,) offset-binary
    out; t: 256 int8, the activation table applied when p[5] (else unused: any
    bytes). p: array('i'), the parameter block `QDense` builds: n, units, pre_zp,
    lo, hi, p[5], then per unit acc0, A, M, qh, ql, r | F << 8 | k << 16.

    acc = acc0 - 128 * sum(x) + sum((w + 128) * x): the weights read as w ^ 0x80,
    an unsigned multiply-accumulate (partial sums grow from acc0 - 128 * sum(x),
    whose bound QDense checks). The requantization (`rescale`'s integers) first
    tries a 31-bit bracket of |acc| * R (see `quant._unit_record`); a unit whose
    bracket holds a rounding boundary takes the exact path.
    """
    n = p[0]
    units = p[1]
    zp = p[2]
    lo = p[3]
    hi = p[4]
    use = p[5]
    sx = 0
    for i in range(n):
        sx += x[i]
    c = sx << 7
    o = 0
    r0 = 6
    for u in range(units):
        a = p[r0] - c
        for i in range(n):
            a += (w[o + i] ^ 0x80) * x[i]
        o += n
        neg = a < 0
        if neg:
            a = 0 - a
        if a > p[r0 + 1]:
            v = 256  # |acc| * R >= 256: saturates after any zero point
        else:
            rfk = p[r0 + 5]
            r = rfk & 0xFF
            f = (rfk >> 8) & 0xFF
            a1 = a >> r
            m = p[r0 + 2]
            tt = a1 * m  # |acc| * R * 2^F in [tt, tt + a1 + m + 1)
            half = 1 << (f - 1)
            h = tt >> f
            e = (tt & ((half << 1) - 1)) + a1 + m + 1
            v = -1
            if e < half:  # the bracket ends below h + 1/2
                v = h
            elif (tt & ((half << 1) - 1)) >= half and e < (half << 1) + half:  # within [h + 1/2, h + 3/2)
                v = h + 1
            if v < 0:
                v = _rescale1(a, p[r0 + 3], p[r0 + 4], rfk >> 16)
        if neg:
            v = 0 - v
        v += zp
        if v < lo:
            v = lo
        elif v > hi:
            v = hi
        if use:
            y[u] = t[v + 128] ^ 0x80
        else:
            y[u] = v + 128
        r0 += 6


def _bitlen31(v):
    """Bit length of 0 <= v < 2^31."""
    b = 0
    if v >> 16:
        v = v >> 16
        b += 16
    if v >> 8:
        v = v >> 8
        b += 8
    if v >> 4:
        v = v >> 4
        b += 4
    if v >> 2:
        v = v >> 2
        b += 2
    if v >> 1:
        v = v >> 1
        b += 1
    return b + v


def rescale(acc, qh, ql, kk, n):
    """acc[i] = round(double(acc[i]) * R[i]), in place: ai-edge-litert's reference
    FULLY_CONNECTED requantization, a float64 product rounded half away from zero.

    acc: (n,) int32; R[i] = (qh[i] * 2^22 + ql[i]) * 2^-kk[i], the double
    in_scale * w_scale / pre_scale (53-bit significand: qh (n,) int32 < 2^31,
    ql (n,) int32 < 2^22; kk (n,) bytes). In integers: P = |acc| * significand
    (84 bits, three 31-bit words), rounded to 53 bits (nearest even: the
    float64 product), then to an integer at bit kk (half up on |acc|).
    Not on the predict path (`dense` decides most units without it), so the
    per-element helper's call frame is acceptable here.
    """
    for i in range(n):
        a = acc[i]
        if a < 0:
            acc[i] = 0 - _rescale1(0 - a, qh[i], ql[i], kk[i])
        else:
            acc[i] = _rescale1(a, qh[i], ql[i], kk[i])


def _rescale1(a, qh, ql, k):
    """round(a * (qh * 2^22 + ql) * 2^-k) for 0 <= a < 2^31 with the float64 product's
    rounding (see `rescale`): the exact path of `rescale` and `dense`."""
    # Schoolbook products of 11-bit limbs (partial products < 2^22, column sums
    # c < 2^24), carried column by column and repacked into 31-bit words (hi, lo).
    a0 = a & 0x7FF
    a1 = (a >> 11) & 0x7FF
    a2 = a >> 22
    m = qh  # A = a * qh (62 bits) as (ah, al)
    m0 = m & 0x7FF
    m1 = (m >> 11) & 0x7FF
    m2 = m >> 22
    c0 = a0 * m0
    c1 = a0 * m1 + a1 * m0 + (c0 >> 11)
    c2 = a0 * m2 + a1 * m1 + a2 * m0 + (c1 >> 11)
    c3 = a1 * m2 + a2 * m1 + (c2 >> 11)
    c4 = a2 * m2 + (c3 >> 11)
    al = (c0 & 0x7FF) | ((c1 & 0x7FF) << 11) | ((c2 & 0x1FF) << 22)
    ah = ((c2 >> 9) & 3) | ((c3 & 0x7FF) << 2) | (c4 << 13)
    m = ql  # B = a * ql (53 bits; ql < 2^22: two limbs) as (bh, bl)
    m0 = m & 0x7FF
    m1 = m >> 11
    c0 = a0 * m0
    c1 = a0 * m1 + a1 * m0 + (c0 >> 11)
    c2 = a1 * m1 + a2 * m0 + (c1 >> 11)
    c3 = a2 * m1 + (c2 >> 11)
    bl = (c0 & 0x7FF) | ((c1 & 0x7FF) << 11) | ((c2 & 0x1FF) << 22)
    bh = ((c2 >> 9) & 3) | (c3 << 2)
    # P = A * 2^22 + B = w2 * 2^62 + w1 * 2^31 + w0
    t = (al & 0x1FF) + (bl >> 22)
    w0 = ((t & 0x1FF) << 22) | (bl & 0x3FFFFF)
    t = (al >> 9) + bh + (t >> 9)
    w1 = t & 0x3FFFFF
    t = (ah & 0x1FF) + (t >> 22)
    w1 = w1 | ((t & 0x1FF) << 22)
    w2 = (ah >> 9) + (t >> 9)
    if w2:
        d = 9 + _bitlen31(w2)  # bit length - 53
    elif w1:
        d = _bitlen31(w1) - 22
    else:
        d = 0
    if d < 0:
        d = 0
    # T = P >> d (at most 54 bits) as (th, tl), rounded to nearest even
    if d == 0:
        th = w1
        tl = w0
    else:
        if d == 31:
            th = w2
            tl = w1
            g = w0 >> 30
            st = w0 & 0x3FFFFFFF
        else:
            th = (w1 >> d) | (w2 << (31 - d))
            tl = (w0 >> d) | ((w1 & ((1 << d) - 1)) << (31 - d))
            g = (w0 >> (d - 1)) & 1
            st = w0 & ((1 << (d - 1)) - 1)
        if g and (st or tl & 1):
            if tl == 0x7FFFFFFF:
                tl = 0
                th += 1
            else:
                tl += 1
    s = k - d  # >= 20 for a layer within its bound
    if s <= 31:
        v = (th << (31 - s)) + (tl >> s) + ((tl >> (s - 1)) & 1)
    elif s <= 55:
        v = (th >> (s - 31)) + ((th >> (s - 32)) & 1)
    else:
        v = 0
    return v


def mbqm(acc, mp, sp, mn, sn, step, n):
    """acc[i] = MultiplyByQuantizedMultiplier(acc[i], m, s), in place.

    acc: (n,) int32; (m, s) = (mp[j], sp[j]) if acc[i] >= 0 else (mn[j], sn[j]),
    j = i * step (step 1: per unit, 0: one multiplier); mp, mn: int32 in
    [0, 2^31); sp, sn: int8 shifts in [-31, 30]. One rounding, half away
    from zero (as ai-edge-litert's reference FULLY_CONNECTED):
    sign(acc) * ((|acc| * m + 2^(k - 1)) >> k) with k = 31 - s, the 62-bit
    product |acc| * m emulated with 11-bit limbs.
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
        k = 31 - s  # in [1, 62]
        neg = a < 0
        if neg:
            a = 0 - a
        # P = a * m (62 bits) as hi * 2^31 + lo from 11-bit limbs, inlined as in
        # `rescale` (a helper's call frame and result tuple would be heap objects)
        a0 = a & 0x7FF
        a1 = (a >> 11) & 0x7FF
        a2 = a >> 22
        m0 = m & 0x7FF
        m1 = (m >> 11) & 0x7FF
        m2 = m >> 22
        c0 = a0 * m0
        c1 = a0 * m1 + a1 * m0 + (c0 >> 11)
        c2 = a0 * m2 + a1 * m1 + a2 * m0 + (c1 >> 11)
        c3 = a1 * m2 + a2 * m1 + (c2 >> 11)
        c4 = a2 * m2 + (c3 >> 11)
        lo = (c0 & 0x7FF) | ((c1 & 0x7FF) << 11) | ((c2 & 0x1FF) << 22)
        hi = ((c2 >> 9) & 3) | ((c3 & 0x7FF) << 2) | (c4 << 13)
        # (P + 2^(k - 1)) >> k = (P >> k) + bit k - 1 of P
        if k <= 31:
            v = (hi << (31 - k)) + (lo >> k) + ((lo >> (k - 1)) & 1)  # < 2^31: the layer's bound
        else:
            v = (hi >> (k - 31)) + ((hi >> (k - 32)) & 1)
        acc[i] = 0 - v if neg else v


def mbqm_dr(acc, mp, sp, mn, sn, step, n):
    """acc[i] = gemmlowp's MultiplyByQuantizedMultiplier (double rounding), in
    place: TFLite's LEAKY_RELU (and RELU with requantization) rounds this way.

    acc: (n,) int32; (m, s) = (mp[j], sp[j]) if acc[i] >= 0 else (mn[j], sn[j]),
    j = i * step (step 1: per unit, 0: one multiplier); mp, mn: int32 in
    [0, 2^31); sp, sn: int8 shifts in [-31, 30]. The rounding doubling high
    multiply emulated with 16-bit halves, then a rounding divide by 2^-s.
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
    """acc[i] = round(xf[i] * 2^F) (half away from zero), saturated to +-2^30;
    NaN -> 0.

    xf: (n,) float32 values (array('f')); acc: (n,) int32. Scales with ldexp
    (exact: a float32 times a power of two) where the viper kernel reads the
    IEEE bits: same value, same integer. Two floats per element are heap
    objects here (the element read and its scaled value).
    """
    from math import ldexp

    top = ldexp(1.0, 30 - F)  # |x| >= top: |x| * 2^F >= 2^30, saturates
    mid = ldexp(1.0, 29 - F)  # |x| >= mid: x * 2^F is an integer (24-bit significand)
    ntop = 0.0 - top
    nmid = 0.0 - mid
    F1 = F + 1
    for i in range(n):
        x = xf[i]
        if x != x:
            v = 0
        elif x >= top:
            v = _CAP
        elif x <= ntop:
            v = 0 - _CAP
        elif x >= mid or x <= nmid:
            v = int(ldexp(x, F))
        else:  # |y| < 2^29, y = x * 2^F: from t = trunc(2y), round(|y|) = (|t| + 1) >> 1
            t = int(ldexp(x, F1))
            v = (t + 1) >> 1 if t >= 0 else 0 - ((1 - t) >> 1)
        acc[i] = v


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


def softmax_tfl(y, table, n):
    """TFLite's int8 SOFTMAX (its float-table kernel), in place, in integers.

    y: (n,) offset-binary logits -> probabilities (scale 1/256, zp -128);
    table: (256,) int32, the float32 bits of T[d] = expf(-beta * in_scale * d)
    (T[0] = 1.0, all in [0, 1]). TFLite sums T[max - q] in float32 in order,
    takes inv = 1 / (sum / 256) and outputs round(T[max - q] * inv) - 128, each
    float32 operation correctly rounded: emulated here on the IEEE bits.
    """
    top = 0
    for i in range(n):
        if y[i] > top:
            top = y[i]
    s = 0  # float32 bits of the running sum (non-negative: bits order as values)
    for i in range(n):
        a = table[top - y[i]]
        b = s
        if a < b:
            a = s
            b = table[top - y[i]]
        if b == 0:
            s = a
            continue
        ea = a >> 23
        ma = a & 0x7FFFFF
        if ea == 0:
            ea = 1
        else:
            ma = ma | 0x800000
        eb = b >> 23
        mb = b & 0x7FFFFF
        if eb == 0:
            eb = 1
        else:
            mb = mb | 0x800000
        d = ea - eb
        if d > 26:  # b is below a quarter ulp of a
            s = a
            continue
        mb = mb << 3  # 3 extra bits: guard, round, sticky
        if d > 0:
            st = 1 if mb & ((1 << d) - 1) else 0
            mb = (mb >> d) | st
        v = (ma << 3) + mb  # < 2^28
        if v >= 0x8000000:
            v = (v >> 1) | (v & 1)
            ea += 1
        r = v & 7
        v = v >> 3
        if r > 4 or (r == 4 and v & 1):  # nearest, ties to even
            v += 1
        if v == 0x1000000:
            v = 0x800000
            ea += 1
        s = v if v < 0x800000 else (ea << 23) | (v & 0x7FFFFF)
    # inv = 1 / (s * 2^-8) = 2^(158 - es) / ms, s >= 1.0 (T[0] is in the sum)
    es = s >> 23
    ms = (s & 0x7FFFFF) | 0x800000
    if ms == 0x800000:
        mi = 0x800000
        ei = 262 - es
    else:
        r = 0x1000000  # 2^24 / ms in (1, 2): 24 quotient bits, remainder < 2 ms
        q = 0
        for _ in range(24):
            q = q << 1
            if r >= ms:
                q = q | 1
                r -= ms
            r = r << 1
        if r > ms or (r == ms and q & 1):
            q += 1
        ei = 261 - es
        if q == 0x1000000:
            q = 0x800000
            ei += 1
        mi = q
    ih = mi >> 12
    il = mi & 0xFFF
    for i in range(n):
        t = table[top - y[i]]
        et = t >> 23
        q = 0
        if et >= 117:  # else t * inv < 2^-10 * 256: rounds to 0
            mt = (t & 0x7FFFFF) | 0x800000
            th = mt >> 12
            tl = mt & 0xFFF
            # P = mt * mi (48 bits) = c2 * 2^24 + lo, from 12-bit halves
            c0 = tl * il
            c1 = th * il + tl * ih + (c0 >> 12)
            c2 = th * ih + (c1 >> 12)
            lo = ((c1 & 0xFFF) << 12) | (c0 & 0xFFF)
            # float32 product: 24 significant bits, nearest even
            if c2 >= 0x800000:
                m = c2
                rem = lo
                half = 0x800000
                e = 276 - et - ei  # product = m * 2^-e
            else:
                m = (c2 << 1) | (lo >> 23)
                rem = lo & 0x7FFFFF
                half = 0x400000
                e = 277 - et - ei
            if rem > half or (rem == half and m & 1):
                m += 1
            if e <= 26:  # e >= 14 (t <= 1, inv <= 256); round half away (up: positive)
                q = (m + (1 << (e - 1))) >> e
        y[i] = q if q < 255 else 255  # q - 128 clamped to int8, as offset-binary


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
    plan = net._plan  # (w, p, table, y) per layer
    x = net._xq
    for i in range(0, 4 * net._nl, 4):
        y = plan[i + 3]
        dense(plan[i], x, y, plan[i + 1], plan[i + 2])
        x = y
    L = net._last
    if L.code == 3:  # softmax (last layer only)
        L.sum = softmax(x, L.acc, L.exp_table, L.units)
    elif L.code == 4:  # TFLite's softmax
        softmax_tfl(x, L.exp_table, L.units)
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
