"""int8 kernels in @micropython.viper: what `predict_int8` runs (nanonn.int8.network).

`dense` (the fused layer: dot product, requantization, activation table), the input and
output conversions of int8 buffers, the integer softmax, and the layer loop (`forward`,
`predict_int8`), with the same signatures and integers as in `kernels_py` (the
plain-Python fallback, whose docstrings define each kernel). The kernels of float in and
out (`predict`), of the quantizer and of softmax_tflite are in `kernels_extra_viper`,
imported where they run: a board keeps viper code in RAM, and a program that loads an
int8 model and runs `predict_int8` needs only these. `kernels_py` also holds the
build-time and reference kernels (`rescale`, `mbqm_dr`, `offset`, `lut`): `dense` fuses
the first and the activation table. Written for 32-bit viper ints (the boards):
every intermediate fits a signed 32-bit int; on the 64-bit unix port `ptr32`
loads zero-extend, so int32 values are sign-extended explicitly with
`(v ^ m) - m`, m = 1 << 31 built at run time (a literal 2^31 does not compile
for 32-bit targets). Unary minus is written `0 - x` (miscompiled otherwise).
Nothing here allocates.
"""

import micropython


@micropython.viper
def dense(w: ptr8, x: ptr8, y: ptr8, p: ptr32, t: ptr8):
    """The viper kernel of `qkernels.dense` (same arguments, same integers)."""
    # w and x come first: the emitter keeps its first locals in registers (2 or 3 by
    # port), and these two are the walking pointers of the multiply-accumulate.
    b31 = 31
    m31 = 1 << b31
    b30 = 30
    top = (1 << b30) - 1 + (1 << b30)  # 2^31 - 1, built at run time
    n = p[0]
    units = p[1]
    zp = (p[2] ^ m31) - m31
    lo = (p[3] ^ m31) - m31
    hi = (p[4] ^ m31) - m31
    use = p[5]
    xa = int(x)
    rest = n & 15
    xend = xa + n - rest  # counted by address equality (addresses may pass 2^31)
    sx = 0
    while int(x) != xend:
        sx += (
            x[0]
            + x[1]
            + x[2]
            + x[3]
            + x[4]
            + x[5]
            + x[6]
            + x[7]
            + x[8]
            + x[9]
            + x[10]
            + x[11]
            + x[12]
            + x[13]
            + x[14]
            + x[15]
        )
        x = ptr8(int(x) + 16)
    k = rest
    while k > 0:
        sx += x[0]
        x = ptr8(int(x) + 1)
        k -= 1
    c = sx << 7
    x32 = xa + (n & (0 - 32))  # the end of the 32-input blocks; then one of 16 if n & 16
    q = ptr32(int(p) + 24)  # this unit's record
    for u in range(units):
        a = ((q[0] ^ m31) - m31) - c
        x = ptr8(xa)
        while int(x) != x32:
            a += (
                (w[0] ^ 0x80) * x[0]
                + (w[1] ^ 0x80) * x[1]
                + (w[2] ^ 0x80) * x[2]
                + (w[3] ^ 0x80) * x[3]
                + (w[4] ^ 0x80) * x[4]
                + (w[5] ^ 0x80) * x[5]
                + (w[6] ^ 0x80) * x[6]
                + (w[7] ^ 0x80) * x[7]
                + (w[8] ^ 0x80) * x[8]
                + (w[9] ^ 0x80) * x[9]
                + (w[10] ^ 0x80) * x[10]
                + (w[11] ^ 0x80) * x[11]
                + (w[12] ^ 0x80) * x[12]
                + (w[13] ^ 0x80) * x[13]
                + (w[14] ^ 0x80) * x[14]
                + (w[15] ^ 0x80) * x[15]
                + (w[16] ^ 0x80) * x[16]
                + (w[17] ^ 0x80) * x[17]
                + (w[18] ^ 0x80) * x[18]
                + (w[19] ^ 0x80) * x[19]
                + (w[20] ^ 0x80) * x[20]
                + (w[21] ^ 0x80) * x[21]
                + (w[22] ^ 0x80) * x[22]
                + (w[23] ^ 0x80) * x[23]
                + (w[24] ^ 0x80) * x[24]
                + (w[25] ^ 0x80) * x[25]
                + (w[26] ^ 0x80) * x[26]
                + (w[27] ^ 0x80) * x[27]
                + (w[28] ^ 0x80) * x[28]
                + (w[29] ^ 0x80) * x[29]
                + (w[30] ^ 0x80) * x[30]
                + (w[31] ^ 0x80) * x[31]
            )
            w = ptr8(int(w) + 32)
            x = ptr8(int(x) + 32)
        if int(x) != xend:
            a += (
                (w[0] ^ 0x80) * x[0]
                + (w[1] ^ 0x80) * x[1]
                + (w[2] ^ 0x80) * x[2]
                + (w[3] ^ 0x80) * x[3]
                + (w[4] ^ 0x80) * x[4]
                + (w[5] ^ 0x80) * x[5]
                + (w[6] ^ 0x80) * x[6]
                + (w[7] ^ 0x80) * x[7]
                + (w[8] ^ 0x80) * x[8]
                + (w[9] ^ 0x80) * x[9]
                + (w[10] ^ 0x80) * x[10]
                + (w[11] ^ 0x80) * x[11]
                + (w[12] ^ 0x80) * x[12]
                + (w[13] ^ 0x80) * x[13]
                + (w[14] ^ 0x80) * x[14]
                + (w[15] ^ 0x80) * x[15]
            )
            w = ptr8(int(w) + 16)
            x = ptr8(int(x) + 16)
        k = rest
        while k > 0:
            a += (w[0] ^ 0x80) * x[0]
            w = ptr8(int(w) + 1)
            x = ptr8(int(x) + 1)
            k -= 1
        neg = 0
        if a < 0:
            neg = 1
            a = 0 - a
        rfk = q[5]
        slow = 0
        if a > q[1]:
            v = 256  # |acc| * R >= 256: saturates after any zero point
        else:
            r = rfk & 0xFF
            f = (rfk >> 8) & 0xFF
            a1 = a >> r
            m = q[2]
            tt = a1 * m  # |acc| * R * 2^F in [tt, tt + a1 + m + 1)
            half = 1 << (f - 1)
            v = tt >> f
            frac = tt & ((half << 1) - 1)
            e = frac + a1 + m + 1
            if e < half:
                pass
            elif frac >= half and e < (half << 1) + half:
                v += 1
            else:
                slow = 1
        if slow:  # the exact path: `rescale` on this unit
            a0 = a & 0x7FF
            a1 = (a >> 11) & 0x7FF
            a2 = a >> 22
            m = q[3]  # A = a * qh: 62 bits as (ah, al)
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
            m = q[4]  # B = a * ql (ql < 2^22: two limbs): 53 bits as (bh, bl)
            m0 = m & 0x7FF
            m1 = m >> 11
            c0 = a0 * m0
            c1 = a0 * m1 + a1 * m0 + (c0 >> 11)
            c2 = a1 * m1 + a2 * m0 + (c1 >> 11)
            c3 = a2 * m1 + (c2 >> 11)
            bl = (c0 & 0x7FF) | ((c1 & 0x7FF) << 11) | ((c2 & 0x1FF) << 22)
            bh = ((c2 >> 9) & 3) | (c3 << 2)
            cy = (al & 0x1FF) + (bl >> 22)
            w0 = ((cy & 0x1FF) << 22) | (bl & 0x3FFFFF)
            cy = (al >> 9) + bh + (cy >> 9)
            w1 = cy & 0x3FFFFF
            cy = (ah & 0x1FF) + (cy >> 22)
            w1 = w1 | ((cy & 0x1FF) << 22)
            w2 = (ah >> 9) + (cy >> 9)
            v = w1
            d = 0 - 22
            if w2:
                v = w2
                d = 9
            if v:
                if v >> 16:
                    v = v >> 16
                    d += 16
                if v >> 8:
                    v = v >> 8
                    d += 8
                if v >> 4:
                    v = v >> 4
                    d += 4
                if v >> 2:
                    v = v >> 2
                    d += 2
                if v >> 1:
                    v = v >> 1
                    d += 1
                d += v
            if d < 0:
                d = 0
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
                if g:
                    if st or (tl & 1):
                        if tl == top:
                            tl = 0
                            th += 1
                        else:
                            tl += 1
            s = (rfk >> 16) - d
            if s <= 31:
                v = (th << (31 - s)) + (tl >> s) + ((tl >> (s - 1)) & 1)
            elif s <= 55:
                v = (th >> (s - 31)) + ((th >> (s - 32)) & 1)
            else:
                v = 0
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
        q = ptr32(int(q) + 24)


