"""`make bench`: speed and memory of nanonn's inference paths, all measured in one run.

For each network it measures, under the MicroPython unix port (one process per
network and path, tools/bench_device.py): the float path (Network.predict), the
int8 viper path (predict_int8, and predict with float in/out), the int8
plain-Python fallback, and a naive baseline written like the original nanonn; then
the same int8 network in plain C compiled here with `gcc -O2` (the target's
reference; x86-64 GCC vectorizes at -O2) and, for information, with
`-O2 -fno-tree-vectorize` (scalar, like the boards' cores). Every int8 output is
checked against the numpy oracle. Prints a table and writes out/bench.json.

Where valgrind is installed it also counts instructions per inference (the
figures that hold on a shared, noisy machine): `valgrind --tool=callgrind` on
the interpreter running 2N inferences minus the same run with N, divided by N
(tools/bench_device.py's CALLS argument; the C program's argument likewise),
and prints each int8 ratio to scalar C (-O2 -fno-tree-vectorize) against its
target. The commands are printed as they run.

    python tools/bench.py [--out out/bench.json]
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from nanonn_tools import reference
from nanonn_tools.model import DenseSpec, ModelSpec
from nanonn_tools.quantize import quantize_model

ROOT = Path(__file__).resolve().parent.parent
NETS = [
    ("784-36-14-10", [784, 36, 14, 10], ["leaky_relu", "leaky_relu", "softmax"]),
    ("64-32-16-4", [64, 32, 16, 4], ["relu", "relu", "softmax"]),
    ("4-10-10-3", [4, 10, 10, 3], ["tanh", "tanh", "softmax"]),
]
PATHS = ["naive", "float", "int8_python", "int8_viper", "int8_viper_float"]
ICOUNT_PATHS = ["int8_viper", "int8_viper_float"]  # instructions counted under valgrind
ICOUNT_CALLS = 100  # inferences per counted run (the C program: 1000)
# int8 predict_int8 instructions per inference at most this many times scalar C -O2 (issue 15)
ICOUNT_TARGETS = {"784-36-14-10": 2.0, "64-32-16-4": 3.0}
ALPHA = 0.01
ACT_CODES = {"linear": 0, "relu": 0, "leaky_relu": 1, "sigmoid": 2, "tanh": 2, "softplus": 2, "softmax": 3}

C_RUNTIME = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
    int n, u, pre_zp, lo, hi, act, out_zp, sp, sn;
    const int8_t *w; const int32_t *acc0, *mult; const int8_t *shift;
    int32_t mp, mn; const int8_t *lut; const int32_t *exp_table; int8_t *y;
} layer_t;

/* TFLite MultiplyByQuantizedMultiplier (double rounding) */
static inline int32_t mbqm(int32_t x, int32_t m, int s) {
    int left = s > 0 ? s : 0, right = s > 0 ? 0 : -s;
    int64_t ab = (int64_t)(x * (1 << left)) * m;
    int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    int32_t hi = (int32_t)((ab + nudge) / (1ll << 31));
    int32_t mask = (int32_t)((1ll << right) - 1);
    int32_t rem = hi & mask, thr = (mask >> 1) + (hi < 0);
    return (hi >> right) + (rem > thr);
}

static void run_layer(const layer_t *L, const int8_t *x) {
    int8_t *y = L->y;
    for (int u = 0; u < L->u; u++) {
        const int8_t *w = L->w + u * L->n;
        int32_t acc = L->acc0[u];
        for (int i = 0; i < L->n; i++) acc += w[i] * x[i];
        int32_t v = mbqm(acc, L->mult[u], L->shift[u]) + L->pre_zp;
        y[u] = (int8_t)(v < L->lo ? L->lo : v > L->hi ? L->hi : v);
    }
    if (L->act == 1) {
        for (int u = 0; u < L->u; u++) {
            int32_t d = y[u] - L->pre_zp;
            int32_t v = L->out_zp + (d >= 0 ? mbqm(d, L->mp, L->sp) : mbqm(d, L->mn, L->sn));
            y[u] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
        }
    } else if (L->act == 2) {
        for (int u = 0; u < L->u; u++) y[u] = L->lut[y[u] + 128];
    } else if (L->act == 3) {
        int32_t top = -128, s = 0, e[L->u];
        for (int u = 0; u < L->u; u++) if (y[u] > top) top = y[u];
        for (int u = 0; u < L->u; u++) { e[u] = L->exp_table[top - y[u]]; s += e[u]; }
        for (int u = 0; u < L->u; u++) {
            int32_t q = ((e[u] << 8) + (s >> 1)) / s - 128;
            y[u] = (int8_t)(q > 127 ? 127 : q);
        }
    }
}

__attribute__((noinline)) static const int8_t *infer(const int8_t *x) {
    for (int k = 0; k < NLAYERS; k++) { run_layer(&LAYERS[k], x); x = LAYERS[k].y; }
    return x;
}

static double now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc > 1) { /* N inferences and nothing else: instruction counts (tools/bench.py) */
        long n = atol(argv[1]); volatile int sink = 0;
        for (long r = 0; r < n; r++) sink += infer(INPUT)[0];
        return 0;
    }
    const int8_t *out = infer(INPUT);
    printf("{\"out\": [");
    for (int u = 0; u < OUTPUTS; u++) printf("%s%d", u ? ", " : "", out[u]);
    long n = 1; double dt; volatile int sink = 0;
    for (;;) {
        double t = now();
        for (long r = 0; r < n; r++) sink += infer(INPUT)[0];
        dt = now() - t;
        if (dt > 0.25) break;
        n *= 2;
    }
    for (int k = 0; k < 2; k++) { /* best of three windows: the host is shared */
        double t = now();
        for (long r = 0; r < n; r++) sink += infer(INPUT)[0];
        double d = now() - t;
        if (d < dt) dt = d;
    }
    printf("], \"iters\": %ld, \"inf_per_s\": %.1f}\n", n, n / dt);
    return 0;
}
"""


