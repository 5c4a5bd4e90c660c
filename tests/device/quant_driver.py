"""Device side of tests/test_quant.py (MicroPython or CPython): reads JSON cases
on stdin, prints JSON lines with what the device computed.

Input: {"cases": [{"layers": [{"w", "b", "act", "alpha"}], "X": calibration
inputs, "X8": int8 inputs, "XF": float inputs}], "specs": [{"layers": [kwargs
of QDense.from_params], "X8": [...], "XF": [...]}]}. "edge": kernel edge cases (see _edge). Output: one JSON
line per (case or spec or edge set, kernel set): the quantized parameters and
the outputs of predict_int8 and predict, or the edge-case kernel outputs. Where viper
runs, "viper_wide" is the viper set with `kernels_wide_viper.dense` (what a Thumb-2 port
runs) forced on, and "viper" the set with it forced off, whatever the port.
"""

import gc
import json
import sys
from array import array

from nanonn import Dense, Network
from nanonn.errors import NO_NATIVE_CODE
from nanonn.float32.activations import LeakyReLU
from nanonn.int8 import kernels_py
from nanonn.int8 import network as qnetwork
from nanonn.int8.network import _HEAD, _REC, KERNELS, QDense, QNetwork, _unit_record, kernel_set

try:
    from nanonn.int8 import kernels_wide_viper
except NO_NATIVE_CODE:
    kernels_wide_viper = None

# the kernel sets tested: KERNELS, and the viper one with kernels_wide_viper's dense
VARIANTS = sorted(KERNELS) + (["viper_wide"] if kernels_wide_viper is not None and "viper" in KERNELS else [])


class _WideSet:
    """The viper kernel set with kernels_wide_viper's dense (for _edge)."""

    def __init__(self):
        self.dense = kernels_wide_viper.dense  # pyright: ignore[reportOptionalMemberAccess]

    def __getattr__(self, name):
        return getattr(kernel_set("viper"), name)


def _variant(name):
    """The kernels= name of a variant, with kernels_wide_viper forced on or off (QNetwork
    asks network._wide_kernels, which reads this cache)."""
    qnetwork._WIDE[:] = [kernels_wide_viper if name == "viper_wide" else None]
    return "viper" if name == "viper_wide" else name


def _sext(b):
    return (b ^ 0x80) - 0x80


def _params(layer):
    return {
        "w": [_sext(b) for b in layer.w],
        "w_scale": list(layer.w_scale),
        "bias": list(layer.bias),
        "mult": list(layer.mult),
        "shift": [_sext(b) for b in layer.shift],
        "scales": [layer.in_scale, layer.out_scale, layer.pre_scale],
        "zps": [layer.in_zp, layer.out_zp, layer.pre_zp],
        "leaky": [
            list(layer.mp),
            _sext(layer.sp[0]),
            list(layer.mn),
            _sext(layer.sn[0]),
        ]
        if layer.activation == "leaky_relu"
        else None,
        "lut": None if layer.lut is None else [_sext(b) for b in layer.lut],
        "exp_table": None if layer.exp_table is None else list(layer.exp_table),
    }


def _outputs(net, X8, XF):
    out8 = []
    for x in X8:
        out8.append(list(net.predict_int8(array("b", x))))
    outf = []
    for x in XF:
        outf.append(list(net.predict(x)))
    return out8, outf


def _float_net(layers):
    dense = []
    for spec in layers:
        w, b = spec["w"], spec["b"]
        flat = []
        for u in range(len(w)):
            flat.extend(w[u])
            flat.append(b[u])
        act = spec["act"]
        if act == "leaky_relu":
            act = LeakyReLU(spec.get("alpha", 0.01))
        dense.append(Dense(len(w), inputs=len(w[0]), activation=act, weights=flat))
    return Network(*dense)


def _edge(k, edge):
    """Kernel outputs for edge cases: mbqm and mbqm_dr triples, rescale cases, float inputs to fixed point,
    e/s ratios, dense requantizations (mbqm_dr and rescale: the plain-Python kernels, build-time only)."""
    triples = edge["mbqm"]
    n = len(triples)
    acc = array("i", [t[0] for t in triples])
    mult = array("i", [t[1] for t in triples])
    shift = bytearray([t[2] & 0xFF for t in triples])
    k.mbqm(acc, mult, shift, mult, shift, 1, n)
    reference = kernels_py  # rescale and mbqm_dr are not in the viper set (build time only)
    acc_dr = array("i", [t[0] for t in triples])
    reference.mbqm_dr(acc_dr, mult, shift, mult, shift, 1, n)
    fixed = {}
    for F in edge["F"]:
        xf = array("f", edge["floats"])
        fx = array("i", bytes(4 * len(xf)))
        k.f32_to_fixed(xf, fx, len(xf), F)
        fixed[str(F)] = list(fx)
    ratios = []
    for e, s in edge["ratios"]:
        out = array("f", [0.0])
        k.div_f32(array("i", [e]), s, out, 1)
        ratios.append(out[0])
    rs = edge["rescale"]  # [acc, qh, ql, k]
    racc = array("i", [r[0] for r in rs])
    reference.rescale(
        racc,
        array("i", [r[1] for r in rs]),
        array("i", [r[2] for r in rs]),
        bytearray([r[3] for r in rs]),
        len(rs),
    )
    dense = []  # one 1-input unit per case: w = 0 and x = 0 (offset-binary 128) leave acc = acc0
    p = array("i", bytes(4 * (_HEAD + _REC)))
    y = bytearray(1)
    for a, qh, ql, kk, zp in edge["dense"]:
        p[0], p[1], p[2], p[3], p[4], p[5] = 1, 1, zp, -128, 127, 0
        _unit_record(p, _HEAD, a, (1 << 31) - 1, (qh << 22) | ql, kk)
        k.dense(bytearray(1), bytearray([128]), y, p, y)
        dense.append(y[0] - 128)
    return {
        "mbqm": list(acc),
        "mbqm_dr": list(acc_dr),
        "rescale": list(racc),
        "dense": dense,
        "fixed": fixed,
        "ratios": ratios,
    }


def main():
    payload = json.loads(sys.stdin.read())
    print(json.dumps({"kernels": sorted(KERNELS)}))
    cases = payload.get("cases", [])
    for i in range(len(cases)):
        case = cases[i]
        net = _float_net(case["layers"])
        for name in VARIANTS:
            q = net.quantize(case["X"], kernels=_variant(name))
            out8, outf = _outputs(q, case["X8"], case["XF"])
            params = [_params(layer) for layer in q.layers]
            q = None
            gc.collect()
            print(json.dumps({"case": i, "kernels": name, "params": params, "int8": out8, "float": outf}))
            params = None
            gc.collect()
    specs = payload.get("specs", [])
    for i in range(len(specs)):
        for name in VARIANTS:
            q = QNetwork([QDense.from_params(**kw) for kw in specs[i]["layers"]], kernels=_variant(name))
            out8, outf = _outputs(q, specs[i]["X8"], specs[i]["XF"])
            print(json.dumps({"spec": i, "kernels": name, "int8": out8, "float": outf}))
    edge = payload.get("edge")
    if edge:
        for name in VARIANTS:
            k = _WideSet() if name == "viper_wide" else kernel_set(name)
            print(json.dumps({"edge": name, "result": _edge(k, edge)}))


main()
