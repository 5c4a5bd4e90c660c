"""One benchmark measurement on the device (run by tools/bench.py, one process per
network and path so that the peak heap belongs to that path):

    micropython tools/bench_device.py DIR NET PATH [CALLS]

DIR holds NET.json (sizes, activations, int8 parameters without weights, inputs),
NET.f32 (float32 weights then biases, layer by layer) and NET.w8 (int8 weights,
layer by layer). PATH: float | int8_viper | int8_viper_float | int8_python | naive.
Prints one JSON line: inferences/s, heap bytes per inference (micropython.mem_total
delta), model heap and peak heap (gc.mem_alloc above the heap in use before the
model was built; peak = after one inference with the collector disabled), output.
With CALLS: builds the model, runs one inference, then CALLS more and prints
nothing else (tools/bench.py counts instructions with valgrind as the
difference of CALLS = 2N and CALLS = N).
"""

import gc
import json
import math
import sys
import time
from array import array

import micropython


def _read_into(f, buf):
    if f.readinto(buf) != len(buf) * (4 if isinstance(buf, array) else 1):
        raise ValueError("benchmark data: short read")


def _float_net(cfg, f):
    from nanonn import Dense, Network
    from nanonn.float32.activations import LeakyReLU

    sizes, acts = cfg["sizes"], cfg["acts"]
    layers = []
    for i, act in enumerate(acts):
        if act == "leaky_relu":
            act = LeakyReLU(cfg["alpha"])
        layers.append(Dense(sizes[i + 1], inputs=sizes[i], activation=act))
    net = Network(*layers)
    for layer in net.layers:
        _read_into(f, layer.w)
        _read_into(f, layer.b)
    return net


def _int8_net(cfg, f, kernels):
    from nanonn.int8.network import QDense, QNetwork

    layers = []
    sizes = cfg["sizes"]
    for i, p in enumerate(cfg["int8"]):
        w = bytearray(sizes[i] * sizes[i + 1])
        _read_into(f, w)
        layers.append(QDense.from_params(w=w, **p))
    return QNetwork(layers, kernels=kernels)


# The baseline, written like the original nanonn: lists of floats, nested loops,
# one activation call per element.
def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _naive_net(cfg, f):
    alpha = cfg["alpha"]
    acts = {
        "relu": lambda v: v if v > 0 else 0.0,
        "leaky_relu": lambda v: v if v > 0 else alpha * v,
        "tanh": math.tanh,
        "sigmoid": _sigmoid,
        "linear": lambda v: v,
    }
    sizes = cfg["sizes"]
    layers = []
    for i, act in enumerate(cfg["acts"]):
        n, u = sizes[i], sizes[i + 1]
        w = array("f", bytes(4 * n * u))
        b = array("f", bytes(4 * u))
        _read_into(f, w)
        _read_into(f, b)
        rows = [[w[j * n + k] for k in range(n)] for j in range(u)]
        layers.append((rows, list(b), act, acts.get(act)))
    return layers


def _naive_forward(layers, x):
    for rows, b, name, act in layers:
        z = []
        for j in range(len(rows)):
            row = rows[j]
            s = b[j]
            for i in range(len(x)):
                s += row[i] * x[i]
            z.append(s)
        if name == "softmax":
            m = max(z)
            e = [math.exp(v - m) for v in z]
            t = sum(e)
            x = [v / t for v in e]
        else:
            x = [act(v) for v in z]
    return x


def main():
    folder, name, path = sys.argv[1], sys.argv[2], sys.argv[3]
    with open("%s/%s.json" % (folder, name)) as f:
        cfg = json.load(f)
    import nanonn  # noqa: F401  (library code is not model heap)
    import nanonn.int8.network  # noqa: F401

    gc.collect()
    base = gc.mem_alloc()
    if path == "naive":
        with open("%s/%s.f32" % (folder, name), "rb") as f:
            model = _naive_net(cfg, f)
        x = list(cfg["x"])

        def naive_run(v):
            return _naive_forward(model, v)

        run = naive_run

    elif path == "float":
        with open("%s/%s.f32" % (folder, name), "rb") as f:
            model = _float_net(cfg, f)
        x = array("f", cfg["x"])
        run = model.predict
    else:
        kernels = "python" if path == "int8_python" else "viper"
        with open("%s/%s.w8" % (folder, name), "rb") as f:
            model = _int8_net(cfg, f, kernels)
        if path == "int8_viper_float":
            x = array("f", cfg["x"])
            run = model.predict
        else:
            x = array("b", cfg["x8"])
            run = model.predict_int8
    gc.collect()
    model_heap = gc.mem_alloc() - base
    out = list(run(x))
    if len(sys.argv) > 4:
        for _ in range(int(sys.argv[4])):
            run(x)
        return
    # peak: heap in use after one inference with the collector off (model,
    # buffers and everything that inference allocated), above the baseline
    gc.collect()
    gc.disable()
    run(x)
    peak = gc.mem_alloc() - base
    gc.enable()
    # size the loop to about 0.25 s
    n = 1
    while True:
        t = time.ticks_us()
        for _ in range(n):
            run(x)
        dt = time.ticks_diff(time.ticks_us(), t)
        if dt > 200000 or n >= 1 << 20:
            break
        n = n * 8 if dt < 5000 else n * 250000 // dt + 1
    gc.collect()
    total = micropython.mem_total()
    t = time.ticks_us()
    for _ in range(n):
        run(x)
    best = time.ticks_diff(time.ticks_us(), t)
    per = (micropython.mem_total() - total) / n
    for _ in range(2):  # best of three windows: the host is shared
        t = time.ticks_us()
        for _ in range(n):
            run(x)
        best = min(best, time.ticks_diff(time.ticks_us(), t))
    dt = best
    print(
        json.dumps(
            {
                "net": name,
                "path": path,
                "iters": n,
                "inf_per_s": n * 1e6 / dt,
                "heap_per_inference": per,
                "model_heap": model_heap,
                "peak_heap": peak,
                "out": out,
            }
        )
    )


main()
