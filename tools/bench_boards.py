"""`make bench-boards`: what a board would see, measured on the bare-metal firmware.

For each bare-metal interpreter (tools/baremetal.py: `cortex-m3` for an RP2040,
`rv32imc` for an ESP32-C3), with nanonn as `.mpy` on ROMFS compiled for the board's
own arch (RP2040: armv6m, ESP32-C3: rv32imc; the viper code then lives in the GC heap
as on the board), on the 784-36-14-10 int8 model of tools/bench_memory.py:

- RAM: heap kept by `import nanonn`, by the modules each load path imports (int8,
  float), by loading the model from a file (/rom/big.nnm read as a stream into RAM, as
  from littlefs), by its path on ROMFS (used in place) and from a bytes constant
  (a .mpy on ROMFS, used in place as when frozen), and after a first predict_int8
  (which must then run under heap_lock: its peak is what is kept); the smallest free
  heap that runs it, by allocating a blocker bytearray first and bisecting its size.
- Speed as instructions: the firmware under `qemu -icount shift=0` (one instruction
  per virtual ns, so ticks_us counts thousands of instructions; checked with an
  inline-assembler loop of known length), per predict_int8, per int8 predict (float
  in and out) and per float predict; beside the same int8 network in C
  (tools/bench.py's source) built with `arm-none-eabi-gcc -O2 -mcpu=cortex-m0plus` (an
  RP2040's ARMv6-M, checked Thumb-1 only; also -mcpu=cortex-m3, reported beside it) /
  `riscv64-unknown-elf-gcc -O2 -march=rv32imc` and run on the same emulator
  (tools/baremetal_c/). Every output is checked against the x64 unix port's.
- Thumb-2 beside it (cortex-m3): predict_int8 with nanonn compiled -march=armv7m against
  the C for -mcpu=cortex-m3 (the "thumb2" entry).

Writes boards/measured.json (read by `nanonn info` and `nanonn convert --target`)
and prints a table. Estimated µs at the board's clock assume one instruction per
cycle: an estimate, not a measurement.

    python tools/bench_boards.py [--out boards/measured.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests"))

import baremetal  # noqa: E402
import bench  # noqa: E402
import bench_memory  # noqa: E402

from nanonn_tools import nnm  # noqa: E402
from support import run_device  # noqa: E402

OUT = ROOT / "boards" / "measured.json"
C_DIR = ROOT / "tools" / "baremetal_c"
# the board each interpreter stands for (its .mpy arch: tools/interpreters.py) and its clock
# (MHz, the usual setting)
BOARDS = {
    "cortex-m3": {"profile": "rp2040", "clock_mhz": 125},
    "rv32imc": {"profile": "esp32c3", "clock_mhz": 160},
}
# which measured entry each board profile uses (`nanonn info`): its own, else the nearest
# (rp2350: an RP2040's figures, armv6m code; esp32/esp32s3: the ESP32-C3's, rv32imc code;
# xtensawin has no emulator here)
APPLIES_TO = {
    "rp2040": "rp2040",
    "rp2350": "rp2040",
    "esp32c3": "esp32c3",
    "esp32": "esp32c3",
    "esp32s3": "esp32c3",
}
ARM_LD = ["-T", str(C_DIR / "arm.ld")]
# the C network's compiler per CPU: an RP2040 is a Cortex-M0+ (ARMv6-M, Thumb-1 only; its code
# runs on the Cortex-M3 emulator, ARMv6-M being a subset of ARMv7-M), checked Thumb-1 only
C_BUILD = {
    "cortex-m0plus": ["arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-mthumb", "-masm-syntax-unified"] + ARM_LD,
    "cortex-m3": ["arm-none-eabi-gcc", "-mcpu=cortex-m3", "-mthumb"] + ARM_LD,
    "rv32imc": [
        "riscv64-unknown-elf-gcc",
        "-march=rv32imc",
        "-mabi=ilp32",
        "-misa-spec=2.2",
        "-T",
        str(C_DIR / "rv32.ld"),
    ],
}
# per interpreter: the CPU the board's C is compiled for (its ratio_to_c), and other C builds
# reported beside it
C_CPU = {"cortex-m3": "cortex-m0plus", "rv32imc": "rv32imc"}
C_ALSO = {"cortex-m3": ("cortex-m3",)}
# Thumb-2 beside the RP2040's Thumb-1: nanonn compiled -march=armv7m (the firmware, a Cortex-M3,
# accepts ARMv6-M..ARMv7-M .mpy; an RP2350's armv7emsp emits the same integer code but needs a
# floating-point core) against the C for a Cortex-M3
THUMB2 = {"cortex-m3": ("armv7m", "cortex-m3")}
SPIN = {
    "cortex-m3": "@micropython.asm_thumb\ndef spin(r0):\n    label(loop)\n    sub(r0, r0, 1)\n    bne(loop)\n",
    "rv32imc": "@micropython.asm_rv32\ndef spin(a0):\n    label(loop)\n    addi(a0, a0, -1)\n    bne(a0, zero, loop)\n",
}
SPIN_N = 1000000
PREDICT_CALLS = 10
STEP = 1024  # the memory sweep's step (bytes of free heap)
FINE = 128  # its step within the last STEP that worked


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


class Bench:
    """The models, ROMFS images and measurements of one run."""

    def __init__(self, folder: Path):
        self.folder = folder
        fspec, qspec = bench_memory.big_float_and_int8()
        self.qspec = qspec
        self.big = nnm.dumps(qspec)
        self.big_f32 = nnm.dumps(fspec)
        self.small_f32 = nnm.dumps(bench_memory.small_model())
        (folder / "big.nnm").write_bytes(self.big)
        self.x64_out = self._x64_outputs()

    def _x64_outputs(self) -> list[int]:
        code = (
            "import sys\nsys.path.append(%r)\nimport nanonn, bench_boards_device as d\n"
            "net = nanonn.load(%r)\nprint(list(net.predict_int8(d.x8_input(net.inputs))))"
        ) % (str(ROOT / "tools"), str(self.folder / "big.nnm"))
        proc = run_device("micropython", ["-c", code])
        if proc.returncode != 0:
            raise SystemExit("bench-boards: x64 reference failed:\n" + proc.stdout + proc.stderr)
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def image(self, target: baremetal.Target, pad: int = 0, pad_after: int = 0, march: str = "") -> Path:
        """The ROMFS image for `target` with nanonn compiled for `march` (default: the board's
        arch); files of `pad` bytes sorted before /rom/big_f32.nnm and `pad_after` after it
        move that file's data (see aligned_image)."""
        extra = {
            "0pad": bytes(pad),
            "zpad": bytes(pad_after),
            "big.nnm": self.big,
            "big_f32.nnm": self.big_f32,
            "small_f32.nnm": self.small_f32,
            "lib/big_int8.py": ("MODEL = %r\n" % self.big).encode(),
            "lib/bench_boards_device.py": (ROOT / "tools" / "bench_boards_device.py").read_bytes(),
            "lib/bench_boards_small.py": (ROOT / "tools" / "bench_boards_small.py").read_bytes(),
        }
        march = march or target.interpreter.mpy_arch
        return baremetal.stage(target, self.folder / (target.name + "-" + march), extra, march=march)

    def aligned_image(self, target: baremetal.Target, march: str = "") -> Path:
        """The image with /rom/big_f32.nnm's data 4-byte aligned, so the float model is used
        in place (mpremote's ROMFS writer aligns nothing; an unaligned model is copied).
        The image header grows by a byte to keep the image's length even, so a pad before
        the file moves it by an even count; a byte after it toggles that header byte."""
        code = "import uctypes\nm = memoryview(open('/rom/big_f32.nnm', 'rb'))\nprint('{\"mod\": %d}' % (uctypes.addressof(m) % 4))\n"
        for pad_after in (0, 1):
            for pad in (0, 1, 2, 3):
                image = self.image(target, pad, pad_after, march)
                if _run(target, image, code)[-1]["mod"] == 0:
                    return image
        raise SystemExit("bench-boards: could not align big_f32.nnm on the %s ROMFS image" % target.name)


