"""The float Dense forward's viper kernel (nanonn.float32.dense_viper) against a
double-precision sum of the same float32 values, within float32's own error
bound; infinities and NaN through the plain loop."""

from array import array

from check import NATIVE, SMALL_HEAP, eq, ok
from nanonn import Dense
from nanonn.float32 import layers
from nanonn.rand import Random


def _layer(n, u, seed, lo=-1.0, hi=1.0):
    rng = Random(seed)
    d = Dense(u, inputs=n)
    d.build(n, rng)
    for i in range(n * u):
        d.w[i] = rng.uniform(lo, hi)
    for i in range(u):
        d.b[i] = rng.uniform(-0.5, 0.5)
    return d, rng


def _exact(d, x):
    """z in double from the float32 values (the unix port's floats are doubles)."""
    n = d.inputs
    out = []
    bound = []
    for u in range(d.units):
        s = d.b[u]
        a = abs(d.b[u])
        for i in range(n):
            s += d.w[u * n + i] * x[i]
            a += abs(d.w[u * n + i] * x[i])
        out.append(s)
        bound.append(a)
    return out, bound


def test_kernel_selected_where_viper_exists():
    if NATIVE:
        ok(layers._fast is not None, "fdense_viper compiled on the unix port")
    else:
        ok(layers._fast is None, "no viper on CPython and the WebAssembly port")


def test_matches_double_sum_within_float32_error():
    cases = ((1, 1, 1), (3, 2, 2), (31, 5, 3), (33, 4, 4), (784, 6, 5))
    for n, u, seed in cases[:-1] if SMALL_HEAP else cases:  # 784 inputs: x64 only
        d, rng = _layer(n, u, seed)
        for scale in (1.0, 1e-20, 3e15):
            x = array("f", [rng.uniform(-2.0, 2.0) * scale for _ in range(n)])
            z = list(d.forward(x, False))
            want, bound = _exact(d, x)
            for k in range(u):
                tol = (n + 2) * 1.2e-7 * bound[k]
                ok(
                    abs(z[k] - want[k]) <= tol,
                    "n=%d scale=%g z[%d]=%r want %r" % (n, scale, k, z[k], want[k]),
                )


def test_mixed_magnitudes_and_subnormals():
    d, rng = _layer(6, 3, 9)
    x = [1e30, -1e-30, 1.4e-45, 0.0, -0.0, 2.5]
    z = list(d.forward(x, False))
    want, bound = _exact(d, array("f", x))
    for k in range(3):
        ok(abs(z[k] - want[k]) <= 8 * 1.2e-7 * bound[k], "z[%d]=%r want %r" % (k, z[k], want[k]))


def test_non_finite_inputs_use_the_float_loop():
    d, _ = _layer(4, 2, 11, lo=0.1, hi=1.0)  # positive weights: +inf stays +inf
    z = d.forward([float("inf"), 1.0, 2.0, 3.0], False)
    eq([z[0], z[1]], [float("inf"), float("inf")], "inf propagates")
    z = d.forward([float("nan"), 1.0, 2.0, 3.0], False)
    ok(z[0] != z[0] and z[1] != z[1], "NaN propagates")
    d.w[0] = float("inf")
    z = d.forward([1.0, 1.0, 1.0, 1.0], False)
    eq(z[0], float("inf"), "infinite weight")
    ok(z[1] == z[1] and z[1] != float("inf"), "other rows stay finite")


