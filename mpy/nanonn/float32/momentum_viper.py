"""Momentum SGD's step with the velocity in block fixed point, in @micropython.viper.

`momentum_rows`: v = mu v + c x, then w += v, in one pass over the weights. The weights
stay float32; the velocity is not a float32 array but integers with one exponent per row
(a unit's weights, or one bias): v[j] = V[j] * 2^E[r], |V| < 2^30, the row's largest |V|
kept between 2^23 and 2^30 (rescaled when a step would overflow it or when it shrinks
below 2^23). So mu v + c x is integer work, with no float32 rounding of v:

- mu is taken to 15 bits (M = round(mu 2^15), |mu - M 2^-15| <= 2^-16: 0.9 is
  29491 / 32768 = 0.899994);
- x is read once per call (once per row where each row has its own x: a batch's gradient
  sums) as 24-bit integers at the exponent of its largest element (an element 2^-k of the
  largest keeps 24 - k bits: within 2^-25 of the largest), c to its float32 mantissa; their
  product is formed to 2^-24 of |c| max|x| (three 12-bit products) and shifted to the row's
  exponent;
- mu V is truncated to the row's unit, 2^-29 of its largest |V| or finer;
- w + v is rounded once to float32, half away from zero, from v's bits down to 1/16 of
  w's ulp (within 0.57 ulp of w + v); where the sum stays in w's binade it is w's bit
  pattern plus the rounded difference (one add), otherwise the full normalization.

So v differs from the float32 recurrence by about 2^-24 of each step's largest |c x| (and
the momentum by up to 2^-16), which keeps a step's weights within 1e-5 of the float64
reference (tests/test_reference_parity.py, `make bench-float`), and training reaches the
same accuracy as the float32 reference in the same epochs (tests/test_momentum_accuracy.py).
Limits (docs/training.md): a row whose velocity would exceed 2^90, or whose c or x is
infinite or NaN, sets that row's weights to NaN (its velocity is left as it was); a
velocity's bits below 2^-153 are dropped; an infinite or NaN weight stays.

`st` holds each row's state (E, then the bit length of its largest |V|: 0 for a row of
zeros) and, after 2 rows words, the scratch of x's integers (2 n words): a zero-filled
buffer is a zero velocity. Every intermediate fits a signed 32-bit integer (bounds at each
step below). A module of its own: its native code is a few KB, which `Dense` spends only
where the heap holds at least 1 MB (as `Dense(cache=None)` decides); a board-sized heap takes
three `axpy_rows` passes with a float32 velocity. Allocates nothing.
"""

import micropython