def _run(target, image, code: str, icount: bool = False) -> list[dict]:
    out, err = baremetal.run(target, code, image, icount=icount, timeout=1800)
    if err:
        raise SystemExit("bench-boards: %s failed:\n%s%s" % (target.name, out, err))
    return _json_lines(out)


def memory(target, image, source: str, blocker: int = 0) -> dict:
    code = "import bench_boards_device as d\nd.memory(%r, %d)\n" % (source, blocker)
    return _run(target, image, code)[-1]


def imports(target, image, source: str) -> tuple[int, list[str]]:
    """Heap kept by importing nanonn and the modules loading from `source` imports."""
    code = (
        "import gc, sys, bench_boards_device as d\nbefore = set(sys.modules)\nimport nanonn\n"
        "n = nanonn.load(%r)\nmods = sorted(set(sys.modules) - before)\nn = None\n"
        "print('{\"modules\": %%s}' %% repr(mods).replace(\"'\", '\"'))\n"
    ) % source
    mods = _run(target, image, code)[-1]["modules"]
    measure = "import gc\ngc.collect()\na = gc.mem_alloc()\n%s\ngc.collect()\nprint('{\"bytes\": %%d}' %% (gc.mem_alloc() - a))\n"
    body = "\n".join("import " + m for m in mods)
    return _run(target, image, measure % body)[-1]["bytes"], mods


