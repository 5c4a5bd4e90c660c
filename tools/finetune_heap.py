"""How much of a bare-metal board's heap the gesture example's fine-tuning run needs.

Runs examples/gesture/finetune.py (`run(..., int8=True)` by default, `--float` for the float32
mode) on the bare-metal qemu firmware (tools/baremetal.py: cortex-m3 stands for an RP2040,
190,000-byte heap, viper code in the GC heap), the package and the scripts as `.mpy`, once per
BLOCKER size: a bytearray of that many bytes is allocated first, so a run that still completes
needed at most heap - BLOCKER bytes. The firmware's ROMFS is read-only, so the model is written
through the real writer (`nanonn.nnm.write.write`) into a stream that keeps nothing.

    python tools/finetune_heap.py DIR [--layers K] [--target cortex-m3] BLOCKER...

DIR holds what the README's fine-tuning commands make: gesture_int8.nnm (or gesture_f32.nnm),
gesture_meta.json, adapt.csv, test.csv (64 held-out windows). Prints one line per blocker:
`BLOCKER OK|FAIL free-at-start last-lines`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import baremetal  # noqa: E402

SCRIPTS = ("imu", "replay", "sensor", "features", "classify", "finetune")
_CODE = """
import gc
blocker = bytearray(%(block)d)
import nanonn.int8.network
import nanonn.float32.network
from nanonn.nnm.write import write
class Sink:
    n = 0
    def write(self, b):
        self.n += len(b)
        return len(b)
def save(self, path, backup=None):
    s = Sink()
    write(self, s)
    print("wrote %%d bytes (kept nowhere) for %%s" %% (s.n, path))
nanonn.int8.network.QNetwork.save = save
nanonn.float32.network.Network.save = save
import finetune
gc.collect()
print("free at start", gc.mem_free())
finetune.run(adapt="/rom/ft/adapt.csv", test="/rom/ft/test.csv", test_windows=64, folder="/rom/ft",
             layers=%(layers)d, int8=%(int8)s)
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("dir", type=Path, help="the models, gesture_meta.json, adapt.csv and test.csv")
    p.add_argument("blockers", type=int, nargs="+", help="bytes to allocate before the run")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--float", dest="int8", action="store_false", help="the float32 mode")
    p.add_argument("--target", choices=sorted(baremetal.TARGETS), default="cortex-m3")
    args = p.parse_args(argv)
    target = baremetal.TARGETS[args.target]
    reason = baremetal.unavailable(target)
    if reason:
        print("nanonn: %s" % reason, file=sys.stderr)
        return 1
    gesture = ROOT / "examples" / "gesture"
    extra = {"lib/%s.py" % n: (gesture / (n + ".py")).read_bytes() for n in SCRIPTS}
    model = "gesture_int8.nnm" if args.int8 else "gesture_f32.nnm"
    for name in (model, "gesture_meta.json", "adapt.csv", "test.csv"):
        path = args.dir / name
        if not path.is_file():
            print(
                "nanonn: %s: no such file (run the README's fine-tuning commands first)" % path,
                file=sys.stderr,
            )
            return 1
        extra["ft/" + name] = path.read_bytes()
    # the RP2040's armv6m code on cortex-m3, as make bench-boards runs it
    image = baremetal.stage(target, ROOT / "build" / ("finetune-heap-" + target.name), extra, march="armv6m")
    for block in args.blockers:
        code = _CODE % {"block": block, "layers": args.layers, "int8": args.int8}
        out, err = baremetal.run(target, code, image, timeout=900)
        free = [line.split()[-1] for line in out.splitlines() if line.startswith("free at start")]
        good = "after:" in out and not err
        tail = (out + err).strip().splitlines()[-2:]
        print(block, "OK" if good else "FAIL", free[0] if free else "-", " | ".join(tail))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
