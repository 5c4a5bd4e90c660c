"""32-bit safety of the int8 kernels: the plain-Python kernels (op for op the
arithmetic of the viper kernels) run on checked ints that raise as soon as any
intermediate leaves the signed 32-bit range, on worst-case inputs; layers
whose worst case does not fit are rejected when built. And their float-input
quantizer (float arithmetic, not checked ints) against the oracle on float32
values of every exponent."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from nanonn_tools import qreference
from support import MPY

sys.path.insert(0, str(MPY))
from nanonn.int8 import kernels_py as qkernels  # noqa: E402  (the device package, on CPython)
from nanonn.int8.multiplier import scales_multiplier  # noqa: E402
from nanonn.int8.network import QDense  # noqa: E402

LO, HI = -(1 << 31), (1 << 31) - 1


class Overflow(AssertionError):
    pass


def _check(v):
    if not LO <= v <= HI:
        raise Overflow("intermediate %d outside int32" % v)
    return I32(v)


class I32(int):
    """An int whose every arithmetic result must fit a signed 32-bit int."""

    def __neg__(self):
        return _check(-int(self))


for _name in ("add", "sub", "mul", "lshift", "rshift", "and", "or", "xor", "floordiv"):
    for _fmt in ("__%s__", "__r%s__"):
        _op = _fmt % _name

        def _make(op):
            base = getattr(int, op)
            return lambda a, b: _check(base(int(a), int(b)))

        setattr(I32, _op, _make(_op))


def _c(values):
    return [I32(int(v)) for v in values]


def test_checked_int_detects_overflow():
    with pytest.raises(Overflow):
        _ = I32(1 << 30) * 2
    with pytest.raises(Overflow):
        _ = 1 << I32(31)
    with pytest.raises(Overflow):
        _ = I32(HI) + 1
    assert I32(HI) - 1 == HI - 1


def _worst_dot(n, seed):
    """Worst-case accumulators: acc0 at the largest allowed magnitude and inputs
    that push every partial sum the same way."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, n)
    w[: min(n, 2)] = (127, -127)[: min(n, 2)]
    absum = int(np.abs(w).sum())
    room = HI - 255 * absum
    pos = np.where(w > 0, 255, 0)  # partial sums only grow
    neg = np.where(w < 0, 255, 0)  # partial sums only fall
    return w, [(room, pos), (-room, neg)]


@pytest.mark.parametrize("n", [1, 8, 784, 4096])
def test_dot_worst_case_within_int32(n):
    w, cases = _worst_dot(n, n)
    wb = _c(w & 0xFF)
    for acc0, x in cases:
        acc = [I32(0)]
        qkernels.dot(_c(x), wb, [I32(acc0)], acc, n, 1)
        assert acc[0] == acc0 + int(np.dot(w, x))
        assert LO <= acc[0] <= HI


def test_mbqm_within_int32_on_extremes():
    accs = [0, 1, -1, HI, -HI, 1 << 30, -(1 << 30), (1 << 16) - 1, -(1 << 16) + 1, 12345677, -98765431]
    mults = [0, 1 << 30, HI, (1 << 30) + 12345, HI - 65535]
    triples = []
    for a in accs:
        for m in mults:
            for s in range(-31, 31):
                if abs(a) << max(s, 0) <= HI:  # the layer bound guarantees this for left shifts
                    triples.append((a, m, s))
    n = len(triples)
    mult = _c([t[1] for t in triples])
    shift = _c([t[2] & 0xFF for t in triples])
    t = np.array(triples, dtype=np.int64)
    for kernel, oracle in ((qkernels.mbqm, qreference.mbqm), (qkernels.mbqm_dr, qreference.mbqm_dr)):
        acc = _c(t[:, 0])
        kernel(acc, mult, shift, mult, shift, 1, n)
        assert [int(v) for v in acc] == oracle(t[:, 0], t[:, 1], t[:, 2]).tolist()


