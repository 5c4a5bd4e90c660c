"""Host: train an MLP on scikit-learn's bundled 8x8 digits and write what the board needs.

    python train.py [--out build]

Writes into `--out`:
- `digits_mlp.joblib`: the trained `MLPClassifier` (64-32-10, ReLU, softmax), taking
  raw pixels (0..16): the 1/16 input scaling used in training is folded into the
  first layer's weights, so the board feeds pixels as they are;
- `digits_calib.npy`: 200 training images (float32), calibration data for int8;
- `digits_test.bin`: the held-out test images, 64 bytes (pixels 0..16) each;
- `digits_test_labels.bin`: their labels, one byte each;
- `digits_host_pred.bin`: scikit-learn's float64 predictions for them, one byte each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import cast

import joblib
import numpy as np
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier
from sklearn.utils import Bunch

HERE = Path(__file__).resolve().parent
SEED = 0


def split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    k = int(round(n * test_fraction))
    return np.sort(order[k:]), np.sort(order[:k])


def train(out: Path, hidden: int = 32, max_iter: int = 1000) -> dict:
    digits = cast(Bunch, load_digits())  # a Bunch without return_X_y (sklearn does not annotate it)
    x = digits.data.astype(np.float64)
    y = digits.target.astype(np.int64)
    tr, te = split(len(x), 0.2, SEED)
    clf = MLPClassifier(hidden_layer_sizes=(hidden,), activation="relu", max_iter=max_iter, random_state=SEED)
    clf.fit(x[tr] / 16.0, y[tr])
    clf.coefs_[0] = clf.coefs_[0] / 16.0  # fold the input scaling: the model takes raw pixels
    pred = clf.predict(x[te])
    pred = np.asarray(pred)
    accuracy = float(np.mean(pred == y[te]))
    calib = x[tr][np.random.default_rng(SEED + 1).choice(len(tr), 200, replace=False)].astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(clf, out / "digits_mlp.joblib")
    np.save(out / "digits_calib.npy", calib)
    (out / "digits_test.bin").write_bytes(x[te].astype(np.uint8).tobytes())
    (out / "digits_test_labels.bin").write_bytes(y[te].astype(np.uint8).tobytes())
    (out / "digits_host_pred.bin").write_bytes(pred.astype(np.uint8).tobytes())
    print(
        "host: digits %d train / %d test, MLP 64-%d-10, float accuracy %.4f"
        % (len(tr), len(te), hidden, accuracy)
    )
    return {"accuracy": accuracy, "test": len(te), "train": len(tr)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "build")
    parser.add_argument("--hidden", type=int, default=32)
    args = parser.parse_args(argv)
    train(args.out, args.hidden)
    return 0


if __name__ == "__main__":
    sys.exit(main())
