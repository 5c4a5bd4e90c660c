"""Converter refusals completed per framework (docs/reliability.md has the table): the
cases tests/test_convert*.py did not cover, each checking the message: scikit-learn
too big for `--target` and shape mismatch; nanonn JSON non-finite weights and a
non-dense layer."""

from __future__ import annotations

import json
import re
import warnings
from typing import TypedDict

import joblib
import numpy as np
import pytest

from nanonn_tools import NanonnError
from nanonn_tools.convert import convert
from nanonn_tools.reference import flat_weights, random_network

SIZES = (600, 64, 10)  # 38,410 float32 parameters: ~154 KB, more than an ESP32's free heap
TOO_BIG = re.escape("expected at most esp32's typical free heap of 110000 bytes")


def _sklearn(tmp_path):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    X = np.random.default_rng(1).normal(size=(20, SIZES[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPRegressor(hidden_layer_sizes=(SIZES[1],), max_iter=1, random_state=0).fit(X, X[:, :10])
    path = tmp_path / "big.joblib"
    joblib.dump(model, path)
    return path, _sklearn_options()


def test_sklearn_refuses_a_model_too_big_for_the_target(tmp_path):
    src, options = _sklearn(tmp_path)
    out = tmp_path / "out.nnm"
    with pytest.raises(NanonnError, match=TOO_BIG) as err:
        convert(src, out, target="esp32", **options)
    assert "the largest is layer 0 (dense %d -> %d" % SIZES[:2] in str(err.value)
    assert not out.exists(), "nothing is written for a refused model"
    convert(src, out, target="rp2350", **options)  # a bigger board takes it
    assert out.exists()


class _ReaderOptions(TypedDict, total=False):
    trust_code: bool


def _sklearn_options() -> _ReaderOptions:
    """trust_code=True where the scikit-learn reader asks for it (a pickle is code)."""
    import inspect

    from nanonn_tools.converters import sklearn as reader

    return {"trust_code": True} if "trust_code" in inspect.signature(reader.load).parameters else {}


def _sklearn_small(tmp_path):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    X = np.random.default_rng(2).normal(size=(30, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, X[:, :2])


def test_sklearn_refuses_shape_mismatch(tmp_path):
    model = _sklearn_small(tmp_path)
    model.coefs_[1] = np.ones((6, 2))  # the output layer claims 6 inputs where the hidden layer gives 5
    model.intercepts_[1] = np.zeros(2)
    src = tmp_path / "mismatch.joblib"
    joblib.dump(model, src)
    with pytest.raises(NanonnError, match=r"inputs: expected 5 .*got 6"):
        convert(src, tmp_path / "out.nnm", **_sklearn_options())


def test_nanonn_json_refuses_non_finite_weights(tmp_path):
    layers = random_network([5, 7, 3], ["relu", "softmax"], seed=4)
    flat = [flat_weights(layer) for layer in layers]
    flat[1][4] = float("nan")
    src = tmp_path / "nan.json"
    src.write_text(json.dumps(flat))  # Python's json writes NaN
    with pytest.raises(NanonnError, match=r"layer 1 .*weights: expected finite values"):
        convert(src, tmp_path / "out.nnm", activations="relu,softmax", inputs=5)
    flat[1][4] = float("inf")
    src.write_text(json.dumps(flat))
    with pytest.raises(NanonnError, match=r"layer 1 .*weights: expected finite values"):
        convert(src, tmp_path / "out.nnm", activations="relu,softmax", inputs=5)


def test_nanonn_json_refuses_unsupported_layer(tmp_path):
    layers = random_network([5, 7, 3], ["relu", "softmax"], seed=4)
    src = tmp_path / "w.json"
    src.write_text(json.dumps([flat_weights(layers[0]), {"type": "conv2d"}]))
    # The JSON format holds dense layers only: anything else is refused by shape.
    with pytest.raises(NanonnError, match=r"w.json: expected a JSON list of flat weight lists"):
        convert(src, tmp_path / "out.nnm", activations="relu,softmax", inputs=5)
