"""Host side: pull the recorded gestures, extract features, train, convert to int8, deploy.

    python train.py --csv data/gesture_sample.csv --out build          # local CSV (unix port)
    python train.py --port /dev/ttyUSB0 --out build --deploy          # a board: pull, train, deploy

1. With `--port`, copies `gesture.csv` from the board with `mpremote cp`.
2. Computes the 21 integer features per window (`host_features.py`, the numpy twin
   of the device's `features.py`).
3. Splits the windows (stratified, seeded), standardises the features with the
   training part's statistics, trains a scikit-learn `MLPClassifier` (one ReLU
   hidden layer, softmax output) and prints train and test accuracy.
4. Saves it (`gesture_mlp.joblib`) and converts it with `nanonn convert` to a float32
   model (`gesture_f32.nnm`) and to an int8 model (`gesture_int8.nnm`) quantized with
   the standardised training windows as calibration data; writes `gesture_meta.json`
   (classes, window, rate, feature names, scaler). Then runs both models with the
   device package (here on CPython) on the test windows: the float32 model must give
   scikit-learn's probabilities, the int8 one is reported by accuracy and agreement.
5. With `--deploy`, `nanonn deploy`s the int8 model (which installs the nanonn package
   as `.mpy` for the board's architecture) and copies the device scripts and the meta
   file with mpremote.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.neural_network import MLPClassifier

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "mpy"))

import host_features  # noqa: E402

from nanonn_tools.cli import main as nanonn  # noqa: E402

DEVICE_FILES = ("imu.py", "sensor.py", "features.py", "record.py", "classify.py")
RATE_HZ = 50


def mpremote(port: str, *args: str) -> None:
    cmd = [str(Path(sys.executable).parent / "mpremote"), "connect", port, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(
            "mpremote %s failed (exit %d): %s" % (" ".join(args), proc.returncode, proc.stderr.strip())
        )


def deploy(port: str, out: Path) -> None:
    """`nanonn deploy` the int8 model (it installs the nanonn package too), then copy
    the device scripts and the meta file with mpremote."""
    if nanonn(["deploy", str(out / "gesture_int8.nnm"), "--port", port]) != 0:
        raise SystemExit("nanonn deploy to %s failed" % port)
    files = [str(HERE / f) for f in DEVICE_FILES] + [str(out / "gesture_meta.json")]
    mpremote(port, "cp", *files, ":")
    print("deployed the int8 model, nanonn and %d files to %s" % (len(files), port))


def split(labels: list[str], test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split: indices of the training and test windows."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in sorted(set(labels)):
        idx = np.array([i for i, v in enumerate(labels) if v == label])
        rng.shuffle(idx)
        k = max(1, int(round(len(idx) * test_fraction))) if len(idx) > 1 else 0
        test.extend(idx[:k])
        train.extend(idx[k:])
    return np.sort(np.array(train)), np.sort(np.array(test, dtype=int))


def device_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    """Outputs of a .nnm model run by the device package (on CPython)."""
    import nanonn

    net = nanonn.load(str(path))
    return np.array([list(net.predict([float(v) for v in row])) for row in x])


def convert(out: Path) -> None:
    mlp = str(out / "gesture_mlp.joblib")
    for args in (
        [mlp, "-o", str(out / "gesture_f32.nnm")],
        [
            mlp,
            "-o",
            str(out / "gesture_int8.nnm"),
            "--quantize",
            "int8",
            "--calibration",
            str(out / "calib.npy"),
        ],
    ):
        # The .joblib is our own, made just above: trusted (unpickling runs code).
        trust = ["--trust-code"] if args[0].endswith(".joblib") else []
        if nanonn(["convert", *args, *trust]) != 0:
            raise SystemExit("nanonn convert %s failed" % " ".join(args))


def train(csv: Path, out: Path, hidden: int = 16, seed: int = 0, test_fraction: float = 0.25) -> dict:
    windows, labels, _ = host_features.load_windows(csv)
    if windows.shape[0] < 8:
        raise SystemExit("%s: expected at least 8 windows to train on, got %d" % (csv, windows.shape[0]))
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise SystemExit("%s: expected at least 2 gestures, got %s" % (csv, classes))
    feats = host_features.features(windows).astype(np.float64)
    y = np.array([classes.index(v) for v in labels])
    tr, te = split(labels, test_fraction, seed)
    mean = feats[tr].mean(axis=0)
    scale = feats[tr].std(axis=0)
    scale[scale == 0] = 1.0
    x = (feats - mean) / scale
    clf = MLPClassifier(
        hidden_layer_sizes=(hidden,),
        activation="relu",
        solver="lbfgs",
        alpha=1e-2,
        max_iter=2000,
        random_state=seed,
    )
    clf.fit(x[tr], y[tr])
    train_acc = float(np.mean(clf.predict(x[tr]) == y[tr]))
    test_acc = float(np.mean(clf.predict(x[te]) == y[te])) if len(te) else float("nan")
    meta = {
        "classes": classes,
        "window": int(windows.shape[1]),
        "rate_hz": RATE_HZ,
        "features": list(host_features.FEATURES),
        "mean": [float(v) for v in mean],
        "scale": [float(v) for v in scale],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "gesture_meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    joblib.dump(clf, out / "gesture_mlp.joblib")
    np.save(out / "calib.npy", x[tr].astype(np.float32))
    convert(out)
    check = te if len(te) else tr
    theirs = np.asarray(clf.predict_proba(x[check]))
    f32 = device_outputs(out / "gesture_f32.nnm", x[check])
    q8 = device_outputs(out / "gesture_int8.nnm", x[check])
    diff = float(np.abs(f32 - theirs).max())
    agree_f32 = float(np.mean(f32.argmax(axis=1) == theirs.argmax(axis=1)))
    agree_q8 = float(np.mean(q8.argmax(axis=1) == theirs.argmax(axis=1)))
    acc_q8 = float(np.mean(q8.argmax(axis=1) == y[check]))
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    for t, p in zip(y[te], clf.predict(x[te])):
        confusion[t, p] += 1
    print("windows: %d (%s), %d train / %d test" % (len(labels), ", ".join(classes), len(tr), len(te)))
    print(
        "features: %d per window; network %d-%d-%d" % (feats.shape[1], feats.shape[1], hidden, len(classes))
    )
    print("accuracy: train %.3f, test %.3f" % (train_acc, test_acc))
    print("test confusion (rows: recorded, columns: predicted):")
    for i, c in enumerate(classes):
        print("  %-7s %s" % (c, " ".join("%3d" % v for v in confusion[i])))
    print(
        "float32 .nnm vs scikit-learn on %d windows: max |p diff| %.2e, same class %.3f"
        % (len(check), diff, agree_f32)
    )
    print(
        "int8 .nnm on %d windows: accuracy %.3f, same class as scikit-learn %.3f"
        % (len(check), acc_q8, agree_q8)
    )
    print("wrote %s, %s" % (out / "gesture_meta.json", out / "gesture_int8.nnm"))
    return {
        "train_accuracy": train_acc,
        "test_accuracy": test_acc,
        "max_prob_diff": diff,
        "agreement": agree_f32,
        "int8_accuracy": acc_q8,
        "int8_agreement": agree_q8,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--csv", type=Path, help="a local gesture CSV (default: pulled from --port)")
    parser.add_argument(
        "--port", help="the board's serial port for mpremote (pull, and deploy with --deploy)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "build" / "gesture",
        help="output folder (default: build/gesture at the repository root)",
    )
    parser.add_argument("--deploy", action="store_true", help="copy the device scripts and model to --port")
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    csv = args.csv
    if csv is None:
        if args.port is None:
            parser.error("give --csv FILE or --port PORT (to pull gesture.csv from the board)")
        args.out.mkdir(parents=True, exist_ok=True)
        csv = args.out / "gesture.csv"
        mpremote(args.port, "cp", ":gesture.csv", str(csv))
        print("pulled %s from %s" % (csv, args.port))
    train(csv, args.out, hidden=args.hidden, seed=args.seed)
    if args.deploy:
        if args.port is None:
            parser.error("--deploy needs --port")
        deploy(args.port, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
