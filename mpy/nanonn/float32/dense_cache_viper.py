"""The float Dense forward over weights kept decoded (`Dense(cache=True)`), in viper.

`decode` stores each weight as the signed 25-bit integer `dense_viper.dot_rows` aligns it
to at its row's exponent, offset (v + 2^24 >= 0) as two uint16 halves (the high 13 bits,
the low 12) side by side, rows padded with zero halves to a multiple of 4 (4 bytes a
weight); `dot` stages the input the same way and gives the same limbs as `dot_rows` (their
sum exactly, the offsets' cross terms taken off each row at the end) at about a third of
the work: its inner loop reads both operands through pointers at constant offsets, 4 inputs
a step, with no temporaries (the native emitter keeps few locals in registers and spills
the rest: docs/developers.md). The layer keeps the `checksum` of the float32 words the
rows came from and compares it at each predict, so a weight written directly is noticed
(then decoded again). A module of its own: only a network with a cached layer imports it
(its native code is RAM on a board). Allocates nothing.
"""

import micropython


@micropython.viper
def checksum(w: ptr32, count: int) -> int:
    """A position-sensitive sum of `count` 32-bit words (Fletcher-like, wrapping at 2^32
    on the boards; its low 30 bits, a small int on every port): a change of one word, or an exchange
    of two groups of 4, changes it."""
    s1 = 0
    s2 = 0
    k = count >> 4  # 16 words a step: the loop's own work is a fifth of it
    while k:
        s1 += w[0] + w[1] + w[2] + w[3]
        s2 += s1
        s1 += w[4] + w[5] + w[6] + w[7]
        s2 += s1
        s1 += w[8] + w[9] + w[10] + w[11]
        s2 += s1
        s1 += w[12] + w[13] + w[14] + w[15]
        s2 += s1
        w = ptr32(int(w) + 64)
        k -= 1
    k = count & 15
    while k:
        s1 += w[0]
        s2 += s1
        w = ptr32(int(w) + 4)
        k -= 1
    b30 = 30  # a small int on every port: the result is not boxed
    return ((s1 ^ (s2 << 7) ^ (s2 >> 13)) + count) & ((1 << b30) - 1)


@micropython.viper
def decode(wq: ptr16, w: ptr32, n: int, units: int, wm: ptr32, row: int) -> int:
    """wq, wm = rows row .. row + units - 1 of the weights w (rows of n) decoded for `dot`
    (module docstring); returns 1 (not valid) if they hold an infinity or NaN."""
    # wq: (units, n4, 2) uint16 with n4 = n rounded up to a multiple of 4: per weight
    # (v + 2^24) >> 12 and (v + 2^24) & 0xFFF, v its 25-bit integer at the row's exponent;
    # zero halves past n. wm: (3 * units) int32: per row the exponent, the sum of the
    # high halves and of the low halves (wm[3u] on entry: a guess of the row's exponent).
    # wq is the first parameter (a register) and w is walked by a pointer: both advance.
    w = ptr32(int(w) + 4 * n * row)
    pad = (((n + 3) >> 2) << 2) - n
    for u in range(units):
        row = int(w)
        qrow = int(wq)
        # The row's exponent: its largest weight's. Decoded at the previous one (wm, or 127
        # the first time) while finding it, then again only where it changed (training
        # moves it rarely).
        ew = wm[3 * u]
        if ew == 0:
            ew = 127
        emax = 0
        sh = 0
        sl = 0
        while emax != ew:
            if emax:
                ew = emax
                w = ptr32(row)
                wq = ptr16(qrow)
            emax = 1
            sh = 0
            sl = 0
            k = n
            while k:
                b = w[0]
                e = (b >> 23) & 0xFF
                v = b & 0x7FFFFF
                if e:
                    if e > emax:
                        emax = e
                    v = v | 0x800000
                    e = ew - e
                else:
                    e = ew - 1  # a subnormal: exponent 1, no implicit bit
                if e > 0:  # (e < 0: a weight above ew, so the row is decoded again)
                    if e < 25:
                        v = ((v >> (e - 1)) + 1) >> 1  # = (v + 2^(e-1)) >> e: half up
                    else:
                        v = 0
                if (b >> 31) & 1:
                    v = 0x1000000 - v
                else:
                    v += 0x1000000
                e = v >> 12
                wq[0] = e
                sh += e
                v = v & 0xFFF
                wq[1] = v
                sl += v
                wq = ptr16(int(wq) + 4)
                w = ptr32(int(w) + 4)
                k -= 1
            if emax == 255:
                return 1
        k = pad
        while k:
            wq[0] = 0
            wq[1] = 0
            wq = ptr16(int(wq) + 4)
            k -= 1
        wm[3 * u] = ew
        wm[3 * u + 1] = sh
        wm[3 * u + 2] = sl
    return 0


