"""The .nnm reader and writer on the device: round trips, sources, rejection of bad models."""

import gc
import os
import struct
from array import array

from check import (
    HEAP_MEASURED,
    IS_MICROPYTHON,
    LINES_COUNTED,
    SMALL_HEAP,
    TMPDIR,
    WORK_BASE,
    WORK_PER_BYTE,
    CheckFailed,
    ChunkedStream,
    LineCounter,
    close,
    eq,
    ok,
    raises,
)
from nanonn import Dense, Dropout, ModelFormatError, Network, load
from nanonn.crc32 import update as crc_update
from nanonn.float32.activations import LeakyReLU
from nanonn.nnm.write import dumps
from nanonn.rand import Random

TMP = TMPDIR + "/model.nnm"
# every file a test may write (save's temporary files too), removed by the runner after each test
TEMP_FILES = (TMP, TMP + ".tmp", TMP + ".2", TMP + ".2.tmp", TMP + ".cut")
NEEDS_FILESYSTEM = (
    "test_custom_activation_under_a_builtin_name_refused_by_save",
    "test_every_truncation_rejected",
    "test_in_place_model_costs_little_ram",
    "test_int8_network_saves_like_a_float_one",
    "test_int8_round_trip_every_source",
    "test_later_minor_version_with_longer_header_and_records_loads",
    "test_round_trip_every_source_byte_identical",
    "test_save_replaces_atomically_and_leaves_no_temp",
    "test_trailing_bytes_rejected",
)
X = [0.25, -1.5, 0.75, 2.0]


def _net(seed=3):
    return Network(
        Dense(6, inputs=4, activation="tanh"),
        Dropout(0.25, seed=9),
        Dense(5, activation=LeakyReLU(0.1)),
        Dense(4, activation="relu", use_bias=False),
        Dense(3, activation="softmax"),
        seed=seed,
    )


def _fix_crc(buf):
    """Recompute the trailing CRC of a (mutated) model in place."""
    n = len(buf) - 4
    struct.pack_into("<I", buf, n, crc_update(0, memoryview(buf)[0:n], n))
    return buf


def _sources(data):
    with open(TMP, "wb") as f:
        f.write(data)
    return [
        ("path", lambda: load(TMP)),
        ("file", lambda: _load_open(TMP)),
        ("bytes", lambda: load(bytes(data))),
        ("bytearray", lambda: load(bytearray(data))),
        ("memoryview", lambda: load(memoryview(data))),
    ]


def _load_open(path):
    with open(path, "rb") as f:
        return load(f)


def _float(net, what):
    """`net`, required to be a float Network (load gives a QNetwork for an int8 model)."""
    if not isinstance(net, Network):
        raise CheckFailed("%s type: expected 'Network', got %r" % (what, type(net).__name__))
    return net


def _int8(net, what):
    """`net`, required to be a QNetwork (what load gives for an int8 model)."""
    if isinstance(net, Network) or type(net).__name__ != "QNetwork":
        raise CheckFailed("%s type: expected 'QNetwork', got %r" % (what, type(net).__name__))
    return net


def test_round_trip_every_source_byte_identical():
    net = _net()
    data = dumps(net)
    expected = list(net.predict(X))
    for name, get in _sources(data):
        loaded = _float(get(), name)
        close(loaded.predict(X), expected, 1e-6, name + " prediction")
        eq(dumps(loaded), data, name + " re-saved bytes")
        loaded.save(TMP + ".2")
        with open(TMP + ".2", "rb") as f:
            eq(f.read(), data, name + " save() file")


def test_save_replaces_atomically_and_leaves_no_temp():
    net = _net()
    net.save(TMP)
    other = Network(Dense(2, inputs=4))
    other.save(TMP)
    eq(load(TMP).outputs, 2, "outputs after replacing the file")
    eq(os.listdir(TMPDIR), ["model.nnm"], "the files after two saves (no temporary left)")


def test_bytes_source_is_used_in_place():
    data = dumps(_net())
    net = load(data)
    dense = [layer for layer in net.layers if hasattr(layer, "in_place")]
    eq([layer.in_place for layer in dense], [True, True, True, True], "in-place layers")
    file_net = load(bytearray(data), trainable=True)
    eq([layer.in_place for layer in file_net.layers if hasattr(layer, "in_place")], [False] * 4, "copies")


