"""int8 dense blocks of the `.nnm` format on the host (docs/format.md, section "int8 dense
block"). The block head's struct format and field names, the table sizes and the block size
are the device's own (`nanonn/nnm/int8.py`, imported through `device_package`); this module
packs and parses blocks with numpy."""

from __future__ import annotations

import struct

import numpy as np

from . import NanonnError
from .device_package import codes, device_fields, device_module
from .quantize import QuantDenseSpec

device_int8 = device_module("nnm.int8")
_align = device_module("nnm.layout").align
HEAD = struct.Struct(device_int8.HEAD)  # 32 bytes
# The block head's fields by name (`h.in_scale`), as the device names their indexes (`_Q_IN_SCALE`).
Head = device_fields("nnm.int8", "_Q_", device_int8.HEAD, "Head")
# The activations whose table is the i32 exp_table (the others': the i8 lut), docs/format.md,
# section "int8 dense block".
EXP_TABLES = ("softmax", "softmax_tflite")


def table_size(activation: str) -> int:
    """Bytes of the activation table an int8 layer stores (the device's `table_size`)."""
    return device_int8.table_size(codes.ACTIVATIONS[activation])


def block_size(units: int, inputs: int, activation: str) -> int:
    """data_size of an int8 dense layer's block (the device's `block_size`)."""
    return device_int8.block_size(units, inputs, codes.ACTIVATIONS[activation])


def _pad(b: bytes) -> bytes:
    return b + bytes(_align(len(b)) - len(b))


def block(layer: QuantDenseSpec) -> bytes:
    """The data block of one int8 dense layer (docs/format.md, section "int8 dense block")."""
    leaky = layer.activation == "leaky_relu"
    head = Head(
        in_scale=layer.in_scale,
        out_scale=layer.out_scale,
        pre_scale=layer.pre_scale,
        in_zp=layer.in_zp,
        out_zp=layer.out_zp,
        pre_zp=layer.pre_zp,
        shift_pos=layer.shift_pos if leaky else 0,
        shift_neg=layer.shift_neg if leaky else 0,
        reserved_bytes=0,
        reserved_bytes_1=0,
        reserved_bytes_2=0,
        mult_pos=layer.mult_pos if leaky else 0,
        mult_neg=layer.mult_neg if leaky else 0,
        reserved=0,
    )
    parts = [
        HEAD.pack(*head),
        np.asarray(layer.w_scale, "<f4").tobytes(),
        np.asarray(layer.bias, "<i4").tobytes(),
        np.asarray(layer.mult, "<i4").tobytes(),
        _pad(np.asarray(layer.shift, "i1").tobytes()),
        _pad(np.ascontiguousarray(layer.w, "i1").tobytes()),
    ]
    if layer.activation in EXP_TABLES:
        parts.append(np.asarray(layer.exp_table, "<i4").tobytes())
    elif table_size(layer.activation):
        parts.append(np.asarray(layer.lut, "i1").tobytes())
    data = b"".join(parts)
    if len(data) != block_size(layer.units, layer.inputs, layer.activation):  # a bug, not bad input
        raise NanonnError(
            "int8 block: expected %d bytes, got %d"
            % (block_size(layer.units, layer.inputs, layer.activation), len(data))
        )
    return data


def parse(where: str, activation: str, inputs: int, units: int, alpha: float, data: bytes) -> QuantDenseSpec:
    """A QuantDenseSpec from a block of the checked size (values checked by validate())."""
    h = Head._make(HEAD.unpack_from(data, 0))
    reserved = (h.reserved_bytes, h.reserved_bytes_1, h.reserved_bytes_2, h.reserved)
    if any(reserved):
        raise NanonnError("%s int8 block reserved bytes: expected 0, got %r" % (where, reserved))
    u, n = units, inputs
    p = HEAD.size

    def take(dtype: str, count: int, size: int):
        nonlocal p
        arr = np.frombuffer(data, dtype, count, p).copy()
        p += size
        return arr

    w_scale = take("<f4", u, 4 * u).astype(np.float32)
    bias = take("<i4", u, 4 * u).astype(np.int32)
    mult = take("<i4", u, 4 * u).astype(np.int32)
    shift = take("i1", u, _align(u))
    w = take("i1", u * n, _align(u * n)).reshape(u, n)
    lut = exp_table = None
    if activation in EXP_TABLES:
        exp_table = take("<i4", 256, 1024).astype(np.int32)
    elif table_size(activation):
        lut = take("i1", 256, 256)
    leaky = activation == "leaky_relu"
    return QuantDenseSpec(
        w=w,
        w_scale=w_scale,
        bias=bias,
        in_scale=h.in_scale,
        in_zp=h.in_zp,
        out_scale=h.out_scale,
        out_zp=h.out_zp,
        activation=activation,
        mult=mult,
        shift=shift,
        pre_scale=h.pre_scale,
        pre_zp=h.pre_zp,
        alpha=alpha if leaky else 0.0,
        mult_pos=h.mult_pos,
        shift_pos=h.shift_pos,
        mult_neg=h.mult_neg,
        shift_neg=h.shift_neg,
        lut=lut,
        exp_table=exp_table,
    )