@micropython.viper
def from_int8(src: ptr8, dst: ptr8, n: int):
    """The viper kernel of `qkernels.from_int8` (same arguments, same integers)."""
    # src: (n,) int8 (two's-complement bytes); dst: (n,) offset-binary; 8 bytes a step
    k = n >> 3
    while k > 0:
        dst[0] = src[0] ^ 0x80
        dst[1] = src[1] ^ 0x80
        dst[2] = src[2] ^ 0x80
        dst[3] = src[3] ^ 0x80
        dst[4] = src[4] ^ 0x80
        dst[5] = src[5] ^ 0x80
        dst[6] = src[6] ^ 0x80
        dst[7] = src[7] ^ 0x80
        src = ptr8(int(src) + 8)
        dst = ptr8(int(dst) + 8)
        k -= 1
    k = n & 7
    while k > 0:
        dst[0] = src[0] ^ 0x80
        src = ptr8(int(src) + 1)
        dst = ptr8(int(dst) + 1)
        k -= 1


@micropython.viper
def to_int8(src: ptr8, dst: ptr8, n: int):
    """The viper kernel of `qkernels.to_int8` (same arguments, same integers)."""
    # src: (n,) offset-binary; dst: (n,) int8 (array('b'))
    for i in range(n):
        dst[i] = src[i] ^ 0x80


