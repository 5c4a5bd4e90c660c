"""Fine-tune the last k layers of an int8 network on the device, the layers below frozen in int8."""

from array import array

from ..float32.activations import LeakyReLU
from ..float32.layers import Dense, floats
from ..float32.network import Network, check_vector
from .network import QNetwork
from .quantize import quantize_inputs, quantize_layers

# int8 activation -> the activation of its float32 copy (leaky_relu: LeakyReLU(alpha)).
# softmax_tflite (TFLite's softmax, last layer only) trains as the float softmax and is
# re-quantized as nanonn's integer softmax: its float32 table comes from the converter,
# which the device cannot reproduce bit for bit; both output in the domain (1/256, -128).
FLOAT_ACTIVATIONS = {
    "linear": "linear",
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "softplus": "softplus",
    "softmax": "softmax",
    "softmax_tflite": "softmax",
}


def float_activation(layer, index=0):
    """The activation (a name, or a LeakyReLU) of the float32 copy of the QDense `layer`;
    ValueError naming the activation when it has no float counterpart. Allocates a
    LeakyReLU for leaky_relu, nothing otherwise."""
    name = FLOAT_ACTIVATIONS.get(layer.activation)
    if name is None:
        raise ValueError(
            "Tuner layer %d activation: expected one of %s (activations with a float32 counterpart "
            "to train), got %r, which cannot be dequantized"
            % (index, ", ".join(sorted(FLOAT_ACTIVATIONS)), layer.activation)
        )
    if name == "leaky_relu":
        return LeakyReLU(layer.alpha)
    return name


def dequantize_into(dense, layer):
    """Write the dequantized parameters of the QDense `layer` into the built float32 Dense
    `dense` of the same shape: w[u, i] = f32(w_scale[u] * w_q[u, i]), b[u] =
    f32(f32(bias_q[u]) * f32(in_scale * w_scale[u])), every value one float32 operation on
    float32 operands (the same bits on every port). Allocates float results only."""
    n, u = layer.inputs, layer.units
    if dense.inputs != n or dense.units != u:
        raise ValueError(
            "dequantize_into: expected a Dense of %d inputs and %d units, got %r and %r"
            % (n, u, dense.inputs, dense.units)
        )
    r = array("f", bytes(4))  # rounds to float32 on a double-precision port
    w, ws, bias = layer.w, layer.w_scale, layer.bias
    dw, db = dense.w, dense.b
    for j in range(u):
        s = ws[j]
        o = j * n
        for i in range(n):
            dw[o + i] = s * ((w[o + i] ^ 0x80) - 0x80)  # int8 byte -> int; exact before the store
        r[0] = layer.in_scale * s
        bs = r[0]
        r[0] = bias[j]  # an int32 to float32 first (a single-precision port does the same)
        db[j] = r[0] * bs


