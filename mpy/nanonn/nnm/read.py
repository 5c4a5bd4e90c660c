"""Read `.nnm` model files: `load(source)`.

The format: docs/format.md, section "Layout".

A reader checks every field, count, offset and size product before it uses or
allocates anything; every violation raises `ModelFormatError` (a ValueError)
whose message names the field, the expected and the actual value. A model
needing more RAM than is free raises MemoryError first. Loading never imports
or executes anything from the model: it is data.
"""

import gc
import struct
import sys
from array import array

from ..crc32 import update as _crc
from ..errors import ModelFormatError
from ..inputs import describe, is_bytes
from . import codes
from .layout import BIAS as _BIAS
from .layout import DENSE as _DENSE
from .layout import DROPOUT as _DROPOUT
from .layout import FLAG_INT8 as _FLAG_INT8
from .layout import FLOAT32 as _FLOAT32
from .layout import INT8 as _INT8
from .layout import RECORD as _RECORD
from .layout import align as _align
from .layout import const

# Only what every load runs is imported here: the int8 network and its kernels are imported
# when an int8 model is read (`_int8_modules`), the float network and its loaded layers when a
# float model is built (`_network`), so neither kind of model keeps the other's code in RAM.

# The fields of an unpacked header `h` and layer record `rec`, in the order of the
# tables of docs/format.md, section "Layout" (tests/test_layout.py checks them against
# it). const() with a leading underscore: inlined by the compiler, no RAM.
_HEADER_READ = "<IBBHIHHHHIII"  # layout.HEADER with the magic as a u32 (no bytes object)
_H_MAGIC = const(0)
_H_MAJOR = const(1)
_H_MINOR = const(2)
_H_FLAGS = const(3)
_H_FILE_SIZE = const(4)
_H_HEADER_SIZE = const(5)
_H_RECORD_SIZE = const(6)
_H_LAYER_COUNT = const(7)
_H_RESERVED = const(8)
_H_INPUTS = const(9)
_H_OUTPUTS = const(10)
_H_DATA_OFFSET = const(11)
_R_TYPE = const(0)
_R_DTYPE = const(1)
_R_ACTIVATION = const(2)
_R_FLAGS = const(3)
_R_INPUTS = const(4)
_R_UNITS = const(5)
_R_PARAM = const(6)
_R_DATA_OFFSET = const(7)
_R_DATA_SIZE = const(8)
_R_SEED = const(9)
_R_RESERVED = const(10)
_MAGIC = const(0x1A4D4E4E)  # codes.MAGIC as a little-endian u32 (tests/test_layout.py)
_MAX_META = const(256)  # largest header_size and record_size accepted
_A_LEAKY_RELU = const(4)  # codes.ACTIVATIONS["leaky_relu"] (tests/test_layout.py)
_INF = float("inf")
_CRC_RESIDUE = const(0x2144DF1C)  # crc32(data + crc32(data) as <I), for any data (a small int)
_NO_SEEK = (AttributeError, OSError, ValueError)  # what a stream without seek/tell raises
_NOT_LOADED = (OSError, ModelFormatError)  # a missing or damaged file (the backup's fallback)
# RAM estimate (bytes): each buffer's object and heap rounding, each layer's
# objects, the network's own objects.
_PER_BUFFER = const(48)
_PER_LAYER = const(320)
_PER_NETWORK = const(512)


def _fail(field, expected, got):
    raise ModelFormatError("%s: expected %s, got %s" % (field, expected, got))


def _lfail(i, field, expected, got):
    raise ModelFormatError("layer %d %s: expected %s, got %s" % (i, field, expected, got))


