"""Keras models (`.keras` zip and legacy `.h5`) to a ModelSpec, without TensorFlow.

Reads the model's JSON config and its HDF5 weights with `h5py` (extra
`keras`). Supported: Sequential models and functional chains (each layer fed
by the one before) of InputLayer, Dense (activations linear, relu, sigmoid,
tanh, softmax, softplus, leaky_relu), Activation, LeakyReLU, ReLU (plain or
with a negative slope), Softmax (last axis), Dropout and Flatten. Keras
kernels are (inputs, units) and are transposed to nanonn's (units, inputs).

A Flatten as the first layer of a multi-dimensional input is exact when the
input is given flattened in row-major (C) order; a Dense on a
multi-dimensional input (Keras applies it to the last axis) is refused.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np

from .. import NanonnError
from ._chain import Chain, check_file, check_options, require

SUPPORTED = (
    "InputLayer, Dense, Activation, LeakyReLU, ReLU, Softmax, Dropout, Flatten; "
    "activations linear, relu, sigmoid, tanh, softmax, softplus, leaky_relu"
)
# Keras activation names -> (nanonn name, leaky slope)
_ACTIVATIONS = {
    "linear": ("linear", 0.01),
    "relu": ("relu", 0.01),
    "sigmoid": ("sigmoid", 0.01),
    "tanh": ("tanh", 0.01),
    "softmax": ("softmax", 0.01),
    "softplus": ("softplus", 0.01),
    "leaky_relu": ("leaky_relu", 0.2),  # keras.activations.leaky_relu's default slope
}


def load(path: str, **options):
    """Read a `.keras` or `.h5` Keras model file; returns a validated ModelSpec."""
    check_options("keras", options)
    h5py = require("h5py", "keras", "reading Keras files")
    check_file(path)
    try:
        config, weights = _read(h5py, path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:  # a damaged zip, HDF5 or JSON
        raise NanonnError(
            "%s: not a readable Keras file (%s: %s)" % (path, type(exc).__name__, exc)
        ) from None
    return _convert(path, config, weights)


def _read(h5py, path: str) -> tuple[dict, dict]:
    """(model config, layer name -> weight arrays) of a `.keras` archive or a legacy `.h5`."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            for member in ("config.json", "model.weights.h5"):
                if member not in names:
                    raise NanonnError(
                        "%s: expected a Keras v3 archive with %s, got members %s"
                        % (path, member, sorted(names))
                    )
            config = json.loads(z.read("config.json"))
            with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as h5:
                return config, _v3_weights(h5)
    if not h5py.is_hdf5(path):
        raise NanonnError("%s: expected a Keras .keras (zip) or .h5 (HDF5) file, got neither" % path)
    with h5py.File(path, "r") as h5:
        if "model_config" not in h5.attrs:
            raise NanonnError(
                "%s: no model_config attribute (a weights-only file?); save the whole model with model.save()"
                % path
            )
        raw = h5.attrs["model_config"]
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        return config, _legacy_weights(h5)


def _v3_weights(h5) -> dict:
    """Layer name -> list of arrays, from a Keras 3 `model.weights.h5`.

    Each layer's group `layers/<path>/vars` carries the layer's name as an
    attribute and its variables as datasets `0`, `1`, ... in creation order
    (kernel, then bias).
    """
    out = {}
    layers = h5.get("layers")
    if layers is None:
        return out
    for key in layers:
        group = layers[key].get("vars")
        if group is None:
            continue
        name = group.attrs.get("name", key)
        name = name.decode() if isinstance(name, bytes) else str(name)
        out[name] = [np.asarray(group[str(i)]) for i in range(len(group))]
    return out


def _legacy_weights(h5) -> dict:
    """Layer name -> list of arrays, from a legacy `.h5` (`model_weights/<layer>` with `weight_names`)."""
    out = {}
    root = h5.get("model_weights", h5)
    for name in root:
        group = root[name]
        names = group.attrs.get("weight_names", [])
        arrays = []
        for wname in names:
            wname = wname.decode() if isinstance(wname, bytes) else str(wname)
            arrays.append(np.asarray(group[wname]))
        out[name] = arrays
    return out


def _layer_list(path: str, config: dict) -> list[dict]:
    """The model's layers in order, checking that a functional model is a chain."""
    kind = config.get("class_name")
    cfg = config.get("config", {})
    layers = cfg.get("layers")
    if kind not in ("Sequential", "Functional", "Model") or not isinstance(layers, list):
        raise NanonnError(
            "%s: model class %r: unsupported; supported: Sequential or a functional chain" % (path, kind)
        )
    if kind == "Sequential":
        return layers
    previous = None
    for layer in layers:
        sources = sorted(set(_history_names(layer.get("inbound_nodes", []))))
        name = layer.get("name", layer.get("config", {}).get("name"))
        expected = [] if previous is None else [previous]
        if sources != expected:
            raise NanonnError(
                "keras layer %r (%s) inputs: expected %s (a chain of single-input layers), got %s; "
                "supported: Sequential models and functional chains"
                % (name, layer.get("class_name"), expected or "none", sources or "none")
            )
        previous = name
    return layers


