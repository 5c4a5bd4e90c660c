"""Read and write `.nnm` model files: `load(source)` and `save(net, path)`.

The .nnm format, version 1.0 (the full text with rationale: docs/format.md)
--------------------------------------------------------------------------
Little-endian throughout. Codes and constants live in `nanonn/codes.py`.

  header (header_size bytes, 32 in 1.0)
    0  4s  magic        b"NNM\\x1a"
    4  u8  major        1: a reader refuses any other major version
    5  u8  minor        0: a reader accepts any minor of its major
    6  u16 flags        feature bits (0x0001: int8 layers); unknown bits refused
    8  u32 file_size    the whole file in bytes, CRC included (<= 0x3FFFFFFF)
   12  u16 header_size  >= 32, multiple of 4, <= 256; bytes past 32 skipped
   14  u16 record_size  >= 32, multiple of 4, <= 256; likewise per record
   16  u16 layer_count  1..255
   18  u16 reserved     0
   20  u32 inputs       the first layer's inputs
   24  u32 outputs      the last layer's units
   28  u32 data_offset  header_size + layer_count * record_size
  layer_count records (record_size bytes each, 32 in 1.0)
    0  u8  type         1 dense, 2 dropout (the first layer is a dense layer)
    1  u8  dtype        1 float32, 2 int8 (dropout: 0)
    2  u8  activation   0 linear, 1 sigmoid, 2 tanh, 3 relu, 4 leaky_relu,
                        5 softplus, 6 softmax, 7 softmax_tflite (int8 only)
                        (dropout: 0)
    3  u8  flags        0x01: the dense layer has a bias (int8: always; dropout: 0)
    4  u32 inputs       = the previous layer's units (first: header inputs)
    8  u32 units        >= 1 (dropout: = inputs)
   12  f32 param        leaky_relu slope (>= 0), dropout rate (0 <= r < 1), else 0
   16  u32 data_offset  where this layer's data block starts: exactly the end
                        of the previous block rounded up to 4 (the first at
                        the header's data_offset), so blocks are 4-aligned
   20  u32 data_size    float32 dense: 4*units*inputs (+ 4*units with bias);
                        int8 dense: 32 + 12*units + align4(units)
                        + align4(units*inputs) + table (256 lut, 1024 exp); dropout: 0
   24  u32 seed         dropout seed (dense: 0)
   28  u32 reserved     0
  data blocks, in layer order, zero padding up to each 4-byte boundary
    float32 dense: w (units, inputs) row-major f32, then b (units,) f32
    int8 dense (header flag 0x0001: then every layer is one; docs/quantization.md):
      f32 in_scale, out_scale, pre_scale; i8 in_zp, out_zp, pre_zp, shift_pos,
      shift_neg; 3 x u8 0; i32 mult_pos, mult_neg; u32 0   (32 bytes), then
      f32 w_scale[u]; i32 bias[u]; i32 mult[u]; i8 shift[u], pad to 4;
      i8 w[u*n] row-major, pad to 4; then i8 lut[256] (sigmoid, tanh,
      softplus) or i32 exp_table[256] (softmax)      (read by nnm_int8.py)
  u32 crc32             CRC-32 (zlib's) of every byte before it

A reader checks every field, count, offset and size product before it uses
or allocates anything; every violation raises `ModelFormatError` (a
ValueError) whose message names the field, the expected and the actual
value. A model needing more RAM than is free raises MemoryError first.
--------------------------------------------------------------------------

Loading never imports or executes anything from the model: it is data.
"""

import gc
import os
import struct
import sys

from . import codes
from .activations import LeakyReLU
from .crc32 import update as _crc
from .errors import ModelFormatError
from .layers import Dense, Dropout, floats
from .loaded import LoadedDense, bytes_view, float_copy, float_view
from .network import Network

