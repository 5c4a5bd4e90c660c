# ruff: noqa: F821  (include/package/module are the manifest API of MicroPython's build)
# Shared by boards/<name>/manifest.py: freeze the nanonn device package and, when the
# environment variable NANONN_MODEL names a module made by `nanonn convert ... -o model.py`,
# that model (its MODEL bytes constant then stays in flash: nanonn.load(model.MODEL) reads
# the weights in place). Paths are relative to this file. Used by `make firmware`.
import os

package("nanonn", base_path="../mpy")
_model = os.environ.get("NANONN_MODEL")
if _model:
    module(os.path.basename(_model), base_path=os.path.dirname(os.path.abspath(_model)))