def test_cached_weights_give_the_same_bits_and_notice_changes():
    from nanonn import Network

    rng = Random(11)
    plain = Network(
        Dense(7, inputs=40, activation="leaky_relu", cache=False), Dense(3, activation="softmax", cache=False)
    )
    ok(plain.layers[0].wq is None, "cache=False keeps no decoded weights")
    cached = Network(
        Dense(7, inputs=40, activation="leaky_relu", cache=True), Dense(3, activation="softmax", cache=True)
    )
    cached.set_weights(plain.get_weights())
    x = array("f", bytes(4 * 40))
    if NATIVE:
        ok(cached.layers[0].wq is not None, "cache=True keeps decoded weights where viper exists")
    for _ in range(3):
        x = array("f", [rng.uniform(-3.0, 3.0) for _ in range(40)])
        eq(list(cached.predict(x)), list(plain.predict(x)), "cached output bits")
    ok(cached.layers[0]._wq_ok == NATIVE, "predict ran dot_cached (where viper exists)")
    # a weight written directly, then training steps: the cache follows both
    for net in (plain, cached):
        net.layers[0].w[5] = 2.5
    eq(list(cached.predict(x)), list(plain.predict(x)), "after a direct write")
    for net in (plain, cached):
        net.train(x, [0.0, 1.0, 0.0], 0.5)
    eq(list(cached.predict(x)), list(plain.predict(x)), "after a training step")
    # several steps (the forward passes decode the updated weights) keep the same bits
    for _ in range(3):
        for net in (plain, cached):
            net.train(x, [1.0, 0.0, 0.0], 0.25)
    eq(cached.get_weights(), plain.get_weights(), "weights after training steps")
    eq(list(cached.predict(x)), list(plain.predict(x)), "after more training steps")
    # a weight row reordered (the checksum is position-sensitive)
    for net in (plain, cached):
        w = net.layers[0].w
        for i in range(40):
            w[i], w[40 + i] = w[40 + i], w[i]
    eq(list(cached.predict(x)), list(plain.predict(x)), "after exchanging two rows")


def test_cache_default_follows_the_heap():
    """Dense(cache=None) keeps decoded weights where viper exists and either the heap holds
    1 MB or the layer's cost (4 bytes a weight, rows rounded up to 4 inputs, + 12 a unit +
    4,096 for the module's code) is at most a quarter of the free heap; never below 8
    inputs (the plain loop runs there); on a board-sized heap a layer whose cost exceeds a
    quarter of the free heap does not cache."""
    import gc

    d = Dense(3, inputs=16)
    ok(d.cache is None, "undecided until built")
    d.build(16, Random(1))
    ok(type(d.cache) is bool, "decided at build: %r" % d.cache)
    if NATIVE:
        ok(d.cache, "a small layer caches wherever viper exists")
    eq(d.wq is not None, bool(NATIVE), "decoded weights kept (only where viper exists)")
    d = Dense(3, inputs=4)
    d.build(4, Random(1))
    eq(d.wq, None, "no cache below 8 inputs")
    if NATIVE and SMALL_HEAP:
        d = None
        gc.collect()
        free = gc.mem_free()  # pyright: ignore[reportAttributeAccessIssue] (MicroPython)
        # its buffers (w, gw: 64 bytes a unit; b, z, y, d, c, gb: 24) take 0.44 of the free
        # heap before the decision; its cost (44 bytes a unit + 4,096) exceeds a quarter of the rest
        u = free // 200
        d = Dense(u, inputs=8)
        d.build(8, Random(1))
        eq(d.cache, False, "%d units of 8 inputs on %d B free" % (u, free))
        eq(d.wq, None, "no decoded weights")


def test_bias_and_relu_folded_into_the_rounding():
    """to_float32 adds the bias before its one rounding and applies ReLU: a bias that
    cancels the sum, one far larger or smaller, and infinite or NaN biases."""
    d, rng = _layer(24, 4, 13)
    d.activation = d.activation.__class__("relu", *layers.activations._FUNCTIONS["relu"])
    d.alloc_fast()
    x = array("f", [rng.uniform(-1.0, 1.0) for _ in range(24)])
    d.b[0] = 0.0
    want, _ = _exact(d, x)
    d.b[0] = -want[0]  # float32 of the exact sum: z is the rounding error of that, tiny
    d.b[1] = 1e30
    d.b[2] = 1e-30
    d.b[3] = -1e-3
    z = list(d.forward(x, False))
    want, bound = _exact(d, x)
    for k in range(4):
        ok(abs(d.z[k] - want[k]) <= 26 * 1.2e-7 * bound[k], "z[%d]=%r want %r" % (k, d.z[k], want[k]))
        eq(z[k], d.z[k] if d.z[k] > 0.0 else 0.0, "relu of z[%d]" % k)
    d.b[0], d.b[1], d.b[2] = float("inf"), float("-inf"), float("nan")
    z = list(d.forward(x, False))
    eq([d.z[0], d.z[1]], [float("inf"), float("-inf")], "infinite biases")
    ok(d.z[2] != d.z[2], "NaN bias")
    eq(z[:3], [float("inf"), 0.0, 0.0], "relu of inf, -inf, NaN")
