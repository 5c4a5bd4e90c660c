"""The device test suite on the bare-metal firmware (Cortex-M3 and rv32imc under
qemu-system, tools/baremetal.py): one pytest item per device test function per
board, nanonn as `.mpy` for the board's arch on a ROMFS image, each test script
run through the raw REPL. A test the port cannot run (no writable filesystem) is
reported by the device runner as SKIP and skipped here, never passed.

Also: one int8 `.nnm` per activation, made on the x64 unix port, gives byte-identical
`predict_int8` (and int8 `predict`) outputs on x64 and on each board, and neither
call allocates under `micropython.heap_lock()` there; seeded initialisation, dropout,
shuffling and on-device quantization are bit-identical to CPython's, and float predict
stays within a few float32 ulps of it (the checks of tests/test_ports.py).

The firmware is built by tools/interpreters.py when missing (`make interpreters`); when it
cannot be (Debian packages missing), the tests fail under CI (CI=true) and skip elsewhere,
naming the packages.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re

import pytest
from test_ports import FLOAT_ULPS, SEEDED, check_seeded, worst_ulps
from test_ports import _seeded as _seeded_port

from support import DEVICE_TESTS, load_tool, run_device, scratch

baremetal = load_tool("baremetal")
pytestmark = pytest.mark.boards  # `make test-fast` leaves the board interpreters out
LINE = re.compile(r"^(PASS|FAIL|SKIP) (\w+)::(\w+)(?:: (.*))?$")


def _require(name: str):
    target = baremetal.TARGETS[name]
    reason = baremetal.unavailable(target)
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true: bare-metal board %s must run here: %s" % (name, reason))
        pytest.skip("%s: %s" % (name, reason))
    return target


@functools.cache
def _parity_models() -> dict[str, bytes]:
    """The int8 .nnm of every activation, made by the x64 unix port."""
    folder = scratch("baremetal/parity-models")
    proc = run_device("micropython", ["-c", "import int8_parity; int8_parity.make(%r)" % str(folder)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"models/" + p.name: p.read_bytes() for p in sorted(folder.glob("*.nnm"))}


@functools.cache
def _image(name: str):
    """The ROMFS image of board `name`: package, tests, data and the parity models."""
    return baremetal.stage(baremetal.TARGETS[name], scratch("baremetal/" + name), _parity_models())


def _collect():
    items = []
    for script in sorted(DEVICE_TESTS.glob("test_*.py")):
        tree = ast.parse(script.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                for board in sorted(baremetal.TARGETS):
                    items.append(
                        pytest.param(
                            board, script.stem, node.name, id="%s-%s::%s" % (board, script.stem, node.name)
                        )
                    )
    return items


@functools.cache
def _run(board: str, module: str):
    target = baremetal.TARGETS[board]
    code = "import os\nos.chdir('/rom')\nimport runner\nrunner.main([%r])\n" % module
    out, err = baremetal.run(target, code, _image(board), timeout=900)
    results = {}
    for line in out.splitlines():
        m = LINE.match(line)
        if m and m.group(2) == module:
            results[m.group(3)] = (m.group(1), m.group(4) or "")
    return out, err, results


@pytest.mark.parametrize("board,module,name", _collect())
def test_device_baremetal(board, module, name):
    _require(board)
    out, err, results = _run(board, module)
    output = out[-4000:] + err[-4000:]
    assert not err, "%s on %s raised outside a test:\n%s" % (module, board, output)
    assert name in results, "%s::%s did not report on %s:\n%s" % (module, name, board, output)
    status, detail = results[name]
    if status == "SKIP":
        pytest.skip("%s: %s" % (board, detail))
    if status != "PASS":
        pytest.fail("%s::%s on %s: %s\n%s" % (module, name, board, detail, output))


@functools.cache
def _parity(where: str) -> list[dict]:
    if where == "x64":
        _parity_models()
        folder = str(scratch("baremetal/parity-models"))
        proc = run_device("micropython", ["-c", "import int8_parity; int8_parity.run(%r)" % folder])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out = proc.stdout
    else:
        out, err = baremetal.run(
            baremetal.TARGETS[where], "import int8_parity\nint8_parity.run('/rom/models')\n", _image(where)
        )
        assert not err, err
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("board", sorted(baremetal.TARGETS))
def test_int8_outputs_byte_identical_to_x64_and_allocation_free(board):
    _require(board)
    want, got = _parity("x64"), _parity(board)
    assert [r["act"] for r in got] == [r["act"] for r in want]
    assert len(want) == 8, "one model per activation"
    for w, g in zip(want, got):
        assert g["int8"] == w["int8"], "%s: predict_int8 differs on %s" % (w["act"], board)
        assert g["float"] == w["float"], "%s: int8 predict (float32 bytes) differs on %s" % (w["act"], board)
        assert w["alloc_free"] == [True, True], "%s: allocates on x64" % w["act"]
        assert g["alloc_free"] == [True, True], "%s: allocates under heap_lock on %s" % (w["act"], board)


@functools.cache
def _seeded(board: str) -> list[dict]:
    out, err = baremetal.run(baremetal.TARGETS[board], SEEDED, _image(board), timeout=900)
    assert not err, err
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("board", sorted(baremetal.TARGETS))
def test_seeded_init_dropout_shuffle_and_device_quantization_identical_to_cpython(board):
    _require(board)
    check_seeded(_seeded_port("cpython"), _seeded(board), board)


@pytest.mark.parametrize("board", sorted(baremetal.TARGETS))
def test_float_predict_within_a_few_ulps_of_cpython(board):
    _require(board)
    worst = worst_ulps(_seeded_port("cpython"), _seeded(board))
    assert worst <= FLOAT_ULPS, "%s: float predict %.1f float32 ulps from CPython's" % (board, worst)


def test_needs_filesystem_names_existing_tests():
    """A stale name in a device module's NEEDS_FILESYSTEM would skip nothing (or hide a rename)."""
    for script in sorted(DEVICE_TESTS.glob("test_*.py")):
        tree = ast.parse(script.read_text())
        tests = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "NEEDS_FILESYSTEM" for t in node.targets
            ):
                names = ast.literal_eval(node.value)
                assert set(names) <= tests, (script.name, sorted(set(names) - tests))
