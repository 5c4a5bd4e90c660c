"""The smallest heap that loads and runs the 784-36-14-10 int8 model (part of `make bench`).

Runs tests/device/lowmem_driver.py under `micropython -X heapsize=<N>wK` (heap sizes
in 32-bit words x 1024, so the heap holds about what a 32-bit board's N KB holds)
with the device package precompiled to .mpy (as installed on a board): a small model
is loaded first, then the big int8 model (leaky_relu, leaky_relu, softmax) from a
file; a heap that is too small must fail with nanonn's MemoryError stating the bytes
needed, and the small model must still predict the same afterwards. Prints a sweep
over heap sizes and the smallest one that works (bisected to 1 K).

    python tools/bench_memory.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from nanonn_tools import nnm  # noqa: E402
from nanonn_tools.model import DenseSpec, ModelSpec  # noqa: E402
from nanonn_tools.quantize import quantize_model  # noqa: E402
from support import MPY, tool  # noqa: E402

SIZES = (8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 100, 104, 112, 120, 128, 144, 160, 176, 190, 208, 256)
DRIVER = ROOT / "tests" / "device" / "lowmem_driver.py"


def big_float_and_int8():
    """The 784-36-14-10 model (leaky_relu, leaky_relu, softmax), seeded: (float spec, int8 spec)."""
    rng = np.random.default_rng(784)
    sizes = (784, 36, 14, 10)
    acts = ("leaky_relu", "leaky_relu", "softmax")
    spec = ModelSpec(
        [
            DenseSpec(rng.normal(size=(u, n)) / np.sqrt(n), rng.normal(size=u) * 0.1, act, alpha=0.1)
            for n, u, act in zip(sizes[:-1], sizes[1:], acts)
        ]
    ).validate()
    return spec, quantize_model(spec, rng.uniform(-1, 1, (64, 784)))


def big_model():
    """The 784-36-14-10 int8 model (leaky_relu, leaky_relu, softmax), seeded."""
    return big_float_and_int8()[1]


def small_model():
    rng = np.random.default_rng(4)
    return ModelSpec(
        [
            DenseSpec(rng.normal(size=(6, 4)), rng.normal(size=6), "relu"),
            DenseSpec(rng.normal(size=(3, 6)), None, "softmax"),
        ]
    ).validate()


def big_input():
    """The input the driver makes: x[i] = ((i * 37) % 101) / 50 - 1."""
    return np.array([((i * 37) % 101) / 50.0 - 1.0 for i in range(784)])


class Setup:
    """The model files and the .mpy package in a temporary directory."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory()
        d = Path(self.tmp.name)
        self.small, self.big = d / "small.nnm", d / "big.nnm"
        self.big_spec = big_model()
        self.small_spec = small_model()
        nnm.write(self.small_spec, self.small)
        nnm.write(self.big_spec, self.big)
        pkg = d / "lib" / "nanonn"
        pkg.mkdir(parents=True)
        for src in sorted((MPY / "nanonn").rglob("*.py")):
            out = (pkg / src.relative_to(MPY / "nanonn")).with_suffix(".mpy")
            out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([tool("mpy-cross"), "-march=x64", "-o", str(out), str(src)], check=True)
        self.lib = d / "lib"

    def run(self, heap_kw: int) -> dict:
        proc = subprocess.run(
            [
                tool("micropython"),
                "-X",
                "heapsize=%dwK" % heap_kw,
                str(DRIVER),
                str(self.small),
                str(self.big),
            ],
            env={"MICROPYPATH": "%s:.frozen" % self.lib},
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = proc.stdout.strip().splitlines()
        if not lines or not lines[-1].startswith("{"):
            return {
                "stage": "crash",
                "error": ["exit %d" % proc.returncode, (proc.stdout + proc.stderr)[-300:]],
            }
        return json.loads(lines[-1])

    def close(self):
        self.tmp.cleanup()


KEPT = """
import gc, nanonn
def kept(name):
    gc.collect()
    free = gc.mem_free()
    __import__(name)
    gc.collect()
    return free - gc.mem_free()
print(kept("nanonn.nnm.read"), kept("nanonn.nnm.write"))
"""


def kept_by_imports(setup: Setup) -> tuple[int, int]:
    """Heap bytes kept by importing the reader (nanonn.nnm.read, on the first load) and then
    the writer (nanonn.nnm.write, on the first save), from the .mpy package."""
    proc = subprocess.run(
        [tool("micropython"), "-c", KEPT],
        env={"MICROPYPATH": "%s:.frozen" % setup.lib},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    reader, writer = proc.stdout.split()
    return int(reader), int(writer)


def smallest(setup: Setup, lo: int, hi: int) -> int:
    """The smallest heap (wK) in (lo, hi] where the big model loads and predicts."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if setup.run(mid)["stage"] == "done":
            hi = mid
        else:
            lo = mid
    return hi


# issue 14's targets for the 784-36-14-10 int8 model on a board: the free heap that loads it
# and runs predict_int8, all of nanonn's imports and buffers included
TARGETS = {"file": 65536, "romfs": 40960, "const": 40960}
SOURCE_NAMES = {
    "file": "from a file (read into RAM)",
    "romfs": "by path on ROMFS (in place)",
    "const": "from a bytes constant (frozen/ROMFS .mpy)",
}


def boards() -> int:
    """Per board profile, on the bare-metal firmware (tools/bench_boards.py's machinery, the
    board's own .mpy arch): the heap kept by `import nanonn` and by each load path, and the
    smallest free heap that loads the model and runs predict_int8, against TARGETS."""
    import baremetal
    import bench_boards

    missing = [r for r in (baremetal.unavailable(t) for t in baremetal.TARGETS.values()) if r]
    if missing:
        print("bench-memory: boards skipped: %s" % "; ".join(missing))
        return 1
    met = True
    with tempfile.TemporaryDirectory() as tmp:
        b = bench_boards.Bench(Path(tmp))
        for target in baremetal.TARGETS.values():
            profile = bench_boards.BOARDS[target.name]["profile"]
            arch = target.interpreter.mpy_arch
            image = b.image(target)
            mem = bench_boards.memory_figures(target, image, b.x64_out)
            first = mem["file"]
            print(
                "\n%s (emulated: %s, %s .mpy on ROMFS, viper code in the heap): %d B free at start"
                % (profile, target.name, arch, first["free_start"])
            )
            print("  heap kept by `import nanonn`: %d B" % first["import"])
            for source in bench_boards.SOURCES:
                r = mem[source]
                need, target_bytes = r["sweep"]["reliable"], TARGETS[source]
                ok = need is not None and need <= target_bytes
                met = met and ok
                print(
                    "  %-42s kept %6d B; smallest free heap %6s B (lowest %s), target %d B: %s"
                    % (
                        SOURCE_NAMES[source],
                        r["kept"],
                        need,
                        r["sweep"]["lowest"],
                        target_bytes,
                        "met" if ok else "NOT met",
                    )
                )
    print("\nboard targets: %s" % ("all met" if met else "not all met"))
    return 0


def main() -> int:
    sys.path.insert(0, str(ROOT / "tools"))
    boards()
    setup = Setup()
    try:
        print(
            "low memory: 784-36-14-10 int8 model from a file (%d bytes), nanonn as .mpy"
            % setup.big.stat().st_size
        )
        print("%9s  %-12s %s" % ("heap", "stage", "result"))
        last_fail, first_ok = 0, None
        for kw in SIZES:
            r = setup.run(kw)
            err = r.get("error")
            print(
                "%6d wK  %-12s %s"
                % (
                    kw,
                    r["stage"],
                    "ok" if r["stage"] == "done" else "%s: %s" % tuple(err or ("?", "no error reported")),
                )
            )
            if r["stage"] == "done":
                first_ok = kw if first_ok is None else first_ok
            elif first_ok is None:
                last_fail = kw
        if first_ok is None:
            print("the model did not run on any heap up to %d wK" % SIZES[-1])
            return 1
        best = smallest(setup, last_fail, first_ok)
        print(
            "smallest heap that loads and runs the 784-36-14-10 int8 model: %d wK "
            "(about %d KB on a 32-bit board; ESP32 ~100 KB free, RP2040 ~190 KB free)" % (best, best)
        )
        print(
            "heap kept by importing the reader (nanonn.nnm.read): %d bytes; the writer (nanonn.nnm.write): %d more"
            % kept_by_imports(setup)
        )
    finally:
        setup.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
