"""The `.nnm` model format on the host: `dumps`/`write` a ModelSpec, `loads`/`read` one back.

The format: docs/format.md, section "Layout" (its one specification). Its codes, struct
formats, alignment and field names are the device package's own (`nanonn/nnm/codes.py`,
`nanonn/nnm/layout.py`, the field indexes of `nanonn/nnm/read.py`, via `device_package`):
a header or layer record is a `Header` or `Record`, read and built by field name.
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
from .device_package import codes, device_fields, device_module
from .model import DenseSpec, DropoutSpec, ModelSpec

layout = device_module("nnm.layout")
_device_read = device_module("nnm.read")
HEADER = struct.Struct(layout.HEADER)
RECORD = struct.Struct(layout.RECORD)
CRC = struct.Struct("<I")  # the u32 crc32 that ends the file
# A header's and a layer record's fields by name (`h.file_size`, `rec.units`), named and
# ordered as the device reader indexes them (`_H_FILE_SIZE`, `_R_UNITS`): `record(...)` builds
# a layer record by keyword, `Record._make(RECORD.unpack_from(...))` reads one.
Header = device_fields("nnm.read", "_H_", layout.HEADER, "Header")
Record = device_fields("nnm.read", "_R_", layout.RECORD, "Record")
MAX_META: int = _device_read._MAX_META  # largest header_size and record_size (docs/format.md)
KNOWN_FLAGS: int = _device_read._KNOWN_FLAGS  # every header flag bit of codes.FLAGS
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


def float_block_size(units: int, inputs: int, bias: bool) -> int:
    """data_size of a float32 dense layer: docs/format.md, section "float32 dense block"."""
    return 4 * units * inputs + (4 * units if bias else 0)


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
            rec = _dense_record(layer, INT8, BIAS, block)
        elif isinstance(layer, DenseSpec):
            block = _dense_block(layer)
            rec = _dense_record(layer, FLOAT32, BIAS if layer.b is not None else 0, block)
        elif isinstance(layer, DropoutSpec):
            block = b""
            rec = record(
                type=DROPOUT,
                dtype=0,
                activation=0,
                flags=0,
                inputs=layer.units,
                units=layer.units,
                param=layer.rate,
                data_size=0,
                seed=DROPOUT_SEED,
            )
        else:  # validate() refuses other layers; kept for a clear message
            raise NanonnError("layer %s: unsupported; supported: dense, dropout" % type(layer).__name__)
        records.append(rec)
        blocks.append(block)
    return assemble(records, blocks)


def record(**fields):
    """A layer `Record` of the `fields` given by name, every one but data_offset (set by
    `assemble`) and reserved (0): docs/format.md, section "Layout"."""
    return Record(data_offset=0, reserved=0, **fields)


def _dense_record(layer, dtype: int, flags: int, block: bytes):
    act = codes.ACTIVATIONS[layer.activation]
    param = _f32(layer.alpha) if layer.activation == "leaky_relu" else 0.0
    return record(
        type=DENSE,
        dtype=dtype,
        activation=act,
        flags=flags,
        inputs=layer.inputs,
        units=layer.units,
        param=param,
        data_size=len(block),
        seed=0,
    )


def assemble(records: list, blocks: list[bytes]) -> bytes:
    """The .nnm bytes of layer `records` (`Record`s; data_offset and data_size are set here
    from `blocks`) and their data blocks (padded here): the header (int8 when the first
    record's dtype is int8), records, blocks and CRC."""
    if len(records) > codes.MAX_LAYERS:
        raise NanonnError("model: expected at most %d layers, got %d" % (codes.MAX_LAYERS, len(records)))
    data_offset = align(codes.HEADER_SIZE + codes.RECORD_SIZE * len(records))
    cursor = data_offset
    placed, padded = [], []
    for rec, block in zip(records, blocks):
        placed.append(rec._replace(data_offset=cursor, data_size=len(block)))
        block += bytes(align(len(block)) - len(block))
        padded.append(block)
        cursor += len(block)
    file_size = cursor + codes.CRC_SIZE
    if file_size > codes.MAX_FILE_SIZE:
        raise NanonnError("model size: expected at most %d bytes, got %d" % (codes.MAX_FILE_SIZE, file_size))
    first, last = placed[0], placed[-1]
    header = Header(
        magic=codes.MAGIC,
        major=codes.VERSION_MAJOR,
        minor=codes.VERSION_MINOR,
        flags=FLAG_INT8 if first.dtype == INT8 else 0,
        file_size=file_size,
        header_size=codes.HEADER_SIZE,
        record_size=codes.RECORD_SIZE,
        layer_count=len(records),
        reserved=0,
        inputs=first.inputs,
        outputs=last.units,
        data_offset=data_offset,
    )
    head = bytearray(data_offset)
    HEADER.pack_into(head, 0, *header)
    for i, rec in enumerate(placed):
        RECORD.pack_into(head, codes.HEADER_SIZE + i * codes.RECORD_SIZE, *rec)
    body = bytes(head) + b"".join(padded)
    return body + CRC.pack(zlib.crc32(body))


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


_choices = _device_read._choices  # "linear (0), sigmoid (1), ...": a code table's names and codes


def _header(data: bytes):
    """The checked `Header` of the model `data` (its size and CRC checked too)."""
    if len(data) < codes.HEADER_SIZE:
        _fail("file size", "at least %d bytes (the header)" % codes.HEADER_SIZE, "%d bytes" % len(data))
    h = Header._make(HEADER.unpack_from(data, 0))
    if h.magic != codes.MAGIC:
        _fail("magic", repr(codes.MAGIC), repr(h.magic))
    if h.major != codes.VERSION_MAJOR:
        _fail("version", "major %d" % codes.VERSION_MAJOR, "%d.%d" % (h.major, h.minor))
    if h.flags & ~KNOWN_FLAGS:
        _fail("flags", "a subset of 0x%04x" % KNOWN_FLAGS, "0x%04x" % h.flags)
    if h.file_size != len(data):
        _fail("file size", "%d bytes (header field file_size)" % h.file_size, "%d bytes" % len(data))
    for name, value in (("header_size", h.header_size), ("record_size", h.record_size)):
        if value < 32 or value > MAX_META or value % 4:
            _fail(name, "a multiple of 4 from 32 to %d" % MAX_META, value)
    if not 1 <= h.layer_count <= codes.MAX_LAYERS:
        _fail("layer_count", "1 to %d" % codes.MAX_LAYERS, h.layer_count)
    if h.reserved:
        _fail("header reserved field", 0, h.reserved)
    end = align(h.header_size + h.layer_count * h.record_size)
    if h.data_offset != end:
        _fail(
            "data_offset",
            "%d (header and %d layer records, aligned to 4)" % (end, h.layer_count),
            h.data_offset,
        )
    if end + codes.CRC_SIZE > h.file_size:
        _fail("file_size", "at least %d bytes" % (end + codes.CRC_SIZE), h.file_size)
    (stored,) = CRC.unpack_from(data, h.file_size - codes.CRC_SIZE)
    computed = zlib.crc32(data[: h.file_size - codes.CRC_SIZE])
    if stored != computed:
        _fail("crc32", "0x%08x (computed over the file)" % computed, "0x%08x (stored in the file)" % stored)
    return h


def loads(data: bytes, source: str = ""):
    """Parse and check .nnm bytes; returns a validated ModelSpec (float32) or QuantModelSpec (int8)."""
    data = bytes(data)
    h = _header(data)
    n, cursor = h.inputs, h.data_offset
    int8 = bool(h.flags & FLAG_INT8)
    data_end = len(data) - codes.CRC_SIZE
    layers: list = []
    for i in range(h.layer_count):
        rec = Record._make(RECORD.unpack_from(data, h.header_size + i * h.record_size))
        where = "layer %d" % i
        if rec.inputs != n:
            _fail(
                where + " inputs",
                "%d (%s)" % (n, "the previous layer's units" if i else "the header's inputs"),
                rec.inputs,
            )
        if rec.data_offset != cursor:
            _fail(
                where + " data_offset",
                "%d (the previous block's end, aligned to 4)" % cursor,
                rec.data_offset,
            )
        if rec.reserved:
            _fail(where + " reserved field", 0, rec.reserved)
        end = rec.data_offset + rec.data_size
        if end > data_end:
            _fail(
                where + " data_size",
                "a block ending by byte %d" % data_end,
                "%d bytes from byte %d" % (rec.data_size, rec.data_offset),
            )
        block = data[rec.data_offset : end]
        if rec.type == DENSE:
            layers.append(_dense(where, rec, block, int8))
        elif rec.type == DROPOUT and i > 0 and not int8:
            layers.append(_dropout(where, rec))
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
                rec.type,
            )
        padding = data[end : align(end)]
        if any(padding):
            _fail(where + " padding", "zero bytes", padding.hex())
        cursor = align(end)
        n = rec.units
    if n != h.outputs:
        _fail("outputs", "%d (the last layer's units)" % n, h.outputs)
    if cursor != data_end:
        _fail(
            "file_size", "%d bytes (the data blocks' end and the CRC)" % (cursor + codes.CRC_SIZE), len(data)
        )
    if int8:
        from .quantize import QuantModelSpec

        return QuantModelSpec(layers, source).validate()
    return ModelSpec(layers, source).validate()


