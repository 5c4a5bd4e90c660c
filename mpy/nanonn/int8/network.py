"""int8 quantized networks (docs/quantization.md is the contract).

`QDense.from_params(...)` builds a layer from the stored integer parameters
(the `.nnm` reader and converters use it); `QNetwork(layers)` chains them;
`Network.quantize(X)` (see `qbuild`) makes one from a float network.

The kernels come from `kernels_viper` (@micropython.viper) when the port can
compile it, else from `kernels_py` (plain Python, same integers), which is
imported only then or when asked for (`kernels="python"`): a board with viper
never keeps it in RAM. On a port that runs Thumb-2 native code (ARMv7-M and later:
RP2350, STM32) the layers run `kernels_wide_viper.dense` instead (same integers, one
Thumb-2 instruction less a term on inputs whose buffer `QNetwork` aligns for it).
"""

import sys
from array import array

from ..errors import NO_NATIVE_CODE
from ..inputs import F32, INT8, UINT8, check_vector, describe, is_bytes, typecode
from .multiplier import bitlen, fc_real, input_quantizer, leaky_table

try:
    from . import kernels_viper as _viper_kernels
except NO_NATIVE_CODE:
    _viper_kernels = None  # CPython, CircuitPython, ports without the native emitter

# sys.implementation._mpy's native arch (bits 10..13) of the ports that run Thumb-2 code:
# armv7m, armv7em, armv7emsp, armv7emdp (an RP2040's armv6m is Thumb-1)
_THUMB2_ARCHS = (5, 6, 7, 8)
_WIDE = []  # [kernels_wide_viper or None], looked up once (`_wide_kernels`)

KERNELS = ("python", "viper") if _viper_kernels is not None else ("python",)
DEFAULT_KERNELS = "viper" if _viper_kernels is not None else "python"

ACTIVATIONS = ("linear", "relu", "leaky_relu", "sigmoid", "tanh", "softplus", "softmax", "softmax_tflite")
_SOFTMAXES = ("softmax", "softmax_tflite")  # last layer only
_F32_ONE = 0x3F800000  # float32 bits of 1.0
_I32 = ord("i")  # typecode() of array('i')
_LUT_ACTIVATIONS = ("sigmoid", "tanh", "softplus")
_INT32_MAX = 2147483647
_SOFTMAX_MAX_UNITS = 16383  # keeps the softmax sum below 2^30 (softmax_tflite: below 2^14)
_HEAD = 6  # int32 words of a layer's parameter block before its unit records
_REC = 6  # int32 words per unit: acc0, A, M, q >> 22, q & (2^22 - 1), r | F << 8 | K << 16


def _int(name, value, lo, hi):
    if type(value) is not int or not lo <= value <= hi:
        raise ValueError("%s: expected an int in [%d, %d], got %r" % (name, lo, hi, value))
    return value


def _scale(name, value):
    """A scale as its float32 value (scales are float32 in the contract)."""
    v = array("f", [float(value)])[0]
    if not (v > 0.0 and v < 3.0e38):
        raise ValueError("%s: expected a finite float > 0, got %r" % (name, value))
    return v


def _scales(name, values, count):
    """Per-unit scales as an array('f'): an array('f') is kept (checked, not copied: the
    model reader's arrays are the layer's own), anything else copied as float32. The
    name is formatted only for an error: a board's heap keeps no garbage between the
    layer's buffers."""
    if len(values) != count:
        raise ValueError("%s: expected %d values, got %d" % (name, count, len(values)))
    own = type(values) is array and typecode(values) == F32
    out = values if own else array("f", bytes(4 * count))
    for i in range(count):
        v = values[i]
        if not own or not (v > 0.0 and v < 3.0e38):
            v = _scale("%s[%d]" % (name, i), v)  # float32 and checked (raises, naming the value)
        out[i] = v
    return out