_HEADER = "<4sBBHIHHHHIII"
_RECORD = "<BBBBIIfIIII"
_MAX_META = 256  # largest header_size and record_size accepted
_DENSE = codes.LAYERS["dense"]
_DROPOUT = codes.LAYERS["dropout"]
_FLOAT32 = codes.DTYPES["float32"]
_INT8 = codes.DTYPES["int8"]
_FLAG_INT8 = codes.FLAGS["int8"]
_LEAKY = codes.ACTIVATIONS["leaky_relu"]
_BIAS = codes.LAYER_FLAGS["bias"]
_INF = float("inf")
# RAM estimate (bytes): each buffer's object and heap rounding, each layer's
# objects, the network's own objects.
_PER_BUFFER = 48
_PER_LAYER = 320
_PER_NETWORK = 512


def _fail(field, expected, got):
    raise ModelFormatError("%s: expected %s, got %s" % (field, expected, got))


def _align(n):
    return (n + 3) & ~3


def _known_flags():
    known = 0
    for name in codes.FLAGS:
        known |= codes.FLAGS[name]
    return known


# ---------------------------------------------------------------- reading


def _header(buf, size):
    """Check the fixed 32-byte header at buf[0:]; `size` is the source's length
    in bytes when known (else None). Returns the fields the reader uses:
    (flags, file_size, header_size, record_size, layer_count, inputs, outputs,
    data_offset). Few locals: a large frame is itself a heap allocation."""
    h = struct.unpack_from(_HEADER, buf, 0)
    if h[0] != codes.MAGIC:
        _fail("magic", repr(codes.MAGIC), repr(h[0]))
    if h[1] != codes.VERSION_MAJOR:
        _fail(
            "version",
            "major %d (this reader reads %d.x)" % (codes.VERSION_MAJOR, codes.VERSION_MAJOR),
            "%d.%d" % (h[1], h[2]),
        )
    if h[3] & ~_known_flags():
        _fail("flags", "a subset of 0x%04x" % _known_flags(), "0x%04x" % h[3])
    file_size = h[4]
    if file_size > codes.MAX_FILE_SIZE:
        _fail("file_size", "at most %d bytes" % codes.MAX_FILE_SIZE, file_size)
    if size is not None and file_size != size:
        _fail("file size", "%d bytes (header field file_size)" % file_size, "%d bytes" % size)
    _check_meta_size("header_size", h[5])
    _check_meta_size("record_size", h[6])
    if h[7] < 1 or h[7] > codes.MAX_LAYERS:
        _fail("layer_count", "1 to %d" % codes.MAX_LAYERS, h[7])
    if h[8]:
        _fail("header reserved field", 0, h[8])
    end = _align(h[5] + h[7] * h[6])
    if h[11] != end:
        _fail("data_offset", "%d (header and %d layer records, aligned to 4)" % (end, h[7]), h[11])
    if end + codes.CRC_SIZE > file_size:
        _fail(
            "file_size",
            "at least %d bytes (header, layer records and CRC)" % (end + codes.CRC_SIZE),
            file_size,
        )
    if h[9] < 1:
        _fail("inputs", ">= 1", h[9])
    if h[10] < 1:
        _fail("outputs", ">= 1", h[10])
    return (h[3], file_size, h[5], h[6], h[7], h[9], h[10], end)


def _check_meta_size(name, value):
    if value < 32 or value > _MAX_META or value & 3:
        _fail(name, "a multiple of 4 from 32 to %d" % _MAX_META, value)


def _records(hdr, mv, f, crc):
    """Read and check every layer record, from the buffer `mv` or (mv None)
    the stream `f`, one record at a time; `crc` runs over what is read.

    Returns (layers, crc): layers are the unpacked record tuples (type, dtype,
    activation, flags, inputs, units, param, data_offset, data_size, seed,
    reserved). Nothing is allocated from a count before its records exist, and
    each step keeps few locals (a large frame is itself a heap allocation)."""
    buf = None
    if mv is None:
        buf = bytearray(hdr[3])
        crc = _skip_header_extra(f, buf, hdr, crc)
    layers = []
    for i in range(hdr[4]):
        if buf is None:
            rec = struct.unpack_from(_RECORD, mv, hdr[2] + i * hdr[3])
        else:
            crc = _read_record(f, buf, hdr, i, crc)
            rec = struct.unpack_from(_RECORD, buf, 0)
        if i:
            _record(i, rec, layers[i - 1][5], _align(layers[i - 1][7] + layers[i - 1][8]), hdr)
        else:
            _record(0, rec, hdr[5], hdr[7], hdr)
        layers.append(rec)
    rec = layers[-1]
    if rec[5] != hdr[6]:
        _fail("outputs", "%d (the last layer's units)" % rec[5], hdr[6])
    if _align(rec[7] + rec[8]) + codes.CRC_SIZE != hdr[1]:
        _fail(
            "file_size",
            "%d bytes (the data blocks' end and the CRC)" % (_align(rec[7] + rec[8]) + codes.CRC_SIZE),
            hdr[1],
        )
    return layers, crc


