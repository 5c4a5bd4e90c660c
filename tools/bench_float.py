"""`make bench-float` (part of `make bench`): float predict and on-device training
against the seed, wall time and instruction counts, each ratio against its target.

For 784-36-14-10 (leaky_relu, leaky_relu, softmax) and 64-32-16-4 (relu, relu,
softmax) it runs tools/bench_float_device.py under the MicroPython unix port, one
process per mode: the seed (the original nanonn's list-of-floats code on the same
interpreter), nanonn's float predict (the default `Dense`, which keeps its weights decoded
on this heap, and `Dense(cache=False)`) and, on
64-32-16-4, one SGD step in each variant (train with cross-entropy and with mse; fit
with momentum, with mini-batches of 8, with both: per sample). Where valgrind is
installed, each mode runs again under callgrind with 0 and with REPS calls: the
difference is the instructions per call, the figure that holds on a shared machine.
Every output and every step's weights are checked against `nanonn_tools.reference`
(1e-5 relative). Prints a table and the targets; writes out/bench_float.json.

    python tools/bench_float.py [--out out/bench_float.json] [--no-valgrind]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from nanonn_tools import reference

ROOT = Path(__file__).resolve().parent.parent
DEVICE = ROOT / "tools" / "bench_float_device.py"
NETS = [
    ("784-36-14-10", [784, 36, 14, 10], ["leaky_relu", "leaky_relu", "softmax"], ("predict",)),
    ("64-32-16-4", [64, 32, 16, 4], ["relu", "relu", "softmax"], ("predict", "train")),
]
ALPHA = 0.01
RATE = 0.01
PREDICT_MODES = ("seed_predict", "predict", "predict_nocache")
TRAIN_MODES = ("seed_train", "train_ce", "train_mse", "fit_momentum", "fit_batch8", "fit_batch8_momentum")
TOL = 1e-5
# Targets (issue 15): predict >= 15x the seed and <= 2 KB per call on 784-36-14-10;
# an SGD step >= 10x the seed and <= 16 KB per step.
PREDICT_SPEEDUP, PREDICT_BYTES = 15.0, 2048
TRAIN_SPEEDUP, TRAIN_BYTES = 10.0, 16384


class BenchError(Exception):
    pass


def micropython() -> str:
    exe = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which("micropython")
    if exe is None:
        raise BenchError("micropython not found: run it through `make bench`")
    return exe


def prepare(folder: Path, name, sizes, acts, seed) -> tuple[list[dict], dict]:
    layers = reference.random_network(sizes, acts, seed=seed)
    for layer in layers:
        layer["alpha"] = ALPHA
        layer["w"] = layer["w"].astype(np.float32).astype(np.float64)
        layer["b"] = layer["b"].astype(np.float32).astype(np.float64)
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, (8, sizes[0])).astype(np.float32)
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], 8)]
    cfg = {"sizes": sizes, "acts": acts, "alpha": ALPHA, "x": X[0].tolist(), "t": Y[0].tolist()}
    cfg.update(X=X.tolist(), Y=Y.tolist())
    with open(folder / (name + ".f32"), "wb") as f:
        for layer in layers:
            f.write(layer["w"].astype("<f4").tobytes())
            f.write(layer["b"].astype("<f4").tobytes())
    (folder / (name + ".json")).write_text(json.dumps(cfg))
    return layers, cfg


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {"MICROPYPATH": "%s:.frozen" % (ROOT / "mpy"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise BenchError("%s failed:\n%s%s" % (" ".join(cmd[-4:]), proc.stdout[-2000:], proc.stderr[-2000:]))
    return proc


def run_mode(folder: Path, name: str, mode: str, reps: int) -> dict:
    cmd = [micropython(), "-X", "heapsize=8M", str(DEVICE), str(folder), name, mode, str(reps)]
    return json.loads(_run(cmd).stdout.strip().splitlines()[-1])


def instructions(folder: Path, name: str, mode: str, reps: int) -> float:
    """Instructions per call under callgrind: (count with reps calls - with none) / calls."""

    def count(r: int) -> int:
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", micropython()]
        cmd += ["-X", "heapsize=8M", str(DEVICE), str(folder), name, mode, str(r)]
        for line in _run(cmd).stderr.splitlines():
            if "Collected" in line:
                return int(line.split()[-1].replace(",", ""))
        raise BenchError("callgrind printed no instruction count for %s %s" % (name, mode))

    return (count(reps) - count(0)) / (3 * reps)  # the device makes 3 windows of reps calls


def check(layers: list[dict], cfg: dict, mode: str, r: dict) -> list[str]:
    """The mode's output or weights against the float64 reference."""
    problems = []
    if "out" in r:
        want = reference.predict(layers, np.asarray(cfg["x"], dtype=np.float64))
        if not np.allclose(r["out"], want, rtol=TOL, atol=TOL):
            problems.append("%s: output %s != reference %s" % (mode, r["out"], want.tolist()))
        return problems
    loss = "mse" if mode == "train_mse" else "cross_entropy"
    if mode.startswith("fit"):
        batch = 8 if "batch" in mode else 1
        momentum = 0.9 if mode.endswith("momentum") else 0.0
        X, Y = np.asarray(cfg["X"], np.float64), np.asarray(cfg["Y"], np.float64)
        new, velocity = layers, None
        for k in range(0, len(X), batch):
            new, velocity = reference.batch_step(
                new, X[k : k + batch], Y[k : k + batch], loss, RATE, momentum, velocity
            )
    else:
        _, new = reference.train_step(layers, cfg["x"], cfg["t"], loss, RATE)
    for i, layer in enumerate(new):
        if not np.allclose(r["weights"][i], reference.flat_weights(layer), rtol=TOL, atol=TOL):
            problems.append("%s: layer %d weights after the step differ from the reference" % (mode, i))
    return problems