def _int8_bytes(name, values, count):
    """int8 values as two's-complement bytes: bytes, bytearray and memoryviews of
    them are kept without a copy; array('b')/array('B') and memoryviews of them
    are copied byte for byte; any other sequence (list, tuple, array of another
    typecode) is converted value by value, each an int in [-128, 127]."""
    t = type(values)
    if t is not list and t is not tuple and not typecode(values):
        raise TypeError(
            "%s: expected bytes, bytearray, array('b'), array('B') or a list of %d int8 values, got %s"
            % (name, count, describe(values))
        )
    if len(values) != count:
        raise ValueError("%s: expected %d int8 values, got %d" % (name, count, len(values)))
    if is_bytes(values):
        if t is not array and typecode(values) == UINT8:
            return values  # indexed as unsigned bytes, as the kernels read them
        return bytearray(values)  # raw bytes of array('b')/array('B') or a signed view
    out = bytearray(count)
    for i in range(count):
        v = values[i]
        if type(v) is not int or not -128 <= v <= 127:
            raise ValueError("%s[%d]: expected an int8 in [-128, 127], got %r" % (name, i, v))
        out[i] = v & 0xFF
    return out


def _int32s(name, values, count, lo, hi):
    """The values as an array('i'), each checked: an array('i') is kept (checked, not
    copied: the model reader's arrays are the layer's own), anything else copied."""
    if len(values) != count:
        raise ValueError("%s: expected %d values, got %d" % (name, count, len(values)))
    own = type(values) is array and typecode(values) == _I32
    out = values if own else array("i", bytes(4 * count))
    for i in range(count):
        v = values[i]
        if type(v) is not int or not lo <= v <= hi:
            raise ValueError("%s[%d]: expected an int in [%d, %d], got %r" % (name, i, lo, hi, v))
        out[i] = v
    return out


def _sext8(b):
    return (b ^ 0x80) - 0x80


def _scalar_i32(v):
    return array("i", [v])


def kernel_set(name=None, full=True):
    """The kernel module for "viper" or "python" (None: the default). `full`: every
    kernel (float I/O, the quantizer's, softmax_tflite); else at least what
    `predict_int8` runs (viper: `kernels_viper` alone, without `kernels_extra_viper`).
    The plain-Python kernels and the extra viper ones are imported on first use: a board
    keeps imported code in RAM. Allocates nothing once imported."""
    if name is None:
        name = DEFAULT_KERNELS
    if name not in KERNELS:
        raise ValueError("kernels: expected one of %s, got %r" % (", ".join(KERNELS), name))
    sets = _FULL_SETS if full else _CORE_SETS
    if name not in sets:
        sets[name] = _import_kernels(name, full)
    return sets[name]


_FULL_SETS: dict = {}  # kernel modules by name, every kernel (kernel_set)
_CORE_SETS: dict = {}  # kernel modules by name, at least predict_int8's


def _wide_kernels():
    """`kernels_wide_viper` where the port runs Thumb-2 native code and has it, else None
    (imported on first use; a board without Thumb-2 never keeps it in RAM). Allocates
    nothing after the first call."""
    if not _WIDE:
        mod = None
        arch = (getattr(sys.implementation, "_mpy", 0) >> 10) & 15
        if _viper_kernels is not None and arch in _THUMB2_ARCHS:
            try:  # on use, a Thumb-2 port only: 10 KB of viper code in a board's heap
                from . import kernels_wide_viper as mod
            except NO_NATIVE_CODE:  # not installed (a package built for ARMv6-M)
                mod = None
        _WIDE.append(mod)
    return _WIDE[0]


def _import_kernels(name, full):
    if name == "viper":
        if not full:
            return _viper_kernels
        from . import kernels_extra_viper  # on use (kernel_set)

        return kernels_extra_viper
    from . import kernels_py  # the fallback, imported only where it runs (kernel_set)

    return kernels_py


