"""int8 path: the device (viper and plain-Python kernels, MicroPython and CPython)
against the numpy int8 oracle, bit for bit; multipliers against TFLite's
double-precision QuantizeMultiplier; accuracy on scikit-learn's digits."""

from __future__ import annotations

import copy
import functools
import json
import math

import numpy as np
import pytest

from nanonn_tools import NanonnError, qreference, reference
from nanonn_tools.model import DenseSpec, ModelSpec
from nanonn_tools.quantize import (
    QuantModelSpec,
    input_quantizer,
    quantize_model,
    scales_multiplier,
)
from support import once, prefetch, run_device

F32 = np.float32
ACTS = ("linear", "relu", "leaky_relu", "sigmoid", "tanh", "softplus")


def _net(sizes, acts, seed, alpha=0.01):
    layers = reference.random_network(sizes, acts, seed=seed)
    for layer in layers:
        layer["w"] = layer["w"].astype(F32)
        layer["b"] = layer["b"].astype(F32)
        layer["alpha"] = alpha
    spec = ModelSpec([DenseSpec(w=l["w"], b=l["b"], activation=l["activation"], alpha=alpha) for l in layers])
    return layers, spec


def _cases():
    """(name, sizes, activations, seed): every activation, shapes 1x1 to 784x64."""
    cases = []
    for i, act in enumerate(ACTS):
        cases.append(("%s-5-7-4" % act, [5, 7, 4], [act, act], 10 + i))
        cases.append(("%s-1x1" % act, [1, 1], [act], 20 + i))
    cases.append(("softmax-6-9-5", [6, 9, 5], ["tanh", "softmax"], 31))
    cases.append(("softmax-1x1", [1, 1], ["softmax"], 32))
    cases.append(("leaky-784x64", [784, 64], ["leaky_relu"], 33))
    # kernels_wide_viper: windows of 256 inputs, then 16 at the next window, then the rest, on
    # the network's input and on a hidden layer's output
    cases.append(("wide-300-272-3", [300, 272, 3], ["relu", "leaky_relu"], 36))
    cases.append(("mlp-64-32-16-4", [64, 32, 16, 4], ["relu", "relu", "softmax"], 34))
    cases.append(("sigmoid-33x17", [33, 17], ["sigmoid"], 35))
    return cases


def _inputs(n, seed, count=6):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.5, 1.0, (24, n)).astype(F32)
    X8 = rng.integers(-128, 128, (count, n))
    X8[0] = 127
    X8[1] = -128
    XF = np.concatenate([X[:count], rng.uniform(-3, 3, (2, n)).astype(F32)])
    return X, X8, XF


def _prepared():
    return once("quant_prepared", _prepare)


def _prepare():
    out = []
    for name, sizes, acts, seed in _cases():
        layers, spec = _net(sizes, acts, seed, alpha=0.1 if seed % 2 else 0.01)
        X, X8, XF = _inputs(sizes[0], seed)
        out.append((name, layers, spec, X, X8, XF, quantize_model(spec, X)))
    return out


def prefetch_items(items):
    """Start the device runs the selected items use, in the background (conftest.py)."""
    for runtime in dict.fromkeys(
        item.callspec.params.get("runtime") for item in items if hasattr(item, "callspec")
    ):
        if runtime is not None:
            prefetch(("quant_device", runtime), _run_device, runtime)


def _device(runtime):
    return once(("quant_device", runtime), _run_device, runtime)


