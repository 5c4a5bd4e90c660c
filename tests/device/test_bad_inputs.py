"""Bad inputs to predict/train/fit on float and int8 networks (extends test_core's
test_bad_inputs): every length around n, wrong containers and element types, None,
nested lists, and NaN/infinity (a defined result, documented in the docstrings)."""

from array import array

from check import eq, ok, raises
from nanonn import Dense, Network
from nanonn.rand import Random

NAN = float("nan")
INF = float("inf")
N = 4


def _float_net():
    return Network(
        Dense(5, inputs=N, activation="tanh"), Dense(3, activation="softmax"), loss="cross_entropy"
    )


def _int8_net():
    rng = Random(3)
    X = [[rng.uniform(-2.0, 2.0) for _ in range(N)] for _ in range(16)]
    return Network(Dense(6, inputs=N, activation="relu"), Dense(3, activation="softmax"), seed=2).quantize(X)


def _containers(values):
    return (list(values), tuple(values), array("f", values))


def _wrong_lengths(predict):
    for n in (0, N - 1, N + 1, 2 * N):
        for x in _containers([0.5] * n):
            raises(ValueError, predict, x, contains=("input", "expected %d" % N, "got %d" % n))


def _wrong_types(predict):
    raises(TypeError, predict, None, contains=("input", "NoneType"))
    raises(TypeError, predict, 3.0, contains=("input", "float"))
    raises(TypeError, predict, "abcd", contains=("input", "str"))
    raises(TypeError, predict, {0: 1.0}, contains=("input", "dict"))
    raises(TypeError, predict, [0.5, None, 0.5, 0.5], contains=("input[1]", "NoneType"))
    raises(TypeError, predict, [0.5, 0.5, "1", 0.5], contains=("input[2]", "str"))
    raises(TypeError, predict, [[0.5], 0.5, 0.5, 0.5], contains=("input[0]", "list"))
    raises(TypeError, predict, [0.5, 0.5, 0.5, (1.0,)], contains=("input[3]", "tuple"))
    raises(ValueError, predict, [[0.5] * N], contains=("expected %d" % N, "got 1"))  # nested one level


def test_float_predict_wrong_lengths():
    _wrong_lengths(_float_net().predict)


def test_float_predict_wrong_types():
    _wrong_types(_float_net().predict)


def test_int8_predict_wrong_lengths():
    _wrong_lengths(_int8_net().predict)


def test_int8_predict_wrong_types():
    _wrong_types(_int8_net().predict)


def test_int8_predict_int8_wrong_inputs():
    q = _int8_net()
    for n in (0, N - 1, N + 1):
        raises(ValueError, q.predict_int8, bytes(n), contains=("expected %d int8 values" % N, "got %d" % n))
    raises(TypeError, q.predict_int8, None, contains=("predict_int8 input", "NoneType"))
    raises(TypeError, q.predict_int8, [0] * N, contains=("predict_int8 input", "list"))


def test_float_predict_non_finite_is_ieee_not_an_error():
    # Documented in Network.predict: NaN/inf inputs are computed, outputs non-finite.
    for act in ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "softmax"):
        net = Network(Dense(3, inputs=2, activation=act), Dense(2, activation=act), seed=4)
        for x in ([NAN, 1.0], [INF, 1.0], [0.0 - INF, 1.0], [1e30, -1e30]):
            y = net.predict(x)
            eq(len(y), 2, "%s outputs for %r" % (act, x))
        y = Network(Dense(1, inputs=2, weights=[1.0, 1.0, 0.0])).predict([NAN, 1.0])
        ok(y[0] != y[0], "NaN propagates through a linear layer")


def test_int8_predict_non_finite_is_defined():
    # Documented in QNetwork.predict: NaN quantizes like 0.0, +-inf like the extremes.
    q = _int8_net()
    zero = list(q.predict([0.0, 0.0, 0.0, 0.0]))
    eq(list(q.predict([NAN, NAN, NAN, NAN])), zero, "NaN input")
    big = list(q.predict([1e30, 0.0 - 1e30, 1e30, 0.5]))
    eq(list(q.predict([INF, 0.0 - INF, INF, 0.5])), big, "infinite input")
    for v in q.predict([INF, NAN, 0.0 - INF, 0.5]):
        ok(v == v and v != INF, "int8 outputs stay finite")