def _requant(k, acc, mp, sp, mn, sn, step, y, n, zp, lo, hi):
    """y = clamp(zp + MBQM(acc), lo, hi) as offset-binary; acc is overwritten."""
    k.mbqm(acc, mp, sp, mn, sn, step, n)
    k.clamp8(acc, y, n, zp, lo, hi)


class QDense:
    """An int8 dense layer. Build it with `QDense.from_params`; a `QNetwork` runs it.

    Building allocates its parameter copies (w stays a view of bytes/bytearray/
    memoryview), accumulators and its int8 output buffer; running it through
    `QNetwork` with the viper kernels allocates nothing."""

    source = None  # what an in-place layer's weights view (set by nanonn.nnm.read: keeps it alive)
    # what only some activations set, as class defaults: an instance's attribute table then
    # stays at 29 slots on MicroPython (30 attributes would take 47, and leave the 29 as garbage)
    lut = exp_table = mp = sp = mn = sn = acc = None
    code = 0  # kernels: 0 clamp only, 1 leaky_relu, 2 lookup table, 3 softmax, 4 softmax_tflite
    sum = 0  # softmax: the last sum of exp_table values (set in __init__: predict must not add it)

    def __init__(
        self,
        inputs,
        units,
        w,
        w_scale,
        bias,
        in_scale,
        in_zp,
        out_scale,
        out_zp,
        activation="linear",
        mult=None,
        shift=None,
        pre_scale=None,
        pre_zp=None,
        alpha=0.0,
        mult_pos=0,
        shift_pos=0,
        mult_neg=0,
        shift_neg=0,
        lut=None,
        exp_table=None,
    ):
        """A layer from the stored parameters of docs/quantization.md.

        w: units*inputs int8 (row-major; bytes/bytearray/memoryview are used
        without a copy); w_scale: units floats; bias, mult: units ints (an
        array('i') is kept, not copied, as exp_table's);
        shift: units ints in [-31, 30]; lut: 256 int8 (sigmoid/tanh/softplus);
        exp_table: 256 ints (softmax: Q16 values; softmax_tflite: float32
        bits). pre_scale/pre_zp default to the output
        domain (linear, relu). Raises ValueError naming the bad field, and when
        an accumulator could leave int32 (32-bit safety).
        """
        self.inputs = n = _int("QDense inputs", inputs, 1, 1 << 24)
        self.units = u = _int("QDense units", units, 1, 1 << 24)
        if activation not in ACTIVATIONS:
            raise ValueError(
                "QDense activation: expected one of %s, got %r" % (", ".join(ACTIVATIONS), activation)
            )
        self.activation = activation
        self.w = _int8_bytes("QDense w", w, u * n)
        self.w_scale = _scales("QDense w_scale", w_scale, u)
        self.bias = _int32s("QDense bias", bias, u, -_INT32_MAX - 1, _INT32_MAX)
        self.in_scale = _scale("QDense in_scale", in_scale)
        self.in_zp = _int("QDense in_zp", in_zp, -128, 127)
        self.out_scale = _scale("QDense out_scale", out_scale)
        self.out_zp = _int("QDense out_zp", out_zp, -128, 127)
        if mult is None or shift is None:
            raise ValueError("QDense mult/shift: expected %d ints each, got None" % u)
        self.mult = _int32s("QDense mult", mult, u, 0, _INT32_MAX)
        for i in range(u):
            if self.mult[i] and self.mult[i] < 1 << 30:
                raise ValueError(
                    "QDense mult[%d]: expected 0 or an int in [2^30, 2^31 - 1], got %d" % (i, self.mult[i])
                )
        self.shift = _int8_bytes("QDense shift", _checked_shifts("QDense shift", shift, u), u)
        if activation in ("linear", "relu"):
            if (
                pre_scale is not None
                and float(pre_scale) != self.out_scale
                or pre_zp is not None
                and pre_zp != out_zp
            ):
                raise ValueError(
                    "QDense pre_scale/pre_zp: expected the output domain (%r, %d) for %s, got (%r, %r)"
                    % (self.out_scale, out_zp, activation, pre_scale, pre_zp)
                )
            pre_scale, pre_zp = self.out_scale, out_zp
        elif pre_scale is None or pre_zp is None:
            raise ValueError("QDense pre_scale/pre_zp: expected values for %s, got None" % activation)
        self.pre_scale = _scale("QDense pre_scale", pre_scale)
        self.pre_zp = _int("QDense pre_zp", pre_zp, -128, 127)
        self.alpha = float(alpha)
        self.lo, self.hi = -128, 127
        if activation == "relu":
            self.lo = max(-128, out_zp)
        if activation == "leaky_relu":
            self.code = 1
            self.mp = _scalar_i32(_int("QDense mult_pos", mult_pos, 0, _INT32_MAX))
            self.sp = _checked_shifts("QDense shift_pos", [shift_pos], 1)
            self.mn = _scalar_i32(_int("QDense mult_neg", mult_neg, 0, _INT32_MAX))
            self.sn = _checked_shifts("QDense shift_neg", [shift_neg], 1)
            # |p - pre_zp| <= 255: the left shift must keep it within int32
            for s in (shift_pos, shift_neg):
                if s > 0 and 255 << s > _INT32_MAX:
                    raise ValueError("QDense leaky shift: expected <= 23, got %d" % s)
        if activation in _LUT_ACTIVATIONS:
            if lut is None:
                raise ValueError("QDense lut: expected 256 int8 values for %s, got None" % activation)
            self.lut = _int8_bytes("QDense lut", lut, 256)
            self.code = 2
        if activation == "softmax":
            if exp_table is None:
                raise ValueError("QDense exp_table: expected 256 ints for softmax, got None")
            if u > _SOFTMAX_MAX_UNITS:
                raise ValueError("QDense units: expected <= %d for softmax, got %d" % (_SOFTMAX_MAX_UNITS, u))
            self.exp_table = _int32s("QDense exp_table", exp_table, 256, 0, 65536)
            self.code = 3
            self.sum = 0
            if self.exp_table[0] != 65536:
                raise ValueError("QDense exp_table[0]: expected 65536, got %d" % self.exp_table[0])
        if activation == "softmax_tflite":  # TFLite's SOFTMAX: its float32 table, as bits
            if exp_table is None:
                raise ValueError(
                    "QDense exp_table: expected 256 float32 bit patterns for softmax_tflite, got None"
                )
            if self.out_scale != 1.0 / 256 or out_zp != -128:
                raise ValueError(
                    "QDense out_scale/out_zp: expected (0.00390625, -128) for softmax_tflite, got (%r, %d)"
                    % (self.out_scale, out_zp)
                )
            if u > _SOFTMAX_MAX_UNITS:
                raise ValueError("QDense units: expected <= %d for softmax, got %d" % (_SOFTMAX_MAX_UNITS, u))
            self.exp_table = _int32s("QDense exp_table", exp_table, 256, 0, _F32_ONE)
            self.code = 4
            if self.exp_table[0] != _F32_ONE:
                raise ValueError(
                    "QDense exp_table[0]: expected 0x3f800000 (1.0), got 0x%x" % self.exp_table[0]
                )
        self._derive()

    @classmethod
    def from_params(cls, *args, **kwargs):
        """The layer from its stored parameters: `QDense(...)` (the arguments of `__init__`)."""
        return cls(*args, **kwargs)

    @property
    def leaky(self):
        """leaky_relu: (mult_pos, shift_pos, mult_neg, shift_neg) as stored: array('i')
        of 1, int8 byte of 1, array('i') of 1, int8 byte of 1; None otherwise."""
        return None if self.mp is None else (self.mp, self.sp, self.mn, self.sn)

    def params(self):
        """The stored fields as `from_params` keyword arguments (plain ints/floats/lists;
        `w` and `lut` stay the layer's int8 buffers). Allocates: for writers, not hot paths."""
        u = self.units
        p = {
            "inputs": self.inputs,
            "units": u,
            "w": self.w,
            "w_scale": list(self.w_scale),
            "bias": list(self.bias),
            "in_scale": self.in_scale,
            "in_zp": self.in_zp,
            "out_scale": self.out_scale,
            "out_zp": self.out_zp,
            "activation": self.activation,
            "mult": list(self.mult),
            "shift": [_sext8(self.shift[i]) for i in range(u)],
            "pre_scale": self.pre_scale,
            "pre_zp": self.pre_zp,
            "alpha": self.alpha,
            "lut": self.lut,
            "exp_table": None if self.exp_table is None else list(self.exp_table),
        }
        mp, sp, mn, sn = self.mp, self.sp, self.mn, self.sn
        if mp is not None and sp is not None and mn is not None and sn is not None:  # set together
            p["mult_pos"] = mp[0]
            p["shift_pos"] = _sext8(sp[0])
            p["mult_neg"] = mn[0]
            p["shift_neg"] = _sext8(sn[0])
        return p

    def _derive(self):
        """acc0 = bias - (in_zp + 128) * rowsum(w) (the kernels see x + 128), the
        requantization (the double in_scale * w_scale / pre_scale as a 53-bit
        significand and a shift; mult/shift must be its QuantizeMultiplier) and the
        32-bit bound; buffers for the accumulators and the int8 output."""
        n, u, w = self.inputs, self.units, self.w
        # the kernels' parameter block (`qkernels.dense`): a header, then one record per unit
        # every word is written below: array('i', range(k)) is one allocation of its size
        # (no zero-filled temporary, whose hole would fragment a board's heap)
        self.p = p = array("i", range(_HEAD + _REC * u))
        p[0], p[1], p[2], p[3], p[4] = n, u, self.pre_zp, self.lo, self.hi
        # the other lasting buffers before the unit loop's garbage (big ints on a 32-bit
        # port): on a board they then sit next to p, not between holes the garbage leaves
        if self.code == 3:
            self.acc = array("i", bytes(4 * u))  # softmax: the exp values
        self.y = bytearray(u)  # offset-binary output (q + 128)
        # the activation table `dense` applies (p[5] = 1), else any bytes (the output)
        self.table = self.lut if self.code == 2 else _leaky_table(self) if self.code == 1 else self.y
        p[5] = 1 if self.code == 1 or self.code == 2 else 0
        worst = 0
        o = 0
        zp = self.in_zp + 128
        for j in range(u):
            q, k, m, s = fc_real(self.in_scale, self.w_scale[j], self.pre_scale)
            if m != self.mult[j] or s != _sext8(self.shift[j]):
                raise ValueError(
                    "QDense mult[%d]/shift[%d]: expected %d/%d (QuantizeMultiplier of in_scale * w_scale / "
                    "pre_scale), got %d/%d" % (j, j, m, s, self.mult[j], _sext8(self.shift[j]))
                )
            rowsum = 0
            absum = 0
            for i in range(n):
                v = _sext8(w[o + i])
                rowsum += v
                absum += v if v >= 0 else 0 - v
            o += n
            a0 = self.bias[j] - zp * rowsum
            mag = (a0 if a0 >= 0 else 0 - a0) + 255 * absum  # |accumulator| at most
            # the kernels add (w + 128) * x >= 0 to acc0 - 128 * sum(x) >= acc0 - 32640 * n:
            # partial sums rise from there to the accumulator (docs/quantization.md)
            bound = mag << (s if s > 0 else 0)
            if bound < 32640 * n - a0:
                bound = 32640 * n - a0
            if bound > _INT32_MAX:
                raise ValueError(
                    "QDense unit %d worst-case accumulator: expected at most 2^31 - 1 (int32; "
                    "smaller bias, weights or shift), got %d, which exceeds int32" % (j, bound)
                )
            worst = max(worst, bound)
            _unit_record(p, _HEAD + _REC * j, a0, mag, q, k)
        self.bound = worst


