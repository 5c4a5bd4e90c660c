"""Keras (.keras and legacy .h5) converter: parity with Keras itself (torch
backend, no TensorFlow) and the refused cases."""

from __future__ import annotations

import json
import os
import re
import sys
import zipfile

import numpy as np
import pytest
from convert_support import activations, check_parity

from nanonn_tools import NanonnError, install_hint
from nanonn_tools.converters import keras as keras_converter

os.environ["KERAS_BACKEND"] = "torch"  # before keras is first imported
import keras  # noqa: E402  (the backend is chosen before the first import)

# keras 3.15 on the torch backend warns about numpy 2 __array__ copy semantics
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _data(seed=0, n=64, inputs=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, inputs)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[(x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int) + (x[:, 3] > 1)]
    return x, y


def _train(model, loss="categorical_crossentropy"):
    x, y = _data()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss)
    model.fit(x, y if loss != "mse" else y[:, :1], epochs=3, batch_size=16, verbose=0, shuffle=False)
    return model


def _predict(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model(x)))


def _sequential():
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(12, activation="tanh"),
            keras.layers.Dense(10),
            keras.layers.Dropout(0.2),
            keras.layers.LeakyReLU(negative_slope=0.15),
            keras.layers.Dense(8, activation="softplus"),
            keras.layers.Dense(6, activation="sigmoid"),
            keras.layers.Dense(5, activation="leaky_relu"),
            keras.layers.Dense(4),
            keras.layers.ReLU(),
            keras.layers.Dense(3, activation="linear"),
            keras.layers.Softmax(),
        ]
    )


def _functional():
    keras.utils.set_random_seed(2)
    inp = keras.Input((4,))
    h = keras.layers.Flatten()(inp)
    h = keras.layers.Dense(9, activation="relu")(h)
    h = keras.layers.Dense(7, use_bias=False)(h)
    h = keras.layers.Activation("tanh")(h)
    out = keras.layers.Dense(3, activation="softmax")(h)
    return keras.Model(inp, out)


@pytest.mark.parametrize("ext", [".keras", ".h5"])
@pytest.mark.parametrize("build", [_sequential, _functional], ids=["sequential", "functional"])
def test_keras_parity(tmp_path, build, ext):
    model = _train(build())
    path = str(tmp_path / ("model" + ext))
    model.save(path)
    spec = keras_converter.load(path)
    x = _data(seed=5, n=20)[0]
    check_parity(spec, x, _predict(model, x))
    if build is _sequential:
        assert activations(spec) == [
            "tanh", "leaky_relu", "dropout", "softplus", "sigmoid", "leaky_relu", "relu", "softmax",
        ]  # fmt: skip
        assert spec.layers[1].alpha == pytest.approx(0.15) and spec.layers[5].alpha == pytest.approx(0.2)
    else:
        assert activations(spec) == ["relu", "tanh", "softmax"] and spec.layers[1].b is None


def test_keras_needs_no_tensorflow(tmp_path):
    model = _train(_functional())
    path = str(tmp_path / "m.keras")
    model.save(path)
    saved = {
        k: sys.modules.pop(k) for k in list(sys.modules) if k == "tensorflow" or k.startswith("tensorflow.")
    }
    # Any import of it now fails (None in sys.modules is documented; typeshed types the values ModuleType).
    sys.modules["tensorflow"] = None  # pyright: ignore[reportArgumentType]
    try:
        assert keras_converter.load(path).outputs == 3
    finally:
        del sys.modules["tensorflow"]
        sys.modules.update(saved)


def _save(tmp_path, layers, ext=".keras", name="m"):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4,))] + layers)
    path = str(tmp_path / (name + ext))
    model.save(path)
    return path


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_keras_refuses_unsupported_layer(tmp_path, ext):
    path = _save(
        tmp_path,
        [keras.layers.Dense(6, name="d1"), keras.layers.BatchNormalization(name="bn"), keras.layers.Dense(2)],
        ext,
    )
    with pytest.raises(
        NanonnError,
        match=r"keras layer 'bn' \(BatchNormalization\): unsupported; supported: InputLayer, Dense",
    ):
        keras_converter.load(path)


