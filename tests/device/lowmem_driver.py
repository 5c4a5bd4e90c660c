"""Low-memory driver (run under `micropython -X heapsize=...`, see tools/bench_memory.py).

    micropython -X heapsize=100wK tests/device/lowmem_driver.py SMALL.nnm BIG.nnm

Loads the small model and predicts, then tries the big one (a file) and predicts
with it, then predicts with the small one again. Prints one JSON line: the stage
reached, the error of a failure (type and message), the outputs, and the heap.
The inputs are made here (no JSON parsing of big inputs on a small heap).
"""

import gc
import json  # first: a built-in module, but importing it registers it in sys.modules, an
import sys  # allocation that fails on a heap the stages below have exhausted (32-bit ports)
from array import array

stage = "import"
error = ["", ""]  # made first: on a heap the stages below exhausted, reporting allocates nothing
exc = small = None  # the globals the handlers bind exist already (a new one grows the dict)
out: dict[str, object] = {"stage": stage, "error": error, "heap_free": 0}
try:
    import nanonn

    stage = "small load"
    small = nanonn.load(sys.argv[1])
    xs = [0.5, -1.0, 2.0, 0.25]
    out["small_before"] = list(small.predict(xs))
    stage = "big load"
    try:
        big = nanonn.load(sys.argv[2])
        stage = "big predict"
        x = array("f", bytes(4 * big.inputs))  # preallocated: a growing list fragments
        for i in range(big.inputs):
            x[i] = ((i * 37) % 101) / 50.0 - 1.0
        out["big"] = list(big.predict(x))
        x = None
        stage = "done"
    except MemoryError as exc:
        error[0], error[1] = "MemoryError", str(exc)
    big = None
    gc.collect()
    out["small_after"] = list(small.predict(xs))
except MemoryError as exc:
    error[0] = "MemoryError"
    error[1] = exc.args[0] if exc.args else ""
except Exception as exc:  # reported, and a failure for the test
    error[0], error[1] = type(exc).__name__, str(exc)
out["stage"] = stage
if not error[0]:
    del out["error"]
gc.collect()
out["heap_free"] = gc.mem_free()
small = None  # the report needs a few bytes: the small model's go
gc.collect()
json.dump(out, sys.stdout)  # written as it goes (no string of the whole line)
print()
