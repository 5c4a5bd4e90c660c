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
from nanonn_tools import NanonnError, nnm, parts
from nanonn_tools.cli import main as nanonn_main
from nanonn_tools.model import DenseSpec, ModelSpec
from nanonn_tools.quantize import quantize_model
from support import MPY, ROOT, load_tool, run_device, tool


def test_package_json_is_in_sync():
    """package.json, mpy/<part>.json and the README's size table are what tools/package_json.py writes."""
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


def test_every_device_module_is_in_exactly_one_part():
    named = [path for paths, _, _ in parts.PARTS.values() for path in paths]
    assert sorted(named) == sorted(DEVICE_MODULES)
    assert parts.closure(["quantize"]) == ["core", "int8", "quantize"]
    assert parts.parse("save,int8") == ["core", "int8", "save"] and parts.parse("all") == list(parts.PARTS)
    with pytest.raises(
        NanonnError, match="part: expected one of core, int8, quantize, train, save, got 'bogus'"
    ):
        parts.closure(["bogus"])


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
        "import nanonn\nfrom nanonn import Dense, Network\nfrom nanonn.nnm.write import dumps\n"
        "net = Network(Dense(3, inputs=2, activation='relu'))\n"
        "net2 = nanonn.load(dumps(net))\nprint(nanonn.__file__, list(net2.predict([1, 2])) == list(net.predict([1, 2])))"
    )
    env = dict(os.environ, MICROPYPATH=str(target) + os.pathsep + ".frozen")
    proc = subprocess.run(
        [tool("micropython"), "-c", check], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(target / "nanonn" / "__init__.py"), "True"]


def _mip_install(http_root: str, package: str, target: Path) -> list[str]:
    """Install `package` (a json path on the server) with the unix port's mip into `target`:
    the installed files, relative to the package folder."""
    code = "import mip\nmip.install(%r, target=%r)\n" % (http_root + "/" + package, str(target))
    proc = subprocess.run([tool("micropython"), "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Done" in proc.stdout, proc.stdout + proc.stderr
    return sorted(
        p.relative_to(target / "nanonn").as_posix() for p in (target / "nanonn").rglob("*") if p.is_file()
    )


def _run_with(path: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    """Run `code` on the unix port with only `path` (an installed package's folder) on its path."""
    env = dict(os.environ, MICROPYPATH=str(path) + os.pathsep + ".frozen")
    return subprocess.run(
        [tool("micropython"), "-c", code, *args], capture_output=True, text=True, env=env, timeout=60
    )


# What each part is for, run with that part (and what it needs) alone on the path; prints one JSON.
PART_USE = {
    "core": "net = nanonn.load(sys.argv[1])\nout = list(net.predict(x))",
    "int8": "net = nanonn.load(sys.argv[2])\nout = list(net.predict(x))",
    "quantize": "net = nanonn.load(sys.argv[1]).quantize([x, [0.0, 1.0, -1.0, 0.5]])\nout = list(net.predict(x))",
    "train": "from nanonn.int8.tune import Tuner\nt = Tuner(nanonn.load(sys.argv[2]), k=1)\n"
    "t.fit([x], [[0.0, 1.0, 0.0]], epochs=2, rate=0.05)\nout = list(t.save(sys.argv[3] + '/t.nnm', [x]).predict(x))",
    "save": "net = nanonn.load(sys.argv[1])\nnet.save(sys.argv[3] + '/a.nnm')\n"
    "net.save(sys.argv[3] + '/b.nnm', backup=True)\nnet.save(sys.argv[3] + '/b.nnm', backup=True)\n"
    "out = list(nanonn.load(sys.argv[3] + '/a.nnm').predict(x)) + list(nanonn.load(sys.argv[3] + '/b.nnm').predict(x))",
}


@pytest.fixture(scope="module")
def part_models(tmp_path_factory):
    """(float .nnm path, int8 .nnm path) of a seeded 4 -> 6 relu -> 3 softmax model."""
    tmp = tmp_path_factory.mktemp("parts")
    rng = np.random.default_rng(5)
    spec = ModelSpec(
        [
            DenseSpec(rng.normal(size=(6, 4)), rng.normal(size=6) * 0.1, "relu"),
            DenseSpec(rng.normal(size=(3, 6)), None, "softmax"),
        ]
    ).validate()
    nnm.write(spec, tmp / "f.nnm")
    nnm.write(quantize_model(spec, rng.uniform(-1, 1, (32, 4))), tmp / "q.nnm")
    return str(tmp / "f.nnm"), str(tmp / "q.nnm")


@pytest.mark.parametrize("part", list(parts.PARTS))
def test_mip_installs_each_part_with_what_it_needs_and_it_runs(part, tmp_path, http_root, part_models):
    """mpy/<part>.json installs exactly the part and the parts it needs; with those alone on
    the path the part does its job, with the same results as the whole package."""
    installed = _mip_install(http_root, "mpy/%s.json" % part, tmp_path / "lib")
    assert installed == sorted(parts.modules([part]))
    code = (
        "import json, sys\nimport nanonn\nx = [0.5, -1.0, 2.0, 0.25]\n%s\nprint(json.dumps(out))"
        % PART_USE[part]
    )
    (tmp_path / "alone").mkdir()
    (tmp_path / "whole").mkdir()
    alone = _run_with(tmp_path / "lib", code, *part_models, str(tmp_path / "alone"))
    assert alone.returncode == 0, alone.stdout + alone.stderr
    whole = _run_with(MPY, code, *part_models, str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    assert json.loads(alone.stdout) == json.loads(whole.stdout)
    if part == "core":  # an int8 model needs the int8 part
        proc = _run_with(tmp_path / "lib", "import nanonn, sys\nnanonn.load(sys.argv[2])", *part_models)
        said = proc.stdout + proc.stderr  # the unix port prints a traceback to stdout
        assert proc.returncode != 0 and "ImportError" in said and "int8" in said, said


def test_the_whole_package_is_the_union_of_the_parts():
    whole = [dest for dest, _ in json.loads((ROOT / "package.json").read_text())["urls"]]
    union = set()
    for part in parts.PARTS:
        union |= {dest for dest, _ in json.loads((MPY / (part + ".json")).read_text())["urls"]}
    assert sorted(whole) == sorted(union) == ["nanonn/" + m for m in DEVICE_MODULES]


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
        "import nanonn\nfrom nanonn import Dense, Network\nfrom nanonn.nnm.write import dumps\n"
        "net = nanonn.load(dumps(Network(Dense(2, inputs=2))))\n"
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
    core = parts.modules(["core"])  # a float model needs the core part only
    assert "package: %d modules as .mpy (x64) (parts: core)" % len(core) in out, out
    lib = work / "board" / "lib" / "nanonn"
    installed = sorted(p.relative_to(lib).as_posix() for p in lib.rglob("*") if p.is_file())
    assert installed == sorted(m[:-3] + ".mpy" for m in core)
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
