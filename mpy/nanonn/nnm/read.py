"""Read and write `.nnm` model files: `load(source)` and `save(net, path)`.

The .nnm format, version 1.0 (the full text with rationale: docs/format.md)
--------------------------------------------------------------------------
Little-endian throughout. Codes and constants live in `nanonn/nnm/codes.py`.

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
import struct
import sys

from ..crc32 import update as _crc
from ..errors import ModelFormatError
from ..float32.activations import LeakyReLU
from ..float32.layers import Dropout, floats
from ..float32.network import Network
from ..inputs import describe, is_bytes
from . import codes
from .layers import LoadedDense, bytes_view, float_copy, float_view
from .layout import BIAS as _BIAS
from .layout import DENSE as _DENSE
from .layout import DROPOUT as _DROPOUT
from .layout import FLAG_INT8 as _FLAG_INT8
from .layout import FLOAT32 as _FLOAT32
from .layout import INT8 as _INT8
from .layout import RECORD as _RECORD
from .layout import align as _align

# The reader's view of the header: the magic as a u32 (no bytes object), so
# h = (magic, major, minor, flags, file_size, header_size, record_size,
#      layer_count, reserved, inputs, outputs, data_offset).
_HEADER_READ = "<IBBHIHHHHIII"
_MAGIC = struct.unpack("<I", codes.MAGIC)[0]
_MAX_META = 256  # largest header_size and record_size accepted
_LEAKY = codes.ACTIVATIONS["leaky_relu"]
_INF = float("inf")
_CRC_RESIDUE = 0x2144DF1C  # crc32(data + crc32(data) as <I), for any data
_NO_SEEK = (AttributeError, OSError, ValueError)  # what a stream without seek/tell raises
# RAM estimate (bytes): each buffer's object and heap rounding, each layer's
# objects, the network's own objects.
_PER_BUFFER = 48
_PER_LAYER = 320
_PER_NETWORK = 512


def _fail(field, expected, got):
    raise ModelFormatError("%s: expected %s, got %s" % (field, expected, got))


def _lfail(i, field, expected, got):
    raise ModelFormatError("layer %d %s: expected %s, got %s" % (i, field, expected, got))


def _end(rec):
    """Where the data block of the layer record `rec` ends, aligned to 4."""
    return (rec[7] + rec[8] + 3) & ~3


def _known_flags():
    known = 0
    for name in codes.FLAGS:
        known |= codes.FLAGS[name]
    return known


_KNOWN_FLAGS = _known_flags()


# ---------------------------------------------------------------- checking
#
# Every function from `load` to a rejection keeps its arguments, locals and
# evaluation stack within 11 words: MicroPython keeps such a frame on the C
# stack but allocates a larger one on the heap (`python tools/mpy_frames.py
# mpy/nanonn/nnm/read.py` lists them). A message is formatted once, by one `%`.
# So a file claiming huge counts or sizes is rejected allocating only the
# unpacked header and records, the error and its traceback (under 1 KB,
# docs/reliability.md). Hence the many small functions.


def _header(buf, size):
    """Check the fixed 32-byte header at buf[0:]; `size`: the source's length in
    bytes when known (else None). Returns the unpacked header `h` (_HEADER_READ)."""
    h = struct.unpack_from(_HEADER_READ, buf, 0)
    if h[0] != _MAGIC:
        _fail("magic", repr(codes.MAGIC), repr(bytes(buf[0:4])))
    if h[1] != codes.VERSION_MAJOR:
        raise ModelFormatError(
            "version: expected major %d (this reader reads %d.x), got %d.%d"
            % (codes.VERSION_MAJOR, codes.VERSION_MAJOR, h[1], h[2])
        )
    if h[3] & ~_KNOWN_FLAGS:
        raise ModelFormatError("flags: expected a subset of 0x%04x, got 0x%04x" % (_KNOWN_FLAGS, h[3]))
    if h[4] > codes.MAX_FILE_SIZE:
        raise ModelFormatError("file_size: expected at most %d bytes, got %d" % (codes.MAX_FILE_SIZE, h[4]))
    if size is not None and h[4] != size:
        raise ModelFormatError(
            "file size: expected %d bytes (header field file_size), got %d bytes" % (h[4], size)
        )
    _meta_size("header_size", h[5])
    _meta_size("record_size", h[6])
    if h[7] < 1 or h[7] > codes.MAX_LAYERS:
        raise ModelFormatError("layer_count: expected 1 to %d, got %d" % (codes.MAX_LAYERS, h[7]))
    if h[8]:
        _fail("header reserved field", 0, h[8])
    _header_sizes(h)
    return h


def _meta_size(name, value):
    if value < 32 or value > _MAX_META or value & 3:
        raise ModelFormatError(
            "%s: expected a multiple of 4 from 32 to %d, got %d" % (name, _MAX_META, value)
        )


def _header_sizes(h):
    end = _align(h[5] + h[7] * h[6])
    if h[11] != end:
        raise ModelFormatError(
            "data_offset: expected %d (header and %d layer records, aligned to 4), got %d"
            % (end, h[7], h[11])
        )
    if end + codes.CRC_SIZE > h[4]:
        raise ModelFormatError(
            "file_size: expected at least %d bytes (header, layer records and CRC), got %d"
            % (end + codes.CRC_SIZE, h[4])
        )
    if h[9] < 1:
        _fail("inputs", ">= 1", h[9])
    if h[10] < 1:
        _fail("outputs", ">= 1", h[10])


# The checked records so far: no list until the first record passes, so a
# rejected first layer allocates none.
_NONE_YET: tuple = ()


def _kept(layers, rec):
    """`layers` with the checked record `rec` appended (the list is made for the first)."""
    if not layers:
        return [rec]
    layers.append(rec)
    return layers


def _buffer_records(h, buf):
    """Check the layer records of the model in `buf` (header `h` checked); returns
    them unpacked: (type, dtype, activation, flags, inputs, units, param,
    data_offset, data_size, seed, reserved) each."""
    layers = _NONE_YET
    off = h[5]
    while len(layers) < h[7]:
        rec = struct.unpack_from(_RECORD, buf, off)
        _record(h, rec, layers)
        layers = _kept(layers, rec)
        off += h[6]
    _last(h, layers[-1])
    return layers


def _stream_records(h, f, buf):
    """Read and check the layer records from the stream `f`, one record-sized
    buffer at a time (nothing is allocated from the layer count). `buf`: the
    header's bytes, where the CRC starts; it then holds each record (a new
    buffer only for records of another size). Returns [layers, crc]: layers as
    from `_buffer_records`, crc over everything read."""
    crc = _crc(0, buf, codes.HEADER_SIZE)
    if h[6] != len(buf):
        buf = bytearray(h[6])
    crc = _skip_header_extra(f, buf, h, crc)
    layers = _NONE_YET
    while len(layers) < h[7]:
        if _readinto(f, buf, h[6]) < h[6]:
            _records_truncated(h, layers)
        crc = _crc(crc, buf, h[6])
        rec = struct.unpack_from(_RECORD, buf, 0)
        _record(h, rec, layers)
        layers = _kept(layers, rec)
    _last(h, layers[-1])
    return [layers, crc]


def _records_truncated(h, layers):
    _truncated(h[4], h[5] + len(layers) * h[6])


def _skip_header_extra(f, buf, h, crc):
    """Read past a later minor version's header fields (CRC-covered)."""
    extra = h[5] - codes.HEADER_SIZE
    while extra > 0:
        k = extra if extra < h[6] else h[6]
        view = memoryview(buf)[0:k]
        if _readinto(f, view, k) < k:
            _truncated(h[4], h[5] - extra)
        crc = _crc(crc, view, k)
        extra -= k
    return crc


