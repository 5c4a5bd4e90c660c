"""The float32 kernels (nanonn.float32.f32_viper, train_viper, momentum_viper) against y + a * x in double rounded once
to float32 (the unix port's floats are doubles): within one float32 ulp of the result
plus 2^-26 of the larger operand (where the two nearly cancel); subnormals,
cancellation, overflow and non-finite operands as the module docstring states."""

import struct
from array import array

from check import IS_MICROPYTHON, NATIVE, eq, ok, skip
from nanonn.float32 import layers
from nanonn.rand import Random


class _Ptr32:
    """CPython: a viper ptr32 over an array's 32-bit words (loads zero-extended, like x64).
    `int(p)` is an address (each buffer its own 2^24-byte range) and `_cast(address)` the
    pointer back: the kernels walk their buffers by pointer."""

    spaces = []  # the word views, by address range: view k starts at (k + 1) * 2^24

    def __init__(self, buf, at=0):
        self.words = buf if type(buf) is memoryview else memoryview(buf).cast("B").cast("I")
        self.at = at
        if not any(w is self.words for w in _Ptr32.spaces):
            _Ptr32.spaces.append(self.words)

    def __int__(self):
        k = [i for i, w in enumerate(_Ptr32.spaces) if w is self.words][0]
        return ((k + 1) << 24) + 4 * self.at

    def __getitem__(self, i):
        return self.words[self.at + i]

    def __setitem__(self, i, v):
        self.words[self.at + i] = v & 0xFFFFFFFF


