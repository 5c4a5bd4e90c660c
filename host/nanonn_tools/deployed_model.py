"""The model verify and bench run on the board: `DeployedModel`, its host reference and board code.

`read_deployed_model(path)` reads the model with the format's reader (`nnm.read`). A
float model is compared through `predict` (float outputs, tolerance 1e-4); an
int8 model (one with `predict_int8`) through `predict_int8` on int8 inputs
quantized on the host (exact).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import NanonnError

FLOAT_TOLERANCE = 1e-4


@dataclass
class DeployedModel:
    """A read `.nnm` model with its host reference and the board code that runs it."""

    path: str
    spec: Any  # ModelSpec (float) or QuantModelSpec (int8)
    kind: str  # "float" or "int8"

    @property
    def inputs(self) -> int:
        return int(self.spec.inputs)

    @property
    def outputs(self) -> int:
        return int(self.spec.outputs)

    @property
    def tolerance(self) -> float:
        return 0.0 if self.kind == "int8" else FLOAT_TOLERANCE

    def board_inputs(self, X: np.ndarray) -> list:
        """What the board's predict gets, per sample: floats, or int8 ints for an int8 model."""
        if self.kind == "int8":
            return np.asarray(
                self.spec.quantize_input(np.asarray(X, dtype=np.float32)), dtype=np.int64
            ).tolist()
        return [[float(v) for v in row] for row in np.asarray(X, dtype=np.float32)]

    def reference(self, X: np.ndarray) -> np.ndarray:
        """Host outputs (n, outputs) comparable with the board's: float64, or int8 as int64."""
        if self.kind == "int8":
            xq = self.spec.quantize_input(np.asarray(X, dtype=np.float32))
            return np.asarray(self.spec.predict_int8(xq), dtype=np.int64)
        # The board gets float32 inputs: give the reference the same values.
        return np.asarray(
            self.spec.predict(np.asarray(X, dtype=np.float32).astype(np.float64)), dtype=np.float64
        )

    def board_setup(self, board_path: str) -> str:
        """Board code: load the model into `_nn_net`."""
        return "import nanonn\n_nn_net = nanonn.load(%r)" % board_path

    def board_call(self) -> str:
        """Board expression of the outputs for input `_nn_x` (a list)."""
        if self.kind == "int8":
            return "_nn_net.predict_int8(array('b', _nn_x))"
        return "_nn_net.predict(_nn_x)"


def measure_load_code(board_path: str) -> str:
    """Board code: load `board_path` and measure the heap (`gc.mem_alloc()` after a
    `gc.collect()`) apart: `_nn_model`, what the loaded network keeps (it is loaded, measured
    and freed again), and `_nn_reader`, what stays after it is freed, i.e. the reader modules
    `nanonn.load` imports on first use (paid once per boot, whatever the model; `nanonn info`
    sizes the network only); `_nn_free`: the free heap before. Leaves `_nn_net` None."""
    return (
        "import gc, nanonn\ngc.collect()\n_nn_free = gc.mem_free()\n_nn_a = gc.mem_alloc()\n"
        "_nn_net = nanonn.load(%r)\ngc.collect()\n_nn_b = gc.mem_alloc()\n_nn_net = None\ngc.collect()\n"
        "_nn_reader = gc.mem_alloc() - _nn_a\n_nn_model = _nn_b - _nn_a - _nn_reader\n" % board_path
    )


def read_deployed_model(path: str) -> DeployedModel:
    """Read `path` (.nnm) for the host reference; raises NanonnError naming the problem."""
    if not os.path.isfile(path):
        raise NanonnError("model: expected a .nnm file, %s does not exist" % path)
    try:
        from . import nnm
    except ImportError:
        raise NanonnError("reading .nnm models needs nanonn_tools.nnm (the model format)") from None
    spec = nnm.read(path)
    kind = "int8" if hasattr(spec, "predict_int8") else "float"
    return DeployedModel(path, spec, kind)


def load_inputs(path: str, inputs: int) -> np.ndarray:
    """X.npy as (n, inputs) float32; one sample (inputs,) becomes (1, inputs)."""
    X = _load_npy(path, "--data")
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] != inputs:
        raise NanonnError("--data %s: expected shape (n, %d), got %s" % (path, inputs, X.shape))
    if not np.issubdtype(X.dtype, np.number):
        raise NanonnError("--data %s: expected numbers, got dtype %s" % (path, X.dtype))
    if len(X) == 0:
        raise NanonnError("--data %s: expected at least one sample, got 0" % path)
    if not np.all(np.isfinite(X)):
        raise NanonnError("--data %s: expected finite values, got NaN or infinity" % path)
    return X.astype(np.float32)


def load_labels(path: str, n: int) -> np.ndarray:
    """y.npy as (n,) class indices; one-hot rows (n, k) are turned into indices."""
    y = _load_npy(path, "--labels")
    if y.ndim == 2:
        y = np.argmax(y, axis=1)
    if y.ndim != 1 or len(y) != n:
        raise NanonnError(
            "--labels %s: expected shape (%d,) or (%d, classes), got %s" % (path, n, n, y.shape)
        )
    return y.astype(np.int64)


def _load_npy(path: str, option: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise NanonnError("%s: expected a .npy file, %s does not exist" % (option, path))
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise NanonnError("%s %s: expected a .npy array, got %s" % (option, path, exc)) from None
