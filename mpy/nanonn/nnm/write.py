"""Write `.nnm` models: `write`, `save` (safe on littlefs and FAT) and `dumps`.

Imported on first use by `Network.save` and `QNetwork.save`, so a program that only
loads models does not keep the writer in RAM. The format: docs/format.md, section "Layout".

Writing allocates the header and layer records (one bytearray), a few small tuples
per layer and the padding bytes; the weights are written straight from their
buffers, never copied (`dumps` allocates the whole file).
"""

import os
import struct
import sys

from ..crc32 import update as _crc
from ..float32.activations import ACTIVATIONS, builtin_name
from ..float32.layers import Dense, Dropout
from . import codes
from .layout import BIAS as _BIAS
from .layout import DENSE as _DENSE
from .layout import DROPOUT as _DROPOUT
from .layout import FLAG_INT8 as _FLAG_INT8
from .layout import FLOAT32 as _FLOAT32
from .layout import HEADER as _HEADER
from .layout import INT8 as _INT8
from .layout import RECORD as _RECORD
from .layout import align as _align
from .layout import const

_R_DATA_SIZE = const(8)  # a record's data_size: its index in the record (docs/format.md, "Layout")


def _plan(net, header_size=codes.HEADER_SIZE):
    """The layer records and data blocks of `net`; ValueError for what the format cannot hold."""
    layers = getattr(net, "layers", None)
    if not layers:
        raise ValueError("save: expected a Network with layers, got %s" % type(net).__name__)
    if len(layers) > codes.MAX_LAYERS:
        raise ValueError("save: expected at most %d layers, got %d" % (codes.MAX_LAYERS, len(layers)))
    cursor = _align(header_size + codes.RECORD_SIZE * len(layers))
    records = []
    blocks = []
    int8 = hasattr(layers[0], "w_scale")  # nanonn.int8.network.QDense layers (an int8 QNetwork)
    for i in range(len(layers)):
        layer = layers[i]
        where = "save layer %d" % i
        if hasattr(layer, "w_scale") != int8:
            raise ValueError(
                "%s: expected %s layer like layer 0, got %s"
                % (where, "an int8" if int8 else "a float", type(layer).__name__)
            )
        if int8:
            from .int8 import plan_layer  # on use: only an int8 model needs it

            act, alpha, size, parts = plan_layer(layer, where)
            rec = (_DENSE, _INT8, act, _BIAS, layer.inputs, layer.units, alpha, cursor, size, 0, 0)
        elif isinstance(layer, Dense):
            rec, parts = _dense_plan(where, layer, cursor)
        elif isinstance(layer, Dropout):
            if i == 0:
                raise ValueError("%s: expected a Dense first layer (it sets the inputs), got Dropout" % where)
            rec = (
                _DROPOUT,
                0,
                0,
                0,
                layer.inputs,
                layer.units,
                layer.rate,
                cursor,
                0,
                int(layer.seed) & 0xFFFFFFFF,
                0,
            )
            parts = ()
        else:
            raise ValueError("%s: expected a Dense or Dropout layer, got %s" % (where, type(layer).__name__))
        records.append(rec)
        blocks.append(parts)
        cursor = _align(cursor + rec[_R_DATA_SIZE])
    return records, blocks, cursor + codes.CRC_SIZE, _FLAG_INT8 if int8 else 0


def _dense_plan(where, layer, cursor):
    act = layer.activation
    name = builtin_name(act)
    if name is None:
        raise ValueError(
            "%s activation: expected one of the built-in activations %s (a model file stores "
            "the name, not the functions), got the custom activation %r named %r"
            % (where, ", ".join(ACTIVATIONS), act, getattr(act, "name", None))
        )
    code = codes.ACTIVATIONS[name]
    u, n = layer.units, layer.inputs
    bias = layer.use_bias
    size = 4 * u * n + (4 * u if bias else 0)
    raw = getattr(layer, "raw", None)
    if raw is None:
        raw = [layer.w, layer.b] if bias else [layer.w]
    sizes = [4 * u * n, 4 * u] if len(raw) == 2 else [size]
    param = act.alpha if name == "leaky_relu" else 0.0
    rec = (_DENSE, _FLOAT32, code, _BIAS if bias else 0, n, u, param, cursor, size, 0, 0)
    return rec, [(raw[k], sizes[k]) for k in range(len(raw))]


def write(net, f, generation=None):
    """Write `net` as a .nnm model to the binary file object `f`; returns the bytes written.

    `generation` (an int, used by `save(..., backup=True)`): a 36-byte header whose
    bytes 32..35 hold it as a u32 (a header extension every 1.x reader skips)."""
    header_size = codes.HEADER_SIZE if generation is None else codes.HEADER_SIZE + 4
    records, blocks, file_size, flags = _plan(net, header_size)
    count = len(records)
    data_offset = _align(header_size + codes.RECORD_SIZE * count)
    meta = bytearray(data_offset)
    struct.pack_into(
        _HEADER,
        meta,
        0,
        codes.MAGIC,
        codes.VERSION_MAJOR,
        codes.VERSION_MINOR,
        flags,
        file_size,
        header_size,
        codes.RECORD_SIZE,
        count,
        0,
        net.inputs,
        net.outputs,
        data_offset,
    )
    for i in range(count):
        struct.pack_into(_RECORD, meta, header_size + codes.RECORD_SIZE * i, *records[i])
    if generation is not None:
        struct.pack_into("<I", meta, codes.HEADER_SIZE, generation & 0xFFFFFFFF)
    f.write(meta)
    crc = _crc(0, meta, data_offset)
    pos = data_offset
    for i in range(count):
        for buf, nbytes in blocks[i]:
            f.write(buf)
            crc = _crc(crc, buf, nbytes)
            pos += nbytes
        gap = _align(pos) - pos
        if gap:
            zeros = bytes(gap)
            f.write(zeros)
            crc = _crc(crc, zeros, gap)
            pos += gap
    f.write(struct.pack("<I", crc))
    return pos + codes.CRC_SIZE


def save(net, path, backup=None):
    """Write `net` to `path` safely: a temporary file, closed, then renamed over `path`.

    The target is never removed first and the data is not flushed mid-write,
    so on littlefs (rename is atomic) a power cut leaves either the old or the
    new model. `backup` is for filesystems whose rename is not atomic (FAT
    deletes the target first): the file carries a generation number and the
    previous model is kept as `path + ".bak"`, so that `load(path)` finds the
    old or the new model after a cut at any step (`nanonn.nnm.backup`,
    docs/reliability.md). None (default): True on a FAT mount, else False."""
    if sys.byteorder != "little":
        raise ValueError("byte order: expected a little-endian port, got %s" % sys.byteorder)
    generation = None
    kept = None  # the backup module, imported only when a backup may be kept
    if backup is None or backup:
        from . import backup as kept  # on use: only a save that may keep a backup

        if backup is None:
            backup = kept.on_fat(path)
        if backup:
            generation = kept.next_generation(path)
    tmp = path + ".tmp"
    f = open(tmp, "wb")
    try:
        write(net, f, generation)
    except BaseException:
        f.close()
        _remove(tmp)
        raise
    f.close()
    if backup and kept is not None:
        kept.rotate(path)
    os.rename(tmp, path)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def dumps(net):
    """The .nnm bytes of `net` (allocates them; `save` streams to a file instead)."""
    import io

    out = io.BytesIO()
    write(net, out)
    return out.getvalue()  # pyright: ignore[reportAttributeAccessIssue]  (MicroPython's BytesIO has it; the stubs lack it)
