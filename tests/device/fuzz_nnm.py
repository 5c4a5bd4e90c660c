"""Fuzz the device loader: mutated, truncated and random `.nnm` files, one process.

    micropython tests/device/fuzz_nnm.py N SEED

Runs N seeded cases (float and int8 base models; bit flips, byte changes,
insertions and deletions with the CRC left stale or recomputed, field-aware
edits of counts, shapes, offsets, versions and parameters with the CRC
recomputed so they reach the deep checks, truncations, random files, splices)
through `nanonn.load` from every kind of source (bytes, bytearray,
memoryview, seekable and non-seekable streams, a path). Every load must
return a network that predicts or raise `ModelFormatError` whose message
names a field ("<field>: expected ..., got ...") or a MemoryError stating the
bytes needed; anything else is reported with the case number (rerun with the
same N and SEED to reproduce). The work of each load is bounded, not timed: under
CPython (check.LINES_COUNTED) the lines of nanonn's modules each load executes are
counted, and a load of more than check.WORK_PER_BYTE lines per byte of its file
plus check.WORK_BASE is a failure: a pathological path (a loop over a count the file claims but
does not hold) does work out of proportion to the bytes, whatever the machine's
speed. Loading the unmutated int8 model takes about 12 lines per byte, the float one 2.
The slowest load in ms is printed for information only (it depends on the load of
the machine). Prints one JSON line: the counts, the load that ran the most lines
([lines, file bytes, case, kind]; null where lines are not counted), the slowest
load and the failures.
"""

import io
import json
import os
import struct
import sys

from check import LINES_COUNTED, WORK_BASE, WORK_PER_BYTE, ChunkedStream, LineCounter, now_ms, since_ms
from nanonn import Dense, Dropout, ModelFormatError, Network, load
from nanonn.crc32 import update as crc_update
from nanonn.float32.activations import LeakyReLU
from nanonn.nnm.write import dumps
from nanonn.rand import Random