def _unit_record(p, o, a0, mag, q, k):
    """Write one unit's record of the parameter block at p[o:]: acc0, then the
    requantization round(double(acc) * R), R = q * 2^-k (q the 53-bit significand).

    Fast path (docs/quantization.md): |acc| > A saturates (|acc| * R >= 256: past
    any int8 after the zero point); below, with a1 = |acc| >> r < 2^16 and
    M = q >> (k - r - F) < 2^15, t = a1 * M < 2^31 brackets |acc| * R * 2^F in
    [t, t + a1 + M + 1), which settles the rounding unless a half-integer lies
    in that bracket; then the kernels take the exact path on (q >> 22, q & (2^22 - 1), k)."""
    if k >= 0:
        t = ((256 << k) + q - 1) // q  # ceil(256 / R)
    else:
        d = q << (0 - k)
        t = (256 + d - 1) // d
    big = t - 1 if t - 1 < mag else mag  # A: the largest |acc| that needs rounding
    r = bitlen(big) - 16
    if r < 0:
        r = 0
    f = k - r - 38  # M = q >> 38 < 2^15 ...
    if f > 29:  # ... unless 2^F would pass 2^29 (M smaller then, the bracket still holds)
        f = 29
    if f < 1:  # R * 2^r >= 2^14: A is 0, the exact path decides |acc| = 0
        f = 1
        m = 0
    else:
        m = q >> (k - r - f)
    p[o] = a0
    p[o + 1] = big
    p[o + 2] = m
    p[o + 3] = q >> 22
    p[o + 4] = q & 0x3FFFFF
    p[o + 5] = r | (f << 8) | ((k if k < 255 else 255) << 16)  # k > 21: the shift is at most 30


