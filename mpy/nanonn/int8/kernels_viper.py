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
    # The emitter keeps only its first locals in registers, and the parameters come first:
    # w and x in a board's .mpy (2 registers), w, x and y when compiled from source (3). So
    # the multiply-accumulate runs in the parameters' slots: w walks the weights, x holds the
    # unit's sum (cast to ptr8: casts cost nothing) and y walks the inputs; the inputs' and
    # outputs' addresses wait in xa and out, the weights' in wr while the requantization has
    # |acc| in x's slot and |acc| >> r in w's. One statement per term, `s = P + s`: its sum is
    # added from its register with no spill (a chain `P0 + P1 + ...` spills each partial sum
    # to the stack), 10 Thumb-1 instructions a term (was 11), 9 with 3 registers.
    # Accumulation order is qkernels.dense's (one term at a time, every term >= 0): each
    # partial sum lies between acc0 - 128 * sum(x) and the unit's acc, both within int32.
    # (kernels_wide_viper's dense, generated from this one by tools/gen_wide_kernel.py, has its
    # own comment above and multiply-accumulate between the two "multiply-accumulate" lines.)
    b31 = 31
    m31 = 1 << b31
    b30 = 30
    top = (1 << b30) - 1 + (1 << b30)  # 2^31 - 1, built at run time
    n = p[0]
    units = p[1]
    zp = ((p[2] ^ m31) - m31) + 128
    lo = ((p[3] ^ m31) - m31) + 128
    hi = ((p[4] ^ m31) - m31) + 128
    use = p[5]
    # -- multiply-accumulate: begin --
    xa = int(x)
    rest = n & 3
    xend = xa + n - rest  # counted by address equality (addresses may pass 2^31)
    sx = 0
    while int(x) != xend:  # once a layer: 4 a step (more would be code in a board's RAM)
        sx += x[0] + x[1] + x[2] + x[3]
        x = ptr8(int(x) + 4)
    k = rest
    while k > 0:
        sx += x[0]
        x = ptr8(int(x) + 1)
        k -= 1
    c = sx << 7
    nb = n & (0 - 16)  # inputs in blocks of 16, then n4 blocks of 4, then n1 one by one
    n4 = (n & 15) >> 2
    n1 = n & 3
    n15 = n & 15
    out = int(y)  # y's slot walks the inputs from here on
    q = ptr32(int(p) + 24)  # this unit's record
    wr = int(w)  # this unit's weights (w's slot serves the requantization)
    for u in range(units):
        x = ptr8(((q[0] ^ m31) - m31) - c)  # x's slot: this unit's sum
        w = ptr8(wr)
        y = ptr8(xa)
        wb = int(w) + nb  # counted by address difference (addresses may pass 2^31)
        while int(w) - wb:  # the loop test costs fewer instructions than `!=`
            x = ptr8((w[0] ^ 0x80) * y[0] + int(x))
            x = ptr8((w[1] ^ 0x80) * y[1] + int(x))
            x = ptr8((w[2] ^ 0x80) * y[2] + int(x))
            x = ptr8((w[3] ^ 0x80) * y[3] + int(x))
            x = ptr8((w[4] ^ 0x80) * y[4] + int(x))
            x = ptr8((w[5] ^ 0x80) * y[5] + int(x))
            x = ptr8((w[6] ^ 0x80) * y[6] + int(x))
            x = ptr8((w[7] ^ 0x80) * y[7] + int(x))
            x = ptr8((w[8] ^ 0x80) * y[8] + int(x))
            x = ptr8((w[9] ^ 0x80) * y[9] + int(x))
            x = ptr8((w[10] ^ 0x80) * y[10] + int(x))
            x = ptr8((w[11] ^ 0x80) * y[11] + int(x))
            x = ptr8((w[12] ^ 0x80) * y[12] + int(x))
            x = ptr8((w[13] ^ 0x80) * y[13] + int(x))
            x = ptr8((w[14] ^ 0x80) * y[14] + int(x))
            x = ptr8((w[15] ^ 0x80) * y[15] + int(x))
            w = ptr8(int(w) + 16)
            y = ptr8(int(y) + 16)
        if n15:  # blocks of 4, then one by one
            k = n4
            while k > 0:
                x = ptr8((w[0] ^ 0x80) * y[0] + int(x))
                x = ptr8((w[1] ^ 0x80) * y[1] + int(x))
                x = ptr8((w[2] ^ 0x80) * y[2] + int(x))
                x = ptr8((w[3] ^ 0x80) * y[3] + int(x))
                w = ptr8(int(w) + 4)
                y = ptr8(int(y) + 4)
                k -= 1
            k = n1
            while k > 0:
                x = ptr8((w[0] ^ 0x80) * y[0] + int(x))
                w = ptr8(int(w) + 1)
                y = ptr8(int(y) + 1)
                k -= 1
        wr = int(w)
        # -- multiply-accumulate: end --
        neg = 0
        if int(x) < 0:
            neg = 1
            x = ptr8(0 - int(x))  # x's slot: |acc|
        rfk = q[5]
        if int(x) > q[1]:
            v = 256  # |acc| * R >= 256: saturates after any zero point
        else:
            w = ptr8(int(x) >> (rfk & 0xFF))  # w's slot: a1 = |acc| >> r
            f = (rfk >> 8) & 0xFF
            # (|acc| * R + 1/2) * 2^F lies in [h, h + a1 + M + 1), h = a1 * M + 2^(F - 1) < 2^32
            # (unsigned: it may pass 2^31 only where v rounds to 256)
            h = uint(int(w) * q[2] + (1 << (f - 1)))
            v = int(h >> f)
            if ((int(h) & ((1 << f) - 1)) + int(w) + q[2]) >> f:  # the bracket holds an integer:
                # the exact path, `rescale` on this unit
                a = int(x)
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
        v += zp  # zp, lo and hi: offset-binary (+ 128)
        if v < lo:
            v = lo
        elif v > hi:
            v = hi
        y = ptr8(out)  # the output
        if use:
            y[u] = t[v] ^ 0x80
        else:
            y[u] = v
        q = ptr32(int(q) + 24)


@micropython.viper
def from_int8(src: ptr8, dst: ptr8, n: int):
    """The viper kernel of `qkernels.from_int8`, and of `qkernels.to_int8` (same arguments,
    same integers): both flip each byte's top bit."""
    # src: (n,) int8 (two's-complement bytes) -> dst: (n,) offset-binary, or back
    k = n
    if ((int(src) | int(dst)) & 3) == 0:  # both word-aligned: 16 bytes a step as 4 words
        b8 = 8
        m = (0x808080 << b8) | 0x80  # 0x80808080, built at run time (>= 2^31: no literal for boards)
        k = n >> 4
        while k > 0:
            ptr32(dst)[0] = ptr32(src)[0] ^ m
            ptr32(dst)[1] = ptr32(src)[1] ^ m
            ptr32(dst)[2] = ptr32(src)[2] ^ m
            ptr32(dst)[3] = ptr32(src)[3] ^ m
            src = ptr8(int(src) + 16)
            dst = ptr8(int(dst) + 16)
            k -= 1
        k = n & 15
    while k > 0:
        dst[0] = src[0] ^ 0x80
        src = ptr8(int(src) + 1)
        dst = ptr8(int(dst) + 1)
        k -= 1


to_int8 = from_int8  # offset-binary -> int8 (dst: array('b')): the same XOR, one function in RAM


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
    layer = net._dense  # this dense or kernels_wide_viper's (QNetwork); one lookup a call
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
