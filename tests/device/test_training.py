"""On-device training: XOR and iris converge; fit options behave."""

from check import CheckFailed, close, eq, load_json, ok, raises
from nanonn import Dense, Network

XOR_X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
XOR_Y = [[0.0], [1.0], [1.0], [0.0]]


def test_xor_trains_to_low_mse():
    net = Network(Dense(4, inputs=2, activation="tanh"), Dense(1, activation="sigmoid"), seed=3)
    history = net.fit(XOR_X, XOR_Y, epochs=1500, rate=0.5, seed=1)
    loss, accuracy = net.evaluate(XOR_X, XOR_Y)
    ok(loss < 0.01, "XOR mse %r >= 0.01" % loss)
    eq(accuracy, 1.0, "XOR accuracy")
    ok(history[-1] < history[0], "loss decreases")


def _iris():
    data = load_json("tests/data/iris.json")
    xs = data["x"]
    ys = []
    for label in data["y"]:
        row = [0.0, 0.0, 0.0]
        row[label] = 1.0
        ys.append(row)
    return xs, ys


def test_iris_trains_to_95_percent():
    xs, ys = _iris()
    net = Network(
        Dense(8, inputs=4, activation="relu"), Dense(3, activation="softmax"), loss="cross_entropy", seed=2
    )
    net.fit(xs, ys, epochs=60, rate=0.05, seed=4)
    loss, accuracy = net.evaluate(xs, ys)
    ok(accuracy >= 0.95, "iris training accuracy %r < 0.95" % accuracy)


def test_fit_batches_and_momentum():
    xs, ys = _iris()
    net = Network(
        Dense(6, inputs=4, activation="tanh"), Dense(3, activation="softmax"), loss="cross_entropy", seed=5
    )
    history = net.fit(xs, ys, epochs=40, rate=0.1, batch_size=8, momentum=0.9, seed=2)
    eq(len(history), 40, "one loss per epoch")
    ok(history[-1] < 0.5 * history[0], "loss %r -> %r" % (history[0], history[-1]))


def test_fit_is_deterministic_and_callback_stops():
    seen = []

    def callback(epoch, loss):
        seen.append((epoch, loss))
        return epoch == 4

    runs = []
    for _ in range(2):
        net = Network(Dense(3, inputs=2, activation="sigmoid"), Dense(1, activation="sigmoid"), seed=7)
        runs.append(net.fit(XOR_X, XOR_Y, epochs=50, rate=0.5, seed=3, callback=callback))
    eq(len(runs[0]), 5, "callback returning True stops after epoch 4")
    close(runs[0], runs[1], 0.0, "same seeds give the same losses")
    eq([e for e, _ in seen[:5]], [0, 1, 2, 3, 4], "callback epochs")


def test_mse_regression_train_step_matches_formula():
    # y = w x + b, mse: one step moves w by -rate * (y - t) * x
    net = Network(Dense(1, inputs=1, weights=[2.0, 1.0]))
    loss = net.train([3.0], [5.0], rate=0.1)
    close(loss, 4.0, 1e-6, "loss")
    close(net.get_weights()[0], [2.0 - 0.1 * 2.0 * 3.0, 1.0 - 0.1 * 2.0], 1e-6, "weights")


def test_frozen_layers_keep_their_weights():
    from nanonn.nnm import read as nnm
    from nanonn.nnm.write import dumps

    def make():
        return Network(
            Dense(6, inputs=3, activation="tanh"),
            Dense(5, activation="relu"),
            Dense(2, activation="softmax"),
            loss="cross_entropy",
            seed=5,
        )

    full, tuned = make(), make()
    tuned.layers[0].frozen = tuned.layers[1].frozen = True
    x, t = [0.3, -0.8, 0.5], [0.0, 1.0]
    before = tuned.get_weights()
    full.train(x, t, 0.5)
    tuned.train(x, t, 0.5)
    after = tuned.get_weights()
    eq(after[:2], before[:2], "frozen layers' weights")
    # the top layer's step does not depend on the layers below being frozen
    close(after[2], full.get_weights()[2], 1e-6, "the tuned layer's step")
    tuned.fit([x, [0.1, 0.2, -0.3]], [t, [1.0, 0.0]], epochs=3, rate=0.1, momentum=0.9, batch_size=2)
    eq(tuned.get_weights()[:2], before[:2], "frozen through fit with momentum")
    ok(tuned.layers[0].velocity is None, "no momentum buffers for a frozen layer")
    # loading with trainable=1: the last layer trains, the others are frozen without gradients
    loaded = nnm.load(dumps(full), trainable=1)
    if not isinstance(loaded, Network):
        raise CheckFailed("a float model loads as a Network, got %s" % type(loaded).__name__)
    eq([layer.frozen for layer in loaded.layers], [True, True, False], "frozen by trainable=1")
    ok(not hasattr(loaded.layers[0], "gw") and hasattr(loaded.layers[2], "gw"), "gradients only where tuned")
    w0 = loaded.get_weights()
    loaded.train(x, t, 0.5)
    eq(loaded.get_weights()[:2], w0[:2], "loaded frozen layers unchanged")
    ok(loaded.get_weights()[2] != w0[2], "the last layer trained")
    raises(ValueError, nnm.load, dumps(full), trainable=-1, contains=("trainable", "-1"))


def test_momentum_in_one_pass_and_in_three_agree():
    """The one-pass momentum kernel (where the heap holds 1 MB) and the three axpy_rows passes
    (a board-sized heap) give the same weights within 1e-5 relative (their roundings differ:
    one against three per step, compounded over 18 steps), batches of 1 and 3."""
    from nanonn.float32 import layers

    saved = (layers._momentum_rows, layers._momentum_decided)
    runs = []
    try:
        for kernel, decided in (saved, (None, True)):  # as decided here, then three passes
            layers._momentum_rows, layers._momentum_decided = kernel, decided
            for batch in (1, 3):
                net = Network(Dense(5, inputs=4, activation="relu"), Dense(2, activation="softmax"), seed=4)
                net.set_loss("cross_entropy")
                xs = [[0.1 * i, -0.2 * i, 0.3, 0.05 * i * i] for i in range(6)]
                ys = [[1.0, 0.0] if i % 2 else [0.0, 1.0] for i in range(6)]
                net.fit(xs, ys, epochs=3, rate=0.1, batch_size=batch, momentum=0.9, shuffle=False)
                runs.append(net.get_weights())
    finally:
        layers._momentum_rows, layers._momentum_decided = saved
    for a, b in zip(runs[:2], runs[2:]):
        for la, lb in zip(a, b):
            for u, v in zip(la, lb):
                ok(abs(u - v) <= 1e-5 * max(abs(u), abs(v)) + 1e-7, "weight %r vs %r" % (u, v))