def heap_sweep(target, image, source: str, start: int = 0) -> dict:
    """Shrink the free heap in steps of STEP bytes (a blocker bytearray allocated first,
    from `start` bytes) until three sizes in a row fail to load and run the model from
    `source`, then from the smallest size of that run that worked, in steps of FINE
    bytes until one fails. "reliable": the smallest free heap at start above which every
    size tried worked; "lowest": the smallest that worked (below "reliable" it depends on
    fragmentation)."""
    reliable = lowest = None
    failed = False
    fails = 0
    blocker = start - start % STEP
    last_ok = None  # the blocker of "reliable"
    while fails < 3:
        r = memory(target, image, source, blocker)
        if "error" in r or not r.get("locked"):
            failed = True
            fails += 1
        else:
            lowest = r["free_start"]
            if not failed:
                reliable, last_ok = lowest, blocker
            fails = 0
        blocker += STEP
    if last_ok is not None:  # the last STEP above the first failure, FINE bytes at a time
        for blocker in range(last_ok + FINE, last_ok + STEP, FINE):
            r = memory(target, image, source, blocker)
            if "error" in r or not r.get("locked"):
                break
            reliable = r["free_start"]
            lowest = min(lowest, reliable) if lowest is not None else reliable
    return {"reliable": reliable, "lowest": lowest}


# the int8 model's sources (bench_boards_device._load): read into RAM from a file, by its path
# on ROMFS (in place), a bytes constant of a .mpy on ROMFS (in place, as when frozen)
SOURCES = ("file", "romfs", "const")
SWEEP_MARGIN = 49152  # the sweep starts this far above the heap a source kept (all work there)


def memory_figures(target, image, expected: list[int]) -> dict:
    """memory() of each of SOURCES on `target` (outputs checked against `expected`), each
    with its "sweep" (heap_sweep, started SWEEP_MARGIN above what it kept)."""
    mem = {}
    for source in SOURCES:
        r = memory(target, image, source)
        if "error" in r:
            raise SystemExit(
                "bench-boards: %s: the model does not load from %s: %s" % (target.name, source, r["error"])
            )
        if r["out"] != expected:
            raise SystemExit("bench-boards: %s predict_int8 %r != x64 %r" % (target.name, r["out"], expected))
        r["sweep"] = heap_sweep(target, image, source, r["free_start"] - r["kept"] - SWEEP_MARGIN)
        mem[source] = r
    return mem


def speed(target, image, float_model: bool = True) -> dict:
    spin = SPIN[target.name] + (
        "import time\nt0 = time.ticks_us()\nspin(%d)\nprint('{\"spin_ticks_us\": %%d}' %% time.ticks_diff(time.ticks_us(), t0))\n"
        % SPIN_N
    )
    calib = _run(target, image, spin, icount=True)[-1]
    code = "import bench_boards_device as d\nd.speed(%d, %r)\n" % (PREDICT_CALLS, float_model)
    r = _run(target, image, code, icount=True)[-1]
    r.update(calib)
    return r