def _c_array(ctype, name, values) -> str:
    body = ",".join(str(int(v)) for v in np.ravel(values))
    return "static const %s %s[] = {%s};\n" % (ctype, name, body)


def c_source(qspec, x8) -> str:
    """The int8 network as C: data arrays and the layer table, then the runtime."""
    out = ["#include <stdint.h>\n"]
    entries = []
    for k, q in enumerate(qspec.layers):
        w = q.w.astype(np.int64)
        acc0 = q.bias.astype(np.int64) - q.in_zp * w.sum(axis=1)  # C sees x itself (no +128)
        out.append(_c_array("int8_t", "W%d" % k, q.w))
        out.append(_c_array("int32_t", "A%d" % k, acc0))
        out.append(_c_array("int32_t", "M%d" % k, q.mult))
        out.append(_c_array("int8_t", "S%d" % k, q.shift))
        out.append(_c_array("int8_t", "T%d" % k, q.lut if q.lut is not None else [0]))
        out.append(_c_array("int32_t", "E%d" % k, q.exp_table if q.exp_table is not None else [0]))
        out.append("static int8_t Y%d[%d];\n" % (k, q.units))
        lo = max(-128, q.out_zp) if q.activation == "relu" else -128
        entries.append(
            "{%d,%d,%d,%d,%d,%d,%d,%d,%d,W%d,A%d,M%d,S%d,%d,%d,T%d,E%d,Y%d}"
            % (
                (
                    q.inputs,
                    q.units,
                    q.pre_zp,
                    lo,
                    127,
                    ACT_CODES[q.activation],
                    q.out_zp,
                    q.shift_pos,
                    q.shift_neg,
                )
                + (k,) * 4
                + (q.mult_pos, q.mult_neg)
                + (k,) * 3
            )
        )
    out.append(_c_array("int8_t", "INPUT", x8))
    head = "".join(out)
    table = "#define NLAYERS %d\n#define OUTPUTS %d\n" % (len(entries), qspec.outputs)
    runtime_head, runtime_tail = C_RUNTIME.split("/* TFLite", 1)
    layers = "static const layer_t LAYERS[] = {%s};\n" % ",".join(entries)
    return runtime_head + head + table + layers + "/* TFLite" + runtime_tail


def prepare(folder: Path, name, sizes, acts, seed):
    """Write the device's data files; return (qspec, x, x8, float reference output)."""
    layers = reference.random_network(sizes, acts, seed=seed)
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, (64, sizes[0])).astype(np.float32)
    spec = ModelSpec(
        [
            DenseSpec(
                w=l["w"].astype(np.float32),
                b=l["b"].astype(np.float32),
                activation=l["activation"],
                alpha=ALPHA,
            )
            for l in layers
        ]
    )
    qspec = quantize_model(spec, X)
    x = X[0]
    x8 = qspec.quantize_input(x[None, :])[0]
    with open(folder / (name + ".f32"), "wb") as f:
        for layer in spec.layers:
            f.write(layer.w.astype("<f4").tobytes())
            f.write(layer.b.astype("<f4").tobytes())
    with open(folder / (name + ".w8"), "wb") as f:
        for q in qspec.layers:
            f.write(q.w.astype(np.int8).tobytes())
    params = []
    for q in qspec.layers:
        p = q.device_params()
        del p["w"]
        params.append(p)
    cfg = {"sizes": sizes, "acts": acts, "alpha": ALPHA, "int8": params, "x": x.tolist(), "x8": x8.tolist()}
    (folder / (name + ".json")).write_text(json.dumps(cfg))
    return qspec, x, x8, spec.predict(x[None, :])[0]


