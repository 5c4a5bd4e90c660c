"""Layers and the layer protocol.

A layer is any object with:

- `build(inputs, rng) -> outputs`: called once by `Network`; allocates every
  buffer the layer will use (`rng` is a `rand.Random` for initial weights).
- `forward(x, training) -> y`: `x` is a buffer of `inputs` numbers; returns
  the layer's own output buffer (reused by the next call).
- `backward(x, grad, fused) -> grad_x`: `grad` is dL/dy (or, when `fused`,
  already dL/dz at the activation's input); accumulates parameter gradients
  and returns the layer's own buffer holding dL/dx.
- `update(rate, momentum, scale)`: applies the accumulated gradients times
  `scale` (1 / batch size) and clears them.
- `get_weights() -> list` and `set_weights(values)`: the flat parameters.

`Layer` gives no-op defaults for a layer without parameters. Hot paths
(`forward`, `backward`, `update`) allocate nothing but float results.
"""

from array import array
from math import ldexp

from . import activations
from .rand import glorot_limit

try:  # integer dot products of float32 bits (allocation free); not on CPython
    from . import fdense_viper as _fast
except (ImportError, SyntaxError, AttributeError, NotImplementedError, ValueError, TypeError):
    _fast = None


# Scratch of the viper float kernel: x as float32, its 12-bit halves, and the
# per-unit limbs; grown at build time only (see Dense.alloc_fast). Module globals,
# not a list: the predict path reads them without unpacking (frame size, below).
_XS = _XH = _XL = _ACC = array("f")
_SCRATCH_SIZE = [0, 0]
_dot_rows = _fast.dot_rows if _fast is not None else None


# Below this many inputs the plain float loop is faster than the viper kernel's
# staging (measured on the unix port: 4 inputs 65k vs 45k predictions/s, 8 about even;
# measured while the predict path still had heap frames: not re-measured since, and
# moving it would change which path, so which float results, a layer gives).
_FAST_MIN_INPUTS = 8

# The predict path (Dense.forward and the helpers below) keeps every function's frame
# within 11 words (`python tools/mpy_frames.py`; tests/test_predict_frames.py): a larger
# frame is a heap block allocated and freed at every call, which between boxed floats on a
# large heap costs far more than the allocation (measured on the unix port with
# -X heapsize=8M: 4-10-10-3 predict 3-4x slower with 8 heap frames per call). Hence small
# helpers taking plain arguments, `while` counters where `for` needs two more words, and
# row offsets recomputed rather than kept in a local.


def _grow_scratch(n, units):
    global _XS, _XH, _XL, _ACC
    if n > _SCRATCH_SIZE[0]:
        _XS = floats(n)
        _XH = array("i", bytes(4 * n))
        _XL = array("i", bytes(4 * n))
        _SCRATCH_SIZE[0] = n
    if units > _SCRATCH_SIZE[1]:
        _ACC = array("i", bytes(20 * units))
        _SCRATCH_SIZE[1] = units


def _dot(s, w, o, x, n):
    """s + w[o:o + n] . x[:n] in float, summed in order (allocates float results only)."""
    i = 0
    while i < n:
        s += w[o + i] * x[i]
        i += 1
    return s


def _stage(xs, x, n):
    """xs[:n] = x[:n]: any list, tuple or array as float32 for the viper kernel."""
    for i in range(n):
        xs[i] = x[i]


def _unit(acc, j, bias):
    """bias + the dot product held in acc[j:j + 5] (fdense_viper's limbs and exponent)."""
    s = ((acc[j] * 4096.0 + acc[j + 1]) * 4096.0 + acc[j + 2]) * 4096.0 + acc[j + 3]
    return bias + ldexp(s, acc[j + 4] - 300)


def _assemble(acc, b, z, units):
    """z[u] = b[u] + dot u from the viper kernel's limbs, for u < units."""
    u = 0
    while u < units:
        z[u] = _unit(acc, 5 * u, b[u])
        u += 1


def floats(n):
    """A zero-filled array('f') of n elements: allocates 4 * n bytes (and a
    temporary bytes object of the same size)."""
    return array("f", bytes(4 * n))


def _check_count(name, value, minimum=1):
    if type(value) is not int or value < minimum:
        raise ValueError("%s: expected an int >= %d, got %r" % (name, minimum, value))
    return value


