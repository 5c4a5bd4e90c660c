"""`nanonn deploy MODEL`: install the device package and a model on a board.

Steps: choose the parts of the package the model needs (`nanonn_tools.parts`: core,
plus int8 for an int8 model; more with `with_parts`), connect (soft reset), read the
board's MicroPython version and `.mpy` ABI/architecture, choose per module `.mpy` for the board's arch, bytecode
`.mpy`, or `.py` (see `plan_package`), hash the board's files and copy only what
differs (each file written as `NAME.tmp`, checked, then renamed over the old
one), check that the package imports, load the new model on the board from
its temp file (its CRC and fit in the heap are checked there) and only then
make it the active model. Prints flash used/free and the model's RAM (the
loaded network) and the model reader's (the modules `nanonn.load` imports,
once per boot) against the free heap.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from . import NanonnError, nnm, parts
from . import info as model_info
from .board_commands import Progress, add_board_options
from .connection import BoardInfo, Connection, host_hash, open_connection
from .convert import mpy_cross
from .deployed_model import measure_load_code
from .device_package import device_package_dir
from .profiles import BoardProfile, load_profile

MIN_VERSION = (1, 19, 0)  # mpy v6; older firmware cannot run the package
LIB = "/lib/nanonn"
NATIVE = re.compile(r"^\s*@micropython\.(viper|native|asm_\w+)", re.M)


def mpy_cross_version() -> tuple[int, int]:
    """(major, sub) of the .mpy files our mpy-cross emits."""
    out = subprocess.run([mpy_cross(), "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"mpy v(\d+)\.(\d+)", out)
    if not m:
        raise NanonnError("mpy-cross --version: expected 'mpy vN.M', got %r" % out.strip())
    return int(m.group(1)), int(m.group(2))


@dataclass
class Plan:
    """How each module of the package goes to the board."""

    files: dict = field(default_factory=dict)  # board path -> bytes
    stale: list = field(default_factory=list)  # board paths of the other form, removed after
    notes: list = field(default_factory=list)  # messages for the user
    form: str = ""  # one-word summary


def plan_package(info: BoardInfo, target_arch: str | None = None, modules: list[str] | None = None) -> Plan:
    """Decide `.mpy` (arch), bytecode `.mpy` or `.py` per module and build the files of the
    device modules `modules` (paths in the package, "int8/network.py"; None: all of them).

    - the board's `.mpy` major version differs from mpy-cross's: all `.py`;
    - the board's sub-version is older (its firmware cannot load our native code), or
      its arch is unknown (and no `--target`): bytecode `.mpy` (loads on any firmware
      of the same major version), `.py` for the modules with native code;
    - otherwise `.mpy` compiled with `-march=<arch>` (native code included).
    """
    src = device_package_dir()
    ours = mpy_cross_version()
    theirs = info.mpy_version
    arch = info.arch or target_arch
    plan = Plan()
    # Each module by its path in the package without `.py` ("errors", "int8/network": subpackages too).
    chosen = sorted(src.rglob("*.py")) if modules is None else sorted(src / m for m in modules)
    modules_by_stem = {p.relative_to(src).as_posix()[:-3]: p for p in chosen}
    native = {stem for stem, p in modules_by_stem.items() if NATIVE.search(p.read_text())}
    names = ", ".join(sorted(stem.replace("/", ".") for stem in native))
    if info.mpy == 0 or theirs[0] != ours[0]:
        mode = "py"
        plan.notes.append(
            "the board's .mpy version is %s, ours (mpy-cross) is v%d.%d: installing the package as .py "
            "source (compiled on the board at import: slower import, more RAM)"
            % (_mpy_text(info), ours[0], ours[1])
        )
    elif theirs[1] < ours[1]:
        mode = "bytecode"
        if native:
            plan.notes.append(
                "the board's .mpy version %s is older than ours (v%d.%d), so it cannot load our native code: "
                "%s installed as .py, the rest as bytecode .mpy; MicroPython 1.23 or newer takes .mpy "
                "native code" % (_mpy_text(info), ours[0], ours[1], names)
            )
    elif arch is None:
        mode = "bytecode"
        if native:
            plan.notes.append(
                "the board does not report its architecture: %s installed as .py (native code), the "
                "rest as bytecode .mpy; pass --target BOARD to compile native code" % names
            )
    else:
        mode = "arch"
    bytecode = "bytecode .mpy" + (" and .py (native code)" if native else "")
    plan.form = {"py": ".py", "bytecode": bytecode, "arch": ".mpy (%s)" % arch}[mode]
    with tempfile.TemporaryDirectory(prefix="nanonn-mpy-") as tmp:
        for stem, path in modules_by_stem.items():
            as_py = mode == "py" or (mode == "bytecode" and stem in native)
            if as_py:
                plan.files["%s/%s.py" % (LIB, stem)] = path.read_bytes()
                plan.stale.append("%s/%s.mpy" % (LIB, stem))
                continue
            out = os.path.join(tmp, stem.replace("/", ".") + ".mpy")
            cmd = [mpy_cross(), "-o", out, "-s", "nanonn/%s.py" % stem]
            if mode == "arch" and arch:
                cmd.insert(1, "-march=" + arch)
            cmd.append(str(path))
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                raise NanonnError(
                    "mpy-cross %s.py for %s failed: %s" % (stem, arch or "bytecode", proc.stderr.strip())
                )
            plan.files["%s/%s.mpy" % (LIB, stem)] = Path(out).read_bytes()
            plan.stale.append("%s/%s.py" % (LIB, stem))
    return plan


def _mpy_text(info: BoardInfo) -> str:
    if info.mpy == 0:
        return "not reported"
    return "v%d.%d" % info.mpy_version


def _size(n: int) -> str:
    return "%d B" % n if n < 10240 else "%.1f KiB" % (n / 1024)


@dataclass
class DeployResult:
    """What `deploy` did: the board after it, files written and skipped, the RAM of the
    loaded network (`model_ram`) and of the reader modules `nanonn.load` imports (`reader_ram`)."""

    info: BoardInfo
    written: list
    skipped: list
    model_path: str
    model_ram: int
    heap_free: int
    notes: list
    reader_ram: int = 0
    removed: list = field(default_factory=list)  # board modules that are not this package's


def frozen_package(conn: Connection) -> str | None:
    """The version of a nanonn frozen into the board's firmware, or None."""
    return conn.eval(
        "import sys\n_p = sys.path[:]\nsys.path[:] = ['.frozen']\n"
        "try:\n import nanonn as _n\n _v = getattr(_n, '__version__', '?')\n"
        "except ImportError:\n _v = None\nfinally:\n sys.path[:] = _p\n"
        " for _m in [m for m in sys.modules if m == 'nanonn' or m.startswith('nanonn.')]:\n"
        "  del sys.modules[_m]\nprint(repr(_v))",
        what="looking for a frozen nanonn",
    )