def _device_cmd(folder: Path, name: str, path: str) -> list[str]:
    micropython = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which(
        "micropython"
    )
    if micropython is None:
        raise SystemExit("bench: micropython not found: run it through `make bench`")
    return [
        micropython,
        "-X",
        "heapsize=8M",
        str(ROOT / "tools" / "bench_device.py"),
        str(folder),
        name,
        path,
    ]


# PYTHONHASHSEED: the interpreter is a CPython extension here, and CPython's start-up
# (hash-randomised dicts) varies by about 1e5 instructions from run to run without it
_DEVICE_ENV = {"MICROPYPATH": "%s:.frozen" % (ROOT / "mpy"), "PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"}


def run_device(folder: Path, name: str, path: str) -> dict:
    proc = subprocess.run(
        _device_cmd(folder, name, path),
        capture_output=True,
        text=True,
        env=_DEVICE_ENV,
        timeout=600,
    )
    if proc.returncode != 0:
        raise SystemExit("bench: %s %s failed:\n%s%s" % (name, path, proc.stdout, proc.stderr))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_c(folder: Path, name: str, source: str, flags=("-O2",)) -> tuple[dict, Path]:
    """(the C program's result, its executable)."""
    stem = name.replace("-", "_") + "_".join([""] + [f.strip("-").replace("-", "_") for f in flags])
    src = folder / (stem + ".c")
    exe = folder / stem
    src.write_text(source)
    subprocess.run(["gcc", *flags, "-o", str(exe), str(src)], check=True)
    proc = subprocess.run([str(exe)], capture_output=True, text=True, check=True, timeout=600)
    return json.loads(proc.stdout), exe


def _callgrind(cmd: list[str], env=None) -> int:
    """Instructions valgrind's callgrind counts for one run of `cmd` (printed first)."""
    full = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd]
    print("  $ " + " ".join(shlex.quote(c) for c in full), flush=True)
    proc = subprocess.run(full, capture_output=True, text=True, env=env, timeout=1800)
    m = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or m is None:
        raise SystemExit("bench: callgrind failed:\n%s%s" % (proc.stdout, proc.stderr[-2000:]))
    return int(m.group(1))


def icount(cmd: list[str], calls: int, env=None) -> float:
    """Instructions per call: (run with 2 * `calls` calls - run with `calls`) / calls; `cmd`
    takes the number of calls as its last argument. Not against a run of 0 calls: the
    interpreter spends about 1e6 instructions once when the loop runs at all."""
    return (_callgrind(cmd + [str(2 * calls)], env) - _callgrind(cmd + [str(calls)], env)) / calls


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "out" / "bench.json"))
    args = parser.parse_args(argv)
    out_path = Path(args.out)
    use_valgrind = shutil.which("valgrind") is not None
    if not use_valgrind:
        print("bench: valgrind not found: no instruction counts (Debian: apt-get install valgrind)")
    folder = out_path.parent / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    problems = []
    for seed, (name, sizes, acts) in enumerate(NETS):
        macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        qspec, x, x8, float_out = prepare(folder, name, sizes, acts, seed + 1)
        want8 = qspec.predict_int8(x8[None, :])[0].tolist()
        wantf = qspec.predict(x[None, :])[0]
        rows = {}
        for path in PATHS:
            r = run_device(folder, name, path)
            if path in ("int8_viper", "int8_python") and r["out"] != want8:
                problems.append("%s %s: int8 output %s != oracle %s" % (name, path, r["out"], want8))
            if path == "int8_viper_float" and not np.array_equal(np.float32(r["out"]), wantf):
                problems.append("%s %s: float output differs from the oracle" % (name, path))
            if path in ("float", "naive") and not np.allclose(r["out"], float_out, atol=1e-4):
                problems.append("%s %s: output %s != float reference %s" % (name, path, r["out"], float_out))
            rows[path] = r
        source = c_source(qspec, x8)
        for path, flags in (("c_O2", ("-O2",)), ("c_O2_novec", ("-O2", "-fno-tree-vectorize"))):
            c, exe = run_c(folder, name, source, flags)
            if c["out"] != want8:
                problems.append("%s %s: int8 output %s != oracle %s" % (name, path, c["out"], want8))
            rows[path] = {"net": name, "path": path, "inf_per_s": c["inf_per_s"], "iters": c["iters"]}
            if use_valgrind:
                rows[path]["instructions"] = icount([str(exe)], 10 * ICOUNT_CALLS)
        if use_valgrind:
            for path in ICOUNT_PATHS:
                rows[path]["instructions"] = icount(
                    _device_cmd(folder, name, path), ICOUNT_CALLS, _DEVICE_ENV
                )
        for r in rows.values():
            r["mmac_per_s"] = r["inf_per_s"] * macs / 1e6
            r["macs"] = macs
            r.pop("out", None)
            results.append(r)
    summary = _summary(results)
    _print_table(results, summary)
    out_path.write_text(json.dumps({"results": results, "summary": summary, "problems": problems}, indent=1))
    print("wrote %s" % out_path)
    for p in problems:
        print("PROBLEM: " + p)
    return 1 if problems else 0


