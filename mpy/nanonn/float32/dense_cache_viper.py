"""The float Dense forward over weights kept decoded (`Dense(cache=True)`), in viper.

`decode` stores each weight as the signed 25-bit integer `fdense_viper.dot_rows` aligns
it to at its row's exponent, plus 2^24 so that it loads the same on every port (4 bytes
a weight); `dot_cached` then gives the same limbs as `dot_rows` at about half the work
(its input halves are offset too, and the offsets' products are taken off each row at
the end). The decoded copy carries a checksum of the float32 words it came from
(`matches`), so a weight written directly is noticed. A module of its own: only a
network with a cached layer imports it (its native code is RAM on a board).
Allocates nothing.
"""

import micropython


@micropython.viper
def decode(w: ptr32, n: int, units: int, wq: ptr32) -> int:
    """wq = the weights w (units, n) as dot_rows aligns them, plus 2^24; per row its
    exponent and the sums of its high and low halves; then the checksum of w
    (`matches`). Returns 1 (wq not valid) if w holds an infinity or NaN."""
    # wq: (units * n + 3 * units + 1) int32: the rows' 25-bit integers + 2^24 (>= 0, so
    # they load alike on every port), then per row: exponent, sum of (v + 2^24) >> 12 and
    # sum of v & 0xFFF; then the sum of (word ^ index) over w, wrapping
    p = 0
    c = 0
    t = units * n
    for u in range(units):
        ew = 1
        for i in range(n):
            e = (w[p + i] >> 23) & 0xFF
            if e == 255:
                return 1
            if e > ew:
                ew = e
        sh = 0
        sl = 0
        for i in range(n):
            b = w[p + i]
            c += b ^ (p + i)
            e = (b >> 23) & 0xFF
            m = b & 0x7FFFFF
            if e:
                m = m | 0x800000
            else:
                e = 1
            k = ew - e
            v = m
            if k >= 25:
                v = 0
            elif k > 0:
                v = (m + (1 << (k - 1))) >> k
            if (b >> 31) & 1:
                v = 0 - v
            v += 0x1000000
            wq[p + i] = v
            sh += v >> 12
            sl += v & 0xFFF
        wq[t + 3 * u] = ew
        wq[t + 3 * u + 1] = sh
        wq[t + 3 * u + 2] = sl
        p += n
    wq[t + 3 * units] = c
    return 0


@micropython.viper
def matches(w: ptr32, count: int, wq: ptr32, at: int) -> int:
    """1 if wq[at] holds the checksum of w's `count` float32 words (see `decode`), else 0."""
    c = 0
    for i in range(count):
        c += w[i] ^ i
    d = c - wq[at]  # zero in the low 32 bits (64-bit ports load wq[at] zero-extended)
    b31 = 31
    if d & ((1 << b31) - 1) or (d >> b31) & 1:
        return 0
    return 1


@micropython.viper
def dot_cached(x: ptr32, wq: ptr32, n: int, units: int, xh: ptr32, xl: ptr32, acc: ptr32) -> int:
    """dot_rows with the weights decoded by `decode`: the same limbs, in acc."""
    # x: (n,) float32 bits; wq: see decode; xh, xl: (n,) int32 scratch; acc: (units, 5) out.
    # Returns 1 (and stops) if x holds an infinity or NaN, else 0.
    ex = 1
    for i in range(n):
        e = (x[i] >> 23) & 0xFF
        if e == 255:
            return 1
        if e > ex:
            ex = e
    # x's halves + 2^12 and the weights' + 2^12 (from the 2^24) are >= 0; their cross
    # terms are taken off each row: 2^36 (sum h + sum wh') + 2^24 (sum l + sum wl)
    hs = 0
    ls = 0
    for i in range(n):
        b = x[i]
        e = (b >> 23) & 0xFF
        m = b & 0x7FFFFF
        if e:
            m = m | 0x800000
        else:
            e = 1
        k = ex - e
        v = m
        if k >= 25:
            v = 0
        elif k > 0:
            v = (m + (1 << (k - 1))) >> k
        if (b >> 31) & 1:
            v = 0 - v
        v += 0x1000000
        xh[i] = v >> 12
        xl[i] = v & 0xFFF
        hs += v >> 12
        ls += v & 0xFFF
    hs -= n << 12  # the true halves' sum: each h' = h + 2^12
    # two rows at a time: each input's halves are loaded once for both (an odd last row
    # is paired with itself)
    t = units * n
    u = 0
    while u < units:
        p = u * n
        q = p + n
        if u + 1 == units:
            q = p
        a3 = 0
        a2 = 0
        a1 = 0
        a0 = 0
        b3 = 0
        b2 = 0
        b1 = 0
        b0 = 0
        i = 0
        while i < n:
            end = i + 16  # h' * wh' < 2^26: 16 terms and a carry fit 31 bits
            if end > n:
                end = n
            while i < end:
                h = xh[i]
                l = xl[i]
                v = wq[p + i]
                wh = v >> 12
                wl = v & 0xFFF
                a2 += h * wh
                a1 += h * wl + l * wh
                a0 += l * wl
                v = wq[q + i]
                wh = v >> 12
                wl = v & 0xFFF
                b2 += h * wh
                b1 += h * wl + l * wh
                b0 += l * wl
                i += 1
            a1 += a0 >> 12
            a0 = a0 & 0xFFF
            a2 += a1 >> 12
            a1 = a1 & 0xFFF
            a3 += a2 >> 12
            a2 = a2 & 0xFFF
            b1 += b0 >> 12
            b0 = b0 & 0xFFF
            b2 += b1 >> 12
            b1 = b1 & 0xFFF
            b3 += b2 >> 12
            b2 = b2 & 0xFFF
        _put(acc, u, a3, a2, a1, a0, wq, t, ls, hs, ex)
        if q != p:
            _put(acc, u + 1, b3, b2, b1, b0, wq, t, ls, hs, ex)
        u += 2
    return 0


@micropython.viper
def _put(
    acc: ptr32, u: int, a3: int, a2: int, a1: int, a0: int, wq: ptr32, t: int, ls: int, hs: int, ex: int
):
    # acc[5u:5u + 5] = row u's limbs less the offsets' cross terms (dot_cached), exponent
    q = t + 3 * u
    a2 -= ls + wq[q + 2]
    a3 += (a2 >> 12) - hs - wq[q + 1]
    j = 5 * u
    acc[j] = a3
    acc[j + 1] = a2 & 0xFFF
    acc[j + 2] = a1
    acc[j + 3] = a0
    acc[j + 4] = ex + wq[q]