# Board code: the first `nanonn` (package folder or module) on sys.path before the entry
# `stop` (where the package deploy uses lives), as an absolute path, else None.
_SHADOW = """
import os, sys
_r = None
for _d in sys.path:
    if _d == %r:
        break
    _b = _d if _d.startswith('/') else os.getcwd().rstrip('/') + ('/' + _d if _d else '')
    for _n in ('nanonn', 'nanonn.py', 'nanonn.mpy'):
        try:
            os.stat(_b + '/' + _n)
        except OSError:
            continue
        _r = _b + '/' + _n
        break
    if _r:
        break
print(repr(_r))
"""


def shadowing_copy(conn: Connection, frozen: bool) -> str | None:
    """The path of a nanonn the board imports instead of /lib/nanonn (or the frozen one),
    e.g. the `/nanonn` folder `mpremote cp -r mpy/nanonn :` leaves; None when there is none."""
    stop = ".frozen" if frozen else LIB.rpartition("/")[0]
    return conn.eval(_SHADOW % stop, what="looking for a nanonn that shadows %s" % stop)


def _shadowed(path: str, used: str) -> NanonnError:
    return NanonnError(
        "the board imports nanonn from %s, not from %s (it comes first on sys.path), so it would run "
        "that copy: remove it (mpremote rm -r :%s) and deploy again" % (path, used, path)
    )


