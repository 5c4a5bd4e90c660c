"""int8 kernels in @micropython.viper that `predict_int8` does not run.

Float in and out (`predict_float`: `f32_to_fixed`, `mbqm`, `clamp8`, `div_f32`,
`dequant`), the quantizer's (`dot`) and TFLite's softmax (`softmax_tfl`). Imported by
nanonn.int8.network at the first float `predict`, by the quantizer, or when the last
layer is softmax_tflite; with the core kernels re-exported it is a full kernel set (the
same names and integers as `kernels_py`). Conventions as in `kernels_viper`. Nothing
here allocates.
"""

import micropython

from .kernels_viper import dense, forward, from_int8, predict_int8, softmax, to_int8

__all__ = ["dense", "forward", "from_int8", "predict_int8", "softmax", "to_int8"]


@micropython.viper
def dot(x: ptr8, w: ptr8, acc0: ptr32, acc: ptr32, n: int, units: int):
    """The viper kernel of `qkernels.dot` (same arguments, same integers)."""
    # x: (n,) offset-binary uint8; w: (units, n) int8 row-major; acc0, acc: (units,) int32
    # Walks pointers (fewer index computations than w[p + k]) with counted loops
    # (no address comparisons: addresses can exceed 2^31 on some ports).
    b31 = 31
    m31 = 1 << b31
    blocks = n >> 3
    rest = n & 7
    xa = int(x)
    wp = ptr8(w)
    for u in range(units):
        a = (acc0[u] ^ m31) - m31
        xp = ptr8(xa)
        k = blocks
        while k > 0:
            a += (
                ((wp[0] ^ 0x80) - 0x80) * xp[0]
                + ((wp[1] ^ 0x80) - 0x80) * xp[1]
                + ((wp[2] ^ 0x80) - 0x80) * xp[2]
                + ((wp[3] ^ 0x80) - 0x80) * xp[3]
                + ((wp[4] ^ 0x80) - 0x80) * xp[4]
                + ((wp[5] ^ 0x80) - 0x80) * xp[5]
                + ((wp[6] ^ 0x80) - 0x80) * xp[6]
                + ((wp[7] ^ 0x80) - 0x80) * xp[7]
            )
            wp = ptr8(int(wp) + 8)
            xp = ptr8(int(xp) + 8)
            k -= 1
        k = rest
        while k > 0:
            a += ((wp[0] ^ 0x80) - 0x80) * xp[0]
            wp = ptr8(int(wp) + 1)
            xp = ptr8(int(xp) + 1)
            k -= 1
        acc[u] = a


@micropython.viper
def mbqm(acc: ptr32, mp: ptr32, sp: ptr8, mn: ptr32, sn: ptr8, step: int, n: int):
    """The viper kernel of `qkernels.mbqm` (same arguments, same integers)."""
    # acc: (n,) int32, in place; mp, mn: int32 multipliers; sp, sn: int8 shifts
    # single rounding, half away from zero; |acc| * m from 11-bit limbs
    b31 = 31
    m31 = 1 << b31
    j = 0
    for i in range(n):
        a = (acc[i] ^ m31) - m31
        if a >= 0:
            m = mp[j]
            s = (sp[j] ^ 0x80) - 0x80
        else:
            m = mn[j]
            s = (sn[j] ^ 0x80) - 0x80
        j += step
        k = 31 - s
        neg = 0
        if a < 0:
            neg = 1
            a = 0 - a
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
        if k <= 31:
            v = (hi << (31 - k)) + (lo >> k) + ((lo >> (k - 1)) & 1)
        else:
            v = (hi >> (k - 31)) + ((hi >> (k - 32)) & 1)
        if neg:
            v = 0 - v
        acc[i] = v


@micropython.viper
def clamp8(acc: ptr32, y: ptr8, n: int, zp: int, lo: int, hi: int):
    """The viper kernel of `qkernels.clamp8` (same arguments, same integers)."""
    # acc: (n,) int32; y: (n,) offset-binary out
    b31 = 31
    m31 = 1 << b31
    for i in range(n):
        v = ((acc[i] ^ m31) - m31) + zp
        if v < lo:
            v = lo
        elif v > hi:
            v = hi
        y[i] = v + 128


@micropython.viper
def f32_to_fixed(xf: ptr32, acc: ptr32, n: int, F: int):
    """The viper kernel of `qkernels.f32_to_fixed` (same arguments, same integers)."""
    # xf: (n,) float32 (array('f'), read as IEEE bits); acc: (n,) int32 out
    b30 = 30
    cap = 1 << b30  # 2^30 is not a small-int literal on 32-bit targets
    for i in range(n):
        b = xf[i]
        neg = (b >> 31) & 1
        ex = (b >> 23) & 0xFF
        m = b & 0x7FFFFF
        v = 0
        if ex == 0xFF:
            if m == 0:
                v = cap  # infinity; NaN -> 0
        else:
            if ex == 0:
                ex = 1
            else:
                m = m | 0x800000
            k = ex - 150 + F
            if m == 0:
                v = 0
            elif k >= 0:
                if k > 30 or m > (cap >> k):
                    v = cap
                else:
                    v = m << k
            elif k < -25:
                v = 0
            else:
                k = 0 - k
                v = (m + (1 << (k - 1))) >> k
        if neg:
            v = 0 - v
        acc[i] = v