def measure(folder: Path, valgrind: bool) -> tuple[list[dict], list[str]]:
    rows, problems = [], []
    for seed, (name, sizes, acts, parts) in enumerate(NETS):
        layers, cfg = prepare(folder, name, sizes, acts, seed + 1)
        modes = PREDICT_MODES + (TRAIN_MODES if "train" in parts else ())
        for mode in modes:
            big = sizes[0] > 100
            reps = (2 if mode.startswith("seed") else 10) if big else (4 if mode.startswith("seed") else 20)
            if mode.startswith("fit") or mode.endswith("train"):
                reps = max(1, reps // 4)
            r = run_mode(folder, name, mode, reps * 5)
            problems += ["%s %s" % (name, p) for p in check(layers, cfg, mode, r)]
            if valgrind:
                r["instr_per_step"] = instructions(folder, name, mode, reps) / r["steps_per_call"]
            r.pop("out", None)
            r.pop("weights", None)
            rows.append(r)
    return rows, problems


def targets(rows: list[dict]) -> list[dict]:
    """Each target with its wall-time and instruction ratio against the seed."""
    by = {(r["net"], r["mode"]): r for r in rows}
    out = []
    for name, _, _, parts in NETS:
        pairs = [(m, "seed_predict", PREDICT_SPEEDUP) for m in ("predict", "predict_nocache")]
        if "train" in parts:
            pairs += [(m, "seed_train", TRAIN_SPEEDUP) for m in TRAIN_MODES[1:]]
        for mode, seed, want in pairs:
            r, s = by[(name, mode)], by[(name, seed)]
            t = {"net": name, "mode": mode, "target": want, "time_ratio": s["us_per_step"] / r["us_per_step"]}
            if "instr_per_step" in r:
                t["instr_ratio"] = s["instr_per_step"] / r["instr_per_step"]
            limit = (
                TRAIN_BYTES if seed == "seed_train" else (PREDICT_BYTES if name.startswith("784") else None)
            )
            t["bytes"] = r["bytes_per_step"]
            t["bytes_limit"] = limit
            ratio = t.get("instr_ratio", t["time_ratio"])
            t["met"] = ratio >= want and (limit is None or r["bytes_per_step"] <= limit)
            out.append(t)
    return out


def report(rows: list[dict], goals: list[dict]) -> None:
    head = "%-14s %-20s %12s %14s %12s" % ("network", "mode", "us/step", "instr/step", "heap B/step")
    print(head)
    print("-" * len(head))
    for r in rows:
        instr = "%.0f" % r["instr_per_step"] if "instr_per_step" in r else "-"
        print(
            "%-14s %-20s %12.1f %14s %12.0f"
            % (r["net"], r["mode"], r["us_per_step"], instr, r["bytes_per_step"])
        )
    print()
    for t in goals:
        instr = "%.1fx instr" % t["instr_ratio"] if "instr_ratio" in t else "no valgrind"
        limit = " (limit %d)" % t["bytes_limit"] if t["bytes_limit"] else ""
        print(
            "  %-14s %-20s %s, %.1fx time vs seed (target %.0fx); %.0f B/step%s: %s"
            % (
                t["net"],
                t["mode"],
                instr,
                t["time_ratio"],
                t["target"],
                t["bytes"],
                limit,
                "met" if t["met"] else "MISSED",
            )
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "out" / "bench_float.json"))
    parser.add_argument("--no-valgrind", action="store_true", help="wall time only")
    args = parser.parse_args(argv)
    out = Path(args.out)
    folder = out.parent / "bench_float"
    folder.mkdir(parents=True, exist_ok=True)
    valgrind = not args.no_valgrind and shutil.which("valgrind") is not None
    try:
        rows, problems = measure(folder, valgrind)
    except BenchError as exc:
        print("bench_float: %s" % exc)
        return 1
    goals = targets(rows)
    report(rows, goals)
    out.write_text(json.dumps({"results": rows, "targets": goals, "problems": problems}, indent=1))
    print("wrote %s" % out)
    for p in problems:
        print("PROBLEM: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
