"""Export scikit-learn's bundled iris data set into tests/data/iris.json (run once).

Features are standardised (zero mean, unit variance per column, statistics
stored beside the data); targets are one-hot. The fixture is small enough for
the device tests to read with MicroPython's json module.
"""

import json
import sys
from pathlib import Path
from typing import cast

import numpy as np
from sklearn.datasets import load_iris
from sklearn.utils import Bunch


def main(out: str) -> int:
    data = cast(Bunch, load_iris())  # a Bunch without return_X_y (sklearn does not annotate it)
    x = data.data.astype(np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    xs = (x - mean) / std
    payload = {
        "about": "scikit-learn's bundled iris (150 samples), standardised; made by tools/export_iris.py",
        "mean": [round(float(v), 6) for v in mean],
        "std": [round(float(v), 6) for v in std],
        "classes": list(data.target_names),
        "x": [[round(float(v), 5) for v in row] for row in xs],
        "y": [int(v) for v in data.target],
    }
    Path(out).write_text(json.dumps(payload, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/iris.json"))