def test_in_place_model_costs_little_ram():
    # 64 KiB of float32 weights (9 KiB on a board-sized heap: the float network it is
    # saved from, its bytes and two loaded copies must fit together, in blocks that a heap
    # holding this module's many tests still has): from bytes only the activations are
    # allocated.
    n = 48 if SMALL_HEAP else 128
    weights = 4 * n * n
    big = Network(Dense(n, inputs=n, activation="relu"), seed=5)
    data = dumps(big)
    big = None
    eq(len(data) > weights, True, "model size")
    with open(TMP, "wb") as f:
        f.write(data)
    if not HEAP_MEASURED:  # CPython, the WebAssembly port: both sources load and agree
        close(load(data).predict([0.5] * n), list(load(TMP).predict([0.5] * n)), 1e-6, "same predictions")
        return
    gc.collect()
    before = gc.mem_alloc()
    net = load(data)
    gc.collect()
    used = gc.mem_alloc() - before
    ok(used < 4096, "bytes load keeps %d bytes (expected < 4096)" % used)
    before = gc.mem_alloc()
    net2 = load(TMP)
    gc.collect()
    used2 = gc.mem_alloc() - before
    ok(
        weights < used2 < weights + 4096,
        "file load keeps %d bytes (expected the weights + < 4096)" % used2,
    )
    print("RAM kept: bytes source %d B, file source %d B, model %d B" % (used, used2, len(data)))
    close(net.predict([0.5] * n), list(net2.predict([0.5] * n)), 1e-6, "same predictions")


def test_trainable_load_trains_like_the_original():
    net = _net()
    twin = _float(load(dumps(net), trainable=True), "trainable load")
    for _ in range(3):
        a = net.train(X, [0.0, 1.0, 0.0], rate=0.05)
        b = twin.train(X, [0.0, 1.0, 0.0], rate=0.05)
        close(b, a, 1e-6, "loss")
    close(twin.predict(X), list(net.predict(X)), 1e-6, "after training")


def test_inference_only_layers_refuse_training():
    net = _float(load(dumps(_net())), "load")
    raises(ValueError, net.train, X, [0.0, 1.0, 0.0], contains=("trainable=True", "got trainable=False"))
    raises(ValueError, net.layers[0].set_weights, [0.0] * 30, contains=("in place",))


def test_every_truncation_rejected():
    data = dumps(_net())
    with open(TMP, "wb") as f:
        f.write(data)
    for cut in range(len(data)):
        part = data[:cut]
        exc = raises(ModelFormatError, load, part, contains=("expected",))
        ok("size" in str(exc) or "magic" in str(exc), "cut %d: %s" % (cut, exc))
        with open(TMP + ".cut", "wb") as f:
            f.write(part)
        raises(ModelFormatError, load, TMP + ".cut", contains=("size",))


def test_truncated_stream_rejected():
    # A stream whose size is unknown (not seekable) is checked while reading.
    data = dumps(_net())
    for cut in (10, 40, 200, len(data) - 1):
        raises(ModelFormatError, load, ChunkedStream(data[:cut]), contains=("size", "expected"))
    eq(load(ChunkedStream(data)).outputs, 3, "a whole stream loads")
    raises(ModelFormatError, load, ChunkedStream(data + b"\x00"), contains=("trailing",))


def test_trailing_bytes_rejected():
    data = dumps(_net())
    for _name, get in _sources(data + b"\x00\x00"):
        raises(ModelFormatError, get, contains=("file size", "expected %d bytes" % len(data)))


