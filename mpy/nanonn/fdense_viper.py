"""Float dense layer dot products in @micropython.viper, without allocating.

Every float operation in MicroPython allocates a heap object, so a float dot
product in bytecode costs a few allocations per multiply-add. This kernel reads
the float32 bits instead and sums exactly in integers: the inputs are scaled to
one block exponent (their largest) and each weight row to its own, as signed
25-bit integers split in 12-bit halves; the products are summed in four int32
limbs spaced 12 bits apart (value = a3 * 2^36 + a2 * 2^24 + a1 * 2^12 + a0),
normalised every 32 terms, so every intermediate fits a 32-bit viper int.
Result: dot = value * 2^(exponent - 300), rounded to float32 by `to_float32`.
Rounding each input and weight to 24 bits below its block maximum gives an
absolute error of at most n * 2^-24 * max|x| * max|w|, the order of float32's
own summation error. Infinities and NaN are left to the plain float loop.

A layer may keep its weights decoded (`decode`: each weight as that signed 25-bit
integer at its row's exponent, plus 2^24 so that it loads the same on every port;
4 bytes a weight): `dot_cached` then gives the same limbs as `dot_rows` at about
half the work (its input halves are offset too, and the offsets' products are
taken off each row at the end). The decoded copy carries a checksum of
the float32 words it came from (`matches`), so a weight written directly is noticed.
"""

import micropython


@micropython.viper
def dot_rows(x: ptr32, w: ptr32, n: int, units: int, xh: ptr32, xl: ptr32, acc: ptr32) -> int:
    """The dot product of x with each row of w, exactly in integer limbs (module docstring)."""
    # x: (n,) float32 bits; w: (units, n) float32 bits row-major; xh, xl: (n,) int32 scratch;
    # acc: (units, 5) int32 out: a3, a2, a1, a0, exponent (see the module docstring).
    # Returns 1 (and stops) if x or w holds an infinity or NaN, else 0.
    b31 = 31
    m31 = 1 << b31
    ex = 1
    for i in range(n):
        e = (x[i] >> 23) & 0xFF
        if e == 255:
            return 1
        if e > ex:
            ex = e
    # x_i ~ v * 2^(ex - 150): 25-bit signed ints at the block exponent, split in 12-bit halves
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
        xh[i] = v >> 12
        xl[i] = v & 0xFFF
    p = 0
    j = 0
    for _ in range(units):
        ew = 1
        for i in range(n):
            e = (w[p + i] >> 23) & 0xFF
            if e == 255:
                return 1
            if e > ew:
                ew = e
        # sum of products in four 12-bit-spaced int32 limbs, normalised every 32 terms
        a3 = 0
        a2 = 0
        a1 = 0
        a0 = 0
        i = 0
        while i < n:
            end = i + 32
            if end > n:
                end = n
            while i < end:
                b = w[p + i]
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
                wh = v >> 12
                wl = v & 0xFFF
                h = (xh[i] ^ m31) - m31  # ptr32 loads zero-extend on 64-bit ports
                l = xl[i]
                a2 += h * wh
                a1 += h * wl + l * wh
                a0 += l * wl
                i += 1
            a1 += a0 >> 12
            a0 = a0 & 0xFFF
            a2 += a1 >> 12
            a1 = a1 & 0xFFF
            a3 += a2 >> 12
            a2 = a2 & 0xFFF
        acc[j] = a3
        acc[j + 1] = a2
        acc[j + 2] = a1
        acc[j + 3] = a0
        acc[j + 4] = ex + ew
        j += 5
        p += n
    return 0


@micropython.viper
def to_float32(acc: ptr32, z: ptr32, units: int):
    """z[u] = the dot product held in acc[5u:5u + 5] (dot_rows' limbs), as float32 bits."""
    # acc: (units, 5) int32: a3 (signed), a2, a1, a0 in [0, 4096), exponent E; the value is
    # (a3 * 2^36 + a2 * 2^24 + a1 * 2^12 + a0) * 2^(E - 300). Rounded half away from zero
    # (ties are rarer than the kernel's own rounding of the products); z: (units,) float32.
    b31 = 31
    m31 = 1 << b31
    b22 = 22  # for 0x7F800000 without a literal (one >= 2^30 is an object on 32-bit ports)
    j = 0
    for u in range(units):
        a3 = (acc[j] ^ m31) - m31  # ptr32 loads zero-extend on 64-bit ports
        a2 = acc[j + 1]
        a1 = acc[j + 2]
        a0 = acc[j + 3]
        ex = acc[j + 4] - 300
        j += 5
        s = 0
        if a3 < 0:  # negate the limbs, then carry: a3 >= 0
            s = m31
            a0 = 0 - a0
            a1 = (0 - a1) + (a0 >> 12)
            a0 = a0 & 0xFFF
            a2 = (0 - a2) + (a1 >> 12)
            a1 = a1 & 0xFFF
            a3 = (0 - a3) + (a2 >> 12)
            a2 = a2 & 0xFFF
        # m * 2^e (+ the lower limbs) with m >= 2^18 where the value allows
        m = a3
        e = 36
        if m < 0x40000:
            m = (m << 12) + a2
            a2 = a1
            a1 = a0
            a0 = 0
            e = 24
            if m < 0x40000:
                m = (m << 12) + a2
                a2 = a1
                a1 = 0
                e = 12
                if m < 0x40000:
                    m = (m << 12) + a2
                    a2 = 0
                    e = 0
        if m == 0:
            z[u] = 0
            continue
        if m < 0x2000000 and e > 0:  # 6 more bits for 25 significant ones
            m = (m << 6) + (a2 >> 6)
            e -= 6
        k = 0
        while (m >> k) >= 0x1000000:
            k += 1
        if k:
            m = ((m >> (k - 1)) + 1) >> 1
            if m >= 0x1000000:
                m = m >> 1
                k += 1
        else:
            while m < 0x800000:
                m = m << 1
                k -= 1
        e = e + k + ex + 150  # the biased exponent of m * 2^(e + k + ex), m in [2^23, 2^24)
        if e >= 255:
            z[u] = s | (0x1FE << b22)
        elif e > 0:
            z[u] = s | (e << 23) | (m & 0x7FFFFF)
        elif e > 0 - 24:
            z[u] = s | ((m + (1 << (0 - e))) >> (1 - e))
        else:
            z[u] = s


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
