"""Window features for gesture classification, in integers: nothing allocated per window.

A window is `n` accelerometer samples in milli-g, interleaved x, y, z in an
`array('h')` of 3 * n values (what `imu.read_mg` writes). For each axis,
`Extractor.extract` computes seven integer features (integer arithmetic only,
every intermediate a small int on 32-bit boards, so the call allocates nothing
and runs under `micropython.heap_lock()`):

    mean  floor(sum(v) / n)                          mg
    std   isqrt(floor(sum(d * d) / n))   d = v - mean   mg
    min   min(v)                                     mg
    max   max(v)                                     mg
    rms   isqrt(floor(sum(v * v) / n))               mg
    zc    number of sign changes of d (d < 0 vs d >= 0) between neighbours
    mad   floor(sum(|v[i] - v[i-1]|) / (n - 1))       mg per sample (jerk)

Samples are first clipped to +-16000 mg (a 16 g sensor's full scale), so
|d| <= 32000 and d * d <= 1.024e9 < 2^30; the sums of squares divided by n are
accumulated exactly as a quotient and a remainder (each below 2^30), so no
intermediate becomes a big int on any port. `FEATURES` names the outputs in order
(axis-major: x_mean, x_std, ..., z_mad). `host_features.py` computes the same
numbers with numpy; tests check that both agree exactly.

`Scaler` standardises the integer features into the network's float input
(`(f - mean) / scale` with the training set's statistics); it writes into its
own preallocated `array('f')` but, being float arithmetic, allocates the float
results (as every float operation does on the boards).
"""

from array import array

NAMES = ("mean", "std", "min", "max", "rms", "zc", "mad")
AXES = ("x", "y", "z")
FEATURES = tuple(a + "_" + n for a in AXES for n in NAMES)
CLIP_MG = 16000
MAX_WINDOW = 1024