def _history_names(node) -> list[str]:
    """Names of the layers feeding an `inbound_nodes` entry (Keras 3 and 2 formats)."""
    names = []
    if isinstance(node, dict):
        history = node.get("keras_history") if "keras_history" in node else None
        if history:
            names.append(history[0])
        for value in node.values():
            if value is not history:
                names.extend(_history_names(value))
    elif isinstance(node, list):
        if len(node) >= 3 and isinstance(node[0], str) and isinstance(node[1], int):
            names.append(node[0])  # Keras 2: [name, node_index, tensor_index, kwargs]
        else:
            for value in node:
                names.extend(_history_names(value))
    return names


def _activation(chain: Chain, name: str, kind: str, value) -> tuple[str, float]:
    if isinstance(value, dict):  # a serialized activation object
        value = value.get("config", {}).get("name", value.get("class_name"))
    if value is None:
        value = "linear"
    if value not in _ACTIVATIONS:
        raise chain.unsupported(name, kind, "activation %r" % (value,))
    return _ACTIVATIONS[value]


def _convert(path: str, config: dict, weights: dict):
    chain = Chain(path, "keras layer", SUPPORTED)
    shape = None  # the input's shape without the batch axis, when known
    for layer in _layer_list(path, config):
        kind = layer.get("class_name", "?")
        cfg = layer.get("config", {})
        name = cfg.get("name", layer.get("name", "?"))
        if kind == "InputLayer":
            batch_shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            if batch_shape:
                shape = list(batch_shape[1:])
                if len(shape) == 1 and shape[0] is not None:
                    chain.width = int(shape[0])
            continue
        if shape is None and "batch_input_shape" in cfg:  # Keras 2 Sequential without InputLayer
            shape = list(cfg["batch_input_shape"][1:])
            if len(shape) == 1 and shape[0] is not None:
                chain.width = int(shape[0])
        policy = cfg.get("dtype")
        policy = policy.get("config", {}).get("name") if isinstance(policy, dict) else policy
        if isinstance(policy, str) and not policy.startswith(("float", "mixed")):
            raise chain.unsupported(name, kind, "dtype policy %r (a quantized Keras layer)" % policy)
        if kind == "Flatten":
            if shape is not None and len(shape) > 1:
                if chain.layers or None in shape:
                    raise chain.unsupported(name, kind, "flatten of shape %s after other layers" % (shape,))
                chain.width = int(np.prod([d for d in shape if d is not None]))  # None refused above
            shape = [chain.width]
            continue
        if kind == "Dense":
            if shape is not None and len(shape) > 1:
                raise NanonnError(
                    "%s input shape: expected a vector, got %s; add a Flatten first"
                    % (chain.where(name, kind), [None] + shape)
                )
            arrays = weights.get(name)
            use_bias = cfg.get("use_bias", True)
            expected = 2 if use_bias else 1
            if arrays is None or len(arrays) != expected:
                raise NanonnError(
                    "%s weights: expected %d arrays (kernel%s), got %s"
                    % (
                        chain.where(name, kind),
                        expected,
                        ", bias" if use_bias else "",
                        "none" if arrays is None else len(arrays),
                    )
                )
            kernel = arrays[0]
            if kernel.ndim != 2 or kernel.shape[1] != cfg.get("units"):
                raise NanonnError(
                    "%s kernel: expected shape (inputs, %s), got %s"
                    % (chain.where(name, kind), cfg.get("units"), kernel.shape)
                )
            act, alpha = _activation(chain, name, kind, cfg.get("activation"))
            chain.dense(name, kind, kernel.T, arrays[1] if use_bias else None, act, alpha)
            shape = [chain.width]
        elif kind == "Activation":
            act, alpha = _activation(chain, name, kind, cfg.get("activation"))
            chain.activation(name, kind, act, alpha)
        elif kind == "LeakyReLU":
            chain.activation(
                name, kind, "leaky_relu", float(cfg.get("negative_slope", cfg.get("alpha", 0.3)))
            )
        elif kind == "ReLU":
            if cfg.get("max_value") is not None or float(cfg.get("threshold", 0.0) or 0.0) != 0.0:
                raise chain.unsupported(
                    name,
                    kind,
                    "max_value=%r, threshold=%r (only plain ReLU)"
                    % (cfg.get("max_value"), cfg.get("threshold")),
                )
            slope = float(cfg.get("negative_slope", 0.0) or 0.0)
            chain.activation(name, kind, "leaky_relu" if slope else "relu", slope or 0.01)
        elif kind == "Softmax":
            axis = cfg.get("axis", -1)
            if axis not in (-1, 1, [-1], [1]):
                raise chain.unsupported(name, kind, "axis %r (only the last axis)" % (axis,))
            chain.activation(name, kind, "softmax")
        elif kind == "Dropout":
            if cfg.get("noise_shape") is not None:
                raise chain.unsupported(name, kind, "noise_shape %r" % (cfg["noise_shape"],))
            chain.dropout(name, kind, float(cfg.get("rate", 0.0)))
        else:
            raise chain.unsupported(name, kind)
    return chain.spec()