def test_error_messages_name_field_expected_actual():
    data = dumps(_net())

    def mutated(offset, fmt, value, fix=True):
        b = bytearray(data)
        struct.pack_into(fmt, b, offset, value)
        return _fix_crc(b) if fix else b

    cases = [
        (mutated(0, "4s", b"NNX\x1a", False), ("magic", "expected b'NNM\\x1a'", "got b'NNX\\x1a'")),
        (mutated(4, "<B", 2, False), ("version", "expected major 1", "got 2.0")),
        (mutated(6, "<H", 0x10), ("flags", "expected a subset of 0x0001", "got 0x0010")),
        (mutated(40, "<B", 9, False), ("crc32", "expected 0x", "got 0x")),
        (mutated(16, "<H", 0), ("layer_count", "expected 1 to 255", "got 0")),
        (mutated(32 + 2, "<B", 77), ("layer 0 activation", "expected one of", "got 77")),
        (mutated(32, "<B", 9), ("layer 0 type", "expected", "got 9")),
        (mutated(32 + 1, "<B", 7), ("layer 0 dtype", "expected float32 (1)", "got")),
        (mutated(64 + 4, "<I", 5), ("layer 1 inputs", "expected 6", "got 5")),
        (
            mutated(32 + 8, "<I", 7),
            ("layer 0 data_size", "expected 140 (7 x 4 float32 weights + bias)", "got 120"),
        ),
        (mutated(64 + 12, "f", 1.5), ("layer 1 dropout rate", "expected 0 <= rate < 1", "got 1.5")),
        (mutated(32 + 20, "<I", 8), ("layer 0 data_size", "expected 120", "got 8")),
        (mutated(32 + 16, "<I", 12), ("layer 0 data_offset", "expected", "got 12")),
        (mutated(24, "<I", 4), ("outputs", "expected 3", "got 4")),
        (mutated(20, "<I", 3), ("layer 0 inputs", "expected 3", "got 4")),
        (
            mutated(32 * 3 + 12, "f", -1.0),
            ("layer 2 leaky_relu slope", "expected a finite number >= 0", "got -1"),
        ),
        (mutated(32 + 12, "f", 0.5), ("layer 0 param", "expected 0.0", "got 0.5")),
        (mutated(32 + 3, "<B", 3), ("layer 0 flags", "expected a subset of 0x01", "got 0x03")),
        (mutated(12, "<H", 30), ("header_size", "expected a multiple of 4", "got 30")),
        (mutated(28, "<I", 4096), ("data_offset", "expected 192", "got 4096")),
        (mutated(8, "<I", 1 << 31, False), ("file_size", "expected at most", "got 2147483648")),
    ]
    for data_bad, parts in cases:
        raises(ModelFormatError, load, data_bad, contains=parts)


def test_header_bombs_rejected_before_allocating():
    # Consistent headers (right file size, right CRC) claiming huge things.
    data = dumps(_net())
    bombs = []
    for offset, fmt, value in (
        (16, "<H", 0xFFFF),  # layer_count
        (20, "<I", 0xFFFFFFFF),  # inputs
        (32 + 4, "<I", 0x7FFFFFFF),  # layer 0 inputs
        (32 + 8, "<I", 0xFFFFFFFF),  # layer 0 units
        (32 + 20, "<I", 0x3FFFFFF0),  # layer 0 data_size
        (14, "<H", 0xFFFC),  # record_size
    ):
        b = bytearray(data)
        struct.pack_into(fmt, b, offset, value)
        bombs.append(_fix_crc(b))
    small = bytearray(64)
    struct.pack_into("<4sBBHIHHHHIII", small, 0, b"NNM\x1a", 1, 0, 0, 64, 32, 32, 255, 0, 1 << 30, 1, 8192)
    bombs.append(_fix_crc(small))
    for b in bombs:
        for source in (b, ChunkedStream(bytes(b))):
            allocated = _allocated(lambda s=source: raises(ModelFormatError, load, s, contains=("expected",)))
            # The header, a record, the error, this check's own call and message copy, and
            # for ChunkedStream (no seek, 7 bytes a read) the failed size probe and a view per
            # partial read: never a buffer sized from a claim (tests/test_reliability.py
            # holds `load` itself to 1 KB for bytes, a file and a seekable stream).
            ok(allocated < 3072, "bomb load allocated %d bytes" % allocated)


def _allocated(fn):
    if not HEAP_MEASURED:
        fn()
        return 0
    import micropython

    gc.collect()
    before = micropython.mem_total()
    fn()
    return micropython.mem_total() - before


