"""Shared helpers of the framework converters (Keras, PyTorch, ONNX, TFLite).

Every converter walks its framework's graph in order and feeds a `Chain`
with dense layers, activations and dropouts; `Chain` folds each activation
into the dense layer before it, checks shapes and finite weights as it goes
(naming the framework's layer in every error) and returns a validated
`ModelSpec`. `require()` imports a framework lazily and names the extra to
install when it is missing.
"""

from __future__ import annotations

import importlib
import os

import numpy as np

from .. import NanonnError, install_hint
from ..model import DenseSpec, DropoutSpec, ModelSpec

# Activations that commute with inverted dropout (f(c x) = c f(x) for c >= 0),
# so a dropout between a dense layer and one of them can move after it.
_HOMOGENEOUS = ("linear", "relu", "leaky_relu")


def require(module: str, extra: str, what: str):
    """Import `module` or raise NanonnError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise NanonnError(
            "%s needs the Python package %r, which is not installed (%s); "
            "install it with: %s" % (what, module.split(".")[0], exc, install_hint(extra))
        ) from None


def check_file(path: str) -> None:
    """Refuse a path that is not a readable file before any framework looks at it."""
    if not os.path.isfile(path):
        raise NanonnError("%s: no such file" % path)
    if not os.access(path, os.R_OK):
        raise NanonnError("%s: not readable (permission denied)" % path)


def check_options(framework: str, options: dict, allowed: tuple = ()) -> None:
    """Refuse options this converter does not take (None values are ignored)."""
    for key, value in options.items():
        if value is not None and key not in allowed:
            raise NanonnError(
                "%s converter option %r: not supported; supported: %s"
                % (framework, key, ", ".join(allowed) if allowed else "none")
            )


class Chain:
    """Collects a sequential model layer by layer; see the module docstring.

    `framework` ("keras layer", "onnx node", ...) and each layer's `name`
    (with its type) go into every error message, and `supported` (the list of
    the framework's supported layer types) into the message of `unsupported()`.
    """

    def __init__(self, source: str, framework: str, supported: str, inputs: int | None = None):
        self.source = source
        self.framework = framework
        self.supported = supported
        self.width = inputs  # the current vector size, None until known
        self.layers: list = []
        self._last_dense: tuple[str, DenseSpec] | None = None
        self._dropout_after_dense: str | None = None

    def where(self, name: str, kind: str) -> str:
        return "%s %r (%s)" % (self.framework, name, kind)

    def unsupported(self, name: str, kind: str, detail: str = "") -> NanonnError:
        """The error for a layer/op type or setting nanonn cannot represent."""
        return NanonnError(
            "%s: unsupported%s; supported: %s"
            % (self.where(name, kind), " " + detail if detail else "", self.supported)
        )

    def expect_width(self, name: str, kind: str, what: str, actual: int) -> None:
        if self.width is not None and actual != self.width:
            raise NanonnError(
                "%s %s: expected %d (the previous layer's output size), got %d"
                % (self.where(name, kind), what, self.width, actual)
            )
        self.width = actual

    def dense(self, name: str, kind: str, w, b=None, activation: str = "linear", alpha: float = 0.01) -> None:
        """A dense layer; `w` is (units, inputs), `b` (units,) or None."""
        w = np.asarray(w, dtype=np.float32)
        if w.ndim != 2:
            raise NanonnError(
                "%s weights: expected 2 dimensions, got shape %s" % (self.where(name, kind), w.shape)
            )
        _finite(self.where(name, kind), "weights", w)
        if b is not None:
            b = np.asarray(b, dtype=np.float32)
            if b.shape != (w.shape[0],):
                raise NanonnError(
                    "%s bias: expected shape (%d,), got %s" % (self.where(name, kind), w.shape[0], b.shape)
                )
            _finite(self.where(name, kind), "bias", b)
        self.expect_width(name, kind, "inputs", int(w.shape[1]))
        spec = DenseSpec(w, b, "linear", 0.01)
        self.layers.append(spec)
        self.width = int(w.shape[0])
        self._last_dense = (name, spec)
        self._dropout_after_dense = None
        if activation != "linear":
            self.activation(name, kind, activation, alpha)

    def activation(self, name: str, kind: str, activation: str, alpha: float = 0.01) -> None:
        """An activation: folded into the dense layer before it."""
        if activation == "linear":
            return
        if self._last_dense is None:
            raise NanonnError(
                "%s: an activation before any dense layer is not supported; "
                "nanonn applies activations to dense layers' outputs" % self.where(name, kind)
            )
        dense_name, spec = self._last_dense
        if spec.activation != "linear":
            raise NanonnError(
                "%s: a second activation %r after %r, which already applies %r; "
                "nanonn applies one activation per dense layer"
                % (self.where(name, kind), activation, dense_name, spec.activation)
            )
        if self._dropout_after_dense is not None and activation not in _HOMOGENEOUS:
            raise NanonnError(
                "%s: activation %r after dropout %r cannot move before the dropout; "
                "put the dropout after the activation (allowed between: %s)"
                % (self.where(name, kind), activation, self._dropout_after_dense, ", ".join(_HOMOGENEOUS))
            )
        if not np.isfinite(alpha) or alpha < 0:
            raise NanonnError(
                "%s slope: expected a finite number >= 0, got %r" % (self.where(name, kind), alpha)
            )
        spec.activation = activation
        spec.alpha = float(alpha)

    def dropout(self, name: str, kind: str, rate: float) -> None:
        if not 0.0 <= rate < 1.0:
            raise NanonnError("%s rate: expected 0 <= rate < 1, got %r" % (self.where(name, kind), rate))
        self.layers.append(DropoutSpec(float(rate)))
        if self._last_dense is not None and self.layers[-2] is self._last_dense[1]:
            self._dropout_after_dense = name

    def spec(self) -> ModelSpec:
        if not any(isinstance(layer, DenseSpec) for layer in self.layers):
            raise NanonnError(
                "%s: expected at least one dense layer, got none; supported: %s"
                % (self.source, self.supported)
            )
        while self.layers and isinstance(self.layers[0], DropoutSpec):
            self.layers.pop(0)  # identity at inference; nanonn's first layer is dense
        return ModelSpec(self.layers, self.source).validate()


def _finite(where: str, what: str, values: np.ndarray) -> None:
    bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    if bad:
        raise NanonnError("%s %s: expected finite values, got %d NaN or infinite" % (where, what, bad))
