"""int8 dense blocks of the `.nnm` format on the host (layout: docs/format.md). The block's
head format, table sizes and block size are the device's own (`nanonn/nnm/int8.py`,
imported through `device_package`); this module packs and parses blocks with numpy."""

from __future__ import annotations

import struct

import numpy as np

from . import NanonnError
from .device_package import codes, device_module
from .quantize import QuantDenseSpec

device_int8 = device_module("nnm.int8")
_align = device_module("nnm.layout").align
HEAD = struct.Struct(device_int8.HEAD)  # 32 bytes
EXP_TABLES = ("softmax", "softmax_tflite")  # i32 exp_table[256]; the other tables: i8 lut[256]


def table_size(activation: str) -> int:
    """Bytes of the activation table an int8 layer stores (the device's `table_size`)."""
    return device_int8.table_size(codes.ACTIVATIONS[activation])


def block_size(units: int, inputs: int, activation: str) -> int:
    """data_size of an int8 dense layer's block (the device's `block_size`)."""
    return device_int8.block_size(units, inputs, codes.ACTIVATIONS[activation])


def _pad(b: bytes) -> bytes:
    return b + bytes(_align(len(b)) - len(b))


def block(layer: QuantDenseSpec) -> bytes:
    """The data block of one int8 dense layer (layout in the device's nanonn/nnm/int8.py)."""
    leaky = layer.activation == "leaky_relu"
    head = HEAD.pack(
        layer.in_scale,
        layer.out_scale,
        layer.pre_scale,
        layer.in_zp,
        layer.out_zp,
        layer.pre_zp,
        layer.shift_pos if leaky else 0,
        layer.shift_neg if leaky else 0,
        0,
        0,
        0,
        layer.mult_pos if leaky else 0,
        layer.mult_neg if leaky else 0,
        0,
    )
    parts = [
        head,
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
    h = HEAD.unpack_from(data, 0)
    if h[8] or h[9] or h[10] or h[13]:
        raise NanonnError(
            "%s int8 block reserved bytes: expected 0, got %r" % (where, (h[8], h[9], h[10], h[13]))
        )
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
        in_scale=h[0],
        in_zp=h[3],
        out_scale=h[1],
        out_zp=h[4],
        activation=activation,
        mult=mult,
        shift=shift,
        pre_scale=h[2],
        pre_zp=h[5],
        alpha=alpha if leaky else 0.0,
        mult_pos=h[11],
        shift_pos=h[6],
        mult_neg=h[12],
        shift_neg=h[7],
        lut=lut,
        exp_table=exp_table,
    )