@micropython.viper
def momentum_rows(w: ptr32, v: ptr32, st: ptr32, x: ptr32, c: ptr32, mu: ptr32, rows: int, n: int, xs: int):
    """v = mu[0] v + c x, then w += v, over rows r < rows of n weights (module docstring):
    xs = 0: one x for every row and c[r] per row (one sample: c = -step d); xs = n: row r's
    own x at x[r * n] and c[0] for all (a batch: x = the gradient sums, c = -step)."""
    # w: (rows, n) float32 bits; v: (rows, n) int32 V; st: (rows, 2) int32 (E, bit length),
    # then (n, 2) int32 x's scratch: (X >> 12) + 4096, X & 0xFFF with |X| < 2^24.
    # w, v and st are walked by pointers in the inner loop (the first parameters: registers
    # where the emitter has them).
    b31 = 31
    m31 = 1 << b31
    b22 = 22  # shifts by a variable: a literal >= 2^30 is a boxed object in viper on 32-bit ports
    nan = 0x1FF << b22
    b29 = 1 << 29
    inf = 0x1FE << b22
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
    s0 = int(st)
    q0 = s0 + 8 * rows  # x's scratch
    w0 = int(w)
    v0 = int(v)
    xm = 0  # x's largest biased exponent (0: x is all zeros)
    xbad = 0  # an infinite or NaN x
    for r in range(rows):
        if r == 0 or xs:
            # X = x / 2^(xm - 150) to 24 bits, rounded (|X| < 2^24): kept as 12-bit halves
            xp = ptr32(int(x) + 4 * xs * r)
            xm = 0
            xbad = 0
            for i in range(n):
                e = (xp[i] >> 23) & 0xFF
                if e == 255:
                    xbad = 1
                elif e > xm:
                    xm = e
                elif xm == 0 and xp[i] & 0x7FFFFF:
                    xm = 1  # a subnormal
            qp = ptr32(q0)
            xa = 0  # the largest |X|
            for i in range(n):
                b = xp[i]
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
                qp[2 * i] = (m >> 12) + 4096  # in [0, 8192)
                qp[2 * i + 1] = m & 0xFFF
        if xs:
            bc = c[0]
        else:
            bc = c[r]
        ec = (bc >> 23) & 0xFF
        mc = bc & 0x7FFFFF
        if ec:
            mc = mc | 0x800000
        else:
            ec = 1
        if (bc >> 31) & 1:
            mc = 0 - mc
        sp = ptr32(s0 + 8 * r)
        ev = (sp[0] ^ m31) - m31  # the row's exponent E (sign-extended: x64 loads zero-extend)
        bv = sp[1]  # a bound on its |V| (< 2^30; 0: a row of zeros), lv its bit length
        lv = 0
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
        wr = w0 + 4 * n * r
        vr = v0 + 4 * n * r
        if xbad or ec == 255:
            e = 61  # the row's weights become NaN
        else:
            # the term c x = P 2^et, P = (X C) >> 21, |P| < 2^27 + 2^16
            et = xm + ec - 279
            if mc == 0 or xm == 0:
                mc = 0
                if lv == 0:
                    continue  # v = 0 stays, w + 0 = w
                et = 0 - 1000
            e = ev  # the row's new exponent: |V| < 2^28 there and P's shift >= 0
            if lv == 0:
                e = et
            else:
                k = ev + lv - 26  # the exponent that leaves V 26 bits
                if k < et:
                    k = et
                if lv > 28 or ev < et:
                    e = k  # grows (or the term would need a left shift): shift right
                elif lv < 23 and k < ev:
                    e = k  # shrank: shift left
            if e < 0 - 153:  # (then w's biased exponent 0 is below the fast path's)
                e = 0 - 153
        if e > 60:  # v beyond 2^90, or a non-finite c or x: the row's weights become NaN
            wp = ptr32(wr)
            for i in range(n):
                if (wp[i] >> 23) & 0xFF != 255:
                    wp[i] = nan
            continue
        vp = ptr32(vr)
        if lv == 0:  # a row of zeros: stored as 2^29 from here on
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
        ch8 = ch << 3
        k = b29
        kk = k - ((k >> 15) * mh + ((((k & 0x7FFF) * mh) + ((k >> 15) * ml)) >> 15)) - (ch << 15) - (cl << 3)
        k = mc
        if k < 0:
            k = 0 - k
        pm = ((((xa >> 12) + 1) * ((k >> 12) + 1)) << 3) + 3  # a bound on |P|
        # the row's bound after the step: mu bv + 4 + pm (< 2^28 + 2^27 + 2^17)
        bv = (bv >> 15) * mh + ((((bv & 0x7FFF) * mh) + ((bv >> 15) * ml)) >> 15) + 4 + pm
        kw = e + 154  # w's biased exponent minus kw: the shift of V onto w's mantissa << 4
        w = ptr32(wr - 4)  # one word before: each step advances first, then reads [0]
        v = ptr32(vr - 4)
        st = ptr32(q0 - 8)
        j = n
        while j:
            w = ptr32(int(w) + 4)
            v = ptr32(int(v) + 4)
            st = ptr32(int(st) + 8)
            j -= 1
            a = v[0]  # S = V + 2^29 in (0, 2^30), |V| < 2^28 (then below 2^29)
            # mu S = (Sh Mh 2^30 + (Sl Mh + Sh Ml) 2^15 + Sl Ml) / 2^30, the last dropped;
            # each partial sum below 2^31: mu S < 2^30, kk < 2^29 + 2^27, |Xh' ch8| <= 2^28
            a = (
                (a >> 15) * mh
                + ((((a & 0x7FFF) * mh) + ((a >> 15) * ml)) >> 15)
                + kk
                + st[0] * ch8
                + ((st[0] * cl + st[1] * ch) >> 9)
            )
            v[0] = a
            a = a - b29  # V
            bw = w[0]
            k = ((bw >> 23) & 0xFF) - kw
            if k >> 5:
                pass  # k < 0 or k >= 32: below
            else:  # v below 4 ulp of w, w normal
                t = a >> k  # v in 1/16 of w's ulp
                if bw >> 31:
                    t = 0 - t
                t = bw + ((t + 8) >> 4)
                if (t ^ bw) >> 23:
                    pass  # leaves w's binade: below
                else:
                    w[0] = t
                    continue
            # w + v in general: w = mw 2^(ew - 154), v = a 2^e
            ew = (bw >> 23) & 0xFF
            if ew == 255 or a == 0 or k >= 32:
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
                mw += a >> k  # |mw| < 2^28 + 2^30
            else:
                k = e - ew
                if k > 31:
                    k = 31
                mw = a + (mw >> k)
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
                w[0] = 0
                continue
            else:
                while mw < 0x800000:
                    mw = mw << 1
                    ew -= 1
            ew += 150
            if ew >= 255:
                w[0] = s | inf
            elif ew > 0:
                w[0] = s | (ew << 23) | (mw & 0x7FFFFF)
            elif ew > 0 - 24:
                w[0] = s | ((mw + (1 << (0 - ew))) >> (1 - ew))
            else:
                w[0] = s
        sp = ptr32(s0 + 8 * r)
        sp[0] = e
        sp[1] = bv
