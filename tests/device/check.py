"""Assertions for device tests (explicit checks: `assert` vanishes under -O)."""

import sys

IS_MICROPYTHON = sys.implementation.name == "micropython"

# The ports these tests run on: the unix port compiles @micropython.viper; the
# WebAssembly port (tools/mpwasm.mjs) has no native emitter, so nanonn must run
# there on its plain-Python fallbacks (CPython too).
IS_WASM = IS_MICROPYTHON and sys.platform == "webassembly"
NATIVE = IS_MICROPYTHON and not IS_WASM

# Heap use can be measured inside a program where gc.collect() frees garbage and
# micropython.mem_total() counts allocations: not on the WebAssembly port, whose
# gc.collect() only runs between calls from JavaScript (it cannot scan wasm locals)
# and which has no mem_total.
HEAP_MEASURED = IS_MICROPYTHON and not IS_WASM


def _heap_bytes():
    import gc

    return gc.mem_free() + gc.mem_alloc()  # pyright: ignore[reportAttributeAccessIssue]


# A board-sized heap (the bare-metal firmware: 150-190 KB) rather than the 16 MB the
# unix-port runs give: tests then use smaller networks and keep the large cases for x64.
SMALL_HEAP = IS_MICROPYTHON and _heap_bytes() < 1 << 20


def now_ms():
    """A millisecond clock for durations: time.ticks_ms on MicroPython (time.time() is
    whole seconds on float32 ports and absent on the bare-metal firmware); use since_ms."""
    import time

    if IS_MICROPYTHON:
        return time.ticks_ms()  # pyright: ignore[reportAttributeAccessIssue]
    return time.time() * 1000.0


def since_ms(t0):
    """Milliseconds elapsed since t0 = now_ms()."""
    import time

    if IS_MICROPYTHON:
        return time.ticks_diff(time.ticks_ms(), t0)  # pyright: ignore[reportAttributeAccessIssue]
    return time.time() * 1000.0 - t0


# Where the interpreter can trace (CPython: sys.settrace; MicroPython ports are built without
# it), a deterministic measure of work: the source lines of nanonn's own modules executed.
LINES_COUNTED = hasattr(sys, "settrace")
# The bound on a model load's work, in those lines: per byte of the file, plus a base (a
# header claiming 65535 layers, looped over, alone needs far more). Loading the unmutated
# models of tests/device/fuzz_nnm.py takes 2 (float) to 12 (int8) lines per byte.
WORK_PER_BYTE = 32
WORK_BASE = 2000


class LineCounter:
    """Counts the lines of nanonn's modules (files under a `nanonn` folder) executed between
    start() and stop(): the work a call did, the same on every run and under any load (a
    bound on it replaces a wall-clock limit). CPython only (LINES_COUNTED)."""

    def __init__(self):
        self.lines = 0

    def start(self):
        self.lines = 0
        sys.settrace(self._call)  # pyright: ignore[reportAttributeAccessIssue]

    def stop(self):
        sys.settrace(None)  # pyright: ignore[reportAttributeAccessIssue]
        return self.lines

    def _call(self, frame, event, arg):
        name = frame.f_code.co_filename.replace("\\", "/")
        return self._line if "/nanonn/" in name else None

    def _line(self, frame, event, arg):
        if event == "line":
            self.lines += 1
        return self._line


class CheckFailed(Exception):
    pass


class Skipped(Exception):
    """Raised by `skip`: the runner reports SKIP (pytest shows it skipped, not passed)."""


def skip(reason):
    raise Skipped(reason)


def unique_id():
    """A random 32-bit number for names of temporary files shared by concurrent runs
    (MicroPython has no os.getpid; the WebAssembly port has no os.urandom either, and
    its filesystem is the process's own; the bare-metal firmware has neither, nor files
    to name: its ticks do)."""
    import os

    if hasattr(os, "urandom"):
        return int.from_bytes(os.urandom(4), "little")
    try:
        import random
    except ImportError:
        import time

        return time.ticks_us()  # pyright: ignore[reportAttributeAccessIssue]
    return random.getrandbits(30)


# This run's folder for the files tests write (one per process: concurrent runs share /tmp).
# runner.py makes it before the first test, removes the files named in a module's
# TEMP_FILES after each of its tests (passed or failed) and the folder after the last test
# (a file left in it that no TEMP_FILES named fails the run). Ports without a filesystem
# (runner.PORTS_WITHOUT_FILESYSTEM) have neither folder nor files: the string only.
TMPDIR = "/tmp/nanonn-test-%d" % unique_id()


def bytes_per_call(fn, arg, calls=5):
    """Heap bytes (micropython.mem_total) per call of fn(arg), from the second of two
    windows (the first may include one-time allocations). MicroPython only."""
    import gc

    import micropython

    used = 0  # set by each window below (range(2): the loop always runs)
    for _ in range(2):
        gc.collect()
        before = micropython.mem_total()
        for _ in range(calls):
            fn(arg)
        used = micropython.mem_total() - before
    return used // calls


def ok(cond, message="check failed"):
    if not cond:
        raise CheckFailed(message)


def eq(actual, expected, what="value"):
    if actual != expected:
        raise CheckFailed("%s: expected %r, got %r" % (what, expected, actual))


def close(actual, expected, tol=1e-6, what="value", rel=False):
    """Element-wise |a - e| <= tol (or tol * max(1, |e|) when rel)."""
    if isinstance(expected, (int, float)):
        actual, expected = [actual], [expected]
    eq(len(actual), len(expected), what + " length")
    for i in range(len(expected)):
        a, e = actual[i], expected[i]
        bound = tol * max(1.0, abs(e)) if rel else tol
        if not abs(a - e) <= bound:
            raise CheckFailed("%s[%d]: expected %r within %g, got %r" % (what, i, e, bound, a))


def raises(exc_type, fn, *args, contains=(), **kwargs):
    """Call fn; require exc_type with every string of `contains` in its message."""
    try:
        fn(*args, **kwargs)
    except exc_type as exc:
        msg = str(exc)
        for part in contains:
            if part not in msg:
                raise CheckFailed("%s message %r lacks %r" % (exc_type.__name__, msg, part))
        return exc
    raise CheckFailed("expected %s, nothing raised" % exc_type.__name__)


def load_json(path):
    import json

    with open(path) as f:
        return json.load(f)


class ChunkedStream:
    """A non-seekable binary stream over `data` whose reads return at most 7 bytes
    (a model source that is neither a file nor bytes: a socket, a UART, ...)."""

    def __init__(self, data):
        import io

        self.f = io.BytesIO(data)

    # The stubs' BytesIO lists no read methods; MicroPython's has them.
    def readinto(self, buf):
        return self.f.readinto(memoryview(buf)[0:7])  # pyright: ignore[reportAttributeAccessIssue]

    def read(self, n):
        return self.f.read(n)  # pyright: ignore[reportAttributeAccessIssue]
