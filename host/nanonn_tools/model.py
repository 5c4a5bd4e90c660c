"""The host's in-memory model: what converters produce and writers consume.

A `ModelSpec` is a sequential list of layer specs. Converters (Keras,
PyTorch, ONNX, TFLite, scikit-learn, nanonn JSON) build one; the `.nnm`
writer, the `.py`/`.mpy` exporter, `nanonn info` and the quantizer read it.
`validate()` is the one place that checks shapes, names and finiteness.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import NanonnError, reference

ACTIVATIONS = reference.ACTIVATIONS


@dataclass
class DenseSpec:
    """y = activation(w @ x + b). w: (units, inputs) float; b: (units,) or None."""

    w: np.ndarray
    b: np.ndarray | None = None
    activation: str = "linear"
    alpha: float = 0.01  # leaky_relu slope

    @property
    def units(self) -> int:
        return int(self.w.shape[0])

    @property
    def inputs(self) -> int:
        return int(self.w.shape[1])


@dataclass
class DropoutSpec:
    """Inverted dropout (identity at inference)."""

    rate: float
    units: int = 0  # set by ModelSpec.validate from the previous layer


@dataclass
class ModelSpec:
    """A sequential model: `layers` (DenseSpec/DropoutSpec) and its `source` for messages."""

    layers: list = field(default_factory=list)
    source: str = ""  # where it came from, for messages

    @property
    def inputs(self) -> int:
        return self.layers[0].inputs

    @property
    def outputs(self) -> int:
        for layer in reversed(self.layers):
            if isinstance(layer, DenseSpec):
                return layer.units
        raise NanonnError("model: expected at least one dense layer, got none")

    def dense_layers(self) -> list[DenseSpec]:
        return [layer for layer in self.layers if isinstance(layer, DenseSpec)]

    def validate(self) -> ModelSpec:
        """Check shapes, activation names and finite weights; raise NanonnError naming the layer."""
        if not self.layers or not isinstance(self.layers[0], DenseSpec):
            raise NanonnError("model%s: expected a dense first layer" % _at(self.source))
        n = self.layers[0].inputs
        for i, layer in enumerate(self.layers):
            where = "layer %d" % i
            if isinstance(layer, DropoutSpec):
                if not 0.0 <= layer.rate < 1.0:
                    raise NanonnError(
                        "%s (dropout) rate: expected 0 <= rate < 1, got %r" % (where, layer.rate)
                    )
                layer.units = n
                continue
            if not isinstance(layer, DenseSpec):
                raise NanonnError(
                    "%s: unsupported layer %s; supported: dense, dropout" % (where, type(layer).__name__)
                )
            w = np.asarray(layer.w)
            if w.ndim != 2:
                raise NanonnError(
                    "%s (dense) weights: expected 2 dimensions, got shape %s" % (where, w.shape)
                )
            if w.shape[1] != n:
                raise NanonnError(
                    "%s (dense) inputs: expected %d (the previous layer's units), got %d"
                    % (where, n, w.shape[1])
                )
            if layer.b is not None and np.asarray(layer.b).shape != (w.shape[0],):
                raise NanonnError(
                    "%s (dense) bias: expected shape (%d,), got %s"
                    % (where, w.shape[0], np.asarray(layer.b).shape)
                )
            if layer.activation not in ACTIVATIONS:
                raise NanonnError(
                    "%s (dense) activation: expected one of %s, got %r"
                    % (where, ", ".join(ACTIVATIONS), layer.activation)
                )
            for name, arr in (("weights", w), ("bias", layer.b)):
                if arr is not None and not np.all(np.isfinite(arr)):
                    raise NanonnError(
                        "%s (dense) %s: expected finite values, got NaN or infinity" % (where, name)
                    )
            n = w.shape[0]
        return self

    def reference_layers(self) -> list[dict]:
        """The layers as `nanonn_tools.reference` dicts (dropout is identity at inference)."""
        return [
            {
                "w": np.asarray(layer.w, dtype=np.float64),
                "b": np.zeros(layer.units) if layer.b is None else np.asarray(layer.b, dtype=np.float64),
                "activation": layer.activation,
                "alpha": layer.alpha,
            }
            for layer in self.dense_layers()
        ]

    def predict(self, x) -> np.ndarray:
        """Float64 reference outputs for one sample or a batch (rows)."""
        return reference.predict(self.reference_layers(), x)


def _at(source: str) -> str:
    return " (%s)" % source if source else ""
