"""ModelSpec validation: the host's one check of shapes, names and finiteness."""

import re

import numpy as np
import pytest

from nanonn_tools import NanonnError
from nanonn_tools.model import DenseSpec, DropoutSpec, ModelSpec


def _spec():
    rng = np.random.default_rng(0)
    return ModelSpec(
        [
            DenseSpec(rng.normal(size=(5, 3)), rng.normal(size=5), "relu"),
            DropoutSpec(0.2),
            DenseSpec(rng.normal(size=(2, 5)), None, "softmax"),
        ]
    )


def test_valid_spec_predicts_like_reference():
    spec = _spec().validate()
    assert (spec.inputs, spec.outputs) == (3, 2)
    assert spec.layers[1].units == 5
    y = spec.predict(np.ones(3))
    assert y.shape == (2,) and abs(y.sum() - 1.0) < 1e-12


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: setattr(s.layers[2], "w", np.ones((2, 4))), "layer 2 (dense) inputs: expected 5"),
        (lambda s: setattr(s.layers[0], "activation", "swish"), "expected one of"),
        (lambda s: s.layers[0].w.__setitem__((0, 0), np.nan), "layer 0 (dense) weights: expected finite"),
        (lambda s: setattr(s.layers[0], "b", np.ones(4)), "bias: expected shape (5,)"),
        (lambda s: setattr(s.layers[1], "rate", 1.5), "rate: expected 0 <= rate < 1"),
        (lambda s: s.layers.insert(1, "conv2d"), "unsupported layer str"),
    ],
)
def test_invalid_specs_are_refused(mutate, message):
    spec = _spec()
    mutate(spec)
    with pytest.raises(NanonnError, match=re.escape(message)):
        spec.validate()