def test_random_mutations_rejected_or_loaded_quickly():
    # Bit flips, byte changes, insertions and deletions, with the CRC left as is
    # (rejected by the CRC) or recomputed (reaching the structural checks). "Quickly" is
    # a bound on work, not time (time depends on the machine's load): where lines are
    # counted (CPython), no load runs more than check.WORK_PER_BYTE lines of nanonn per
    # byte of its file plus check.WORK_BASE.
    data = dumps(_net())
    rng = Random(2024)
    counter = LineCounter() if LINES_COUNTED else None
    most = 0
    outcomes = {"rejected": 0, "loaded": 0}
    for trial in range(300):
        b = bytearray(data)
        kind = trial % 5
        pos = rng.below(len(b))
        if kind == 0:
            b[pos] ^= 1 << rng.below(8)
        elif kind == 1:
            b[pos] = rng.below(256)
        elif kind == 2:
            b = b[:pos] + bytearray([rng.below(256)]) + b[pos:]
        elif kind == 3:
            b = b[:pos] + b[pos + 1 :]
        else:
            b[rng.below(96)] = rng.below(256)  # header and first records
        if trial % 2:
            _fix_crc(b)
        if counter is not None:
            counter.start()
        try:
            net = load(b)
        except ModelFormatError as exc:
            net = None
            ok("expected" in str(exc), "message names the expectation: %s" % exc)
            outcomes["rejected"] += 1
        finally:
            if counter is not None:
                counter.stop()
        if counter is not None:
            most = max(most, counter.lines)
            bound = WORK_PER_BYTE * len(b) + WORK_BASE
            ok(
                counter.lines <= bound,
                "trial %d: load ran %d lines, bound %d" % (trial, counter.lines, bound),
            )
        if net is not None:
            y = net.predict([0.0] * net.inputs)
            eq(len(y), net.outputs, "outputs of a loaded mutant")
            outcomes["loaded"] += 1
    ok(counter is None or most > 100, "lines counted: %d" % most)
    ok(outcomes["rejected"] > 200, "outcomes %r" % outcomes)


def test_unsupported_networks_refused_by_save():
    from nanonn.float32.activations import Activation

    custom = Network(
        Dense(2, inputs=2, activation=Activation("cube", lambda x: x * x * x, lambda x, y: 3 * x * x))
    )
    raises(ValueError, dumps, custom, contains=("save layer 0 activation", "expected one of", "cube"))
    net = Network(Dense(1, inputs=2))
    first = Dropout(0.5)
    first.build(2, None)
    net.layers.insert(0, first)
    raises(ValueError, dumps, net, contains=("Dense first layer",))


def _relu6(x):
    return 0.0 if x < 0.0 else (6.0 if x > 6.0 else x)


def _d_relu6(x, y):
    return 1.0 if 0.0 < x < 6.0 else 0.0


class _NamedSoftmax:
    """A duck-typed activation calling itself softmax (forward/backward of its own)."""

    name = "softmax"

    def forward(self, z, a, n):
        for i in range(n):
            a[i] = z[i]

    def backward(self, z, a, g, d, n):
        for i in range(n):
            d[i] = g[i]


def test_custom_activation_under_a_builtin_name_refused_by_save():
    from nanonn.float32.activations import Activation, get

    relu6 = Activation("relu", _relu6, _d_relu6)
    net = Network(Dense(3, inputs=2, activation=relu6), seed=1)
    # saved as relu it would predict differently after the reload: 10 -> 10, not 6
    raises(
        ValueError,
        dumps,
        net,
        contains=("save layer 0 activation", "custom activation", "<activation relu>", "named 'relu'"),
    )
    raises(ValueError, net.save, TMP, contains=("custom activation", "named 'relu'"))
    eq(os.listdir(TMPDIR), [], "the files after the refused save")
    raises(ValueError, net.quantize, [[0.0, 1.0]], contains=("custom activation", "named 'relu'"))
    duck = Network(Dense(2, inputs=2, activation=_NamedSoftmax()))
    raises(ValueError, dumps, duck, contains=("custom activation", "named 'softmax'"))
    # every built-in, by name or object, is still saved under its own name
    from nanonn.float32.activations import builtin_name

    for name in ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "softmax"):
        eq(builtin_name(get(name)), name, "builtin_name of " + name)
    eq(builtin_name(LeakyReLU(0.2)), "leaky_relu", "builtin_name of LeakyReLU(0.2)")
    eq(builtin_name(None), None, "builtin_name of None")


