"""Host side: simulate a change of sensor on gesture windows, and split them for fine-tuning.

A model trained on one device meets another: the new accelerometer is mounted at
another angle and has another gain. This applies one fixed rotation (roll, pitch,
yaw in degrees, sensor frame) and a gain (and offset, in mg) to every sample of a
gesture CSV, saturating at the +-8 g full scale as a chip does, then writes the
first `--per-class` windows of each label to `--adapt` (the few labelled windows a
user records on the new device) and the rest to `--test` (held out).

    python shift.py IN.csv --adapt adapt.csv --test test.csv [--per-class 4]
        [--roll 30 --pitch 0 --yaw 0 --gain 1.15 --offset 30]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import host_features  # noqa: E402
from make_dataset import write_csv  # noqa: E402

FULL_SCALE_MG = 8 * 1000 - 1  # the drivers' +-8 g range, in milli-g


def rotation(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """The rotation matrix of roll (x), then pitch (y), then yaw (z), in degrees."""
    r, p, y = np.radians([roll, pitch, yaw])
    rx = np.array([[1, 0, 0], [0, np.cos(r), -np.sin(r)], [0, np.sin(r), np.cos(r)]])
    ry = np.array([[np.cos(p), 0, np.sin(p)], [0, 1, 0], [-np.sin(p), 0, np.cos(p)]])
    rz = np.array([[np.cos(y), -np.sin(y), 0], [np.sin(y), np.cos(y), 0], [0, 0, 1]])
    return rz @ ry @ rx


def shift(windows: np.ndarray, roll=30.0, pitch=0.0, yaw=0.0, gain=1.15, offset=30.0) -> np.ndarray:
    """windows (count, n, 3) in mg, rotated, scaled and offset, rounded and saturated."""
    out = np.einsum("ij,wnj->wni", rotation(roll, pitch, yaw), windows.astype(np.float64)) * gain + offset
    return np.clip(np.rint(out), -FULL_SCALE_MG, FULL_SCALE_MG).astype(np.int64)


def split(labels: list[str], per_class: int) -> tuple[list[int], list[int]]:
    """The first `per_class` windows of each label (adapt), and the others (test)."""
    seen: dict[str, int] = {}
    adapt, test = [], []
    for i, label in enumerate(labels):
        seen[label] = seen.get(label, 0) + 1
        (adapt if seen[label] <= per_class else test).append(i)
    return adapt, test


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument("--adapt", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=4)
    parser.add_argument("--roll", type=float, default=30.0)
    parser.add_argument("--pitch", type=float, default=0.0)
    parser.add_argument("--yaw", type=float, default=0.0)
    parser.add_argument("--gain", type=float, default=1.15)
    parser.add_argument("--offset", type=float, default=30.0, help="mg added to every axis")
    args = parser.parse_args(argv)
    windows, labels, _ = host_features.load_windows(args.csv)
    moved = shift(windows, args.roll, args.pitch, args.yaw, args.gain, args.offset)
    adapt, test = split(labels, args.per_class)
    write_csv(args.adapt, [(labels[i], moved[i]) for i in adapt])
    write_csv(args.test, [(labels[i], moved[i]) for i in test])
    print("wrote %s (%d windows) and %s (%d windows)" % (args.adapt, len(adapt), args.test, len(test)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