def _dropout(where: str, rec) -> DropoutSpec:
    """The DropoutSpec of the checked dropout layer record `rec` (not the first layer)."""
    if (
        rec.dtype
        or rec.activation
        or rec.flags
        or rec.data_size
        or rec.units != rec.inputs
        or not 0.0 <= rec.param < 1.0
    ):
        _fail(
            where + " (dropout)",
            "dtype/activation/flags/data_size 0, units = inputs, 0 <= rate < 1",
            "%d/%d/%d/%d, units %d, inputs %d, rate %r"
            % (rec.dtype, rec.activation, rec.flags, rec.data_size, rec.units, rec.inputs, rec.param),
        )
    return DropoutSpec(float(rec.param), rec.units)


def _dense(where: str, rec, block: bytes, int8: bool):
    """The DenseSpec (QuantDenseSpec when `int8`) of the dense layer record `rec` and its data `block`."""
    if rec.dtype != (INT8 if int8 else FLOAT32):
        _fail(
            where + " dtype", "int8 (2): the header flags an int8 model" if int8 else "float32 (1)", rec.dtype
        )
    name = codes.name_of(codes.ACTIVATIONS, rec.activation)
    if name is None:
        _fail(where + " activation", "one of " + _choices(codes.ACTIVATIONS), rec.activation)
    if not int8 and name in codes.INT8_ONLY_ACTIVATIONS:
        _fail(where + " activation", "a float32 layer's activation (not int8-only)", rec.activation)
    if rec.flags & ~BIAS:
        _fail(where + " flags", "a subset of 0x%02x (bias)" % BIAS, "0x%02x" % rec.flags)
    units, inputs, param = rec.units, rec.inputs, rec.param
    if units < 1:
        _fail(where + " units", ">= 1", units)
    if name == "leaky_relu":
        if not (np.isfinite(param) and param >= 0.0):
            _fail(where + " leaky_relu slope", "a finite number >= 0", param)
    elif param != 0.0:
        _fail(where + " param", "0.0 (only leaky_relu has a parameter)", param)
    if rec.seed:
        _fail(where + " seed", "0 for a dense layer", rec.seed)
    if int8:
        return _int8_dense(where, name, rec, block)
    bias = bool(rec.flags & BIAS)
    expected = float_block_size(units, inputs, bias)
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


def _int8_dense(where: str, name: str, rec, block: bytes):
    from . import nnm_int8

    if rec.flags != BIAS:
        _fail(
            where + " flags", "0x%02x (an int8 layer always has its int32 bias)" % BIAS, "0x%02x" % rec.flags
        )
    expected = nnm_int8.block_size(rec.units, rec.inputs, name)
    if len(block) != expected:
        _fail(
            where + " data_size",
            "%d (the int8 block of %d x %d)" % (expected, rec.units, rec.inputs),
            len(block),
        )
    return nnm_int8.parse(where, name, rec.inputs, rec.units, float(rec.param), block)


def read(path):
    """Read and check a .nnm file."""
    return loads(Path(path).read_bytes(), source=str(path))
