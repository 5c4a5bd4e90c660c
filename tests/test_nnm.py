"""The .nnm format across host and device: host writer -> device reader -> device writer
(byte for byte, for every layer type and option), parity with the numpy reference, the host
reader's checks, CRC and memory limits."""

from __future__ import annotations

import dataclasses
import re
import struct
import zlib

import numpy as np
import pytest

from nanonn_tools import NanonnError, nnm
from nanonn_tools.model import DenseSpec, DropoutSpec, ModelSpec
from nanonn_tools.quantize import ACTIVATIONS as INT8_ACTIVATIONS
from nanonn_tools.quantize import SOFTMAXES, QuantModelSpec, quantize_model
from nanonn_tools.reference import ACTIVATIONS
from support import run_device, run_device_json


def random_spec(
    seed: int = 0, sizes=(5, 8, 6, 3), acts=("tanh", "leaky_relu", "softmax"), bias=True
) -> ModelSpec:
    rng = np.random.default_rng(seed)
    layers: list = []
    for k, (n, u, act) in enumerate(zip(sizes[:-1], sizes[1:], acts)):
        b = rng.uniform(-0.5, 0.5, u) if (bias or k % 2) else None
        layers.append(DenseSpec(rng.uniform(-1, 1, (u, n)), b, act, alpha=0.05))
        if k == 0:
            layers.append(DropoutSpec(0.3))
    return ModelSpec(layers).validate()


def f32_spec(spec: ModelSpec) -> ModelSpec:
    """The spec with its weights rounded to float32, as stored."""
    stored = nnm.loads(nnm.dumps(spec))
    assert isinstance(stored, ModelSpec)
    return stored


DEVICE_PREDICT = """
import json, sys
import nanonn
p = json.loads(sys.stdin.read())
path, X = p["path"], p["x"]
with open(path, "rb") as f:
    data = f.read()
def from_file(path):
    with open(path, "rb") as f:
        return nanonn.load(f)
nets = {
    "path": nanonn.load(path),
    "file": from_file(path),
    "bytes": nanonn.load(data),
    "memoryview": nanonn.load(memoryview(data)),
}
out = {name: [list(net.predict(x)) for x in X] for name, net in nets.items()}
nets["path"].save(path + ".saved")
with open(path + ".saved", "rb") as f:
    out["same_bytes"] = f.read() == data
print(json.dumps(out))
"""


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
@pytest.mark.parametrize(
    "acts",
    [
        ("tanh", "leaky_relu", "softmax"),
        ("relu", "sigmoid", "linear"),
        ("softplus", "linear", "sigmoid"),
    ],
)
def test_device_loads_host_file_from_every_source(tmp_path, runtime, acts):
    spec = random_spec(1, acts=acts, bias=acts[0] != "relu")
    path = tmp_path / "m.nnm"
    nnm.write(spec, path)
    X = np.random.default_rng(2).uniform(-2, 2, (6, spec.inputs))
    expected = f32_spec(spec).predict(X)
    out = run_device_json(runtime, DEVICE_PREDICT, {"path": str(path), "x": X.tolist()})
    for name in ("path", "file", "bytes", "memoryview"):
        np.testing.assert_allclose(out[name], expected, rtol=1e-5, atol=1e-6, err_msg=name)
    assert out["same_bytes"], "device save() differs from the host's file"


def test_host_round_trip_is_exact():
    spec = random_spec(3)
    data = nnm.dumps(spec)
    back = nnm.loads(data)
    assert nnm.dumps(back) == data
    for a, b in zip(spec.layers, back.layers):
        assert type(a) is type(b)
        if isinstance(a, DenseSpec):
            np.testing.assert_array_equal(b.w, a.w.astype(np.float32))
            assert b.activation == a.activation
    assert back.layers[1].rate == pytest.approx(0.3, abs=1e-7)
    assert {layer.activation for layer in random_spec(0).dense_layers()} <= set(ACTIVATIONS)


