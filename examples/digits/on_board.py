"""Run the digits models on the board: accuracy, float vs int8 agreement, inference time.

    micropython on_board.py [DIR]      # unix port; DIR holds the models and test files
    mpremote run on_board.py           # a board, files deployed to its root

Loads `digits_f32.nnm` and `digits_int8.nnm` (and, when importable, the frozen-module
variant `digits_model`, whose `MODEL` bytes stay in flash when frozen), classifies
the test images (`digits_test.bin`: 64 pixel bytes each), and compares with the
labels and with the host's float predictions. Only `predict` is timed. Prints a
summary and a last line `RESULT {...}` (JSON) for the host.
"""

import gc
import json
import sys
import time
from array import array

import nanonn
from nanonn import argmax

if hasattr(time, "ticks_us"):
    _now, _diff = time.ticks_us, time.ticks_diff
else:  # CPython

    def _cpython_now():
        # The boards' stubs rightly lack time.perf_counter_ns: this branch runs on CPython only.
        return time.perf_counter_ns() // 1000  # pyright: ignore[reportAttributeAccessIssue]

    def _cpython_diff(a, b):
        return a - b

    _now, _diff = _cpython_now, _cpython_diff


def _heap():
    """Heap bytes in use (MicroPython); 0 on CPython, which has no gc.mem_alloc."""
    return gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def classify(net, folder, count):
    """Predicted classes (bytearray) and total microseconds spent in predict."""
    x = array("f", bytes(4 * 64))
    img = bytearray(64)
    preds = bytearray(count)
    total = 0
    with open(folder + "/digits_test.bin", "rb") as f:
        for k in range(count):
            f.readinto(img)
            for i in range(64):
                x[i] = img[i]
            t0 = _now()
            y = net.predict(x)
            total += _diff(_now(), t0)
            preds[k] = argmax(y)
    return preds, total


def _same(a, b):
    return sum(1 for i in range(len(a)) if a[i] == b[i])


def frozen_variant(folder, n):
    """The int8 model from the `digits_model` module (made by `nanonn convert -o
    digits_model.py`): frozen into the firmware its MODEL bytes stay in flash and
    `nanonn.load` uses them in place. Returns (predictions, microseconds, bytes the
    loaded network took from the heap), or None when the module is not there."""
    try:
        import digits_model  # pyright: ignore[reportMissingImports]  # made by nanonn convert
    except ImportError:
        return None
    gc.collect()
    before = _heap()
    net = nanonn.load(digits_model.MODEL)
    gc.collect()
    ram = _heap() - before
    preds, us = classify(net, folder, n)
    return preds, us, ram


def main(folder="."):
    labels = _read(folder + "/digits_test_labels.bin")
    host = _read(folder + "/digits_host_pred.bin")
    n = len(labels)
    models = [("float32", folder + "/digits_f32.nnm"), ("int8", folder + "/digits_int8.nnm")]
    result = {"images": n}  # type: dict
    preds = {}
    for name, path in models:
        net = nanonn.load(path)  # the first load also imports the layer code: not counted
        net = None
        gc.collect()
        before = _heap()
        net = nanonn.load(path)
        gc.collect()
        ram = _heap() - before
        p, us = classify(net, folder, n)
        preds[name] = p
        acc = _same(p, labels) / n
        per = us / n
        result[name] = {
            "accuracy": acc,
            "agree_host": _same(p, host) / n,
            "us": per,
            "per_s": 1e6 / per,
            "ram_bytes": ram,
        }
        print(
            "%-8s accuracy %.4f, agrees with host float %.4f, %.0f us/inference (%.0f/s), network RAM %d bytes"
            % (name, acc, result[name]["agree_host"], per, 1e6 / per, ram)
        )
        net = None
    result["int8_vs_float32"] = _same(preds["int8"], preds["float32"]) / n
    print("int8 vs float32 on the board: same class for %.4f of %d images" % (result["int8_vs_float32"], n))
    frozen = frozen_variant(folder, n)
    if frozen is not None:
        same = _same(frozen[0], preds["int8"]) / n
        result["module"] = {"same_as_int8_file": same, "us": frozen[1] / n, "ram_bytes": frozen[2]}
        print(
            "int8 from the module's MODEL bytes: same class as the .nnm for %.4f, %.0f us/inference, "
            "network RAM %d bytes" % (same, frozen[1] / n, frozen[2])
        )
    print("RESULT " + json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