def _run_device(runtime):
    cases = []
    specs = []
    for _, layers, _, X, X8, XF, qspec in _prepared():
        cases.append(
            {
                "layers": [
                    {"w": l["w"].tolist(), "b": l["b"].tolist(), "act": l["activation"], "alpha": l["alpha"]}
                    for l in layers
                ],
                "X": X.tolist(),
                "X8": X8.tolist(),
                "XF": XF.tolist(),
            }
        )
        specs.append(
            {"layers": [q.device_params() for q in qspec.layers], "X8": X8.tolist(), "XF": XF.tolist()}
        )
    proc = run_device(
        runtime,
        ["tests/device/quant_driver.py"],
        stdin=json.dumps({"cases": cases, "specs": specs, "edge": _edge_cases()}),
        heap="64M",  # the payload's floats (lists of boxed floats, read at once)
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = {"cases": [{} for _ in cases], "specs": [{} for _ in specs], "edge": {}}
    for line in proc.stdout.splitlines():
        d = json.loads(line)
        if "case" in d:
            out["cases"][d["case"]][d["kernels"]] = d
        elif "spec" in d:
            out["specs"][d["spec"]][d["kernels"]] = d
        elif "edge" in d:
            out["edge"][d["edge"]] = d["result"]
        else:
            out["kernels"] = d["kernels"]
    return out


@functools.cache
def _edge_cases():
    """Inputs where 32-bit emulations break: rounding ties, extremes, saturation."""
    rng = np.random.default_rng(7)
    top = (1 << 31) - 1
    triples = []
    accs = [0, 1, -1, 2, -2, top, -top]
    for k in range(1, 31):
        accs += [1 << k, -(1 << k), (1 << k) - 1, 1 - (1 << k), (1 << k) + 1, -(1 << k) - 1]
    accs += rng.integers(-top, top, 40).tolist()
    mults = [0, 1 << 30, top, (1 << 30) + 1] + rng.integers(1 << 30, top, 4).tolist()
    for a in accs:
        for m in mults:
            for s in (0, -1, -7, -16, -30, -31):
                triples.append([int(a), int(m), s])
    for a in (0, 1, -1, 255, -255, 12345, -12345, (1 << 23) - 1):
        for s in range(1, 8):
            triples.append([a, 1 << 30, s])
            triples.append([a, top, s])
    for k in range(1, 31):  # products = 2^30 mod 2^31 (the ties of gemmlowp's double rounding)
        for sign in (1, -1):
            for dm in (-1, 0, 1):
                for s in (0, -1, -5):
                    triples.append([sign << k, (1 << 30) + (1 << (30 - k)) + dm, s])
    for k in range(1, 31):  # exact ties of the single rounding with k = 31 - s < 31: a * m = odd * 2^(k-1)
        for j in (0, 1, 5):
            for sign in (1, -1):
                if (2 * j + 1) << (31 - k) <= top:
                    triples.append([sign * (2 * j + 1), (1 << 30) + (1 << (k - 1)), 31 - k])
    for r in range(1, 31):  # exact ties with k = 31 + r (and their neighbours)
        for j in (0, 1, 5):
            for sign in (1, -1):
                a = sign * (2 * j + 1) << r
                if abs(a) <= top:
                    triples.append([a, 1 << 30, -r])
                    triples.append([a + sign, 1 << 30, -r])
    floats = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, -2.5, 3.4e38, -3.4e38, 1e-45, -1e-45, 1.17549435e-38]
    floats += [float(v) for v in rng.normal(0, 4, 80).astype(F32)]
    floats += [
        float(F32(v)) for v in (2.0**-21 * 3, 2.0**-22 * 5, 2.0**-23 * 7, 1023.5, 2.0**9, 2.0**10 + 0.5)
    ]
    ratios = [[0, 65536], [65536, 65536], [1, 3], [2, 3], [65536, 65536 * 3], [1, 65537]]
    ratios += [[int(e), int(e + d)] for e, d in zip(rng.integers(1, 65537, 40), rng.integers(0, 1 << 29, 40))]
    ratios += [[(1 << 24) + 1, 1 << 25], [(1 << 24) + 3, 1 << 25], [3, 1 << 26]]  # ties to even
    rescale = rescale_cases(rng)
    return {
        "mbqm": triples,
        "rescale": rescale,
        "dense": dense_cases(rescale),
        "F": [-10, 0, 8, 21, 40, 150],
        "floats": floats,
        "ratios": ratios,
    }


