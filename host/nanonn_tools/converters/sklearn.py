"""scikit-learn `MLPClassifier` / `MLPRegressor` (pickled or joblib-dumped) -> ModelSpec.

Hidden layers use the model's `activation` (identity, logistic, tanh, relu);
the output layer its `out_activation_`: softmax (multi-class), logistic
(binary: one output, the probability of `classes_[1]`, i.e.
`predict_proba(X)[:, 1]`; multi-label: one per label) or identity
(regressors). sklearn's coefs_ are (inputs, units) and are transposed.

A pickle is code (unpickling runs it), so the file is read only with
`trust_code=True` (`nanonn convert --trust-code`), as the PyTorch converter
does for pickled modules: use it only for files from a trusted source
(nanonn's own `.nnm` is data). Needs the `sklearn` extra (scikit-learn and
joblib).
"""

from __future__ import annotations

import numpy as np

from .. import NanonnError, install_hint
from ..model import DenseSpec, ModelSpec

SUPPORTED = "MLPClassifier, MLPRegressor"
_ACTIVATIONS = {
    "identity": "linear",
    "logistic": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "softmax": "softmax",
}


def _require():
    try:
        import joblib
        import sklearn  # noqa: F401  (unpickling needs it)
    except ImportError as exc:
        raise NanonnError(
            "reading scikit-learn models needs the 'sklearn' extra (missing Python package %r); "
            "install it with: %s" % (exc.name or "?", install_hint("sklearn"))
        ) from None
    return joblib


def load(path: str, trust_code: bool = False, **options) -> ModelSpec:
    """Read a pickled/joblib MLPClassifier or MLPRegressor from `path` (needs trust_code=True)."""
    if options:
        raise NanonnError(
            "sklearn converter option(s) %s: not supported; supported: trust_code"
            % ", ".join(sorted(options))
        )
    if not trust_code:
        raise NanonnError(
            "%s: a pickle/joblib file is code (unpickling runs it); convert it only from a trusted "
            "source, with trust_code=True (nanonn convert --trust-code)" % path
        )
    joblib = _require()
    try:
        model = joblib.load(path)
    except Exception as exc:  # any unpickling failure: report it as the file's problem
        raise NanonnError(
            "%s: not a readable pickle/joblib file (%s: %s)" % (path, type(exc).__name__, exc)
        ) from None
    return from_model(model, source=path)


def from_model(model, source: str = "") -> ModelSpec:
    """Convert a fitted MLPClassifier/MLPRegressor object."""
    kind = type(model).__name__
    if kind not in ("MLPClassifier", "MLPRegressor"):
        raise NanonnError("%s: expected one of %s, got %s" % (source or "model", SUPPORTED, kind))
    if not hasattr(model, "coefs_"):
        raise NanonnError("%s: the %s is not fitted (no coefs_)" % (source or "model", kind))
    hidden = _activation(model.activation, "activation", source)
    out = _activation(model.out_activation_, "out_activation_", source)
    coefs, intercepts = model.coefs_, model.intercepts_
    layers = []
    for k, (w, b) in enumerate(zip(coefs, intercepts)):
        act = out if k == len(coefs) - 1 else hidden
        layers.append(
            DenseSpec(np.asarray(w, dtype=np.float64).T.copy(), np.asarray(b, dtype=np.float64), act)
        )
    return ModelSpec(layers, source).validate()


def _activation(name: str, field: str, source: str) -> str:
    if name not in _ACTIVATIONS:
        raise NanonnError(
            "%s: %s %r is not supported; supported: %s"
            % (source or "model", field, name, ", ".join(_ACTIVATIONS))
        )
    return _ACTIVATIONS[name]
