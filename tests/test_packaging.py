"""Distribution: package.json (mip) lists the device package, installs with mip from a
local HTTP server on the unix port; the firmware manifests name real paths."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading

import pytest

from support import MPY, ROOT, tool


def test_package_json_is_in_sync():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "package_json.py"), "--check"], capture_output=True
    )
    assert proc.returncode == 0, proc.stderr.decode()
    urls = json.loads((ROOT / "package.json").read_text())["urls"]
    assert sorted(dest for dest, _ in urls) == sorted(
        "nanonn/" + p.name for p in (MPY / "nanonn").glob("*.py")
    )
    for dest, src in urls:
        assert (ROOT / src).is_file() and src.endswith(dest)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging each request to stderr."""

    def log_message(self, format, *args):
        pass


@pytest.fixture
def http_root():
    handler = functools.partial(_QuietHandler, directory=str(ROOT))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_mip_installs_the_package_and_it_loads_a_model(tmp_path, http_root):
    target = tmp_path / "lib"
    code = "import mip\nmip.install(%r, target=%r)\n" % (http_root + "/package.json", str(target))
    proc = subprocess.run([tool("micropython"), "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Done" in proc.stdout, proc.stdout + proc.stderr
    installed = sorted(p.name for p in (target / "nanonn").iterdir())
    assert installed == sorted(p.name for p in (MPY / "nanonn").glob("*.py"))
    # The installed copy (alone on the path) saves and loads a model.
    check = (
        "import nanonn\nfrom nanonn import Dense, Network, nnm\n"
        "net = Network(Dense(3, inputs=2, activation='relu'))\n"
        "net2 = nanonn.load(nnm.dumps(net))\nprint(nanonn.__file__, list(net2.predict([1, 2])) == list(net.predict([1, 2])))"
    )
    env = dict(os.environ, MICROPYPATH=str(target) + os.pathsep + ".frozen")
    proc = subprocess.run(
        [tool("micropython"), "-c", check], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(target / "nanonn" / "__init__.py"), "True"]


class _Manifest:
    """The three manifest functions of MicroPython's build, recording what they name."""

    def __init__(self):
        self.calls = []

    def run(self, path, variables):
        text = path.read_text()
        for key, value in variables.items():
            text = text.replace("$(%s)" % key, value)
        api = {
            "include": lambda p: self.include(path, p, variables),
            "package": lambda name, base_path=".": self.calls.append(
                ("package", (path.parent / base_path / name))
            ),
            "module": lambda name, base_path=".": self.calls.append(
                ("module", (path.parent / base_path / name))
            ),
        }
        exec(compile(text, str(path), "exec"), api)

    def include(self, path, target, variables):
        if target.startswith("/port"):
            self.calls.append(("include", target))
        else:
            self.run((path.parent / target).resolve(), variables)


@pytest.mark.parametrize("board", ["esp32", "esp32s3", "esp32c3", "rp2040", "rp2350", "unix"])
def test_firmware_manifest_freezes_nanonn_and_the_model(board, tmp_path, monkeypatch):
    model = tmp_path / "my_model.py"
    model.write_text("MODEL = b''\n")
    monkeypatch.setenv("NANONN_MODEL", str(model))
    m = _Manifest()
    m.run(ROOT / "boards" / board / "manifest.py", {"PORT_DIR": "/port"})
    kinds = [kind for kind, _ in m.calls]
    assert kinds == ["include", "package", "module"], m.calls
    assert (m.calls[1][1] / "__init__.py").resolve() == (MPY / "nanonn" / "__init__.py").resolve()
    assert m.calls[2][1].resolve() == model.resolve()
    monkeypatch.delenv("NANONN_MODEL")
    m = _Manifest()
    m.run(ROOT / "boards" / board / "manifest.py", {"PORT_DIR": "/port"})
    assert [kind for kind, _ in m.calls] == ["include", "package"]


def test_make_mpy_builds_every_arch():
    proc = subprocess.run(["make", "-s", "mpy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for arch in ("xtensawin", "armv6m", "armv7emsp", "rv32imc", "x64"):
        built = sorted(p.stem for p in (ROOT / "build" / "mpy" / arch / "nanonn").glob("*.mpy"))
        assert built == sorted(p.stem for p in (MPY / "nanonn").glob("*.py")), arch
    # The x64 build, alone on the path, runs on the unix port.
    code = (
        "import nanonn\nfrom nanonn import Dense, Network, nnm\n"
        "net = nanonn.load(nnm.dumps(Network(Dense(2, inputs=2))))\n"
        "print(nanonn.__file__, net.outputs)"
    )
    env = dict(os.environ, MICROPYPATH=str(ROOT / "build" / "mpy" / "x64") + os.pathsep + ".frozen")
    proc = subprocess.run(
        [tool("micropython"), "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(ROOT / "build" / "mpy" / "x64" / "nanonn" / "__init__.mpy"), "2"]