def rescale_cases(rng) -> list:
    """[acc, qh, ql, k] for the FC requantization: extremes within the 32-bit bound,
    exact ties, and near-ties of the float64 product (ratios like 1/12, where a
    31-bit multiplier rounds the other way)."""
    top = (1 << 31) - 1
    out = []
    scales = [
        (0.5, 0.5, 3.0),
        (0.5, 0.5, 6.0),
        (0.25, 0.5, 5.0),
        (0.1, 0.5, 0.3),
        (0.5, 0.5, 1.0),
        (0.2, 0.5, 0.6),
    ]
    scales += [tuple(float(F32(v)) for v in 10 ** rng.uniform(-3, 0, 3)) for _ in range(20)]
    scales += [(1.0, 1.0, 2.0**-29), (1.0, 1.0, 1.5 * 2.0**-28), (2.0**-40, 1.0, 1.0)]  # shift 30, 29; mult 0
    for a, b, c in scales:
        real = np.float64(F32(a)) * np.float64(F32(b)) / np.float64(F32(c))  # as TFLite computes it
        frac, e = np.frexp(real)
        q, k = int(frac * 2.0**53), 53 - int(e)
        shift = scales_multiplier(F32(a), F32(b), F32(c))[1]
        lim = top >> max(shift, 0)
        accs = [0, 1, -1, lim, -lim, lim - 1, 1 - lim] + rng.integers(-lim, lim, 10).tolist()
        accs += [
            sign * (6 * j + d)
            for sign in (1, -1)
            for j in range(1, 200, 37)
            for d in (0, 3)
            if 6 * j + d <= lim
        ]
        for acc in accs:
            out.append([int(acc), q >> 22, q & 0x3FFFFF, min(k, 255)])
    return out


def dense_cases(rescale) -> list:
    """[acc, qh, ql, k, zp] for `dense`'s requantization (its 31-bit bracket and the exact
    path): the rescale cases within acc0 - 128 * 128 of int32, and accumulators next to
    every 7th rounding boundary (h + 1/2) / R in [-140, 140]; zp puts the expected value
    near 0, so that a value off by one is not hidden by the clamp."""
    top = (1 << 31) - 1 - (1 << 14)
    out = []
    for acc, qh, ql, k in rescale:
        real = np.ldexp(float((qh << 22) + ql), -k)
        accs = [acc] if abs(acc) <= top else []
        for h in range(-140, 141, 7):
            mid = int(np.floor((h + 0.5) / real)) if real > 0 else 0
            accs += [a for a in range(mid - 2, mid + 3) if abs(a) <= top]
        for a in accs:
            v = rescale_oracle([[a, qh, ql, k]])[0]
            out.append([a, qh, ql, k, int(np.clip(-v, -128, 127))])
    return sorted(set(map(tuple, out)))


def rescale_oracle(cases) -> list:
    """round(double(acc) * R), half away from zero, in numpy float64 (R = significand * 2^-k is exact)."""
    c = np.array(cases, dtype=np.int64)
    real = np.ldexp((c[:, 1] * (1 << 22) + c[:, 2]).astype(np.float64), -c[:, 3])
    return qreference.round_away(c[:, 0].astype(np.float64) * real).tolist()


