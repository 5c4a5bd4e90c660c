"""TFLite's requantization multipliers, computed exactly in integers (docs/quantization.md).

What the int8 layers derive at load (`network`) and the quantizer uses (`quantize`), apart so that
loading an int8 model does not import the quantizer. Every function here allocates (big
ints, small tuples): they run when a layer is built, never per inference."""

from array import array


def f32_bits(v):
    """The IEEE-754 bits of float32(v) as an int."""
    return int.from_bytes(bytes(array("f", [v])), "little")


def f32_parts(v):
    """(m, e) with float32(v) = m * 2^e exactly, m >= 0 an int (sign dropped)."""
    b = f32_bits(v)
    ex = (b >> 23) & 0xFF
    m = b & 0x7FFFFF
    if ex == 0:
        return m, -149
    return m | 0x800000, ex - 150


def bitlen(v):
    """The number of bits of the int v >= 0 (int.bit_length, which MicroPython lacks)."""
    n = 0
    while v:
        v >>= 1
        n += 1
    return n


def real53(num, den, e2):
    """The float64 value of num / den * 2^e2 (num, den > 0 ints; nearest even), exactly:
    (q, k) with the value = q * 2^(e2 - k), q in [2^52, 2^53)."""
    if num <= 0 or den <= 0:
        raise ValueError("quantize_multiplier: expected num, den > 0, got %r, %r" % (num, den))
    k = 52 + bitlen(den) - bitlen(num)
    while True:  # q = floor(num * 2^k / den) in [2^52, 2^53)
        if k >= 0:
            q, rem = divmod(num << k, den)
            d = den
        else:
            d = den << (0 - k)
            q, rem = divmod(num, d)
        if q < 1 << 52:
            k += 1
        elif q >= 1 << 53:
            k -= 1
        else:
            break
    if 2 * rem > d or (2 * rem == d and q & 1):  # double: round to nearest even
        q += 1
        if q == 1 << 53:
            q = 1 << 52
            k -= 1
    return q, k


def _multiplier_of(q, k, e2):
    """TFLite's (mult, shift) of the float64 value q * 2^(e2 - k)."""
    shift = e2 - k + 53  # frexp: real = (q / 2^53) * 2^shift
    m = (q + (1 << 21)) >> 22  # round(frac * 2^31), half away from zero
    if m == 1 << 31:
        m = 1 << 30
        shift += 1
    if shift < -31:
        return 0, 0
    return m, shift


def quantize_multiplier(num, den, e2):
    """TFLite QuantizeMultiplier of real = num / den * 2^e2 (num, den > 0 ints),
    with TFLite's double rounding of `real` emulated exactly in integers.
    Returns (mult, shift): real ~= mult * 2^(shift - 31), mult 0 or in [2^30, 2^31)."""
    q, k = real53(num, den, e2)
    return _multiplier_of(q, k, e2)


def fc_real(in_scale, w_scale, pre_scale):
    """The requantization of a dense layer's unit: (q, K, mult, shift) where
    double(in_scale) * double(w_scale) / double(pre_scale) = q * 2^-K exactly
    (q: its 53-bit significand) and (mult, shift) is its TFLite QuantizeMultiplier."""
    m1, e1 = f32_parts(in_scale)
    m2, e2 = f32_parts(w_scale)
    m3, e3 = f32_parts(pre_scale)
    e = e1 + e2 - e3
    q, k = real53(m1 * m2, m3, e)
    mult, shift = _multiplier_of(q, k, e)
    return q, k - e, mult, shift


def scales_multiplier(in_scale, w_scale, out_scale):
    """quantize_multiplier of double(in_scale) * double(w_scale) / double(out_scale)."""
    m1, e1 = f32_parts(in_scale)
    m2, e2 = f32_parts(w_scale)
    m3, e3 = f32_parts(out_scale)
    return quantize_multiplier(m1 * m2, m3, e1 + e2 - e3)


def float_multiplier(real):
    """quantize_multiplier of a float32 value (exact)."""
    m, e = f32_parts(real)
    return quantize_multiplier(m, 1, e)


def input_quantizer(in_scale):
    """(F, mult, shift) of the float-input quantizer: F is the largest int with
    2^(30 - F) >= 512 * in_scale; (mult, shift) = QuantizeMultiplier(2^-F / in_scale)."""
    m, e = f32_parts(in_scale)
    if m < 0x800000:
        raise ValueError("in_scale: expected a normal float32 > 0, got %r" % in_scale)
    F = -2 - e if m == 0x800000 else -3 - e
    mult, shift = quantize_multiplier(1, m, 0 - F - e)
    return F, mult, shift


def leaky_table(pre_zp, out_zp, mp, sp, mn, sn):
    """leaky_relu as a 256-entry int8 table (bytes of two's complement) indexed by the
    pre-activation q + 128: clamp(out_zp + MBQM(q - pre_zp), -128, 127) with
    (mult, shift) = (mp, sp) for q >= pre_zp, else (mn, sn), MBQM rounding as gemmlowp
    (doubling high multiply, then a rounding divide: TFLite's LEAKY_RELU, the kernels'
    `mbqm_dr`), in exact integers. mp, mn: int32 in [0, 2^31); sp, sn: shifts in
    [-31, 23]. Allocates the table (and big ints on a 32-bit port)."""
    y = bytearray(256)
    for i in range(256):
        a = i - 128 - pre_zp
        m, s = (mp, sp) if a >= 0 else (mn, sn)
        r = 0 - s if s < 0 else 0
        if s > 0:
            a = a << s
        p = a * m  # m >= 0: the product has the sign of a
        v = (p + (1 << 30)) >> 31 if p >= 0 else 0 - ((0 - p + (1 << 30) - 1) >> 31)
        if r > 0:  # rounding divide by 2^r, ties away from zero
            mask = (1 << r) - 1
            thr = (mask >> 1) + (1 if v < 0 else 0)
            rem = v & mask
            v = (v >> r) + (1 if rem > thr else 0)
        v += out_zp
        y[i] = (-128 if v < -128 else 127 if v > 127 else v) & 0xFF
    return y
