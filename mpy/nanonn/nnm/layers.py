"""Layers made by `nanonn.load`: a Dense over weight buffers the loader supplies.

Weights loaded from a file are `array('f')` buffers filled by `readinto`;
from a bytes-like source they are used in place where aligned
(`nanonn.nnm.views`), and the layer's `in_place` says which happened.
Imported only when a float model is loaded.
"""

from ..float32.layers import Dense, floats
from ..inputs import F32, describe, typecode
from .views import uctypes


def _check_float32s(name, buf, count):
    """Raise unless `buf` holds exactly `count` float32 values that the float
    kernel can read in place: an array('f'), a float32 memoryview (CPython's
    `float_view`) or a `uctypes` float32 view (MicroPython's): TypeError for any
    other object, ValueError for another length. Allocates nothing."""
    if uctypes is not None and type(buf) is uctypes.struct:
        n = uctypes.sizeof(buf) // 4  # float_view's views: one float32 array at offset 0
    elif typecode(buf) == F32:
        n = len(buf)
    else:
        raise TypeError(
            "%s: expected an array('f') or a float32 view of the model of %d values, got %s"
            % (name, count, describe(buf))
        )
    if n != count:
        raise ValueError("%s: expected %d float32 values, got %d" % (name, count, n))


class LoadedDense(Dense):
    """A float Dense layer over buffers supplied by the loader.

    `w`: (units, inputs) row-major float32, `b`: (units,) (zeros when the
    model has no bias): `array('f')` or in-place views (`in_place` True), of
    exactly those lengths (anything else raises TypeError/ValueError: the float
    kernel reads them as raw float32).
    `raw` is the list of byte buffers `save` writes (memoryviews into the
    source for in-place weights, which also keep it alive; else the arrays);
    `source` is the bytes-like source itself (None for a file). With `trainable` the gradient
    buffers are allocated in `build` and the layer trains like a Dense (the
    weights must then be arrays); without it the layer predicts only, and
    costs just its output buffers beside the weights.
    """

    def __init__(self, units, inputs, activation, use_bias, w, b, raw, in_place, trainable, source=None):
        Dense.__init__(self, units, inputs=inputs, activation=activation, use_bias=use_bias)
        self.uses_rng = False  # the weights are the model's: the network makes no PRNG
        self.shape = (units, inputs)
        self.source = source  # the model's bytes-like source (None for a file)
        _check_float32s("LoadedDense w", w, units * inputs)
        _check_float32s("LoadedDense b", b, units)
        self.w = w
        self.b = b
        self.raw = raw
        self.in_place = in_place
        self.trainable = trainable

    def build(self, inputs, rng):
        if inputs != self.inputs:
            raise ValueError(
                "Dense inputs: expected %d (the previous layer's units), got %d" % (inputs, self.inputs)
            )
        u = self.units
        self.z = floats(u)
        self.y = floats(u)
        self.alloc_fast()  # the same float kernel as Dense: same results to the bit
        if self.trainable:
            self.alloc_train()
        return u

    def _writable(self, what):
        if not self.trainable:
            raise ValueError(
                "Dense %s: this layer was loaded for inference only; expected nanonn.load(source, "
                "trainable=True), got trainable=False" % what
            )

    def backward(self, x, grad, fused):
        self._writable("backward")
        return Dense.backward(self, x, grad, fused)

    def update(self, rate, momentum, scale):
        self._writable("update")
        Dense.update(self, rate, momentum, scale)

    def prepare(self, momentum):
        self._writable("prepare")
        Dense.prepare(self, momentum)

    def set_weights(self, values):
        if self.in_place:
            raise ValueError(
                "Dense set_weights: the weights are read in place from the model source; expected "
                "a layer loaded from a file or with trainable=True, got an in-place layer"
            )
        Dense.set_weights(self, values)

    def get_weights(self):
        """The flat nanonn layout (per unit: its input weights, then its bias)."""
        units, n = self.shape
        w, b = self.w, self.b
        out = []
        for u in range(units):
            for i in range(n):
                out.append(w[u * n + i])
            if self.use_bias:
                out.append(b[u])
        return out
