"""nanonn on MicroPython's WebAssembly port (Node): the same `.nnm` gives byte-identical
int8 outputs there as on the unix port, although the WebAssembly port runs the
plain-Python kernels (no native emitter) on a 32-bit machine and the unix port the viper
kernels on x64. The device test suite itself runs there through tests/test_device.py."""

from __future__ import annotations

import base64

import pytest

from support import run_device_json

pytestmark = pytest.mark.slow  # Node and the WebAssembly port: `make test` runs it, `make test-fast` not

# Device code: build seeded networks (float, and int8 quantized from calibration data),
# print each one's .nnm bytes (base64).
MAKE = r"""
import json, sys, binascii
from nanonn import Dense, Network
from nanonn.nnm.write import dumps
from nanonn.float32.activations import LeakyReLU
from nanonn.rand import Random
p = json.loads(sys.stdin.read())
rng = Random(p["seed"])
acts = {"leaky_relu": LeakyReLU(0.01)}
layers = [Dense(p["sizes"][1], inputs=p["sizes"][0], activation=acts.get(p["acts"][0], p["acts"][0]))]
for units, act in zip(p["sizes"][2:], p["acts"][1:]):
    layers.append(Dense(units, activation=acts.get(act, act)))
net = Network(*layers, seed=p["seed"])
X = [[rng.uniform(-1.0, 1.0) for _ in range(p["sizes"][0])] for _ in range(16)]
out = [binascii.b2a_base64(dumps(net)).decode().strip(), binascii.b2a_base64(dumps(net.quantize(X))).decode().strip()]
print(json.dumps(out))
"""

# Device code: load the model, predict every input (int8 bytes through predict_int8 where
# the model is int8, floats through predict), print the outputs.
RUN = r"""
import json, sys, binascii
from array import array
import nanonn
p = json.loads(sys.stdin.read())
net = nanonn.load(binascii.a2b_base64(p["model"].encode()))
out = {"kernels": getattr(net, "kernels", "float"), "float": [list(net.predict(array("f", x))) for x in p["floats"]]}
if hasattr(net, "predict_int8"):
    out["int8"] = [list(net.predict_int8(bytes(x))) for x in p["int8"]]
print(json.dumps(out))
"""

CASES = {
    "784-36-14-10 leaky_relu softmax": ([784, 36, 14, 10], ["leaky_relu", "leaky_relu", "softmax"], 3),
    "8-12-6-4 tanh sigmoid softplus": ([8, 12, 6, 4], ["tanh", "sigmoid", "softplus"], 5),
    "5-9-3 relu linear": ([5, 9, 3], ["relu", "linear"], 7),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_int8_outputs_byte_identical_to_the_unix_port(case):
    sizes, acts, seed = CASES[case]
    f32, i8 = run_device_json("micropython", MAKE, {"sizes": sizes, "acts": acts, "seed": seed})
    n = sizes[0]
    floats = [[((k * 7 + i * 13) % 41 - 20) / 10.0 for i in range(n)] for k in range(6)]
    int8 = [[(k * 37 + i * 11) % 256 for i in range(n)] for k in range(6)]
    payload = {"model": i8, "floats": floats, "int8": int8}
    unix = run_device_json("micropython", RUN, payload)
    wasm = run_device_json("wasm", RUN, payload)
    assert (unix["kernels"], wasm["kernels"]) == ("viper", "python")
    assert wasm["int8"] == unix["int8"]  # int8 outputs: the same bytes
    assert wasm["float"] == unix["float"]  # dequantized from the same int8: the same float32
    # The float model: the unix port sums in viper integer limbs (inputs >= 8), the
    # WebAssembly port in double-precision floats: equal to float32 rounding.
    uf = run_device_json("micropython", RUN, {"model": f32, "floats": floats})
    wf = run_device_json("wasm", RUN, {"model": f32, "floats": floats})
    for a, b in zip(uf["float"], wf["float"]):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    assert base64.b64decode(i8)[:4] == base64.b64decode(f32)[:4]  # both are .nnm (same magic)
