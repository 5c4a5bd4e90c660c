"""Drive the device test scripts (tests/device/test_*.py) under the MicroPython
unix port, MicroPython's WebAssembly port in Node (32-bit, no native emitter: nanonn's
plain-Python fallbacks), CPython and the Linux-process board interpreters
(support.BOARD_RUNTIMES: x86-32, armv6m and armv7m with the package as .mpy for their
architecture, x86-32 with it as .py): one pytest item per device test function and
runtime. A test that reports SKIP (a check its port cannot make, see check.skip) is
skipped here. A board interpreter that cannot be built here skips its items naming the
Debian packages to install; under CI (CI=true) that is a failure."""

from __future__ import annotations

import ast
import functools
import re

import pytest

from support import BOARD_RUNTIMES, DEVICE_TESTS, board_unavailable, once, prefetch, run_device

RUNTIMES = ("micropython", "wasm", "cpython") + tuple(BOARD_RUNTIMES)
# `make test-fast` leaves out the board interpreters and the WebAssembly port (Node plus the
# plain-Python kernels: the slowest of the three others); the unix port and CPython stay in.
_MARKS = {runtime: [pytest.mark.boards] for runtime in BOARD_RUNTIMES}
_MARKS["wasm"] = [pytest.mark.slow]
LINE = re.compile(r"^(PASS|SKIP|FAIL) (\w+)::(\w+)(?:: (.*))?$")


def _collect():
    items = []
    for script in sorted(DEVICE_TESTS.glob("test_*.py")):
        tree = ast.parse(script.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                for runtime in RUNTIMES:
                    items.append(
                        pytest.param(
                            runtime,
                            script.stem,
                            node.name,
                            id="%s-%s::%s" % (runtime, script.stem, node.name),
                            marks=_MARKS.get(runtime, []),
                        )
                    )
    return items


@functools.cache
def _unavailable(runtime: str):
    return board_unavailable(runtime) if runtime in BOARD_RUNTIMES else None


def prefetch_items(items):
    """Start the runs of the (runtime, module) pairs of the selected items, in the background
    (conftest.py): they run side by side; each item waits for its own."""
    for runtime, module in dict.fromkeys(
        (item.callspec.params["runtime"], item.callspec.params["module"]) for item in items
    ):
        try:
            unavailable = _unavailable(runtime)
        except RuntimeError:  # CI=true and a board cannot be built: each item reports it
            continue
        if not unavailable:
            prefetch(("device", runtime, module), _run_module, runtime, module)


def _run(runtime: str, module: str):
    return once(("device", runtime, module), _run_module, runtime, module)


def _run_module(runtime: str, module: str):
    proc = run_device(runtime, ["tests/device/runner.py", module], timeout=1200)
    results = {}
    for line in proc.stdout.splitlines():
        m = LINE.match(line)
        if m and m.group(2) == module:
            results[m.group(3)] = (m.group(1), m.group(4) or "")
    failures = sum(1 for status, _ in results.values() if status == "FAIL")
    return proc, results, failures


@pytest.mark.parametrize("runtime,module,name", _collect())
def test_device(runtime, module, name):
    reason = _unavailable(runtime)
    if reason:
        pytest.skip(reason)
    proc, results, failures = _run(runtime, module)
    output = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert name in results, "%s::%s did not report (exit %d):\n%s" % (module, name, proc.returncode, output)
    assert proc.returncode == min(failures, 100), "runner exit %d != %d failures:\n%s" % (
        proc.returncode,
        failures,
        output,
    )
    status, detail = results[name]
    if status == "SKIP":
        pytest.skip("%s::%s on %s: %s" % (module, name, runtime, detail))
    if status != "PASS":
        pytest.fail("%s::%s on %s: %s\n%s" % (module, name, runtime, detail, output))
