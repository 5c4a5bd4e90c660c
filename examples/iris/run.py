"""Iris both ways: trained on the host and run on the board, and trained on the board.

    python run.py                      # the unix port as the board
    python run.py --port /dev/ttyUSB0  # a real board (mpremote)

1. `train_host.py`: scikit-learn MLPClassifier 4-8-3 -> `build/iris/iris_mlp.joblib`, and the
   seeded split `build/iris/iris_data.json`.
2. `nanonn convert build/iris/iris_mlp.joblib --trust-code -o build/iris/iris.nnm`.
3. On the board: `classify.py` (the converted model on the test flowers), then
   `train_board.py` (the same 4-8-3 network trained from scratch by nanonn's `fit`).
4. Prints both test accuracies side by side.
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

import train_host  # noqa: E402

from nanonn_tools.cli import main as nanonn  # noqa: E402


def _bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def on_board(script: str, build: Path, port: str) -> dict:
    """Run a device script on the unix port (files in `build`) or on a board; its RESULT."""
    if port == "unix":
        env = dict(os.environ, MICROPYPATH=os.pathsep.join([str(ROOT / "mpy"), ".frozen"]))
        cmd = [_bin("micropython"), str(HERE / script), str(build)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    else:
        proc = subprocess.run(
            [_bin("mpremote"), "connect", port, "run", str(HERE / script)], capture_output=True, text=True
        )
    if proc.returncode != 0:
        raise SystemExit("%s failed on %s:\n%s%s" % (script, port, proc.stdout, proc.stderr))
    lines = proc.stdout.splitlines()
    print("\n".join(line for line in lines if not line.startswith("RESULT ")))
    results = [line for line in lines if line.startswith("RESULT ")]
    if len(results) != 1:
        raise SystemExit("%s: expected one RESULT line, got %d:\n%s" % (script, len(results), proc.stdout))
    return json.loads(results[0][len("RESULT ") :])


def deploy(build: Path, port: str) -> None:
    """`nanonn deploy` the model (it installs the nanonn package too), then copy the data."""
    if nanonn(["deploy", str(build / "iris.nnm"), "--port", port]) != 0:
        raise SystemExit("nanonn deploy to %s failed" % port)
    proc = subprocess.run(
        [_bin("mpremote"), "connect", port, "cp", str(build / "iris_data.json"), ":"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit("mpremote cp iris_data.json failed: %s" % proc.stderr.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--port", default="unix", help="the board for mpremote, or `unix` (default)")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "build" / "iris",
        help="output folder (default: build/iris at the repository root)",
    )
    args = parser.parse_args(argv)
    host = train_host.train(args.out)
    # The .joblib is our own, made just above: trusted (unpickling runs code).
    mlp = str(args.out / "iris_mlp.joblib")
    if nanonn(["convert", mlp, "-o", str(args.out / "iris.nnm"), "--trust-code"]) != 0:
        raise SystemExit("nanonn convert failed")
    if args.port != "unix":
        deploy(args.out, args.port)
    ran = on_board("classify.py", args.out, args.port)
    trained = on_board("train_board.py", args.out, args.port)
    print()
    print(
        "iris test accuracy (%d flowers)        host   board"
        % len(json.loads((args.out / "iris_data.json").read_text())["y_test"])
    )
    print(
        "trained on the host (scikit-learn)     %.4f %.4f" % (host["accuracy"], ran["host_trained_accuracy"])
    )
    print("trained on the board (nanonn fit)        -    %.4f" % trained["board_trained_accuracy"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
