"""Learn a 2-D toy problem in MicroPython: XOR of the quadrants (a point is class 1
when x and y have opposite signs), with `Network.fit`. The page calls `train` for a few
epochs at a time and draws `grid` (the decision boundary) and the losses in between;
on a board, call `train` in a loop the same way.
"""

from array import array

from nanonn import Dense, Network
from nanonn.rand import Random


def xor_points(n=200, seed=7):
    """(X, Y): n points uniform in [-1, 1]^2, one-hot targets [same sign, opposite sign]."""
    rng = Random(seed)
    X = []
    Y = []
    for _ in range(n):
        x = rng.uniform(-1.0, 1.0)
        y = rng.uniform(-1.0, 1.0)
        X.append([x, y])
        Y.append([1.0, 0.0] if (x > 0.0) == (y > 0.0) else [0.0, 1.0])
    return X, Y


def make_network(seed=1):
    """2-8-2: tanh hidden units, softmax over the two classes."""
    return Network(
        Dense(8, inputs=2, activation="tanh"),
        Dense(2, activation="softmax"),
        loss="cross_entropy",
        seed=seed,
    )


def train(net, X, Y, epochs, first_epoch):
    """`epochs` more epochs of mini-batch SGD with momentum; the mean loss of each."""
    losses = net.fit(X, Y, epochs=epochs, rate=0.05, momentum=0.9, batch_size=4, seed=first_epoch + 1)
    return list(losses)


def grid(net, n=24):
    """P(class 1) at n x n points spanning [-1, 1]^2 (array('f'), row-major from the top row)."""
    out = array("f", bytes(4 * n * n))
    x = array("f", [0.0, 0.0])
    for row in range(n):
        x[1] = 1.0 - 2.0 * (row + 0.5) / n
        for col in range(n):
            x[0] = -1.0 + 2.0 * (col + 0.5) / n
            out[row * n + col] = net.predict(x)[1]
    return out
