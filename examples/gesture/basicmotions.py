"""Host side: real accelerometer recordings for the gesture pipeline, from BasicMotions.

BasicMotions (UEA/UCR multivariate archive): a smartwatch's 3-D accelerometer and
gyroscope, 10 samples a second for 10 s, while standing, walking, running and
playing badminton; 40 training and 40 test series. The `aeon` wheel on PyPI ships it
(`aeon/datasets/data/BasicMotions/*.ts`): this script downloads that one pinned wheel
without its dependencies (`pip download --no-deps aeon==1.0.0`, checked against its
sha256 in requirements-extras.txt; cached in the output folder), reads the two files
straight out of the zip (aeon is never installed) and writes the accelerometer
channels as gesture CSVs (`window,label,ax_mg,ay_mg,az_mg`, one window of 100
samples per series), which replay through the real IMU drivers like recordings.

The series have zero mean at rest (gravity removed by the watch); their unit is taken
as m/s^2 and converted to milli-g (values past the drivers' +-8 g full scale saturate).

    python basicmotions.py --out build      # build/basicmotions_train.csv, build/basicmotions_test.csv
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_dataset import write_csv  # noqa: E402

REQUIREMENTS = HERE.parent / "requirements-extras.txt"
MEMBER = "aeon/datasets/data/BasicMotions/BasicMotions_%s.ts"
G = 9.80665
FULL_SCALE_MG = 8 * 1000 - 1


def pinned() -> tuple[str, str]:
    """(version, sha256) of aeon pinned in examples/requirements-extras.txt."""
    for line in REQUIREMENTS.read_text().splitlines():
        if line.startswith("aeon=="):
            spec, _, digest = line.partition(" --hash=sha256:")
            return spec.split("==", 1)[1].strip(), digest.strip()
    raise SystemExit("%s: expected a line `aeon==VERSION --hash=sha256:DIGEST`" % REQUIREMENTS)


def wheel(cache: Path) -> Path:
    """The pinned aeon wheel in `cache`, downloaded (without dependencies) if absent."""
    version, digest = pinned()
    path = cache / ("aeon-%s-py3-none-any.whl" % version)
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += ["aeon==%s" % version, "-d", str(cache)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not path.exists():
            raise SystemExit("pip download aeon==%s failed: %s" % (version, proc.stderr.strip()[-500:]))
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != digest:
        raise SystemExit("%s sha256: expected %s, got %s" % (path, digest, got))
    return path


def read_ts(text: str) -> tuple[np.ndarray, list[str]]:
    """A .ts file's series (count, dimensions, length) and labels."""
    series, labels = [], []
    data = False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower() == "@data":
            data = True
            continue
        if not data:
            continue
        *dims, label = line.split(":")
        series.append([[float(v) for v in d.split(",")] for d in dims])
        labels.append(label)
    return np.array(series), labels


def windows_mg(series: np.ndarray) -> np.ndarray:
    """The accelerometer channels (the first three) as (count, length, 3) milli-g integers."""
    acc = np.transpose(series[:, :3, :], (0, 2, 1)) / G * 1000.0
    return np.clip(np.rint(acc), -FULL_SCALE_MG, FULL_SCALE_MG).astype(np.int64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "build")
    args = parser.parse_args(argv)
    with zipfile.ZipFile(wheel(args.out / "aeon")) as z:
        for part in ("TRAIN", "TEST"):
            series, labels = read_ts(z.read(MEMBER % part).decode())
            out = args.out / ("basicmotions_%s.csv" % part.lower())
            write_csv(out, list(zip([label.lower() for label in labels], windows_mg(series))))
            print("wrote %s: %d windows of %d samples" % (out, len(labels), series.shape[2]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
