"""How much of a bare-metal board's heap a device test leaves unused (its headroom).

Runs `tests/device/runner.py MODULE` on the bare-metal qemu firmware (tools/baremetal.py: the
package and the tests as `.mpy` on a ROMFS image, as tests/test_baremetal.py runs them) after
allocating a bytearray of B bytes (the blocker) before anything else, and bisects the largest B
up to which test NAME passes for every B in steps of --step: the bytes the run could lose and
still pass, fragmentation included (a test that fails for want of one contiguous block has
no headroom, however much is free in pieces). Pass or fail is not monotonic in B (where each
object lands moves with it; a bisection once found 20 KB above a failure at a few hundred
bytes), hence the scan from 0.

    python tools/device_headroom.py test_tune::test_training_on_a_shifted_task... [--target rv32imc]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import baremetal  # noqa: E402

_CODE = """blocker = bytearray(%d)
import os
os.chdir('/rom')
import runner
runner.main([%r])
"""


def status(target, image, module: str, name: str, block: int) -> str:
    """PASS, SKIP or FAIL (with the reason) of module::name on `target` with `block` bytes blocked."""
    out, err = baremetal.run(target, _CODE % (block, module), image, timeout=1800)
    for line in out.splitlines():
        m = re.match(r"^(PASS|SKIP|FAIL) %s::%s(?:: (.*))?$" % (module, name), line)
        if m:
            return m.group(1) + (": " + m.group(2) if m.group(2) else "")
    tail = (out + err).strip().splitlines()[-1:]
    return "FAIL (no report): " + " ".join(tail)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("test", help="MODULE::NAME, a test of tests/device/MODULE.py")
    p.add_argument("--target", choices=sorted(baremetal.TARGETS), default="rv32imc")
    p.add_argument("--step", type=int, default=512, help="the blocker's increment in bytes")
    args = p.parse_args(argv)
    module, sep, name = args.test.partition("::")
    if not sep or not (ROOT / "tests" / "device" / (module + ".py")).is_file():
        print(
            "nanonn: test: expected MODULE::NAME of tests/device/MODULE.py, got %r" % args.test,
            file=sys.stderr,
        )
        return 1
    target = baremetal.TARGETS[args.target]
    reason = baremetal.unavailable(target)
    if reason:
        print("nanonn: %s" % reason, file=sys.stderr)
        return 1
    image = baremetal.stage(target, ROOT / "build" / ("headroom-" + target.name))
    first = status(target, image, module, name, 0)
    print("%s %s, nothing blocked: %s" % (target.name, args.test, first))
    if first != "PASS":
        return 1
    block = 0
    while block + args.step < target.heap:
        result = status(target, image, module, name, block + args.step)
        if result != "PASS":
            print(
                "%s %s: passes with 0 to %d bytes of the %d-byte heap blocked (every %d); with %d: %s"
                % (target.name, args.test, block, target.heap, args.step, block + args.step, result)
            )
            return 0
        block += args.step
    print("%s %s: passes with up to %d bytes blocked" % (target.name, args.test, block))
    return 0


if __name__ == "__main__":
    sys.exit(main())
