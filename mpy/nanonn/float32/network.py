"""Sequential network: predict, train (one SGD step), fit and evaluate."""

from ..inputs import F32, check_vector, typecode
from .activations import train_kernels
from .layers import floats

# Imported on first use, to keep what inference never runs out of RAM: the losses (the first
# train, fit, evaluate or `loss`), the training kernels (train_kernels: the first training
# step) and the PRNG (building layers that draw initial weights; fit's shuffle).

_INF = float("inf")
_NINF = float("-inf")  # a constant: `-_INF` would allocate a float at every use


_NAN = float("nan")


def _is_finite(v):
    return v == v and v != _INF and v != _NINF


def _all_finite(v):
    """Whether every value of the vector v is finite (allocates nothing; an array('f')
    is checked on its float32 bits by viper where that exists)."""
    k = train_kernels()
    if k is not None and typecode(v) == F32:
        return bool(k.finite(v, len(v)))
    for i in range(len(v)):
        e = v[i]
        if not (e == e and e != _INF and e != _NINF):
            return False
    return True


class Network:
    """A sequential stack of layers.

    `Network(Dense(10, inputs=4, activation="relu"), Dense(3, activation="softmax"),
    loss="cross_entropy")`. The first layer must state its `inputs`; later
    layers take theirs from the previous layer. `seed` makes the initial
    weights reproducible on every port (the PRNG is made, and imported, only
    when a layer draws from it: `uses_rng`; such a network, made to be trained, also
    imports the training kernels then). Building allocates every buffer;
    `predict` and `train` allocate nothing but float results. `loss` is the
    loss object (the losses module is imported when it is first needed: the
    default "mse" on the first train, fit or evaluate; any other at once).
    """

    def __init__(self, *layers, loss: object = "mse", seed=1):
        if len(layers) == 1 and type(layers[0]) in (list, tuple):
            layers = layers[0]
        if not layers:
            raise ValueError("Network: expected at least one layer, got 0")
        for i, layer in enumerate(layers):
            if not (hasattr(layer, "build") and hasattr(layer, "forward")):
                raise TypeError(
                    "Network layer %d: expected a layer (build/forward/backward), got %s"
                    % (i, type(layer).__name__)
                )
        n = layers[0].inputs
        if n is None:
            raise ValueError("Network: the first layer needs inputs=, got None")
        self.layers = list(layers)
        self.inputs = n
        rng = None
        for layer in self.layers:
            if rng is None and getattr(layer, "uses_rng", True):
                from ..rand import Random  # on first use: a loaded model's network makes no PRNG

                rng = Random(seed)
                # Weights drawn at random are there to be trained: the training kernels now,
                # before the layers' buffers (their native code needs one block of a few KB,
                # which a board's heap fragmented by the training data may no longer have).
                train_kernels()
        previous = None
        for layer in self.layers:
            n = layer.build(n, rng)
            chain = getattr(layer, "chain", None)
            if chain is not None:
                chain(previous)  # Dense: skip the first layer's input gradient
            previous = layer
        self.outputs = n
        self._ins = [None] * len(self.layers)
        self._checked = ()  # the last input predict checked (not a list: see predict; () none)
        self._grad = floats(n)
        self._loss = None  # the loss object (set_loss; `loss` makes the default)
        self._fused = False
        if type(loss) is not str or loss != "mse":
            self.set_loss(loss)  # checked now; the default "mse" on first use

    def set_loss(self, loss):
        """Use another loss (a name or an object with value() and gradient()); returns the
        loss object (a new one for a name)."""
        from . import losses  # on first use: keeps the losses out of RAM for inference

        self._loss = value = losses.get(loss)
        last = self.layers[-1]
        act = getattr(last, "activation", None)
        self._fused = bool(
            getattr(value, "fuses_softmax", False)
            and act is not None
            and getattr(act, "name", None) == "softmax"
        )
        return value

    @property
    def loss(self):
        """The loss object (`set_loss`): "mse" unless the network was built with another."""
        loss = self._loss
        return self.set_loss("mse") if loss is None else loss

    @loss.setter
    def loss(self, value):
        self.set_loss(value)

    def _forward(self, x, training):
        ins = self._ins
        layers = self.layers
        v = x
        for i in range(len(layers)):
            ins[i] = v
            v = layers[i].forward(v, training)
        return v

    def predict(self, x):
        """Outputs for one input vector.

        x: `inputs` numbers: a list or tuple, an array of any numeric typecode
        (array('h') of raw sensor readings is read by value, as the same list
        would be), bytes, bytearray or a memoryview of one of these. Returns the last
        layer's output buffer (array('f')), which the next call reuses: copy it to keep it.
        Wrong types or lengths raise TypeError/ValueError naming the input; NaN or
        infinite inputs are computed as IEEE floats (non-finite outputs, no error).
        The network keeps a reference to the last input buffer it checked: the same
        buffer again (the sensor loop's case) costs only a length check.
        """
        if x is not self._checked or len(x) != self.inputs:
            check_vector("input", x, self.inputs)
            # the same buffer again: only its length can have changed (a list's items too)
            self._checked = () if type(x) is list else x
        for layer in self.layers:  # not _forward (for backward; a heap frame: > 11 words)
            x = layer.forward(x, False)
        return x

    def _accumulate(self, x, target):
        """Forward and backward for one sample; returns its loss. A sample with
        a non-finite input, target, output or loss leaves the gradients untouched
        (returns its loss, NaN for a non-finite input or target: a loss such as
        cross-entropy can be finite while NaN gradients would corrupt the weights)."""
        if not (_all_finite(x) and _all_finite(target)):
            return _NAN
        out = self._forward(x, True)
        loss = self._loss
        if loss is None:
            loss = self.set_loss("mse")  # the default, made on first use
        value = loss.value(out, target)
        if not (_is_finite(value) and _all_finite(out)):
            return value if not _is_finite(value) else _NAN
        g = self._grad
        layers = self.layers
        last = len(layers) - 1
        if self._fused:
            for i in range(len(out)):
                g[i] = out[i] - target[i]
        else:
            loss.gradient(out, target, g)
        ins = self._ins
        low = self._lowest_trainable()
        for i in range(last, low - 1, -1):
            g = layers[i].backward(ins[i], g, self._fused and i == last)
        return value

    def _lowest_trainable(self):
        """The index of the lowest layer that is not frozen (no backward below it)."""
        layers = self.layers
        for i in range(len(layers)):
            if not getattr(layers[i], "frozen", False):
                return i
        return len(layers)

    def _update(self, rate, momentum, scale):
        layers = self.layers
        for i in range(len(layers)):
            if not getattr(layers[i], "frozen", False):
                layers[i].update(rate, momentum, scale)

    def train(self, x, target, rate=0.1):
        """One SGD step on one sample; returns that sample's loss (before the step).

        `x` and `target` are taken as by `predict` (lists, tuples, numeric arrays,
        bytes, bytearray, memoryviews; TypeError/ValueError otherwise).

        A non-finite input, target, output or loss skips the update (the weights
        stay as they were); the returned loss is then NaN or infinite.
        """
        check_vector("input", x, self.inputs)
        check_vector("target", target, self.outputs)
        value = self._accumulate(x, target)
        if _is_finite(value):
            self._update(rate, 0.0, 1.0)
        return value

    def fit(
        self,
        X,
        Y,
        epochs=1,
        rate=0.05,
        batch_size=1,
        momentum=0.0,
        shuffle=True,
        seed=1,
        callback=None,
    ):
        """Mini-batch SGD over (X, Y). Returns the mean loss of each epoch run,
        as an array('f') (preallocated: a growing list of boxed floats would
        fragment a small heap).

        `callback(epoch, loss)` is called after each epoch; returning True stops.
        Samples with a non-finite loss are skipped (and left out of the mean).
        """
        for name, data in (("X", X), ("Y", Y)):
            if type(data) is not list and type(data) is not tuple:
                raise TypeError(
                    "fit %s: expected a list or tuple of samples, got %s" % (name, type(data).__name__)
                )
        if len(X) != len(Y):
            raise ValueError("fit: expected as many targets as inputs, got %d and %d" % (len(X), len(Y)))
        if len(X) == 0:
            raise ValueError("fit: expected at least one sample, got 0")
        _check_positive("epochs", epochs, int)
        _check_positive("batch_size", batch_size, int)
        if not (rate > 0.0):
            raise ValueError("fit rate: expected a number > 0, got %r" % rate)
        if not (0.0 <= momentum < 1.0):
            raise ValueError("fit momentum: expected 0 <= momentum < 1, got %r" % momentum)
        for i in range(len(X)):
            check_vector("X[%d]" % i, X[i], self.inputs)
            check_vector("Y[%d]" % i, Y[i], self.outputs)
        for layer in self.layers:
            if momentum and hasattr(layer, "prepare") and not getattr(layer, "frozen", False):
                layer.prepare(momentum)
        order = list(range(len(X)))
        from ..rand import Random  # on first use: keeps the PRNG out of RAM for inference

        rng = Random(seed)
        history = floats(epochs)
        done = 0
        for epoch in range(epochs):
            if shuffle:
                rng.shuffle(order)
            total = 0.0
            counted = 0
            in_batch = 0
            for k in order:
                value = self._accumulate(X[k], Y[k])
                if _is_finite(value):
                    total += value
                    counted += 1
                    in_batch += 1
                if in_batch == batch_size:
                    self._update(rate, momentum, 1.0 / in_batch)
                    in_batch = 0
            if in_batch:
                self._update(rate, momentum, 1.0 / in_batch)
            mean = total / counted if counted else float("nan")
            history[epoch] = mean
            done += 1
            if callback is not None and callback(epoch, mean):
                break
        return history if done == epochs else history[:done]

    def evaluate(self, X, Y):
        """(mean loss, accuracy) over a data set. Accuracy compares the argmax
        of output and target, or for one output, both thresholded at 0.5."""
        if len(X) != len(Y) or not len(X):
            raise ValueError(
                "evaluate: expected equally many (>0) inputs and targets, got %d and %d" % (len(X), len(Y))
            )
        total = 0.0
        hits = 0
        loss = self.loss
        for i in range(len(X)):
            check_vector("Y[%d]" % i, Y[i], self.outputs)
            out = self.predict(X[i])
            total += loss.value(out, Y[i])
            if argmax(out) == argmax(Y[i]) if self.outputs > 1 else (out[0] >= 0.5) == (Y[i][0] >= 0.5):
                hits += 1
        return total / len(X), hits / len(X)

    def quantize(self, calibration_X, kernels=None):
        """An int8 `nanonn.int8.network.QNetwork` of this network, calibrated on the
        input vectors `calibration_X` (docs/quantization.md; same integers as
        `nanonn_tools.quantize.quantize_model` on the host)."""
        from ..int8.quantize import quantize  # on first use: keeps the quantizer out of RAM

        return quantize(self, calibration_X, kernels)

    def get_weights(self):
        """A list with each layer's flat weights (see Dense.get_weights)."""
        return [layer.get_weights() for layer in self.layers]

    def set_weights(self, weights):
        if len(weights) != len(self.layers):
            raise ValueError("weights: expected %d layers, got %d" % (len(self.layers), len(weights)))
        for layer, w in zip(self.layers, weights):
            layer.set_weights(w)

    def save(self, path, backup=None):
        """Write the network to `path` as a .nnm model (see `nanonn.nnm.write.save`; `backup`
        for filesystems without atomic rename, default: on a FAT mount)."""
        from ..nnm.write import save  # on first use: keeps the writer out of RAM

        save(self, path, backup)


NN = Network


def argmax(v):
    """Index of the largest value (the first on ties). Allocates nothing."""
    best = 0
    for i in range(1, len(v)):
        if v[i] > v[best]:
            best = i
    return best


def _check_positive(name, value, kind):
    if type(value) is not kind or value < 1:
        raise ValueError("fit %s: expected an int >= 1, got %r" % (name, value))