def _summary(results) -> dict:
    by = {(r["net"], r["path"]): r for r in results}
    net = NETS[0][0]
    ips = {p: by[(net, p)]["inf_per_s"] for p in PATHS + ["c_O2", "c_O2_novec"]}
    s = {
        "net": net,
        "int8_viper_vs_naive": ips["int8_viper"] / ips["naive"],
        "c_vs_int8_viper": ips["c_O2"] / ips["int8_viper"],
        "c_novec_vs_int8_viper": ips["c_O2_novec"] / ips["int8_viper"],
        "float_vs_naive": ips["float"] / ips["naive"],
        "int8_viper_heap_per_inference": by[(net, "int8_viper")]["heap_per_inference"],
    }
    s["targets"] = {
        "int8_viper >= 50x naive": s["int8_viper_vs_naive"] >= 50,
        "int8_viper within 4x of C": s["c_vs_int8_viper"] <= 4,
        "0 bytes per predict_int8": s["int8_viper_heap_per_inference"] == 0,
        "float >= 2x naive": s["float_vs_naive"] >= 2,
    }
    small = NETS[-1][0]  # per-call overhead dominates the smallest network
    s["float_vs_naive_" + small] = by[(small, "float")]["inf_per_s"] / by[(small, "naive")]["inf_per_s"]
    s["targets"]["float >= naive on %s" % small] = s["float_vs_naive_" + small] >= 1
    # instructions per inference against scalar C (valgrind): the ratios that hold
    ratios = {}
    for name, _, _ in NETS:
        c = by[(name, "c_O2_novec")].get("instructions")
        if not c:
            continue
        for path in ICOUNT_PATHS:
            ratios["%s %s" % (name, path)] = by[(name, path)]["instructions"] / c
        limit = ICOUNT_TARGETS.get(name)
        if limit is not None:
            met = ratios["%s int8_viper" % name] <= limit
            s["targets"]["%s predict_int8 <= %.1fx C instructions" % (name, limit)] = met
    s["instruction_ratios_vs_scalar_c"] = ratios
    return s


def _print_table(results, summary):
    head = "%-14s %-17s %12s %9s %12s %11s %10s %12s" % (
        "network",
        "path",
        "inferences/s",
        "MMAC/s",
        "heap B/inf",
        "model heap",
        "peak heap",
        "instr/inf",
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            "%-14s %-17s %12.1f %9.2f %12s %11s %10s %12s"
            % (
                r["net"],
                r["path"],
                r["inf_per_s"],
                r["mmac_per_s"],
                "%.0f" % r["heap_per_inference"] if "heap_per_inference" in r else "-",
                r.get("model_heap", "-"),
                r.get("peak_heap", "-"),
                "%.0f" % r["instructions"] if "instructions" in r else "-",
            )
        )
    print()
    print(
        "%s: int8 viper %.0fx naive, C -O2 %.2fx int8 viper (scalar C %.2fx), float %.1fx naive, "
        "%s B per predict_int8"
        % (
            summary["net"],
            summary["int8_viper_vs_naive"],
            summary["c_vs_int8_viper"],
            summary["c_novec_vs_int8_viper"],
            summary["float_vs_naive"],
            "%.0f" % summary["int8_viper_heap_per_inference"],
        )
    )
    for key, ratio in summary["instruction_ratios_vs_scalar_c"].items():
        print("  %-32s %.2fx the instructions of scalar C -O2" % (key, ratio))
    for target, met in summary["targets"].items():
        print("  %-46s %s" % (target, "met" if met else "MISSED"))


if __name__ == "__main__":
    sys.exit(main())
