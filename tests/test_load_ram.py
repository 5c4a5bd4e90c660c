"""What loading a model imports and keeps (issue 14, "a board can afford it").

Import only what runs: after `import nanonn`, `nanonn.load` of an int8 model and a
`predict_int8`, `sys.modules` holds the reader, the int8 records' builder, the int8
network with its viper kernels (the plain-Python ones only where viper is missing) and
their small helpers: no float network, no quantizer, no writer or backup. A float model
loads and predicts without the int8 code, the quantizer, the writer or the training code
(losses, training kernels, PRNG); its first `train` step adds the losses and the training
kernels, `fit` the PRNG (its shuffle). Checked on the x64 unix port,
the 32-bit board-like build (.mpy), the WebAssembly port (no viper) and CPython.

The RAM figure: `nanonn.nnm.read.ram_needed` (the bytes `load` checks against the free
heap, and `nanonn info` reports) against the heap the 32-bit build measures a loaded
model keeping, for the int8 784-36-14-10 model and float models, from a file and from
bytes: within MARGIN.
"""

from __future__ import annotations

import json

import pytest

from nanonn_tools import nnm
from support import BOARD_RUNTIMES, board_unavailable, load_tool, run_device

# The modules every load imports (the reader and what it needs), then each kind's own.
READER = {
    "nanonn",
    "nanonn.errors",
    "nanonn.inputs",
    "nanonn.crc32",
    "nanonn.nnm",
    "nanonn.nnm.read",
    "nanonn.nnm.codes",
    "nanonn.nnm.layout",
}
INT8 = {"nanonn.int8", "nanonn.int8.network", "nanonn.int8.multiplier", "nanonn.nnm.int8"}
FLOAT = {
    "nanonn.float32",
    "nanonn.float32.network",
    "nanonn.float32.layers",
    "nanonn.float32.activations",
    "nanonn.nnm.layers",
    "nanonn.nnm.views",
}
FLOAT_VIPER = {"nanonn.float32.dense_viper", "nanonn.float32.f32_viper"}
# never imported by loading and running a model
NEVER = {"nanonn.int8.quantize", "nanonn.nnm.write", "nanonn.nnm.backup", "nanonn.float32.dense_cache_viper"}
# training code: imported by the first training step, never by inference (issue 14)
NEVER |= {
    "nanonn.float32.losses",
    "nanonn.float32.train_viper",
    "nanonn.float32.momentum_viper",
    "nanonn.rand",
}

MODULES = r"""
import sys, json
def ours():
    return sorted(m for m in sys.modules if m == "nanonn" or m.startswith("nanonn."))
import nanonn
out = {"import": ours()}
from binascii import unhexlify
src = json.loads(sys.stdin.read())
net = nanonn.load(unhexlify(src["int8"]))
net.predict_int8(bytes(net.inputs))
out["int8"] = ours()
for m in ours():
    del sys.modules[m]
import nanonn
net = nanonn.load(unhexlify(src["float"]))
net.predict([0.5] * net.inputs)
out["float"] = ours()
net = nanonn.load(unhexlify(src["float"]), True)
net.train([0.5] * net.inputs, [1.0] + [0.0] * (net.outputs - 1))
out["train"] = ours()
net.fit([[0.5] * net.inputs], [[1.0] + [0.0] * (net.outputs - 1)])
out["fit"] = ours()
print(json.dumps(out))
"""


def _models(tmp_path):
    bench_memory = load_tool("bench_memory")
    fspec, qspec = bench_memory.big_float_and_int8()
    paths = {}
    for name, spec in (("int8", qspec), ("float", bench_memory.small_model()), ("float784", fspec)):
        paths[name] = tmp_path / (name + ".nnm")
        nnm.write(spec, paths[name])
    return paths


@pytest.mark.parametrize("runtime", ["micropython", "x86-32", "wasm", "cpython"])
def test_loading_imports_only_what_runs(runtime, tmp_path):
    if runtime in BOARD_RUNTIMES:
        reason = board_unavailable(runtime)
        if reason:
            pytest.skip(reason)
    paths = _models(tmp_path)
    # as bytes: the WebAssembly port sees no /tmp (a path loads the same modules)
    payload = {"int8": paths["int8"].read_bytes().hex(), "float": paths["float"].read_bytes().hex()}
    proc = run_device(runtime, ["-c", MODULES], stdin=json.dumps(payload))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    viper = runtime in ("micropython", "x86-32")
    helpers = {"nanonn.typecode_viper"} if viper else set()
    assert got["import"] == ["nanonn", "nanonn.errors"]
    kernels = {"nanonn.int8.kernels_viper"} if viper else {"nanonn.int8.kernels_py"}
    assert set(got["int8"]) == READER | INT8 | kernels | helpers
    assert set(got["float"]) == READER | FLOAT | (FLOAT_VIPER if viper else set()) | helpers
    for kind in ("int8", "float"):
        assert not NEVER & set(got[kind]), kind
    # the training code, on first use: train adds the losses (and the training kernels)
    train = {"nanonn.float32.losses"} | ({"nanonn.float32.train_viper"} if viper else set())
    assert set(got["train"]) == set(got["float"]) | train
    assert set(got["fit"]) == set(got["train"]) | {"nanonn.rand"}


RAM = r"""
import gc, json, sys
import nanonn
import nanonn.nnm.read as read
src = json.loads(sys.stdin.read())
def used():
    gc.collect()
    return gc.mem_alloc()
out = {}
for name in src:
    path = src[name]
    with open(path, "rb") as f:
        data = f.read()
    for how in ("file", "bytes", "train"):
        if how == "train" and name == "int8":
            continue
        source = data if how == "bytes" else path
        trainable = how == "train"
        need = read.ram_needed(data, how != "bytes", trainable)
        net = nanonn.load(source, trainable)  # the code it imports is not the model's
        net = None
        a = used()
        net = nanonn.load(source, trainable)
        out[name + " " + how] = [need, used() - a]
        net = None
print(json.dumps(out))
"""
# ram_needed against the heap a loaded model keeps on the 32-bit build: never more than
# MARGIN_BYTES below it (it is the guard `load` checks), at most MARGIN above
MARGIN = 0.15
MARGIN_BYTES = 1024


def test_ram_needed_matches_the_32_bit_build(tmp_path):
    reason = board_unavailable("x86-32")
    if reason:
        pytest.skip(reason)
    paths = _models(tmp_path)
    got = run_device("x86-32", ["-c", RAM], stdin=json.dumps({k: str(v) for k, v in paths.items()}))
    assert got.returncode == 0, got.stdout + got.stderr
    figures = json.loads(got.stdout.strip().splitlines()[-1])
    assert len(figures) == 8
    for case, (need, kept) in figures.items():
        print(
            "%-16s ram_needed %7d B, kept %7d B (%+.1f%%)" % (case, need, kept, 100.0 * (need - kept) / kept)
        )
        assert kept - MARGIN_BYTES <= need <= kept * (1 + MARGIN) + MARGIN_BYTES, (case, need, kept)