@pytest.mark.parametrize(
    "layer, message",
    [
        (
            lambda: keras.layers.Dense(3, activation="gelu"),
            r"\(Dense\): unsupported activation 'gelu'; supported: .*softplus",
        ),
        (lambda: keras.layers.ReLU(max_value=6.0), r"\(ReLU\): unsupported max_value=6.0"),
    ],
)
def test_keras_refuses_unsupported_activation(tmp_path, layer, message):
    path = _save(tmp_path, [keras.layers.Dense(5), layer()])
    with pytest.raises(NanonnError, match=message):
        keras_converter.load(path)


def test_keras_refuses_stacked_activations(tmp_path):
    path = _save(tmp_path, [keras.layers.Dense(5, activation="tanh", name="d1"), keras.layers.ReLU()])
    with pytest.raises(
        NanonnError, match=re.escape("second activation 'relu' after 'd1', which already applies 'tanh'")
    ):
        keras_converter.load(path)


def _edit(path, edit_config=None, edit_weights=None):
    """Rewrite a .keras archive with its config or weights edited."""
    import h5py

    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    if edit_config:
        config = json.loads(members["config.json"])
        edit_config(config)
        members["config.json"] = json.dumps(config).encode()
    if edit_weights:
        tmp = path + ".h5"
        with open(tmp, "wb") as f:
            f.write(members["model.weights.h5"])
        with h5py.File(tmp, "r+") as h5:
            edit_weights(h5)
        with open(tmp, "rb") as f:
            members["model.weights.h5"] = f.read()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def test_keras_refuses_shape_mismatch(tmp_path):
    path = _save(tmp_path, [keras.layers.Dense(5, name="d1"), keras.layers.Dense(2, name="d2")])

    def grow(h5):  # the second kernel claims 6 inputs where the first layer gives 5
        del h5["layers/dense_1/vars/0"]
        h5["layers/dense_1/vars/0"] = np.ones((6, 2), np.float32)

    _edit(path, edit_weights=grow)
    with pytest.raises(
        NanonnError,
        match=re.escape(
            "keras layer 'd2' (Dense) inputs: expected 5 (the previous layer's output size), got 6"
        ),
    ):
        keras_converter.load(path)


def test_keras_refuses_multidimensional_dense(tmp_path):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((2, 3)), keras.layers.Dense(4)])
    model.save(str(tmp_path / "m.keras"))
    with pytest.raises(
        NanonnError,
        match=re.escape("(Dense) input shape: expected a vector, got [None, 2, 3]; add a Flatten first"),
    ):
        keras_converter.load(str(tmp_path / "m.keras"))


def test_keras_refuses_non_finite_weights(tmp_path):
    path = _save(tmp_path, [keras.layers.Dense(5, name="d1"), keras.layers.Dense(2, name="d2")])

    def poison(h5):
        h5["layers/dense/vars/1"][2] = np.nan

    _edit(path, edit_weights=poison)
    with pytest.raises(
        NanonnError,
        match=re.escape("keras layer 'd1' (Dense) bias: expected finite values, got 1 NaN or infinite"),
    ):
        keras_converter.load(path)


def test_keras_refuses_branching_model(tmp_path):
    keras.utils.set_random_seed(3)
    inp = keras.Input((4,))
    a = keras.layers.Dense(3, name="a")(inp)
    b = keras.layers.Dense(3, name="b")(inp)
    model = keras.Model(inp, keras.layers.Add()([a, b]))
    model.save(str(tmp_path / "m.keras"))
    with pytest.raises(
        NanonnError, match=r"keras layer 'b' \(Dense\) inputs: expected \['a'\] .* supported: Sequential"
    ):
        keras_converter.load(str(tmp_path / "m.keras"))


