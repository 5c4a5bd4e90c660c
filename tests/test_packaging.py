"""Distribution: package.json (mip) lists the device package, installs with mip from a
local HTTP server on the unix port; the firmware manifests name real paths; the host
package's wheel carries the board profiles and the device package and works from a fresh
venv outside the repository; one version everywhere."""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nanonn_tools
from nanonn_tools.cli import main as nanonn_main
from support import MPY, ROOT, load_tool, run_device, tool


def test_package_json_is_in_sync():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "package_json.py"), "--check"], capture_output=True
    )
    assert proc.returncode == 0, proc.stderr.decode()
    urls = json.loads((ROOT / "package.json").read_text())["urls"]
    assert sorted(dest for dest, _ in urls) == sorted(
        p.relative_to(MPY).as_posix() for p in (MPY / "nanonn").rglob("*.py")
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
    installed = sorted(
        p.relative_to(target).as_posix() for p in (target / "nanonn").rglob("*") if p.is_file()
    )
    assert installed == sorted(p.relative_to(MPY).as_posix() for p in (MPY / "nanonn").rglob("*.py"))
    # The installed copy (alone on the path) saves and loads a model.
    check = (
        "import nanonn\nfrom nanonn import Dense, Network\nfrom nanonn.nnm import read as nnm\n"
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


@pytest.mark.slow
def test_make_mpy_builds_every_arch(tmp_path):
    # `make mpy` writes build/mpy/ unless told where (no test writes into the checkout)
    out = tmp_path / "mpy"
    cmd = ["make", "-s", "mpy", "MPY_OUT=%s" % out]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for arch in ("xtensawin", "armv6m", "armv7emsp", "rv32imc", "x64"):
        built = sorted(
            p.relative_to(out / arch).with_suffix("").as_posix()
            for p in (out / arch / "nanonn").rglob("*.mpy")
        )
        assert built == sorted(
            p.relative_to(MPY).with_suffix("").as_posix() for p in (MPY / "nanonn").rglob("*.py")
        ), arch
    # The x64 build, alone on the path, runs on the unix port.
    code = (
        "import nanonn\nfrom nanonn import Dense, Network\nfrom nanonn.nnm import read as nnm\n"
        "net = nanonn.load(nnm.dumps(Network(Dense(2, inputs=2))))\n"
        "print(nanonn.__file__, net.outputs)"
    )
    env = dict(os.environ, MICROPYPATH=str(out / "x64") + os.pathsep + ".frozen")
    proc = subprocess.run(
        [tool("micropython"), "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(out / "x64" / "nanonn" / "__init__.mpy"), "2"]


# The host package as a user installs it. The wheel is built from a copy of host/ with the
# boards/ and mpy/nanonn/ its package-data symlinks point at (so nothing is written into the
# repository), installed with its dependencies and the [unix] extra into a fresh venv outside
# the repository (pip from this environment, the versions of requirements-demo.txt as
# constraints: make setup has just fetched them), and run from there with nothing of the
# checkout on any path.
BOARD_NAMES = sorted(p.parent.name for p in (ROOT / "boards").glob("*/board.json"))
DEVICE_MODULES = sorted(p.relative_to(MPY / "nanonn").as_posix() for p in (MPY / "nanonn").rglob("*.py"))


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    """(wheel path, venv dir, work dir) of the built and installed host package."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    skip = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    shutil.copytree(ROOT / "host", src / "host", symlinks=True, ignore=skip)
    shutil.copytree(ROOT / "boards", src / "boards", ignore=skip)
    shutil.copytree(MPY / "nanonn", src / "mpy" / "nanonn", ignore=skip)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _check(
        pip + ["wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src / "host")]
    )
    (wheel,) = (tmp / "dist").glob("nanonn_tools-*.whl")
    venv = tmp / "venv"
    _check([sys.executable, "-m", "venv", str(venv)])  # with the pip that Python bundles, as a user's
    constraints = ["-c", str(ROOT / "requirements-demo.txt")]
    venv_pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    _check(venv_pip + ["install", "-q", *constraints, "%s[unix]" % wheel])
    work = tmp / "work"
    work.mkdir()
    return wheel, venv, work


def _check(cmd, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, "%s\n%s%s" % (" ".join(map(str, cmd)), proc.stdout, proc.stderr)
    return proc


def _run_installed(venv, work, *args) -> str:
    """Run venv/bin/ARGS[0] in `work` with only the venv (and the system) on PATH, no checkout paths."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NANONN_", "PYTHON", "MICROPY", "VIRTUAL_ENV"))
    }
    env["PATH"] = os.pathsep.join([str(venv / "bin"), os.defpath])
    env["NANONN_UNIX_BOARD"] = str(work / "board")  # the --port unix board's filesystem
    return _check([str(venv / "bin" / args[0]), *args[1:]], cwd=work, env=env).stdout


@pytest.mark.slow
def test_wheel_ships_the_board_profiles_and_the_device_package(wheel_venv):
    wheel, _, _ = wheel_venv
    with zipfile.ZipFile(wheel) as z:
        data = {n.split("/package-data/", 1)[1]: z.read(n) for n in z.namelist() if "/package-data/" in n}
    expected = ["boards/%s/board.json" % b for b in BOARD_NAMES] + ["nanonn/" + m for m in DEVICE_MODULES]
    assert sorted(data) == sorted(expected)
    for name, content in data.items():
        source = ROOT / name if name.startswith("boards/") else MPY / name
        assert content == source.read_bytes(), name


@pytest.mark.slow
def test_installed_tool_runs_from_its_venv_alone(wheel_venv):
    _, venv, work = wheel_venv
    where = "import nanonn_tools, nanonn_tools.profiles as b, nanonn_tools.deploy as d\n"
    where += "print(nanonn_tools.__file__); print(b.profiles_dir()); print(d.device_package_dir())"
    paths = _run_installed(venv, work, "python", "-c", where).split()
    assert len(paths) == 3
    for path in paths:
        assert Path(path).resolve().is_relative_to(venv.resolve()), paths
    # A nanonn JSON model (original nanonn layout) of seeded weights: 4 -> 8 relu -> 3 softmax.
    rng = np.random.default_rng(12)
    layers = [rng.normal(size=8 * 5).round(4).tolist(), rng.normal(size=3 * 9).round(4).tolist()]
    (work / "w.json").write_text(json.dumps(layers))
    np.save(work / "X.npy", rng.normal(size=(16, 4)).astype(np.float32))

    def nanonn(command: str) -> str:
        return _run_installed(venv, work, "nanonn", *command.split())

    nanonn("convert w.json -o m.nnm --activations relu,softmax --inputs 4")
    nanonn("convert m.nnm -o model_src.py")
    nanonn("convert m.nnm -o model_rp2040.mpy --target rp2040")
    # Both modules hold the model (the .mpy of a bytes constant is bytecode: it loads on x64 too).
    check = "import model_src, model_rp2040\nm = open('m.nnm', 'rb').read()\n"
    check += "print(model_src.MODEL == m, model_rp2040.MODEL == m)"
    assert _run_installed(venv, work, "micropython", "-c", check).split() == ["True", "True"]
    report = nanonn("info m.nnm")
    assert "4 inputs -> 3 outputs" in report and "parameters: 67" in report
    # The per-board fit table (boards from the package data): one row per profile, this small
    # model fits everywhere.
    lines = report.splitlines()
    (head,) = [i for i, line in enumerate(lines) if line.split()[:2] == ["board", "heap"]]
    rows = [line.split() for line in lines[head + 1 :]]
    assert [row[0] for row in rows] == BOARD_NAMES, report
    assert all(row[-3:] == ["yes", "yes", "fits"] for row in rows), report
    out = nanonn("deploy m.nnm --port unix")
    assert "package: %d modules as .mpy (x64)" % len(DEVICE_MODULES) in out, out
    lib = work / "board" / "lib" / "nanonn"
    installed = sorted(p.relative_to(lib).as_posix() for p in lib.rglob("*") if p.is_file())
    assert installed == sorted(m[:-3] + ".mpy" for m in DEVICE_MODULES)
    out = nanonn("verify m.nnm --port unix --data X.npy")
    assert "verify: PASS" in out, out


@pytest.mark.slow
def test_one_version_everywhere(wheel_venv, capsys):
    """nanonn.__version__ (device) = nanonn_tools.__version__ = package.json = the wheel's = `nanonn --version`."""
    wheel, venv, work = wheel_venv
    proc = run_device("micropython", ["-c", "import nanonn\nprint(nanonn.__version__)"])
    assert proc.returncode == 0, proc.stderr
    version = proc.stdout.strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert load_tool("package_json").device_version() == version  # what package.json is made from
    assert nanonn_tools.__version__ == version
    assert json.loads((ROOT / "package.json").read_text())["version"] == version
    assert wheel.name.startswith("nanonn_tools-%s-" % version)
    with pytest.raises(SystemExit):
        nanonn_main(["--version"])
    assert capsys.readouterr().out.split() == ["nanonn", version]
    assert _run_installed(venv, work, "nanonn", "--version").split() == ["nanonn", version]
