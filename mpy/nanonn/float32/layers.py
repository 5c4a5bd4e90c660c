"""Layers and the layer protocol.

A layer is any object with:

- `build(inputs, rng) -> outputs`: called once by `Network`; allocates every
  buffer the layer will use (`rng` is a `rand.Random` for initial weights, or None
  when no layer of the network has `uses_rng`).
- `uses_rng` (attribute, default True): whether `build` draws from `rng`. A network
  whose layers all bring their weights (a loaded model) never imports the PRNG.
- `forward(x, training) -> y`: `x` is a buffer of `inputs` numbers; returns
  the layer's own output buffer (reused by the next call).
- `backward(x, grad, fused) -> grad_x`: `grad` is dL/dy (or, when `fused`,
  already dL/dz at the activation's input); accumulates parameter gradients
  and returns the layer's own buffer holding dL/dx.
- `update(rate, momentum, scale)`: applies the accumulated gradients times
  `scale` (1 / batch size) and clears them.
- `get_weights() -> list` and `set_weights(values)`: the flat parameters.
- `frozen` (attribute): `Network.train`/`fit` do not update a frozen layer, and run
  no backward pass below the lowest layer that is not frozen.

`Layer` gives no-op defaults for a layer without parameters. Hot paths
(`forward`, `backward`, `update`) allocate nothing but float results.
"""

from array import array

from ..errors import NO_NATIVE_CODE
from ..inputs import F32, typecode
from . import activations

try:  # integer dot products of float32 bits (allocation free); not on CPython
    from . import dense_viper as _fast
except NO_NATIVE_CODE:
    _fast = None
try:  # float32 multiply-adds in integers (allocation free; activations imported it); not on CPython
    from . import f32_viper as _f32k
except NO_NATIVE_CODE:
    _f32k = None
_train_kernels = activations.train_kernels  # train_viper (copy), on the first backward pass


# Scratch of the viper float kernels: x as float32 (staged from other types), as halves
# (dense_cache_viper.dot) and as 12-bit halves (dense_viper.dot_rows), and the per-unit limbs; grown at build time only (see Dense.alloc_fast). Module globals, not a list:
# the predict path reads them without unpacking (frame size, below).
_XS = _XQ = _XH = _XL = _ACC = array("f")
_SCRATCH_SIZE = [0, 0, 0]  # inputs, units, inputs of a cached layer
_dot_q = None  # dense_cache_viper.dot (a global: the predict path's frames stay small)
_dot_rows = _fast.dot_rows if _fast is not None else None
_to_float32 = _fast.to_float32 if _fast is not None else None
_cache = None  # nanonn.float32.dense_cache_viper, imported when a layer that caches is built
# Scalar factors of the training kernels, as float32 (f32_viper reads a[row]).
_ONE = array("f", (1.0,))
_S = array("f", (0.0,))
_M = array("f", (0.0, 0.0))  # the momentum and c's factor (momentum_viper.momentum_rows's mu)
_momentum_rows = None  # momentum_viper.momentum_rows where it is used (_one_pass_momentum)
_momentum_decided = False  # whether _one_pass_momentum has decided


# Below this many inputs the plain float loop is faster than the viper kernel's
# staging (measured on the unix port: 4 inputs 65k vs 45k predictions/s, 8 about even;
# measured while the predict path still had heap frames: not re-measured since, and
# moving it would change which path, so which float results, a layer gives).
_FAST_MIN_INPUTS = 8

# Dense(cache=None) keeps decoded weights where the heap is at least this large (and on a
# smaller heap where they fit a quarter of it: Dense.build).
_CACHE_MIN_HEAP = 1 << 20

# The predict path (Dense.forward and the helpers below) keeps every function's frame
# within 11 words (`python tools/mpy_frames.py`; tests/test_predict_frames.py): a larger
# frame is a heap block allocated and freed at every call, which between boxed floats on a
# large heap costs far more than the allocation (measured on the unix port with
# -X heapsize=8M: 4-10-10-3 predict 3-4x slower with 8 heap frames per call). Hence small
# helpers taking plain arguments, `while` counters where `for` needs two more words, and
# row offsets recomputed rather than kept in a local.


