"""`nanonn deploy`, `verify` and `bench` end to end: the real mpremote transport
against the virtual board (the micropython unix port behind a pty)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from nanonn_tools import NanonnError, cli, connection, nnm, parts, reference
from nanonn_tools.model import DenseSpec, ModelSpec
from nanonn_tools.virtualboard import VirtualBoard
from support import MPY, tool

# The device modules by path without .py ("errors", "float32/network"): what deploy installs
# for a float model (the core part), and for an int8 model (core and int8).
PACKAGE = sorted(m[:-3] for m in parts.modules(["core"]))
INT8_PACKAGE = sorted(m[:-3] for m in parts.modules(["int8"]))


def write_model(path: Path, sizes=(8, 16, 4), acts=("relu", "softmax"), seed=1) -> Path:
    layers = reference.random_network(list(sizes), list(acts), seed=seed)
    spec = ModelSpec([DenseSpec(layer["w"], layer["b"], layer["activation"]) for layer in layers])
    path.parent.mkdir(parents=True, exist_ok=True)
    nnm.write(spec, path)
    return path


@pytest.fixture
def make_board(tmp_path):
    """Start virtual boards (killed at the end); each has its filesystem in tmp_path/fsN."""
    boards = []

    def start(**kw):
        kw.setdefault("root", str(tmp_path / ("fs%d" % len(boards))))
        b = VirtualBoard(**kw).start()
        boards.append(b)
        return b

    yield start
    for b in boards:
        b.stop()
        assert b._proc is None


def run(capsys, *argv):
    """`nanonn argv...` in-process: (exit status, stdout, stderr)."""
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def board_files(root: str) -> dict:
    base = Path(root)
    return {str(p.relative_to(base)): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def _count_bytes_sent(monkeypatch) -> list[int]:
    """The sizes of every write to a serial port from now on (mpremote's transport uses pyserial)."""
    import serial

    sent: list[int] = []
    write = serial.Serial.write

    def counting(self, data):
        sent.append(len(data))
        return write(self, data)

    monkeypatch.setattr(serial.Serial, "write", counting)
    return sent


@pytest.mark.slow
def test_deploy_installs_package_and_model_then_copies_nothing(make_board, tmp_path, capsys, monkeypatch):
    vb = make_board()
    model = write_model(tmp_path / "model.nnm")
    sent = _count_bytes_sent(monkeypatch)
    status, out, err = run(capsys, "deploy", model, "--port", vb.port)
    assert status == 0, err
    files = board_files(vb.root)
    assert set(files) == {"model.nnm"} | {"lib/nanonn/%s.mpy" % m for m in PACKAGE}
    assert files["model.nnm"] == model.read_bytes()
    assert files["lib/nanonn/float32/network.mpy"][:2] == b"M\x06"  # .mpy v6
    assert "arch x64" in out and "as .mpy (x64)" in out
    assert "%d file(s) copied, 0 identical" % (len(PACKAGE) + 1) in out
    assert "flash:" in out and "free" in out and "RAM" in out and "free heap" in out
    mtimes = {p: p.stat().st_mtime_ns for p in Path(vb.root).rglob("*") if p.is_file()}
    first = sum(sent)
    assert first > sum(len(v) for v in files.values()), "the first deploy sent the files"

    sent.clear()
    status, out, err = run(capsys, "deploy", model, "--port", vb.port)
    assert status == 0, err
    assert "0 file(s) copied, %d identical file(s) skipped" % (len(PACKAGE) + 1) in out
    assert {p: p.stat().st_mtime_ns for p in Path(vb.root).rglob("*") if p.is_file()} == mtimes
    # Quick, measured in work rather than time: the second deploy only asks for hashes.
    print("deploy sent %d bytes, the repeat %d" % (first, sum(sent)))
    assert sum(sent) < first // 10, (sum(sent), first)


@pytest.mark.slow
def test_full_filesystem_is_a_clear_error_and_keeps_the_active_model(make_board, tmp_path, capsys):
    root = str(tmp_path / "fs")
    small = write_model(tmp_path / "a" / "model.nnm")
    vb = make_board(root=root)
    assert run(capsys, "deploy", small, "--port", vb.port)[0] == 0
    vb.stop()
    used = sum(len(v) for v in board_files(root).values())
    big = write_model(tmp_path / "b" / "model.nnm", sizes=(64, 96, 10), seed=2)  # ~28 KiB
    vb = make_board(root=root, flash_size=used + big.stat().st_size // 2)  # the same files, a fuller flash
    status, out, err = run(capsys, "deploy", big, "--port", vb.port)
    assert status == 1
    assert err.startswith("nanonn: board filesystem is full: /model.nnm needs %d bytes" % big.stat().st_size)
    assert err.count("\n") == 1
    files = board_files(vb.root)
    assert files["model.nnm"] == small.read_bytes()  # the old model is still the active one
    assert not [name for name in files if name.endswith(".tmp")]


@pytest.mark.slow
def test_disconnect_mid_copy_then_next_deploy_repairs(make_board, tmp_path, capsys):
    vb = make_board()
    old = write_model(tmp_path / "a" / "model.nnm")
    assert run(capsys, "deploy", old, "--port", vb.port)[0] == 0
    new = write_model(tmp_path / "b" / "model.nnm", sizes=(32, 64, 10), seed=3)  # ~11 KiB
    # unplugged part way into the model's copy (opened by mpremote's fs_writefile)
    vb.arm_disconnect(4000, b"model.nnm.tmp','wb')")
    status, out, err = run(capsys, "deploy", new, "--port", vb.port)
    assert status == 1
    assert err.startswith("nanonn: board on %s stopped answering while writing /model.nnm" % vb.port), err
    assert err.count("\n") == 1
    files = board_files(vb.root)
    assert files["model.nnm"] == old.read_bytes()
    partial = files.get("model.nnm.tmp", b"")
    assert 0 < len(partial) < new.stat().st_size  # the copy really was cut short

    deadline = time.monotonic() + 10
    while vb.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    status, out, err = run(capsys, "deploy", new, "--port", vb.port)
    assert status == 0, err
    files = board_files(vb.root)
    assert files["model.nnm"] == new.read_bytes()
    assert "model.nnm.tmp" not in files
    assert "1 file(s) copied" in out  # only the model: the package was intact


def native_modules() -> list[str]:
    from nanonn_tools.deploy import NATIVE

    found = [m for m in PACKAGE if NATIVE.search((MPY / "nanonn" / (m + ".py")).read_text())]
    assert found  # the package has viper kernels (with plain-Python fallbacks)
    return found


@pytest.mark.slow  # two deploys over the virtual board
def test_deploy_removes_modules_the_package_does_not_have(make_board, tmp_path, capsys):
    """Another version's modules in /lib/nanonn (e.g. the flat layout before the subpackages)
    are removed and named; other files there are kept."""
    vb = make_board()
    model = write_model(tmp_path / "model.nnm")
    assert run(capsys, "deploy", model, "--port", vb.port)[0] == 0
    lib = Path(vb.root) / "lib" / "nanonn"
    (lib / "qbuild_old.mpy").write_bytes(b"M\x06")
    (lib / "gone.py").write_text("x = 1\n")
    (lib / "notes.txt").write_text("mine\n")
    status, out, err = run(capsys, "deploy", model, "--port", vb.port)
    assert status == 0, err
    assert "removed /lib/nanonn/gone.py (not a module of this nanonn)" in out
    assert "removed /lib/nanonn/qbuild_old.mpy (not a module of this nanonn)" in out
    assert "0 file(s) copied, %d identical file(s) skipped" % (len(PACKAGE) + 1) in out
    assert set(board_files(vb.root)) == {"model.nnm", "lib/nanonn/notes.txt"} | {
        "lib/nanonn/%s.mpy" % m for m in PACKAGE
    }


@pytest.mark.slow
def test_deploy_copies_the_parts_asked_for_and_keeps_those_on_the_board(make_board, tmp_path, capsys):
    """A float model needs the core part; --with adds parts (and what they need); a later
    deploy keeps the parts already on the board (another program may use them) up to date."""
    vb = make_board()
    model = write_model(tmp_path / "model.nnm")
    status, out, err = run(capsys, "deploy", model, "--port", vb.port)
    assert status == 0, err
    assert "package: %d modules as .mpy (x64) (parts: core)" % len(PACKAGE) in out
    assert set(board_files(vb.root)) == {"model.nnm"} | {"lib/nanonn/%s.mpy" % m for m in PACKAGE}
    status, out, err = run(capsys, "deploy", model, "--port", vb.port, "--with", "quantize")
    assert status == 0, err
    with_quantize = sorted(m[:-3] for m in parts.modules(["quantize"]))
    assert set(with_quantize) > set(INT8_PACKAGE) > set(PACKAGE)
    assert "(parts: core, int8, quantize)" in out
    assert "%d file(s) copied" % (len(with_quantize) - len(PACKAGE)) in out
    assert set(board_files(vb.root)) == {"model.nnm"} | {"lib/nanonn/%s.mpy" % m for m in with_quantize}
    (Path(vb.root) / "lib" / "nanonn" / "int8" / "network.mpy").write_bytes(b"M\x06 another version")
    status, out, err = run(capsys, "deploy", model, "--port", vb.port)
    assert status == 0, err
    assert "(parts: core, int8, quantize; on the board already: int8, quantize)" in out
    assert "copied  /lib/nanonn/int8/network.mpy" in out and "1 file(s) copied" in out
    assert set(board_files(vb.root)) == {"model.nnm"} | {"lib/nanonn/%s.mpy" % m for m in with_quantize}
    status, out, err = run(capsys, "deploy", model, "--port", vb.port, "--with", "all")
    assert status == 0, err
    everything = {"lib/nanonn/%s.mpy" % m[:-3] for m in parts.modules(parts.PARTS)}
    assert set(board_files(vb.root)) == {"model.nnm"} | everything
    status, out, err = run(capsys, "deploy", model, "--port", vb.port, "--with", "int8,bogus")
    assert status == 1
    assert err == (
        "nanonn: parts: expected a comma-separated list of core, int8, quantize, train, save, or all; "
        "got 'int8,bogus'\n"
    )


@pytest.mark.slow
def test_older_mpy_version_falls_back_to_py(make_board, tmp_path, capsys):
    """mpy v6.1 firmware: our native code (v6.3) cannot load; bytecode .mpy can."""
    native = native_modules()
    vb = make_board(mpy=(6, 1), version=(1, 21, 0))
    model = write_model(tmp_path / "model.nnm")
    status, out, err = run(capsys, "deploy", model, "--port", vb.port)
    assert status == 0, err
    assert ".mpy v6.1" in out and "is older than ours (v6.3)" in out
    assert "%s installed as .py" % ", ".join(m.replace("/", ".") for m in native) in out  # module names
    files = board_files(vb.root)
    for m in PACKAGE:
        name = "lib/nanonn/%s.%s" % (m, "py" if m in native else "mpy")
        assert name in files, name
    assert (
        files["lib/nanonn/float32/dense_viper.py"]
        == (MPY / "nanonn" / "float32" / "dense_viper.py").read_bytes()
    )
    assert files["lib/nanonn/float32/network.mpy"][:4] == b"M\x06\x00\x1f"  # bytecode only


@pytest.mark.slow
def test_other_mpy_major_version_installs_py(make_board, tmp_path, capsys):
    vb = make_board(mpy=(7, 0), version=(2, 0, 0))
    model = write_model(tmp_path / "model.nnm")
    status, out, err = run(capsys, "deploy", model, "--port", vb.port)
    assert status == 0, err
    assert "as .py" in out and "installing the package as .py source" in out
    files = board_files(vb.root)
    assert {"lib/nanonn/%s.py" % m for m in PACKAGE} <= set(files)
    assert not [name for name in files if name.endswith(".mpy")]
    assert files["lib/nanonn/float32/network.py"] == (MPY / "nanonn" / "float32" / "network.py").read_bytes()


@pytest.mark.slow
def test_switching_back_to_mpy_removes_stale_py(make_board, tmp_path, capsys):
    root = str(tmp_path / "fs")
    model = write_model(tmp_path / "model.nnm")
    vb = make_board(root=root, mpy=(7, 0), version=(2, 0, 0))
    assert run(capsys, "deploy", model, "--port", vb.port)[0] == 0
    assert (Path(root) / "lib" / "nanonn" / "float32" / "network.py").exists()
    vb.stop()
    vb = make_board(root=root)  # the same flash, newer firmware
    assert run(capsys, "deploy", model, "--port", vb.port)[0] == 0
    files = board_files(root)
    assert not [name for name in files if name.endswith(".py")]
    assert {"lib/nanonn/%s.mpy" % m for m in PACKAGE} <= set(files)


def test_too_old_micropython_is_refused(make_board, tmp_path, capsys):
    vb = make_board(mpy=(5, 0), version=(1, 18, 0))
    status, out, err = run(capsys, "deploy", write_model(tmp_path / "model.nnm"), "--port", vb.port)
    assert status == 1
    assert err == (
        "nanonn: the board runs MicroPython 1.18.0; nanonn needs MicroPython 1.19.0 or newer: "
        "update the firmware (micropython.org/download) and retry\n"
    )
    assert board_files(vb.root) == {}


@pytest.mark.slow
def test_model_too_big_for_the_heap_is_refused(make_board, tmp_path, capsys):
    vb = make_board(heap="160K", flash_size=4 * 1024 * 1024)
    model = write_model(tmp_path / "model.nnm", sizes=(128, 256, 10), seed=4)  # ~140 KiB of weights
    status, out, err = run(capsys, "deploy", model, "--port", vb.port)
    assert status == 1
    assert err.startswith("nanonn: the model cannot fit the board's heap (nanonn.load: the model needs ")
    assert err.count("\n") == 1
    files = board_files(vb.root)
    assert "model.nnm" not in files and "model.nnm.tmp" not in files


@pytest.mark.slow
def test_verify_passes_with_accuracy_and_fails_for_a_wrong_model(make_board, tmp_path, capsys):
    vb = make_board()
    model = write_model(tmp_path / "model.nnm")
    assert run(capsys, "deploy", model, "--port", vb.port)[0] == 0
    X = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    spec = nnm.read(model)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", np.argmax(spec.predict(X.astype(np.float64)), axis=1))
    status, out, err = run(
        capsys,
        "verify",
        model,
        "--data",
        tmp_path / "X.npy",
        "--labels",
        tmp_path / "y.npy",
        "--port",
        vb.port,
    )
    assert status == 0, out + err
    diff = float(out.split("max difference: ")[1].split()[0])
    assert diff <= 1e-4
    assert "agreement: 100.00%" in out and "accuracy: host 100.00%, board 100.00%" in out
    assert "verify: PASS" in out

    wrong = write_model(tmp_path / "wrong" / "model.nnm", seed=9)  # other weights, same name
    status, out, err = run(capsys, "verify", wrong, "--data", tmp_path / "X.npy", "--port", vb.port)
    assert status == 1
    assert "differs from" in out and "verify: FAIL" in out
    assert float(out.split("max difference: ")[1].split()[0]) > 1e-2


@pytest.mark.slow
def test_verify_progress_bar_on_request(make_board, tmp_path, capsys):
    vb = make_board()
    model = write_model(tmp_path / "model.nnm")
    assert run(capsys, "deploy", model, "--port", vb.port)[0] == 0
    np.save(tmp_path / "X.npy", np.zeros((300, 8), dtype=np.float32))
    status, out, err = run(
        capsys, "verify", model, "--data", tmp_path / "X.npy", "--port", vb.port, "--progress"
    )
    assert status == 0, err
    assert "verify [" in err and err.rstrip().endswith("300/300")
    status, out, err = run(capsys, "verify", model, "--data", tmp_path / "X.npy", "--port", vb.port)
    assert err == ""  # not a terminal: no bar


def test_verify_refuses_a_model_not_on_the_board(make_board, tmp_path, capsys):
    vb = make_board()
    model = write_model(tmp_path / "model.nnm")
    np.save(tmp_path / "X.npy", np.zeros((2, 8), dtype=np.float32))
    status, out, err = run(capsys, "verify", model, "--data", tmp_path / "X.npy", "--port", vb.port)
    assert status == 1
    assert err == "nanonn: /model.nnm is not on the board: run `nanonn deploy %s` first\n" % model


@pytest.mark.slow
def test_bench_reports_time_and_heap(make_board, tmp_path, capsys):
    vb = make_board()
    model = write_model(tmp_path / "model.nnm")
    assert run(capsys, "deploy", model, "--port", vb.port)[0] == 0
    status, out, err = run(capsys, "bench", model, "--port", vb.port, "-n", "30")
    assert status == 0, err
    assert "MicroPython 1.29.0, arch x64" in out and "30 inferences" in out
    line = out.split("time per inference: ")[1].splitlines()[0]
    median, lo, hi = [float(part.split()[1]) for part in line.split(", ")]
    assert 0 < lo <= median <= hi
    per_second = float(out.split("inferences per second: ")[1].split()[0])
    assert per_second == pytest.approx(1e6 / median, rel=1e-3)
    assert "heap allocated per inference: median" in out
    assert "peak heap in use:" in out and "model RAM:" in out


@pytest.mark.slow
def test_port_unix_runs_the_local_unix_port(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(connection.UNIX_BOARD_ENV, str(tmp_path / "unixboard"))
    model = write_model(tmp_path / "model.nnm")
    status, out, err = run(capsys, "deploy", model, "--port", "unix")
    assert status == 0, err
    assert (tmp_path / "unixboard" / "model.nnm").read_bytes() == model.read_bytes()
    np.save(tmp_path / "X.npy", np.random.default_rng(1).normal(size=(5, 8)).astype(np.float32))
    assert run(capsys, "verify", model, "--data", tmp_path / "X.npy", "--port", "unix")[0] == 0
    status, out, err = run(capsys, "bench", model, "--port", "unix", "-n", "5")
    assert status == 0 and "inferences per second" in out, err


def test_no_board_and_several_boards(monkeypatch, tmp_path, capsys):
    model = write_model(tmp_path / "model.nnm")
    monkeypatch.setattr(connection, "serial_ports", lambda: [])
    status, out, err = run(capsys, "deploy", model)
    assert status == 1
    assert (
        err.startswith("nanonn: no board found: connect a MicroPython board by USB") and err.count("\n") == 1
    )
    monkeypatch.setattr(connection, "serial_ports", lambda: ["/dev/ttyACM0", "/dev/ttyUSB0"])
    status, out, err = run(capsys, "bench", model, "--port", "auto")
    assert status == 1
    assert err == "nanonn: several boards found (/dev/ttyACM0, /dev/ttyUSB0): pass --port with one of them\n"


def test_missing_and_busy_port(make_board, tmp_path, capsys):
    import serial

    model = write_model(tmp_path / "model.nnm")
    status, out, err = run(capsys, "deploy", model, "--port", "/dev/nanonn-no-such-port")
    assert status == 1 and err.startswith("nanonn: no board at /dev/nanonn-no-such-port: ")
    vb = make_board()
    holder = serial.Serial(vb.port, exclusive=True)
    try:
        status, out, err = run(capsys, "deploy", model, "--port", vb.port)
    finally:
        holder.close()
    assert status == 1
    assert err.startswith("nanonn: port %s is busy" % vb.port) and err.count("\n") == 1


def test_unplugged_while_connecting_says_disconnected(make_board):
    vb = make_board()
    vb.arm_disconnect(3)  # gone before the raw REPL answers
    with pytest.raises(NanonnError) as raised:
        connection.open_connection(vb.port)
    message = str(raised.value)
    assert message.startswith("board on %s disconnected (" % vb.port), message
    assert message.endswith("): plug it in again and retry")


def test_cli_error_is_one_line_without_traceback(tmp_path):
    """The installed `nanonn` command: one line on stderr, exit 1."""
    model = write_model(tmp_path / "model.nnm")
    proc = subprocess.run(
        [tool("nanonn"), "deploy", str(model), "--port", "/dev/nanonn-no-such-port"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("nanonn: no board at ")
    assert "Traceback" not in proc.stderr


def test_board_hash_matches_host_hash_for_every_algorithm(make_board):
    vb = make_board()
    data = bytes(range(256)) * 5 + b"tail"
    (Path(vb.root) / "f.bin").write_bytes(data)
    with connection.open_connection(vb.port) as b:
        for algo in ("sha256", "crc32", "crc32-py"):
            assert b.hashes(["/f.bin", "/missing"], algo) == [connection.host_hash(data, algo), None]
    assert connection.host_hash(data, "sha256") == hashlib.sha256(data).hexdigest()


def test_file_operations_over_mpremotes_transport(make_board):
    """Connection's file operations (mpremote's fs_* plus nanonn's temp file, hash check and
    rename): existing folders and missing files are no error, the board's other errors are
    BoardError with its errno, the old file stays until the checked copy is renamed over it."""
    vb = make_board()
    root = Path(vb.root)
    (root / "old.bin").write_bytes(b"old")
    with connection.open_connection(vb.port) as b:
        b.mkdirs("/a/b")
        b.mkdirs("/a/b")  # exists: no error
        assert (root / "a" / "b").is_dir()
        assert b.listdir({"/", "/a", "/missing"}) == {"/old.bin"}  # files only; a missing folder has none
        b.remove("/a/missing.bin")  # no error
        data = bytes(range(256)) * 9
        seen = []
        b.write_file("/old.bin", data, "sha256", chunk=1000, progress=seen.append, activate=False)
        assert seen == [1000, 2000, 2304]
        assert (root / "old.bin").read_bytes() == b"old" and (root / "old.bin.tmp").read_bytes() == data
        b.activate("/old.bin")
        assert (root / "old.bin").read_bytes() == data and not (root / "old.bin.tmp").exists()
        b.remove("/old.bin")
        assert not (root / "old.bin").exists()
        with pytest.raises(connection.BoardError) as raised:
            b.mkdirs("/a/b/c/d/e/f/g/" + "x" * 300)  # a name too long for the filesystem
        assert raised.value.errno is not None and str(raised.value).startswith("board error while creating ")
        with pytest.raises(connection.BoardError) as raised:
            b.exec("1/0", what="dividing")
        assert str(raised.value) == "board error while dividing: ZeroDivisionError: divide by zero"
        assert raised.value.errno is None


@pytest.mark.slow
def test_frozen_nanonn_needs_frozen_ok(make_board, tmp_path, capsys, monkeypatch):
    """Host logic only: the unix port has no nanonn frozen in, so the probe is replaced."""
    from nanonn_tools import deploy as deploy_mod

    vb = make_board()
    first = write_model(tmp_path / "a" / "model.nnm")
    assert run(capsys, "deploy", first, "--port", vb.port)[0] == 0
    monkeypatch.setattr(deploy_mod, "frozen_package", lambda board: "0.1.0")
    second = write_model(tmp_path / "b" / "model.nnm", seed=5)
    status, out, err = run(capsys, "deploy", second, "--port", vb.port)
    assert status == 1
    assert err.startswith(
        "nanonn: the board's firmware has nanonn 0.1.0 frozen in, which shadows /lib/nanonn"
    )
    status, out, err = run(capsys, "deploy", second, "--port", vb.port, "--frozen-ok")
    assert status == 0, err
    assert "using the frozen nanonn 0.1.0" in out and "copied  /model.nnm" in out
    assert "1 file(s) copied, 0 identical" in out  # the package is not touched
    assert board_files(vb.root)["model.nnm"] == second.read_bytes()


@pytest.mark.slow
def test_deploy_to_a_target_states_the_fit_from_the_measured_figures(make_board, tmp_path, capsys):
    """--target: before the board measures, deploy says what `nanonn info --board` expects,
    with nanonn's import and load transient measured on the emulated board (boards/measured.json)."""
    from nanonn_tools import deploy, info, profiles

    vb = make_board()
    model = write_model(tmp_path / "model.nnm")
    status, out, err = run(capsys, "deploy", model, "--port", vb.port, "--target", "esp32c3")
    assert status == 0, err
    data = model.read_bytes()
    need = info.need(info.stats(nnm.loads(data), len(data)), profiles.load_profile("esp32c3"))
    measured = profiles.measured("esp32c3")
    assert measured is not None and need[("float", "file")] > measured["import_float"]
    assert "expected on esp32c3: about %s of its typical" % deploy._size(need[("float", "file")]) in out
    assert ": fits" in out


def test_unknown_target_lists_the_profiles(tmp_path, capsys):
    status, out, err = run(capsys, "deploy", write_model(tmp_path / "model.nnm"), "--target", "nosuchboard")
    assert status == 1
    assert err.startswith("nanonn: board 'nosuchboard': expected one of ") and "rp2040" in err


def write_int8_model(path: Path, seed=1) -> tuple[Path, np.ndarray]:
    from nanonn_tools.quantize import quantize_model

    float_path = write_model(path.with_name("float-" + path.name), seed=seed)
    X = np.random.default_rng(seed).normal(size=(60, 8)).astype(np.float32)
    spec = nnm.read(float_path)
    assert isinstance(spec, ModelSpec)
    nnm.write(quantize_model(spec, X), path)
    return path, X


@pytest.mark.slow
def test_int8_model_verifies_exactly_and_benches_predict_int8(make_board, tmp_path, capsys):
    vb = make_board()
    model, X = write_int8_model(tmp_path / "q.nnm")
    status, out, err = run(capsys, "deploy", model, "--port", vb.port)
    assert status == 0, err
    assert set(board_files(vb.root)) == {"q.nnm"} | {"lib/nanonn/%s.mpy" % m for m in INT8_PACKAGE}
    assert "(parts: core, int8)" in out
    np.save(tmp_path / "X.npy", X)
    status, out, err = run(capsys, "verify", model, "--data", tmp_path / "X.npy", "--port", vb.port)
    assert status == 0, out + err
    assert "(int8), 60 samples" in out
    assert "max difference: 0 (int8 steps; tolerance 0)" in out and "agreement: 100.00%" in out
    status, out, err = run(capsys, "bench", model, "--port", vb.port, "-n", "20")
    assert status == 0, err
    assert "(int8), predict_int8, 20 inferences" in out


@pytest.mark.slow
def test_int8_verify_fails_on_one_step(make_board, tmp_path, capsys):
    """An int8 model whose board copy has other biases in its last layer fails (tolerance 0)."""
    vb = make_board()
    model, X = write_int8_model(tmp_path / "q.nnm")
    assert run(capsys, "deploy", model, "--port", vb.port)[0] == 0
    spec = nnm.read(model)
    spec.layers[-1].bias = spec.layers[-1].bias + 40000  # shifts the last layer's outputs
    other = tmp_path / "other" / "q.nnm"
    other.parent.mkdir()
    nnm.write(spec, other)
    np.save(tmp_path / "X.npy", X)
    status, out, err = run(capsys, "verify", other, "--data", tmp_path / "X.npy", "--port", vb.port)
    assert status == 1
    assert "verify: FAIL" in out
    assert float(out.split("max difference: ")[1].split()[0]) >= 1


@pytest.mark.slow
def test_unknown_arch_installs_bytecode_mpy_and_native_modules_as_py(make_board, tmp_path, capsys):
    native = native_modules()
    vb = make_board(arch=0)
    model = write_model(tmp_path / "model.nnm")
    status, out, err = run(capsys, "deploy", model, "--port", vb.port)
    assert status == 0, err
    assert "arch unknown" in out and "as bytecode .mpy" in out
    assert "installed as .py (native code)" in out and "pass --target BOARD" in out
    files = board_files(vb.root)
    for m in PACKAGE:
        name = "lib/nanonn/%s.%s" % (m, "py" if m in native else "mpy")
        assert name in files, name
        if m not in native:
            assert files[name][:4] == b"M\x06\x00\x1f"  # bytecode only: no arch in the header


@pytest.mark.slow
def test_target_profile_gives_the_arch_when_the_board_does_not(capsys):
    from nanonn_tools.connection import BoardInfo
    from nanonn_tools.deploy import plan_package
    from nanonn_tools.profiles import load_profile

    info = BoardInfo("micropython", (1, 24, 1), 6 | 3 << 8, "", "rp2", 0, 0, None, "sha256")
    assert info.arch is None
    arch = load_profile("rp2040").mpy_cross_arch
    plan = plan_package(info, arch)
    assert plan.form == ".mpy (%s)" % arch
    header = plan.files["/lib/nanonn/int8/kernels_viper.mpy"][:3]
    assert header[:2] == b"M\x06" and header[2] >> 2 == 4  # armv6m native code, mpy v6.3


@pytest.mark.slow
def test_deploy_progress_bar_on_request(make_board, tmp_path, capsys):
    vb = make_board()
    model = write_model(tmp_path / "model.nnm")
    status, out, err = run(capsys, "deploy", model, "--port", vb.port, "--progress")
    assert status == 0, err
    total = sum(len(v) for v in board_files(vb.root).values())  # everything was copied
    assert err.startswith("\rcopy [") and err.endswith("] %d/%d\n" % (total, total))
    status, out, err = run(capsys, "deploy", model, "--port", vb.port, "--progress")
    assert status == 0 and err == ""  # nothing to copy: no bar


@pytest.mark.slow
def test_deploy_refuses_a_copy_that_shadows_lib(make_board, tmp_path, capsys):
    """`mpremote cp -r mpy/nanonn :` leaves /nanonn, which the board imports before /lib/nanonn."""
    vb = make_board()
    model = write_model(tmp_path / "model.nnm")
    proc = subprocess.run(
        [tool("mpremote"), "connect", vb.port, "cp", "-r", str(MPY / "nanonn"), ":"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    status, out, err = run(capsys, "deploy", model, "--port", vb.port)
    assert status == 1
    assert err == (
        "nanonn: the board imports nanonn from /nanonn, not from /lib/nanonn (it comes first on "
        "sys.path), so it would run that copy: remove it (mpremote rm -r :/nanonn) and deploy again\n"
    )
    assert not [name for name in board_files(vb.root) if not name.startswith("nanonn/")]  # nothing copied
    shutil.rmtree(Path(vb.root) / "nanonn")  # what the message says to do
    status, out, err = run(capsys, "deploy", model, "--port", vb.port)
    assert status == 0, err


def test_deploy_checks_the_model_before_connecting(make_board, tmp_path, capsys):
    vb = make_board()
    bad = tmp_path / "notmodel.nnm"
    bad.write_bytes(b"not a model, just some text of 40 bytes.")
    status, out, err = run(capsys, "deploy", bad, "--port", vb.port)
    assert status == 1 and out == ""  # no "board: ..." line: it did not connect
    assert err == (
        "nanonn: model %s: not a valid .nnm model (magic: expected b'NNM\\x1a', got b'not ')\n" % bad
    )
    assert board_files(vb.root) == {}  # the package was not synced


@pytest.mark.slow
def test_model_ram_is_the_network_and_the_reader_import_is_apart(make_board, tmp_path, capsys):
    """deploy and bench report the loaded network's RAM (what `nanonn info` estimates) and,
    labelled apart, the reader modules `nanonn.load` imports once per boot."""
    import re

    from nanonn_tools import info

    vb = make_board(heap="512K")
    model = write_model(tmp_path / "model.nnm", sizes=(64, 96, 10), seed=2)
    estimate = info.stats(nnm.read(model), model.stat().st_size).ram_float_file  # 32-bit board bytes
    status, out, err = run(capsys, "deploy", model, "--port", vb.port)
    assert status == 0, err
    m = re.search(
        r"^model: /model.nnm, RAM ([\d.]+) KiB \(the loaded network, measured on the board\)", out, re.M
    )
    reader = re.search(
        r"^model reader: RAM ([\d.]+) KiB \(the modules nanonn.load imports, once per boot", out, re.M
    )
    assert m and reader, out
    network = float(m.group(1)) * 1024
    # the x64 port's objects are a little bigger than a 32-bit board's; the reader is not in it
    assert estimate <= network <= 1.2 * estimate, (network, estimate)
    assert float(reader.group(1)) * 1024 > 10000, out  # the reader modules are tens of KiB
    status, out, err = run(capsys, "bench", model, "--port", vb.port, "-n", "3")
    assert status == 0, err
    m = re.search(
        r"model RAM: (\d+) B \(the loaded network\); model reader RAM: (\d+) B \(the modules nanonn.load", out
    )
    assert m, out
    assert estimate <= int(m.group(1)) <= 1.2 * estimate and int(m.group(2)) > 10000, out
