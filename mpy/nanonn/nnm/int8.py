"""The int8 dense blocks of the `.nnm` format (read by `nanonn.nnm.read`, written by `nanonn.nnm.write`).

The block layout: docs/format.md, section "int8 dense block". From a bytes-like source
(`build_layer`) the weights `w` and the `lut` are used in place (memoryview into the
source) and the small per-unit arrays are copied; from a stream (`stream_parts`, then
`read_layer`) each part of the block is read into the buffer the layer keeps, so no copy
of the block stays in RAM. `QDense.from_params` checks every value (ranges, 32-bit
safety); its errors become format errors. Imported only when an int8 model is read or
written.
"""

import struct
import sys
from array import array

from . import codes
from .layout import align as _align
from .layout import const

# The fields used from a layer record `rec` (nanonn.nnm.read) and from the unpacked block
# head `h`, in the order of docs/format.md's tables (tests/test_layout.py checks them).
_R_ACTIVATION = const(2)
_R_INPUTS = const(4)
_R_UNITS = const(5)
_R_PARAM = const(6)
HEAD = "<fffbbbbbBBBiiI"  # 32 bytes
_MICROPYTHON = sys.implementation.name == "micropython"
_Q_IN_SCALE = const(0)
_Q_OUT_SCALE = const(1)
_Q_PRE_SCALE = const(2)
_Q_IN_ZP = const(3)
_Q_OUT_ZP = const(4)
_Q_PRE_ZP = const(5)
_Q_SHIFT_POS = const(6)
_Q_SHIFT_NEG = const(7)
_Q_RESERVED_BYTES = const(8)  # three u8: 8, 9, 10
_Q_MULT_POS = const(11)
_Q_MULT_NEG = const(12)
_Q_RESERVED = const(13)
_HEAD_SIZE = const(32)
# activation codes (`codes.ACTIVATIONS`; tests/test_layout.py checks each `_A_` name)
_A_LEAKY_RELU = const(4)
_A_SOFTMAX = const(6)
_A_SOFTMAX_TFLITE = const(7)
_LUT_MASK = const(0x26)  # 1 << code of sigmoid (1), tanh (2), softplus (5): a 256-byte table


def table_size(act):
    """Bytes of the activation table an int8 layer with activation code `act` stores
    (softmax and softmax_tflite 1024, sigmoid/tanh/softplus 256, else 0). Allocates nothing."""
    if act == _A_SOFTMAX or act == _A_SOFTMAX_TFLITE:
        return 1024
    return 256 if (1 << act) & _LUT_MASK else 0


def block_size(units, inputs, act):
    """data_size of an int8 dense layer (units * inputs already bounded by the caller).
    Allocates nothing (small ints)."""
    return _HEAD_SIZE + 12 * units + _align(units) + _align(units * inputs) + table_size(act)


def ram_needed(units, inputs, act, in_place, per_buffer):
    """Heap a loaded QDense keeps: its parameter arrays (w_scale, bias, mult: 4 bytes a
    unit each; shift), softmax's exp values (4 a unit), output (and, unless in place, the
    weights and a sigmoid/tanh/softplus table). Allocates nothing (small ints).
    `nanonn.nnm.read._ram_needed` adds the layer's and the network's objects;
    tests/test_load_ram.py holds the sum to what the 32-bit build measures."""
    total = 4 * units * 3 + units + units + 8 * per_buffer
    total += 4 * units + per_buffer if act == _A_SOFTMAX else 0  # softmax's exp values
    total += 24 * units + 24 + per_buffer  # the kernels' parameter block: acc0 and the requantization
    total += 256 + per_buffer if act == _A_LEAKY_RELU else 0  # leaky_relu runs as a table
    total += 1024 if act == _A_SOFTMAX or act == _A_SOFTMAX_TFLITE else 0
    if not in_place:  # read from a stream: the weights and a lut in buffers of their own
        total += units * inputs + per_buffer
        total += 256 + per_buffer if (1 << act) & _LUT_MASK else 0
    return total


def _ints(fmt, mv, off, count):
    """An array(fmt) of the `count` 4-byte items at mv[off:]: one allocation of its
    size (MicroPython's `extend` takes any buffer's raw bytes; CPython's `frombytes`),
    no zero-filled temporary (whose hole would fragment a board's heap)."""
    from array import array

    a = array(fmt)
    if _MICROPYTHON:
        a.extend(mv[off : off + 4 * count])
    else:
        a.frombytes(mv[off : off + 4 * count])
    return a


