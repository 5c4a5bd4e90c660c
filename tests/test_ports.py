"""The same results on every port: x64 (the unix port from PyPI), CPython and the Linux-process
board interpreters (support.BOARD_RUNTIMES: x86-32, armv6m, armv7m as .mpy for their arch, x86-32
as .py), each in its board's heap. The bare-metal Cortex-M3 and rv32imc boards run the same
checks in tests/test_baremetal.py.

- int8: one `.nnm` per activation (made on x64) gives byte-identical `predict_int8` and int8
  `predict` outputs, extreme inputs included, and neither allocates under heap_lock.
- seeded initialisation, dropout masks and shuffling are bit-identical (rand.py builds every
  float32 from integers), so a seeded network quantized on the device gives the same `.nnm`
  bytes everywhere.
- float predict stays within FLOAT_ULPS float32 ulps of CPython's (double) result: float paths
  are not bit-exact across ports (libm's expf/tanhf differ by an ulp between boards).

Values cross the process boundary as integers or hex bytes, never as decimal float text
(single-precision ports parse about 10% of float32 decimals one ulp off).
"""

from __future__ import annotations

import functools
import json
import math
import struct
import subprocess
from pathlib import Path

import pytest

from support import BOARD_RUNTIMES, ROOT, board_unavailable, device_env, interpreters, run_device, scratch

PORTS = ("micropython",) + tuple(BOARD_RUNTIMES)
pytestmark = pytest.mark.boards  # `make test-fast` leaves the board interpreters out
FLOAT_ULPS = 4  # float predict vs CPython (double), in ulps of the vector's largest output (measured: 3)


def _require(runtime: str):
    if runtime in BOARD_RUNTIMES:
        reason = board_unavailable(runtime)
        if reason:
            pytest.skip(reason)


def _run(runtime: str, code: str) -> list[dict]:
    proc = run_device(runtime, ["-c", code], timeout=900)
    assert proc.returncode == 0, "%s:\n%s%s" % (runtime, proc.stdout[-3000:], proc.stderr[-3000:])
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


@functools.cache
def _parity(runtime: str) -> list[dict]:
    return _run(runtime, "import int8_parity; int8_parity.run(%r)" % str(_models()))


@functools.cache
def _models() -> Path:
    """The int8 .nnm of every activation, made by the x64 unix port (outside the checkout)."""
    folder = scratch("ports-parity-models")
    _run("micropython", "import int8_parity; int8_parity.make(%r)" % str(folder))
    return folder


@pytest.mark.parametrize("runtime", tuple(BOARD_RUNTIMES))
def test_int8_outputs_byte_identical_to_x64_and_allocation_free(runtime):
    _require(runtime)
    want, got = _parity("micropython"), _parity(runtime)
    assert len(want) == 8, "one model per activation"
    assert [r["act"] for r in got] == [r["act"] for r in want]
    for w, g in zip(want, got):
        assert g["int8"] == w["int8"], "%s: predict_int8 differs on %s" % (w["act"], runtime)
        assert g["float"] == w["float"], "%s: int8 predict (float32 bytes) differs on %s" % (
            w["act"],
            runtime,
        )
        assert w["alloc_free"] == [True, True], "%s: allocates on x64" % w["act"]
        assert g["alloc_free"] == [True, True], "%s: allocates under heap_lock on %s" % (w["act"], runtime)


# Seeded networks (Dense with every activation, Dropout), their weights as float32 bytes, a
# dropout mask, a shuffle, the int8 .nnm quantized on the device from exact calibration inputs,
# and float predict outputs as float32 bits.
SEEDED = """
import gc
import json
from array import array
from nanonn import Dense, Dropout, Network
from nanonn.nnm.write import dumps
from nanonn.float32.activations import LeakyReLU
from nanonn.rand import Random

def put_hex(key, bufs):
    # "key": "<hex of bufs>", written in 128-byte pieces: no string of the whole (a board's
    # heap, fragmented by the networks, may not hold one contiguous block of several KB)
    print(', "%s": "' % key, end="")
    for b in bufs:
        b = bytes(b)
        for i in range(0, len(b), 128):
            print(b[i : i + 128].hex(), end="")
    print('"', end="")

def exact_rows(seed, n, count, limit):
    rng = Random(seed)
    return [array("f", [rng.symmetric(limit) for _ in range(n)]) for _ in range(count)]

for seed, acts in ((3, ("relu", "softmax")), (11, ("tanh", "sigmoid")), (29, (LeakyReLU(0.125), "softplus")),
                   (7, ("linear", "softmax"))):
    gc.collect()
    net = Network(Dense(10, inputs=12, activation=acts[0]), Dropout(0.25, seed=seed), Dense(4, activation=acts[1]),
                  seed=seed)
    drop = net.layers[1]
    drop._drop(array("f", [1.0] * 10))
    order = list(range(16))
    Random(seed).shuffle(order)
    X = exact_rows(seed + 1, 12, 8, 2.0)
    q = net.quantize(X)
    print('{"seed": %d, "order": %s' % (seed, json.dumps(order)), end="")
    put_hex("w", [b for l in net.layers if hasattr(l, "w") for b in (l.w, l.b)])
    put_hex("mask", [drop.keep])
    print(', "out": %s' % json.dumps([bytes(net.predict(x)).hex() for x in X]), end="")
    net = drop = X = None
    gc.collect()
    put_hex("nnm", [dumps(q)])
    x8 = array("b", [(i * 37 + seed) % 256 - 128 for i in range(12)])
    print(', "q8": ["%s"]}' % bytes(q.predict_int8(x8)).hex())
    q = None
"""