def _leaky_table(layer):
    """leaky_relu as a 256-entry int8 table indexed by pre-activation q + 128
    (`multiplier.leaky_table`: the integers of the kernels' mbqm_dr)."""
    return leaky_table(
        layer.pre_zp, layer.out_zp, layer.mp[0], _sext8(layer.sp[0]), layer.mn[0], _sext8(layer.sn[0])
    )


def _checked_shifts(name, values, count):
    if len(values) != count:
        raise ValueError("%s: expected %d values, got %d" % (name, count, len(values)))
    out = bytearray(count)
    for i in range(count):
        v = values[i]
        if type(v) is not int or not -31 <= v <= 30:
            _int("%s[%d]" % (name, i), v, -31, 30)  # raises, naming the value
        out[i] = v & 0xFF
    return out


class QNetwork:
    """A chain of `QDense` layers.

    `predict(x)`: floats in, array('f') out. `predict_int8(buf)`: int8 in the
    input's domain, int8 out. Both return a buffer owned by the network and
    reused by the next call. With the viper kernels neither allocates.
    `kernels`: "viper" (default where available) or "python". `staging`: a
    bytearray of `inputs` bytes for the network's own input buffer (default: a new
    one); `nanonn.load` allocates it before the layers, while a board's heap still has
    a free block that size. On a Thumb-2 port (kernels_wide_viper) a network of 256 inputs
    or more reads them from a buffer of its own at an address with the low byte 0x80
    instead, unless `staging` is there already.
    """

    def __init__(self, layers, kernels=None, staging=None):
        if not layers:
            raise ValueError("QNetwork: expected at least one QDense layer, got 0")
        for i, layer in enumerate(layers):
            if not isinstance(layer, QDense):
                raise TypeError("QNetwork layer %d: expected a QDense, got %s" % (i, type(layer).__name__))
            if i:
                prev = layers[i - 1]
                if layer.inputs != prev.units:
                    raise ValueError(
                        "QNetwork layer %d inputs: expected %d (the previous layer's units), got %d"
                        % (i, prev.units, layer.inputs)
                    )
                if layer.in_scale != prev.out_scale or layer.in_zp != prev.out_zp:
                    raise ValueError(
                        "QNetwork layer %d input domain: expected (%r, %d) (the previous layer's output), got (%r, %d)"
                        % (i, prev.out_scale, prev.out_zp, layer.in_scale, layer.in_zp)
                    )
            if layer.activation in _SOFTMAXES and i != len(layers) - 1:
                raise ValueError("QNetwork layer %d: softmax is allowed on the last layer only" % i)
        self.layers = list(layers)
        self.inputs = layers[0].inputs
        self.outputs = layers[-1].units
        self.kernels = kernels or DEFAULT_KERNELS
        self._k = kernel_set(kernels, False)  # predict_int8's kernels (`_float_io` adds the rest)
        self._kf = None
        first, last = layers[0], layers[-1]
        n = self.inputs
        if staging is None:
            staging = bytearray(n)
        elif type(staging) is not bytearray or len(staging) != n:
            raise ValueError(
                "QNetwork staging: expected a bytearray of %d bytes (the inputs), got %s"
                % (n, describe(staging))
            )
        # the layers' dense kernel (kernels_viper.forward calls it); kernels_wide_viper's reads
        # an input buffer in windows when it is `aligned`: the network's input and the output
        # of a layer before one of 256 inputs or more (255 bytes more each; a Thumb-2 board)
        wide = _wide_kernels() if self.kernels == "viper" else None
        self._dense = None if self.kernels != "viper" else (wide or self._k).dense
        if wide and n >= 256 and wide.address(staging) & 0xFF != 0x80:
            staging = wide.aligned(n)
        self._xq = staging  # offset-binary input
        if wide:
            for i in range(1, len(layers)):
                prev = layers[i - 1]
                if layers[i].inputs >= 256 and wide.address(prev.y) & 0xFF != 0x80:
                    y = wide.aligned(prev.units)
                    if prev.table is prev.y:  # any bytes (no table): the output itself
                        prev.table = y
                    prev.y = y
        # the last int8 buffer accepted (start: its own)
        self._seen8 = self._xq
        self._out8 = array("b", bytes(self.outputs))  # int8 output
        # float in and out (`predict`): buffers made by its first call (`_float_io`), so a
        # program that runs predict_int8 only does not keep 8 bytes per input for them
        self._xf = self._fx = self._deq = self._seen_f32 = None
        self._out = array("f")  # float output (sized by `_float_io`)
        # float input quantizer: fx = round(x * 2^F); q = in_zp + MBQM(fx, mult_in, shift_in)
        F, m, s = input_quantizer(first.in_scale)
        self._in_F = F
        self._in_m = _scalar_i32(m)
        self._in_s = bytearray([s & 0xFF])
        self._layers = self.layers
        self._nl = len(layers)
        # the kernels' arguments of every layer, flat (w, p, table, y): tuple items are
        # cheaper to reach from viper than instance attributes (a dict lookup each)
        plan = []
        for L in layers:
            plan.extend((L.w, L.p, L.table, L.y))
        self._plan = tuple(plan)
        self._in_zp = first.in_zp
        self._last = last
        self._soft = 1 if last.activation == "softmax" else 0
        # TFLite's softmax for the viper layer loop (the plain-Python one calls its own)
        self._tfl = kernel_set(kernels).softmax_tfl if last.activation == "softmax_tflite" else None

    def save(self, path, backup=None):
        """Write the int8 network to `path` as a .nnm model, safely, like `Network.save`
        (see `nanonn.nnm.write.save`; `backup` for filesystems without atomic rename)."""
        from ..nnm.write import save  # on first use: keeps the writer out of RAM

        save(self, path, backup)

    def predict_int8(self, x):
        """Outputs (int8, the last layer's output domain) for `x`: `inputs` int8
        values in the first layer's input domain, as exactly `inputs` bytes of
        two's complement: bytes, bytearray, array('b'), array('B') or a memoryview
        of one of these (e.g. a slice of a larger buffer). Anything else (lists,
        arrays of wider types such as array('h')) raises TypeError: quantize
        other inputs with `predict`. Returns the network's own array('b'),
        reused (overwritten) by the next call: copy it to keep it.
        Allocates nothing with the viper kernels. The network remembers the
        last buffer it accepted (a reference: it stays alive) and skips the
        type check when it is given the same object again."""
        if x is not self._seen8:
            self._check_int8(x)
            self._seen8 = x
        if len(x) != self.inputs:  # every call: an array can grow or shrink
            raise ValueError("predict_int8 input: expected %d int8 values, got %d" % (self.inputs, len(x)))
        self._k.predict_int8(self, x)  # fills self._out8
        return self._out8

    def _check_int8(self, x):
        c = typecode(x)
        if c != INT8 and c != UINT8:
            raise TypeError(
                "predict_int8 input: expected bytes, bytearray, array('b'), array('B') or a memoryview of "
                "one of them, holding %d int8 values, got %s" % (self.inputs, describe(x))
            )

    def predict(self, x):
        """Float outputs for `inputs` numbers: an array('f') (or a memoryview of
        one), a list or tuple, an array of any other numeric typecode (array('h')
        of raw sensor readings, array('d'), ...), bytes or bytearray (values
        0..255) or a memoryview of one of these. Returns the network's own
        array('f'), reused by the next call.
        Softmax outputs are e/s of the integer softmax (float32, exactly rounded);
        other outputs (softmax_tflite too) are the dequantized int8 outputs. With the viper kernels
        and an array('f') input this allocates nothing; any other input is first
        copied value by value into the network's float32 buffer (allocating only
        the floats read from an array('d') or a list; see docs/quantization.md),
        so it gives the same outputs as the list of the same values. The network
        remembers the last array('f') it was given (a reference) and skips its
        type check when it gets the same object again.
        Non-finite inputs have a defined result: NaN quantizes like 0.0, +-inf
        saturate like the largest finite values (the int8 input is clamped to
        [-128, 127]); wrong types or lengths raise TypeError/ValueError naming
        the input (an element: `input[i]`)."""
        if self._deq is None:
            self._float_io()
        if x is not self._seen_f32 or len(x) != self.inputs:
            if typecode(x) != F32 or len(x) != self.inputs:
                x = self._stage(x)  # checks the type and the length
            else:
                self._seen_f32 = x  # an object's typecode never changes: skip it next time
        self._kf.predict_float(self, x)  # pyright: ignore[reportOptionalMemberAccess]  (set by _float_io); fills self._out
        return self._out

    def _float_io(self):
        """The kernels, buffers and tables of float in and out (once, at the first `predict`)."""
        self._kf = kernel_set(self.kernels)
        n = self.inputs
        self._xf = array("f", bytearray(4 * n))  # float32 staging for inputs other than array('f')
        self._seen_f32 = self._xf  # the last array('f') accepted (start: its own)
        self._fx = array("i", bytearray(4 * n))  # fixed-point input
        self._out = array("f", bytearray(4 * self.outputs))
        # float output table: deq[q + 128] = f32((q - out_zp) * out_scale)
        last = self._last
        deq = array("f", bytearray(1024))
        for q in range(-128, 128):
            deq[q + 128] = (q - last.out_zp) * last.out_scale
        self._deq = deq

    def _stage(self, x):
        n = self.inputs
        check_vector("input", x, n)  # n numbers: list, tuple, array, bytes... (allocates nothing)
        xf = self._xf
        for i in range(n):
            xf[i] = x[i]  # pyright: ignore[reportOptionalSubscript]  (made by _float_io before any _stage)
        return xf
