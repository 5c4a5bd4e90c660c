"""`nanonn bench MODEL [-n N]`: inference speed and heap use measured on the board.

The board loads the deployed `/<name of MODEL>`, runs one warm-up inference,
then N timed ones on one input (the first row of --data, else seeded random
inputs in [-1, 1)). Each inference is timed with `time.ticks_us` after a
`gc.collect()` (so no collection falls inside a timing) and its heap
allocation is `gc.mem_alloc()` after minus before. Reported: median, min and
max microseconds per inference, inferences per second (1e6 / median), heap
allocated per inference (median and max), peak heap in use (the largest
`gc.mem_alloc()` seen right after an inference: interpreter, model and
garbage of that inference), the model's RAM (what the loaded network keeps,
`nanonn info`'s figure) apart from the model reader's (the modules `nanonn.load`
imports on first use, paid once per boot: `deployed_model.measure_load_code`), and
the board's MicroPython version and architecture.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from . import NanonnError
from .board_commands import add_board_options
from .connection import open_connection
from .deployed_model import load_inputs, measure_load_code, read_deployed_model

_BENCH = """
import time
from array import array
_nn_net = nanonn.load(%(path)r)
_nn_x = %(x)s
_nn_net.%(call)s(_nn_x)
_nn_n = %(n)d
_nn_t = array('i', bytearray(4 * _nn_n))
_nn_m = array('i', bytearray(4 * _nn_n))
_nn_peak = 0
_nn_ticks = time.ticks_us
_nn_diff = time.ticks_diff
for _nn_i in range(_nn_n):
    gc.collect()
    _nn_b = gc.mem_alloc()
    _nn_s = _nn_ticks()
    _nn_net.%(call)s(_nn_x)
    _nn_e = _nn_ticks()
    _nn_c = gc.mem_alloc()
    _nn_t[_nn_i] = _nn_diff(_nn_e, _nn_s)
    _nn_m[_nn_i] = _nn_c - _nn_b
    if _nn_c > _nn_peak:
        _nn_peak = _nn_c
    if _nn_i %% 50 == 49:
        print('.', end='')
print()
print(repr((list(_nn_t), list(_nn_m), _nn_peak, _nn_model, _nn_reader, gc.mem_free())))
"""


@dataclass
class BenchResult:
    """`bench`'s measurements: microseconds per inference, heap bytes, board version/arch."""

    version: str
    arch: str
    n: int
    us_median: float
    us_min: int
    us_max: int
    per_second: float
    alloc_median: float
    alloc_max: int
    peak_heap: int
    model_ram: int
    reader_ram: int
    heap_free: int


def bench(
    model_path: str,
    port: str | None = "auto",
    n: int = 100,
    data: str | None = None,
    board_path: str | None = None,
    out=print,
) -> BenchResult:
    """Run `n` timed inferences of the deployed `model_path` on the board; prints and returns them."""
    if n < 1:
        raise NanonnError("-n: expected at least 1 inference, got %d" % n)
    model = read_deployed_model(model_path)
    if data:
        X = load_inputs(data, model.inputs)[:1]
    else:
        X = np.random.default_rng(0).uniform(-1, 1, (1, model.inputs)).astype(np.float32)
    row = model.board_inputs(X)[0]
    if model.kind == "int8":
        x_code, call = "array('b', %r)" % row, "predict_int8"
    else:
        x_code, call = "array('f', %r)" % row, "predict"
    dest = board_path or "/" + os.path.basename(model_path)
    with open_connection(port) as conn:
        info = conn.info()
        conn.deployed(info, dest, model_path, out)
        times, allocs, peak, model_ram, reader_ram, free = conn.eval(
            measure_load_code(dest) + _BENCH % {"path": dest, "x": x_code, "call": call, "n": n},
            timeout=120,
            what="benchmarking %s" % dest,
        )
    t = np.asarray(times, dtype=np.int64)
    m = np.asarray(allocs, dtype=np.int64)
    median = float(np.median(t))
    result = BenchResult(
        version=info.version_text,
        arch=info.arch or "unknown",
        n=n,
        us_median=median,
        us_min=int(t.min()),
        us_max=int(t.max()),
        per_second=1e6 / median if median > 0 else float("inf"),
        alloc_median=float(np.median(m)),
        alloc_max=int(m.max()),
        peak_heap=int(peak),
        model_ram=int(model_ram),
        reader_ram=int(reader_ram),
        heap_free=int(free),
    )
    out("board: %s, %s, arch %s" % (conn.port, result.version, result.arch))
    out("model: %s (%s), %s, %d inferences" % (dest, model.kind, call, n))
    out(
        "time per inference: median %.1f us, min %d us, max %d us"
        % (result.us_median, result.us_min, result.us_max)
    )
    out("inferences per second: %.1f" % result.per_second)
    out("heap allocated per inference: median %.0f B, max %d B" % (result.alloc_median, result.alloc_max))
    out(
        "peak heap in use: %d B; model RAM: %d B (the loaded network); model reader RAM: %d B "
        "(the modules nanonn.load imports, once per boot); free heap: %d B"
        % (result.peak_heap, result.model_ram, result.reader_ram, result.heap_free)
    )
    return result


def register(sub) -> None:
    """Add `nanonn bench` to the CLI's subparsers."""
    p = sub.add_parser("bench", help="measure inference time and heap use on the board")
    p.add_argument("model", help="the .nnm model (deployed to the board as /<its name>)")
    add_board_options(p, board_path=True)
    p.add_argument("-n", type=int, default=100, help="timed inferences (default 100)")
    p.add_argument("--data", help="X.npy whose first row is the input (default: seeded random)")
    p.set_defaults(handler=_main)


def _main(args) -> int:
    bench(args.model, port=args.port, n=args.n, data=args.data, board_path=args.board_path)
    return 0