def _grow_scratch(n, units, cached):
    global _XS, _XQ, _XH, _XL, _ACC
    if n > _SCRATCH_SIZE[0]:
        _XS = floats(n)
        _XH = array("i", bytes(4 * n))
        _XL = array("i", bytes(4 * n))
        _SCRATCH_SIZE[0] = n
    if cached and n > _SCRATCH_SIZE[2]:
        _XQ = array("H", bytes(4 * (n + 3)))  # halves of n rounded up to 4
        _SCRATCH_SIZE[2] = n
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
    """xs[:n] = x[:n]: any list, tuple or array as float32 for the viper kernel (a
    float32 array is copied as bytes: allocates only the slice object)."""
    if type(x) is array and n and type(x[0]) is float and _copy_floats(xs, x):
        return
    i = 0
    while i < n:
        xs[i] = x[i]
        i += 1


def _copy_floats(xs, x):
    """xs[:len(x)] = x, an array of floats: False (nothing copied) unless x is an array('f')."""
    try:
        xs[0 : len(x)] = x  # float32 bits as they are; array('d') has 8-byte items: ValueError
    except ValueError:
        return False
    return True


def _import_cache():
    global _cache, _dot_q
    if _cache is None:
        from . import dense_cache_viper  # on first use: a layer that caches only

        _cache = dense_cache_viper
        _dot_q = dense_cache_viper.dot


def _large_heap():
    """Whether the heap holds at least 1 MB (the default of Dense's `cache`)."""
    import gc

    free = getattr(gc, "mem_free", None)
    used = getattr(gc, "mem_alloc", None)
    return free is not None and used is not None and free() + used() >= _CACHE_MIN_HEAP


def _one_pass_momentum():
    """momentum_viper.momentum_rows where viper exists and the heap holds at least 1 MB, else
    None (its native code, 3-4 KB, would be a board's heap: three axpy_rows passes there).
    Decided and imported at the first momentum step."""
    global _momentum_rows, _momentum_decided
    if not _momentum_decided:
        _momentum_decided = True
        if _f32k is not None and _large_heap():
            try:  # on first use: keeps the one-pass momentum kernel out of RAM until it runs
                from .momentum_viper import momentum_rows
            except NO_NATIVE_CODE:  # (f32_viper compiled, so this does too)
                return None
            _momentum_rows = momentum_rows
    return _momentum_rows


