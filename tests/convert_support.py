"""Shared checks of the framework converter tests: a converted ModelSpec run
on the host (numpy reference, and after a .nnm round trip) and on the
MicroPython unix port (built from flat weights, and loaded from .nnm bytes),
compared with the framework's own outputs."""

from __future__ import annotations

import numpy as np

from nanonn_tools import nnm, reference
from nanonn_tools.model import DenseSpec, ModelSpec
from support import run_device_json

FLOAT_TOL = 1e-4  # converted float model vs the framework, absolute

# Builds nanonn.Network(Dense(..., weights=flat), ...) from the payload, and
# loads the same model from its .nnm bytes (nanonn.load, weights used in place);
# prints both networks' predictions for every input row.
DEVICE_PREDICT = """
import json, sys
from binascii import unhexlify
import nanonn
from nanonn import Network, Dense, Dropout
from nanonn.float32.activations import LeakyReLU
p = json.loads(sys.stdin.read())
layers = []
for l in p["layers"]:
    if l["type"] == "dropout":
        layers.append(Dropout(l["rate"]))
    else:
        act = LeakyReLU(l["alpha"]) if l["activation"] == "leaky_relu" else l["activation"]
        layers.append(Dense(l["units"], inputs=l["inputs"], activation=act, weights=l["weights"]))
net = Network(*layers)
loaded = nanonn.load(unhexlify(p["nnm"]))
print(json.dumps({
    "flat": [list(net.predict(x)) for x in p["x"]],
    "nnm": [list(loaded.predict(x)) for x in p["x"]],
}))
"""


def device_payload(spec: ModelSpec) -> list[dict]:
    out = []
    for layer in spec.layers:
        if isinstance(layer, DenseSpec):
            ref = {
                "w": layer.w,
                "b": np.zeros(layer.units) if layer.b is None else layer.b,
            }
            out.append(
                {
                    "type": "dense",
                    "units": layer.units,
                    "inputs": layer.inputs,
                    "activation": layer.activation,
                    "alpha": layer.alpha,
                    "weights": [float(v) for v in reference.flat_weights(ref)],
                }
            )
        else:
            out.append({"type": "dropout", "rate": layer.rate})
    return out


def device_predict(spec: ModelSpec, x: np.ndarray) -> dict:
    """The spec's outputs for each row of x on the MicroPython unix port (float32):
    "flat" from Dense(weights=flat) layers, "nnm" from nanonn.load of its .nnm bytes."""
    payload = {
        "layers": device_payload(spec),
        "nnm": nnm.dumps(spec).hex(),
        "x": np.asarray(x, dtype=np.float64).tolist(),
    }
    return {k: np.asarray(v) for k, v in run_device_json("micropython", DEVICE_PREDICT, payload).items()}


def check_parity(spec: ModelSpec, x: np.ndarray, expected: np.ndarray, tol: float = FLOAT_TOL) -> None:
    """Host reference, the host .nnm round trip and both unix-port networks within `tol`
    of the framework's outputs."""
    expected = np.asarray(expected, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    host = spec.predict(x)
    np.testing.assert_allclose(
        host, expected, rtol=0, atol=tol, err_msg="host ModelSpec.predict vs framework"
    )
    reloaded = nnm.loads(nnm.dumps(spec))
    np.testing.assert_allclose(
        reloaded.predict(x), expected, rtol=0, atol=tol, err_msg="host .nnm round trip"
    )
    device = device_predict(spec, x)
    for kind in ("flat", "nnm"):
        np.testing.assert_allclose(
            device[kind], expected, rtol=0, atol=tol, err_msg="micropython nanonn (%s) vs framework" % kind
        )


def activations(spec: ModelSpec) -> list:
    return [getattr(layer, "activation", "dropout") for layer in spec.layers]