def test_train_bad_targets_and_inputs():
    net = _float_net()
    before = net.get_weights()
    for n in (0, 2, 4):
        raises(ValueError, net.train, [0.5] * N, [0.0] * n, contains=("target", "expected 3", "got %d" % n))
    raises(TypeError, net.train, [0.5] * N, None, contains=("target", "NoneType"))
    raises(TypeError, net.train, [0.5] * N, [0.0, [1.0], 0.0], contains=("target[1]", "list"))
    raises(TypeError, net.train, None, [0.0, 1.0, 0.0], contains=("input", "NoneType"))
    raises(ValueError, net.train, [0.5] * (N + 1), [0.0, 1.0, 0.0], contains=("input", "expected %d" % N))
    eq(net.get_weights(), before, "weights untouched by refused samples")


def test_train_non_finite_skips_the_update():
    net = _float_net()
    before = net.get_weights()
    for x, t in (
        ([NAN, 0.5, 0.5, 0.5], [0.0, 1.0, 0.0]),
        ([INF, 0.5, 0.5, 0.5], [0.0, 1.0, 0.0]),
        ([0.5] * N, [NAN, 1.0, 0.0]),
        ([0.5] * N, [0.0, INF, 0.0]),
    ):
        loss = net.train(x, t, rate=0.5)
        ok(not (loss == loss and loss != INF and loss != 0.0 - INF), "non-finite loss returned for %r" % x)
        eq(net.get_weights(), before, "weights after a non-finite sample %r" % x)


def _finite(values):
    for layer in values:
        for v in layer:
            if not (v == v and v != INF and v != 0.0 - INF):
                return False
    return True


def test_fit_skips_a_nan_sample_and_learns_the_rest():
    rng = Random(8)
    X, Y = [], []
    for _i in range(24):
        x = [rng.uniform(-1.0, 1.0) for _ in range(N)]
        X.append(x)
        Y.append([1.0, 0.0, 0.0] if x[0] > 0 else [0.0, 0.0, 1.0])
    X[5] = [NAN, 0.1, 0.2, 0.3]
    Y[9] = [0.0, INF, 0.0]
    clean_X = [X[i] for i in range(24) if i not in (5, 9)]
    clean_Y = [Y[i] for i in range(24) if i not in (5, 9)]
    net, twin = _float_net(), _float_net()
    history = net.fit(X, Y, epochs=5, rate=0.1, batch_size=4, shuffle=False)
    ok(_finite(net.get_weights()), "weights stay finite with a NaN sample in the data")
    for v in history:
        ok(v == v and v != INF, "epoch loss finite (non-finite samples are left out): %r" % v)
    # batch_size=1: skipping the two samples equals training on the clean data
    net, twin = _float_net(), _float_net()
    net.fit(X, Y, epochs=3, rate=0.1, batch_size=1, shuffle=False)
    twin.fit(clean_X, clean_Y, epochs=3, rate=0.1, batch_size=1, shuffle=False)
    eq(net.get_weights(), twin.get_weights(), "fit with the bad samples skipped == fit without them")


def test_fit_bad_data_sets():
    net = _float_net()
    raises(TypeError, net.fit, None, [[0.0, 1.0, 0.0]], contains=("fit X", "NoneType"))
    raises(TypeError, net.fit, [[0.5] * N], None, contains=("fit Y", "NoneType"))
    raises(ValueError, net.fit, [], [], contains=("at least one sample", "got 0"))
    raises(ValueError, net.fit, [[0.5] * N], [], contains=("as many targets", "got 1 and 0"))
    raises(
        ValueError, net.fit, [[0.5] * N, [0.5] * (N - 1)], [[0.0, 1.0, 0.0]] * 2, contains=("X[1]", "got 3")
    )
    raises(TypeError, net.fit, [[0.5] * N, None], [[0.0, 1.0, 0.0]] * 2, contains=("X[1]", "NoneType"))
    raises(TypeError, net.fit, [[0.5] * N], [[0.0, "1", 0.0]], contains=("Y[0][1]", "str"))
    raises(ValueError, net.fit, [[0.5] * N], [[0.0, 1.0, 0.0]], rate=float("nan"), contains=("rate",))
    raises(ValueError, net.fit, [[0.5] * N], [[0.0, 1.0, 0.0]], epochs=0, contains=("epochs", "got 0"))
