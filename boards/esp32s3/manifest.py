# ruff: noqa: F821  (include/package/module are the manifest API of MicroPython's build)
# Firmware manifest: the port's own frozen modules, then nanonn and an optional model
# (see boards/manifest_common.py and `make firmware` in the README).
include("$(PORT_DIR)/boards/manifest.py")
include("../manifest_common.py")
