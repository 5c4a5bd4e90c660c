"""Every device module compiles with mpy-cross for every board architecture."""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from support import ARCHES, MPY, once, prefetch, tool

MODULES = sorted(p for p in (MPY / "nanonn").rglob("*.py"))


def test_modules_found():
    assert len(MODULES) >= 5, MODULES


def prefetch_items(items):
    """Start the compiles of the selected items in the background (conftest.py)."""
    for item in items:
        if hasattr(item, "callspec"):
            module, arch = item.callspec.params["module"], item.callspec.params["arch"]
            prefetch(("mpy-cross", module, arch), _compile, module, arch)


def _out_dir() -> Path:
    """One temporary folder for the session's .mpy files (removed at exit)."""

    def make():
        folder = Path(tempfile.mkdtemp(prefix="nanonn-mpy-cross-"))
        atexit.register(shutil.rmtree, folder, True)
        return folder

    return once("mpy-cross-out", make)


def _compile(module: Path, arch: str):
    """(exit status, output, size of the .mpy written) of `mpy-cross -march=arch module`."""
    out = _out_dir() / arch / module.relative_to(MPY).with_suffix(".mpy")
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [tool("mpy-cross"), "-march=" + arch, "-o", str(out), str(module)],
        capture_output=True,
        text=True,
    )
    return proc.returncode, proc.stderr + proc.stdout, out.stat().st_size if out.exists() else 0


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(MPY)))
def test_compiles(module, arch):
    status, output, size = once(("mpy-cross", module, arch), _compile, module, arch)
    assert status == 0, output
    assert size > 0
