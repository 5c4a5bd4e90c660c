"""Momentum SGD's step with the velocity in block fixed point, in viper.

`momentum_rows`: v = mu v + c x, then w += v, in one pass over the weights. The weights
stay float32; the velocity is not float32 but integers with one exponent per row (a unit's
weights, or a layer's biases): v[j] = V[j] 2^E[row], kept with a bound B >= max |V| below
2^29 (rescaled at a step's start when the step could overflow it, or when B has fallen
below 2^21: then |V| <= 2^26 again). So mu v + c x is integer work with no float32
rounding of v:

- mu is taken to 30 bits (exact for mu >= 2^-6); mu V is rounded to the row's unit 2^E
  (its low part's mean added back: a bias below 1/4 of a unit, which v would sum up);
- c times its factor (c[r] mu[1]: -step d) to 24 bits, rounded, once per row; x to 24 bits
  at the exponent of its largest element (an element 2^-k of the largest keeps 24 - k
  bits), read once per call (or per row where each row has its own x); their product to
  2^-24 of |c| max|x| (three 12-bit products, the low halves' through C / 2^12 rounded),
  rounded to the row's unit;
- w + v rounded once to float32, half away from zero, from v's bits down to 1/16 of w's
  ulp: within half an ulp of w + v plus 1/16 ulp of w plus the row's unit (2^-26 of B or
  finer). Where the sum stays in w's binade it is w's bit pattern plus the rounded
  difference (one add), otherwise the full normalization. Two weights a step.

So v differs from the float32 recurrence by about 2^-24 of each step's largest |c x| (not
of each element's own); a step's weights stay within 1e-5 of the float64 reference
(tests/test_reference_parity.py, `make bench-float`) and training reaches the accuracy of the float32 reference in the same
epochs (tests/test_momentum_accuracy.py). Limits: a row whose velocity
would exceed 2^90, or whose c, x or factor is infinite or NaN, sets that row's weights to
NaN (its velocity is left as it was); a velocity's bits below 2^-153 are dropped, and an
element keeps the row's unit, not its own (a v 2^-k of the row's largest keeps about
26 - k bits); an
infinite or NaN weight stays. Zeros stay exact: a row with c = 0 and v = 0 is not touched,
an element with x = 0 gets no term, v = 0 stays 0.

`st` holds each row's state (E, then B: 0 for a row not yet started) and, after 2 rows
words, the scratch of x's integers (2 n words): a zero-filled `st` is a zero velocity
(`v` is then ignored; a started row stores V + 2^29, in (0, 2^30)). Every intermediate
fits a signed 32-bit integer (the bounds at each step below). A module of its own: its
native code is a few KB, which `Dense` spends only where the heap holds at least 1 MB (the
first rule of `Dense(cache=None)`); a board-sized heap takes three `axpy_rows` passes with a
float32 velocity. Allocates nothing.
"""

import micropython


