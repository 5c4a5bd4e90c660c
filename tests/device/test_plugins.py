"""Pluggable parts: a layer, an activation and a loss defined outside the package; dropout."""

from array import array

from check import close, eq, ok, raises
from nanonn import Activation, Dense, Dropout, Layer, Network


class Scale(Layer):
    """y_i = s_i * x_i with one trainable scale per input (a layer from outside)."""

    def build(self, inputs, rng):
        self.inputs = self.units = inputs
        self.s = array("f", [1.0] * inputs)
        self.gs = array("f", bytes(4 * inputs))
        self.y = array("f", bytes(4 * inputs))
        self.gx = array("f", bytes(4 * inputs))
        return inputs

    def forward(self, x, training):
        for i in range(self.inputs):
            self.y[i] = self.s[i] * x[i]
        return self.y

    def backward(self, x, grad, fused):
        for i in range(self.inputs):
            self.gs[i] += grad[i] * x[i]
            self.gx[i] = grad[i] * self.s[i]
        return self.gx

    def update(self, rate, momentum, scale):
        for i in range(self.inputs):
            self.s[i] -= rate * scale * self.gs[i]
            self.gs[i] = 0.0

    def get_weights(self):
        return list(self.s)

    def set_weights(self, values):
        for i in range(self.inputs):
            self.s[i] = values[i]


def test_custom_layer_trains():
    net = Network(Dense(2, inputs=2, weights=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]), Scale())
    # target: twice the input
    xs = [[0.5, -1.0], [1.0, 2.0], [-1.5, 0.5]]
    ys = [[1.0, -2.0], [2.0, 4.0], [-3.0, 1.0]]
    first = net.evaluate(xs, ys)[0]
    net.fit(xs, ys, epochs=300, rate=0.05)
    last = net.evaluate(xs, ys)[0]
    ok(last < 0.01 * first, "custom layer loss %r -> %r" % (first, last))
    close(net.predict([1.0, 1.0]), [2.0, 2.0], 0.05, "learned scale")


def test_custom_activation():
    cube = Activation("cube", lambda x: x * x * x, lambda x, y: 3.0 * x * x)
    net = Network(Dense(1, inputs=1, activation=cube, weights=[1.0, 0.0]))
    close(net.predict([2.0]), [8.0], 1e-6, "cube")
    net.train([1.0], [0.0], rate=0.1)  # dL/dw = (1 - 0) * 3 * 1 * 1
    close(net.get_weights()[0], [0.7, -0.3], 1e-6, "cube step")


class AbsLoss:
    name = "mae"

    def value(self, out, target):
        return sum(abs(out[i] - target[i]) for i in range(len(out))) / len(out)

    def gradient(self, out, target, grad):
        for i in range(len(out)):
            grad[i] = 1.0 if out[i] > target[i] else -1.0


def test_custom_loss():
    net = Network(Dense(1, inputs=1, weights=[1.0, 0.0]), loss=AbsLoss())
    close(net.train([2.0], [0.0], rate=0.5), 2.0, 1e-6, "mae value")
    close(net.get_weights()[0], [0.0, -0.5], 1e-6, "sign step")


def test_dropout_only_in_training_and_deterministic():
    def make():
        return Network(
            Dense(50, inputs=1, weights=[1.0, 0.0] * 50),
            Dropout(0.5, seed=9),
            Dense(1, weights=[0.02] * 50 + [0.0]),
        )

    net = make()
    close(net.predict([1.0]), [1.0], 1e-5, "no dropout at inference")
    a = make()
    b = make()
    a.train([1.0], [0.0], rate=0.01)
    b.train([1.0], [0.0], rate=0.01)
    eq(a.get_weights(), b.get_weights(), "same seed, same dropout")
    kept = sum(a.layers[1].keep)
    ok(10 < kept < 40, "about half kept: %d" % kept)
    # dropped units get no gradient: their outgoing weights did not move
    w = a.get_weights()[2]
    for i in range(50):
        if not a.layers[1].keep[i]:
            close(w[i], 0.02, 1e-8, "weight from dropped unit %d" % i)
    raises(ValueError, Dropout, 1.0, contains=("rate", "1.0"))
