"""Host: train a scikit-learn MLPClassifier on iris and write what the board needs.

    python train_host.py [--out build]

Writes into `--out`:
- `iris_mlp.joblib`: the trained `MLPClassifier` (4-8-3, ReLU, softmax) taking raw
  measurements in cm: the standardisation used in training is folded into the first
  layer (w' = w / std, b' = b - sum(w * mean / std)), so no scaler is needed on the board;
- `iris_data.json`: the seeded stratified split (105 train / 45 test) as raw
  measurements and labels, for the board (on-board training and evaluation).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import cast

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.neural_network import MLPClassifier
from sklearn.utils import Bunch

HERE = Path(__file__).resolve().parent
SEED = 0


def split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified: the same fraction of each class goes to the test part."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        k = int(round(len(idx) * test_fraction))
        test.extend(idx[:k])
        train.extend(idx[k:])
    return np.sort(np.array(train)), np.sort(np.array(test))


def train(out: Path, hidden: int = 8) -> dict:
    iris = cast(Bunch, load_iris())  # a Bunch without return_X_y (sklearn does not annotate it)
    x = iris.data.astype(np.float64)
    y = iris.target.astype(np.int64)
    tr, te = split(y, 0.3, SEED)
    mean, std = x[tr].mean(axis=0), x[tr].std(axis=0)
    clf = MLPClassifier(hidden_layer_sizes=(hidden,), activation="relu", max_iter=2000, random_state=SEED)
    clf.fit((x[tr] - mean) / std, y[tr])
    w, b = clf.coefs_[0], clf.intercepts_[0]  # w: (inputs, units)
    clf.coefs_[0] = w / std[:, None]
    clf.intercepts_[0] = b - (mean / std) @ w
    accuracy = float(np.mean(clf.predict(x[te]) == y[te]))
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(clf, out / "iris_mlp.joblib")
    data = {
        "about": "scikit-learn's bundled iris, raw measurements (cm); split by examples/iris/train_host.py",
        "classes": [str(c) for c in iris.target_names],
        "features": [str(f) for f in iris.feature_names],
        "x_train": x[tr].tolist(),
        "y_train": y[tr].tolist(),
        "x_test": x[te].tolist(),
        "y_test": y[te].tolist(),
    }
    (out / "iris_data.json").write_text(json.dumps(data) + "\n")
    print(
        "host: iris %d train / %d test, MLPClassifier 4-%d-3, test accuracy %.4f"
        % (len(tr), len(te), hidden, accuracy)
    )
    return {"accuracy": accuracy}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "build")
    args = parser.parse_args(argv)
    train(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