def isqrt(v):
    """floor(sqrt(v)) for an int v >= 0 (Newton's method; 0 for v <= 0)."""
    if v <= 0:
        return 0
    x = v
    y = (x + 1) >> 1
    while y < x:
        x = y
        y = (x + v // x) >> 1
    return x


class Extractor:
    """Features of windows of `n` samples.

    `extract(window)` returns `self.out`, an `array('i')` of len(FEATURES)
    values that the next call overwrites (copy it to keep it).
    """

    def __init__(self, n):
        if type(n) is not int or not 2 <= n <= MAX_WINDOW:
            raise ValueError("window length: expected an int in 2..%d, got %r" % (MAX_WINDOW, n))
        self.n = n
        self.out = array("i", bytes(4 * len(FEATURES)))

    def extract(self, window):
        """Features of `window` (array('h') of 3 * n mg values, x y z interleaved)."""
        n = self.n
        if len(window) != 3 * n:
            raise ValueError(
                "window: expected %d values (3 axes x %d samples), got %d" % (3 * n, n, len(window))
            )
        out = self.out
        end = 3 * n
        for axis in range(3):
            o = axis * 7
            # pass 1: sum, min, max
            s = 0
            lo = CLIP_MG
            hi = 0 - CLIP_MG
            for i in range(axis, end, 3):
                v = window[i]
                if v > CLIP_MG:
                    v = CLIP_MG
                elif v < 0 - CLIP_MG:
                    v = 0 - CLIP_MG
                s += v
                if v < lo:
                    lo = v
                if v > hi:
                    hi = v
            mean = s // n
            # pass 2: spread, energy, zero crossings, jerk
            # sums of squares / n kept exact as quotient + remainder (no big ints)
            var = var_r = 0
            sq = sq_r = 0
            zc = 0
            jerk = 0
            prev = 0
            neg_prev = False
            for i in range(axis, end, 3):
                v = window[i]
                if v > CLIP_MG:
                    v = CLIP_MG
                elif v < 0 - CLIP_MG:
                    v = 0 - CLIP_MG
                d = v - mean
                t = d * d
                var += t // n
                var_r += t % n
                if var_r >= n:
                    var += 1
                    var_r -= n
                t = v * v
                sq += t // n
                sq_r += t % n
                if sq_r >= n:
                    sq += 1
                    sq_r -= n
                neg = d < 0
                if i != axis:
                    if neg != neg_prev:
                        zc += 1
                    step = v - prev
                    jerk += step if step >= 0 else 0 - step
                neg_prev = neg
                prev = v
            out[o] = mean
            out[o + 1] = isqrt(var)
            out[o + 2] = lo
            out[o + 3] = hi
            out[o + 4] = isqrt(sq)
            out[o + 5] = zc
            out[o + 6] = jerk // (n - 1)
        return out


class Scaler:
    """(features - mean) / scale into a preallocated array('f').

    `apply(features)` returns `self.out`, reused by the next call.
    """

    def __init__(self, mean, scale):
        k = len(FEATURES)
        if len(mean) != k or len(scale) != k:
            raise ValueError(
                "scaler: expected %d means and %d scales, got %d and %d" % (k, k, len(mean), len(scale))
            )
        self.mean = array("f", mean)
        self.inv = array("f", bytes(4 * k))
        for i in range(k):
            if not scale[i] > 0:
                raise ValueError("scaler scale[%d] (%s): expected > 0, got %r" % (i, FEATURES[i], scale[i]))
            self.inv[i] = 1.0 / scale[i]
        self.out = array("f", bytes(4 * k))

    def apply(self, features):
        mean, inv, out = self.mean, self.inv, self.out
        for i in range(len(out)):
            out[i] = (features[i] - mean[i]) * inv[i]
        return out


class Int8Input:
    """Standardise and quantize the integer features straight into an int8 network's
    input domain, with integers only: `apply(features)` allocates nothing.

    The int8 network (nanonn.int8.network.QNetwork, input domain `in_scale`, `in_zp`) wants
    q_i = clamp(round((f_i - mean_i) / scale_i / in_scale) + in_zp, -128, 127).
    With step_i = scale_i * in_scale (feature units per int8 step), that is
    floor(f_i * m_i + b_i) >> s_i with m_i = round(2^s_i / step_i) and
    b_i = round((in_zp + 0.5 - mean_i / step_i) * 2^s_i), computed once here in
    floats; f_i is first clipped to the range that maps into [-128, 127], so each
    of |f_i * m_i| and |b_i| stays below 2^29 (s_i is the largest shift in 0..24
    that keeps them there): no big ints. Rounds ties up where TFLite rounds them
    away from zero, and m_i is rounded: within one step of the float quantizer.

    `apply` returns `self.out`, an `array('b')` reused by the next call.
    """

    def __init__(self, mean, scale, in_scale, in_zp):
        import math

        k = len(FEATURES)
        if len(mean) != k or len(scale) != k:
            raise ValueError(
                "int8 input: expected %d means and %d scales, got %d and %d" % (k, k, len(mean), len(scale))
            )
        if not in_scale > 0:
            raise ValueError("int8 input in_scale: expected > 0, got %r" % in_scale)
        if type(in_zp) is not int or not -128 <= in_zp <= 127:
            raise ValueError("int8 input in_zp: expected an int in [-128, 127], got %r" % in_zp)
        self.m = array("i", bytes(4 * k))
        self.b = array("i", bytes(4 * k))
        self.lo = array("i", bytes(4 * k))
        self.hi = array("i", bytes(4 * k))
        self.s = bytearray(k)
        self.out = array("b", bytes(k))
        limit = 1 << 29
        for i in range(k):
            if not scale[i] > 0:
                raise ValueError(
                    "int8 input scale[%d] (%s): expected > 0, got %r" % (i, FEATURES[i], scale[i])
                )
            step = scale[i] * in_scale
            lo = max(0 - 2 * CLIP_MG, math.floor(mean[i] + (-128.5 - in_zp) * step))
            hi = min(2 * CLIP_MG, math.ceil(mean[i] + (127.5 - in_zp) * step))
            top = max(abs(lo), abs(hi))
            for s in range(24, -1, -1):
                m = int(round((1 << s) / step))
                b = int(math.floor((in_zp + 0.5 - mean[i] / step) * (1 << s) + 0.5))
                if top * m < limit and abs(b) < limit and m > 0:
                    break
            else:
                raise ValueError(
                    "int8 input %s: no shift fits (mean %r, scale %r, in_scale %r)"
                    % (FEATURES[i], mean[i], scale[i], in_scale)
                )
            self.m[i], self.b[i], self.s[i], self.lo[i], self.hi[i] = m, b, s, lo, hi

    def apply(self, features):
        """int8 inputs for `features`: len(FEATURES) ints (`Extractor.extract`'s
        array('i'), or a list, tuple, other integer array or memoryview); anything
        else raises TypeError (a float feature: standardise with `Scaler`) or
        ValueError (another length)."""
        _check_features(features, len(self.out))
        # one name per line: unpacking more than 3 values builds a tuple (allocates)
        m = self.m
        b = self.b
        s = self.s
        lo = self.lo
        hi = self.hi
        out = self.out
        for i in range(len(out)):
            f = features[i]
            if f < lo[i]:
                f = lo[i]
            elif f > hi[i]:
                f = hi[i]
            q = (f * m[i] + b[i]) >> s[i]
            if q < -128:
                q = -128
            elif q > 127:
                q = 127
            out[i] = q
        return out


def _check_features(features, k):
    """Raise unless `features` is a sequence of `k` ints (allocates nothing when it is)."""
    t = type(features)
    if t is not list and t is not tuple and t is not array and t is not memoryview:
        raise TypeError(
            "int8 input features: expected a list, tuple, array or memoryview of %d ints, got %s"
            % (k, t.__name__)
        )
    if len(features) != k:
        raise ValueError("int8 input features: expected %d values, got %d" % (k, len(features)))
    i = 0
    while i < k:
        if type(features[i]) is not int:
            raise TypeError(
                "int8 input features[%d] (%s): expected an int, got %s"
                % (i, FEATURES[i], type(features[i]).__name__)
            )
        i += 1
