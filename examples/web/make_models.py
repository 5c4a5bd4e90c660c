"""Host: the digits models of the web page, made as `make demo` makes them.

    python make_models.py [--out DIR]

Trains the 64-32-10 MLP on scikit-learn's 8x8 digits (`examples/digits/train.py`) and
converts it with `nanonn convert` to `digits_f32.nnm` and `digits_int8.nnm` (int8
calibrated on 200 training images), in `--out` (default: build/web at the repository
root, which `make web` serves with the page). Skips the work when both models exist.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "examples" / "digits"))

import run as digits_run  # noqa: E402  (examples/digits/run.py: train + convert)

MODELS = ("digits_f32.nnm", "digits_int8.nnm")


def make(out: Path, force: bool = False) -> list[Path]:
    """The page's two models in `out` (trained and converted unless present)."""
    paths = [out / name for name in MODELS]
    if force or not all(p.is_file() for p in paths):
        digits_run.train.train(out)
        digits_run.convert(out)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "web", help="output folder")
    parser.add_argument("--force", action="store_true", help="retrain even if the models exist")
    args = parser.parse_args(argv)
    for path in make(args.out, args.force):
        print("%s: %d bytes" % (path, path.stat().st_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
