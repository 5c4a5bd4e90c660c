"""One float benchmark measurement on the device (run by tools/bench_float.py):

    micropython tools/bench_float_device.py DIR NET MODE REPS

DIR holds NET.json (sizes, activations, leaky_relu slope, input x, target t, a batch X, Y)
and NET.f32 (float32 weights then biases, layer by layer). MODE is one of `MODES`: the
seed's predict and SGD step (written like the original nanonn: lists of floats, nested
loops), nanonn's predict (the default `Dense`, which keeps decoded weights on this 8 MB heap, and
`cache=False`), and nanonn's training step in each
variant. REPS calls are made after one warm-up call (REPS 0: setup only, so that an
instruction counter can subtract it). Prints one JSON line: microseconds per call (best
of three timed windows, when REPS > 0), heap bytes allocated per call
(micropython.mem_total), the output of one predict, and the weights after one step.
"""

import gc
import json
import math
import sys
import time
from array import array

import micropython

MODES = (
    "seed_predict",
    "predict",
    "predict_nocache",
    "seed_train",
    "train_ce",
    "train_mse",
    "fit_momentum",
    "fit_batch8",
    "fit_batch8_momentum",
)
BATCH = 8  # samples per fit call in the fit modes (one epoch): the step is per sample


def _read(f, buf):
    if f.readinto(buf) != len(buf) * 4:
        raise ValueError("benchmark data: short read")


def _floats(n):
    return array("f", bytes(4 * n))


def _net(cfg, f, loss, cache):
    from nanonn import Dense, Network
    from nanonn.float32.activations import LeakyReLU

    sizes, layers = cfg["sizes"], []
    for i, act in enumerate(cfg["acts"]):
        a = LeakyReLU(cfg["alpha"]) if act == "leaky_relu" else act
        layers.append(Dense(sizes[i + 1], inputs=sizes[i], activation=a, cache=cache))
    net = Network(*layers, loss=loss)
    for layer in net.layers:
        _read(f, layer.w)
        _read(f, layer.b)
    return net


# ---- the seed: the original nanonn's way (lists of floats, nested loops) ----


def _seed_net(cfg, f):
    alpha = cfg["alpha"]
    acts = {
        "relu": (lambda v: v if v > 0 else 0.0, lambda v: 1.0 if v > 0 else 0.0),
        "leaky_relu": (lambda v: v if v > 0 else alpha * v, lambda v: 1.0 if v > 0 else alpha),
        "softmax": (None, None),
    }
    layers, sizes = [], cfg["sizes"]
    for i, act in enumerate(cfg["acts"]):
        n, u = sizes[i], sizes[i + 1]
        w, b = _floats(n * u), _floats(u)
        _read(f, w)
        _read(f, b)
        rows = [[w[j * n + k] for k in range(n)] for j in range(u)]
        layers.append({"w": rows, "b": list(b), "act": act, "f": acts[act]})
    return layers


def _seed_forward(layers, x):
    for layer in layers:
        rows, b = layer["w"], layer["b"]
        z = []
        for j in range(len(rows)):
            row = rows[j]
            s = b[j]
            for i in range(len(x)):
                s += row[i] * x[i]
            z.append(s)
        layer["x"] = x
        layer["z"] = z
        if layer["act"] == "softmax":
            m = max(z)
            e = [math.exp(v - m) for v in z]
            t = sum(e)
            x = [v / t for v in e]
        else:
            f = layer["f"][0]
            x = [f(v) for v in z]
    return x


def _seed_train(layers, x, target, rate):
    # cross-entropy with the softmax output: the error at the logits is out - target
    out = _seed_forward(layers, x)
    e = [out[i] - target[i] for i in range(len(out))]
    for k in range(len(layers) - 1, -1, -1):
        layer = layers[k]
        rows, b, xin, z = layer["w"], layer["b"], layer["x"], layer["z"]
        if layer["act"] != "softmax":
            df = layer["f"][1]
            e = [e[j] * df(z[j]) for j in range(len(z))]
        back = [0.0] * len(xin)  # the error of the layer's inputs, then the update
        for j in range(len(rows)):
            row = rows[j]
            for i in range(len(xin)):
                back[i] += e[j] * row[i]
        for j in range(len(rows)):
            row = rows[j]
            for i in range(len(xin)):
                row[i] -= rate * e[j] * xin[i]
            b[j] -= rate * e[j]
        e = back
    return out


def _seed_weights(layers):
    out = []
    for layer in layers:
        flat = []
        for j, row in enumerate(layer["w"]):
            flat.extend(row)
            flat.append(layer["b"][j])
        out.append(flat)
    return out


def _seed_setup(model, mode, x, t, rate):
    xl, tl = list(x), list(t)
    if mode == "seed_predict":
        return (lambda: _seed_forward(model, xl)), lambda: {"out": list(_seed_forward(model, xl))}
    return (lambda: _seed_train(model, xl, tl, rate)), lambda: {"weights": _seed_weights(model)}


def _setup(cfg, folder, name, mode):
    """(call, check): call() runs one measured call; check() gives the JSON extras."""
    path = "%s/%s.f32" % (folder, name)
    x, t = array("f", cfg["x"]), array("f", cfg["t"])
    rate = 0.01
    with open(path, "rb") as f:
        if mode.startswith("seed"):
            return _seed_setup(_seed_net(cfg, f), mode, x, t, rate)
        loss = "mse" if mode == "train_mse" else "cross_entropy"
        model = _net(cfg, f, loss, False if mode == "predict_nocache" else None)
    if mode in ("predict", "predict_nocache"):
        return (lambda: model.predict(x)), lambda: {"out": list(model.predict(x))}
    if mode in ("train_ce", "train_mse"):
        return (lambda: model.train(x, t, rate)), lambda: {"weights": model.get_weights()}
    X = [array("f", v) for v in cfg["X"]]
    Y = [array("f", v) for v in cfg["Y"]]
    momentum = 0.9 if mode.endswith("momentum") else 0.0
    batch = BATCH if "batch" in mode else 1

    def fit():
        model.fit(X, Y, epochs=1, rate=rate, batch_size=batch, momentum=momentum, shuffle=False)

    return fit, lambda: {"weights": model.get_weights()}


def main():
    folder, name, mode, reps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if mode not in MODES:
        raise ValueError("mode: expected one of %s, got %r" % (", ".join(MODES), mode))
    with open("%s/%s.json" % (folder, name)) as f:
        cfg = json.load(f)
    import nanonn  # noqa: F401  (library code is not part of the measurement)

    call, check = _setup(cfg, folder, name, mode)
    call()  # one step (or predict) from the initial weights: the host checks its result
    extras = check()
    per = len(cfg["X"]) if mode.startswith("fit") else 1  # steps (samples) per call
    result = {"net": name, "mode": mode, "steps_per_call": per}
    gc.collect()  # also with REPS 0: the host subtracts that run, and a full collection of
    # the 8 MB heap (millions of instructions) is not part of a call
    if reps:
        total = micropython.mem_total()
        t0 = time.ticks_us()
        for _ in range(reps):
            call()
        best = time.ticks_diff(time.ticks_us(), t0)
        result["bytes_per_step"] = (micropython.mem_total() - total) / reps / per
        for _ in range(2):  # best of three windows: the host is shared
            t0 = time.ticks_us()
            for _ in range(reps):
                call()
            best = min(best, time.ticks_diff(time.ticks_us(), t0))
        result["us_per_step"] = best / reps / per
    result.update(extras)
    print(json.dumps(result))


main()
