"""Float dense layer dot products in @micropython.viper, without allocating.

Every float operation in MicroPython allocates a heap object, so a float dot
product in bytecode costs a few allocations per multiply-add. These kernels read
the float32 bits instead and sum exactly in integers (`dot_rows`): the inputs are
scaled to one block exponent (their largest) and each weight row to its own, as signed
25-bit integers split in 12-bit halves; the products are summed in four int32 limbs
spaced 12 bits apart (value = a3 * 2^36 + a2 * 2^24 + a1 * 2^12 + a0), normalised
every 32 terms, so every intermediate fits a 32-bit viper int. Result: dot = value *
2^(exponent - 300), rounded to float32 (with the bias, and ReLU) by `to_float32`.
Rounding each input and weight to 24 bits below its block maximum gives an absolute
error of at most n * 2^-24 * max|x| * max|w|, the order of float32's own summation
error. Infinities and NaN are left to the plain float loop.

A layer may keep its weights decoded (`Dense(cache=True)`: nanonn.float32.dense_cache_viper,
imported only then) for the same limbs at about a third of the work.
Allocates nothing.
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
def to_float32(acc: ptr32, z: ptr32, units: int, b: ptr32, y: ptr32, flags: int):
    """z[u] = the dot product held in acc[5u:5u + 5] (dot_rows' limbs), plus b[u] when
    flags & 1, rounded once to float32 bits; then y[u] = max(z[u], 0) when flags & 2 (ReLU)."""
    # acc: (units, 5) int32: a3 (signed), a2, a1, a0 in [0, 4096), exponent E; the value is
    # (a3 * 2^36 + a2 * 2^24 + a1 * 2^12 + a0) * 2^(E - 300). Rounded half away from zero
    # (ties are rarer than the kernel's own rounding of the products); z, b, y: (units,)
    # float32. The bias is added to the top 29 bits of the sum, then rounded: within one
    # ulp of the exact sum plus 2^-26 of the larger operand where the two nearly cancel.
    b31 = 31
    m31 = 1 << b31
    b22 = 22  # for 0x7F800000 without a literal (one >= 2^30 is an object on 32-bit ports)
    inf = 0x1FE << b22
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
            s = 1
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
        if m < 0x2000000 and e > 0:  # 6 more bits for 25 significant ones
            m = (m << 6) + (a2 >> 6)
            e -= 6
        e += ex  # the sum is (-1)^s m 2^e, m < 2^31 (its bits below dropped)
        if flags & 1:
            bb = b[u]
            eb = (bb >> 23) & 0xFF
            if eb == 255:  # an infinite or NaN bias: the result
                z[u] = bb
                if flags & 2:
                    y[u] = bb if bb == inf else 0
                continue
            mb = bb & 0x7FFFFF
            if eb:
                mb = mb | 0x800000
            else:
                eb = 1
            if mb:
                mb = mb << 5  # < 2^29, at 2^(eb - 155)
                eb -= 155
                if (bb >> 31) & 1:
                    mb = 0 - mb
                while m >= 0x20000000:  # m < 2^29 too (bits dropped, toward zero)
                    m = m >> 1
                    e += 1
                if s:
                    m = 0 - m
                if m == 0:
                    m = mb
                    e = eb
                elif eb > e:
                    k = eb - e
                    e = eb
                    if k < 31:
                        m = mb + (m >> k)  # toward minus infinity: within the 2^-26
                    else:
                        m = mb
                else:
                    k = e - eb
                    if k < 31:
                        m += mb >> k
                s = 0
                if m < 0:
                    s = 1
                    m = 0 - m
        if m == 0:
            z[u] = 0
            if flags & 2:
                y[u] = 0
            continue
        k = 0
        t = m >> 24  # < 2^7: k = its bit length (m >> k < 2^24), by halving, not bit by bit
        if t:
            k = 1
            if t >= 8:
                k = 4
                t = t >> 3
            if t >= 4:
                k += 2
                t = t >> 2
            if t >= 2:
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
        e = e + k + 150  # the biased exponent of m * 2^(e + k), m in [2^23, 2^24)
        if e >= 255:
            r = inf
        elif e > 0:
            r = (e << 23) | (m & 0x7FFFFF)
        elif e > 0 - 24:
            r = (m + (1 << (0 - e))) >> (1 - e)
        else:
            r = 0
        if s:
            z[u] = r | m31
            if flags & 2:
                y[u] = 0
        else:
            z[u] = r
            if flags & 2:
                y[u] = r
