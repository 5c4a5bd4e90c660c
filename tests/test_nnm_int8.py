"""int8 `.nnm` models across host and device: the host quantizer's file predicts on the
device exactly like the host's int8 reference; a device-quantized network's file reads
back on the host byte for byte; `nanonn convert --quantize int8`."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from nanonn_tools import NanonnError, cli, nnm
from nanonn_tools.model import DenseSpec, ModelSpec
from nanonn_tools.quantize import QuantModelSpec, quantize_model
from support import run_device_json

ACTS = [
    ("relu", "leaky_relu", "softmax"),
    ("tanh", "sigmoid", "linear"),
    ("softplus", "relu", "sigmoid"),
]


def float_spec(acts, seed=0, sizes=(6, 10, 7, 4)) -> ModelSpec:
    rng = np.random.default_rng(seed)
    return ModelSpec(
        [
            DenseSpec(rng.normal(size=(u, n)) * 0.6, rng.normal(size=u) * 0.2, act, alpha=0.1)
            for n, u, act in zip(sizes[:-1], sizes[1:], acts)
        ]
    ).validate()


DEVICE = """
import json, sys
import nanonn
from nanonn.nnm.write import dumps
p = json.loads(sys.stdin.read())
with open(p["path"], "rb") as f:
    data = f.read()
out = {}
for name, net in (("path", nanonn.load(p["path"])), ("bytes", nanonn.load(data))):
    out[name] = [list(net.predict(x)) for x in p["x"]]
    out[name + "_int8"] = [list(net.predict_int8(bytes([v & 255 for v in q]))) for q in p["xq"]]
    out[name + "_same"] = dumps(net) == data