class Layer:
    """Base class with no-op defaults for the layer protocol."""

    inputs = None
    units = None

    def build(self, inputs, rng):
        self.inputs = self.units = inputs
        return inputs

    def forward(self, x, training):
        return x

    def backward(self, x, grad, fused):
        return grad

    def update(self, rate, momentum, scale):
        pass

    def get_weights(self):
        return []

    def set_weights(self, values):
        if len(values):
            raise ValueError("%s weights: expected 0 values, got %d" % (type(self).__name__, len(values)))


class Dense(Layer):
    """Fully connected layer: y = f(W x + b).

    `activation` is a name, None (linear), an `Activation` or any object with
    forward() and backward() (checked at run time by `activations.get`).
    `weights` (optional) is the original nanonn flat layout: for each unit,
    its input weights followed by its bias (no bias when `use_bias=False`).
    Buffers: w (units, inputs) row-major, b (units,), z and y (units,),
    gradients and the input gradient, all array('f') allocated in build().
    """

    def __init__(self, units, inputs=None, activation: object = "linear", use_bias=True, weights=None):
        self.units = _check_count("Dense units", units)
        if inputs is not None:
            # Unstated, `inputs` stays Layer's None until build() sets the previous layer's units.
            self.inputs = _check_count("Dense inputs", inputs)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        if weights is not None and inputs is not None:
            _check_weight_count(len(weights), units, inputs, self.use_bias)
        self._initial = weights
        self.velocity = None

    def build(self, inputs, rng):
        if self.inputs is not None and self.inputs != inputs:
            raise ValueError(
                "Dense inputs: expected %d (the previous layer's units), got %d" % (inputs, self.inputs)
            )
        self.inputs = n = inputs
        u = self.units
        self.w = floats(u * n)
        self.b = floats(u)
        self.z = floats(u)
        self.y = floats(u)
        self.d = floats(u)
        self.gx = floats(n)
        self.gw = floats(u * n)
        self.gb = floats(u)
        self.alloc_fast()
        if self._initial is not None:
            self.set_weights(self._initial)
            self._initial = None
        else:
            # Glorot uniform, biases zero; bit-identical on every port (rand.py).
            limit = glorot_limit(n, u)
            w = self.w
            for i in range(u * n):
                w[i] = rng.symmetric(limit)
        return u

    _fast_ready = False  # set by alloc_fast where the viper kernel exists

    def alloc_fast(self):
        """Make sure the scratch of the allocation-free viper forward (where viper
        exists) is large enough for this layer; `build` calls it. The scratch is
        shared by every Dense layer (forward passes never overlap), so it costs
        12 bytes per input and 20 per unit of the largest layer, once. Layers with
        fewer than 8 inputs keep the plain loop (faster there). A subclass
        with its own `build` calls it too, or keeps the plain float loop."""
        if _fast is not None and self.inputs >= _FAST_MIN_INPUTS:
            _grow_scratch(self.inputs, self.units)
            self._fast_ready = True

    def forward(self, x, training):
        # x: (inputs,)  w: (units, inputs) row-major  b, z, y: (units,)
        if not (self._fast_ready and self._forward_fast(x)):
            self._affine(x)
        self.activation.forward(self.z, self.y, self.units)
        return self.y

    def _affine(self, x):
        """z = W x + b with the plain float loop (handles infinities and NaN)."""
        w = self.w
        n = self.inputs
        u = 0
        while u < self.units:
            self.z[u] = _dot(self.b[u], w, u * n, x, n)
            u += 1

    def _forward_fast(self, x):
        """z = W x + b with the viper kernel (fdense_viper); False if x or W is
        not finite (the plain loop then handles infinities and NaN)."""
        if _dot_rows is None:  # _fast_ready is set only where the viper kernel imported
            return False
        _stage(_XS, x, self.inputs)  # x may be a list, a tuple or any array
        if _dot_rows(_XS, self.w, self.inputs, self.units, _XH, _XL, _ACC):
            return False
        _assemble(_ACC, self.b, self.z, self.units)
        return True

    def backward(self, x, grad, fused):
        # grad, d: (units,)  gx: (inputs,)  gw: (units, inputs)
        units, n = self.units, self.inputs
        d, w, gw, gb, gx = self.d, self.w, self.gw, self.gb, self.gx
        if fused:
            for u in range(units):
                d[u] = grad[u]
        else:
            self.activation.backward(self.z, self.y, grad, d, units)
        for i in range(n):
            gx[i] = 0.0
        o = 0
        for u in range(units):
            du = d[u]
            gb[u] += du
            for i in range(n):
                gx[i] += du * w[o + i]
                gw[o + i] += du * x[i]
            o += n
        return gx

    def update(self, rate, momentum, scale):
        step = rate * scale
        if momentum:
            if self.velocity is None:
                raise ValueError("Dense: momentum needs prepare(momentum) first")
            vw, vb = self.velocity
            _step_momentum(self.w, self.gw, vw, step, momentum)
            if self.use_bias:
                _step_momentum(self.b, self.gb, vb, step, momentum)
            else:
                _clear(self.gb)
        else:
            _step(self.w, self.gw, step)
            if self.use_bias:
                _step(self.b, self.gb, step)
            else:
                _clear(self.gb)

    def prepare(self, momentum):
        """Allocate momentum buffers before training (not in the hot path)."""
        if momentum and self.velocity is None:
            self.velocity = (floats(len(self.w)), floats(self.units))

    def get_weights(self):
        """The flat nanonn layout: per unit, its input weights then its bias."""
        n = self.inputs
        out = []
        for u in range(self.units):
            out.extend(self.w[u * n : (u + 1) * n])
            if self.use_bias:
                out.append(self.b[u])
        return out

    def set_weights(self, values):
        n = self.inputs
        stride = _check_weight_count(len(values), self.units, n, self.use_bias)
        for u in range(self.units):
            base = u * stride
            for i in range(n):
                self.w[u * n + i] = values[base + i]
            self.b[u] = values[base + n] if self.use_bias else 0.0


