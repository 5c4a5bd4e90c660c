"""The .nnm format across host and device: host writer -> device reader -> device writer,
parity with the numpy reference, the host reader's checks, CRC and memory limits."""

from __future__ import annotations

import re
import struct
import zlib

import numpy as np
import pytest

from nanonn_tools import NanonnError, nnm
from nanonn_tools.model import DenseSpec, DropoutSpec, ModelSpec
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
    h = list(nnm.HEADER.unpack_from(data, 0))
    count, delta = h[7], 8 + 4 * h[7]
    h[2], h[4], h[5], h[6], h[11] = 1, h[4] + delta, 40, 36, h[11] + delta
    body = nnm.HEADER.pack(*h) + b"\xab" * 8
    for i in range(count):
        rec = list(nnm.RECORD.unpack_from(data, 32 + 32 * i))
        rec[7] += delta
        body += nnm.RECORD.pack(*rec) + b"\xcd" * 4
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
