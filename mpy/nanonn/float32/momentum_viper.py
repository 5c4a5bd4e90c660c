"""Momentum SGD's step on float32 bit patterns in one pass, in @micropython.viper.

`momentum_rows`: v = mu v + c x, then w += v, each rounded once (the products formed as
`nanonn.float32.f32_viper.axpy_rows` forms one: within one ulp plus 2^-26 of the larger
term, tests/device/test_f32.py), where three `axpy_rows` passes would decode and round v
three times. A module of its own: its native code is 3-4 KB, which `Dense` spends only
where the heap holds at least 1 MB (as `Dense(cache=None)` decides); a board-sized heap
takes the three passes. Allocates nothing.
"""

import micropython


@micropython.viper
def momentum_rows(w: ptr32, v: ptr32, x: ptr32, c: ptr32, mu: ptr32, rows: int, n: int):
    """v[j] = mu[0] * v[j] + c[r] * x[i], then w[j] += v[j], for j = r*n + i, r < rows,
    i < n, on float32 bits: a momentum SGD step in one pass (module docstring)."""
    # w, v: (rows, n) float32 bits, walked by pointers; x: (n,) the same for every row
    # (one sample: v += c x^T with c = -step d; a batch: rows=1, x = the gradient sums,
    # c = -step). The two products are formed as f32_viper.axpy_rows forms one (28 bits,
    # truncated below 2^-26 of each) and summed exactly at the larger exponent (the
    # smaller's bits below 28 dropped toward minus infinity), then rounded once to
    # float32, half away from zero; w + v likewise with 4 guard bits. An infinite or NaN
    # v stays and makes w NaN (unless w is infinite or NaN: it stays); an infinite or
    # NaN x or c makes v and w NaN. Every intermediate fits a signed 32-bit integer.
    b31 = 31
    m31 = 1 << b31
    b22 = 22  # shifts by a variable: a literal >= 2^30 is a boxed object in viper on 32-bit ports
    inf = 0x1FE << b22
    nan = 0x1FF << b22
    bm = mu[0]  # 0 < mu < 1
    em = (bm >> 23) & 0xFF
    mm = bm & 0x7FFFFF
    if em:
        mm = mm | 0x800000
    else:
        em = 1
    uh = mm >> 12
    ul = mm & 0xFFF
    em -= 280
    w0 = int(w)
    v0 = int(v)
    for r in range(rows):
        bc = c[r]
        ec = (bc >> 23) & 0xFF
        mc = bc & 0x7FFFFF
        if ec:
            mc = mc | 0x800000
        else:
            ec = 1
        ch = mc >> 12
        cl = mc & 0xFFF
        sc = (bc >> 31) & 1
        bad = 0
        if ec == 255:
            bad = 1
        ec -= 280
        w = ptr32(w0 - 4)  # one word before: each step advances first, then reads [0]
        v = ptr32(v0 - 4)
        xp = ptr32(int(x) - 4)
        w0 += 4 * n
        v0 += 4 * n
        k = n
        while k:
            w = ptr32(int(w) + 4)
            v = ptr32(int(v) + 4)
            xp = ptr32(int(xp) + 4)
            k -= 1
            bv = v[0]
            ev = (bv >> 23) & 0xFF
            bx = xp[0]
            ex = (bx >> 23) & 0xFF
            if ev == 255 or ex == 255 or bad:
                if ev != 255:
                    v[0] = nan
                if (w[0] >> 23) & 0xFF != 255:
                    w[0] = nan
                continue
            # q 2^e = mu * v
            mv = bv & 0x7FFFFF
            if ev:
                mv = mv | 0x800000
            else:
                ev = 1
            q = ((uh * (mv >> 12)) << 4) + (
                (uh * (mv & 0xFFF) + ul * (mv >> 12) + ((ul * (mv & 0xFFF)) >> 12)) >> 8
            )
            e = em + ev
            if (bv >> 31) & 1:
                q = 0 - q
            # plus p 2^ep = c * x
            mx = bx & 0x7FFFFF
            if ex:
                mx = mx | 0x800000
            else:
                ex = 1
            if mc and mx:
                p = ((ch * (mx >> 12)) << 4) + (
                    (ch * (mx & 0xFFF) + cl * (mx >> 12) + ((cl * (mx & 0xFFF)) >> 12)) >> 8
                )
                ep = ec + ex
                if sc ^ ((bx >> 31) & 1):
                    p = 0 - p
                if q == 0:
                    q = p
                    e = ep
                elif e >= ep:
                    if e - ep < 30:
                        q += p >> (e - ep)
                else:
                    if ep - e < 30:
                        q = p + (q >> (ep - e))
                    else:
                        q = p
                    e = ep
            # v = q 2^e rounded to float32 (q: below 2^29)
            s = 0
            if q < 0:
                s = m31
                q = 0 - q
            if q >= 0x1000000:
                t = q >> 24  # < 2^5: j = its bit length, q >> j < 2^24
                j = 1
                if t >= 16:
                    j = 5
                    t = t >> 4
                if t >= 4:
                    j += 2
                    t = t >> 2
                if t >= 2:
                    j += 1
                q = (q + (1 << (j - 1))) >> j
                e += j
                if q >= 0x1000000:
                    q = q >> 1
                    e += 1
            elif q == 0:
                v[0] = 0
                continue  # w + 0 = w
            else:
                while q < 0x800000:
                    q = q << 1
                    e -= 1
            e += 150  # the biased exponent of q 2^e, q in [2^23, 2^24)
            if e >= 255:
                v[0] = s | inf
                if (w[0] >> 23) & 0xFF != 255:
                    w[0] = nan
                continue
            if e > 0:
                v[0] = s | (e << 23) | (q & 0x7FFFFF)
            elif e > 0 - 24:
                q = (q + (1 << (0 - e))) >> (1 - e)  # a subnormal v (or the smallest normal)
                v[0] = s | q
                e = 1  # q 2^(1 - 150), q < 2^23 (or 2^23: rounded up to 2^-126)
            else:
                v[0] = s
                continue
            # w += v: v = q 2^(e - 150) exactly as stored
            bw = w[0]
            ew = (bw >> 23) & 0xFF
            if ew == 255:
                continue  # an infinite or NaN w stays
            mw = bw & 0x7FFFFF
            if ew:
                mw = mw | 0x800000
            else:
                ew = 1
            mw = mw << 4  # w = mw 2^(ew - 154)
            if (bw >> 31) & 1:
                mw = 0 - mw
            q = q << 4
            if s:
                q = 0 - q
            if mw == 0:
                mw = q
                ew = e
            elif ew >= e:
                if ew - e < 30:
                    mw += q >> (ew - e)
            else:
                if e - ew < 30:
                    mw = q + (mw >> (e - ew))
                else:
                    mw = q
                ew = e
            ew -= 154  # mw 2^ew: below 2^29
            s = 0
            if mw < 0:
                s = m31
                mw = 0 - mw
            if mw >= 0x1000000:
                t = mw >> 24
                j = 1
                if t >= 16:
                    j = 5
                    t = t >> 4
                if t >= 4:
                    j += 2
                    t = t >> 2
                if t >= 2:
                    j += 1
                mw = (mw + (1 << (j - 1))) >> j
                ew += j
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