def build_layer(QDense, mv, off, rec):
    """A QDense from the checked record `rec` and its block at mv[off:] (ValueError from
    from_params for out-of-range values). Allocates the layer with copies of its
    per-unit arrays and tables; the weights and LUT stay views of `mv`."""
    act, n, u = rec[_R_ACTIVATION], rec[_R_INPUTS], rec[_R_UNITS]
    p = off + _HEAD_SIZE
    w_scale = _ints("f", mv, p, u)
    bias = _ints("i", mv, p + 4 * u, u)
    mult = _ints("i", mv, p + 8 * u, u)
    p += 12 * u
    shift = struct.unpack_from("<%db" % u, mv, p)
    p += _align(u)
    w = mv[p : p + u * n]
    p += _align(u * n)
    table = None
    if act == _A_SOFTMAX or act == _A_SOFTMAX_TFLITE:
        table = _ints("i", mv, p, 256)
    elif (1 << act) & _LUT_MASK:
        table = mv[p : p + 256]
    return _layer(QDense, rec, struct.unpack_from(HEAD, mv, off), w_scale, bias, mult, shift, w, table)


def stream_parts(rec):
    """The buffers the block of the checked record `rec` is read into from a stream, in
    file order, as (buffer, nbytes): the head, w_scale, bias and mult arrays, shift (and
    its padding), the weights, their padding, the table. Each is the layer's own after
    `read_layer` (the head, shift and padding are garbage then). Allocates them; the
    caller maps a MemoryError to the model's RAM figure."""
    act, n, u = rec[_R_ACTIVATION], rec[_R_INPUTS], rec[_R_UNITS]
    # array(t, range(k)) is one allocation of its size (no zero-filled temporary)
    parts = [
        (bytearray(_HEAD_SIZE), _HEAD_SIZE),
        (array("f", range(u)), 4 * u),
        (array("i", range(u)), 4 * u),
        (array("i", range(u)), 4 * u),
        (bytearray(_align(u)), _align(u)),
        (bytearray(u * n), u * n),
    ]
    if _align(u * n) - u * n:
        parts.append((bytearray(_align(u * n) - u * n), _align(u * n) - u * n))
    size = table_size(act)
    if size:
        parts.append((array("i", range(256)) if size == 1024 else bytearray(size), size))
    return parts


def read_layer(QDense, parts, rec):
    """A QDense from the checked record `rec` and its block read into `parts`
    (`stream_parts`), which it keeps: w_scale, bias, mult, the weights and the table.
    Allocates the layer and its other buffers (`QDense.from_params`)."""
    act, u = rec[_R_ACTIVATION], rec[_R_UNITS]
    shift = struct.unpack_from("<%db" % u, parts[4][0], 0)
    table = parts[-1][0] if table_size(act) else None
    h = struct.unpack_from(HEAD, parts[0][0], 0)
    return _layer(QDense, rec, h, parts[1][0], parts[2][0], parts[3][0], shift, parts[5][0], table)


def _layer(QDense, rec, h, w_scale, bias, mult, shift, w, table):
    """QDense.from_params of a block's head `h` (unpacked HEAD) and parts."""
    act = rec[_R_ACTIVATION]
    r0, r1, r2, r3 = h[_Q_RESERVED_BYTES], h[_Q_RESERVED_BYTES + 1], h[_Q_RESERVED_BYTES + 2], h[_Q_RESERVED]
    if r0 or r1 or r2 or r3:
        raise ValueError("int8 block reserved bytes: expected 0, got %d/%d/%d/%d" % (r0, r1, r2, r3))
    lut = exp_table = None
    if act == _A_SOFTMAX or act == _A_SOFTMAX_TFLITE:
        exp_table = table
    elif (1 << act) & _LUT_MASK:
        lut = table
    return QDense.from_params(
        rec[_R_INPUTS],
        rec[_R_UNITS],
        w,
        w_scale,
        bias,
        h[_Q_IN_SCALE],
        h[_Q_IN_ZP],
        h[_Q_OUT_SCALE],
        h[_Q_OUT_ZP],
        activation=codes.name_of(codes.ACTIVATIONS, act),
        mult=mult,
        shift=shift,
        pre_scale=h[_Q_PRE_SCALE],
        pre_zp=h[_Q_PRE_ZP],
        alpha=rec[_R_PARAM],
        mult_pos=h[_Q_MULT_POS],
        shift_pos=h[_Q_SHIFT_POS],
        mult_neg=h[_Q_MULT_NEG],
        shift_neg=h[_Q_SHIFT_NEG],
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
    if act == _A_LEAKY_RELU and leaky is not None:
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
        (head, _HEAD_SIZE),
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
    if act == _A_SOFTMAX or act == _A_SOFTMAX_TFLITE:
        parts.append((layer.exp_table, 1024))
    elif table_size(act):
        parts.append((layer.lut, 256))
    alpha = layer.alpha if act == _A_LEAKY_RELU else 0.0
    return act, alpha, block_size(u, n, act), parts