def test_crc32_matches_binascii_vectors():
    # Known CRC-32 values (zlib): the check value of "123456789" and chaining.
    eq(crc_update(0, b"123456789", 9), 0xCBF43926, "crc32('123456789')")
    eq(crc_update(crc_update(0, b"1234", 4), b"56789", 5), 0xCBF43926, "chained crc32")
    floats = array("f", [1.0, -2.5])
    eq(crc_update(0, floats, 8), crc_update(0, bytes(floats), 8), "crc32 over an array('f')")


def _qnet():
    rng = Random(11)
    X = [[rng.uniform(-2.0, 2.0) for _ in range(4)] for _ in range(24)]
    net = Network(
        Dense(9, inputs=4, activation="relu"),
        Dense(7, activation=LeakyReLU(0.1)),
        Dense(6, activation="sigmoid"),
        Dense(3, activation="softmax"),
        seed=4,
    )
    return net.quantize(X), X


def test_int8_round_trip_every_source():
    q, X = _qnet()
    data = dumps(q)
    eq(data[6], 1, "header int8 flag")
    expected = [list(q.predict(x)) for x in X[:5]]
    expected8 = list(q.predict_int8(bytes(4)))
    for name, get in _sources(data):
        loaded = _int8(get(), name)
        for k in range(5):
            eq(list(loaded.predict(X[k])), expected[k], name + " int8 prediction %d" % k)
        eq(list(loaded.predict_int8(bytes(4))), expected8, name + " predict_int8")
        eq(dumps(loaded), data, name + " re-saved bytes")


def test_int8_network_saves_like_a_float_one():
    q, X = _qnet()
    q.save(TMP)
    with open(TMP, "rb") as f:
        eq(f.read(), dumps(q), "QNetwork.save bytes")
    eq(os.listdir(TMPDIR), ["model.nnm"], "the files after the save (no temporary left)")
    loaded = _int8(load(TMP), "saved int8 model")
    for k in range(5):
        eq(list(loaded.predict(X[k])), list(q.predict(X[k])), "int8 prediction %d after save" % k)


def test_int8_weights_used_in_place_from_bytes():
    q, X = _qnet()
    data = dumps(q)
    loaded = load(data)
    eq([type(layer.w) is memoryview for layer in loaded.layers], [True] * 4, "int8 weights are views")
    raises(ValueError, load, data, trainable=True, contains=("trainable: expected False for an int8 model",))


def test_int8_truncations_and_mutations_rejected():
    q, X = _qnet()
    data = dumps(q)
    for cut in range(0, len(data), 3):
        raises(ModelFormatError, load, data[:cut], contains=("expected",))
    rng = Random(77)
    loaded = 0
    for _trial in range(150):
        b = bytearray(data)
        pos = rng.below(len(b))
        b[pos] = rng.below(256)
        _fix_crc(b)
        try:
            net = load(b)
        except ModelFormatError as exc:
            ok("expected" in str(exc), "message names the expectation: %s" % exc)
        else:
            eq(len(net.predict(X[0])), 3, "outputs of a loaded mutant")
            loaded += 1
            net = None  # one loaded mutant at a time (a board-sized heap)
    ok(loaded < 150, "every mutant loaded")


def test_int8_field_errors():
    # a board-sized heap holds the model's bytes and one mutated copy at a time
    data = dumps(_qnet()[0])

    first = struct.unpack_from("<I", data, 32 + 16)[0]  # layer 0's data block
    second = struct.unpack_from("<I", data, 64 + 16)[0]
    cases = [  # (offset, struct format, value): the copy is made per case, below
        (6, "<H", 0, ("layer 0 dtype", "expected float32 (1)", "got int8 (2)")),
        (32 + 1, "<B", 1, ("layer 0 dtype", "expected int8 (2)", "got float32 (1)")),
        (32 + 3, "<B", 0, ("layer 0 flags", "expected 0x01", "got 0x00")),
        (32 + 20, "<I", 99, ("layer 0 data_size", "expected", "got 99")),
        (
            second + 12,
            "<b",
            (struct.unpack_from("<b", data, second + 12)[0] + 129) % 256 - 128,
            ("int8 network", "layer 1 input domain: expected"),
        ),  # layer 1's in_zp no longer matches layer 0's out_zp
        (first + 17, "<B", 5, ("layer 0 int8 parameters", "reserved bytes: expected 0")),
        (first, "<f", -1.0, ("layer 0 int8 parameters", "in_scale", "expected a finite float > 0")),
    ]
    for offset, fmt, value, parts in cases:
        b = bytearray(data)
        struct.pack_into(fmt, b, offset, value)
        raises(ModelFormatError, load, _fix_crc(b), contains=parts)
        b = None


