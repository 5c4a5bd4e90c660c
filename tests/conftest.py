import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# support.prefetch starts subprocesses from worker threads while tests run: a child forked while
# a test has an HDF5 file open holds a copy of its descriptor, and so its lock, until the child
# closes its descriptors; HDF5's file locking then refuses the test's next open of that file
# (EAGAIN, seen once in test_convert_keras). The tests open each file from one process.
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
# onnxruntime (1.32) writes telemetry on import: /tmp/.ses (a session id, outside pytest's
# tmp_path) and ~/.cache/Microsoft/DeveloperTools/.onnxruntime/; the tests leave no files.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import support  # noqa: E402

# torch.onnx.export (in tests and in the CLI runs they start, some before the first test:
# support.prefetch) makes torch's inductor cache folder, /tmp/torchinductor_<user> by default:
# into the session's scratch folder instead, removed at exit
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(support.scratch("torchinductor")))

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