class Tuner:
    """Fine-tune the last `k` layers of the int8 QNetwork `network` as float32 (docs/quantization.md).

        t = Tuner(nanonn.load("model_int8.nnm"), k=1)
        t.fit(X, Y, epochs=100, rate=0.05, momentum=0.9)  # X: new labelled windows
        q = t.save("model_int8.nnm", X)  # re-quantized, written power-safely

    The frozen layers run as int8; their output is dequantized as the int8 network
    dequantizes its output, f32((q - out_zp) * out_scale), into a preallocated array('f').
    The tuned layers are float32 `Dense` copies (`dequantize_into`) trained with
    `Network.fit`, then re-quantized with their input domain fixed to the frozen layers'
    output domain (the network's input domain when k = n), their output domains
    calibrated on the new windows.

    `base`: a QNetwork of the first n - k layers (the network's own QDense objects, shared,
    not copied; None when k = n); `head`: the float32 `Network` of the k tuned layers,
    initialised by `dequantize_into`. `loss`: as `Network`'s (mse by default, as a float32
    model loads). Building allocates the head (its weights, gradients and
    training buffers: about 12 bytes per tuned weight) and the base's staging buffers
    (1 KB table and 10 bytes per input); `features` allocates nothing with the viper kernels.
    """

    def __init__(self, network, k=1, loss="mse", kernels=None):
        if not isinstance(network, QNetwork):
            raise TypeError(
                "Tuner network: expected a QNetwork (an int8 model), got %s" % type(network).__name__
            )
        layers = network.layers
        n = len(layers)
        if type(k) is not int or not 1 <= k <= n:
            raise ValueError(
                "Tuner k: expected an int in [1, %d] (the layers to tune of this %d-layer network), got %r"
                % (n, n, k)
            )
        tuned = layers[n - k :]
        acts = [float_activation(tuned[i], n - k + i) for i in range(k)]
        self.network = network
        self.k = k
        self.kernels = kernels or network.kernels
        self.frozen = layers[: n - k]
        self.base = QNetwork(self.frozen, kernels=self.kernels) if n > k else None
        first = tuned[0]
        # the tuned layers' input domain, kept when they are re-quantized
        self.in_scale, self.in_zp = first.in_scale, first.in_zp
        dense = [Dense(L.units, inputs=L.inputs, activation=a) for L, a in zip(tuned, acts)]
        self.head = Network(dense, loss=loss)
        for d, L in zip(dense, tuned):
            dequantize_into(d, L)
        self.inputs = network.inputs
        self.outputs = network.outputs

    def features(self, x):
        """The frozen layers' output for the float input `x` (as `QNetwork.predict` takes it),
        dequantized: the base's own array('f'), reused by the next call. With k = n, `x` itself.
        Allocates nothing with the viper kernels and an array('f') input."""
        base = self.base
        return x if base is None else base.predict(x)

    def predict(self, x):
        """The tuned float32 model's outputs for `x`: the head's array('f'), reused by the
        next call. Allocates float results (the float32 forward pass)."""
        return self.head.predict(self.features(x))

    def features_of(self, X):
        """A list with one new array('f') of the frozen layers' output per input vector of X
        (the training set of the head: the frozen layers run once per window, not per epoch).
        Allocates 4 bytes per feature per vector."""
        _check_rows("Tuner X", X, self.inputs)
        m = self.head.inputs
        rows = [array("f")] * len(
            X
        )  # one block first: a list grown between float temporaries fragments a heap
        for j in range(len(X)):
            row = floats(m)
            v = self.features(X[j])
            for i in range(m):
                row[i] = v[i]
            rows[j] = row
        return rows

    def fit(self, X, Y, epochs=1, rate=0.05, batch_size=1, momentum=0.0, shuffle=True, seed=1, callback=None):
        """Train the tuned layers on the input vectors X and targets Y with `Network.fit`
        (same arguments; returns its loss history). The frozen layers run once per vector
        (`features_of`). Allocates the features and the float work of training."""
        F = self.features_of(X)
        return self.head.fit(F, Y, epochs, rate, batch_size, momentum, shuffle, seed, callback)

    def quantize(self, calibration_X):
        """The tuned int8 QNetwork, the same shape as the original: the frozen QDense layers
        (shared, unchanged) followed by the tuned layers re-quantized with `quantize_layers`,
        their input domain fixed (`in_scale`, `in_zp`) and their output domains calibrated on
        the int8 activations of `calibration_X` (float input vectors: the new windows).
        Allocates the new layers and one bytearray per calibration vector per tuned layer."""
        _check_rows("Tuner calibration_X", calibration_X, self.inputs)
        base = self.base
        if base is None:
            acts = quantize_inputs(calibration_X, self.inputs, self.in_scale, self.in_zp, self.kernels)
        else:
            y = base.layers[-1].y  # offset-binary output of the last frozen layer
            acts = []
            for x in calibration_X:
                base.predict(x)
                acts.append(bytearray(y))
        tuned = quantize_layers(self.head.layers, acts, self.in_scale, self.in_zp, self.kernels)
        return QNetwork(self.frozen + tuned, kernels=self.kernels)

    def save(self, path, calibration_X, backup=None):
        """Re-quantize (`quantize(calibration_X)`) and write the int8 model to `path` power-safely
        (`QNetwork.save`: a temporary file, closed, renamed over the target; `backup` as there).
        Returns the new QNetwork. Allocates what `quantize` does and the writer's buffers."""
        q = self.quantize(calibration_X)
        q.save(path, backup)
        return q


def _check_rows(name, X, n):
    """X: a non-empty list or tuple of vectors of n numbers (TypeError/ValueError naming it)."""
    if type(X) is not list and type(X) is not tuple:
        raise TypeError("%s: expected a list or tuple of input vectors, got %s" % (name, type(X).__name__))
    if not X:
        raise ValueError("%s: expected at least one input vector, got 0" % name)
    for i in range(len(X)):
        check_vector("%s[%d]" % (name, i), X[i], n)