def _grown(data, extra_header, extra_record):
    """The model as a later minor version could write it: a longer header and longer
    records (the extra bytes are unknown fields a 1.0 reader skips)."""
    h = list(struct.unpack_from("<4sBBHIHHHHIII", data, 0))
    count = h[7]
    delta = extra_header + count * extra_record
    h[2] = 1  # minor version 1
    h[4] += delta  # file_size
    h[5] += extra_header
    h[6] += extra_record
    h[11] += delta  # data_offset
    out = bytearray(struct.pack("<4sBBHIHHHHIII", *h)) + bytearray([0xAB] * extra_header)
    for i in range(count):
        rec = list(struct.unpack_from("<BBBBIIfIIII", data, 32 + 32 * i))
        rec[7] += delta
        out += struct.pack("<BBBBIIfIIII", *rec) + bytearray([0xCD] * extra_record)
    out += data[32 + 32 * count :]
    return bytes(_fix_crc(out))


def test_later_minor_version_with_longer_header_and_records_loads():
    for net in (_net(), _qnet()[0]):
        data = dumps(net)
        grown = _grown(data, 16, 8)
        eq(len(grown), len(data) + 16 + 8 * len(net.layers), "grown size")
        expected = list(net.predict(X))
        for name, get in _sources(grown):
            loaded = get()
            eq(list(loaded.predict(X)), expected, name + " prediction")
            eq(dumps(loaded), data, name + " saved as 1.0")


def test_unaligned_bytes_source_is_copied_not_viewed():
    data = dumps(_net())
    shifted = memoryview(b"\x00" + data)[1:]
    net = load(shifted)
    close(net.predict(X), list(_net().predict(X)), 1e-6, "prediction from an unaligned source")
    # MicroPython views need 4-byte alignment (a uctypes float32 array); CPython's
    # memoryview.cast does not.
    eq(net.layers[0].in_place, not IS_MICROPYTHON, "in_place for an unaligned source")


def test_in_place_network_keeps_its_source_alive():
    # The only reference to the model bytes is the loaded network: after a
    # collection and fresh allocations it must still predict the same.
    for net in (_net(), _qnet()[0]):
        expected = list(net.predict(X))
        loaded = load(bytes(bytearray(dumps(net))))
        gc.collect()
        junk = [bytearray(b"\xff" * 64) for _ in range(200 if SMALL_HEAP else 2000)]
        eq(list(loaded.predict(X)), expected, "prediction after gc")
        del junk


def test_load_imports_nothing():
    import sys

    data, qdata = dumps(_net()), dumps(_qnet()[0])
    load(qdata)  # the int8 reader's own modules, once
    before = sorted(sys.modules)
    for source in (data, qdata, bytearray(data)):
        load(source)
    eq(sorted(sys.modules), before, "modules after loading")


def test_loaded_layers_use_the_fast_float_kernel_where_dense_does():
    net = _net()
    data = dumps(net)
    for loaded in (load(data), load(bytearray(data), trainable=True)):
        dense = [layer for layer in loaded.layers if hasattr(layer, "in_place")]
        eq([layer._fast_ready for layer in dense], [net.layers[0]._fast_ready] * 4, "fast path ready")
        close(loaded.predict(X), list(net.predict(X)), 1e-6, "prediction")
    if HEAP_MEASURED:
        import micropython

        loaded = load(data)
        loaded.predict(X)
        gc.collect()
        before = micropython.mem_total()
        net.predict(X)
        dense_bytes = micropython.mem_total() - before
        before = micropython.mem_total()
        loaded.predict(X)
        loaded_bytes = micropython.mem_total() - before
        eq(loaded_bytes, dense_bytes, "bytes allocated by a prediction (in place vs Dense)")
