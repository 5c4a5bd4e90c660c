"""Device float core: seed vectors, API behaviour, errors and allocations."""

import gc
import sys
from array import array

from check import HEAP_MEASURED, IS_MICROPYTHON, close, eq, load_json, ok, raises, skip
from nanonn import NN, Dense, Network

SEED = load_json("tests/data/seed_vectors.json")


def _seed_222():
    case = SEED["backprop_2_2_2"]
    layers = [
        Dense(spec["units"], inputs=spec["inputs"], activation=case["activation"], weights=spec["weights"])
        for spec in case["layers"]
    ]
    return case, Network(*layers)


def test_seed_perceptron_forward():
    case = SEED["perceptron_forward"]
    net = Network(
        Dense(case["units"], inputs=case["inputs"], activation=case["activation"], weights=case["weights"])
    )
    for c in case["cases"]:
        close(net.predict(c["x"]), c["y"], 1e-6, "perceptron output")


def test_seed_backprop_step():
    case, net = _seed_222()
    close(net.predict(case["x"]), case["predicted"], 1e-6, "predicted")
    loss = net.train(case["x"], case["target"], rate=case["rate"])
    close(loss, case["loss_before_update"], 1e-6, "loss")
    for i, expected in enumerate(case["weights_after_one_step"]):
        close(net.get_weights()[i], expected, 1e-6, "layer %d weights" % i)


def test_nn_alias_and_shapes():
    ok(NN is Network, "NN is an alias of Network")
    net = Network(
        Dense(10, inputs=4, activation="relu"), Dense(3, activation="softmax"), loss="cross_entropy"
    )
    eq(net.inputs, 4, "inputs")
    eq(net.outputs, 3, "outputs")
    eq(net.layers[1].inputs, 10, "inferred inputs")
    y = net.predict([0.1, 0.2, 0.3, 0.4])
    close(sum(y), 1.0, 1e-5, "softmax sum")
    ok(type(y) is array, "predict returns an array")
    y[0] = 0.1
    close(y[0], 0.1, 1e-8, "array('f') element")


def test_predict_reuses_output_buffer():
    net = Network(Dense(2, inputs=1))
    a = net.predict([1.0])
    b = net.predict([2.0])
    ok(a is b, "predict returns the same buffer each call (documented)")


def test_accepts_list_tuple_array():
    net = Network(Dense(2, inputs=3, activation="tanh"))
    ref = list(net.predict([0.5, -1, 2.0]))
    close(net.predict((0.5, -1, 2.0)), ref, 1e-7, "tuple input")
    close(net.predict(array("f", [0.5, -1, 2.0])), ref, 1e-7, "array input")


def test_weights_round_trip():
    w = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    net = Network(Dense(2, inputs=3, weights=w))
    close(net.get_weights()[0], w, 1e-7, "weights")
    w2 = [v * 2 for v in w]
    net.set_weights([w2])
    close(net.get_weights()[0], w2, 1e-7, "weights after set")


def test_no_bias_layer_computes():
    # The original Python Dense returned zeros with use_bias=False.
    net = Network(Dense(2, inputs=2, use_bias=False, weights=[1.0, 2.0, 3.0, 4.0]))
    close(net.predict([1.0, 1.0]), [3.0, 7.0], 1e-6, "no-bias output")
    eq(len(net.get_weights()[0]), 4, "no-bias weight count")
    net.train([1.0, 1.0], [0.0, 0.0], rate=0.1)
    close(net.layers[0].b, [0.0, 0.0], 0.0, "bias stays zero")


def test_activation_outputs_and_large_inputs():
    values = [-1000.0, -30.0, -1.5, 0.0, 2.0, 30.0, 1000.0]
    expect = {
        "sigmoid": [0.0, 9.357623e-14, 0.1824255, 0.5, 0.8807971, 1.0, 1.0],
        "tanh": [-1.0, -1.0, -0.9051482, 0.0, 0.9640276, 1.0, 1.0],
        "relu": [0.0, 0.0, 0.0, 0.0, 2.0, 30.0, 1000.0],
        "leaky_relu": [-10.0, -0.3, -0.015, 0.0, 2.0, 30.0, 1000.0],
        "softplus": [0.0, 9.357623e-14, 0.2014133, 0.6931472, 2.126928, 30.0, 1000.0],
        "linear": values,
    }
    n = len(values)
    for name in expect:
        net = Network(Dense(n, inputs=1, activation=name, weights=[0.0] * n * 2))
        net.layers[0].b[:] = array("f", values)
        close(net.predict([0.0]), expect[name], 1e-5, name, rel=True)
    net = Network(Dense(3, inputs=1, activation="softmax", weights=[0, 1000.0, 0, 0, 0, -1000.0]))
    close(net.predict([0.0]), [1.0, 0.0, 0.0], 1e-6, "softmax large")


def test_leaky_relu_slope_configurable():
    from nanonn.float32.activations import LeakyReLU

    net = Network(Dense(1, inputs=1, activation=LeakyReLU(0.2), weights=[1.0, 0.0]))
    close(net.predict([-2.0]), [-0.4], 1e-6, "leaky slope 0.2")


