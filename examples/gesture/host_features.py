"""Host side of the gesture data: read the recorded CSV, compute the device's features with numpy.

`features()` is the numpy twin of `features.Extractor.extract` (device): the same
integer formulas (see the table in `features.py`), vectorised over windows. The
two must agree exactly; `tests/test_examples.py` checks it on the sample data.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

HEADER = "window,label,ax_mg,ay_mg,az_mg"
NAMES = ("mean", "std", "min", "max", "rms", "zc", "mad")
AXES = ("x", "y", "z")
FEATURES = tuple(a + "_" + n for a in AXES for n in NAMES)
CLIP_MG = 16000


class DataError(ValueError):
    """The recorded CSV is not what the pipeline expects."""


def load_windows(path: str | Path, n: int | None = None) -> tuple[np.ndarray, list[str], list[int]]:
    """Windows of a gesture CSV: (windows, n, 3) int64 mg, their labels and their ids.

    Every window must hold `n` samples (default: as many as the first) of one label.
    """
    path = Path(path)
    lines = path.read_text().splitlines()
    if not lines or lines[0].strip() != HEADER:
        raise DataError("%s header: expected %r, got %r" % (path, HEADER, lines[0] if lines else ""))
    ids: list[int] = []
    labels: list[str] = []
    samples: list[list[list[int]]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.strip().split(",")
        if len(parts) != 5:
            raise DataError("%s line %d: expected 5 fields (%s), got %d" % (path, number, HEADER, len(parts)))
        try:
            window = int(parts[0])
            xyz = [int(parts[2]), int(parts[3]), int(parts[4])]
        except ValueError as exc:
            raise DataError("%s line %d: expected integers, got %r (%s)" % (path, number, line, exc)) from exc
        if not ids or ids[-1] != window:
            if window in ids:
                raise DataError(
                    "%s line %d: window %d appears twice, not contiguous" % (path, number, window)
                )
            ids.append(window)
            labels.append(parts[1])
            samples.append([])
        elif labels[-1] != parts[1]:
            raise DataError(
                "%s line %d: window %d label: expected %r (its first row), got %r"
                % (path, number, window, labels[-1], parts[1])
            )
        samples[-1].append(xyz)
    if not ids:
        raise DataError("%s: expected at least one window, got none" % path)
    if n is None:
        n = len(samples[0])
    for window, rows in zip(ids, samples):
        if len(rows) != n:
            raise DataError("%s window %d: expected %d samples, got %d" % (path, window, n, len(rows)))
    return np.array(samples, dtype=np.int64), labels, ids


def _isqrt(values: np.ndarray) -> np.ndarray:
    return np.array([math.isqrt(int(v)) for v in values.ravel()], dtype=np.int64).reshape(values.shape)


def features(windows: np.ndarray) -> np.ndarray:
    """(windows, n, 3) int mg -> (windows, 21) int64 features in FEATURES order."""
    if windows.ndim != 3 or windows.shape[2] != 3:
        raise DataError("windows: expected shape (count, n, 3), got %s" % (windows.shape,))
    n = windows.shape[1]
    v = np.clip(windows.astype(np.int64), -CLIP_MG, CLIP_MG)  # (w, n, 3)
    mean = v.sum(axis=1) // n  # (w, 3)
    d = v - mean[:, None, :]
    std = _isqrt((d * d).sum(axis=1) // n)
    rms = _isqrt((v * v).sum(axis=1) // n)
    neg = d < 0
    zc = (neg[:, 1:, :] != neg[:, :-1, :]).sum(axis=1)
    mad = np.abs(np.diff(v, axis=1)).sum(axis=1) // (n - 1)
    per_axis = np.stack([mean, std, v.min(axis=1), v.max(axis=1), rms, zc, mad], axis=2)  # (w, 3, 7)
    return per_axis.reshape(len(windows), len(FEATURES))
