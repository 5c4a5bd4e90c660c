"""The `.nnm` model format on the host: `dumps`/`write` a ModelSpec, `loads`/`read` one back.

The format is specified in `docs/format.md` (and beside the device reader,
`mpy/nanonn/nnm/read.py`); its codes, struct formats and alignment are the device
package's own (`nanonn/nnm/codes.py`, `nanonn/nnm/layout.py`, via `device_package`).
Float weights are stored as float32 (a float64 ModelSpec is rounded once, to nearest). The host reader
checks the same things as the device reader and raises `NanonnError` naming
the field, the expected and the actual value.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import NoReturn

import numpy as np

from . import NanonnError
from .device_package import codes, device_module
from .model import DenseSpec, DropoutSpec, ModelSpec

layout = device_module("nnm.layout")
HEADER = struct.Struct(layout.HEADER)
RECORD = struct.Struct(layout.RECORD)
MAX_META: int = device_module("nnm.read")._MAX_META  # largest header_size and record_size (docs/format.md)
DENSE: int = layout.DENSE
DROPOUT: int = layout.DROPOUT
FLOAT32: int = layout.FLOAT32
INT8: int = layout.INT8
FLAG_INT8: int = layout.FLAG_INT8
BIAS: int = layout.BIAS
DROPOUT_SEED = 1  # the device Dropout's default seed (ModelSpec has none)
align = layout.align  # `n` rounded up to the format's block alignment (codes.ALIGN)


def _f32(v: float) -> float:
    return float(np.float32(v))


# ---------------------------------------------------------------- writing


def _dense_block(layer: DenseSpec) -> bytes:
    w = np.ascontiguousarray(np.asarray(layer.w, dtype="<f4"))
    if layer.b is None:
        return w.tobytes()
    return w.tobytes() + np.asarray(layer.b, dtype="<f4").tobytes()


def _is_int8(spec) -> bool:
    return type(spec).__name__ == "QuantModelSpec"


def dumps(spec) -> bytes:
    """The .nnm bytes of a ModelSpec (float32) or a QuantModelSpec (int8), validated first."""
    spec.validate()
    int8 = _is_int8(spec)
    records, blocks = [], []
    for layer in spec.layers:
        if int8:
            from . import nnm_int8

            block = nnm_int8.block(layer)
            act = codes.ACTIVATIONS[layer.activation]
            param = _f32(layer.alpha) if layer.activation == "leaky_relu" else 0.0
            rec = (DENSE, INT8, act, BIAS, layer.inputs, layer.units, param, 0, len(block), 0, 0)
        elif isinstance(layer, DenseSpec):
            block = _dense_block(layer)
            act = codes.ACTIVATIONS[layer.activation]
            param = _f32(layer.alpha) if layer.activation == "leaky_relu" else 0.0
            flags = BIAS if layer.b is not None else 0
            rec = (DENSE, FLOAT32, act, flags, layer.inputs, layer.units, param, 0, len(block), 0, 0)
        elif isinstance(layer, DropoutSpec):
            block = b""
            rec = (DROPOUT, 0, 0, 0, layer.units, layer.units, layer.rate, 0, 0, DROPOUT_SEED, 0)
        else:  # validate() refuses other layers; kept for a clear message
            raise NanonnError("layer %s: unsupported; supported: dense, dropout" % type(layer).__name__)
        records.append(rec)
        blocks.append(block)
    return assemble(records, blocks)


def assemble(records: list[tuple], blocks: list[bytes]) -> bytes:
    """The .nnm bytes of layer `records` (tuples of the RECORD fields; data_offset and
    data_size are set here from `blocks`) and their data blocks (padded here): the header
    (int8 when the first record's dtype is int8), records, blocks and CRC."""
    if len(records) > codes.MAX_LAYERS:
        raise NanonnError("model: expected at most %d layers, got %d" % (codes.MAX_LAYERS, len(records)))
    data_offset = align(codes.HEADER_SIZE + codes.RECORD_SIZE * len(records))
    cursor = data_offset
    placed, padded = [], []
    for rec, block in zip(records, blocks):
        placed.append(rec[:7] + (cursor, len(block)) + rec[9:])
        padded.append(block + bytes(align(len(block)) - len(block)))
        cursor += len(padded[-1])
    file_size = cursor + codes.CRC_SIZE
    if file_size > codes.MAX_FILE_SIZE:
        raise NanonnError("model size: expected at most %d bytes, got %d" % (codes.MAX_FILE_SIZE, file_size))
    head = bytearray(data_offset)
    HEADER.pack_into(
        head,
        0,
        codes.MAGIC,
        codes.VERSION_MAJOR,
        codes.VERSION_MINOR,
        FLAG_INT8 if records[0][1] == INT8 else 0,
        file_size,
        codes.HEADER_SIZE,
        codes.RECORD_SIZE,
        len(records),
        0,
        records[0][4],
        records[-1][5],
        data_offset,
    )
    for i, rec in enumerate(placed):
        RECORD.pack_into(head, codes.HEADER_SIZE + i * codes.RECORD_SIZE, *rec)
    body = bytes(head) + b"".join(padded)
    return body + struct.pack("<I", zlib.crc32(body))


def write(spec, path) -> int:
    """Write a ModelSpec to `path` (temp file + rename); returns the file size."""
    data = dumps(spec)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return len(data)


# ---------------------------------------------------------------- reading


def _fail(field: str, expected, got) -> NoReturn:
    raise NanonnError("%s: expected %s, got %s" % (field, expected, got))


def _choices(table: dict) -> str:
    return ", ".join("%s (%d)" % item for item in table.items())


def _header(data: bytes) -> tuple:
    if len(data) < codes.HEADER_SIZE:
        _fail("file size", "at least %d bytes (the header)" % codes.HEADER_SIZE, "%d bytes" % len(data))
    (
        magic,
        major,
        minor,
        flags,
        file_size,
        header_size,
        record_size,
        count,
        reserved,
        inputs,
        outputs,
        data_offset,
    ) = HEADER.unpack_from(data, 0)
    if magic != codes.MAGIC:
        _fail("magic", repr(codes.MAGIC), repr(magic))
    if major != codes.VERSION_MAJOR:
        _fail("version", "major %d" % codes.VERSION_MAJOR, "%d.%d" % (major, minor))
    known = 0
    for bit in codes.FLAGS.values():
        known |= bit
    if flags & ~known:
        _fail("flags", "a subset of 0x%04x" % known, "0x%04x" % flags)
    if file_size != len(data):
        _fail("file size", "%d bytes (header field file_size)" % file_size, "%d bytes" % len(data))
    for name, value in (("header_size", header_size), ("record_size", record_size)):
        if value < 32 or value > MAX_META or value % 4:
            _fail(name, "a multiple of 4 from 32 to %d" % MAX_META, value)
    if not 1 <= count <= codes.MAX_LAYERS:
        _fail("layer_count", "1 to %d" % codes.MAX_LAYERS, count)
    if reserved:
        _fail("header reserved field", 0, reserved)
    end = align(header_size + count * record_size)
    if data_offset != end:
        _fail("data_offset", "%d (header and %d layer records, aligned to 4)" % (end, count), data_offset)
    if end + codes.CRC_SIZE > file_size:
        _fail("file_size", "at least %d bytes" % (end + codes.CRC_SIZE), file_size)
    stored = struct.unpack_from("<I", data, file_size - codes.CRC_SIZE)[0]
    computed = zlib.crc32(data[: file_size - codes.CRC_SIZE])
    if stored != computed:
        _fail("crc32", "0x%08x (computed over the file)" % computed, "0x%08x (stored in the file)" % stored)
    return flags, header_size, record_size, count, inputs, outputs, data_offset


def loads(data: bytes, source: str = ""):
    """Parse and check .nnm bytes; returns a validated ModelSpec (float32) or QuantModelSpec (int8)."""
    data = bytes(data)
    flags, header_size, record_size, count, n, outputs, cursor = _header(data)
    int8 = bool(flags & FLAG_INT8)
    data_end = len(data) - codes.CRC_SIZE
    layers: list = []
    for i in range(count):
        rec = RECORD.unpack_from(data, header_size + i * record_size)
        kind, dtype, act, lflags, inputs, units, param, offset, size, seed, reserved = rec
        where = "layer %d" % i
        if inputs != n:
            _fail(
                where + " inputs",
                "%d (%s)" % (n, "the previous layer's units" if i else "the header's inputs"),
                inputs,
            )
        if offset != cursor:
            _fail(where + " data_offset", "%d (the previous block's end, aligned to 4)" % cursor, offset)
        if reserved:
            _fail(where + " reserved field", 0, reserved)
        if offset + size > data_end:
            _fail(
                where + " data_size",
                "a block ending by byte %d" % data_end,
                "%d bytes from byte %d" % (size, offset),
            )
        block = data[offset : offset + size]
        if kind == DENSE:
            layers.append(_dense(where, dtype, act, lflags, inputs, units, param, block, seed, int8))
        elif kind == DROPOUT and i > 0 and not int8:
            if dtype or act or lflags or size or units != inputs or not 0.0 <= param < 1.0:
                _fail(
                    where + " (dropout)",
                    "dtype/activation/flags/data_size 0, units = inputs, 0 <= rate < 1",
                    "%d/%d/%d/%d, units %d, inputs %d, rate %r"
                    % (dtype, act, lflags, size, units, inputs, param),
                )
            layers.append(DropoutSpec(float(param), units))
        else:
            _fail(
                where + " type",
                "dense (1)"
                + (
                    " (int8 models hold dense layers only)"
                    if int8
                    else ", dropout (2)"
                    if i
                    else " (the first layer)"
                ),
                kind,
            )
        padding = data[offset + size : align(offset + size)]
        if any(padding):
            _fail(where + " padding", "zero bytes", padding.hex())
        cursor = align(offset + size)
        n = units
    if n != outputs:
        _fail("outputs", "%d (the last layer's units)" % n, outputs)
    if cursor != data_end:
        _fail(
            "file_size", "%d bytes (the data blocks' end and the CRC)" % (cursor + codes.CRC_SIZE), len(data)
        )
    if int8:
        from .quantize import QuantModelSpec

        return QuantModelSpec(layers, source).validate()
    return ModelSpec(layers, source).validate()


def _dense(where, dtype, act, lflags, inputs, units, param, block, seed, int8=False):
    if dtype != (INT8 if int8 else FLOAT32):
        _fail(where + " dtype", "int8 (2): the header flags an int8 model" if int8 else "float32 (1)", dtype)
    name = codes.name_of(codes.ACTIVATIONS, act)
    if name is None:
        _fail(where + " activation", "one of " + _choices(codes.ACTIVATIONS), act)
    if not int8 and name in codes.INT8_ONLY_ACTIVATIONS:
        _fail(where + " activation", "a float32 layer's activation (not int8-only)", act)
    if lflags & ~BIAS:
        _fail(where + " flags", "a subset of 0x%02x (bias)" % BIAS, "0x%02x" % lflags)
    if units < 1:
        _fail(where + " units", ">= 1", units)
    if name == "leaky_relu":
        if not (np.isfinite(param) and param >= 0.0):
            _fail(where + " leaky_relu slope", "a finite number >= 0", param)
    elif param != 0.0:
        _fail(where + " param", "0.0 (only leaky_relu has a parameter)", param)
    if seed:
        _fail(where + " seed", "0 for a dense layer", seed)
    if int8:
        return _int8_dense(where, name, lflags, inputs, units, param, block)
    bias = bool(lflags & BIAS)
    expected = 4 * units * inputs + (4 * units if bias else 0)
    if len(block) != expected:
        _fail(
            where + " data_size",
            "%d (%d x %d float32 weights%s)" % (expected, units, inputs, " + bias" if bias else ""),
            len(block),
        )
    values = np.frombuffer(block, dtype="<f4").astype(np.float64)
    w = values[: units * inputs].reshape(units, inputs)
    b = values[units * inputs :] if bias else None
    return DenseSpec(w, b, name, float(param) if name == "leaky_relu" else 0.01)


def _int8_dense(where, name, lflags, inputs, units, param, block):
    from . import nnm_int8

    if lflags != BIAS:
        _fail(where + " flags", "0x%02x (an int8 layer always has its int32 bias)" % BIAS, "0x%02x" % lflags)
    expected = nnm_int8.block_size(units, inputs, name)
    if len(block) != expected:
        _fail(where + " data_size", "%d (the int8 block of %d x %d)" % (expected, units, inputs), len(block))
    return nnm_int8.parse(where, name, inputs, units, float(param), block)


def read(path):
    """Read and check a .nnm file."""
    return loads(Path(path).read_bytes(), source=str(path))