def deploy(
    model: str,
    port: str | None = "auto",
    target: str | None = None,
    frozen_ok: bool = False,
    progress: bool | None = None,
    out=print,
    with_parts: tuple[str, ...] | list[str] = (),
) -> DeployResult:
    """Install the parts of the package `model` needs (and `with_parts`: names of
    `nanonn_tools.parts`, "all" for every part) and `model` on the board; see the module
    docstring. Parts already on the board stay and are brought up to date (another program
    there may use them)."""
    data = _read_model(model)
    chosen = parts.closure(parts.needed(data) + [n for w in with_parts for n in parts.parse(w)])
    name = os.path.basename(model)
    dest = "/" + name
    profile = load_profile(target) if target else None
    target_arch = profile.mpy_cross_arch if profile else None
    if profile:
        out(_expected_fit(data, model, profile))
    with open_connection(port) as conn:
        info = conn.info()
        out(
            "board: %s, %s, .mpy %s, arch %s"
            % (conn.port, info.version_text, _mpy_text(info), info.arch or "unknown")
        )
        if tuple(info.version) < MIN_VERSION:
            raise NanonnError(
                "the board runs %s; nanonn needs MicroPython %s or newer: update the firmware "
                "(micropython.org/download) and retry" % (info.version_text, ".".join(map(str, MIN_VERSION)))
            )
        if target_arch and info.arch and info.arch != target_arch:
            out(
                "note: --target %s is %s but the board reports %s; using the board's"
                % (target, target_arch, info.arch)
            )
        notes: list = []
        frozen = frozen_package(conn)
        files: dict = {}
        stale: list = []
        if frozen is not None and not frozen_ok:
            raise NanonnError(
                "the board's firmware has nanonn %s frozen in, which shadows /lib/nanonn: pass "
                "--frozen-ok to use it (only the model is copied), or flash firmware without it" % frozen
            )
        shadow = shadowing_copy(conn, frozen is not None)
        if shadow is not None:
            raise _shadowed(shadow, "the firmware" if frozen is not None else LIB)
        if frozen is not None:
            notes.append("using the frozen nanonn %s in the firmware; package not copied" % frozen)
        else:
            kept = [name for name in parts_on_board(conn) if name not in chosen]
            chosen = parts.closure(chosen + kept)
            plan = plan_package(info, target_arch, parts.modules(chosen))
            notes.extend(plan.notes)
            files, stale = plan.files, plan.stale
            out(
                "package: %d modules as %s (parts: %s%s)"
                % (
                    len(files),
                    plan.form,
                    ", ".join(chosen),
                    "; on the board already: " + ", ".join(kept) if kept else "",
                )
            )
        for note in notes:
            out("note: " + note)
        # Leftovers of an interrupted deploy take space: remove them first.
        paths = list(files) + [dest]
        found = conn.listdir({p.rpartition("/")[0] or "/" for p in paths})
        for leftover in [p + ".tmp" for p in paths if p + ".tmp" in found]:
            conn.remove(leftover)
        # Modules in the package's folders that this package does not have (another version's,
        # e.g. the flat layout before the subpackages): removed after the copy.
        ours = set(files) | set(stale)
        orphans = sorted(
            p for p in found if p.startswith(LIB + "/") and p.endswith((".py", ".mpy")) and p not in ours
        )
        current = dict(zip(paths + stale, conn.hashes(paths + stale, info.hash)))
        written, skipped = [], []
        todo = [p for p in files if current[p] != host_hash(files[p], info.hash)]
        skipped.extend(p for p in files if p not in todo)
        for folder in sorted({p.rpartition("/")[0] for p in todo}):  # LIB and its subpackages
            conn.mkdirs(folder)
        model_same = current[dest] == host_hash(data, info.hash)
        total = sum(len(files[p]) for p in todo) + (0 if model_same else len(data))
        bar = Progress(total, "copy", sys.stderr.isatty() if progress is None else progress)
        done = 0

        def advance(n: int) -> None:
            bar.update(done + n)

        try:
            for path in todo:
                conn.write_file(path, files[path], info.hash, progress=advance)
                written.append(path)
                done += len(files[path])
            if not model_same:
                conn.write_file(dest, data, info.hash, activate=False, progress=advance)
        finally:
            bar.close()
        for path in stale:
            if current[path] is not None:  # the other form of a module, left by an earlier deploy
                conn.remove(path)
        for path in orphans:
            conn.remove(path)
        if files:
            where = conn.eval(
                "import sys\nfor _m in [m for m in sys.modules if m == 'nanonn' or m.startswith('nanonn.')]:\n"
                " del sys.modules[_m]\nimport nanonn\nprint(repr(nanonn.__file__))",
                what="importing nanonn on the board (the package may need a newer MicroPython)",
            )
            if not str(where).startswith(LIB + "/"):
                raise _shadowed(str(where).rpartition("/__init__.")[0] or str(where), LIB)
        if model_same:
            skipped.append(dest)
        check = dest if model_same else dest + ".tmp"
        ram, reader, free = _check_model(conn, check, dest)
        if not model_same:
            conn.activate(dest)
            written.append(dest)
        after = conn.info()
    for path in written:
        out("copied  %s" % path)
    for path in orphans:
        out("removed %s (not a module of this nanonn)" % path)
    out("%d file(s) copied, %d identical file(s) skipped" % (len(written), len(skipped)))
    flash = after.flash
    if flash:
        size, free_flash = flash
        out("flash: %s used of %s, %s free" % (_size(size - free_flash), _size(size), _size(free_flash)))
    out(
        "model: %s, RAM %s (the loaded network, measured on the board) of %s free heap (%.1f%%)"
        % (dest, _size(ram), _size(free), 100.0 * ram / max(1, free))
    )
    out(
        "model reader: RAM %s (the modules nanonn.load imports, once per boot, whatever the model)"
        % _size(reader)
    )
    return DeployResult(after, written, skipped, dest, ram, free, notes, reader, orphans)


