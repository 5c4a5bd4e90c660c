"""`nanonn info` and `nanonn.load` give the same RAM figure for the same model.

The device reader computes what a model needs before it allocates (`ram_needed` in
nanonn/nnm/read.py, checked against the free heap by `_check_memory`); info runs that
same function on CPython on a file of the model's shape (nanonn_tools.info.ram_needed). Here the
MicroPython unix port loads each model from a file ("file": blocks read into RAM) and
from a bytes object ("frozen": weights used in place), with `_check_memory` wrapped to
record the figure it is given, and info's figures must be those exactly, for float and
int8 models, every activation (softmax tables and softmax_tflite included), with and
without bias, with dropout. info's int8 figures for a float model are those of the file
`nanonn convert --quantize int8` writes from it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from nanonn_tools import info, nnm
from nanonn_tools.model import DenseSpec, DropoutSpec, ModelSpec
from nanonn_tools.quantize import quantize_model
from nanonn_tools.reference import ACTIVATIONS
from support import run_device_json

DEVICE = """
import json, sys
import nanonn
from nanonn.nnm import read
paths = json.loads(sys.stdin.read())
seen = []
_check = read._check_memory


def spy(need):
    seen.append(need)
    return _check(need)


read._check_memory = spy
out = []
for path in paths:
    with open(path, "rb") as f:
        data = f.read()
    nanonn.load(path)
    nanonn.load(data)
    out.append(seen[-2:] + [read.ram_needed(data, True), read.ram_needed(data, False)])
print(json.dumps(out))
"""


def _float_model(act: str, bias: bool, seed: int) -> ModelSpec:
    """5 -> 7 relu -> dropout -> 6 tanh (no bias when `bias` is False) -> 3 `act`."""
    rng = np.random.default_rng(seed)

    def dense(n, u, a, b):
        return DenseSpec(rng.normal(size=(u, n)) * 0.5, rng.normal(size=u) * 0.2 if b else None, a, alpha=0.1)

    layers = [dense(5, 7, "relu", True), DropoutSpec(0.25), dense(7, 6, "tanh", bias), dense(6, 3, act, bias)]
    return ModelSpec(layers).validate()


def _models():
    """(name, float spec, its int8 spec) for every activation on the last layer, bias or not."""
    out = []
    X = np.random.default_rng(99).uniform(-2, 2, (24, 5))
    for i, act in enumerate(ACTIVATIONS):
        for bias in (True, False):
            spec = _float_model(act, bias, 10 * i + bias)
            out.append(("%s-%s" % (act, "bias" if bias else "nobias"), spec, quantize_model(spec, X)))
    return out


def test_info_ram_figures_are_the_device_loaders(tmp_path):
    models = _models()
    # softmax_tflite exists for int8 layers only; its table is the same size as softmax's
    name, spec, q = [m for m in models if m[0] == "softmax-bias"][0]
    table = np.exp(-0.05 * np.arange(256)).astype("<f4").view("<i4")  # TFLite's: float32 bits
    tfl = dataclasses.replace(q.layers[-1], activation="softmax_tflite", exp_table=table)
    models.append(("softmax_tflite", None, dataclasses.replace(q, layers=q.layers[:-1] + [tfl])))
    paths, expected = [], []
    for name, spec, q in models:
        path = tmp_path / (name + ".nnm")
        if spec is not None:
            nnm.write(spec, path)
            s = info.stats(spec)
            paths.append(str(path))
            expected.append((name, "float32", s.ram_float_file, s.ram_float_frozen))
        qpath = tmp_path / (name + "-int8.nnm")
        nnm.write(q, qpath)
        sq = info.stats(nnm.read(qpath))
        if spec is not None:  # info of the float model foresees the int8 file's figures
            s = info.stats(spec)
            assert (s.ram_int8_file, s.ram_int8_frozen) == (sq.ram_int8_file, sq.ram_int8_frozen), name
            assert s.flash_int8 == qpath.stat().st_size, name
            assert s.flash_float == path.stat().st_size, name
        paths.append(str(qpath))
        expected.append((name, "int8", sq.ram_int8_file, sq.ram_int8_frozen))
    device = run_device_json("micropython", DEVICE, paths)
    got = [(name, dtype, file, frozen) for (name, dtype, _, _), (file, frozen, _, _) in zip(expected, device)]
    assert got == expected
    # the device's public figure (nanonn.nnm.read.ram_needed) is the one load checks
    assert [d[:2] for d in device] == [d[2:] for d in device]
    # the options count: a float layer without bias (in place: a zero bias allocated), int8 tables
    fig = {(name, dtype): (file, frozen) for name, dtype, file, frozen in expected}
    bias, nobias = fig[("relu-bias", "float32")], fig[("relu-nobias", "float32")]
    assert bias[1] < nobias[1]
    linear, sigmoid, softmax = (fig[(a + "-bias", "int8")][0] for a in ("linear", "sigmoid", "softmax"))
    assert linear < sigmoid < softmax and sigmoid < fig[("softmax_tflite", "int8")][0]