print(json.dumps(out))
"""


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
@pytest.mark.parametrize("acts", ACTS, ids=lambda a: "-".join(a))
def test_host_quantized_file_predicts_exactly_on_device(tmp_path, runtime, acts):
    spec = float_spec(acts)
    rng = np.random.default_rng(1)
    X = rng.uniform(-2, 2, (32, spec.inputs))
    q = quantize_model(spec, X)
    path = tmp_path / "q.nnm"
    nnm.write(q, path)
    back = nnm.read(path)
    assert isinstance(back, QuantModelSpec) and nnm.dumps(back) == path.read_bytes()
    xq = rng.integers(-128, 128, (5, spec.inputs))
    out = run_device_json(runtime, DEVICE, {"path": str(path), "x": X[:8].tolist(), "xq": xq.tolist()})
    expected = q.predict(X[:8]).astype(np.float32)
    expected8 = q.predict_int8(xq)
    for name in ("path", "bytes"):
        np.testing.assert_array_equal(np.asarray(out[name], dtype=np.float32), expected, err_msg=name)
        np.testing.assert_array_equal(out[name + "_int8"], expected8, err_msg=name)
        assert out[name + "_same"], "%s: the device re-saved different bytes" % name


DEVICE_QUANTIZE = """
import json, sys
from nanonn import Network, Dense
from nanonn.nnm.write import write
from nanonn.float32.activations import LeakyReLU
p = json.loads(sys.stdin.read())
net = Network(
    Dense(8, inputs=5, activation="tanh", weights=p["w0"]),
    Dense(6, activation=LeakyReLU(0.1), weights=p["w1"]),
    Dense(3, activation="softmax", weights=p["w2"]),
)
q = net.quantize(p["x"])
write(q, open(p["path"], "wb"))
print(json.dumps([list(q.predict(x)) for x in p["x"][:6]]))
"""


def test_device_quantized_network_reads_back_on_the_host(tmp_path):
    rng = np.random.default_rng(2)
    flat = [rng.normal(size=u * (n + 1)).tolist() for n, u in ((5, 8), (8, 6), (6, 3))]
    X = rng.uniform(-1, 1, (20, 5))
    path = tmp_path / "device_q.nnm"
    payload = {"w0": flat[0], "w1": flat[1], "w2": flat[2], "x": X.tolist(), "path": str(path)}
    device = run_device_json("micropython", DEVICE_QUANTIZE, payload)
    q = nnm.read(path)
    assert isinstance(q, QuantModelSpec) and [layer.activation for layer in q.layers] == [
        "tanh",
        "leaky_relu",
        "softmax",
    ]
    assert nnm.dumps(q) == path.read_bytes()
    np.testing.assert_array_equal(np.asarray(device, dtype=np.float32), q.predict(X[:6]).astype(np.float32))


def test_convert_quantize_int8_from_a_float_file(tmp_path, capsys):
    spec = float_spec(ACTS[0], seed=3)
    src = tmp_path / "float.nnm"
    nnm.write(spec, src)
    X = np.random.default_rng(4).uniform(-2, 2, (40, spec.inputs))
    np.save(tmp_path / "cal.npy", X)
    out = tmp_path / "q.nnm"
    quantize = ["--quantize", "int8", "--calibration"]
    assert cli.main(["convert", str(src), "-o", str(out)] + quantize + [str(tmp_path / "cal.npy")]) == 0
    assert nnm.read(out).validate() and out.read_bytes() == nnm.dumps(quantize_model(spec, X))
    assert cli.main(["info", str(out)]) == 0
    assert "int8 model, 3 layers" in capsys.readouterr().out
    # Errors: no calibration, wrong shape, already int8.
    assert cli.main(["convert", str(src), "-o", str(out), "--quantize", "int8"]) == 1
    assert "expected --calibration X.npy" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", X[:, :3])
    assert cli.main(["convert", str(src), "-o", str(out)] + quantize + [str(tmp_path / "bad.npy")]) == 1
    assert "expected shape (samples, 6), got (40, 3)" in capsys.readouterr().err
    again = ["convert", str(out), "-o", str(tmp_path / "qq.nnm")] + quantize + [str(tmp_path / "cal.npy")]
    assert cli.main(again) == 1
    assert "already int8" in capsys.readouterr().err


def _patched(data: bytes, offset: int, fmt: str, value) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    struct.pack_into("<I", b, len(b) - 4, zlib.crc32(bytes(b[:-4])))
    return bytes(b)


def test_host_reader_int8_errors():
    spec = float_spec(ACTS[1], seed=5)
    data = nnm.dumps(quantize_model(spec, np.random.default_rng(6).uniform(-1, 1, (10, 6))))
    with pytest.raises(NanonnError, match=r"layer 0 dtype: expected float32 \(1\), got 2"):
        nnm.loads(_patched(data, 6, "<H", 0))
    with pytest.raises(NanonnError, match="layer 0 flags: expected 0x01"):
        nnm.loads(_patched(data, 32 + 3, "<B", 0))
    first = struct.unpack_from("<I", data, 32 + 16)[0]
    with pytest.raises(
        NanonnError, match=r"layer 0 \(int8 dense\) in_scale: expected a finite float32 value > 0"
    ):
        nnm.loads(_patched(data, first, "<f", 0.0))


def test_tflite_int8_file_converts_to_an_nnm_that_predicts_exactly(tmp_path):
    import tflite_writer as tw  # tests/tflite_writer.py: builds TFLite flatbuffers without TensorFlow

    from nanonn_tools.converters import tflite as tflite_converter

    rng = np.random.default_rng(12)
    sizes = [5, 12, 9, 4]
    acts = [(0, ("LOGISTIC", {})), (1, None), (0, ("SOFTMAX", {}))]  # fused RELU on the middle layer
    layers = [
        (rng.normal(size=(u, n)) * np.sqrt(2.0 / n), rng.normal(size=u) * 0.3, fused, act)
        for n, u, (fused, act) in zip(sizes[:-1], sizes[1:], acts)
    ]
    x = rng.normal(size=(40, 5))
    src = tmp_path / "model.tflite"
    src.write_bytes(tw.int8_mlp(layers, x, per_channel=True, float_io=True))
    out = tmp_path / "model.nnm"
    assert cli.main(["convert", str(src), "-o", str(out)]) == 0
    spec = tflite_converter.load(str(src))
    assert isinstance(spec, QuantModelSpec)
    assert nnm.dumps(spec) == out.read_bytes()
    xq = spec.quantize_input(x[:6])
    device = run_device_json(
        "micropython", DEVICE, {"path": str(out), "x": x[:6].tolist(), "xq": xq.tolist()}
    )
    np.testing.assert_array_equal(device["path_int8"], spec.predict_int8(xq))
    np.testing.assert_array_equal(
        np.asarray(device["bytes"], dtype=np.float32), spec.predict(x[:6]).astype(np.float32)
    )
    assert device["path_same"] and device["bytes_same"]


DEVICE_LOAD_ERROR = """
import json, sys
from binascii import unhexlify
import nanonn
try:
    nanonn.load(unhexlify(json.loads(sys.stdin.read())))
    print(json.dumps("loaded"))
except ValueError as exc:
    print(json.dumps(str(exc)))
"""


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_int8_only_activation_is_refused_in_a_float_layer(runtime):
    """softmax_tflite (code 7) exists for int8 layers only: both readers refuse it on a float layer."""
    data = _patched(nnm.dumps(float_spec(ACTS[0], seed=2)), 32 + 2, "<B", 7)
    with pytest.raises(
        NanonnError, match=r"layer 0 activation: expected a float32 layer's activation.*got 7"
    ):
        nnm.loads(data)
    msg = run_device_json(runtime, DEVICE_LOAD_ERROR, data.hex())
    assert "layer 0 activation: expected a float32 layer's activation" in msg and "got 7" in msg, msg