def _check_weight_count(count, units, inputs, use_bias):
    stride = inputs + 1 if use_bias else inputs
    if count != units * stride:
        raise ValueError(
            "Dense weights: expected %d values (%d units x (%d inputs%s)), got %d"
            % (units * stride, units, inputs, " + bias" if use_bias else "", count)
        )
    return stride


def _step(p, g, step):
    for i in range(len(p)):
        p[i] -= step * g[i]
        g[i] = 0.0


def _step_momentum(p, g, v, step, momentum):
    for i in range(len(p)):
        vi = momentum * v[i] - step * g[i]
        v[i] = vi
        p[i] += vi
        g[i] = 0.0


def _clear(g):
    for i in range(len(g)):
        g[i] = 0.0


class Dropout(Layer):
    """Inverted dropout: in training, zero each input with probability `rate`
    and scale the rest by 1 / (1 - rate); at inference, pass through.
    Deterministic for a given `seed`."""

    def __init__(self, rate, seed=1):
        rate = float(rate)
        if not 0.0 <= rate < 1.0:
            raise ValueError("Dropout rate: expected 0 <= rate < 1, got %r" % rate)
        self.rate = rate
        self.seed = seed

    def build(self, inputs, rng):
        from .rand import Random

        self.inputs = self.units = inputs
        self.rng = Random(self.seed)
        self.keep = bytearray(inputs)
        self.y = floats(inputs)
        self.gx = floats(inputs)
        self.scale = 1.0 / (1.0 - self.rate)
        # drop where 24 random bits / 2^24 < rate as float32: integers, the same mask on every port
        r24 = array("f", [self.rate])[0] * 16777216.0  # exact: a float32 times 2^24
        self.cut = int(r24) + (1 if int(r24) < r24 else 0)
        return inputs

    def forward(self, x, training):
        if not training:
            return x
        return self._drop(x)

    def _drop(self, x):
        keep, y, rng, cut, scale = self.keep, self.y, self.rng, self.cut, self.scale
        for i in range(self.inputs):
            k = rng.bits24() >= cut
            keep[i] = k
            y[i] = x[i] * scale if k else 0.0
        return self.y

    def backward(self, x, grad, fused):
        keep, gx, scale = self.keep, self.gx, self.scale
        for i in range(self.inputs):
            gx[i] = grad[i] * scale if keep[i] else 0.0
        return gx