def _end(rec):
    """Where the data block of the layer record `rec` ends, aligned to 4."""
    return (rec[_R_DATA_OFFSET] + rec[_R_DATA_SIZE] + 3) & ~3


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
    if h[_H_MAGIC] != _MAGIC:
        _fail("magic", repr(codes.MAGIC), repr(bytes(buf[0:4])))
    if h[_H_MAJOR] != codes.VERSION_MAJOR:
        raise ModelFormatError(
            "version: expected major %d (this reader reads %d.x), got %d.%d"
            % (codes.VERSION_MAJOR, codes.VERSION_MAJOR, h[_H_MAJOR], h[_H_MINOR])
        )
    if h[_H_FLAGS] & ~_KNOWN_FLAGS:
        raise ModelFormatError("flags: expected a subset of 0x%04x, got 0x%04x" % (_KNOWN_FLAGS, h[_H_FLAGS]))
    if h[_H_FILE_SIZE] > codes.MAX_FILE_SIZE:
        raise ModelFormatError(
            "file_size: expected at most %d bytes, got %d" % (codes.MAX_FILE_SIZE, h[_H_FILE_SIZE])
        )
    if size is not None and h[_H_FILE_SIZE] != size:
        raise ModelFormatError(
            "file size: expected %d bytes (header field file_size), got %d bytes" % (h[_H_FILE_SIZE], size)
        )
    _meta_size("header_size", h[_H_HEADER_SIZE])
    _meta_size("record_size", h[_H_RECORD_SIZE])
    if h[_H_LAYER_COUNT] < 1 or h[_H_LAYER_COUNT] > codes.MAX_LAYERS:
        raise ModelFormatError(
            "layer_count: expected 1 to %d, got %d" % (codes.MAX_LAYERS, h[_H_LAYER_COUNT])
        )
    if h[_H_RESERVED]:
        _fail("header reserved field", 0, h[_H_RESERVED])
    _header_sizes(h)
    return h


def _meta_size(name, value):
    if value < 32 or value > _MAX_META or value & 3:
        raise ModelFormatError(
            "%s: expected a multiple of 4 from 32 to %d, got %d" % (name, _MAX_META, value)
        )


def _header_sizes(h):
    end = _align(h[_H_HEADER_SIZE] + h[_H_LAYER_COUNT] * h[_H_RECORD_SIZE])
    if h[_H_DATA_OFFSET] != end:
        raise ModelFormatError(
            "data_offset: expected %d (header and %d layer records, aligned to 4), got %d"
            % (end, h[_H_LAYER_COUNT], h[_H_DATA_OFFSET])
        )
    if end + codes.CRC_SIZE > h[_H_FILE_SIZE]:
        raise ModelFormatError(
            "file_size: expected at least %d bytes (header, layer records and CRC), got %d"
            % (end + codes.CRC_SIZE, h[_H_FILE_SIZE])
        )
    if h[_H_INPUTS] < 1:
        _fail("inputs", ">= 1", h[_H_INPUTS])
    if h[_H_OUTPUTS] < 1:
        _fail("outputs", ">= 1", h[_H_OUTPUTS])


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
    them unpacked (fields _R_TYPE .. _R_RESERVED)."""
    layers = _NONE_YET
    off = h[_H_HEADER_SIZE]
    while len(layers) < h[_H_LAYER_COUNT]:
        rec = struct.unpack_from(_RECORD, buf, off)
        _record(h, rec, layers)
        layers = _kept(layers, rec)
        off += h[_H_RECORD_SIZE]
    _last(h, layers[-1])
    return layers


def _stream_records(h, f, buf):
    """Read and check the layer records from the stream `f`, one record-sized
    buffer at a time (nothing is allocated from the layer count). `buf`: the
    header's bytes, where the CRC starts; it then holds each record (a new
    buffer only for records of another size). Returns [layers, crc]: layers as
    from `_buffer_records`, crc over everything read."""
    crc = _crc(0, buf, codes.HEADER_SIZE)
    if h[_H_RECORD_SIZE] != len(buf):
        buf = bytearray(h[_H_RECORD_SIZE])
    crc = _skip_header_extra(f, buf, h, crc)
    layers = _NONE_YET
    while len(layers) < h[_H_LAYER_COUNT]:
        if _readinto(f, buf, h[_H_RECORD_SIZE]) < h[_H_RECORD_SIZE]:
            _records_truncated(h, layers)
        crc = _crc(crc, buf, h[_H_RECORD_SIZE])
        rec = struct.unpack_from(_RECORD, buf, 0)
        _record(h, rec, layers)
        layers = _kept(layers, rec)
    _last(h, layers[-1])
    return [layers, crc]


def _records_truncated(h, layers):
    _truncated(h[_H_FILE_SIZE], h[_H_HEADER_SIZE] + len(layers) * h[_H_RECORD_SIZE])


def _skip_header_extra(f, buf, h, crc):
    """Read past a later minor version's header fields (CRC-covered)."""
    extra = h[_H_HEADER_SIZE] - codes.HEADER_SIZE
    while extra > 0:
        k = extra if extra < h[_H_RECORD_SIZE] else h[_H_RECORD_SIZE]
        view = memoryview(buf)[0:k]
        if _readinto(f, view, k) < k:
            _truncated(h[_H_FILE_SIZE], h[_H_HEADER_SIZE] - extra)
        crc = _crc(crc, view, k)
        extra -= k
    return crc


