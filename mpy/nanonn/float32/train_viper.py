"""Training's float32 kernels on bit patterns in @micropython.viper, without allocating.

The backward pass's activation derivatives (relu_grad, leaky_relu_grad), the finiteness check
of a training sample and the input copy; the multiply-add they use (`axpy_rows`, its rounding
and limits) is `nanonn.float32.f32_viper`'s (momentum's one-pass step: `momentum_viper`). Imported on the first backward pass
(`nanonn.float32.activations.train_kernels`): a program that only predicts never loads them.
"""

import micropython

from .f32_viper import axpy_rows, fill


@micropython.viper
def copy(y: ptr32, x: ptr32, n: int):
    """y[i] = x[i] for i < n: 32-bit words (float32 bits), no rounding."""
    for i in range(n):
        y[i] = x[i]


@micropython.viper
def finite(x: ptr32, n: int) -> int:
    """1 if none of the n float32 words x[:n] is an infinity or NaN, else 0."""
    k = n
    while k:
        if (x[0] >> 23) & 0xFF == 255:
            return 0
        x = ptr32(int(x) + 4)
        k -= 1
    return 1


@micropython.viper
def pass_positive(z: ptr32, g: ptr32, d: ptr32, n: int):
    """d[i] = g[i] where z[i] > 0 (float32 bits; not for 0.0, -0.0, negative or NaN z),
    else d[i] as it is: the derivative of ReLU (d zeroed first) or leaky ReLU (d = alpha g)."""
    b22 = 22  # not a literal: one >= 2^30 is a boxed object in viper on 32-bit ports
    inf = 0x1FE << b22
    for i in range(n):
        b = z[i]
        if b and not (b >> 31) & 1 and b <= inf:
            d[i] = g[i]


@micropython.viper
def relu_grad(z: ptr32, g: ptr32, d: ptr32, n: int):
    """d = g * relu'(z) on float32 bits: g[i] where z[i] > 0, else 0.0."""
    # f32_viper's kernels take the pointers as addresses (their stubs type buffers)
    fill(d, n, 0)  # pyright: ignore[reportArgumentType]
    pass_positive(z, g, d, n)


@micropython.viper
def leaky_relu_grad(z: ptr32, g: ptr32, d: ptr32, n: int, alpha: ptr32):
    """d = g * leaky_relu'(z) on float32 bits: g[i] where z[i] > 0, else alpha[0] * g[i]."""
    fill(d, n, 0)  # pyright: ignore[reportArgumentType]  (as in relu_grad)
    axpy_rows(d, 0, g, 0, alpha, 1, n)  # pyright: ignore[reportArgumentType]
    pass_positive(z, g, d, n)
