"""Momentum SGD with the fixed-point velocity (nanonn.float32.momentum_viper) trains as well
as float32: xor, iris and digits, batch size 1, momentum 0.9, the same seeded initial
weights, sample order and number of epochs three ways:

- the device library on the MicroPython unix port with a 16 MB heap (the one-pass kernel,
  block fixed-point velocity);
- the same library with its float32 velocity (three `axpy_rows` passes, what a board-sized
  heap runs);
- `nanonn_tools.reference` (numpy, float64).

Each reaches the same test accuracy: within one test sample of the others on iris and
digits (train/test splits fixed below), all four samples on xor, above a floor (xor 1.0, iris and
digits 0.9); and the fixed-point run's final weights within 1e-3 (absolute) of the float32
run's (its velocity differs from float32's by about 2^-24 of each step's term: both are
roundings of the same recurrence). Epochs: xor 150, iris 30, digits 10 (1,200 samples).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from nanonn_tools import reference
from support import ROOT, run_device_json

DEVICE_CODE = """
import json, sys
from nanonn import Dense, Network
from nanonn.float32 import layers
spec = json.loads(sys.stdin.read())
if not spec["fixed"]:  # the float32 velocity: the three axpy_rows passes of a board
    layers._momentum_rows, layers._momentum_decided = None, True
sizes, acts = spec["sizes"], spec["acts"]
net = Network(*[Dense(sizes[i + 1], inputs=sizes[i], activation=acts[i]) for i in range(len(acts))], seed=spec["seed"])
net.set_loss("cross_entropy")
w0 = net.get_weights()
net.fit(spec["x"], spec["y"], epochs=spec["epochs"], rate=spec["rate"], batch_size=1, momentum=0.9, shuffle=False)
_, acc = net.evaluate(spec["tx"], spec["ty"])
used = layers._momentum_rows is not None and net.layers[0].velocity[2] is not None
print(json.dumps({"w0": w0, "w": net.get_weights(), "acc": acc, "fixed": used}))
"""


def _onehot(labels, k):
    return np.eye(k)[np.asarray(labels)]


def _xor():
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = _onehot([0, 1, 1, 0], 2)
    return x, y, x, y, [2, 8, 2], ["relu", "softmax"], 0.1, 150


def _iris():
    data = json.loads((ROOT / "tests" / "data" / "iris.json").read_text())
    x, labels = np.array(data["x"]), np.array(data["y"])
    test = np.arange(len(x)) % 3 == 0  # 50 test samples, 100 to train on
    y = _onehot(labels, 3)
    return x[~test], y[~test], x[test], y[test], [4, 8, 3], ["relu", "softmax"], 0.01, 30


def _digits():
    from sklearn.datasets import load_digits  # (the pinned dev environment has it, as test_quant)

    x, labels = load_digits(return_X_y=True)
    x = x / 16.0
    y = _onehot(labels, 10)
    return x[:1200], y[:1200], x[1200:], y[1200:], [64, 24, 10], ["relu", "softmax"], 0.005, 10


def _reference(sizes, acts, w0, x, y, rate, epochs, tx, ty):
    """The float64 reference from the device's initial weights: samples in order, one step each."""
    layers = []
    for i, flat in enumerate(w0):
        a = np.asarray(flat, dtype=np.float64).reshape(sizes[i + 1], sizes[i] + 1)
        layers.append({"w": a[:, :-1], "b": a[:, -1], "activation": acts[i]})
    velocity = None
    for _ in range(epochs):
        for k in range(len(x)):
            layers, velocity = reference.batch_step(
                layers, x[k : k + 1], y[k : k + 1], "cross_entropy", rate, 0.9, velocity
            )
    out = np.array([reference.predict(layers, row) for row in tx])
    return float(np.mean(np.argmax(out, axis=1) == np.argmax(ty, axis=1)))


@pytest.mark.parametrize("name", ["xor", "iris", pytest.param("digits", marks=pytest.mark.slow)])
def test_fixed_point_velocity_reaches_float32_accuracy(name):
    x, y, tx, ty, sizes, acts, rate, epochs = {"xor": _xor, "iris": _iris, "digits": _digits}[name]()
    f32 = lambda a: np.asarray(a, dtype=np.float32).astype(np.float64).tolist()  # noqa: E731
    spec = {"sizes": sizes, "acts": acts, "seed": 3, "x": f32(x), "y": f32(y), "tx": f32(tx), "ty": f32(ty)}
    spec.update(rate=rate, epochs=epochs)
    fixed = run_device_json("micropython", DEVICE_CODE, dict(spec, fixed=True))
    float32 = run_device_json("micropython", DEVICE_CODE, dict(spec, fixed=False))
    assert fixed["fixed"] and not float32["fixed"], "the two device runs took the two velocity paths"
    ref = _reference(
        sizes,
        acts,
        fixed["w0"],
        np.asarray(spec["x"]),
        np.asarray(spec["y"]),
        rate,
        epochs,
        spec["tx"],
        spec["ty"],
    )
    one = 1.0 / len(tx) + 1e-9
    accs = (fixed["acc"], float32["acc"], ref)
    print("%s: fixed-point %.4f, float32 %.4f, float64 reference %.4f" % ((name,) + accs))
    if name == "xor":
        assert accs == (1.0, 1.0, 1.0), accs
    assert abs(fixed["acc"] - float32["acc"]) <= one, accs
    assert abs(fixed["acc"] - ref) <= one, accs
    assert fixed["acc"] >= {"xor": 1.0, "iris": 0.9, "digits": 0.9}[name], accs
    for a, b in zip(fixed["w"], float32["w"]):
        assert np.max(np.abs(np.asarray(a) - np.asarray(b))) <= 1e-3, name