def _skip_header_extra(f, buf, hdr, crc):
    """Read past a later minor version's header fields (CRC-covered)."""
    extra = hdr[2] - codes.HEADER_SIZE
    while extra > 0:
        k = extra if extra < hdr[3] else hdr[3]
        view = memoryview(buf)[0:k]
        if _readinto(f, view, k) < k:
            _truncated(hdr[1], hdr[2] - extra)
        crc = _crc(crc, view, k)
        extra -= k
    return crc


def _read_record(f, buf, hdr, i, crc):
    if _readinto(f, buf, hdr[3]) < hdr[3]:
        _truncated(hdr[1], hdr[2] + i * hdr[3])
    return _crc(crc, buf, hdr[3])


def _lfail(i, field, expected, got):
    raise ModelFormatError("layer %d %s: expected %s, got %s" % (i, field, expected, got))


def _record(i, rec, n, cursor, hdr):
    """Check layer i's record: `n` its expected inputs, `cursor` its expected data
    offset; with the header's int8 flag every layer is an int8 dense layer."""
    if rec[4] != n:
        _lfail(
            i, "inputs", "%d (%s)" % (n, "the previous layer's units" if i else "the header's inputs"), rec[4]
        )
    if rec[7] != cursor:
        _lfail(i, "data_offset", "%d (the previous block's end, aligned to 4)" % cursor, rec[7])
    if rec[10]:
        _lfail(i, "reserved field", 0, rec[10])
    if rec[0] == _DENSE:
        _dense_record(i, rec, hdr[1], hdr[0] & _FLAG_INT8)
    elif rec[0] == _DROPOUT and hdr[0] & _FLAG_INT8:
        _lfail(i, "type", "dense (1): an int8 model holds int8 dense layers only", "dropout (2)")
    elif rec[0] == _DROPOUT:
        if i == 0:
            _lfail(0, "type", "dense (1): the first layer sets the inputs", "dropout (2)")
        _dropout_record(i, rec)
    else:
        _lfail(i, "type", "one of dense (1), dropout (2)", rec[0])
    if rec[7] + rec[8] > hdr[1] - codes.CRC_SIZE:
        _lfail(
            i,
            "data_size",
            "a block ending by byte %d (where the CRC starts)" % (hdr[1] - codes.CRC_SIZE),
            "%d bytes from byte %d" % (rec[8], rec[7]),
        )