def _last(h, rec):
    """The last layer's record against the header: its units and where the file ends."""
    if rec[5] != h[10]:
        raise ModelFormatError("outputs: expected %d (the last layer's units), got %d" % (rec[5], h[10]))
    if _end(rec) + codes.CRC_SIZE != h[4]:
        raise ModelFormatError(
            "file_size: expected %d bytes (the data blocks' end and the CRC), got %d"
            % (_end(rec) + codes.CRC_SIZE, h[4])
        )


def _record(h, rec, layers):
    """Check the record `rec` of layer i = len(layers), after the records `layers`;
    with the header's int8 flag every layer is an int8 dense layer."""
    i = len(layers)
    if i:
        prev = layers[i - 1]
        _link(i, rec, prev[5], _end(prev))
    else:
        _link(0, rec, h[9], h[11])
    if rec[0] == _DENSE:
        _dense_record(i, rec, h)
    else:
        _dropout_record(i, rec, h[3] & _FLAG_INT8)
    _within(i, rec, h[4] - codes.CRC_SIZE)


def _within(i, rec, crc_at):
    if rec[7] + rec[8] > crc_at:
        raise ModelFormatError(
            "layer %d data_size: expected a block ending by byte %d (where the CRC starts), got %d bytes from byte %d"
            % (i, crc_at, rec[8], rec[7])
        )