def _every_option() -> dict:
    """{name: (spec, float spec, calibration X)}: every layer type and option the format
    holds. float32 (X None): each activation on a layer with and without bias, leaky_relu
    slopes 0 and 2.5, dropout rates 0 and 0.999; int8: each int8 activation (softmax and
    softmax_tflite on the last layer), quantized from the float spec on X (softmax_tflite,
    which only a TFLite file holds: no float spec)."""
    rng = np.random.default_rng(21)

    def dense(n, u, act, bias, alpha=0.1):
        return DenseSpec(
            rng.normal(size=(u, n)) * 0.5, rng.normal(size=u) * 0.2 if bias else None, act, alpha
        )

    models: dict = {}
    for act in ACTIVATIONS:
        for bias in (True, False):
            hidden = "relu" if act in SOFTMAXES else act  # softmax: the last layer only
            spec = ModelSpec([dense(5, 7, hidden, bias), DropoutSpec(0.25), dense(7, 3, act, not bias)])
            models["%s-%s" % (act, "bias" if bias else "nobias")] = (spec.validate(), spec, None)
    spec = ModelSpec(
        [dense(4, 6, "leaky_relu", True, 0.0), DropoutSpec(0.0), dense(6, 2, "leaky_relu", False, 2.5)]
    )
    models["leaky0-dropout0"] = (spec.validate(), spec, None)
    spec = ModelSpec([dense(3, 3, "tanh", False), DropoutSpec(0.999)])
    models["dropout0.999"] = (spec.validate(), spec, None)
    X = rng.uniform(-2, 2, (24, 5))
    for act in INT8_ACTIVATIONS:
        if act == "softmax_tflite":
            continue  # below: softmax's model with TFLite's table
        hidden = "relu" if act in SOFTMAXES else act
        spec = ModelSpec([dense(5, 6, hidden, True, 0.2), dense(6, 4, act, True, 0.3)]).validate()
        models["int8-" + act] = (quantize_model(spec, X), spec, X)
    q = models["int8-softmax"][0]
    table = np.exp(-0.05 * np.arange(256)).astype("<f4").view("<i4")  # TFLite's: float32 bits
    tfl = dataclasses.replace(q.layers[-1], activation="softmax_tflite", exp_table=table)
    models["int8-softmax_tflite"] = (dataclasses.replace(q, layers=q.layers[:-1] + [tfl]), None, None)
    return models


def _same_layers(a, b):
    """`b` (read back) holds the values of `a` as stored: float32, every int8 field."""
    assert type(a) is type(b) and len(a.layers) == len(b.layers)
    for x, y in zip(a.layers, b.layers):
        assert type(x) is type(y)
        if isinstance(x, DropoutSpec):
            assert y.rate == np.float32(x.rate)
        elif isinstance(x, DenseSpec):
            np.testing.assert_array_equal(y.w, x.w.astype(np.float32))
            assert (y.b is None) == (x.b is None)
            if x.b is not None:
                np.testing.assert_array_equal(y.b, x.b.astype(np.float32))
            assert y.activation == x.activation
            if x.activation == "leaky_relu":
                assert y.alpha == np.float32(x.alpha)
        else:
            for f in dataclasses.fields(x):
                got, want = getattr(y, f.name), getattr(x, f.name)
                if f.name == "alpha":
                    want = float(np.float32(want)) if x.activation == "leaky_relu" else 0.0
                if isinstance(want, np.ndarray):
                    np.testing.assert_array_equal(got, want, err_msg=f.name)
                else:
                    assert got == want, (f.name, got, want)


def _device_layers(spec: ModelSpec) -> list:
    """The layers of `spec` as the device script builds them: ["dropout", rate] or
    ["dense", inputs, units, activation, alpha, bias, flat weights (each unit's then its bias)]."""
    out = []
    for layer in spec.layers:
        if isinstance(layer, DropoutSpec):
            out.append(["dropout", layer.rate])
            continue
        w = layer.w.astype(np.float32).astype(np.float64)
        rows = w if layer.b is None else np.hstack([w, layer.b.astype(np.float32)[:, None]])
        bias = layer.b is not None
        out.append(
            ["dense", layer.inputs, layer.units, layer.activation, layer.alpha, bias, rows.ravel().tolist()]
        )
    return out


DEVICE_RESAVE = """
import json, sys
import nanonn
from nanonn import Dense, Dropout, Network
from nanonn.float32.activations import LeakyReLU
from nanonn.nnm.write import dumps
out = []
for m in json.loads(sys.stdin.read()):
    with open(m["path"], "rb") as f:
        data = f.read()
    row = [dumps(nanonn.load(data)) == data, dumps(nanonn.load(m["path"])) == data]
    if m["layers"] is not None:  # the same network built on the device (and quantized there)
        layers = []
        for kind, *p in m["layers"]:
            if kind == "dropout":
                layers.append(Dropout(p[0]))
            else:
                n, u, act, alpha, bias, flat = p
                act = LeakyReLU(alpha) if act == "leaky_relu" else act
                layers.append(Dense(u, inputs=n, activation=act, use_bias=bias, weights=flat))
        net = Network(*layers)
        if m["x"] is not None:
            net = net.quantize(m["x"])
        row.append(dumps(net) == data)
    out.append(row)
print(json.dumps(out))
"""