def parts_on_board(conn: Connection) -> list[str]:
    """The parts of the package (`nanonn_tools.parts`) with a module in the board's /lib/nanonn."""
    all_modules = parts.modules(parts.PARTS)
    found = conn.listdir({("%s/%s" % (LIB, m)).rpartition("/")[0] for m in all_modules})
    stems = {p[len(LIB) + 1 :].rpartition(".")[0] for p in found if p.endswith((".py", ".mpy"))}
    return [name for name, (paths, _, _) in parts.PARTS.items() if any(m[:-3] in stems for m in paths)]


def _expected_fit(data: bytes, model: str, profile: BoardProfile) -> str:
    """What `nanonn info --board` expects for the model on a board of `profile` (with the
    figures measured on its emulated stand-in when there are some), said before the board measures."""
    s = model_info.stats(nnm.loads(data, source=model), len(data))
    needs = model_info.need(s, profile)
    dtype = "float" if s.dtype == "float32" else "int8"
    file_need, frozen_need = needs[(dtype, "file")], needs[(dtype, "frozen")]
    if file_need <= profile.heap_bytes:
        verdict = "fits"
    else:
        verdict = "fits only frozen" if frozen_need <= profile.heap_bytes else "does not fit"
    return "expected on %s: about %s of its typical %s free heap from a file (%s frozen): %s" % (
        profile.name,
        _size(file_need),
        _size(profile.heap_bytes),
        _size(frozen_need),
        verdict,
    )


def _read_model(model: str) -> bytes:
    if not os.path.isfile(model):
        raise NanonnError("model: expected a .nnm file, %s does not exist" % model)
    if not model.endswith(".nnm"):
        raise NanonnError("model: expected a .nnm file (nanonn convert writes one), got %s" % model)
    with open(model, "rb") as f:
        data = f.read()
    try:  # checked here, before connecting: a bad file must not cost a package sync
        nnm.loads(data, source=model)
    except NanonnError as exc:
        raise NanonnError("model %s: not a valid .nnm model (%s)" % (model, exc)) from None
    return data


def _check_model(conn: Connection, path: str, dest: str) -> tuple[int, int, int]:
    """Load `path` on the board: (RAM the network keeps, RAM of the reader modules
    `nanonn.load` imported, free heap before). Removes it if it fails."""
    code = (
        "import gc\ngc.collect()\n_nn_free = gc.mem_free()\ntry:\n%s"
        " print(repr(('ok', (_nn_model, _nn_reader), _nn_free)))\n"
        "except MemoryError as e:\n print(repr(('memory', str(e), _nn_free)))\n"
        "except ValueError as e:\n print(repr(('invalid', str(e), _nn_free)))\n"
        "_nn_net = None\ngc.collect()" % textwrap.indent(measure_load_code(path), " ")
    )
    status, value, free = conn.eval(code, timeout=60, what="loading %s on the board" % dest)
    if status == "ok":
        return value[0], value[1], free
    if path != dest:
        conn.remove(path)
    if status == "memory":
        raise NanonnError(
            "the model cannot fit the board's heap (%s; %s free after a soft reset): use a smaller or "
            "int8 model (nanonn convert --quantize int8), or freeze it into the firmware; the previous "
            "model is still active" % (value, _size(free))
        )
    raise NanonnError("the model does not load on the board (%s); the previous model is still active" % value)


def register(sub) -> None:
    """Add `nanonn deploy` to the CLI's subparsers."""
    p = sub.add_parser("deploy", help="install nanonn and a model on a board (over USB, with mpremote)")
    p.add_argument("model", help="the .nnm model file")
    p.add_argument(
        "--target", help="board profile (boards/<name>) for the arch when the board does not report it"
    )
    p.add_argument("--frozen-ok", action="store_true", help="use a nanonn frozen into the firmware")
    p.add_argument(
        "--with",
        dest="with_parts",
        action="append",
        default=[],
        metavar="PARTS",
        help="also install these parts of the package (comma-separated: %s; or all). Without it, "
        "deploy installs what the model needs (core; int8 for an int8 model; save for a model "
        "written by a safe save); parts already on the board stay and are kept up to date"
        % ", ".join(parts.OPTIONAL),
    )
    add_board_options(p, progress="a copy progress bar")
    p.set_defaults(handler=_main)


def _main(args) -> int:
    deploy(
        args.model,
        port=args.port,
        target=args.target,
        frozen_ok=args.frozen_ok,
        progress=args.progress,
        with_parts=args.with_parts,
    )
    return 0
