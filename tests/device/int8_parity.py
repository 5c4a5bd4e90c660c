"""Device side of tests/test_baremetal.py's int8 parity check (MicroPython).

`make(folder)` (on a port with a filesystem, x64): writes one int8 `.nnm` per
activation (linear, relu, leaky_relu, sigmoid, tanh, softplus, softmax,
softmax_tflite) into `folder`. `run(folder)` (every port): loads each model,
prints one JSON line per model with the hex bytes of `predict_int8` for the
extreme and patterned inputs of `inputs()`, the raw float32 bytes of `predict`
for float inputs, and whether either call allocated under
`micropython.heap_lock()`. Byte-identical lines across ports are the check.
"""

import gc
import json
from array import array

import micropython

from nanonn import Dense, Network, load
from nanonn.float32.activations import LeakyReLU
from nanonn.int8.network import QDense, QNetwork
from nanonn.nnm.write import dumps
from nanonn.rand import Random

ACTIVATIONS = ("linear", "relu", "leaky_relu", "sigmoid", "tanh", "softplus", "softmax", "softmax_tflite")
N_IN = 12


def _float_net(act, seed):
    a = LeakyReLU(0.1) if act == "leaky_relu" else act
    last = "softmax" if act.startswith("softmax") else a
    hidden = "relu" if act.startswith("softmax") else a
    return Network(Dense(9, inputs=N_IN, activation=hidden), Dense(5, activation=last), seed=seed)


def _tflite_softmax(q):
    """q (ending in softmax) with its last layer as softmax_tflite (TFLite's softmax)."""
    import math

    last = q.layers[-1].params()
    last["activation"] = "softmax_tflite"
    table = array("f", [math.exp(-last["pre_scale"] * d) for d in range(256)])
    last["exp_table"] = list(array("i", bytes(table)))
    last["exp_table"][0] = 0x3F800000
    return QNetwork(q.layers[:-1] + [QDense.from_params(**last)], kernels=q.kernels)


def _calibration(seed):
    rng = Random(seed)
    return [array("f", [rng.uniform(-3.0, 3.0) for _ in range(N_IN)]) for _ in range(24)]


def make(folder):
    """Write <folder>/<activation>.nnm for every activation (needs a writable filesystem)."""
    for i, act in enumerate(ACTIVATIONS):
        net = _float_net(act, 11 + i)
        q = net.quantize(_calibration(5 + i))
        if act == "softmax_tflite":
            q = _tflite_softmax(q)
        with open("%s/%s.nnm" % (folder, act), "wb") as f:
            f.write(dumps(q))


def inputs():
    """int8 input vectors: the extremes, zero, alternating and ramp patterns, pseudo-random."""
    out = [[-128] * N_IN, [127] * N_IN, [0] * N_IN, [-1] * N_IN]
    out.append([127 if i % 2 else -128 for i in range(N_IN)])
    out.append([(i * 23) % 256 - 128 for i in range(N_IN)])
    rng = Random(99)
    for _ in range(10):
        out.append([rng.below(256) - 128 for _ in range(N_IN)])
    return [array("b", x) for x in out]


def float_inputs():
    """float32 input vectors, extremes (far outside the calibrated range) included."""
    out = [[0.0] * N_IN, [1e6] * N_IN, [-1e6] * N_IN, [3.0 if i % 2 else -3.0 for i in range(N_IN)]]
    rng = Random(7)
    for _ in range(6):
        out.append([rng.uniform(-4.0, 4.0) for _ in range(N_IN)])
    return [array("f", x) for x in out]


def _locked(fn, src, buf):
    """fn(buf) under heap_lock, `src` copied into `buf` first: True when it ran without
    allocating. One input buffer is reused, as a sensor loop does: the network then
    skips the typecode probe of a new buffer, whose id() is a long int (one allocation)
    on heaps at or above 2^31, such as the qemu rv32 board's (nanonn/inputs.py)."""
    for i in range(len(src)):
        buf[i] = src[i]
    fn(buf)
    micropython.heap_lock()
    try:
        fn(buf)
    except MemoryError:
        return False
    finally:
        micropython.heap_unlock()
    return True


def run(folder):
    """Print one JSON line per model: outputs as hex, and allocation-free flags."""
    xs, xfs = inputs(), float_inputs()
    for act in ACTIVATIONS:
        net = load("%s/%s.nnm" % (folder, act))
        if not isinstance(net, QNetwork):
            raise TypeError("%s.nnm: expected an int8 model (QNetwork), got %s" % (act, type(net).__name__))
        out8 = [bytes(net.predict_int8(x)).hex() for x in xs]
        outf = [bytes(net.predict(x)).hex() for x in xfs]
        b8, bf = array("b", bytes(N_IN)), array("f", bytes(4 * N_IN))
        free8 = all(_locked(net.predict_int8, x, b8) for x in xs)
        freef = all(_locked(net.predict, x, bf) for x in xfs)
        print(json.dumps({"act": act, "int8": out8, "float": outf, "alloc_free": [free8, freef]}))
        net = None
        gc.collect()
