"""Loss functions: a value and a gradient with respect to the network output.

A loss object has `value(out, target) -> float` and
`gradient(out, target, grad)`, which writes dL/d(out) into `grad` (an
`array('f')` the size of the output). `mse` follows the original nanonn:
the reported value is the mean of squared errors, the gradient is that of
half the summed squared error. `cross_entropy` combined with a softmax output
layer uses the stable fused gradient `out - target` at the logits
(`fuses_softmax = True`).
"""

import math

_EPS = 1e-7  # smallest probability fed to log(): the loss stays finite


class MeanSquaredError:
    """`value`: the mean of squared errors; `gradient`: out - target (that of half
    the summed squared error) written into `grad`. Both allocate only float results."""

    name = "mse"
    fuses_softmax = False

    def value(self, out, target):
        n = len(out)
        s = 0.0
        for i in range(n):
            e = out[i] - target[i]
            s += e * e
        return s / n

    def gradient(self, out, target, grad):
        for i in range(len(out)):
            grad[i] = out[i] - target[i]


class CrossEntropy:
    """Categorical cross-entropy -sum(t * log(y)), y clamped to [eps, 1].

    `value` and `gradient` (-t / y into `grad`) allocate only float results."""

    name = "cross_entropy"
    fuses_softmax = True

    def value(self, out, target):
        s = 0.0
        for i in range(len(out)):
            t = target[i]
            if t:
                y = out[i]
                s -= t * math.log(y if y > _EPS else _EPS)
        return s

    def gradient(self, out, target, grad):
        for i in range(len(out)):
            y = out[i]
            grad[i] = 0.0 - target[i] / (y if y > _EPS else _EPS)


LOSSES = {"mse": MeanSquaredError, "cross_entropy": CrossEntropy}


def get(loss):
    """Return a loss object for a name or a custom object (value + gradient).

    Allocates a new loss object for a name; returns an object as given."""
    if isinstance(loss, str):
        factory = LOSSES.get(loss)
        if factory is None:
            raise ValueError("loss: expected one of %s, got %r" % (", ".join(sorted(LOSSES)), loss))
        return factory()
    if hasattr(loss, "value") and hasattr(loss, "gradient"):
        return loss
    raise TypeError(
        "loss: expected a name or an object with value() and gradient(), got %s" % type(loss).__name__
    )