def test_softplus_derivative_uses_input():
    # d softplus(z)/dz = sigmoid(z); one step with w=1, b=0, x=1, target 0.
    net = Network(Dense(1, inputs=1, activation="softplus", weights=[1.0, 0.0]))
    y = net.predict([1.0])[0]
    net.train([1.0], [0.0], rate=1.0)
    sig = 1.0 / (1.0 + 2.718281828459045**-1.0)
    close(net.get_weights()[0], [1.0 - y * sig, 0.0 - y * sig], 1e-6, "softplus step")


def test_bad_inputs():
    net = Network(Dense(3, inputs=2, activation="relu"), Dense(1))
    raises(ValueError, net.predict, [1.0], contains=("expected 2", "got 1"))
    raises(ValueError, net.predict, [1.0, 2.0, 3.0], contains=("expected 2", "got 3"))
    raises(ValueError, net.predict, [], contains=("expected 2", "got 0"))
    raises(TypeError, net.predict, None, contains=("expected a list", "NoneType"))
    raises(TypeError, net.predict, "ab", contains=("str",))
    raises(TypeError, net.predict, [1.0, None], contains=("input[1]", "NoneType"))
    raises(TypeError, net.predict, [[1.0], 2.0], contains=("input[0]", "list"))
    raises(ValueError, net.train, [1.0, 2.0], [1.0, 2.0], contains=("target", "expected 1", "got 2"))


def test_bad_construction():
    raises(ValueError, Dense, 3, activation="swish", contains=("swish", "relu", "sigmoid"))
    raises(ValueError, Network, Dense(3, inputs=2), loss="hinge", contains=("hinge", "mse", "cross_entropy"))
    raises(ValueError, Network, Dense(3, inputs=2), Dense(1, inputs=4), contains=("expected 3", "got 4"))
    raises(ValueError, Network, Dense(3), contains=("inputs",))
    raises(ValueError, Dense, 0, contains=("units", "got 0"))
    raises(ValueError, Dense, 2, inputs=1, weights=[1.0], contains=("expected 4", "got 1"))
    raises(TypeError, Network, "dense", contains=("str",))
    raises(TypeError, Dense, 2, activation=3, contains=("int",))


def _mem_delta(fn):
    gc.collect()
    before = gc.mem_alloc()
    fn()
    gc.collect()
    return gc.mem_alloc() - before


def _kept(n, fn, *args):
    """Heap bytes still allocated after n calls of fn(*args) and a collection."""

    def calls():
        for _ in range(n):
            fn(*args)

    return _mem_delta(calls)


def test_predict_and_train_keep_no_allocations():
    if IS_MICROPYTHON and not HEAP_MEASURED:
        skip("this port's gc.collect() frees nothing inside a program: heap kept is not measurable")
    # tracemalloc is CPython's (MicroPython and its stubs have none): its lines are silenced.
    if not IS_MICROPYTHON:
        import tracemalloc

        tracemalloc.start()  # pyright: ignore[reportAttributeAccessIssue]
    net = Network(Dense(8, inputs=4, activation="relu"), Dense(3, activation="softmax"), loss="cross_entropy")
    x = array("f", [0.1, 0.2, -0.3, 0.4])
    t = [0.0, 1.0, 0.0]
    net.predict(x)
    net.train(x, t)
    if IS_MICROPYTHON:
        # At most one GC block, however many calls: on the 32-bit ports (x86-32, ARM) a
        # predict can leave one 16-byte boxed float (the last temporary of Dense's plain
        # float loop, `_dot`) marked after gc.collect(), depending only on where paths and
        # heap put things (a stale pointer seen by the conservative collector, not a
        # reference nanonn keeps: 1, 5 and 10 calls keep the same 16 bytes, and it moves
        # with the length of the module search path). A leak grows with the calls.
        block = 32 if sys.maxsize > 1 << 32 else 16
        for n in (1, 10):
            ok(_kept(n, net.predict, x) <= block, "heap bytes kept by %d predicts" % n)
            ok(_kept(n, net.train, x, t) <= block, "heap bytes kept by %d trains" % n)
    else:
        # CPython: nothing accumulates over many calls (tracemalloc has some noise).
        import tracemalloc  # started above

        for fn in (lambda: net.predict(x), lambda: net.train(x, t)):
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]  # pyright: ignore[reportAttributeAccessIssue]
            for _ in range(200):
                fn()
            gc.collect()
            kept = tracemalloc.get_traced_memory()[0] - before  # pyright: ignore[reportAttributeAccessIssue]
            ok(kept < 1024, "bytes kept by 200 calls: %d" % kept)
        tracemalloc.stop()  # pyright: ignore[reportAttributeAccessIssue]


def test_non_finite_training_is_skipped():
    net = Network(Dense(2, inputs=2, activation="sigmoid"))
    before = net.get_weights()
    loss = net.train([float("nan"), 1.0], [0.0, 1.0])
    ok(loss != loss, "NaN loss is returned")
    eq(net.get_weights(), before, "weights unchanged by a non-finite sample")
    net.train([1e30, 1.0], [float("inf"), 1.0])
    eq(net.get_weights(), before, "weights unchanged by an infinite target")