@micropython.viper
def dot(xq: ptr16, p: ptr16, x: ptr32, wm: ptr32, acc: ptr32, shape: ptr32) -> int:
    """acc = the limbs of x . each row of the weights decoded by `decode` (wq, wm), shape =
    (n, units). xq: x's halves (scratch); p: wq, the pointer the inner loop walks.
    Returns 1 (and stops) if x is not finite."""
    # x: (n,) float32 bits; xq: (2 * n4) uint16 with n4 = n rounded up to 4; wq: (units,
    # n4, 2) uint16 and wm: (3 * units) int32, see `decode`; acc: (units, 5) int32 out:
    # a3, a2, a1, a0, exponent (to_float32). xq and p are the first two parameters: the
    # emitter keeps them in registers.
    n = shape[0]
    units = shape[1]
    ex = 1
    k = n
    while k:
        e = (x[0] >> 23) & 0xFF
        if e > ex:
            ex = e
        x = ptr32(int(x) + 4)
        k -= 1
    if ex == 255:
        return 1
    x = ptr32(int(x) - 4 * n)
    # x's halves, offset like the weights' (v + 2^24 >= 0): h' = h + 2^12, l
    hs = 0
    ls = 0
    k = n
    while k:
        b = x[0]
        e = (b >> 23) & 0xFF
        v = b & 0x7FFFFF
        if e:
            v = v | 0x800000
            e = ex - e
        else:
            e = ex - 1  # a subnormal: exponent 1, no implicit bit
        if e:
            if e < 25:
                v = ((v >> (e - 1)) + 1) >> 1  # = (v + 2^(e-1)) >> e: half up
            else:
                v = 0
        if (b >> 31) & 1:
            v = 0x1000000 - v
        else:
            v += 0x1000000
        e = v >> 12
        xq[0] = e
        hs += e
        v = v & 0xFFF
        xq[1] = v
        ls += v
        xq = ptr16(int(xq) + 4)
        x = ptr32(int(x) + 4)
        k -= 1
    n4 = ((n + 3) >> 2) << 2
    k = n4 - n
    while k:  # zero halves past n: no products with the padding
        xq[0] = 0
        xq[1] = 0
        xq = ptr16(int(xq) + 4)
        k -= 1
    hs -= n << 12  # the true halves' sum: each h' = h + 2^12
    x0 = int(xq) - 4 * n4  # (staging walked xq to the end)
    for u in range(units):
        xq = ptr16(x0)
        a3 = 0
        a2 = 0
        a1 = 0
        a0 = 0
        left = n4 >> 2  # steps of 4 inputs
        while left:
            k = left
            if k > 4:  # 16 terms: h' * wh' <= 2^26, so 16 and a carry fit 31 bits
                k = 4
            left -= k
            while k:
                a2 += xq[0] * p[0] + xq[2] * p[2] + xq[4] * p[4] + xq[6] * p[6]
                a1 += xq[0] * p[1] + xq[1] * p[0] + xq[2] * p[3] + xq[3] * p[2]
                a1 += xq[4] * p[5] + xq[5] * p[4] + xq[6] * p[7] + xq[7] * p[6]
                a0 += xq[1] * p[1] + xq[3] * p[3] + xq[5] * p[5] + xq[7] * p[7]
                xq = ptr16(int(xq) + 16)
                p = ptr16(int(p) + 16)
                k -= 1
            a1 += a0 >> 12
            a0 = a0 & 0xFFF
            a2 += a1 >> 12
            a1 = a1 & 0xFFF
            a3 += a2 >> 12
            a2 = a2 & 0xFFF
        # less the offsets' cross terms: sum (X + 2^24)(W + 2^24) = sum XW + n 2^48 +
        # 2^24 (sum X + sum W), and sum X + sum W = 2^12 (hs + sh - n 2^12) + ls + sl in
        # halves (sh, sl: the row's sums in wm, offset)
        q = 3 * u
        a2 -= ls + wm[q + 2]
        a3 += (a2 >> 12) - hs - wm[q + 1]
        j = 5 * u
        acc[j] = a3
        acc[j + 1] = a2 & 0xFFF
        acc[j + 2] = a1
        acc[j + 3] = a0
        acc[j + 4] = ex + wm[q]
    return 0