@functools.cache
def _seeded(runtime: str) -> list[dict]:
    return _run(runtime, SEEDED)


def check_seeded(want: list[dict], got: list[dict], where: str):
    """The SEEDED results of port `where` equal CPython's (`want`), bit for bit."""
    assert len(want) == 4 and len(got) == 4
    for w, g in zip(want, got):
        assert g["w"] == w["w"], "seed %d: initial float32 weights differ on %s" % (w["seed"], where)
        assert g["mask"] == w["mask"], "seed %d: dropout mask differs on %s" % (w["seed"], where)
        assert g["order"] == w["order"], "seed %d: shuffle differs on %s" % (w["seed"], where)
        assert g["nnm"] == w["nnm"], "seed %d: the .nnm quantized on the device differs on %s" % (
            w["seed"],
            where,
        )
        assert g["q8"] == w["q8"], "seed %d: predict_int8 differs on %s" % (w["seed"], where)


@pytest.mark.parametrize("runtime", PORTS)
def test_seeded_init_dropout_shuffle_and_device_quantization_identical_to_cpython(runtime):
    _require(runtime)
    check_seeded(_seeded("cpython"), _seeded(runtime), runtime)


def _floats(text: str) -> list[float]:
    return list(struct.unpack("<%df" % (len(text) // 8), bytes.fromhex(text)))


def _ulp32(v: float) -> float:
    """The spacing of float32 values at |v| (v normal)."""
    return math.ldexp(1.0, math.frexp(abs(v))[1] - 24)


@pytest.mark.parametrize("runtime", PORTS)
def test_float_predict_within_a_few_ulps_of_cpython(runtime):
    """Each output within FLOAT_ULPS float32 ulps of the largest output of its vector (an
    output near zero is compared on the vector's scale: a sum that cancels keeps the
    absolute error of its terms, not a relative one)."""
    _require(runtime)
    worst = worst_ulps(_seeded("cpython"), _seeded(runtime))
    assert worst <= FLOAT_ULPS, "%s: float predict %.1f float32 ulps from CPython's" % (runtime, worst)


def worst_ulps(want: list[dict], got: list[dict]) -> float:
    """The largest distance of a SEEDED float predict output from CPython's, in float32 ulps
    of its vector's largest output."""
    worst = 0.0
    for w, g in zip(want, got):
        for hw, hg in zip(w["out"], g["out"]):
            ws, gs = _floats(hw), _floats(hg)
            ulp = _ulp32(max(abs(v) for v in ws))
            worst = max([worst] + [abs(a - b) / ulp for a, b in zip(ws, gs)])
    return worst


# On-device quantization in a board's heap (tests/device/quant_fit.py: a script that builds
# the seeded float network and 16 calibration rows, then quantizes; x86-32 with the package
# as .mpy): a network one step below the largest measured to fit each board profile's heap
# (the edge moves with where paths and objects land in the heap), and one about twice the
# largest that must fail with a plain MemoryError (README "Boards" states the edges).
# ESP32 (110,000 B) is at the edge for any network: 8-8-4 fails and 16-12-4 passes, by
# where objects land, so only its failure side is checked.
QUANTIZE_FITS = (
    # 48-24-10 failed before import nanonn became lazy, and again since the float network caches
    # its decoded weights on a board's heap (Dense(cache=None): ~7 KB here with the module's
    # code); cache=False still fits 48-24-10
    ("esp32", 110000, "40-24-10", "64-28-10"),
    ("esp32c3", 150000, "48-16-10", "64-96-10"),
    ("rp2040", 190000, "64-36-10", "128-64-10"),
)


@pytest.mark.parametrize("board,heap,fits,fails", QUANTIZE_FITS, ids=[b[0] for b in QUANTIZE_FITS])
def test_on_device_quantize_fits_the_board_heap(board: str, heap: int, fits: str | None, fails: str):
    _require("x86-32")
    interp = interpreters()
    env = device_env("x86-32")
    for sizes, want in ((fits, True), (fails, False)):
        if sizes is None:
            continue
        proc = subprocess.run(
            interp.command("x86-32", str(heap)) + ["tests/device/quant_fit.py", sizes],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        ok = json.loads(proc.stdout.strip().splitlines()[-1])["ok"]
        if want:
            assert ok is True, "%s (%d B heap): quantize of %s failed: %s" % (board, heap, sizes, ok)
        else:
            assert ok is not True and "memory allocation failed" in ok, (board, sizes, ok)