def ints(n):
    """A zero-filled array('i') of n elements (4 * n bytes, and a temporary bytes object)."""
    return array("i", bytes(4 * n))


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
    uses_rng = True  # build() draws initial weights from rng (Network makes one only then)
    frozen = False  # True: train/fit leave its weights as they are (fine-tuning the layers above)

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
    `cache` (where viper exists): True keeps the weights also decoded for the viper
    kernel, 4 more bytes per weight, for about 3.5x the forward speed of False
    (dense_cache_viper.dot over the decoded rows, the same results to the bit; training's forward
    passes decode again after each update and still gain); a checksum of w notices any
    change to the weights, which are then decoded again at the next predict. The
    default None decides per layer at build time: True where the heap holds at least 1 MB
    (the unix port, boards with PSRAM); on a smaller heap True where the layer uses the viper
    kernel (8 inputs or more) and its cost, 4 bytes per weight (rows rounded up to 4
    inputs) + 12 per unit + 4,096 (the cache module's native code, counted for every layer),
    is at most a quarter of `gc.mem_free()` after a `gc.collect()`: on an RP2040 (190 KB
    heap) a 64-32-16-4 network caches, a 784-input layer (113 KB of decoded weights) does
    not. Pass True or False to choose.
    """

    def __init__(
        self, units, inputs=None, activation: object = "linear", use_bias=True, weights=None, cache=None
    ):
        self.units = _check_count("Dense units", units)
        if inputs is not None:
            # Unstated, `inputs` stays Layer's None until build() sets the previous layer's units.
            self.inputs = _check_count("Dense inputs", inputs)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        if weights is not None and inputs is not None:
            _check_weight_count(len(weights), units, inputs, self.use_bias)
        self._initial = weights
        self.uses_rng = weights is None
        self.velocity = None
        self.cache = None if cache is None else bool(cache)
        self.wq = self.wm = None

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
        self.alloc_train()
        if self.cache is None:
            self.cache = _large_heap()
            if not self.cache and _fast is not None and _f32k is not None and n >= _FAST_MIN_INPUTS:
                # A smaller heap, where the viper kernel runs (elsewhere the cache is never
                # read): the decoded weights (4 bytes each, rows rounded up to 4 inputs), 12
                # bytes a unit and dense_cache_viper's native code, which a board keeps in its
                # heap (measured on the bare-metal firmware: 3,648 B armv6m, 3,920 B rv32imc;
                # counted as 4,096 for every layer), at most a quarter of the free heap. Inline,
                # no helper: each module global costs a board's heap at import.
                import gc

                gc.collect()
                self.cache = 4 * (4 * u * ((n + 3) & ~3) + 12 * u + 4096) <= gc.mem_free()  # pyright: ignore[reportAttributeAccessIssue]  (MicroPython: where viper exists)
        self.alloc_fast()
        if self._initial is not None:
            self.set_weights(self._initial)
            self._initial = None
        else:
            # Glorot uniform, biases zero; bit-identical on every port (rand.py).
            from ..rand import glorot_limit  # on first use: keeps the PRNG out of RAM (a loaded model)

            limit = glorot_limit(n, u)
            w = self.w
            for i in range(u * n):
                w[i] = rng.symmetric(limit)
        return u

    _fast_ready = False  # set by alloc_fast where the viper kernel exists
    _finish = 0  # to_float32's flags (alloc_fast)
    float_output = True  # forward returns an array('f') (read by the next layer's chain)
    _input_grad = True  # whether backward computes dL/dx (chain: not for the first layer)
    _f32_in = False  # whether the input is a float32 array (chain: a Dense before it)
    _pending = False  # backward's d and x not yet added into gw, gb (f32_viper kernels)
    _dirty = False  # gw, gb hold gradients (f32_viper kernels)
    _wq_ok = False  # wq holds the decoded weights (cache=True)
    _sum = 0  # the checksum of w when wq was decoded (cache=True)

    def alloc_train(self):
        """Allocate the training buffers (`build` calls it): d and c (units,), the input
        gradient gx and a float32 copy of the input xf (inputs,), the gradients gw
        (units, inputs) and gb (units,): as many bytes as the weights and biases, plus
        8 per unit and 8 per input."""
        u, n = self.units, self.inputs
        self.d = floats(u)
        self.c = floats(u)
        self.gx = floats(n)
        self.xf = floats(n)
        self.gw = floats(u * n)
        self.gb = floats(u)

    def chain(self, previous):
        """Called by `Network` once built, with the layer before this one (None for
        the first): the first layer skips computing the input gradient, and a layer
        after a Dense reads its input as float32 without boxing."""
        self._input_grad = previous is not None
        self._f32_in = bool(getattr(previous, "float_output", False))

    def alloc_fast(self):
        """Make sure the scratch of the allocation-free viper forward (where viper
        exists) is large enough for this layer; `build` calls it. The scratch is
        shared by every Dense layer (forward passes never overlap), so it costs
        12 bytes per input (16 with a cached layer) and 20 per unit of the largest
        layer, once; a cached layer (`cache`) adds 4 bytes per weight and 12 per unit. Layers with
        fewer than 8 inputs keep the plain loop (faster there). A subclass
        with its own `build` calls it too, or keeps the plain float loop."""
        if _fast is not None and _f32k is not None and self.inputs >= _FAST_MIN_INPUTS:
            _grow_scratch(self.inputs, self.units, self.cache)
            self._fast_ready = True
            # to_float32's flags: 1 add the bias, 2 ReLU into y (then no activation call)
            relu = activations.builtin_name(self.activation) == "relu"
            self._finish = (1 if self.use_bias else 0) | (2 if relu else 0)
            if self.cache:
                _import_cache()
                u = self.units
                self.wq = array("H", bytes(4 * u * ((self.inputs + 3) & ~3)))
                self.wm = array("i", bytes(12 * u))
                self._shape = array("i", (self.inputs, u))  # dense_cache_viper.dot's
                self._wq_ok = False

    _x32 = None  # the last input found to be an array('f') (first layer: its typecode once)

    def forward(self, x, training):
        # x: (inputs,)  w: (units, inputs) row-major  b, z, y: (units,)
        # With the viper kernels (x as float32): dense_cache_viper.dot over the decoded weights
        # where they are current (`cache`), else dense_viper.dot_rows; then the bias added
        # before the one rounding to float32, and ReLU, in dense_viper.to_float32. Where x or
        # W is not finite (a kernel returns 1), the plain float loop (infinities and NaN).
        # One frame of 11 words, no helper call on the way (each costs as much as 15 weights).
        if self._fast_ready:
            if self._f32_in or x is self._x32:
                pass  # float32: read in place
            elif typecode(x) == F32:
                self._x32 = x  # (its typecode cannot change: only its length, which check_vector checks)
            else:
                _stage(_XS, x, self.inputs)  # x may be a list, a tuple or any array
                x = _XS
            if self._wq_ok and _cache.checksum(self.w, len(self.w)) == self._sum or self._cached():  # pyright: ignore[reportOptionalMemberAccess]  (_wq_ok only where it was imported)
                if not _dot_q(_XQ, self.wq, x, self.wm, _ACC, self._shape):  # pyright: ignore[reportOptionalCall, reportArgumentType]  (_fast_ready only where viper exists; wm made with wq)
                    _to_float32(_ACC, self.z, self.units, self.b, self.y, self._finish)  # pyright: ignore[reportOptionalCall]  (as _dot_rows)
                    if not self._finish & 2:
                        self.activation.forward(self.z, self.y, self.units)
                    return self.y
            elif not _dot_rows(x, self.w, self.inputs, self.units, _XH, _XL, _ACC):  # pyright: ignore[reportOptionalCall]  (_fast_ready only where viper exists)
                _to_float32(_ACC, self.z, self.units, self.b, self.y, self._finish)  # pyright: ignore[reportOptionalCall]  (as _dot_rows)
                if not self._finish & 2:
                    self.activation.forward(self.z, self.y, self.units)
                return self.y
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

    def _cached(self):
        """Whether wq holds the current weights (`forward` checked the checksum of
        those it holds), decoding them again if they changed (training too: decoding
        once costs less than decoding each row in the forward)."""
        wm, f = self.wm, _cache
        if wm is None or f is None:
            return False
        self._wq_ok = not f.decode(self.wq, self.w, self.inputs, self.units, wm, 0)  # pyright: ignore[reportArgumentType]  (wq and wm are made together)
        self._sum = f.checksum(self.w, len(self.w))
        return self._wq_ok

    def backward(self, x, grad, fused):
        # grad, d: (units,)  gx, xf: (inputs,)  gw: (units, inputs)
        if _f32k is None:
            return self._backward_float(x, grad, fused)
        if self._pending:
            self._flush()
        units, n, d = self.units, self.inputs, self.d
        if fused:
            for u in range(units):
                d[u] = grad[u]
        else:
            self.activation.backward(self.z, self.y, grad, d, units)
        if not self.frozen:
            if self._f32_in:
                _train_kernels().copy(self.xf, x, n)  # pyright: ignore[reportOptionalMemberAccess]  (where _f32k exists)
            else:
                _stage(self.xf, x, n)
            # The parameter gradient d x^T is added into gw lazily (update, or the next
            # backward): a single sample's step then touches each weight once.
            self._pending = True
        gx = self.gx
        if self._input_grad:
            _f32k.fill(gx, n, 0)
            _f32k.axpy_rows(gx, 0, self.w, n, d, units, n)  # gx = W^T d
        return gx

    def _flush(self):
        """gw += d xf^T, gb += d (the pending sample's gradients)."""
        units, n, k = self.units, self.inputs, _f32k
        if k is None:  # only reached where the kernels exist
            return
        k.axpy_rows(self.gw, n, self.xf, 0, self.d, units, n)
        k.axpy_rows(self.gb, 0, self.d, 0, _ONE, 1, units)
        self._pending = False
        self._dirty = True

    def _backward_float(self, x, grad, fused):
        units, n = self.units, self.inputs
        d, w, gw, gb, gx = self.d, self.w, self.gw, self.gb, self.gx
        if fused:
            for u in range(units):
                d[u] = grad[u]
        else:
            self.activation.backward(self.z, self.y, grad, d, units)
        for i in range(n):
            gx[i] = 0.0
        if self.frozen:  # the input gradient only
            gw = gb = None
        o = 0
        for u in range(units):
            du = d[u]
            if gb is not None and gw is not None:
                gb[u] += du
                for i in range(n):
                    gw[o + i] += du * x[i]
            for i in range(n):
                gx[i] += du * w[o + i]
            o += n
        return gx

    def update(self, rate, momentum, scale):
        step, velocity = rate * scale, self.velocity
        if momentum and velocity is None:
            raise ValueError("Dense: momentum needs prepare(momentum) first")
        if _f32k is not None:
            self._update_fast(_f32k, step, momentum, velocity)
        elif momentum and velocity is not None:
            vw, vb = velocity[0], velocity[1]
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

    def _update_fast(self, k, step, momentum, velocity):
        """The update with the f32_viper kernels: v = momentum * v - step * g, w += v
        (or w -= step * g), then clear the gradients."""
        # (a frame of 11 words: a larger one is a heap block at every step)
        if momentum and velocity is not None:
            self._momentum(k, step, momentum, velocity)
        else:
            self._descend(k, self.w, self.b, step)
        if self._dirty:
            k.fill(self.gw, len(self.gw), 0)
            k.fill(self.gb, self.units, 0)
        self._pending = self._dirty = False
        self._wq_ok = False  # the weights changed: decode them at the next forward pass

    def _momentum(self, k, step, momentum, velocity):
        """v = momentum * v - step * g, w += v in one pass over the weights
        (momentum_viper.momentum_rows; for one sample, g = d xf^T, never formed), or in
        three axpy_rows passes on a board-sized heap (`_one_pass_momentum`)."""
        t = _momentum_rows  # (decided by prepare: _one_pass_momentum)
        if t is None or velocity[2] is None:
            self._momentum_passes(k, step, momentum, velocity)
            return
        # velocity: (v of w, v of b, their kernel states); read in place, no locals (this
        # frame is a heap block at each step: each local is 8 more bytes on x64)
        _M[0] = momentum
        _M[1] = 0.0 - step  # c's factor
        n = self.inputs
        if self._pending and not self._dirty:  # one sample: c = -step d per unit, x = xf
            t(self.w, 0, velocity[2], velocity[0], self.xf, self.d, _M, self.units, n)
            if self.use_bias:  # the biases as one row: x = d, c = -step
                t(self.b, 0, velocity[3], velocity[1], self.d, _ONE, _M, 1, self.units)
            return
        if self._pending:
            self._flush()
        t(self.w, n, velocity[2], velocity[0], self.gw, _ONE, _M, self.units, n)
        if self.use_bias:
            t(self.b, 0, velocity[3], velocity[1], self.gb, _ONE, _M, 1, self.units)

    def _momentum_passes(self, k, step, momentum, velocity):
        """v = momentum * v - step * g, w += v in three axpy_rows passes (no more code in RAM)."""
        vw, vb = velocity[0], velocity[1]
        _S[0] = momentum - 1.0
        k.axpy_rows(vw, 0, vw, 0, _S, 1, len(vw))  # v += (momentum - 1) v
        k.axpy_rows(vb, 0, vb, 0, _S, 1, self.units)
        self._descend(k, vw, vb, step)
        k.axpy_rows(self.w, 0, vw, 0, _ONE, 1, len(vw))
        if self.use_bias:
            k.axpy_rows(self.b, 0, vb, 0, _ONE, 1, self.units)

    def _descend(self, k, pw, pb, step):
        """pw -= step * gw, pb -= step * gb (with the pending sample's gradients)."""
        units, n = self.units, self.inputs
        if self._pending and not self._dirty:
            # one sample: pw += c xf^T with c = -step * d, each weight touched once
            c = self.c
            _S[0] = 0.0 - step
            k.fill(c, units, 0)
            k.axpy_rows(c, 0, self.d, 0, _S, 1, units)
            k.axpy_rows(pw, n, self.xf, 0, c, units, n)
            if self.use_bias:
                k.axpy_rows(pb, 0, c, 0, _ONE, 1, units)
            return
        if self._pending:
            self._flush()
        _S[0] = 0.0 - step
        k.axpy_rows(pw, 0, self.gw, 0, _S, 1, units * n)
        if self.use_bias:
            k.axpy_rows(pb, 0, self.gb, 0, _S, 1, units)

    def prepare(self, momentum):
        """Allocate momentum buffers before training (not in the hot path)."""
        if momentum and self.velocity is None:
            # v of the weights and of the biases: float32 for the three axpy_rows passes,
            # or momentum_viper's integers with that kernel's row state and x scratch
            # (its docstring) where the one-pass kernel runs
            units, n = self.units, self.inputs
            if _one_pass_momentum() is None:
                self.velocity = (floats(len(self.w)), floats(units), None, None)
            else:
                self.velocity = (ints(len(self.w)), ints(units), ints(2 * (units + n)), ints(2 + 2 * units))

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
    Deterministic for a given `seed` (its own PRNG, made at the first training pass)."""

    uses_rng = False

    def __init__(self, rate, seed=1):
        rate = float(rate)
        if not 0.0 <= rate < 1.0:
            raise ValueError("Dropout rate: expected 0 <= rate < 1, got %r" % rate)
        self.rate = rate
        self.seed = seed

    def build(self, inputs, rng):
        self.inputs = self.units = inputs
        self.rng = None  # a rand.Random(seed), made by the first training pass (_drop)
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
        if self.rng is None:
            from ..rand import Random  # on first use: keeps the PRNG out of RAM for inference

            self.rng = Random(self.seed)
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