def _last(h, rec):
    """The last layer's record against the header: its units and where the file ends."""
    if rec[_R_UNITS] != h[_H_OUTPUTS]:
        raise ModelFormatError(
            "outputs: expected %d (the last layer's units), got %d" % (rec[_R_UNITS], h[_H_OUTPUTS])
        )
    if _end(rec) + codes.CRC_SIZE != h[_H_FILE_SIZE]:
        raise ModelFormatError(
            "file_size: expected %d bytes (the data blocks' end and the CRC), got %d"
            % (_end(rec) + codes.CRC_SIZE, h[_H_FILE_SIZE])
        )


def _record(h, rec, layers):
    """Check the record `rec` of layer i = len(layers), after the records `layers`;
    with the header's int8 flag every layer is an int8 dense layer."""
    i = len(layers)
    if i:
        prev = layers[i - 1]
        _link(i, rec, prev[_R_UNITS], _end(prev))
    else:
        _link(0, rec, h[_H_INPUTS], h[_H_DATA_OFFSET])
    if rec[_R_TYPE] == _DENSE:
        _dense_record(i, rec, h)
    else:
        _dropout_record(i, rec, h[_H_FLAGS] & _FLAG_INT8)
    _within(i, rec, h[_H_FILE_SIZE] - codes.CRC_SIZE)


def _within(i, rec, crc_at):
    if rec[_R_DATA_OFFSET] + rec[_R_DATA_SIZE] > crc_at:
        raise ModelFormatError(
            "layer %d data_size: expected a block ending by byte %d (where the CRC starts), got %d bytes from byte %d"
            % (i, crc_at, rec[_R_DATA_SIZE], rec[_R_DATA_OFFSET])
        )


def _link(i, rec, n, cursor):
    """Layer i's inputs (`n`: the previous layer's units) and data offset (`cursor`)."""
    if rec[_R_INPUTS] != n:
        raise ModelFormatError(
            "layer %d inputs: expected %d (%s), got %d"
            % (i, n, "the previous layer's units" if i else "the header's inputs", rec[_R_INPUTS])
        )
    if rec[_R_DATA_OFFSET] != cursor:
        raise ModelFormatError(
            "layer %d data_offset: expected %d (the previous block's end, aligned to 4), got %d"
            % (i, cursor, rec[_R_DATA_OFFSET])
        )
    if rec[_R_RESERVED]:
        _lfail(i, "reserved field", 0, rec[_R_RESERVED])


def _dense_record(i, rec, h):
    int8 = h[_H_FLAGS] & _FLAG_INT8
    if rec[_R_DTYPE] != (_INT8 if int8 else _FLOAT32):
        _dtype_fail(i, rec[_R_DTYPE], int8)
    if codes.name_of(codes.ACTIVATIONS, rec[_R_ACTIVATION]) is None:
        _lfail(i, "activation", "one of %s" % _choices(codes.ACTIVATIONS), rec[_R_ACTIVATION])
    if not int8 and codes.name_of(codes.ACTIVATIONS, rec[_R_ACTIVATION]) in codes.INT8_ONLY_ACTIVATIONS:
        _lfail(i, "activation", "a float32 layer's activation (not int8-only)", rec[_R_ACTIVATION])
    if rec[_R_FLAGS] & ~_BIAS:
        raise ModelFormatError(
            "layer %d flags: expected a subset of 0x%02x (bias), got 0x%02x" % (i, _BIAS, rec[_R_FLAGS])
        )
    # Bound units x inputs x itemsize by the file size before any product is formed.
    if rec[_R_UNITS] < 1:
        _lfail(i, "units", ">= 1", rec[_R_UNITS])
    if (
        rec[_R_UNITS] > h[_H_FILE_SIZE]
        or rec[_R_INPUTS] > (h[_H_FILE_SIZE] // (1 if int8 else 4)) // rec[_R_UNITS]
    ):
        _shape_fail(i, rec, h[_H_FILE_SIZE])
    _param(i, rec)
    if rec[_R_SEED]:
        _lfail(i, "seed", "0 for a dense layer", rec[_R_SEED])
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
        % (i, 1 if rec[_R_DTYPE] == _INT8 else 4, file_size, rec[_R_UNITS], rec[_R_INPUTS])
    )


