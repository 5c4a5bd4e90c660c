"""The digits demo: train on the host, convert to int8, run on the board, report.

    python run.py                      # the unix port as the board (what `make demo` runs)
    python run.py --port /dev/ttyACM0  # a real board (mpremote)

Steps: train an MLPClassifier on scikit-learn's bundled 8x8 digits (`train.py`);
`nanonn convert` it to a float32 `.nnm`, to an int8 `.nnm` quantized with 200 training
images as calibration data, and to a module `digits_model.py` (the frozen-module
variant); run `on_board.py` on the board, which prints accuracy, agreement with the
host's float predictions, int8 vs float32 agreement and inferences per second.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import train  # noqa: E402

from nanonn_tools.cli import main as nanonn  # noqa: E402

BOARD_FILES = (
    "digits_model.py",
    "digits_test.bin",
    "digits_test_labels.bin",
    "digits_host_pred.bin",
)


def _bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def convert(build: Path) -> None:
    mlp = str(build / "digits_mlp.joblib")
    steps = [
        [mlp, "-o", str(build / "digits_f32.nnm")],
        [
            mlp,
            "-o",
            str(build / "digits_int8.nnm"),
            "--quantize",
            "int8",
            "--calibration",
            str(build / "digits_calib.npy"),
        ],
        [str(build / "digits_int8.nnm"), "-o", str(build / "digits_model.py")],
    ]
    for args in steps:
        # The .joblib is our own, made just above: trusted (unpickling runs code).
        trust = ["--trust-code"] if args[0].endswith(".joblib") else []
        if nanonn(["convert", *args, *trust]) != 0:
            raise SystemExit("nanonn convert %s failed" % " ".join(args))


def run_unix(build: Path) -> str:
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([str(ROOT / "mpy"), str(build), ".frozen"]))
    cmd = [_bin("micropython"), "-X", "heapsize=2M", str(HERE / "on_board.py"), str(build)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit("on_board.py failed on the unix port:\n%s%s" % (proc.stdout, proc.stderr))
    return proc.stdout


def run_board(build: Path, port: str) -> str:
    """`nanonn deploy` both models (the first also installs the nanonn package), copy the
    module variant and the test set with mpremote, run on_board.py there."""
    for model in ("digits_f32.nnm", "digits_int8.nnm"):
        if nanonn(["deploy", str(build / model), "--port", port]) != 0:
            raise SystemExit("nanonn deploy %s to %s failed" % (model, port))
    mp = [_bin("mpremote"), "connect", port]
    files = [str(build / f) for f in BOARD_FILES]
    proc = subprocess.run(mp + ["cp", *files, ":"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit("mpremote cp failed: %s" % proc.stderr.strip())
    proc = subprocess.run(mp + ["run", str(HERE / "on_board.py")], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit("on_board.py failed on %s:\n%s%s" % (port, proc.stdout, proc.stderr))
    return proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--port", default="unix", help="the board for mpremote, or `unix` (default)")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "build" / "digits",
        help="output folder (default: build/digits at the repository root)",
    )
    args = parser.parse_args(argv)
    host = train.train(args.out)
    convert(args.out)
    out = run_unix(args.out) if args.port == "unix" else run_board(args.out, args.port)
    lines = out.splitlines()
    result = json.loads(lines[-1][len("RESULT ") :]) if lines and lines[-1].startswith("RESULT ") else None
    if result is None:
        raise SystemExit("on_board.py printed no RESULT line:\n" + out)
    print("\n".join(line for line in lines if not line.startswith("RESULT ")))
    q = result["int8"]
    print(
        "\ndigits on %s: int8 accuracy %.4f (host float %.4f), agreement with the host %.4f, %.0f inferences/s"
        % (
            "the unix port" if args.port == "unix" else args.port,
            q["accuracy"],
            host["accuracy"],
            q["agree_host"],
            q["per_s"],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
