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

Files: a test writes only into `check.TMPDIR`, a folder of this run that the runner
makes first and removes last, and its module names every file it may write there in
`TEMP_FILES`; the runner removes those after each test, passed or failed, by name
(no listing, no strings built: the next test may need the whole of a board's heap).
A file left in the folder at the end that no `TEMP_FILES` named is removed too, and
reported as a failure (`FAIL runner::TEMP_FILES`).
"""

import gc
import os
import sys

from check import TMPDIR, Skipped

# ports with no writable filesystem: the bare-metal qemu firmware (Cortex-M3, rv32imc),
# which reads its modules from a read-only ROMFS
PORTS_WITHOUT_FILESYSTEM = ("qemu",)
HAS_FILESYSTEM = sys.platform not in PORTS_WITHOUT_FILESYSTEM


def _print_traceback(exc):
    if hasattr(sys, "print_exception"):
        sys.print_exception(exc)  # MicroPython
    else:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__)


def remove_files(paths):
    """Remove those of `paths` that exist (a module's TEMP_FILES, built at its import)."""
    for path in paths:
        try:
            os.remove(path)
        except OSError:  # not written by this test
            pass


def remove_folder():
    """Remove TMPDIR; return the names of the files that were left in it (removed too:
    none when every module's TEMP_FILES named its files). Lists the folder only then."""
    try:
        os.rmdir(TMPDIR)
        return []
    except OSError:  # not empty
        pass
    left = sorted(os.listdir(TMPDIR))
    remove_files([TMPDIR + "/" + name for name in left])
    os.rmdir(TMPDIR)
    return left


def run(module_name):
    module = __import__(module_name)
    names = sorted(n for n in dir(module) if n.startswith("test_"))
    needs_fs = getattr(module, "NEEDS_FILESYSTEM", ())
    temp_files = getattr(module, "TEMP_FILES", ()) if HAS_FILESYSTEM else ()
    passed = failed = skipped = 0
    for name in names:
        if name in needs_fs and not HAS_FILESYSTEM:
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
        if temp_files:
            remove_files(temp_files)
    return passed, failed, skipped


def main(argv):
    passed = failed = skipped = 0
    left = []
    if HAS_FILESYSTEM:
        os.mkdir(TMPDIR)
    try:
        for arg in argv:
            name = arg.split("/")[-1]
            if name.endswith(".py"):
                name = name[:-3]
            p, f, s = run(name)
            passed += p
            skipped += s
            failed += f
    finally:
        if HAS_FILESYSTEM:
            left = remove_folder()
    if left:
        print("FAIL runner::TEMP_FILES: left in %s, named in no TEMP_FILES (removed): %s" % (TMPDIR, left))
        failed += 1
    print("device: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return failed


if __name__ == "__main__":
    sys.exit(min(main(sys.argv[1:]), 100))