def _param(i, rec):
    if rec[_R_ACTIVATION] == _A_LEAKY_RELU:
        if not (rec[_R_PARAM] >= 0.0 and rec[_R_PARAM] < _INF):
            _lfail(i, "leaky_relu slope", "a finite number >= 0", rec[_R_PARAM])
    elif rec[_R_PARAM] != 0.0:
        _lfail(i, "param", "0.0 (only leaky_relu has a parameter)", rec[_R_PARAM])


def _float_size(i, rec):
    size = 4 * rec[_R_UNITS] * rec[_R_INPUTS] + (4 * rec[_R_UNITS] if rec[_R_FLAGS] & _BIAS else 0)
    if rec[_R_DATA_SIZE] != size:
        _float_size_fail(i, rec, size)


def _float_size_fail(i, rec, size):
    raise ModelFormatError(
        (
            "layer %d data_size: expected %d (%d x %d float32 weights + bias), got %d"
            if rec[_R_FLAGS] & _BIAS
            else "layer %d data_size: expected %d (%d x %d float32 weights), got %d"
        )
        % (i, size, rec[_R_UNITS], rec[_R_INPUTS], rec[_R_DATA_SIZE])
    )


def _int8_record(i, rec):
    if rec[_R_FLAGS] != _BIAS:
        raise ModelFormatError(
            "layer %d flags: expected 0x%02x (an int8 layer always has its int32 bias), got 0x%02x"
            % (i, _BIAS, rec[_R_FLAGS])
        )
    size = _int8_block_size(rec)
    if rec[_R_DATA_SIZE] != size:
        raise ModelFormatError(
            "layer %d data_size: expected %d (the int8 block of %d x %d), got %d"
            % (i, size, rec[_R_UNITS], rec[_R_INPUTS], rec[_R_DATA_SIZE])
        )


def _int8_block_size(rec):
    from .int8 import block_size  # on use: only an int8 model needs nnm.int8

    return block_size(rec[_R_UNITS], rec[_R_INPUTS], rec[_R_ACTIVATION])


def _dropout_record(i, rec, int8):
    if rec[_R_TYPE] != _DROPOUT:
        _lfail(i, "type", "one of dense (1), dropout (2)", rec[_R_TYPE])
    if int8:
        _lfail(i, "type", "dense (1): an int8 model holds int8 dense layers only", "dropout (2)")
    if i == 0:
        _lfail(0, "type", "dense (1): the first layer sets the inputs", "dropout (2)")
    if rec[_R_DTYPE] or rec[_R_ACTIVATION] or rec[_R_FLAGS]:
        raise ModelFormatError(
            "layer %d dtype/activation/flags: expected 0/0/0 for a dropout layer, got %d/%d/%d"
            % (i, rec[_R_DTYPE], rec[_R_ACTIVATION], rec[_R_FLAGS])
        )
    if rec[_R_UNITS] != rec[_R_INPUTS]:
        raise ModelFormatError(
            "layer %d units: expected %d (a dropout layer's inputs), got %d"
            % (i, rec[_R_INPUTS], rec[_R_UNITS])
        )
    if not (rec[_R_PARAM] >= 0.0 and rec[_R_PARAM] < 1.0):
        _lfail(i, "dropout rate", "0 <= rate < 1", rec[_R_PARAM])
    if rec[_R_DATA_SIZE]:
        _lfail(i, "data_size", "0 for a dropout layer", rec[_R_DATA_SIZE])