def _dense_record(i, rec, file_size, int8):
    # rec: (type, dtype, activation, flags, inputs, units, param, offset, size, seed, reserved)
    if rec[1] != (_INT8 if int8 else _FLOAT32):
        _lfail(
            i,
            "dtype",
            "int8 (2): the header flags an int8 model"
            if int8
            else "float32 (1): the header has no int8 flag",
            "%s (%d)" % (codes.name_of(codes.DTYPES, rec[1]), rec[1]),
        )
    if codes.name_of(codes.ACTIVATIONS, rec[2]) is None:
        _lfail(i, "activation", "one of %s" % _choices(codes.ACTIVATIONS), rec[2])
    if not int8 and codes.name_of(codes.ACTIVATIONS, rec[2]) in codes.INT8_ONLY_ACTIVATIONS:
        _lfail(i, "activation", "a float32 layer's activation (not int8-only)", rec[2])
    if rec[3] & ~_BIAS:
        _lfail(i, "flags", "a subset of 0x%02x (bias)" % _BIAS, "0x%02x" % rec[3])
    if rec[5] < 1:
        _lfail(i, "units", ">= 1", rec[5])
    # Bound the product before computing it: units * inputs * itemsize <= file_size.
    if rec[5] > file_size or rec[4] > (file_size // (1 if int8 else 4)) // rec[5]:
        _lfail(
            i,
            "shape",
            "units x inputs x %d bytes within the file's %d bytes" % (1 if int8 else 4, file_size),
            "%d x %d" % (rec[5], rec[4]),
        )
    if rec[2] == _LEAKY:
        if not (rec[6] >= 0.0 and rec[6] < _INF):
            _lfail(i, "leaky_relu slope", "a finite number >= 0", rec[6])
    elif rec[6] != 0.0:
        _lfail(i, "param", "0.0 (only leaky_relu has a parameter)", rec[6])
    if rec[9]:
        _lfail(i, "seed", "0 for a dense layer", rec[9])
    if int8:
        _int8_record(i, rec)
    elif rec[8] != 4 * rec[5] * rec[4] + (4 * rec[5] if rec[3] & _BIAS else 0):
        _lfail(
            i,
            "data_size",
            "%d (%d x %d float32 weights%s)"
            % (
                4 * rec[5] * rec[4] + (4 * rec[5] if rec[3] & _BIAS else 0),
                rec[5],
                rec[4],
                " + bias" if rec[3] & _BIAS else "",
            ),
            rec[8],
        )


def _int8_record(i, rec):
    from .nnm_int8 import block_size

    act, lflags, units, inputs = rec[2], rec[3], rec[5], rec[4]
    if lflags != _BIAS:
        _lfail(i, "flags", "0x%02x (an int8 layer always has its int32 bias)" % _BIAS, "0x%02x" % lflags)
    expected = block_size(units, inputs, act)
    if rec[8] != expected:
        _lfail(i, "data_size", "%d (the int8 block of %d x %d)" % (expected, units, inputs), rec[8])


def _dropout_record(i, rec):
    if rec[1] or rec[2] or rec[3]:
        _lfail(
            i, "dtype/activation/flags", "0/0/0 for a dropout layer", "%d/%d/%d" % (rec[1], rec[2], rec[3])
        )
    if rec[5] != rec[4]:
        _lfail(i, "units", "%d (a dropout layer's inputs)" % rec[4], rec[5])
    if not (rec[6] >= 0.0 and rec[6] < 1.0):
        _lfail(i, "dropout rate", "0 <= rate < 1", rec[6])
    if rec[8]:
        _lfail(i, "data_size", "0 for a dropout layer", rec[8])


def _choices(table):
    return ", ".join("%s (%d)" % (name, table[name]) for name in table)


def _ram_needed(layers, copies, trainable):
    """Bytes of heap the network will take; `copies[i]`: layer i's weights are copied."""
    total = _PER_NETWORK + 4 * layers[-1][5] + _PER_BUFFER
    if layers[0][1] == _INT8:  # QNetwork: input staging (9 bytes per input), output table
        total += 9 * layers[0][4] + 1024 + layers[-1][5] + 5 * _PER_BUFFER
    for i in range(len(layers)):
        kind, dtype, act, lflags, n, u = layers[i][:6]
        sizes = [u, u]  # z, y
        if dtype == _INT8:
            from .nnm_int8 import ram_needed

            total += _PER_LAYER + ram_needed(u, n, act, not copies[i], _PER_BUFFER)
        elif kind == _DENSE:
            if copies[i]:
                sizes.append(u * n)
                sizes.append(u)
            elif not lflags & _BIAS:
                sizes.append(u)  # a zero bias
            if trainable:
                sizes.extend((u, n, u * n, u))  # d, gx, gw, gb
            total += _PER_LAYER
            for s in sizes:
                total += 4 * s + _PER_BUFFER
        else:
            total += _PER_LAYER + 9 * n + 3 * _PER_BUFFER  # keep, y, gx
    return total


def _check_memory(need):
    """MemoryError when `need` bytes exceed the free heap; returns the free heap
    (-1 on ports without gc.mem_free, e.g. CPython)."""
    mem_free = getattr(gc, "mem_free", None)
    if mem_free is None:
        return -1
    gc.collect()
    free = mem_free()
    if free >= 0 and need > free:
        raise MemoryError("nanonn.load: the model needs %d bytes of RAM, %d available" % (need, free))
    return free


def _no_memory(need, free):
    """The MemoryError for an allocation that failed after the RAM check passed."""
    return MemoryError(
        "nanonn.load: the model needs %d bytes of RAM, %d available but not in large enough "
        "blocks (the free heap is fragmented)" % (need, free)
    )


def _readinto(f, buf, nbytes):
    """Read up to `nbytes` into `buf` (a bytearray, array or memoryview of that
    size); returns how many bytes came before the end of the stream."""
    got = f.readinto(buf) or 0
    if got >= nbytes or got == 0:
        return got
    raw = memoryview(bytes_view(buf, nbytes))
    while got < nbytes:
        more = f.readinto(raw[got:]) or 0
        if more == 0:
            break
        got += more
    return got


def _truncated(file_size, pos):
    _fail("file size", "%d bytes (header field file_size)" % file_size, "%d bytes (truncated)" % pos)


def _load_stream(f, size, trainable):
    head = bytearray(codes.HEADER_SIZE)
    got = _readinto(f, head, codes.HEADER_SIZE)
    if got < codes.HEADER_SIZE:
        _fail("file size", "at least %d bytes (the header)" % codes.HEADER_SIZE, "%d bytes" % got)
    hdr = _header(head, size)
    _import_int8(hdr)
    file_size, data_offset = hdr[1], hdr[7]
    layers, crc = _records(hdr, None, f, _crc(0, head, codes.HEADER_SIZE))
    _check_trainable(hdr, trainable)
    need = _ram_needed(layers, [True] * len(layers), trainable)
    free = _check_memory(need)
    # The weight buffers come first, sized from the checked header.
    blocks = []
    try:
        for layer in layers:
            if layer[1] == _INT8:
                blocks.append((bytearray(layer[8]), 0))
            elif layer[0] == _DENSE:
                u, n = layer[5], layer[4]
                blocks.append((floats(u * n), floats(u)))
            else:
                blocks.append(None)
    except MemoryError:
        raise _no_memory(need, free)
    pos = data_offset
    pad = bytearray(4)
    for i in range(len(layers)):
        layer = layers[i]
        if layer[1] == _INT8:
            parts = ((blocks[i][0], layer[8]),)
            blocks[i] = (memoryview(blocks[i][0]), 0)
        elif layer[0] == _DENSE:
            w, b = blocks[i]
            nw = 4 * layer[5] * layer[4]
            parts = ((w, nw), (b, 4 * layer[5])) if layer[3] & _BIAS else ((w, nw),)
        else:
            parts = ()
        for buf, nbytes in parts:
            got = _readinto(f, buf, nbytes)
            if got < nbytes:
                _truncated(file_size, pos + got)
            crc = _crc(crc, buf, nbytes)
            pos += nbytes
        gap = _align(pos) - pos
        if gap:
            view = memoryview(pad)[0:gap]
            if _readinto(f, view, gap) < gap:
                _truncated(file_size, pos)
            for k in range(gap):
                if pad[k]:
                    _fail("padding at byte %d" % (pos + k), 0, pad[k])
            crc = _crc(crc, view, gap)
            pos += gap
    if _readinto(f, pad, 4) < 4:
        _truncated(file_size, pos)
    _check_crc(crc, struct.unpack_from("<I", pad, 0)[0])
    if f.read(1):
        _fail("file size", "%d bytes (header field file_size)" % file_size, "more (trailing bytes)")
    return _build(layers, blocks, trainable, None, need, free)


def _check_crc(computed, stored):
    if computed != stored:
        _fail("crc32", "0x%08x (computed over the file)" % computed, "0x%08x (stored in the file)" % stored)


def _load_buffer(src, trainable):
    # Split in steps with few locals each: a rejected model allocates little.
    mv = memoryview(src)
    if sys.implementation.name != "micropython" and mv.format != "B":
        mv = mv.cast("B")
    hdr = _checked_buffer(mv)
    layers = _records(hdr, mv, None, 0)[0]
    _check_trainable(hdr, trainable)
    return _buffer_network(src, mv, layers, trainable)


def _checked_buffer(mv):
    """The checked header of the model in `mv`, after its size and CRC are checked."""
    size = len(mv)
    if size < codes.HEADER_SIZE:
        _fail("file size", "at least %d bytes (the header)" % codes.HEADER_SIZE, "%d bytes" % size)
    hdr = _header(mv, size)
    _import_int8(hdr)
    size -= codes.CRC_SIZE
    _check_crc(_crc(0, mv[0:size], size), struct.unpack_from("<I", mv, size)[0])
    return hdr


def _buffer_network(src, mv, layers, trainable):
    views = []
    copies = []
    for layer in layers:
        view = None
        if layer[1] == _INT8:
            view = (mv, layer[7])  # int8 weights and tables are used in place
        elif layer[0] == _DENSE and not trainable:
            u, n, off = layer[5], layer[4], layer[7]
            w = float_view(mv, off, u * n)
            b = float_view(mv, off + 4 * u * n, u) if layer[3] & _BIAS else floats(u)
            if w is not None and b is not None:
                raw = [mv[off : off + layer[8]]]
                view = (w, b, raw, True)
        views.append(view)
        copies.append(layer[0] == _DENSE and view is None)
    need = _ram_needed(layers, copies, trainable)
    free = _check_memory(need)
    blocks = []
    try:
        for i in range(len(layers)):
            layer = layers[i]
            if not copies[i]:
                blocks.append(views[i])
                continue
            u, n, off = layer[5], layer[4], layer[7]
            w = float_copy(mv, off, u * n)
            b = float_copy(mv, off + 4 * u * n, u) if layer[3] & _BIAS else floats(u)
            blocks.append((w, b))
    except MemoryError:
        raise _no_memory(need, free)
    return _build(layers, blocks, trainable, src, need, free)


def _import_int8(hdr):
    """Import the int8 layer code before the RAM check (its import allocates too)."""
    if not hdr[0] & _FLAG_INT8:
        return
    try:
        from . import nnm_int8, quant  # noqa: F401
    except MemoryError as exc:
        mem_free = getattr(gc, "mem_free", None)
        raise MemoryError(
            "nanonn.load: importing the int8 code (nanonn.quant) needs more RAM than the %d bytes available (%s)"
            % (mem_free() if mem_free is not None else -1, exc)
        )


def _build(layers, blocks, trainable, source, need, free):
    try:
        return _network(layers, blocks, trainable, source)
    except MemoryError:
        raise _no_memory(need, free)


def _check_trainable(hdr, trainable):
    if trainable and hdr[0] & _FLAG_INT8:
        raise ValueError("trainable: expected False for an int8 model (int8 networks predict only), got True")


def _int8_network(layers, blocks):
    # The QDense weights and tables are memoryviews into the source: a MicroPython
    # memoryview keeps its base buffer alive (its item pointer stays at the base).
    from .nnm_int8 import build_layer
    from .quant import QDense, QNetwork

    objs = []
    for i in range(len(layers)):
        mv, off = blocks[i]
        try:
            layer = build_layer(QDense, mv, off, layers[i])
        except (ValueError, TypeError) as exc:
            raise ModelFormatError("layer %d int8 parameters: %s" % (i, exc))
        objs.append(layer)
    try:
        return QNetwork(objs)
    except (ValueError, TypeError) as exc:
        raise ModelFormatError("int8 network: %s" % exc)


def _network(layers, blocks, trainable, source):
    if layers[0][1] == _INT8:
        return _int8_network(layers, blocks)
    objs = []
    for i in range(len(layers)):
        rec = layers[i]
        kind, act, lflags, n, u, param = rec[0], rec[2], rec[3], rec[4], rec[5], rec[6]
        if kind == _DROPOUT:
            objs.append(Dropout(param, rec[9]))
            continue
        block = blocks[i]
        w, b = block[0], block[1]
        bias = bool(lflags & _BIAS)
        if len(block) == 4:  # an in-place view
            raw, in_place = block[2], True
        else:
            raw, in_place = ([w, b] if bias else [w]), False
        activation = LeakyReLU(param) if act == _LEAKY else codes.name_of(codes.ACTIVATIONS, act)
        objs.append(LoadedDense(u, n, activation, bias, w, b, raw, in_place, trainable, source))
    return Network(*objs)


def _stream_size(f):
    """Bytes left in a seekable stream, or None."""
    try:
        here = f.tell()
        end = f.seek(0, 2)
        f.seek(here)
    except (AttributeError, OSError, ValueError):
        return None
    if type(end) is not int:
        return None
    return end - here


def _load_path(path, trainable):
    """From a path; when `path + ".bak"` exists (saved with a backup, on FAT), the valid
    newest of the two (`nanonn.backup`)."""
    try:
        os.stat(path + ".bak")
    except OSError:
        return _load_file(path, trainable)
    from .backup import load_newest

    return load_newest(path, trainable)


def _load_file(path, trainable):
    with open(path, "rb") as f:
        return _load_stream(f, os.stat(path)[6], trainable)


def load(source, trainable=False):
    """Load a `.nnm` model; returns a new `Network` (any network loaded before is untouched).

    `source`: a path, a binary file object (anything with `readinto`), or a
    `bytes`/`bytearray`/`memoryview` (e.g. a frozen module's `MODEL` constant).
    From a bytes-like source the float weights are used in place (no copy)
    unless `trainable`; from a file they are read with `readinto` into
    `array('f')` buffers sized from the checked header. With `trainable=True`
    the layers get gradient buffers and train like `Dense` (costs about the
    weights' size again); otherwise the network predicts only.

    Raises `ModelFormatError` (a ValueError naming the field, the expected and
    the actual value) for anything that is not a valid model, and MemoryError
    (stating the bytes needed and available) before allocating a model larger
    than the free heap. A path with `path + ".bak"` beside it (saved with
    `backup=True`, e.g. on FAT) loads the valid newer of the two.
    """
    if sys.byteorder != "little":
        raise ValueError("byte order: expected a little-endian port, got %s" % sys.byteorder)
    if isinstance(source, str):
        return _load_path(source, trainable)
    t = type(source)
    if t is bytes or t is bytearray or t is memoryview:
        return _load_buffer(source, trainable)
    if hasattr(source, "readinto"):
        return _load_stream(source, _stream_size(source), trainable)
    raise TypeError(
        "source: expected a path, a binary file object or bytes/bytearray/memoryview, got %s" % t.__name__
    )


# ---------------------------------------------------------------- writing


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
    int8 = hasattr(layers[0], "w_scale")  # nanonn.quant.QDense layers (an int8 QNetwork)
    for i in range(len(layers)):
        layer = layers[i]
        where = "save layer %d" % i
        if hasattr(layer, "w_scale") != int8:
            raise ValueError(
                "%s: expected %s layer like layer 0, got %s"
                % (where, "an int8" if int8 else "a float", type(layer).__name__)
            )
        if int8:
            from .nnm_int8 import plan_layer

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
        cursor = _align(cursor + rec[8])
    return records, blocks, cursor + codes.CRC_SIZE, _FLAG_INT8 if int8 else 0


def _dense_plan(where, layer, cursor):
    act = layer.activation
    name = getattr(act, "name", None)
    code = codes.ACTIVATIONS.get(name) if type(name) is str else None
    if code is None:
        raise ValueError(
            "%s activation: expected one of %s, got %r" % (where, ", ".join(codes.ACTIVATIONS), act)
        )
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
    old or the new model after a cut at any step (`nanonn.backup`,
    docs/reliability.md). None (default): True on a FAT mount, else False."""
    if sys.byteorder != "little":
        raise ValueError("byte order: expected a little-endian port, got %s" % sys.byteorder)
    generation = None
    kept = None  # the backup module, imported only when a backup may be kept
    if backup is None or backup:
        from . import backup as kept

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