def test_every_layer_option_round_trips_on_the_host():
    """Host writer -> host reader -> host writer: the same bytes and the stored values."""
    for name, (spec, _float, _x) in _every_option().items():
        data = nnm.dumps(spec)
        back = nnm.loads(data)
        assert isinstance(back, QuantModelSpec if name.startswith("int8") else ModelSpec), name
        assert nnm.dumps(back) == data, name
        _same_layers(spec, back)


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_every_layer_option_is_the_device_writers_bytes(tmp_path, runtime):
    """For every layer type and option the host's file is the device writer's bytes: for the
    network the device reads from it (from bytes and from its path), and for the same network
    built on the device from its weights (int8: quantized there on the same inputs)."""
    models, expected = [], {}
    for name, (spec, source, X) in _every_option().items():
        path = str(tmp_path / (name + ".nnm"))
        nnm.write(spec, path)
        layers = None if source is None else _device_layers(source)
        models.append({"path": path, "layers": layers, "x": None if X is None else X.tolist()})
        expected[name] = [True] * (2 if source is None else 3)
    out = run_device_json(runtime, DEVICE_RESAVE, models)
    assert dict(zip(expected, out)) == expected


def test_host_reader_rejects_every_truncation_and_trailing_bytes():
    data = nnm.dumps(random_spec(4))
    for cut in range(len(data)):
        with pytest.raises(NanonnError, match="size|magic"):
            nnm.loads(data[:cut])
    with pytest.raises(
        NanonnError, match=r"file size: expected %d bytes .*got %d" % (len(data), len(data) + 1)
    ):
        nnm.loads(data + b"\0")


def _patched(data: bytes, offset: int, fmt: str, value) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    struct.pack_into("<I", b, len(b) - 4, zlib.crc32(bytes(b[:-4])))
    return bytes(b)


@pytest.mark.parametrize(
    "offset, fmt, value, message",
    [
        (0, "4s", b"ONNX", r"magic: expected b'NNM\\x1a', got b'ONNX'"),
        (4, "<B", 3, "version: expected major 1, got 3.0"),
        (32 + 2, "<B", 42, "layer 0 activation: expected one of linear .*, got 42"),
        (32 + 1, "<B", 2, r"layer 0 dtype: expected float32 \(1\), got 2"),
        (32 + 8, "<I", 9, "layer 0 data_size: expected"),
        (64 + 12, "f", 1.0, r"layer 1 \(dropout\)"),
        (24, "<I", 2, "outputs: expected 3"),
    ],
)
def test_host_reader_messages(offset, fmt, value, message):
    with pytest.raises(NanonnError, match=message):
        nnm.loads(_patched(nnm.dumps(random_spec(5)), offset, fmt, value))


def test_host_reader_rejects_crc_mismatch():
    data = bytearray(nnm.dumps(random_spec(6)))
    data[100] ^= 0x40
    with pytest.raises(NanonnError, match="crc32: expected 0x[0-9a-f]{8} .*got 0x"):
        nnm.loads(bytes(data))


def test_writer_refuses_invalid_specs():
    spec = random_spec(7)
    spec.layers[0].w[0, 0] = np.inf
    with pytest.raises(NanonnError, match="layer 0 .*finite"):
        nnm.dumps(spec)


def test_viper_crc32_matches_zlib():
    # The fallback for ports without binascii.crc32, run where viper exists.
    rng = np.random.default_rng(8)
    blobs = [bytes(rng.integers(0, 256, n, dtype=np.uint8)) for n in (0, 1, 7, 64, 1000)]
    code = """
import json, sys
from nanonn.crc32_viper import crc32_viper
blobs = [bytes(b) for b in json.loads(sys.stdin.read())]
out = [crc32_viper(b, len(b), 0) for b in blobs]
out.append(crc32_viper(blobs[4][500:], 500, crc32_viper(blobs[4][:500], 500, 0)))
print(json.dumps(out))
"""
    got = run_device_json("micropython", code, [list(b) for b in blobs])
    assert got == [zlib.crc32(b) for b in blobs] + [zlib.crc32(blobs[4])]