def _choices(table):
    return ", ".join("%s (%d)" % (name, table[name]) for name in table)


def _ram_needed(layers, copies, trainable):
    """Bytes of heap the network will take; `copies[i]`: layer i's weights are copied."""
    total = _PER_NETWORK + 4 * layers[-1][_R_UNITS] + _PER_BUFFER
    if layers[0][_R_DTYPE] == _INT8:  # QNetwork: int8 input staging and output (float I/O: at first predict)
        total += layers[0][_R_INPUTS] + layers[-1][_R_UNITS] + 2 * _PER_BUFFER
    for i in range(len(layers)):
        kind, dtype, act, lflags, n, u = layers[i][: _R_UNITS + 1]  # type .. units
        sizes = [u, u]  # z, y
        if dtype == _INT8:
            from .int8 import ram_needed  # on use: only an int8 model needs nnm.int8

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


def ram_needed(buf, from_file=False, trainable: "bool | int" = False):
    """Bytes of heap `load` keeps for the model in the bytes-like `buf` (checked as `load`
    checks it; ModelFormatError if invalid): its network and buffers, not the code it
    imports. `from_file`: as when read from a file (weights copied into RAM), else as
    from a bytes-like source (int8 weights and tables, untrained float weights in place).
    The figure `load` checks against the free heap. Allocates the checked records."""
    trainable = _trainable_count(trainable)
    if sys.implementation.name != "micropython":
        buf = memoryview(buf).cast("B")
    layers = _buffer_records(_checked_buffer(buf), buf)
    return _ram_needed(layers, _copies(layers, from_file, trainable), trainable)


def _copies(layers, from_file, trainable):
    """Which layers' weights `load` copies into RAM: all from a file; from bytes, the
    dense layers that train."""
    out = []
    for i in range(len(layers)):
        out.append(from_file or (layers[i][_R_TYPE] == _DENSE and _tunes(layers, i, trainable)))
    return out


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
    return _read_rest(f, buf, nbytes, got)


def _read_rest(f, buf, nbytes, got):
    """`_readinto` after a short read of `got` bytes (a stream that returns less)."""
    raw = _raw_bytes(buf, nbytes)
    while got < nbytes:
        more = f.readinto(raw[got:]) or 0
        if more == 0:
            break
        got += more
    return got


def _truncated(file_size, pos):
    _fail("file size", "%d bytes (header field file_size)" % file_size, "%d bytes (truncated)" % pos)


def _load_stream(f, trainable):
    return _stream_network(f, _checked_stream(f, trainable), trainable)


def _load_opened(f, trainable):
    """From the file `load` opened by path: on ROMFS its bytes are used in place
    (`_mapped`, asked once the header and records have passed), else read as a stream."""
    read = _checked_stream(f, trainable)
    mapped = _mapped(f)
    if mapped is not None:
        return _load_buffer(mapped, trainable)
    return _stream_network(f, read, trainable)


def _checked_stream(f, trainable):
    """Read and check the header and records from `f`: [h, layers, crc so far]."""
    size = _stream_size(f)  # the bytes left in the stream (None: unknown)
    head = _read_head(f)
    h = _header(head, size)
    read = _stream_records(h, f, head)
    _import_int8(h)
    _check_trainable(h, trainable)
    return [h, read[0], read[1]]


def _read_head(f):
    head = bytearray(codes.HEADER_SIZE)
    got = _readinto(f, head, codes.HEADER_SIZE)
    if got < codes.HEADER_SIZE:
        _fail("file size", "at least %d bytes (the header)" % codes.HEADER_SIZE, "%d bytes" % got)
    return head


