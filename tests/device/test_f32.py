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


def _ints(n):
    return array("i", bytes(4 * n))


def _pow2(e):
    """2^e as a float, exactly on every port (-149 <= e <= 127; no pow)."""
    if e < -126:
        return _from_bits(1 << (e + 149))
    return _from_bits((e + 127) << 23)


def _fixed(v, st, n, j):
    """V of element j: held as V + 2^29 (0 in a row not yet started: its bound is 0)."""
    return v[j] - (1 << 29) if st[2 * (j // n) + 1] else 0


def _velocity(v, st, rows, n):
    """momentum_viper's velocity as floats: v[j] = V[j] 2^E[row] (exact in a double)."""
    # V 2^(E + 64) first, then 2^-64: 2^E alone is below float32's range on a
    # single-precision port for a row's unit as small as 2^-153
    return [_fixed(v, st, n, j) * _pow2(st[2 * (j // n)] + 64) * _pow2(-64) for j in range(rows * n)]


def _unit(st, r):
    """Row r's unit 2^E."""
    return _pow2(st[2 * r] + 64) * _pow2(-64)


def _w_close(got, w0, v, unit, what):
    """w + v rounded once: within half an ulp of the result plus 1/16 of w's ulp (v's bits
    below that are dropped) plus the row's unit 2^E (w's bits below it are dropped where v
    is the larger), the sum rounded half away from zero (a quarter ulp more below the
    normal range: rounded to 24 bits first, then to the subnormal's); one ulp more on a
    single-precision port, where w0 + v is itself rounded."""
    exact = w0 + v
    half = 0.75 if abs(exact) < _pow2(-126) else 0.5
    tol = (half + (1 if _SINGLE else 0)) * _ulp(_f32(exact)) + _ulp(w0) / 16 + unit
    ok(abs(got - exact) <= tol, "%s: w = %r, want %r (w0 %r, v %r)" % (what, got, exact, w0, v))


def _momentum_run(k, rows, n, steps, mu, w, xs_per_row, rng, lo, hi, scales=None):
    """Runs `steps` momentum steps of momentum_viper.momentum_rows on random x and c, beside
    the velocity in float (a double on the unix port): each step's v within 2^-21 of the
    row's bound on |v| (the sum of mu^k |c| max|x| over the steps), each w within 9/16 ulp
    of w + v (v as the kernel holds it). Returns (w, v, st)."""
    v, st = _ints(rows * n), _ints(2 * (rows + n))
    vf = [0.0] * (rows * n)
    bound = [0.0] * rows
    muf = mu[0]
    for step in range(steps):
        scale = 1.0 if scales is None else scales[step]
        x = _random(rng, n * rows if xs_per_row else n, lo // 2, hi // 2)
        c = _random(rng, 1 if xs_per_row else rows, lo // 2 - 4, hi // 2 - 4)
        for r in range(len(c)):
            c[r] = c[r] * scale
        w0 = list(w)
        k.momentum_rows(w, n if xs_per_row else 0, st, v, x, c, mu, rows, n)
        got = _velocity(v, st, rows, n)
        for r in range(rows):
            cr = (c[0] if xs_per_row else c[r]) * mu[1]
            xo = r * n if xs_per_row else 0
            big = max(abs(x[xo + i]) for i in range(n))
            bound[r] = muf * bound[r] + abs(cr) * big
            for i in range(n):
                j = r * n + i
                vf[j] = muf * vf[j] + cr * x[xo + i]
                ok(
                    abs(got[j] - vf[j]) <= bound[r] * 2.0**-21,
                    "step %d: v[%d] = %r, want %r (bound %r)" % (step, j, got[j], vf[j], bound[r]),
                )
                _w_close(w[j], w0[j], got[j], _unit(st, r), "step %d: w[%d]" % (step, j))
            most = max(abs(_fixed(v, st, n, j)) for j in range(r * n, r * n + n))
            ok(
                most <= st[2 * r + 1] < 1 << 30,
                "row %d: max |V| %d <= its bound %d < 2^30" % (r, most, st[2 * r + 1]),
            )
    return w, v, st


def test_momentum_velocity_and_weights_step_by_step():
    """Fixed-point velocity against the float recurrence, w + v rounded once, over exponent
    ranges from subnormal weights to 2^20; one sample's rows (c per row, x shared) and a
    batch's rows (x per row, one c); c times mu[1] (c's factor), mu from 0.5 to 0.99."""
    k = _kernels()
    rng = Random(11)
    for lo, hi, rows, n, per_row, mu in (
        (-3, 3, 5, 13, False, array("f", [0.9, 1.0])),
        (-30, 10, 3, 9, False, array("f", [0.9, -0.37])),
        (-135, -120, 2, 7, False, array("f", [0.9, 1.0])),
        (-4, 4, 4, 6, True, array("f", [0.99, -0.01])),
        (10, 20, 2, 5, True, array("f", [0.5, 3.0])),
    ):
        w = _random(rng, rows * n, lo, hi)
        _momentum_run(k, rows, n, 6, mu, w, per_row, rng, lo, hi)


def test_momentum_rows_rescale_when_the_velocity_grows_and_shrinks():
    """A row's exponent moves: steps 2^12 larger each (shifted right), then no gradient for
    40 steps at mu 0.5 (v shrinks 2^-40: shifted left, keeping 20 bits or more), checked
    against the float recurrence at each step."""
    k = _kernels()
    rng = Random(5)
    rows, n = 3, 8
    w = _random(rng, rows * n, -2, 2)
    scales = [1.0, 4096.0, 2.0**24, 2.0**36]
    _momentum_run(k, rows, n, 4, array("f", [0.9, 1.0]), w, False, rng, -6, 0, scales)
    mu = array("f", [0.5, 1.0])
    v, st = _ints(rows * n), _ints(2 * (rows + n))
    x = array("f", [1.0] * n)
    c = array("f", [0.25, -0.5, 3.0])
    w = array("f", [1000.0] * (rows * n))
    k.momentum_rows(w, 0, st, v, x, c, mu, rows, n)
    e0 = [st[2 * r] for r in range(rows)]
    c = array("f", [0.0] * rows)
    for step in range(40):
        k.momentum_rows(w, 0, st, v, x, c, mu, rows, n)
        got = _velocity(v, st, rows, n)
        for r, c0 in enumerate((0.25, -0.5, 3.0)):
            want = c0 * 0.5 ** (step + 1)
            ok(
                abs(got[r * n] - want) <= abs(want) * 2.0**-22,
                "step %d: v %r, want %r" % (step, got[r * n], want),
            )
            ok(st[2 * r + 1] >= 1 << 19, "row %d's bound keeps 20 bits or more: %d" % (r, st[2 * r + 1]))
    ok(all(st[2 * r] < e0[r] - 30 for r in range(rows)), "exponents moved down: %r from %r" % (list(st), e0))


def test_momentum_weights_at_the_fast_paths_edges():
    """w + v where the sum leaves w's binade (up and down, both signs), w zero, subnormal,
    v larger than w, v far below w's ulp, and an infinite or NaN w; mu 0 so v = c x."""
    k = _kernels()
    inf, nan = float("inf"), float("nan")
    one_less = _from_bits(0x3FFFFFFF)  # 2 - 2^-23
    tiny = _from_bits(0x00000010)  # a subnormal
    cases = [
        (one_less, 2.0**-22),  # carries into [2, 4)
        (one_less, 2.0**-24),  # rounds up to 2.0 exactly
        (0.0 - one_less, 0.0 - 2.0**-22),  # the same, negative
        (1.0, 0.0 - 2.0**-30),  # borrows into [0.5, 1)
        (1.0, 0.0 - 2.0**-26),  # rounds back to 1.0 (or the next below)
        (-1.0, 2.0**-28),
        (0.0, 0.3),
        (tiny, tiny),
        (1e-3, 5.0),  # v larger than w
        (1e-3, -5.0),
        (3.0, -3.0),  # exact cancellation
        (1e6, 2.0**-60),  # v far below w's ulp
        (1.5, 2.0**-30),
    ]
    n = len(cases)
    w = array("f", [a for a, _ in cases])
    x = array("f", [b for _, b in cases])
    c = array("f", [1.0])
    v, st = _ints(n), _ints(2 * (n + 1))
    w0 = list(w)
    k.momentum_rows(w, 0, st, v, x, c, array("f", [0.0, 1.0]), 1, n)  # one row: v at x's largest exponent
    got = _velocity(v, st, 1, n)
    for j in range(n):
        # x's elements far below the largest (5.0) keep fewer bits: compare with v as held
        _w_close(w[j], w0[j], got[j], _unit(st, 0), "case %d" % j)
    for j in range(n):  # one row per element: each v exact
        w1, v1, st1 = array("f", [w0[j]]), _ints(1), _ints(4)
        k.momentum_rows(w1, 0, st1, v1, array("f", [x[j]]), c, array("f", [0.0, 1.0]), 1, 1)
        eq(_velocity(v1, st1, 1, 1)[0], _f32(x[j]), "case %d: v = x exactly" % j)
        _w_close(w1[0], w0[j], x[j], _unit(st1, 0), "case %d alone" % j)
    w = array("f", [inf, nan, 1.0])
    x = array("f", [1.0, 1.0, 1.0])
    v, st = _ints(3), _ints(8)
    k.momentum_rows(w, 0, st, v, x, c, array("f", [0.9, 1.0]), 1, 3)
    ok(w[0] == inf and w[1] != w[1] and w[2] == 2.0, "an infinite or NaN w stays: %r" % list(w))


def test_momentum_rows_of_zeros_non_finite_and_overflow():
    """A row with c = 0 and v = 0 is left alone (w, v and its state); an infinite or NaN c
    or x, or a velocity beyond 2^90, makes that row's weights NaN and leaves the others."""
    k = _kernels()
    inf, nan = float("inf"), float("nan")
    rows, n = 4, 3
    w = array("f", [1.0, 2.0, 3.0] * rows)
    v, st = _ints(rows * n), _ints(2 * (rows + n))
    x = array("f", [0.5, -1.0, 2.0])
    c = array("f", [0.0, 1.0, inf, 1e20])
    mu = array("f", [0.9, 1.0])
    k.momentum_rows(w, 0, st, v, x, c, mu, rows, n)
    eq(list(w[:3]) + list(v[:3]) + list(st[:2]), [1.0, 2.0, 3.0, 0, 0, 0, 0, 0], "a row of zeros: untouched")
    eq(list(w[3:6]), [1.5, 1.0, 5.0], "c x added")
    ok(all(w[j] != w[j] for j in range(6, 9)), "an infinite c: NaN weights")
    ok(abs(w[11] - 2e20) <= 2e20 * 2.0**-23, "1e20 * 2: within range, %r" % w[11])
    c[3] = 3e38
    x2 = array("f", [3e38, -1.0, 2.0])
    k.momentum_rows(w, 0, st, v, x2, c, mu, rows, n)
    ok(all(w[j] != w[j] for j in range(9, 12)), "v beyond 2^90: NaN weights")
    w = array("f", [1.0, 2.0])
    v, st = _ints(2), _ints(2 * (1 + 2))
    k.momentum_rows(w, 0, st, v, array("f", [1.0, nan]), array("f", [1.0]), mu, 1, 2)
    ok(w[0] != w[0] and w[1] != w[1], "a NaN x: NaN weights")


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
