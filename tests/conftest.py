import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# support.prefetch starts subprocesses from worker threads while tests run: a child forked while
# a test has an HDF5 file open holds a copy of its descriptor, and so its lock, until the child
# closes its descriptors; HDF5's file locking then refuses the test's next open of that file
# (EAGAIN, seen once in test_convert_keras). The tests open each file from one process.
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

import support  # noqa: E402

# Device scripts are run by tests/test_device.py under MicroPython and CPython,
# not imported by pytest.
collect_ignore = ["device"]


def pytest_collection_finish(session):
    """Start the shared subprocess runs that the selected items need in the background: each
    test module with a `prefetch_items(items)` gets its own selected items (support.prefetch)."""
    if session.config.option.collectonly:
        return
    by_module: dict = {}
    for item in session.items:
        module = getattr(item, "module", None)
        if module is not None and hasattr(module, "prefetch_items"):
            by_module.setdefault(module, []).append(item)
    for module, items in by_module.items():
        module.prefetch_items(items)


def pytest_sessionfinish(session):
    support.stop_prefetch()