def test_keras_missing_h5py_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(NanonnError, match=re.escape(install_hint("keras"))):
        keras_converter.load(str(tmp_path / "m.keras"))


def test_keras_refuses_weights_only_file(tmp_path):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.save_weights(str(tmp_path / "m.weights.h5"))
    with pytest.raises(NanonnError, match="no model_config attribute"):
        keras_converter.load(str(tmp_path / "m.weights.h5"))


def _keras2_h5(path, functional: bool):
    """A legacy .h5 as TensorFlow 2's tf.keras writes it (Keras 2 config format,
    `name/kernel:0` weight names), built with h5py: no TensorFlow here."""
    import h5py

    rng = np.random.default_rng(9)
    k1, b1 = rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=6).astype(np.float32)
    k2, b2 = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    dense1 = {
        "class_name": "Dense",
        "config": {"name": "hidden", "units": 6, "activation": "linear", "use_bias": True},
    }
    leaky = {"class_name": "LeakyReLU", "config": {"name": "leaky", "alpha": 0.25}}
    dense2 = {
        "class_name": "Dense",
        "config": {"name": "out", "units": 3, "activation": "softmax", "use_bias": True},
    }
    inp = {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4], "name": "input_1"}}
    if functional:
        previous = "input_1"
        for layer in (dense1, leaky, dense2):
            layer["name"] = layer["config"]["name"]
            layer["inbound_nodes"] = [[[previous, 0, 0, {}]]]
            previous = layer["name"]
        inp["name"], inp["inbound_nodes"] = "input_1", []
        config = {
            "class_name": "Functional",
            "config": {"name": "model", "layers": [inp, dense1, leaky, dense2]},
        }
    else:
        config = {
            "class_name": "Sequential",
            "config": {"name": "sequential", "layers": [inp, dense1, leaky, dense2]},
        }
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(config)
        h5.attrs["keras_version"] = "2.15.0"
        h5.attrs["backend"] = "tensorflow"
        weights = h5.create_group("model_weights")
        for name, arrays in (("hidden", (k1, b1)), ("leaky", ()), ("out", (k2, b2))):
            group = weights.create_group(name)
            names = ["%s/%s:0" % (name, kind) for kind in ("kernel", "bias")[: len(arrays)]]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for n, a in zip(names, arrays):
                group[n] = a
    x = rng.normal(size=(10, 4)).astype(np.float64)
    h = x @ k1 + b1
    h = np.where(h > 0, h, 0.25 * h)
    z = h @ k2 + b2
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return x, e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("functional", [False, True], ids=["sequential", "functional"])
def test_keras2_legacy_h5(tmp_path, functional):
    path = str(tmp_path / "tf2.h5")
    x, expected = _keras2_h5(path, functional)
    spec = keras_converter.load(path)
    assert activations(spec) == ["leaky_relu", "softmax"] and spec.layers[0].alpha == 0.25
    check_parity(spec, x, expected)


def test_keras_refuses_damaged_file(tmp_path):
    path = _save(tmp_path, [keras.layers.Dense(2)])
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["model.weights.h5"] = b"not hdf5"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(NanonnError, match="not a readable Keras file"):
        keras_converter.load(path)
    missing = tmp_path / "nothing.keras"
    with pytest.raises(NanonnError, match="nothing.keras: no such file"):
        keras_converter.load(str(missing))


def test_keras_flatten_of_a_matrix_input(tmp_path):
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [
            keras.Input((2, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(5, activation="relu"),
            keras.layers.Dense(2),
        ]
    )
    path = str(tmp_path / "flat.keras")
    model.save(path)
    spec = keras_converter.load(path)
    x = np.random.default_rng(8).normal(size=(10, 2, 3)).astype(np.float32)
    assert spec.inputs == 6
    check_parity(spec, x.reshape(10, 6), _predict(model, x))  # the input flattened row-major