@micropython.viper
def softmax(y: ptr8, e: ptr32, table: ptr32, n: int) -> int:
    """The viper kernel of `qkernels.softmax` (same arguments, same integers)."""
    # y: (n,) offset-binary, in place; e: (n,) int32 scratch; table: (256,) int32
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
        if q > 255:
            q = 255
        y[i] = q
    return s


# Orchestration in viper too: a bytecode function with many locals or a call
# with many arguments gets its frame from the heap (MicroPython allocates frames
# larger than 11 words there when it can), so the whole forward pass is native.


@micropython.viper
def forward(net) -> object:
    """Run every layer of a QNetwork on net._xq (offset-binary); returns the last layer's y."""
    # runs every layer of a QNetwork on net._xq (offset-binary); returns the last layer's y
    plan = net._plan  # (w, p, table, y) per layer
    end = int(net._nl) << 2
    x = net._xq
    layer = dense  # one global lookup, not one per layer
    i = 0
    while i < end:
        y = plan[i + 3]
        layer(plan[i], x, y, plan[i + 1], plan[i + 2])
        x = y
        i += 4
    L = net._last
    code = int(L.code)
    if code == 3:  # softmax
        L.sum = softmax(x, L.acc, L.exp_table, int(L.units))
    elif code == 4:  # TFLite's softmax
        tfl = net._tfl  # kernels_extra_viper.softmax_tfl (imported by a softmax_tflite network)
        tfl(x, L.exp_table, int(L.units))
    return x


@micropython.viper
def predict_int8(net, x) -> object:
    """QNetwork.predict_int8 in viper: int8 `x` in, the network's own int8 output buffer out."""
    # x: (inputs,) int8 -> net._out8: (outputs,) int8
    from_int8(x, net._xq, int(net.inputs))
    y = forward(net)
    out = net._out8
    # viper passes the buffer object y as the ptr8 argument; the stubs have no type for that
    to_int8(y, out, int(net.outputs))  # pyright: ignore[reportArgumentType]
    return out