def _stream_network(f, read, trainable):
    """The network of the checked header and records `read` (`_checked_stream`: [h,
    layers, the CRC so far]); reads the data blocks and the CRC from `f`."""
    h, layers, crc = read
    file_size = h[_H_FILE_SIZE]
    need = _ram_needed(layers, [True] * len(layers), trainable)
    free = _check_memory(need)
    # The weight buffers come first, sized from the checked header.
    blocks = []
    try:
        for layer in layers:
            if layer[_R_DTYPE] == _INT8:  # each part in the buffer the layer keeps
                blocks.append(_int8_parts(layer))
            elif layer[_R_TYPE] == _DENSE:
                u, n = layer[_R_UNITS], layer[_R_INPUTS]
                blocks.append((_floats(u * n), _floats(u)))
            else:
                blocks.append(None)
    except MemoryError:
        raise _no_memory(need, free)
    pos = h[_H_DATA_OFFSET]
    pad = bytearray(4)
    for i in range(len(layers)):
        layer = layers[i]
        if layer[_R_DTYPE] == _INT8:
            parts = blocks[i]
        elif layer[_R_TYPE] == _DENSE:
            w, b = blocks[i]
            nw = 4 * layer[_R_UNITS] * layer[_R_INPUTS]
            parts = ((w, nw), (b, 4 * layer[_R_UNITS])) if layer[_R_FLAGS] & _BIAS else ((w, nw),)
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
        if layer[_R_DTYPE] == _INT8:
            view = (mv, layer[_R_DATA_OFFSET])  # int8 weights and tables are used in place
        elif layer[_R_TYPE] == _DENSE and not _tunes(layers, i, trainable):
            u, n, off = layer[_R_UNITS], layer[_R_INPUTS], layer[_R_DATA_OFFSET]
            w = _float_view(mv, off, u * n)
            b = _float_view(mv, off + 4 * u * n, u) if layer[_R_FLAGS] & _BIAS else _floats(u)
            if w is not None and b is not None:
                raw = [mv[off : off + layer[_R_DATA_SIZE]]]
                view = (w, b, raw, True)
        views.append(view)
        copies.append(layer[_R_TYPE] == _DENSE and view is None)
    need = _ram_needed(layers, copies, trainable)
    free = _check_memory(need)
    blocks = []
    try:
        for i in range(len(layers)):
            layer = layers[i]
            if not copies[i]:
                blocks.append(views[i])
                continue
            u, n, off = layer[_R_UNITS], layer[_R_INPUTS], layer[_R_DATA_OFFSET]
            w = _float_copy(mv, off, u * n)
            b = _float_copy(mv, off + 4 * u * n, u) if layer[_R_FLAGS] & _BIAS else _floats(u)
            blocks.append((w, b))
    except MemoryError:
        raise _no_memory(need, free)
    return _build(layers, blocks, trainable, src, need, free)


def _import_int8(h):
    """Import the int8 layer code before the RAM check (its import allocates too)."""
    if h[_H_FLAGS] & _FLAG_INT8:
        _int8_modules()


def _int8_modules():
    try:
        from ..int8 import network  # noqa: F401  (QNetwork and its kernels)
    except MemoryError as exc:
        _no_import_memory(exc)


def _int8_parts(rec):
    """`nanonn.nnm.int8.stream_parts`: the buffers an int8 block is read into."""
    from .int8 import stream_parts  # on use: only an int8 model needs nnm.int8

    return stream_parts(rec)


def _raw_bytes(buf, nbytes):
    """A memoryview of the first `nbytes` bytes of `buf` (`nanonn.nnm.views.bytes_view`)."""
    from .views import bytes_view  # on use: a board's files fill a buffer in one read

    return memoryview(bytes_view(buf, nbytes))


def _float_view(mv, off, count):
    """`nanonn.nnm.views.float_view`: float32 weights in place (or None)."""
    from .views import float_view  # on use: only a float model's weights are viewed

    return float_view(mv, off, count)


def _float_copy(mv, off, count):
    """`nanonn.nnm.views.float_copy`: float32 weights copied into an array('f')."""
    from .views import float_copy  # on use: only a float model's weights are copied

    return float_copy(mv, off, count)