def _link(i, rec, n, cursor):
    """Layer i's inputs (`n`: the previous layer's units) and data offset (`cursor`)."""
    if rec[4] != n:
        raise ModelFormatError(
            "layer %d inputs: expected %d (%s), got %d"
            % (i, n, "the previous layer's units" if i else "the header's inputs", rec[4])
        )
    if rec[7] != cursor:
        raise ModelFormatError(
            "layer %d data_offset: expected %d (the previous block's end, aligned to 4), got %d"
            % (i, cursor, rec[7])
        )
    if rec[10]:
        _lfail(i, "reserved field", 0, rec[10])


def _dense_record(i, rec, h):
    # rec: (type, dtype, activation, flags, inputs, units, param, offset, size, seed, reserved)
    int8 = h[3] & _FLAG_INT8
    if rec[1] != (_INT8 if int8 else _FLOAT32):
        _dtype_fail(i, rec[1], int8)
    if codes.name_of(codes.ACTIVATIONS, rec[2]) is None:
        _lfail(i, "activation", "one of %s" % _choices(codes.ACTIVATIONS), rec[2])
    if not int8 and codes.name_of(codes.ACTIVATIONS, rec[2]) in codes.INT8_ONLY_ACTIVATIONS:
        _lfail(i, "activation", "a float32 layer's activation (not int8-only)", rec[2])
    if rec[3] & ~_BIAS:
        raise ModelFormatError(
            "layer %d flags: expected a subset of 0x%02x (bias), got 0x%02x" % (i, _BIAS, rec[3])
        )
    # Bound units x inputs x itemsize by the file size before any product is formed.
    if rec[5] < 1:
        _lfail(i, "units", ">= 1", rec[5])
    if rec[5] > h[4] or rec[4] > (h[4] // (1 if int8 else 4)) // rec[5]:
        _shape_fail(i, rec, h[4])
    _param(i, rec)
    if rec[9]:
        _lfail(i, "seed", "0 for a dense layer", rec[9])
    if int8:
        _int8_record(i, rec)
    else:
        _float_size(i, rec)


def _dtype_fail(i, dtype, int8):
    want = "int8 (2): the header flags an int8 model" if int8 else "float32 (1): the header has no int8 flag"
    name = codes.name_of(codes.DTYPES, dtype)
    raise ModelFormatError("layer %d dtype: expected %s, got %s (%d)" % (i, want, name, dtype))


def _shape_fail(i, rec, file_size):
    raise ModelFormatError(
        "layer %d shape: expected units x inputs x %d bytes within the file's %d bytes, got %d x %d"
        % (i, 1 if rec[1] == _INT8 else 4, file_size, rec[5], rec[4])
    )


def _param(i, rec):
    if rec[2] == _LEAKY:
        if not (rec[6] >= 0.0 and rec[6] < _INF):
            _lfail(i, "leaky_relu slope", "a finite number >= 0", rec[6])
    elif rec[6] != 0.0:
        _lfail(i, "param", "0.0 (only leaky_relu has a parameter)", rec[6])


def _float_size(i, rec):
    size = 4 * rec[5] * rec[4] + (4 * rec[5] if rec[3] & _BIAS else 0)
    if rec[8] != size:
        _float_size_fail(i, rec, size)


def _float_size_fail(i, rec, size):
    raise ModelFormatError(
        (
            "layer %d data_size: expected %d (%d x %d float32 weights + bias), got %d"
            if rec[3] & _BIAS
            else "layer %d data_size: expected %d (%d x %d float32 weights), got %d"
        )
        % (i, size, rec[5], rec[4], rec[8])
    )


def _int8_record(i, rec):
    if rec[3] != _BIAS:
        raise ModelFormatError(
            "layer %d flags: expected 0x%02x (an int8 layer always has its int32 bias), got 0x%02x"
            % (i, _BIAS, rec[3])
        )
    size = _int8_block_size(rec)
    if rec[8] != size:
        raise ModelFormatError(
            "layer %d data_size: expected %d (the int8 block of %d x %d), got %d"
            % (i, size, rec[5], rec[4], rec[8])
        )


def _int8_block_size(rec):
    from .int8 import block_size

    return block_size(rec[5], rec[4], rec[2])


def _dropout_record(i, rec, int8):
    if rec[0] != _DROPOUT:
        _lfail(i, "type", "one of dense (1), dropout (2)", rec[0])
    if int8:
        _lfail(i, "type", "dense (1): an int8 model holds int8 dense layers only", "dropout (2)")
    if i == 0:
        _lfail(0, "type", "dense (1): the first layer sets the inputs", "dropout (2)")
    if rec[1] or rec[2] or rec[3]:
        raise ModelFormatError(
            "layer %d dtype/activation/flags: expected 0/0/0 for a dropout layer, got %d/%d/%d"
            % (i, rec[1], rec[2], rec[3])
        )
    if rec[5] != rec[4]:
        raise ModelFormatError(
            "layer %d units: expected %d (a dropout layer's inputs), got %d" % (i, rec[4], rec[5])
        )
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
            from .int8 import ram_needed

            total += _PER_LAYER + ram_needed(u, n, act, not copies[i], _PER_BUFFER)
        elif kind == _DENSE:
            if copies[i]:
                sizes.append(u * n)
                sizes.append(u)
            elif not lflags & _BIAS:
                sizes.append(u)  # a zero bias
            if _tunes(layers, i, trainable):
                sizes.extend((u, u, n, n, u * n, u))  # d, c, gx, xf, gw, gb (Dense.alloc_train)
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


def _load_stream(f, trainable):
    size = _stream_size(f)  # the bytes left in the stream (None: unknown)
    head = _read_head(f)
    h = _header(head, size)
    read = _stream_records(h, f, head)
    _import_int8(h)
    _check_trainable(h, trainable)
    return _stream_network(f, h, read, trainable)


def _read_head(f):
    head = bytearray(codes.HEADER_SIZE)
    got = _readinto(f, head, codes.HEADER_SIZE)
    if got < codes.HEADER_SIZE:
        _fail("file size", "at least %d bytes (the header)" % codes.HEADER_SIZE, "%d bytes" % got)
    return head


def _stream_network(f, h, read, trainable):
    """The network of the checked header `h` and records: read[0] the records,
    read[1] the CRC so far; reads the data blocks and the CRC from `f`."""
    layers, crc = read
    file_size = h[4]
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
    pos = h[11]
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
    buf = src  # checked as it is; the memoryview for the in-place weights comes after
    if sys.implementation.name != "micropython":
        buf = memoryview(src).cast("B")  # CPython: len() of a typed memoryview counts items
    h = _checked_buffer(buf)
    layers = _buffer_records(h, buf)
    _import_int8(h)
    _check_trainable(h, trainable)
    return _buffer_network(src, memoryview(buf), layers, trainable)


def _checked_buffer(buf):
    """The checked header of the model in `buf`, after its size and CRC are checked."""
    size = len(buf)
    if size < codes.HEADER_SIZE:
        _fail("file size", "at least %d bytes (the header)" % codes.HEADER_SIZE, "%d bytes" % size)
    h = _header(buf, size)
    # The CRC-32 of bytes followed by their own CRC (little-endian) is the constant
    # _CRC_RESIDUE: one pass over the whole buffer, no slice.
    if _crc(0, buf, size) != _CRC_RESIDUE:
        size -= codes.CRC_SIZE
        _check_crc(_crc(0, memoryview(buf)[0:size], size), struct.unpack_from("<I", buf, size)[0])
    return h


def _buffer_network(src, mv, layers, trainable):
    views = []
    copies = []
    for i in range(len(layers)):
        layer = layers[i]
        view = None
        if layer[1] == _INT8:
            view = (mv, layer[7])  # int8 weights and tables are used in place
        elif layer[0] == _DENSE and not _tunes(layers, i, trainable):
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


def _import_int8(h):
    """Import the int8 layer code before the RAM check (its import allocates too)."""
    if h[3] & _FLAG_INT8:
        _int8_modules()


def _int8_modules():
    try:
        pass
    except MemoryError as exc:
        _no_import_memory(exc)


def _no_import_memory(exc):
    mem_free = getattr(gc, "mem_free", None)
    raise MemoryError(
        "nanonn.load: importing the int8 code (nanonn.int8.network) needs more RAM than the %d bytes available (%s)"
        % (mem_free() if mem_free is not None else -1, exc)
    )


def _build(layers, blocks, trainable, source, need, free):
    try:
        return _network(layers, blocks, trainable, source)
    except MemoryError:
        raise _no_memory(need, free)


def _check_trainable(h, trainable):
    if trainable and h[3] & _FLAG_INT8:
        raise ValueError("trainable: expected False for an int8 model (int8 networks predict only), got True")


def _trainable_count(trainable):
    """How many of the last layers train: True all, False none, or an int k >= 0."""
    if trainable is True:
        return 1 << 30
    if trainable is False or trainable is None:
        return 0
    if type(trainable) is not int or trainable < 0:
        raise ValueError(
            "trainable: expected True, False or an int >= 0 (the last layers to train), got %r" % (trainable,)
        )
    return trainable


def _tunes(layers, i, trainable):
    """Whether layer i is among the last `trainable` layers (those that train)."""
    return i >= len(layers) - trainable


def _int8_network(layers, blocks):
    # The QDense weights and tables are memoryviews into the source: a MicroPython
    # memoryview keeps its base buffer alive (its item pointer stays at the base).
    from ..int8.network import QDense, QNetwork
    from .int8 import build_layer

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
        tunes = _tunes(layers, i, trainable)
        layer = LoadedDense(u, n, activation, bias, w, b, raw, in_place, tunes, source)
        layer.frozen = bool(trainable) and not tunes
        objs.append(layer)
    return Network(*objs)


def _stream_size(f):
    """Bytes left in a seekable stream, or None."""
    try:
        return _seek_size(f)
    except _NO_SEEK:
        return None


def _seek_size(f):
    here = f.tell()
    end = f.seek(0, 2)
    f.seek(here)
    return end - here if type(end) is int else None


def _load_path(path, trainable):
    """From a path. A model saved with `backup=True` (on FAT) carries a generation
    number: then the valid newer of `path` and `path + ".bak"` loads, and so does
    the backup when `path` is missing (`nanonn.nnm.backup`). Any other model loads as
    it is, so a stale backup never shadows a model saved or copied without one."""
    f = _open_or_none(path)
    if f is None or _has_generation(f):
        return _load_backup(path, f, trainable)
    with f:
        return _load_stream(f, trainable)


def _open_or_none(path):
    try:
        return open(path, "rb")
    except OSError:
        return None


def _has_generation(f):
    """Whether the file `f` has a header_size from 36 to 256 (`nanonn.nnm.backup`: the
    generation number follows the 32-byte header); leaves `f` at its start."""
    head = f.read(14)
    f.seek(0)
    return len(head) == 14 and codes.HEADER_SIZE + 4 <= head[12] | head[13] << 8 <= _MAX_META


def _load_backup(path, f, trainable):
    if f is not None:
        f.close()
    from .backup import load_newest

    return load_newest(path, trainable)


def _load_file(path, trainable):
    with open(path, "rb") as f:
        return _load_stream(f, trainable)


def load(source, trainable: "bool | int" = False):
    """Load a `.nnm` model; returns a new `Network` (any network loaded before is untouched).

    `source`: a path, a binary file object (anything with `readinto`), or a
    `bytes`/`bytearray`/`memoryview` of bytes (e.g. a frozen module's `MODEL`
    constant; a memoryview of wider items, such as of an array('h'), raises TypeError).
    From a bytes-like source the float weights are used in place (no copy)
    unless `trainable`; from a file they are read with `readinto` into
    `array('f')` buffers sized from the checked header. With `trainable=True`
    the layers get gradient buffers and train like `Dense` (costs about the
    weights' size again); with an int k, only the last k layers do (fine-tuning: the
    others are `frozen`, cost no gradient buffers and, from a bytes-like source, keep
    their weights in place); otherwise the network predicts only.

    Raises `ModelFormatError` (a ValueError naming the field, the expected and
    the actual value) for anything that is not a valid model, and MemoryError
    (stating the bytes needed and available) before allocating a model larger
    than the free heap. A path with `path + ".bak"` beside it (saved with
    `backup=True`, e.g. on FAT) loads the valid newer of the two.
    """
    if sys.byteorder != "little":
        raise ValueError("byte order: expected a little-endian port, got %s" % sys.byteorder)
    trainable = _trainable_count(trainable)
    if isinstance(source, str):
        return _load_path(source, trainable)
    t = type(source)
    if (t is bytes or t is bytearray or t is memoryview) and is_bytes(source):
        return _load_buffer(source, trainable)
    if hasattr(source, "readinto"):
        return _load_stream(source, trainable)
    raise TypeError(
        "source: expected a path, a binary file object or bytes/bytearray/memoryview of bytes, got %s"
        % describe(source)
    )


# ---------------------------------------------------------------- writing
# The writer is `nanonn.nnm.write`, imported on first use: loading does not keep it in RAM.


def write(net, f, generation=None):
    """Write `net` as a .nnm model to the binary file object `f`; returns the bytes
    written (`nanonn.nnm_write.write`)."""
    from .write import write as _write

    return _write(net, f, generation)


def save(net, path, backup=None):
    """Write `net` to `path` safely: a temporary file, closed, then renamed over `path`;
    with `backup` (default: on a FAT mount) a generation number and `path + ".bak"`
    (`nanonn.nnm.write.save`, docs/reliability.md)."""
    from .write import save as _save

    _save(net, path, backup)


def dumps(net):
    """The .nnm bytes of `net` (`nanonn.nnm.write.dumps`)."""
    from .write import dumps as _dumps

    return _dumps(net)