def test_softmax_and_ratio_within_int32_at_the_unit_limit():
    n = 16383  # the documented maximum: the sum stays below 2^30
    table = _c([65536] + [0] * 255)
    y = _c([200] * n)
    e = _c([0] * n)
    s = qkernels.softmax(y, e, table, n)
    assert s == n * 65536
    out = [0.0]
    qkernels.div_f32(_c([65535]), I32((1 << 30) - 1), out, 1)
    assert out[0] == np.float32(65535 / ((1 << 30) - 1))


def test_requant_chain_of_a_layer_at_its_bound():
    """A whole layer (dot, mbqm, clamp8, leaky offset) at the largest weights and inputs."""
    n, u = 784, 4
    w = np.full((u, n), 127)
    w[1] = -127
    w[2, ::2] = -127
    wb = _c(w.ravel() & 0xFF)
    acc0 = _c([-(127 * 128 * n), 127 * 128 * n, 0, 5])
    acc = _c([0] * u)
    y = _c([0] * u)
    qkernels.dot(_c([255] * n), wb, acc0, acc, n, u)
    mult = _c([HI] * u)
    shift = _c([0xFF & -20] * u)
    qkernels.mbqm(acc, mult, shift, mult, shift, 1, u)
    qkernels.clamp8(acc, y, u, I32(-128), I32(-128), I32(127))
    qkernels.offset(y, acc, u, I32(127))
    assert all(0 <= v <= 255 for v in y)


def _params(n, units, w, bias, out_scale=0.1):
    mult, shift = scales_multiplier(0.02, 0.01, out_scale)
    return dict(
        inputs=n,
        units=units,
        w=[int(v) for v in w],
        w_scale=[0.01] * units,
        bias=bias,
        in_scale=0.02,
        in_zp=-128,
        out_scale=out_scale,
        out_zp=0,
        mult=[mult] * units,
        shift=[shift] * units,
    )


def test_from_params_rejects_an_overflowing_layer():
    n = 4096
    w = [127] * n
    room = HI - 255 * 127 * n  # acc0 = bias - 0 * rowsum here (in_zp = -128)
    QDense.from_params(**_params(n, 1, w, [room]))
    with pytest.raises(ValueError, match="exceeds int32"):
        QDense.from_params(**_params(n, 1, w, [room + 1]))
    p = _params(n, 1, w, [0], out_scale=2e-6)  # real 100: shift 7 multiplies the bound
    assert p["shift"] == [7]
    with pytest.raises(ValueError, match="exceeds int32"):
        QDense.from_params(**p)


@pytest.mark.parametrize("scale", [1e-6, 0.004, 0.1, 1.0, 90.0])
def test_softmax_tflite_within_int32(scale):
    """TFLite's softmax emulated on float32 bits: at the unit limit (the largest sum) and
    with tables holding subnormal and zero entries, every intermediate stays in int32
    and the result equals the numpy float32 oracle."""
    from nanonn_tools.converters import _tflite_int8

    table = _tflite_int8.softmax_table(scale, 1.0)
    rng = np.random.default_rng(1)
    for n, rows in (
        (16383, [np.full(16383, 127), rng.integers(-128, 128, 16383)]),
        (7, rng.integers(-128, 128, (20, 7))),
    ):
        for row in rows:
            y = _c(np.asarray(row) + 128)
            qkernels.softmax_tfl(y, _c(table), I32(n))
            assert [int(v) - 128 for v in y] == qreference.tflite_softmax(table, np.asarray(row)[None])[
                0
            ].tolist()


def test_rescale_within_int32():
    """The FC requantization (84-bit product in 31-bit words, float64 rounding emulated) on
    checked ints: extremes of the 32-bit bound, ties and near-ties (tests/test_quant.py's cases)."""
    from test_quant import rescale_cases, rescale_oracle

    cases = rescale_cases(np.random.default_rng(3))
    n = len(cases)
    acc = _c([c[0] for c in cases])
    qkernels.rescale(
        acc, _c([c[1] for c in cases]), _c([c[2] for c in cases]), _c([c[3] for c in cases]), I32(n)
    )
    assert [int(v) for v in acc] == rescale_oracle(cases)