@micropython.viper
def momentum_rows(w: ptr32, xs: int, st: ptr32, v: ptr32, x: ptr32, c: ptr32, mu: ptr32, rows: int, n: int):
    """v = mu[0] v + c mu[1] x, then w += v, over rows r < rows of n weights (module
    docstring): xs = 0: one x for every row and c[r] per row (one sample: x the input, c
    = d, mu[1] = -step); xs = n: row r's own x at x[r * n] and c[0] for all (a batch: x
    the gradient sums, c = 1). (xs is the second parameter for its slot: a register.)"""
    # w: (rows, n) float32 bits; v: (rows, n) int32 V + 2^29; st: (rows, 2) int32 (E, a
    # bound on |V|), then (n, 2) int32 x's scratch: (X >> 12) + 4096, X & 0xFFF with
    # |X| <= 2^24. The first three parameters' slots are registers where the emitter has
    # them: w and st are walked by pointers in the inner loop, xs's slot holds each V.
    xo = xs  # then xs's slot (a register where the emitter has 3) holds each weight's V
    b31 = 31
    m31 = 1 << b31
    b22 = 22  # shifts by a variable: a literal >= 2^30 is a boxed object in viper on 32-bit ports
    nan = 0x1FF << b22
    inf = 0x1FE << b22
    b29 = 1 << 29
    bm = mu[0]  # 0 <= mu < 1 (Network.fit checks): M = mu 2^30 (exact for mu >= 2^-6)
    em = (bm >> 23) & 0xFF
    k = 120 - em
    mm = 0
    if em and k < 25 and (bm >> 31) & 1 == 0:
        mm = (bm & 0x7FFFFF) | 0x800000
        if k < 0 - 6:
            mm = 1 << 24  # mu >= 1: clamped to 1 (fit refuses it)
            k = 0 - 6
        if k > 0:
            mm = (mm + (1 << (k - 1))) >> k
        else:
            mm = mm << (0 - k)  # <= 2^30
    mh = mm >> 15  # <= 2^15
    ml = mm & 0x7FFF
    # mu S's floor and the Sl Ml / 2^30 it drops lose 1/2 + ml / 2^16 of a unit on average:
    # Ml + 1 (+ 2 for ml >= 2^14) gives Sh / 2^15 (2^14 + V / 2^15: 1/2 a unit, plus mu
    # changed by 2^-30) back, so the bias left is below 1/4 of a unit (v would sum it up)
    if ml >> 14:
        ml += 2
    else:
        ml += 1
    k = b29  # kk's part: 2^29 - mu 2^29, as the inner loop forms mu S
    m29 = k - ((k >> 15) * mh + ((((k & 0x7FFF) * mh) + ((k >> 15) * ml)) >> 15))
    bm = mu[1]  # c's factor (-step): its mantissa as 12-bit halves, its exponent, sign
    gs = bm & m31
    ge = (bm >> 23) & 0xFF
    gh = bm & 0x7FFFFF
    if ge:
        gh = gh | 0x800000
    else:
        ge = 1
    gl = gh & 0xFFF
    gh = gh >> 12
    s0 = int(st)
    q0 = s0 + 8 * rows  # x's scratch
    wr = int(w)  # row r's weights and velocity
    vr = int(v)
    xm = 0  # the largest biased exponent of x (0: all zeros)
    xa = 0  # the largest |X|
    xbad = 0  # an infinite or NaN x
    et = 0  # the term's exponent (set where a row has one)
    a0 = 0  # lanes 0 and 1's V where the general sum takes them
    a1 = 0
    for r in range(rows):
        if r == 0 or xo:
            # X = x / 2^(xm - 150) to 24 bits, rounded (|X| <= 2^24): as 12-bit halves
            k = int(x) + 4 * xo * r
            xp = ptr32(k)
            xm = 0
            xbad = 0
            for _ in range(n):
                b = xp[0]
                e = (b >> 23) & 0xFF
                if e == 255:
                    xbad = 1
                elif e > xm:
                    xm = e
                elif xm == 0 and b & 0x7FFFFF:
                    xm = 1  # a subnormal
                xp = ptr32(int(xp) + 4)
            xp = ptr32(k)
            qp = ptr32(q0)
            xa = 0
            for _ in range(n):
                b = xp[0]
                xp = ptr32(int(xp) + 4)
                e = (b >> 23) & 0xFF
                m = b & 0x7FFFFF
                if e:
                    m = m | 0x800000
                else:
                    e = 1
                k = xm - e
                if k >= 25:
                    m = 0
                elif k > 0:
                    m = (m + (1 << (k - 1))) >> k  # <= 2^23
                if m > xa:
                    xa = m
                if (b >> 31) & 1:
                    m = 0 - m
                qp[0] = (m >> 12) + 4096  # in [0, 8192)
                qp[1] = m & 0xFFF
                qp = ptr32(int(qp) + 8)
        if xo:
            bc = c[0]
        else:
            bc = c[r]
        # c = c[r] mu[1] = mc 2^(ec - 150): the mantissas' product to 28 bits (truncated),
        # then rounded to 24 (a bias here would add up in v)
        ec = (bc >> 23) & 0xFF
        mc = bc & 0x7FFFFF
        if ec:
            mc = mc | 0x800000
        else:
            ec = 1
        if ec == 255 or ge == 255:
            ec = 255
        elif mc:
            mc = ((gh * (mc >> 12)) << 4) + (
                (gh * (mc & 0xFFF) + gl * (mc >> 12) + ((gl * (mc & 0xFFF)) >> 12)) >> 8
            )
            ec += ge - 127
            if mc >> 27:
                mc = (mc + 8) >> 4  # <= 2^24
                ec += 1
            else:
                mc = (mc + 4) >> 3
        if (bc & m31) ^ gs:
            mc = 0 - mc
        sp = ptr32(s0 + 8 * r)
        ev = (sp[0] ^ m31) - m31  # the row's exponent E (sign-extended: x64 loads zero-extend)
        bv = sp[1]  # a bound on its |V| (< 2^29; 0: a row of zeros)
        if xbad or ec == 255:
            e = 61  # the row's weights become NaN
        else:
            # the term c x = P 2^et, P = (X C) >> 21, |P| <= 2^27 + 2^16
            et = xm + ec - 279
            if mc == 0 or xm == 0:
                mc = 0
                if bv == 0:
                    wr += 4 * n
                    vr += 4 * n
                    continue  # v = 0 stays, w + 0 = w
                et = 0 - 1000
            e = ev  # the row's new exponent: |V| < 2^28 there and P's shift >= 0
            if bv == 0:
                e = et
            elif bv >> 27 or ev < et or bv >> 21 == 0:
                lv = 0  # bv's bit length
                k = bv
                if k >> 16:
                    lv = 16
                    k = k >> 16
                if k >> 8:
                    lv += 8
                    k = k >> 8
                if k >> 4:
                    lv += 4
                    k = k >> 4
                if k >> 2:
                    lv += 2
                    k = k >> 2
                if k >> 1:
                    lv += 2
                elif k:
                    lv += 1
                k = ev + lv - 26  # the exponent that leaves V 26 bits
                if k < et:
                    k = et
                if lv > 27 or ev < et:
                    e = k  # grows (or the term would need a left shift): shift right
                elif k < ev:
                    e = k  # shrank below 2^21: shift left
            if e < 0 - 153:  # (then w's biased exponent 0 is below the fast path's)
                e = 0 - 153
        if e > 60:  # v beyond 2^90, or a non-finite c or x: the row's weights become NaN
            wp = ptr32(wr)
            for i in range(n):
                if (wp[i] >> 23) & 0xFF != 255:
                    wp[i] = nan
            wr += 4 * n
            vr += 4 * n
            continue
        vp = ptr32(vr)
        if bv == 0:  # a row of zeros: stored as 2^29 from here on
            for i in range(n):
                vp[i] = b29
        elif e != ev:  # rescale the row: V 2^ev = V' 2^e (a left shift keeps |V'| < 2^26)
            k = e - ev
            if k > 0:
                if k > 31:
                    k = 31
                for i in range(n):
                    vp[i] = ((vp[i] - b29) >> k) + b29
                bv = (bv >> k) + 1
            else:
                k = 0 - k
                for i in range(n):
                    vp[i] = ((vp[i] - b29) << k) + b29
                bv = bv << k
        # per weight: S = mu S + P' + kk, with C scaled to the row's unit (C 2^-sh, rounded):
        # P' from X's biased halves, P' - off = P; kk = 2^29 - mu 2^29 - off keeps S = V + 2^29
        if mc:
            k = e - et
            if k > 31:
                k = 31
            if k:
                mc = (mc + (1 << (k - 1))) >> k
        ch = mc >> 12  # |ch| <= 2^12, cl < 2^12
        cl = mc & 0xFFF
        cr = (mc + 2048) >> 12  # C / 2^12 rounded, for Xl: Xl Cl / 2^12 is then not dropped
        # (it was always >= 0: a bias), only Xl's share of the rounding, of either sign
        ch8 = ch << 3
        kk = m29 - (ch << 15) - (cl << 3)
        k = mc
        if k < 0:
            k = 0 - k
        pm = ((((xa >> 12) + 1) * ((k >> 12) + 1)) << 3) + 3  # a bound on |P|
        # the row's bound after the step: mu bv + 8 + pm (< 2^28 + 2^27 + 2^17 < 2^29); each
        # mu S is within 2 units of the exact product, so V' within 4 of mu V + P
        bv = (bv >> 15) * mh + ((((bv & 0x7FFF) * mh) + ((bv >> 15) * ml)) >> 15) + 8 + pm
        kw = e + 154  # w's biased exponent minus kw: the shift of V onto w's mantissa << 4
        # two weights a step (the loop's own work halved): lanes 0 and 1; a lane whose sum
        # leaves the fast path is done by the general sum after both (sl: which lanes)
        w = ptr32(wr - 8)  # one pair before: each step advances first, then reads [0], [1]
        v = ptr32(vr - 8)
        st = ptr32(q0 - 16)
        j = q0 + 8 * n - 8  # the last element's scratch (st, a register, is the counter)
        while int(st) < j - 15:
            w = ptr32(int(w) + 8)
            v = ptr32(int(v) + 8)
            st = ptr32(int(st) + 16)
            sl = 0
            xs = v[0]  # S = V + 2^29 in (0, 2^30), |V| < 2^28 (then below 2^29)
            # xs (a register) holds S, then V. mu S = (Sh Mh 2^30 + (Sl Mh + Sh Ml) 2^15 +
            # Sl Ml) / 2^30, the last dropped; each partial sum below 2^31: mu S < 2^30,
            # kk < 2^29 + 2^27, |Xh' ch8| <= 2^28
            xs = (xs >> 15) * mh + ((((xs & 0x7FFF) * mh) + ((xs >> 15) * ml)) >> 15) + kk
            if mc:  # (a row without a term: a dead ReLU unit's, often half of them)
                xs = xs + st[0] * ch8 + ((st[0] * cl + st[1] * cr + 256) >> 9)  # rounded
            v[0] = xs
            xs = xs - 0x20000000  # V
            bw = w[0]
            k = ((bw >> 23) & 0xFF) - kw
            if k >> 5:  # k < 0 or k >= 32: the general sum, below
                sl = 1
                a0 = xs
            else:  # v below 4 ulp of w, w normal
                t = xs >> k  # v in 1/16 of w's ulp
                if bw >> 31:
                    t = 0 - t
                t = bw + ((t + 8) >> 4)
                if (t ^ bw) >> 23:  # leaves w's binade: the general sum
                    sl = 1
                    a0 = xs
                else:
                    w[0] = t
            if int(st) != j:  # (n odd: the last pair is lane 0 alone)
                xs = v[1]  # S = V + 2^29 in (0, 2^30), |V| < 2^28 (then below 2^29)
                xs = (xs >> 15) * mh + ((((xs & 0x7FFF) * mh) + ((xs >> 15) * ml)) >> 15) + kk
                if mc:
                    xs = xs + st[2] * ch8 + ((st[2] * cl + st[3] * cr + 256) >> 9)
                v[1] = xs
                xs = xs - 0x20000000  # V
                bw = w[1]
                k = ((bw >> 23) & 0xFF) - kw
                if k >> 5:
                    sl = sl | 2
                    a1 = xs
                else:
                    t = xs >> k
                    if bw >> 31:
                        t = 0 - t
                    t = bw + ((t + 8) >> 4)
                    if (t ^ bw) >> 23:
                        sl = sl | 2
                        a1 = xs
                    else:
                        w[1] = t
            while sl:  # w + v in general: w = mw 2^(ew - 154), v = a 2^e
                if sl & 1:
                    sl = sl & 2
                    xs = a0
                    wp = ptr32(int(w))
                else:
                    sl = 0
                    xs = a1
                    wp = ptr32(int(w) + 4)
                bw = wp[0]
                ew = (bw >> 23) & 0xFF
                if ew == 255 or xs == 0 or ew - kw >= 32:
                    continue  # an infinite or NaN w stays; v below 2^-32 of w's ulp / 16
                mw = bw & 0x7FFFFF
                if ew:
                    mw = mw | 0x800000
                else:
                    ew = 1
                mw = mw << 4
                if bw >> 31:
                    mw = 0 - mw
                ew -= 154
                if ew >= e:
                    k = ew - e
                    if k > 31:
                        k = 31
                    mw += xs >> k  # |mw| < 2^28 + 2^30
                else:
                    k = e - ew
                    if k > 31:
                        k = 31
                    mw = xs + (mw >> k)
                    ew = e
                s = 0
                if mw < 0:
                    s = m31
                    mw = 0 - mw
                if mw >= 0x1000000:
                    t = mw >> 24  # < 2^7: k = its bit length, mw >> k < 2^24
                    k = 1
                    if t >= 16:
                        k = 5
                        t = t >> 4
                    if t >= 4:
                        k += 2
                        t = t >> 2
                    if t >= 2:
                        k += 1
                    mw = (mw + (1 << (k - 1))) >> k
                    ew += k
                    if mw >= 0x1000000:
                        mw = mw >> 1
                        ew += 1
                elif mw == 0:
                    wp[0] = 0
                    continue
                else:
                    while mw < 0x800000:
                        mw = mw << 1
                        ew -= 1
                ew += 150
                if ew >= 255:
                    wp[0] = s | inf
                elif ew > 0:
                    wp[0] = s | (ew << 23) | (mw & 0x7FFFFF)
                elif ew > 0 - 24:
                    wp[0] = s | ((mw + (1 << (0 - ew))) >> (1 - ew))
                else:
                    wp[0] = s
        sp = ptr32(s0 + 8 * r)
        sp[0] = e
        sp[1] = bv
        wr += 4 * n
        vr += 4 * n