def small_float(target, image) -> dict:
    """The 64-32-16-4 float network of Dense layers (bench_boards_small.small_float): its
    predict's instructions and the heap it keeps, with Dense's default cache decision and
    with cache=False; both outputs must be the same to the bit."""
    runs = {}
    for cache in (None, False):
        code = "import bench_boards_small as d\nd.small_float(%d, %r)\n" % (PREDICT_CALLS, cache)
        runs[cache] = _run(target, image, code, icount=True)[-1]
    d, plain = runs[None], runs[False]
    if d["out"] != plain["out"]:
        raise SystemExit(
            "bench-boards: %s small float: cached %r != uncached %r" % (target.name, d["out"], plain["out"])
        )
    return {
        "shape": "64-32-16-4",
        "default_cache": d["cache"],
        "free_heap_after_import": d["free_after_import"],
        "kept": d["kept"],
        "kept_no_cache": plain["kept"],
        "instructions": round(d["float_predict_small"] * 1000),
        "instructions_no_cache": round(plain["float_predict_small"] * 1000),
    }


def c_program(qspec) -> str:
    """tools/bench.py's C network with the bare-metal harness instead of its host main()."""
    x8 = [(i * 37) % 256 - 128 for i in range(qspec.layers[0].inputs)]
    source = bench.c_source(qspec, x8)
    # the host runtime's libc headers (stdio, stdlib, time) serve its main() only
    source = "".join(
        line
        for line in source.splitlines(keepends=True)
        if not line.startswith("#include <") or "stdint" in line
    )
    source = source[: source.index("static double now(void)")]
    return source + (C_DIR / "harness.c").read_text()


