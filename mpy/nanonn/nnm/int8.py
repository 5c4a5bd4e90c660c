"""The int8 dense records of the `.nnm` format (read and written by `nanonn.nnm.read`).

Block layout (offsets from the block start, little-endian; docs/format.md and
the fields of docs/quantization.md):

    0  f32 in_scale   4  f32 out_scale   8  f32 pre_scale
   12  i8 in_zp  13  i8 out_zp  14  i8 pre_zp  15  i8 shift_pos  16  i8 shift_neg
   17  3 x u8 reserved (0)   20  i32 mult_pos   24  i32 mult_neg   28  u32 reserved (0)
   32  f32 w_scale[units] | i32 bias[units] | i32 mult[units]
       i8 shift[units], padded to 4 | i8 w[units * inputs], padded to 4
       i8 lut[256] (sigmoid, tanh, softplus) | i32 exp_table[256] (softmax,
       softmax_tflite: the float32 bits of TFLite's table)

The weights `w` and the `lut` are used in place (memoryview into the source);
the small per-unit arrays are copied by `QDense.from_params`, which checks
every value (ranges, 32-bit safety) and whose errors become format errors.
Imported only when an int8 model is read or written.
"""

import struct

from . import codes
from .layers import bytes_view

HEAD = "<fffbbbbbBBBiiI"  # 32 bytes
HEAD_SIZE = 32
_LUT_CODES = (codes.ACTIVATIONS["sigmoid"], codes.ACTIVATIONS["tanh"], codes.ACTIVATIONS["softplus"])
_SOFTMAX = codes.ACTIVATIONS["softmax"]
_SOFTMAX_TFL = codes.ACTIVATIONS["softmax_tflite"]
_LEAKY = codes.ACTIVATIONS["leaky_relu"]


def _align(n):
    return (n + 3) & ~3


def table_size(act):
    """Bytes of the activation table an int8 layer with activation code `act` stores
    (softmax and softmax_tflite 1024, sigmoid/tanh/softplus 256, else 0). Allocates nothing."""
    if act == _SOFTMAX or act == _SOFTMAX_TFL:
        return 1024
    return 256 if act in _LUT_CODES else 0


def block_size(units, inputs, act):
    """data_size of an int8 dense layer (units * inputs already bounded by the caller).
    Allocates nothing (small ints)."""
    return HEAD_SIZE + 12 * units + _align(units) + _align(units * inputs) + table_size(act)


def ram_needed(units, inputs, act, in_place, per_buffer):
    """Heap a loaded QDense keeps: its parameter copies, accumulators, output (and the
    weights unless in place). Allocates nothing (small ints)."""
    total = 4 * units * 3 + units + 4 * (units if units > inputs else inputs) + units + 9 * per_buffer
    total += 24 * units + 24 + per_buffer  # the kernels' parameter block: acc0 and the requantization
    total += 256 + per_buffer if act == _LEAKY else 0  # leaky_relu runs as a table
    total += 1024 if act == _SOFTMAX or act == _SOFTMAX_TFL else 0
    if not in_place:
        total += block_size(units, inputs, act)
    return total


def _ints(fmt, mv, off, count):
    from array import array

    a = array(fmt, bytes(4 * count))
    bytes_view(a, 4 * count)[:] = mv[off : off + 4 * count]
    return a


def build_layer(QDense, mv, off, rec):
    """A QDense from the checked record `rec` and its block at mv[off:] (ValueError from
    from_params for out-of-range values). Allocates the layer with copies of its
    per-unit arrays and tables; the weights and LUT stay views of `mv`."""
    act, n, u = rec[2], rec[4], rec[5]
    h = struct.unpack_from(HEAD, mv, off)
    if h[8] or h[9] or h[10] or h[13]:
        raise ValueError(
            "int8 block reserved bytes: expected 0, got %d/%d/%d/%d" % (h[8], h[9], h[10], h[13])
        )
    p = off + HEAD_SIZE
    w_scale = _ints("f", mv, p, u)
    bias = _ints("i", mv, p + 4 * u, u)
    mult = _ints("i", mv, p + 8 * u, u)
    p += 12 * u
    shift = struct.unpack_from("<%db" % u, mv, p)
    p += _align(u)
    w = mv[p : p + u * n]
    p += _align(u * n)
    lut = exp_table = None
    if act == _SOFTMAX or act == _SOFTMAX_TFL:
        exp_table = _ints("i", mv, p, 256)
    elif act in _LUT_CODES:
        lut = mv[p : p + 256]
    return QDense.from_params(
        n,
        u,
        w,
        w_scale,
        bias,
        h[0],
        h[3],
        h[1],
        h[4],
        activation=codes.name_of(codes.ACTIVATIONS, act),
        mult=mult,
        shift=shift,
        pre_scale=h[2],
        pre_zp=h[5],
        alpha=rec[6],
        mult_pos=h[11],
        shift_pos=h[6],
        mult_neg=h[12],
        shift_neg=h[7],
        lut=lut,
        exp_table=exp_table,
    )


def _sext8(b):
    return (b ^ 0x80) - 0x80


def plan_layer(layer, where):
    """(activation code, alpha, data_size, parts) of a QDense: parts are (buffer, nbytes)
    written in order, padding included. Allocates the packed head, the parts list
    and padding bytes; the layer's arrays are referenced, not copied."""
    act = codes.ACTIVATIONS.get(layer.activation)
    if act is None:
        raise ValueError(
            "%s activation: expected one of %s, got %r"
            % (where, ", ".join(codes.ACTIVATIONS), layer.activation)
        )
    u, n = layer.units, layer.inputs
    leaky = getattr(layer, "leaky", None)
    if act == _LEAKY and leaky is not None:
        mp, sp, mn, sn = leaky[0][0], _sext8(leaky[1][0]), leaky[2][0], _sext8(leaky[3][0])
    else:
        mp = sp = mn = sn = 0
    head = struct.pack(
        HEAD,
        layer.in_scale,
        layer.out_scale,
        layer.pre_scale,
        layer.in_zp,
        layer.out_zp,
        layer.pre_zp,
        sp,
        sn,
        0,
        0,
        0,
        mp,
        mn,
        0,
    )
    parts = [
        (head, HEAD_SIZE),
        (layer.w_scale, 4 * u),
        (layer.bias, 4 * u),
        (layer.mult, 4 * u),
        (layer.shift, u),
    ]
    if _align(u) - u:
        parts.append((bytes(_align(u) - u), _align(u) - u))
    parts.append((layer.w, u * n))
    if _align(u * n) - u * n:
        parts.append((bytes(_align(u * n) - u * n), _align(u * n) - u * n))
    if act == _SOFTMAX or act == _SOFTMAX_TFL:
        parts.append((layer.exp_table, 1024))
    elif table_size(act):
        parts.append((layer.lut, 256))
    alpha = layer.alpha if act == _LEAKY else 0.0
    return act, alpha, block_size(u, n, act), parts