@micropython.viper
def softmax_tfl(y: ptr8, table: ptr32, n: int):
    """The viper kernel of `qkernels.softmax_tfl` (same arguments, same integers)."""
    # y: (n,) offset-binary, in place; table: (256,) float32 bits of expf(-beta * in_scale * d)
    # TFLite's float softmax on the IEEE bits (see qkernels.softmax_tfl)
    top = 0
    for i in range(n):
        if y[i] > top:
            top = y[i]
    s = 0
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
        if d > 26:
            s = a
            continue
        mb = mb << 3
        if d > 0:
            st = 0
            if mb & ((1 << d) - 1):
                st = 1
            mb = (mb >> d) | st
        v = (ma << 3) + mb
        if v >= 0x8000000:
            v = (v >> 1) | (v & 1)
            ea += 1
        r = v & 7
        v = v >> 3
        if r > 4 or (r == 4 and (v & 1)):
            v += 1
        if v == 0x1000000:
            v = 0x800000
            ea += 1
        if v < 0x800000:
            s = v
        else:
            s = (ea << 23) | (v & 0x7FFFFF)
    es = s >> 23
    ms = (s & 0x7FFFFF) | 0x800000
    if ms == 0x800000:
        mi = 0x800000
        ei = 262 - es
    else:
        r = 0x1000000
        q = 0
        for _ in range(24):
            q = q << 1
            if r >= ms:
                q = q | 1
                r -= ms
            r = r << 1
        if r > ms or (r == ms and (q & 1)):
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
        if et >= 117:
            mt = (t & 0x7FFFFF) | 0x800000
            th = mt >> 12
            tl = mt & 0xFFF
            c0 = tl * il
            c1 = th * il + tl * ih + (c0 >> 12)
            c2 = th * ih + (c1 >> 12)
            lo = ((c1 & 0xFFF) << 12) | (c0 & 0xFFF)
            if c2 >= 0x800000:
                m = c2
                rem = lo
                half = 0x800000
                e = 276 - et - ei
            else:
                m = (c2 << 1) | (lo >> 23)
                rem = lo & 0x7FFFFF
                half = 0x400000
                e = 277 - et - ei
            if rem > half or (rem == half and (m & 1)):
                m += 1
            if e <= 26:
                q = (m + (1 << (e - 1))) >> e
        if q > 255:
            q = 255
        y[i] = q


@micropython.viper
def div_f32(e: ptr32, s: int, out: ptr32, n: int):
    """The viper kernel of `qkernels.div_f32` (same arguments, same integers)."""
    # e: (n,) int32 in [0, s]; out: (n,) float32 bits (array('f')): e[i] / s rounded to nearest even
    for i in range(n):
        r = e[i]
        if r == 0:
            out[i] = 0
            continue
        ex = 127
        while r < s:  # normalise to s <= r < 2s: value = (r / s) * 2^(ex - 127)
            r = r << 1
            ex -= 1
        q = 0
        for _ in range(24):  # 24 significand bits
            q = q << 1
            if r >= s:
                q = q | 1
                r -= s
            r = r << 1
        # remainder r / 2s decides rounding: r > s up, r == s ties to even
        if r > s or (r == s and (q & 1)):
            q += 1
        if q == 0x1000000:
            q = 0x800000
            ex += 1
        out[i] = (ex << 23) | (q & 0x7FFFFF)


@micropython.viper
def dequant(y: ptr8, table: ptr32, out: ptr32, n: int):
    """The viper kernel of `qkernels.dequant` (same arguments, same integers)."""
    # y: (n,) offset-binary; table: (256,) float32 bits; out: (n,) float32 bits
    for i in range(n):
        out[i] = table[y[i]]


@micropython.viper
def predict_float(net, x) -> object:
    """QNetwork.predict in viper: float `x` (array('f')) in, the network's own array('f') out."""
    # x: (inputs,) array('f') -> net._out: (outputs,) array('f')
    n = int(net.inputs)
    fx = net._fx
    f32_to_fixed(x, fx, n, int(net._in_F))
    m = net._in_m
    s = net._in_s
    mbqm(fx, m, s, m, s, 0, n)
    clamp8(fx, net._xq, n, int(net._in_zp), -128, 127)
    y = forward(net)
    out = net._out
    u = int(net.outputs)
    last = net._last
    if int(net._soft):
        div_f32(last.acc, int(last.sum), out, u)
    else:
        # viper passes the buffer object y as the ptr8 argument; the stubs have no type for that
        dequant(y, net._deq, out, u)  # pyright: ignore[reportArgumentType]
    return out
