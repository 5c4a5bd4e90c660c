"""The original nanonn JSON weight lists -> ModelSpec.

The file is a JSON list with one flat list per dense layer, in the original
nanonn layout: for each unit, its input weights followed by its bias (as
written by zserge/nanonn's examples, e.g. `json.dumps([L1, L2, L3])`). The
layer sizes follow from the list lengths once the input count is known:
option `inputs` (CLI `--inputs`), inferred when only one input count fits.
Option `activations` (CLI `--activations relu,relu,softmax`, or a list) is
required: one name per layer, `leaky_relu` takes the slope 0.01 (nanonn's
default).
"""

from __future__ import annotations

import json

import numpy as np

from .. import NanonnError
from ..model import ACTIVATIONS, DenseSpec, ModelSpec


def load(path: str, activations=None, inputs=None, **options) -> ModelSpec:
    """A ModelSpec from a nanonn JSON file (a list of flat weight lists, see `from_lists`)."""
    if options:
        raise NanonnError(
            "nanonn JSON converter option(s) %s: not supported; supported: activations, inputs"
            % ", ".join(sorted(options))
        )
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise NanonnError("%s: not a readable JSON file (%s)" % (path, exc)) from None
    return from_lists(data, activations, inputs, source=path)


def _activation_list(activations, count: int) -> list[str]:
    if activations is None:
        raise NanonnError(
            "nanonn JSON: activations: expected one name per layer (%d), e.g. --activations %s; got none"
            % (count, ",".join(["relu"] * (count - 1) + ["softmax"]))
        )
    names = activations.split(",") if isinstance(activations, str) else list(activations)
    names = [n.strip() for n in names]
    if len(names) != count:
        raise NanonnError(
            "nanonn JSON activations: expected %d names (one per layer), got %d" % (count, len(names))
        )
    for i, name in enumerate(names):
        if name not in ACTIVATIONS:
            raise NanonnError(
                "nanonn JSON layer %d activation: expected one of %s, got %r"
                % (i, ", ".join(ACTIVATIONS), name)
            )
    return names


def _shapes(lengths: list[int], inputs) -> list[int]:
    """[inputs, units1, ...] from the flat lengths: units_k = len_k / (units_{k-1} + 1)."""

    def chain(n0: int):
        sizes = [n0]
        for length in lengths:
            if length % (sizes[-1] + 1):
                return None
            sizes.append(length // (sizes[-1] + 1))
        return sizes

    if inputs is not None:
        sizes = chain(int(inputs))
        if sizes is None or min(sizes) < 1:
            raise NanonnError(
                "nanonn JSON: --inputs %s does not fit the layer lengths %s (each layer holds units x (inputs + 1) values)"
                % (inputs, lengths)
            )
        return sizes
    fits = [s for s in (chain(n0) for n0 in range(1, lengths[0])) if s is not None and min(s) >= 1]
    if len(fits) != 1:
        raise NanonnError(
            "nanonn JSON: inputs: expected --inputs N, the layer lengths %s fit %s"
            % (lengths, "no input count" if not fits else "input counts %s" % [s[0] for s in fits][:10])
        )
    return fits[0]


def from_lists(data, activations=None, inputs=None, source: str = "") -> ModelSpec:
    """A ModelSpec from the original nanonn flat layout: one list per layer (per unit,
    its input weights then its bias); `activations` one name or one per layer,
    `inputs` when the layer lengths alone do not fix the sizes."""
    if not isinstance(data, list) or not data or not all(isinstance(layer, list) and layer for layer in data):
        raise NanonnError(
            "%s: expected a JSON list of flat weight lists (one per layer)" % (source or "nanonn JSON")
        )
    names = _activation_list(activations, len(data))
    sizes = _shapes([len(layer) for layer in data], inputs)
    layers = []
    for k, flat in enumerate(data):
        try:
            m = np.asarray(flat, dtype=np.float64).reshape(sizes[k + 1], sizes[k] + 1)
        except (TypeError, ValueError) as exc:
            raise NanonnError("nanonn JSON layer %d weights: expected numbers, got %s" % (k, exc)) from None
        layers.append(DenseSpec(m[:, :-1].copy(), m[:, -1].copy(), names[k]))
    return ModelSpec(layers, source).validate()
