import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Device scripts are run by tests/test_device.py under MicroPython and CPython,
# not imported by pytest.
collect_ignore = ["device"]