def _host_params(q):
    return {
        "w": q.w.ravel().tolist(),
        "w_scale": q.w_scale.tolist(),
        "bias": q.bias.tolist(),
        "mult": q.mult.tolist(),
        "shift": q.shift.tolist(),
        "scales": [F32(q.in_scale), F32(q.out_scale), F32(q.pre_scale)],
        "zps": [q.in_zp, q.out_zp, q.pre_zp],
        "leaky": [[q.mult_pos], q.shift_pos, [q.mult_neg], q.shift_neg]
        if q.activation == "leaky_relu"
        else None,
        "lut": None if q.lut is None else q.lut.tolist(),
        "exp_table": None if q.exp_table is None else q.exp_table.tolist(),
    }


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_kernel_sets(runtime):
    """The unix port compiles the viper kernels (a silent fallback would hide a compile error)."""
    expected = ["python", "viper"] if runtime == "micropython" else ["python"]
    assert _device(runtime)["kernels"] == expected


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
@pytest.mark.parametrize("index", range(len(_cases())), ids=[c[0] for c in _cases()])
def test_device_quantize_and_predict_bit_exact(runtime, index):
    """Network.quantize on the device gives the host's integers; predict_int8 and
    predict give the oracle's outputs exactly, with every kernel set."""
    name, _, _, _, X8, XF, qspec = _prepared()[index]
    got = _device(runtime)["cases"][index]
    want_params = [_host_params(q) for q in qspec.layers]
    want8 = qspec.predict_int8(X8).tolist()
    wantf = qspec.predict(XF)
    for kernels, res in got.items():
        for li, (dev, host) in enumerate(zip(res["params"], want_params)):
            dev["w_scale"] = [F32(v) for v in dev["w_scale"]]
            host["w_scale"] = [F32(v) for v in host["w_scale"]]
            dev["scales"] = [F32(v) for v in dev["scales"]]
            for key in host:
                assert dev[key] == host[key], "%s %s layer %d %s differs" % (kernels, name, li, key)
        assert res["int8"] == want8, "%s %s predict_int8" % (kernels, name)
        assert np.array_equal(np.asarray(res["float"], dtype=F32), wantf), "%s %s predict" % (kernels, name)


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_from_params_of_host_specs(runtime):
    """QDense.from_params(**QuantDenseSpec.device_params()) reproduces the oracle (the .nnm path)."""
    dev = _device(runtime)["specs"]
    for (name, _, _, _, X8, XF, qspec), got in zip(_prepared(), dev):
        for kernels, res in got.items():
            assert res["int8"] == qspec.predict_int8(X8).tolist(), "%s %s" % (kernels, name)
            assert np.array_equal(np.asarray(res["float"], dtype=F32), qspec.predict(XF)), "%s %s" % (
                kernels,
                name,
            )


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_kernel_edge_cases(runtime):
    """mbqm (11-bit limbs), mbqm_dr (16-bit halves), float->fixed (IEEE bits) and e/s (long division) of
    every kernel set against the oracle on ties, extremes and saturation."""
    edge = _edge_cases()
    t = np.array(edge["mbqm"], dtype=np.int64)
    want_mbqm = qreference.mbqm(t[:, 0], t[:, 1], t[:, 2]).tolist()
    want_dr = qreference.mbqm_dr(t[:, 0], t[:, 1], t[:, 2]).tolist()
    want_rescale = rescale_oracle(edge["rescale"])
    d = np.array(edge["dense"], dtype=np.int64)
    want_dense = np.clip(np.array(rescale_oracle(d[:, :4].tolist())) + d[:, 4], -128, 127).tolist()
    floats = np.array(edge["floats"], dtype=F32)
    want_ratio = [qreference.f32_ratio(e, s) for e, s in edge["ratios"]]
    c = np.array(edge["rescale"], dtype=np.int64)
    q = c[:, 1] * (1 << 22) + c[:, 2]
    mult, shift = (q + (1 << 21)) >> 22, 53 - c[:, 3]  # the 31-bit TFLite multiplier of each R
    usable = (mult < 1 << 31) & (shift >= -31)
    single = qreference.mbqm(c[:, 0], np.minimum(mult, (1 << 31) - 1), np.maximum(shift, -31))
    assert np.count_nonzero(usable & (single != np.array(want_rescale))) > 0  # near-ties are covered
    for kernels, got in _device(runtime)["edge"].items():
        for name, want in (("mbqm", want_mbqm), ("mbqm_dr", want_dr)):
            bad = [(tuple(x), w, g) for x, w, g in zip(edge["mbqm"], want, got[name]) if w != g]
            assert not bad, "%s %s: %d wrong, first %s" % (kernels, name, len(bad), bad[:3])
        assert got["rescale"] == want_rescale, kernels
        bad = [(c, w, g) for c, w, g in zip(edge["dense"], want_dense, got["dense"]) if w != g]
        assert not bad, "%s dense: %d of %d wrong, first %s" % (kernels, len(bad), len(bad), bad[:3])
        for F in edge["F"]:
            assert got["fixed"][str(F)] == qreference.input_fixed(floats, F).tolist(), "%s F=%d" % (
                kernels,
                F,
            )
        assert [F32(v) for v in got["ratios"]] == want_ratio, kernels