TMP = "/tmp/nanonn-fuzz-%d-%%d.nnm" % int.from_bytes(os.urandom(4), "little")  # unique per run
FIELDS = (
    "magic",
    "version",
    "flags",
    "file_size",
    "file size",
    "header_size",
    "record_size",
    "layer_count",
    "header reserved field",
    "data_offset",
    "inputs",
    "outputs",
    "crc32",
    "padding at byte ",
    "layer ",
    "int8 network",
)
# (offset, struct format) of every header field and of every record field
HEADER_FIELDS = (
    (4, "<B"),
    (5, "<B"),
    (6, "<H"),
    (8, "<I"),
    (12, "<H"),
    (14, "<H"),
    (16, "<H"),
    (18, "<H"),
    (20, "<I"),
    (24, "<I"),
    (28, "<I"),
)
RECORD_FIELDS = (
    (0, "<B"),
    (1, "<B"),
    (2, "<B"),
    (3, "<B"),
    (4, "<I"),
    (8, "<I"),
    (12, "<f"),
    (16, "<I"),
    (20, "<I"),
    (24, "<I"),
    (28, "<I"),
)
# the int8 block's head: scales, zero points, shifts, reserved, multipliers
INT8_FIELDS = (
    (0, "<f"),
    (4, "<f"),
    (8, "<f"),
    (12, "<b"),
    (13, "<b"),
    (14, "<b"),
    (15, "<b"),
    (16, "<b"),
    (17, "<B"),
    (20, "<i"),
    (24, "<i"),
    (28, "<I"),
    (32, "<f"),  # w_scale[0]
    (36, "<i"),
)
INTS = (0, 1, 2, 3, 4, 31, 32, 33, 36, 127, 128, 255, 256, 0x7FFF, 0xFFFF, 0x10000, 0x3FFFFFFF, 0x40000000)
INTS += (0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
FLOATS = (0.0, -0.0, -1.0, 0.5, 1.0, 1.5, 1e38, 3.4e38, 1e-45, float("nan"), float("inf"), float("-inf"))


def base_models():
    """(name, bytes, inputs) of the float and int8 models mutated."""
    rng = Random(11)
    X = [[rng.uniform(-2.0, 2.0) for _ in range(4)] for _ in range(16)]
    deep = Network(
        Dense(6, inputs=4, activation="tanh"),
        Dropout(0.25, seed=9),
        Dense(5, activation=LeakyReLU(0.1)),
        Dense(4, activation="relu", use_bias=False),
        Dense(3, activation="softmax"),
        seed=3,
    )
    small = Network(Dense(2, inputs=3, activation="sigmoid"), seed=5)
    q1 = Network(
        Dense(9, inputs=4, activation="relu"),
        Dense(7, activation=LeakyReLU(0.1)),
        Dense(6, activation="sigmoid"),
        Dense(3, activation="softmax"),
        seed=4,
    ).quantize(X)
    q2 = Network(Dense(5, inputs=4, activation="tanh"), Dense(2, activation="linear"), seed=6).quantize(X)
    return [
        ("float", dumps(deep), 4),
        ("float_small", dumps(small), 3),
        ("int8", dumps(q1), 4),
        ("int8_tanh", dumps(q2), 4),
    ]


def fix_crc(b):
    n = len(b) - 4
    if n >= 0:
        struct.pack_into("<I", b, n, crc_update(0, memoryview(b)[0:n], n))
    return b


def pick_int(rng, old):
    r = rng.below(4)
    if r == 0:
        return INTS[rng.below(len(INTS))]
    if r == 1:
        return old + (1, -1, 4, -4, 32, -32)[rng.below(6)]
    if r == 2:
        return old * 2 + rng.below(2)
    return rng.next32() >> rng.below(32)


def set_field(b, off, fmt, rng):
    """A field-aware edit: a chosen or random value in the field's own type."""
    if off + struct.calcsize(fmt) > len(b):
        return
    if fmt == "<f":
        if rng.below(3):
            v = FLOATS[rng.below(len(FLOATS))]
        else:
            v = struct.unpack_from("<f", b, off)[0] * rng.uniform(-4.0, 4.0)
        struct.pack_into(fmt, b, off, v)
        return
    size = struct.calcsize(fmt)
    old = struct.unpack_from(fmt, b, off)[0]
    v = pick_int(rng, old)
    bits = 8 * size
    v &= (1 << bits) - 1
    if fmt[1] in "bi" and v >= 1 << (bits - 1):
        v -= 1 << bits
    struct.pack_into(fmt, b, off, v)


def field_edit(b, rng, int8):
    """Edit 1-3 header, record or int8 block fields, then recompute the CRC."""
    count = struct.unpack_from("<H", b, 16)[0]
    for _ in range(1 + rng.below(3)):
        where = rng.below(10)
        if where < 3:
            off, fmt = HEADER_FIELDS[rng.below(len(HEADER_FIELDS))]
        elif where < 8 or not int8:
            off, fmt = RECORD_FIELDS[rng.below(len(RECORD_FIELDS))]
            off += 32 + 32 * rng.below(count)
        else:
            layer = 32 + 32 * rng.below(count)
            start = struct.unpack_from("<I", b, layer + 16)[0]
            off, fmt = INT8_FIELDS[rng.below(len(INT8_FIELDS))]
            off += start
        set_field(b, off, fmt, rng)
    return fix_crc(b)


def shape_edit(b, rng):
    """A consistent-looking shape change: a layer's units and the next layer's inputs
    (and the header's outputs when it is the last), then the CRC."""
    count = struct.unpack_from("<H", b, 16)[0]
    i = rng.below(count)
    units = pick_int(rng, struct.unpack_from("<I", b, 32 + 32 * i + 8)[0]) & 0xFFFFFFFF
    struct.pack_into("<I", b, 32 + 32 * i + 8, units)
    if i + 1 < count:
        struct.pack_into("<I", b, 32 + 32 * (i + 1) + 4, units)
    else:
        struct.pack_into("<I", b, 24, units)
    if rng.below(2):  # and a data_size that matches a float32 dense block
        n = struct.unpack_from("<I", b, 32 + 32 * i + 4)[0]
        struct.pack_into("<I", b, 32 + 32 * i + 20, (4 * units * (n + 1)) & 0xFFFFFFFF)
    return fix_crc(b)


def mutate(case, models, rng):
    """The bytes of case number `case` and the name of its kind."""
    name, data, _ = models[rng.below(len(models))]
    int8 = name.startswith("int8")
    b = bytearray(data)
    kind = rng.below(16)
    if kind <= 1:  # bit flips, the CRC stale (kind 0) or recomputed (kind 1)
        for _ in range(1 + rng.below(4)):
            pos = rng.below(len(b))
            b[pos] ^= 1 << rng.below(8)
        return (fix_crc(b) if kind else b), "bitflip" + ("+crc" if kind else "")
    if kind <= 3:  # byte values
        for _ in range(1 + rng.below(3)):
            b[rng.below(len(b))] = rng.below(256)
        return (fix_crc(b) if kind == 3 else b), "bytes" + ("+crc" if kind == 3 else "")
    if kind == 4:  # insertions
        pos = rng.below(len(b) + 1)
        ins = bytearray(1 + rng.below(8))
        for i in range(len(ins)):
            ins[i] = rng.below(256)
        b = b[:pos] + ins + b[pos:]
        return (fix_crc(b) if rng.below(2) else b), "insert"
    if kind == 5:  # deletions
        pos = rng.below(len(b))
        b = b[:pos] + b[pos + 1 + rng.below(8) :]
        return (fix_crc(b) if rng.below(2) else b), "delete"
    if kind <= 10:  # field-aware edits, CRC recomputed
        return field_edit(b, rng, int8), "field"
    if kind == 11:
        return shape_edit(b, rng), "shape"
    if kind == 12:  # truncation (the CRC recomputed half the time: a consistent short file)
        b = b[: rng.below(len(b))]
        return (fix_crc(b) if rng.below(2) else b), "truncate"
    if kind == 13:  # random bytes, sometimes behind a valid magic and version
        n = rng.below(512)
        r = bytearray(n)
        for i in range(n):
            r[i] = rng.below(256)
        if n >= 12 and rng.below(2):
            r[0:6] = b"NNM\x1a\x01\x00"
            struct.pack_into("<I", r, 8, n)
            fix_crc(r)
        return r, "random"
    if kind == 14:  # splice two models
        other = models[rng.below(len(models))][1]
        cut = rng.below(min(len(b), len(other)))
        b = b[:cut] + bytearray(other[cut:])
        return (fix_crc(b) if rng.below(2) else b), "splice"
    # versions and feature flags: major, minor, flags (the CRC recomputed)
    off, fmt = ((4, "<B"), (5, "<B"), (6, "<H"))[rng.below(3)]
    set_field(b, off, fmt, rng)
    return fix_crc(b), "version"


def open_source(case, data):
    which = case % 7
    if which == 0:
        return bytes(data), "bytes"
    if which == 1:
        return data, "bytearray"
    if which == 2:
        return memoryview(data), "memoryview"
    if which == 3:
        return io.BytesIO(bytes(data)), "stream"
    if which == 4:
        return ChunkedStream(bytes(data)), "chunks"
    if which == 5 and case % 35 == 5:  # a path now and then (files are slow)
        path = TMP % (case % 2)
        with open(path, "wb") as f:
            f.write(data)
        return path, "path"
    return bytes(data), "bytes"


def names_a_field(msg):
    head = msg.split(": expected ", 1)
    if len(head) != 2 or ", got " not in head[1]:
        return False
    for field in FIELDS:
        if head[0].startswith(field):
            return True
    return False


def run(n, seed):
    models = base_models()
    rng = Random(seed)
    counts = {"loaded": 0, "format_error": 0, "memory_error": 0}
    kinds = {}
    failures = []
    slowest = 0
    slowest_case = -1
    counter = LineCounter() if LINES_COUNTED else None
    work = None  # [lines, file bytes, case, kind] of the load that ran the most lines
    for case in range(n):
        data, kind = mutate(case, models, rng)
        source, how = open_source(case, data)
        t0 = now_ms()
        outcome = None
        net = None
        if counter is not None:
            counter.start()
        try:
            net = load(source)
        except ModelFormatError as exc:
            msg = str(exc)
            outcome = "format_error"
            if not names_a_field(msg):
                failures.append([case, kind, how, "message names no field: %s" % msg])
        except MemoryError as exc:
            outcome = "memory_error"
            if "bytes of RAM" not in str(exc):
                failures.append([case, kind, how, "MemoryError without the bytes needed: %s" % exc])
        except Exception as exc:  # the point of the fuzzer: report any other type
            failures.append([case, kind, how, "%s: %s" % (type(exc).__name__, exc)])
        else:
            outcome = "loaded"
        finally:
            if counter is not None:
                counter.stop()
        dt = since_ms(t0)
        if dt > slowest:
            slowest, slowest_case = dt, case
        if counter is not None:
            lines = counter.lines
            if work is None or lines > work[0]:
                work = [lines, len(data), case, kind]
            if lines > WORK_PER_BYTE * len(data) + WORK_BASE:
                failures.append([case, kind, how, "load ran %d lines for %d bytes" % (lines, len(data))])
        if net is not None:  # outcome "loaded": load returns a network or raises
            try:
                y = net.predict([0.5] * net.inputs)
                if len(y) != net.outputs:
                    failures.append([case, kind, how, "predict gave %d outputs" % len(y)])
            except Exception as exc:
                failures.append([case, kind, how, "predict: %s: %s" % (type(exc).__name__, exc)])
            net = None
        if outcome is not None:
            counts[outcome] += 1
        kinds[kind] = kinds.get(kind, 0) + 1
        if len(failures) > 50:
            break
    return {
        "cases": n,
        "seed": seed,
        "counts": counts,
        "kinds": kinds,
        "work": work,
        "slowest_ms": slowest,
        "slowest_case": slowest_case,
        "failures": failures,
    }


def remove_files():
    """Remove the model files `open_source` writes (those that exist)."""
    for k in (0, 1):
        try:
            os.remove(TMP % k)
        except OSError:
            pass


def main(argv):
    n = int(argv[1]) if len(argv) > 1 else 1000
    seed = int(argv[2]) if len(argv) > 2 else 1
    try:
        result = run(n, seed)
    finally:  # also when a case raises out of run or a long `make fuzz` is interrupted (Ctrl-C)
        remove_files()
    print(json.dumps(result))
    sys.exit(1 if result["failures"] else 0)


if __name__ == "__main__":
    main(sys.argv)