def _floats(n):
    """A zero-filled array('f') of n floats (allocates 4 * n bytes)."""
    return array("f", bytearray(4 * n))


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
    if trainable and h[_H_FLAGS] & _FLAG_INT8:
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
    from ..int8.network import QDense, QNetwork  # on use: an int8 model only (see the imports)
    from .int8 import build_layer, read_layer

    gc.collect()
    # the network's input buffer first, while the heap has a free block its size (the
    # layers' small objects and garbage come after, and fragment what is left)
    staging = bytearray(layers[0][_R_INPUTS])
    objs = []
    for i in range(len(layers)):
        block = blocks[i]  # (mv, offset) in place, or the parts read from a stream (a list)
        # Each layer's lasting buffers then take the lowest free blocks instead of holes
        # between the previous layer's garbage (the big ints of its requantization): the
        # 784-36-14-10 model needs 2-3 KB less free heap on the cortex-m3 firmware.
        gc.collect()
        try:
            if type(block) is list:
                layer = read_layer(QDense, block, layers[i])
            else:
                layer = build_layer(QDense, block[0], block[1], layers[i])
        except (ValueError, TypeError) as exc:
            raise ModelFormatError("layer %d int8 parameters: %s" % (i, exc))
        objs.append(layer)
    gc.collect()
    try:
        return QNetwork(objs, staging=staging)
    except (ValueError, TypeError) as exc:
        raise ModelFormatError("int8 network: %s" % exc)


def _network(layers, blocks, trainable, source):
    if layers[0][_R_DTYPE] == _INT8:
        return _int8_network(layers, blocks)
    # the float network and its loaded layers, on the first float model (see the imports)
    from ..float32.activations import LeakyReLU
    from ..float32.layers import Dropout
    from ..float32.network import Network
    from .layers import LoadedDense

    objs = []
    for i in range(len(layers)):
        rec = layers[i]
        kind, act, lflags, n, u, param = (
            rec[_R_TYPE],
            rec[_R_ACTIVATION],
            rec[_R_FLAGS],
            rec[_R_INPUTS],
            rec[_R_UNITS],
            rec[_R_PARAM],
        )
        if kind == _DROPOUT:
            objs.append(Dropout(param, rec[_R_SEED]))
            continue
        block = blocks[i]
        w, b = block[0], block[1]
        bias = bool(lflags & _BIAS)
        if len(block) == 4:  # an in-place view
            raw, in_place = block[2], True
        else:
            raw, in_place = ([w, b] if bias else [w]), False
        activation = LeakyReLU(param) if act == _A_LEAKY_RELU else codes.name_of(codes.ACTIVATIONS, act)
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
        return _load_opened(f, trainable)


def _mapped(f):
    """The bytes of the open file `f` in place, or None: a file on a ROMFS mount
    (MicroPython 1.25+, e.g. /rom) is a buffer in flash, so its model is used as a
    frozen bytes constant is, without a copy in RAM (the view stays valid after the
    file is closed: ROMFS is read-only memory). Any other file is read into RAM (asked
    after the header and records pass: the TypeError allocates, a rejected file need not)."""
    try:
        return memoryview(f)  # pyright: ignore[reportArgumentType]  (a VfsRom file is a buffer)
    except TypeError:
        return None


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
    """The valid newest of `path` and `path + ".bak"` by generation number; the other
    when that one is missing or damaged; the first one's error when neither loads."""
    if f is not None:
        f.close()
    from .backup import generation  # on use: only a path saved with a backup needs it

    first, second = path, path + ".bak"
    if generation(second) > generation(first):
        first, second = second, first
    net = _load_or_none(first, trainable)
    if net is None:
        net = _load_or_none(second, trainable)
    if net is None:
        net = _load_file(first, trainable)  # neither loads: raise the first one's error
    return net


def _load_or_none(path, trainable):
    """The network at `path`, or None when it is missing or not a valid model."""
    try:
        return _load_file(path, trainable)
    except _NOT_LOADED:
        return None


def _load_file(path, trainable):
    with open(path, "rb") as f:
        return _load_stream(f, trainable)


def load(source, trainable: "bool | int" = False):
    """Load a `.nnm` model; returns a new `Network` (any network loaded before is untouched).

    `source`: a path, a binary file object (anything with `readinto`), or a
    `bytes`/`bytearray`/`memoryview` of bytes (e.g. a frozen module's `MODEL`
    constant; a memoryview of wider items, such as of an array('h'), raises TypeError).
    A path on a ROMFS mount (e.g. "/rom/model.nnm") is used in place like a bytes
    constant; a file on any other filesystem is read into RAM.
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