def _tflite_quantize_multiplier(d: float):
    """TFLite QuantizeMultiplier(double), written as in its C++."""
    if d == 0.0:
        return 0, 0
    q, shift = math.frexp(d)
    v = q * (1 << 31)
    q_fixed = int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)  # std::round (exact here)
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def test_multiplier_matches_tflite_double():
    rng = np.random.default_rng(5)
    scales = rng.uniform(-12, 3, (4000, 3))
    for a, b, c in 2.0**scales:
        a, b, c = F32(a), F32(b), F32(c)
        d = float(np.float64(a) * np.float64(b) / np.float64(c))
        assert scales_multiplier(a, b, c) == _tflite_quantize_multiplier(d), (a, b, c)
    # exact powers of two and the rounding edge q == 2^31
    assert scales_multiplier(F32(0.5), F32(1.0), F32(1.0)) == (1 << 30, 0)
    assert scales_multiplier(F32(1.0), F32(1.0), F32(1.0)) == (1 << 30, 1)
    assert scales_multiplier(F32(1.0), F32(1 - 2.0**-24), F32(1.0)) == _tflite_quantize_multiplier(
        1 - 2.0**-24
    )


def test_input_quantizer_is_round_to_nearest():
    """Float inputs land on round(x / in_scale) + zp except within 2^-21 of a tie."""
    spec = _prepared()[0][6]
    first = spec.layers[0]
    x = np.random.default_rng(1).uniform(-2, 2, (2000, first.inputs)).astype(F32)
    got = spec.quantize_input(x)
    exact = np.clip(np.floor(x.astype(np.float64) / F32(first.in_scale) + 0.5) + first.in_zp, -128, 127)
    assert np.array_equal(got, exact)
    F, m, s = input_quantizer(first.in_scale)
    assert 2.0 ** (30 - F) >= 512 * first.in_scale > 2.0 ** (29 - F)
    special = spec.quantize_input(np.array([[np.nan] + [np.inf] * (first.inputs - 1)], dtype=F32))
    assert special[0, 0] == first.in_zp and special[0, 1] == 127


def test_validate_names_the_field():
    qspec = copy.deepcopy(_prepared()[0][6])
    layer = qspec.layers[0]
    good = int(layer.mult[0])
    layer.mult[0] = 5
    with pytest.raises(NanonnError, match="mult"):
        qspec.validate()
    layer.mult[0] = good + 1  # in range, but not QuantizeMultiplier of the scales
    with pytest.raises(NanonnError, match=r"mult\[0\]/shift\[0\]: expected %d/" % good):
        qspec.validate()
    layer.mult[0] = good
    qspec.validate()
    layer.bias[0] = 2**31 - 1
    with pytest.raises(NanonnError, match="accumulator bound"):
        qspec.validate()
    other = _prepared()[2][6]  # relu-5-7-4: same shapes, another domain
    with pytest.raises(NanonnError, match="input domain"):
        QuantModelSpec([_prepared()[0][6].layers[0], other.layers[1]]).validate()


def test_quantized_close_to_float():
    """Sanity of the whole scheme: int8 outputs stay near the float network's."""
    for name, _, spec, X, _, _, qspec in _prepared():
        want = reference.predict(spec.reference_layers(), X)
        got = qspec.predict(X)
        span = max(1e-3, float(np.ptp(want)))
        assert np.abs(got - want).max() <= 0.08 * span, name


def test_digits_accuracy():
    """scikit-learn digits MLP: int8 loses <= 1 point of test accuracy, agrees on >= 99%."""
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(F32)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(Xtr, ytr)
    spec = ModelSpec(
        [
            DenseSpec(w=clf.coefs_[0].T.astype(F32), b=clf.intercepts_[0].astype(F32), activation="relu"),
            DenseSpec(w=clf.coefs_[1].T.astype(F32), b=clf.intercepts_[1].astype(F32), activation="softmax"),
        ]
    )
    qspec = quantize_model(spec, Xtr)
    pf = spec.predict(Xte).argmax(axis=1)
    pq = qspec.predict(Xte).argmax(axis=1)
    acc_f = float(np.mean(pf == yte))
    acc_q = float(np.mean(pq == yte))
    assert acc_f >= 0.9, acc_f
    assert acc_q >= acc_f - 0.01, (acc_f, acc_q)
    assert float(np.mean(pf == pq)) >= 0.99
