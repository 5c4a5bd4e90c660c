# ruff: noqa: F821  (include/package/module are the manifest API of MicroPython's build)
# Firmware manifest: the unix port's standard variant modules, then nanonn and an
# optional model (see boards/manifest_common.py and `make firmware` in the README).
include("$(PORT_DIR)/variants/manifest.py")
include("../manifest_common.py")