def _cast(address):
    """viper's ptr32(address) for a `_Ptr32` address (one word before a buffer included)."""
    k = ((address + (1 << 20)) >> 24) - 1
    return _Ptr32(_Ptr32.spaces[k], (address - ((k + 1) << 24)) // 4)


class _Source:
    """CPython: nanonn/float32/f32_viper.py's, train_viper.py's and momentum_viper.py's functions
    run as plain Python over `_Ptr32` views (their integer arithmetic op for op), so the checks
    below test the same algorithm on both. train_viper's import of f32_viper's names is served
    by the one namespace."""

    def __init__(self):
        import sys
        import types

        fake = types.ModuleType("micropython")
        fake.viper = lambda f: f  # pyright: ignore[reportAttributeAccessIssue]
        saved = sys.modules.get("micropython")
        sys.modules["micropython"] = fake
        self.ns = {"ptr32": _cast}
        try:
            for name in ("f32_viper.py", "train_viper.py", "momentum_viper.py"):
                path = layers.__file__.replace("layers.py", name)
                with open(path) as f:
                    source = f.read().replace("from .f32_viper import", "# (one namespace)")
                exec(compile(source, path, "exec"), self.ns)
        finally:
            if saved is None:
                del sys.modules["micropython"]
            else:
                sys.modules["micropython"] = saved

    def _call(self, name, *args):
        wrapped = [_Ptr32(a) if isinstance(a, array) else a for a in args]
        return self.ns[name](*wrapped)

    def axpy_rows(self, *args):
        return self._call("axpy_rows", *args)

    def fill(self, *args):
        return self._call("fill", *args)

    def copy(self, *args):
        return self._call("copy", *args)

    def finite(self, *args):
        return self._call("finite", *args)

    def relu_grad(self, *args):
        return self._call("relu_grad", *args)

    def leaky_relu_grad(self, *args):
        return self._call("leaky_relu_grad", *args)

    def momentum_rows(self, *args):
        return self._call("momentum_rows", *args)


class _Both:
    """MicroPython: the viper kernels of f32_viper, train_viper and momentum_viper as one object."""

    def __init__(self):
        from nanonn.float32 import f32_viper, momentum_viper, train_viper

        self.axpy_rows, self.fill = f32_viper.axpy_rows, f32_viper.fill
        self.copy, self.finite = train_viper.copy, train_viper.finite
        self.relu_grad, self.leaky_relu_grad = train_viper.relu_grad, train_viper.leaky_relu_grad
        self.momentum_rows = momentum_viper.momentum_rows


def _kernels():
    """The viper kernels (MicroPython), or their source run as Python (CPython)."""
    if IS_MICROPYTHON and not NATIVE:
        skip("no native emitter on this port: f32_viper does not compile (test_fallback checks that)")
    return _Both() if IS_MICROPYTHON else _Source()


_SINGLE = 1.0 + 2.0**-30 == 1.0  # a single-precision port (floats are float32)


def _bits(v):
    return struct.unpack("<I", struct.pack("<f", v))[0]


def _from_bits(b):
    """The float32 value of bit pattern b (exact on every port: no decimal text, no pow)."""
    return struct.unpack("<f", struct.pack("<I", b))[0]


def _f32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


def _ulp(v):
    """The float32 spacing at |v| (subnormal spacing below the normal range)."""
    e = (_bits(v) >> 23) & 0xFF
    return 2.0 ** (max(e, 1) - 150)


def _random(rng, n, lo_exp, hi_exp):
    out = array("f", bytes(4 * n))
    for i in range(n):
        m = rng.uniform(-2.0, 2.0)
        e = int(rng.uniform(lo_exp, hi_exp))
        out[i] = m * 2.0**e
    return out


def test_kernels_selected_where_viper_exists():
    if NATIVE:
        ok(layers._f32k is not None, "f32_viper compiled on the unix port")
    else:
        ok(
            layers._f32k is None,
            "no viper on CPython and the WebAssembly port: Dense trains with the float loop",
        )


def test_outer_product_within_one_ulp():
    k = _kernels()
    rng = Random(7)
    for lo, hi in ((-3, 3), (-30, 30), (-140, -120), (100, 120)):
        n, rows = 37, 5
        y = _random(rng, n * rows, lo, hi)
        x = _random(rng, n, lo // 2, hi // 2)
        a = _random(rng, rows, lo // 2, hi // 2)
        want = [y[r * n + i] + a[r] * x[i] for r in range(rows) for i in range(n)]
        big = [max(abs(y[r * n + i]), abs(a[r] * x[i])) for r in range(rows) for i in range(n)]
        k.axpy_rows(y, n, x, 0, a, rows, n)
        for j in range(n * rows):
            w = _f32(want[j])
            # one ulp of the result, plus the bits dropped below the larger operand's
            # 28 (visible when the two nearly cancel)
            tol = _ulp(w) + big[j] * 2.0**-26
            if _SINGLE:  # the reference itself is rounded twice in float32 there
                tol = 2 * _ulp(w) + big[j] * 2.0**-23
            ok(abs(y[j] - w) <= tol, "exponents %d..%d: y[%d] = %r, want %r" % (lo, hi, j, y[j], w))


def test_momentum_step_within_one_ulp_each():
    """v = mu v + c x (one rounding), then w += v (one rounding): each within one ulp of the
    exact value from the operands it had (the rounded v for w), plus 2^-26 of the larger
    term where they nearly cancel; one sample's rows (c per row, x shared) and a batch's
    single row (x the gradient)."""
    k = _kernels()
    rng = Random(11)
    mu = array("f", [0.9])
    for lo, hi, rows, n in ((-3, 3, 5, 13), (-30, 10, 3, 9), (-135, -120, 2, 7), (-4, 4, 1, 40)):
        w = _random(rng, rows * n, lo, hi)
        v = _random(rng, rows * n, lo - 8, hi - 8)
        x = _random(rng, n, lo // 2, hi // 2)
        c = _random(rng, rows, lo // 2 - 4, hi // 2 - 4)
        w0, v0 = list(w), list(v)
        k.momentum_rows(w, v, x, c, mu, rows, n)
        for j in range(rows * n):
            r, i = j // n, j % n
            terms = (mu[0] * v0[j], c[r] * x[i])
            want = _f32(terms[0] + terms[1])
            tol = _ulp(want) + max(abs(terms[0]), abs(terms[1])) * 2.0**-26
            if _SINGLE:  # the reference itself is rounded twice in float32 there
                tol = 2 * _ulp(want) + max(abs(terms[0]), abs(terms[1])) * 2.0**-23
            ok(abs(v[j] - want) <= tol, "exponents %d..%d: v[%d] = %r, want %r" % (lo, hi, j, v[j], want))
            want = _f32(w0[j] + v[j])
            tol = (2 if _SINGLE else 1) * _ulp(want) + max(abs(w0[j]), abs(v[j])) * 2.0**-26
            ok(abs(w[j] - want) <= tol, "exponents %d..%d: w[%d] = %r, want %r" % (lo, hi, j, w[j], want))


def test_momentum_step_exact_cases_and_non_finite_operands():
    k = _kernels()
    inf, nan = float("inf"), float("nan")
    mu = array("f", [0.5])
    tiny = _from_bits(0x00800000)  # 2^-126 (a single-precision port's pow is not exact)
    w = array("f", [1.0, 2.0, 0.0, 5.0, inf, 1.0, 1.0, 3e38, tiny])
    v = array("f", [2.0, -4.0, 0.0, inf, 1.0, 1.0, 1.0, 3e38, 0.0])
    x = array("f", [0.5, 1.0, 0.0, 1.0, 1.0, nan, inf, 3e38, 0.0 - tiny])
    c = array("f", [-2.0])
    k.momentum_rows(w, v, x, c, mu, 1, 9)
    eq(list(v[:3]), [0.0, -4.0, 0.0], "exact: 0.5 * 2 - 2 * 0.5, 0.5 * -4 - 2 * 1, zeros")
    eq(list(w[:3]), [1.0, -2.0, 0.0], "w += v")
    eq((v[3], w[3] != w[3]), (inf, True), "an infinite v stays, and w becomes NaN")
    eq(w[4], inf, "an infinite w stays")
    ok(v[5] != v[5] and w[5] != w[5] and v[6] != v[6] and w[6] != w[6], "a non-finite x gives NaN")
    ok(v[7] == -inf and w[7] != w[7], "overflow: v = -inf, w NaN (w + an infinite v)")
    # v = -2 * -2^-126 = 2^-125, w = 2^-126 + 2^-125 = 1.5 * 2^-125
    eq((v[8], w[8]), (_from_bits(0x01000000), _from_bits(0x01400000)), "smallest normals: exact")


def test_cancellation_zero_and_subnormal_results():
    k = _kernels()
    y = array("f", [1.0, 3.0, 1e-38, -1e-38, 0.0, 5.0])
    x = array("f", [1.0, 1.0, 0.5, 0.25, 0.0, 1.0])
    a = array("f", [-1.0])
    k.axpy_rows(y, 0, x, 0, a, 1, 6)
    want = [0.0, 2.0, _f32(1e-38) - 0.5, _f32(-1e-38) - 0.25, 0.0, 4.0]
    eq(list(y), want, "exact sums")
    y = array("f", [2.0**-126, 2.0**-126])
    x = array("f", [1.0, 0.25])
    a = array("f", [-(2.0**-127)])
    k.axpy_rows(y, 0, x, 0, a, 1, 2)
    eq(list(y), [2.0**-127, 2.0**-126 - 2.0**-129], "subnormal results")


def test_transposed_product_and_scaled_sum():
    k = _kernels()
    rng = Random(3)
    units, n = 6, 9
    w = _random(rng, units * n, -2, 2)
    d = _random(rng, units, -2, 2)
    g = array("f", bytes(4 * n))
    k.axpy_rows(g, 0, w, n, d, units, n)  # g = W^T d
    for i in range(n):
        s = 0.0
        bound = 0.0
        for u in range(units):
            s += w[u * n + i] * d[u]
            bound += abs(w[u * n + i] * d[u])
        ok(abs(g[i] - s) <= units * 1.2e-7 * bound, "g[%d] = %r, want %r" % (i, g[i], s))


def test_overflow_and_non_finite_operands():
    k = _kernels()
    inf = float("inf")
    y = array("f", [3e38, -3e38, inf, 1.0, 1.0])
    x = array("f", [3e38, 3e38, 1.0, inf, float("nan")])
    a = array("f", [1.0])
    k.axpy_rows(y, 0, x, 0, a, 1, 5)
    eq(y[0], inf, "overflow")
    eq(y[1], 0.0, "exact cancellation")
    eq(y[2], inf, "an infinite y stays")
    ok(y[3] != y[3] and y[4] != y[4], "a non-finite x gives NaN")


def test_fill_and_copy():
    k = _kernels()
    y = array("f", [1.0, 2.0, 3.0])
    k.copy(y, array("f", [-0.5, 7.25, 0.0]), 2)
    eq(list(y), [-0.5, 7.25, 3.0], "copy")
    k.fill(y, 3, 0)
    eq(list(y), [0.0, 0.0, 0.0], "fill")


def test_finite_and_relu_derivatives_on_bits():
    k = _kernels()
    inf, nan = float("inf"), float("nan")
    for v, want in (([1.0, -2.0, 0.0, 1e-45], 1), ([1.0, inf], 0), ([nan, 1.0], 0), ([-inf], 0), ([], 1)):
        eq(k.finite(array("f", v), len(v)), want, "finite(%r)" % v)
    z = array("f", [1.5, -2.0, 0.0, -0.0, inf, -inf, nan, 1e-45, -1e-45, 3e38])
    g = array("f", [0.5, 2.0, -1.0, 3.0, -4.0, 5.0, 6.0, 7.0, -8.0, 9.0])
    d = array("f", [99.0] * 10)
    k.relu_grad(z, g, d, 10)
    want = [g[i] if z[i] > 0.0 else 0.0 for i in range(10)]  # NaN > 0 is False
    eq(list(d), want, "relu'")
    k.leaky_relu_grad(z, g, d, 10, array("f", [0.125]))
    want = [g[i] if z[i] > 0.0 else 0.125 * g[i] for i in range(10)]
    eq(list(d), want, "leaky_relu' (alpha 0.125: exact products)")
