"""Float32 arithmetic on bit patterns in @micropython.viper, without allocating.

The forward pass's activation kernels (relu, leaky_relu) and the multiply-add they share
with training (`axpy_rows`, `fill`); training's own kernels, which build on these, are in
`nanonn.float32.train_viper`, imported on the first backward pass. Training's backward pass
and update are multiply-adds over every weight: in float bytecode each one allocates a few
boxed floats (half a megabyte per SGD step of a 64-32-16-4 network). `axpy_rows` computes
`y += a * x` on float32 bits with integers only:

- the product's 24-bit mantissas are multiplied in 12-bit halves and kept to
  28 bits (truncated below 2^-26 of the product);
- the sum is formed exactly at the larger exponent with 4 guard bits (the
  smaller operand's bits below them are dropped, rounding toward minus
  infinity), then rounded to 24 bits, half away from zero.

So each result is within one float32 ulp of `y + a * x` rounded once, plus 2^-26 of
the larger of |y| and |a * x| where the two nearly cancel (tests/device/test_f32.py);
a training step stays within 1e-5 relative of the float64 reference
(tests/test_reference_parity.py). Limits: results below the normal range
are rounded to subnormals (flushed to zero below 2^-149 of it), an overflow gives an
infinity of the right sign, and an infinite or NaN `a` or `x` gives NaN (IEEE would
give an infinity for infinity times a finite number); an infinite or NaN `y` stays
as it is. Every intermediate fits a signed 32-bit integer (boards).
"""

import micropython


@micropython.viper
def axpy_rows(y: ptr32, ys: int, x: ptr32, xs: int, a: ptr32, rows: int, n: int):
    """y[r*ys + i] += a[r] * x[r*xs + i] for r < rows, i < n, on float32 bits (module docstring)."""
    # y, x, a: float32 bits. Patterns: outer product (ys=n, xs=0: gw += d x^T),
    # transposed product (ys=0, xs=n: gx += W^T d), scaled sum (rows=1: w += a x).
    # y and x are walked by pointers (the first parameters: registers where the emitter
    # has them); y0, x0 hold each row's start.
    b31 = 31
    m31 = 1 << b31
    b22 = 22  # shifts by a variable: the compiler would fold a constant into a literal,
    inf = 0x1FE << b22  # and a literal >= 2^30 is a boxed object in viper on 32-bit ports
    nan = 0x1FF << b22
    y0 = int(y)
    x0 = int(x)
    for r in range(rows):
        ba = a[r]
        ea = (ba >> 23) & 0xFF
        ma = ba & 0x7FFFFF
        if ea:
            ma = ma | 0x800000
        else:
            ea = 1
        ah = ma >> 12
        al = ma & 0xFFF
        sa = (ba >> 31) & 1
        if ea == 255:  # an infinite or NaN factor: every product is NaN
            ah = 0 - 1
        y = ptr32(y0 - 4)  # one word before: each step advances first, then reads [0]
        x = ptr32(x0 - 4)
        y0 += 4 * ys
        x0 += 4 * xs
        if ma == 0:
            continue
        ea -= 280
        c = n
        while c:
            x = ptr32(int(x) + 4)
            y = ptr32(int(y) + 4)
            c -= 1
            bx = x[0]
            by = y[0]
            ey = (by >> 23) & 0xFF
            if ey == 255:
                continue  # an infinite or NaN y stays
            ex = (bx >> 23) & 0xFF
            mx = bx & 0x7FFFFF
            if ex == 255 or ah < 0:
                y[0] = nan
                continue
            if ex:
                mx = mx | 0x800000
            else:
                ex = 1
                if mx == 0:
                    continue
            # p ~ ma * mx / 2^20 (28 bits); the product is p * 2^ep
            p = ((ah * (mx >> 12)) << 4) + (
                (ah * (mx & 0xFFF) + al * (mx >> 12) + ((al * (mx & 0xFFF)) >> 12)) >> 8
            )
            ep = ea + ex
            if sa ^ ((bx >> 31) & 1):
                p = 0 - p
            my = by & 0x7FFFFF
            if ey:
                my = my | 0x800000
            else:
                ey = 1
            my = my << 4  # y = my * 2^(ey - 154)
            if (by >> 31) & 1:
                my = 0 - my
            e = ey - 154
            if e >= ep:
                k = e - ep
                if k < 30:
                    my += p >> k
            else:
                k = ep - e
                e = ep
                if k < 30:
                    my = p + (my >> k)
                else:
                    my = p
            s = 0
            if my < 0:
                s = m31
                my = 0 - my
            if my >= 0x1000000:
                t = my >> 24  # < 2^7: k = its bit length, my >> k < 2^24
                k = 1
                if t >= 16:
                    k = 5
                    t = t >> 4
                if t >= 4:
                    k += 2
                    t = t >> 2
                if t >= 2:
                    k += 1
                my = (my + (1 << (k - 1))) >> k
                e += k
                if my >= 0x1000000:
                    my = my >> 1
                    e += 1
            elif my == 0:
                y[0] = 0
                continue
            else:
                while my < 0x800000:
                    my = my << 1
                    e -= 1
            e += 150  # the biased exponent of my * 2^e, my in [2^23, 2^24)
            if e >= 255:
                y[0] = s | inf
            elif e > 0:
                y[0] = s | (e << 23) | (my & 0x7FFFFF)
            elif e > 0 - 24:
                y[0] = s | ((my + (1 << (0 - e))) >> (1 - e))
            else:
                y[0] = s


@micropython.viper
def fill(y: ptr32, n: int, bits: int):
    """y[i] = bits for i < n (bits: a float32 bit pattern < 2^31, e.g. 0 for 0.0)."""
    for i in range(n):
        y[i] = bits


@micropython.viper
def relu(z: ptr32, y: ptr32, n: int):
    """y[i] = z[i] if z[i] > 0 else 0.0, on float32 bits (NaN gives 0.0, as in float)."""
    b22 = 22  # not a literal: one >= 2^30 is a boxed object in viper on 32-bit ports
    inf = 0x1FE << b22
    for i in range(n):
        b = z[i]
        if (b >> 31) & 1 or b > inf:
            y[i] = 0
        else:
            y[i] = b


@micropython.viper
def keep_positive(z: ptr32, y: ptr32, n: int):
    """y[i] = z[i] where z[i] is not negative (leaky ReLU: y holds alpha * z first)."""
    for i in range(n):
        b = z[i]
        if not (b >> 31) & 1:
            y[i] = b


@micropython.viper
def leaky_relu(z: ptr32, y: ptr32, n: int, alpha: ptr32):
    """y = alpha[0] * z, then z where z >= 0: leaky ReLU on float32 bits."""
    fill(y, n, 0)
    axpy_rows(y, 0, z, 0, alpha, 1, n)
    keep_positive(z, y, n)