def thumb1_only(elf: Path) -> None:
    """Fail unless every instruction of `elf` is one an ARMv6-M core (Cortex-M0+) has: its
    16-bit Thumb set and the few 32-bit ones of ARMv6-M (bl, mrs, msr, dmb, dsb, isb)."""
    proc = subprocess.run(
        ["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True, check=True
    )
    wide = []
    for line in proc.stdout.splitlines():
        parts = line.split("\t")
        # "   addr:\tf000 f802 \tbl\t..." : two halfwords are a 32-bit encoding
        if len(parts) >= 3 and len(parts[1].split()) == 2:
            op = parts[2].split()[0] if parts[2].split() else ""
            if op not in ("bl", "mrs", "msr", "dmb", "dsb", "isb"):
                wide.append(line.strip())
    if wide:
        raise SystemExit("bench-boards: %s is not Thumb-1 only:\n%s" % (elf, "\n".join(wide[:10])))


def c_speed(b: Bench, target, cpu: str) -> dict:
    """Instructions per inference of the int8 network in C, -O2 for `cpu` (C_BUILD), on
    `target`'s emulator; its output checked against the x64 unix port's."""
    src = b.folder / ("net_%s.c" % cpu.replace("-", "_"))
    elf = src.with_suffix(".elf")
    src.write_text(c_program(b.qspec))
    cmd = C_BUILD[cpu] + ["-O2", "-ffreestanding", "-nostdlib", "-Wl,--no-warn-rwx-segments"]
    cmd += ["-o", str(elf), str(src), "-lgcc"]
    subprocess.run(cmd, check=True)
    if cpu == "cortex-m0plus":
        thumb1_only(elf)
    qemu = target.emulator + ["-icount", "shift=0,align=off,sleep=off", "-kernel", str(elf)]
    proc = subprocess.run(qemu, capture_output=True, text=True, timeout=600)
    lines = _json_lines(proc.stdout + "\n" + proc.stderr)
    if proc.returncode != 0 or not lines:
        raise SystemExit(
            "bench-boards: C for %s on %s failed (%d):\n%s%s"
            % (cpu, target.name, proc.returncode, proc.stdout, proc.stderr)
        )
    r = lines[-1]
    per_tick = 1e9 / r["timer_hz"]  # instructions per timer count (shift=0: 1 per ns)
    r["spin_measured"] = r["spin_ticks"] * per_tick
    r["instructions"] = r["ticks"] * per_tick / r["reps"]
    if r["out"] != b.x64_out:
        raise SystemExit("bench-boards: C for %s: %r != x64 %r" % (cpu, r["out"], b.x64_out))
    return r


def measure(b: Bench, target) -> dict:
    """Every figure for one interpreter."""
    image = b.aligned_image(target)
    out = dict(BOARDS[target.name], interpreter=target.name, mpy_arch=target.interpreter.mpy_arch)
    out["firmware_heap"] = target.heap
    mem = memory_figures(target, image, b.x64_out)
    out["free_heap_at_start"] = mem["file"]["free_start"]
    out["import_nanonn"] = mem["file"]["import"]
    out["import_int8"], out["modules_int8"] = imports(target, image, "/rom/big.nnm")
    out["import_float"], out["modules_float"] = imports(target, image, "/rom/small_f32.nnm")
    out["load_file"], out["kept_file"] = mem["file"]["load"], mem["file"]["kept"]
    out["load_frozen"], out["kept_frozen"] = mem["const"]["load"], mem["const"]["kept"]
    out["load_romfs"], out["kept_romfs"] = mem["romfs"]["load"], mem["romfs"]["kept"]
    out["predict_int8_allocates"] = not all(mem[k]["locked"] for k in SOURCES)
    out["smallest_free_heap_file"] = mem["file"]["sweep"]["reliable"]
    out["smallest_free_heap_frozen"] = mem["const"]["sweep"]["reliable"]
    out["smallest_free_heap_romfs"] = mem["romfs"]["sweep"]["reliable"]
    out["lowest_free_heap_file"] = mem["file"]["sweep"]["lowest"]
    out["lowest_free_heap_frozen"] = mem["const"]["sweep"]["lowest"]
    out["lowest_free_heap_romfs"] = mem["romfs"]["sweep"]["lowest"]
    s = speed(target, image)
    if s["out"] != b.x64_out:
        raise SystemExit("bench-boards: %s under icount: %r != x64 %r" % (target.name, s["out"], b.x64_out))
    cpu = C_CPU[target.name]
    c = c_speed(b, target, cpu)
    ins = {
        k: round(s[k] * 1000) for k in ("predict_int8", "int8_predict_float_io", "float_predict") if k in s
    }
    ins["c_int8"] = round(c["instructions"])
    out["c_cflags"] = c_flags(cpu)
    for other in C_ALSO.get(target.name, ()):
        ins["c_int8_" + other.replace("-", "_")] = round(c_speed(b, target, other)["instructions"])
    out["instructions"] = ins
    out["instructions_check"] = {
        "spin_loop": 2 * SPIN_N,
        "firmware_ticks_us_x1000": s["spin_ticks_us"] * 1000,
        "c_timer": round(c["spin_measured"]),
    }
    out["float_small"] = small_float(target, image)
    out["float_predict_error"] = s.get("float_predict_error")
    out["float_in_place"] = s.get("float_in_place")
    out["ratio_to_c"] = round(ins["predict_int8"] / ins["c_int8"], 2)
    out["estimated_us"] = {k: round(v / out["clock_mhz"]) for k, v in ins.items()}
    if target.name in THUMB2:
        out["thumb2"] = thumb2(b, target, *THUMB2[target.name])
    return out


def c_flags(cpu: str) -> str:
    """The code-generation flags of the C build for `cpu`, as the report states them."""
    return " ".join(f for f in C_BUILD[cpu][1:] if f.startswith("-m") and "syntax" not in f) + " -O2"


def thumb2(b: Bench, target, march: str, cpu: str) -> dict:
    """predict_int8 with nanonn compiled for `march` against the C for `cpu`, on `target`."""
    s = speed(target, b.image(target, march=march), float_model=False)
    if s["out"] != b.x64_out:
        raise SystemExit("bench-boards: %s %s: %r != x64 %r" % (target.name, march, s["out"], b.x64_out))
    c = c_speed(b, target, cpu)
    ins = {"predict_int8": round(s["predict_int8"] * 1000), "c_int8": round(c["instructions"])}
    return {
        "mpy_arch": march,
        "c_cflags": c_flags(cpu),
        "instructions": ins,
        "ratio_to_c": round(ins["predict_int8"] / ins["c_int8"], 2),
    }


def table(results: dict) -> str:
    rows = [
        "board (emulated)              "
        + "  ".join("%-22s" % ("%s (%s)" % (r["profile"], r["interpreter"])) for r in results.values())
    ]

    def row(label, fmt):
        rows.append("%-30s" % label + "  ".join("%-22s" % fmt(r) for r in results.values()))

    row("free heap at start", lambda r: "%d B" % r["free_heap_at_start"])
    row("import nanonn", lambda r: "%d B" % r["import_nanonn"])
    row("import, int8 path", lambda r: "%d B" % r["import_int8"])
    row("import, float path", lambda r: "%d B" % r["import_float"])
    row("load 784-36-14-10 file", lambda r: "+%d B (kept %d)" % (r["load_file"], r["kept_file"]))
    row("load from bytes (frozen)", lambda r: "+%d B (kept %d)" % (r["load_frozen"], r["kept_frozen"]))
    row("load by path on ROMFS", lambda r: "+%d B (kept %d)" % (r["load_romfs"], r["kept_romfs"]))
    row(
        "free heap needed, file",
        lambda r: "%d B (%d)" % (r["smallest_free_heap_file"], r["lowest_free_heap_file"]),
    )
    row(
        "free heap needed, frozen",
        lambda r: "%d B (%d)" % (r["smallest_free_heap_frozen"], r["lowest_free_heap_frozen"]),
    )
    row(
        "free heap needed, ROMFS path",
        lambda r: "%d B (%d)" % (r["smallest_free_heap_romfs"], r["lowest_free_heap_romfs"]),
    )
    for k in ("predict_int8", "int8_predict_float_io", "float_predict", "c_int8"):
        row(
            "instr. " + k,
            lambda r, k=k: (
                ("%d (~%d us)" % (r["instructions"][k], r["estimated_us"][k]))
                if k in r["instructions"]
                else "does not fit"
            ),
        )
    row("  C compiled with", lambda r: r["c_cflags"].split()[0])
    for cpu in sorted({c for cs in C_ALSO.values() for c in cs}):
        k = "c_int8_" + cpu.replace("-", "_")
        row(
            "instr. C -mcpu=" + cpu,
            lambda r, k=k: "%d" % r["instructions"][k] if k in r["instructions"] else "-",
        )
    row("predict_int8 / C", lambda r: "%.2fx" % r["ratio_to_c"])
    if any("thumb2" in r for r in results.values()):
        row(
            "Thumb-2: predict_int8",
            lambda r: (
                "%d (%s)" % (r["thumb2"]["instructions"]["predict_int8"], r["thumb2"]["mpy_arch"])
                if "thumb2" in r
                else "-"
            ),
        )
        row(
            "Thumb-2: C",
            lambda r: (
                "%d (%s)" % (r["thumb2"]["instructions"]["c_int8"], r["thumb2"]["c_cflags"].split()[0])
                if "thumb2" in r
                else "-"
            ),
        )
        row(
            "Thumb-2: predict_int8 / C",
            lambda r: "%.2fx" % r["thumb2"]["ratio_to_c"] if "thumb2" in r else "-",
        )
    row(
        "instr. float 64-32-16-4",
        lambda r: "%d (cache %s)" % (r["float_small"]["instructions"], r["float_small"]["default_cache"][0]),
    )
    row("  the same, cache=False", lambda r: "%d" % r["float_small"]["instructions_no_cache"])
    row(
        "  heap kept, cache / not",
        lambda r: "%d / %d B" % (r["float_small"]["kept"], r["float_small"]["kept_no_cache"]),
    )
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    for target in baremetal.TARGETS.values():
        reason = baremetal.unavailable(target)
        if reason:
            print("bench-boards: %s" % reason, file=sys.stderr)
            return 1
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        b = Bench(Path(tmp))
        for target in baremetal.TARGETS.values():
            print("bench-boards: %s ..." % target.name, file=sys.stderr)
            results[BOARDS[target.name]["profile"]] = measure(b, target)
    doc = {
        "about": "Measured by `make bench-boards` (tools/bench_boards.py) on the bare-metal qemu firmware "
        "(emulated boards); bytes of GC heap, instructions per call (qemu -icount shift=0); estimated_us "
        "assumes one instruction per cycle at clock_mhz.",
        "model": "784-36-14-10 int8 (leaky_relu, leaky_relu, softmax), tools/bench_memory.py",
        "applies_to": APPLIES_TO,
        "boards": results,
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(table(results))
    print("wrote %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
