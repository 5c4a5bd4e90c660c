"""Run the test_* functions of device test scripts (MicroPython or CPython).

    micropython tests/device/runner.py test_core [test_other ...]

Prints `PASS module::name`, `SKIP module::name: reason` (a check this port
cannot make, see check.skip) or `FAIL module::name: error` for each test (with
the traceback before the FAIL line) and `N passed, N skipped, N failed` at the end;
exits with the number of failures (at most 100). MicroPython's unix port has
no unittest: this is all the framework the device tests need.
"""

import sys

from check import Skipped


def _print_traceback(exc):
    if hasattr(sys, "print_exception"):
        sys.print_exception(exc)  # MicroPython
    else:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__)


def run(module_name):
    module = __import__(module_name)
    names = sorted(n for n in dir(module) if n.startswith("test_"))
    passed = skipped = failed = 0
    for name in names:
        fn = getattr(module, name)
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
    return passed, skipped, failed


def main(argv):
    passed = skipped = failed = 0
    for arg in argv:
        name = arg.split("/")[-1]
        if name.endswith(".py"):
            name = name[:-3]
        p, s, f = run(name)
        passed += p
        skipped += s
        failed += f
    print("device: %d passed, %d skipped, %d failed" % (passed, skipped, failed))
    return failed


if __name__ == "__main__":
    sys.exit(min(main(sys.argv[1:]), 100))
