"""Run the test_* functions of device test scripts (MicroPython or CPython).

    micropython tests/device/runner.py test_core [test_other ...]

Prints `PASS module::name`, `SKIP module::name: reason` or `FAIL module::name:
error` for each test (with the traceback before the FAIL line) and `N passed,
N failed, N skipped` at the end; exits with the number of failures (at most
100). MicroPython's unix port has no unittest: this is all the framework the
device tests need.

A test is skipped, never counted as passed, when the port cannot make its check:
the test raises `check.Skipped` (see check.skip: no native emitter, heap not
measurable...), or it is named in its module's `NEEDS_FILESYSTEM` and the port
has no writable filesystem (PORTS_WITHOUT_FILESYSTEM, by `sys.platform`).
"""

import gc
import sys

from check import Skipped

# ports with no writable filesystem: the bare-metal qemu firmware (Cortex-M3, rv32imc),
# which reads its modules from a read-only ROMFS
PORTS_WITHOUT_FILESYSTEM = ("qemu",)


def _print_traceback(exc):
    if hasattr(sys, "print_exception"):
        sys.print_exception(exc)  # MicroPython
    else:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__)


def run(module_name):
    module = __import__(module_name)
    names = sorted(n for n in dir(module) if n.startswith("test_"))
    needs_fs = getattr(module, "NEEDS_FILESYSTEM", ())
    passed = failed = skipped = 0
    for name in names:
        if name in needs_fs and sys.platform in PORTS_WITHOUT_FILESYSTEM:
            print(
                "SKIP %s::%s: needs a writable filesystem (port %s has none)"
                % (module_name, name, sys.platform)
            )
            skipped += 1
            continue
        fn = getattr(module, name)
        gc.collect()  # each test starts from a collected heap (a board's heap is small)
        try:
            fn()
        except Skipped as exc:
            print("SKIP %s::%s: %s" % (module_name, name, exc))
            skipped += 1
        except Exception as exc:  # report every failure, keep going
            _print_traceback(exc)
            print("FAIL %s::%s: %s: %s" % (module_name, name, type(exc).__name__, exc))
            failed += 1
        else:
            print("PASS %s::%s" % (module_name, name))
            passed += 1
    return passed, failed, skipped


def main(argv):
    passed = failed = skipped = 0
    for arg in argv:
        name = arg.split("/")[-1]
        if name.endswith(".py"):
            name = name[:-3]
        p, f, s = run(name)
        passed += p
        skipped += s
        failed += f
    print("device: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return failed


if __name__ == "__main__":
    sys.exit(min(main(sys.argv[1:]), 100))
