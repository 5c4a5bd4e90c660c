"""The type-check gate itself: the viper `.pyi` files are current, the mechanism
works, and pyright really checks against the boards' MicroPython stubs."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from support import ROOT, load_tool, tool

STUBS = ROOT / ".venv" / "stubs"  # where `make stubs` installs them (checks/pyright-BOARD.json)
BOARDS = ("rp2", "esp32", "unix")

gen_stubs = load_tool("gen_stubs")

KERNEL = '''"""A viper kernel for the test."""

import micropython

SHIFT = micropython.const(3)


@micropython.viper
def add(dst: ptr8, src: ptr8, n: int) -> int:
    """dst[i] += src[i] for i < n; returns n."""
    for i in range(n):
        dst[i] = dst[i] + src[i]
    return n


def clear(dst, n=0):
    for i in range(n):
        dst[i] = 0
'''

CALLER = """from array import array

from kern import SHIFT, add, clear

buf = bytearray(4)
add(buf, b"abcd", SHIFT)
add(buf, array("b", [1, 2]), 2)
add(buf, memoryview(buf), 4)
clear(buf)
add(buf, "text", 4)
"""


def board_stubs(board: str):
    path = STUBS / board
    if not (path / "micropython.pyi").exists():
        pytest.fail("%s: MicroPython stubs not installed; run `make stubs` (make test does)" % path)
    return path


def pyright(project_dir, board: str = "unix") -> list[dict]:
    """Run pyright on a folder against a board's stubs; returns its error diagnostics."""
    stubs = str(board_stubs(board))
    config = {"include": ["."], "stubPath": stubs, "typeshedPath": stubs, "reportMissingModuleSource": "none"}
    (project_dir / "pyrightconfig.json").write_text(json.dumps(config))
    proc = subprocess.run(
        [tool("pyright"), "--outputjson", "-p", str(project_dir)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYRIGHT_PYTHON_IGNORE_WARNINGS="1"),
    )
    report = json.loads(proc.stdout)
    return [d for d in report["generalDiagnostics"] if d["severity"] == "error"]


def lines_of(errors: list[dict], name: str) -> list[int]:
    return sorted(d["range"]["start"]["line"] + 1 for d in errors if d["file"].endswith(name))


def test_committed_pyi_files_are_current():
    wanted = gen_stubs.stubs()
    for path, text in wanted.items():
        assert path.exists(), "%s missing: run `make pyi`" % path
        assert path.read_text() == text, "%s differs from tools/gen_stubs.py output: run `make pyi`" % path
    assert gen_stubs.stale() == []


@pytest.mark.slow
def test_viper_pointer_parameters_need_the_pyi(tmp_path):
    (tmp_path / "kern.py").write_text(KERNEL)
    (tmp_path / "use.py").write_text(CALLER)
    # Without the stub, each buffer passed for a ptr8 is an error (lines 6-8, and 10).
    assert lines_of(pyright(tmp_path), "use.py") == [6, 6, 7, 7, 8, 8, 10, 10]


@pytest.mark.slow
def test_generated_pyi_accepts_buffers_and_rejects_others(tmp_path):
    (tmp_path / "kern.py").write_text(KERNEL)
    (tmp_path / "use.py").write_text(CALLER)
    stubs = gen_stubs.stubs(tmp_path)
    assert list(stubs) == [tmp_path / "kern.pyi"]
    text = stubs[tmp_path / "kern.pyi"]
    assert "def add(dst: _Buffer, src: _Buffer, n: int) -> int:" in text
    assert "def clear(dst, n=0) -> None: ..." in text
    assert "SHIFT: int" in text
    (tmp_path / "kern.pyi").write_text(text)
    errors = pyright(tmp_path)
    # Only the str passed for a buffer remains an error; the kernel body still checks clean.
    assert lines_of(errors, "use.py") == [10], errors
    assert lines_of(errors, "kern.py") == [], errors


@pytest.mark.slow
@pytest.mark.parametrize("board", BOARDS)
def test_checks_use_the_board_stubs(tmp_path, board):
    # `rp2` exists only in the rp2 stubs, `esp32` only in the esp32 ones, `ffi` only in unix's:
    # an import of the others is an error, so pyright read the board's stubs, not CPython's.
    (tmp_path / "probe.py").write_text("import rp2\nimport esp32\nimport ffi\n")
    unresolved = lines_of(pyright(tmp_path, board), "probe.py")
    expected = {"rp2": [2, 3], "esp32": [1, 3], "unix": [1, 2]}[board]
    assert unresolved == expected


def config(name: str) -> dict:
    """A checks/pyright-*.json (JSON with // comment lines, as pyright reads it)."""
    text = (ROOT / "checks" / name).read_text()
    return json.loads("\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//")))


def listed(paths: list[str]) -> set[str]:
    """Config paths (relative to checks/) as repository paths."""
    return {(ROOT / "checks" / p).resolve().relative_to(ROOT).as_posix() for p in paths}


def test_every_example_script_is_checked_on_one_side():
    device, host = config("pyright-device.json"), config("pyright-host.json")
    assert "examples" in listed(device["include"])
    # the device side also leaves out the generated Thumb-2 kernel (checked as kernels_viper.py)
    generated = {"mpy/nanonn/int8/kernels_wide_viper.py"}
    assert generated <= listed(device["exclude"])
    host_scripts = {p for p in listed(device["exclude"]) if "*" not in p} - generated
    assert host_scripts == listed(host["include"]) - {"host", "tools"}, "device exclude != host include"
    scripts = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "examples").rglob("*.py")
        if "build" not in p.relative_to(ROOT).parts  # generated models (gitignored)
    }
    assert host_scripts <= scripts, "listed but missing: %s" % sorted(host_scripts - scripts)
    # Each example folder is its scripts' import root (sibling imports), on each side it has scripts.
    for side, cfg, files in (("device", device, scripts - host_scripts), ("host", host, host_scripts)):
        roots = listed([env["root"] for env in cfg["executionEnvironments"]])
        folders = {f.rsplit("/", 1)[0] for f in files}
        assert folders <= roots, "%s: no executionEnvironments root for %s" % (side, sorted(folders - roots))


@pytest.mark.parametrize("board", BOARDS)
def test_board_configs_extend_the_device_config(board):
    cfg = config("pyright-%s.json" % board)
    assert cfg["extends"] == "./pyright-device.json"
    assert listed([cfg["stubPath"], cfg["typeshedPath"]]) == {".venv/stubs/" + board}


def test_tests_are_checked_on_their_side():
    # Host-side tests against CPython (as host/), the device scripts against the unix port's stubs.
    host, device = config("pyright-tests.json"), config("pyright-tests-device.json")
    assert listed(host["include"]) == {"tests"} and listed(host["exclude"]) == {"tests/device"}
    assert listed(device["include"]) == {"tests/device"}
    assert listed([device["stubPath"], device["typeshedPath"]]) == {".venv/stubs/unix"}