MEMORY = """
import json, sys, gc
import nanonn
p = json.loads(sys.stdin.read())
small = nanonn.load(p["small"])
before = list(small.predict(p["x"]))
result = {"before": before}
try:
    nanonn.load(p["big"])
    result["error"] = None
except MemoryError as exc:
    result["error"] = str(exc)
result["after"] = list(small.predict(p["x"]))
print(json.dumps(result))
"""


def test_memory_error_before_allocating_and_previous_network_intact(tmp_path):
    small = random_spec(9, sizes=(4, 6, 2), acts=("relu", "softmax"))
    big = random_spec(10, sizes=(200, 200, 2), acts=("relu", "softmax"))  # 160 KB of weights
    nnm.write(small, tmp_path / "small.nnm")
    nnm.write(big, tmp_path / "big.nnm")
    payload = {
        "small": str(tmp_path / "small.nnm"),
        "big": str(tmp_path / "big.nnm"),
        "x": [0.5, -1.0, 2.0, 0.1],
    }
    out = run_device_json("micropython", MEMORY, payload, heap="192K")
    assert out["error"] is not None, "a 160 KB model loaded into a 192 KB heap (~148 KB free)"
    needed, available = map(int, re.findall(r"(\d+) bytes of RAM, (\d+) available", out["error"])[0])
    assert needed > 160000 and available < needed
    assert out["after"] == out["before"]
    np.testing.assert_allclose(out["before"], f32_spec(small).predict(payload["x"]), rtol=1e-5)


def test_unknown_source_type_is_a_type_error():
    proc = run_device(
        "micropython", ["-c", "import nanonn\ntry:\n nanonn.load(42)\nexcept TypeError as e:\n print(e)"]
    )
    assert (
        "source: expected a path, a binary file object or bytes/bytearray/memoryview of bytes, got int"
        in proc.stdout
    )


def test_host_reader_skips_fields_of_a_later_minor_version():
    data = nnm.dumps(random_spec(11))
    h = nnm.Header._make(nnm.HEADER.unpack_from(data, 0))
    count, delta = h.layer_count, 8 + 4 * h.layer_count
    grown_h = h._replace(
        minor=1,
        file_size=h.file_size + delta,
        header_size=40,
        record_size=36,
        data_offset=h.data_offset + delta,
    )
    body = nnm.HEADER.pack(*grown_h) + b"\xab" * 8
    for i in range(count):
        rec = nnm.Record._make(nnm.RECORD.unpack_from(data, 32 + 32 * i))
        body += nnm.RECORD.pack(*rec._replace(data_offset=rec.data_offset + delta)) + b"\xcd" * 4
    body += data[32 + 32 * count : -4]
    grown = body + struct.pack("<I", zlib.crc32(body))
    assert nnm.dumps(nnm.loads(grown)) == data


HEAP_STEP = """
import json, sys
import nanonn
p = json.loads(sys.stdin.read())
small = nanonn.load(p["small"])
x = [0.5, -1.0, 2.0, 0.1]
before = list(small.predict(x))
out = {}
for name in ("int8", "float"):
    try:
        net = nanonn.load(p[name])
        out[name] = "ok %d" % net.outputs
    except MemoryError as exc:
        out[name] = "MemoryError: %s" % exc
    net = None
out["intact"] = list(small.predict(x)) == before
print(json.dumps(out))
"""


def test_low_memory_loads_fail_only_with_the_bytes_needed(tmp_path):
    from nanonn_tools.quantize import quantize_model

    small = random_spec(12, sizes=(4, 6, 2), acts=("relu", "softmax"))
    big = random_spec(13, sizes=(784, 36, 14, 10), acts=("leaky_relu", "leaky_relu", "softmax"))
    X = np.random.default_rng(14).uniform(0, 1, (16, 784))
    paths = {"small": tmp_path / "small.nnm", "float": tmp_path / "float.nnm", "int8": tmp_path / "int8.nnm"}
    nnm.write(small, paths["small"])
    nnm.write(big, paths["float"])
    nnm.write(quantize_model(big, X), paths["int8"])
    payload = {k: str(v) for k, v in paths.items()}
    outcomes = []
    for heap in ("176K", "224K", "288K", "512K"):
        out = run_device_json("micropython", HEAP_STEP, payload, heap=heap)
        assert out["intact"], heap
        for name in ("int8", "float"):
            result = out[name]
            assert result == "ok %d" % 10 or re.match(
                r"MemoryError: nanonn.load: (the model needs \d+ bytes of RAM, \d+ available|importing the int8 code)",
                result,
            ), (heap, name, result)
            outcomes.append(result.startswith("ok"))
    assert any(outcomes) and not all(outcomes), outcomes