@pytest.mark.parametrize("F", [-107, -10, 0, 8, 21, 29, 30, 31, 40, 100, 147, 150])
def test_f32_to_fixed_matches_the_oracle(F):
    """The float input quantizer of the plain-Python kernels (ldexp scaling, no
    frexp) on float32 values: random bit patterns (every exponent, subnormals),
    values near saturation and rounding ties for this F, infinities and NaN."""
    from array import array

    rng = np.random.default_rng(F + 200)
    bits = rng.integers(0, 1 << 32, 20000, dtype=np.uint64).astype(np.uint32)
    scale = np.float64(2.0) ** -F
    near = rng.uniform(-1, 1, 20000) * np.exp2(rng.integers(-30, 34, 20000)) * scale
    ties = (rng.integers(-(1 << 24), 1 << 24, 5000) + 0.5) * scale
    edges = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 2.0**30 * scale, 2.0**29 * scale])
    with np.errstate(over="ignore"):
        xs = np.concatenate(
            [
                bits.view(np.float32),
                near.astype(np.float32),
                ties.astype(np.float32),
                edges.astype(np.float32),
            ]
        )
    acc = array("i", bytes(4 * len(xs)))
    qkernels.f32_to_fixed(array("f", xs.tobytes()), acc, len(xs), F)
    with np.errstate(invalid="ignore"):  # NaN bit patterns
        want = qreference.input_fixed(xs, F)
    bad = np.flatnonzero(np.array(acc) != want)
    assert bad.size == 0, "F=%d: %d wrong, first x=%r: got %d, want %d" % (
        F,
        bad.size,
        float(xs[bad[0]]),
        acc[bad[0]],
        want[bad[0]],
    )


def _dense_block(n, units, acc0s, zp, q, k, mag=HI):
    """A `dense` parameter block (header and unit records) as a list of checked ints."""
    from nanonn.int8.network import _HEAD, _REC, _unit_record

    p = [0] * (_HEAD + _REC * units)
    p[:_HEAD] = [n, units, zp, -128, 127, 0]
    for j, a0 in enumerate(acc0s):
        _unit_record(p, _HEAD + _REC * j, a0, mag, q, k)
    return _c(p)


@pytest.mark.parametrize("n", [1, 17, 784, 4096])
def test_dense_worst_case_within_int32(n):
    """The fused layer kernel (offset-binary multiply-accumulate from acc0 - 128 * sum(x),
    then the requantization bracket or the exact path) on checked ints, at both ends of
    the bound QDense checks: the lowest start (acc0 = 32640 n - 2^31 + 1, every input 255,
    weights -128) and the highest accumulator (weights 127)."""
    from nanonn.int8.multiplier import fc_real

    q, k = fc_real(0.02, 0.01, 0.1)[:2]
    low = 32640 * n - HI
    high = HI - 255 * 127 * n
    cases = [(low, -128), (high, 127), (0, -128), (0, 127)]
    for a0, wv in cases:
        w = _c([wv & 0xFF] * n)
        y = _c([0])
        qkernels.dense(w, _c([255] * n), y, _dense_block(n, 1, [a0], 0, q, k), y)
        want = qreference.fc_requant(np.array([a0 + wv * 255 * n]), _Scales(0.02, [0.01], 0.1))
        assert int(y[0]) - 128 == int(np.clip(want[0], -128, 127))


class _Scales:
    def __init__(self, in_scale, w_scale, pre_scale):
        self.in_scale, self.w_scale, self.pre_scale = (
            np.float32(in_scale),
            np.float32(w_scale),
            np.float32(pre_scale),
        )


def test_dense_requantization_within_int32():
    """`dense`'s requantization on checked ints for the edge cases of tests/test_quant.py
    (near every rounding boundary, extremes, saturation), against the oracle."""
    from test_quant import _edge_cases, rescale_oracle

    for a, qh, ql, k, zp in _edge_cases()["dense"]:
        y = _c([0])
        qkernels.dense(_c([0]), _c([128]), y, _dense_block(1, 1, [a], zp, (qh << 22) | ql, k), y)
        assert int(y[0]) - 128 == int(np.clip(rescale_oracle([[a, qh, ql, k]])[0] + zp, -128, 127))
