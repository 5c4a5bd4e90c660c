"""`nanonn convert` and `nanonn info`: the converter registry, scikit-learn and nanonn-JSON
parity on the unix port, .py/.mpy exports, board fit checks."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import types
import warnings

import joblib
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nanonn_tools import NanonnError, cli, converters, nnm, profiles
from nanonn_tools.convert import convert
from nanonn_tools.reference import flat_weights, random_network
from support import ARCHES, run_device, run_device_json

PREDICT = """
import json, sys
import nanonn
p = json.loads(sys.stdin.read())
if p.get("module"):
    net = nanonn.load(__import__(p["module"]).MODEL)
else:
    net = nanonn.load(p["path"])
print(json.dumps([list(net.predict(x)) for x in p["x"]]))
"""


def device_predict(path, X, module=None, extra_path=None):
    payload = {"path": str(path), "x": np.asarray(X).tolist(), "module": module}
    if extra_path is None:
        return np.array(run_device_json("micropython", PREDICT, payload))
    proc = run_device("micropython", ["-c", PREDICT], stdin=json.dumps(payload), extra_path=[extra_path])
    assert proc.returncode == 0, proc.stderr
    return np.array(json.loads(proc.stdout.strip().splitlines()[-1]))


def _data(seed=0, n=60, d=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, rng


def _fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


# ---------------------------------------------------------------- registry


def test_registry_maps_every_extension():
    assert converters.FORMATS == {
        ".keras": "keras",
        ".h5": "keras",
        ".pt": "torch",
        ".pth": "torch",
        ".onnx": "onnx",
        ".tflite": "tflite",
        ".pkl": "sklearn",
        ".joblib": "sklearn",
        ".json": "nanonn_json",
        ".nnm": "nnm_file",
    }
    assert set(converters.FORMATS.values()) == set(converters.EXTRAS)


def test_unknown_extension_lists_supported(tmp_path):
    src = tmp_path / "m.caffemodel"
    src.write_bytes(b"x")
    with pytest.raises(
        NanonnError, match=r"unsupported input extension '.caffemodel'; supported: .h5, .joblib"
    ):
        converters.load(src)


def test_missing_dependency_names_the_extra(tmp_path, monkeypatch):
    src = tmp_path / "m.onnx"
    src.write_bytes(b"x")
    fake = types.ModuleType("nanonn_tools.converters.onnx")

    def load(path, **options):
        raise ModuleNotFoundError("No module named 'onnx'", name="onnx")

    monkeypatch.setattr(fake, "load", load, raising=False)  # a new attribute of the fake module
    monkeypatch.setitem(sys.modules, "nanonn_tools.converters.onnx", fake)
    with pytest.raises(NanonnError, match=r"needs the 'onnx' extra .*pip install 'nanonn-tools\[onnx\]'"):
        converters.load(src)

    def failing_import(name):
        raise ModuleNotFoundError("No module named 'h5py'", name="h5py")

    monkeypatch.setattr(converters.importlib, "import_module", failing_import)
    keras_file = tmp_path / "m.keras"
    keras_file.write_bytes(b"x")
    with pytest.raises(NanonnError, match=r"'keras' extra \(missing Python package 'h5py'\)"):
        converters.load(keras_file)


# ---------------------------------------------------------------- scikit-learn


@pytest.mark.parametrize("kind", ["multiclass", "binary", "regressor"])
@pytest.mark.parametrize("writer", ["joblib", "pickle"])
def test_sklearn_parity_on_the_unix_port(tmp_path, kind, writer):
    X, rng = _data(1)
    if kind == "multiclass":
        model = _fit(
            MLPClassifier(hidden_layer_sizes=(8, 6), activation="tanh", max_iter=60, random_state=0),
            X,
            rng.integers(0, 3, len(X)),
        )
        expected = np.asarray(model.predict_proba(X[:10]))
    elif kind == "binary":
        model = _fit(
            MLPClassifier(hidden_layer_sizes=(7,), activation="relu", max_iter=60, random_state=0),
            X,
            X[:, 0] > 0,
        )
        expected = np.asarray(model.predict_proba(X[:10]))[:, 1:]
    else:
        model = _fit(
            MLPRegressor(hidden_layer_sizes=(9,), activation="logistic", max_iter=60, random_state=0),
            X,
            X @ [1, -2, 0.5, 3],
        )
        expected = np.asarray(model.predict(X[:10]))[:, None]
    src = tmp_path / ("model.joblib" if writer == "joblib" else "model.pkl")
    if writer == "joblib":
        joblib.dump(model, src)
    else:
        src.write_bytes(pickle.dumps(model))
    out = tmp_path / "model.nnm"
    assert cli.main(["convert", str(src), "-o", str(out)]) == 1  # a pickle is code: opt in
    assert cli.main(["convert", str(src), "-o", str(out), "--trust-code"]) == 0
    got = device_predict(out, X[:10])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_sklearn_refuses_other_estimators(tmp_path):
    X, rng = _data(2)
    pipe = _fit(
        make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(3,), max_iter=5, random_state=0)),
        X,
        X[:, 0] > 0,
    )
    src = tmp_path / "pipe.joblib"
    joblib.dump(pipe, src)
    with pytest.raises(NanonnError, match="a pickle/joblib file is code .* with trust_code=True"):
        convert(src, tmp_path / "out.nnm")
    with pytest.raises(NanonnError, match="expected one of MLPClassifier, MLPRegressor, got Pipeline"):
        convert(src, tmp_path / "out.nnm", trust_code=True)
    with pytest.raises(NanonnError, match="not supported; supported: trust_code"):
        convert(src, tmp_path / "out.nnm", activations="relu", trust_code=True)


def test_sklearn_refuses_non_finite_weights(tmp_path):
    X, rng = _data(3)
    model = _fit(MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0), X, X[:, 0])
    model.coefs_[1][2, 0] = np.nan
    src = tmp_path / "nan.joblib"
    joblib.dump(model, src)
    with pytest.raises(NanonnError, match=r"layer 1 \(dense\) weights: expected finite values"):
        convert(src, tmp_path / "out.nnm", trust_code=True)


# ---------------------------------------------------------------- nanonn JSON


def _json_model(tmp_path, sizes=(5, 7, 3), acts=("relu", "softmax")):
    layers = random_network(list(sizes), list(acts), seed=4)
    src = tmp_path / "weights.json"
    src.write_text(json.dumps([flat_weights(layer) for layer in layers]))
    return src, layers


def test_nanonn_json_parity(tmp_path):
    src, layers = _json_model(tmp_path)
    out = tmp_path / "m.nnm"
    assert (
        cli.main(["convert", str(src), "-o", str(out), "--activations", "relu,softmax", "--inputs", "5"]) == 0
    )
    X = np.random.default_rng(5).normal(size=(8, 5))
    from nanonn_tools.reference import predict

    np.testing.assert_allclose(device_predict(out, X), predict(layers, X), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "activations: expected one name per layer"),
        (["--activations", "relu"], "expected 2 names"),
        (["--activations", "relu,swish", "--inputs", "5"], "layer 1 activation: expected one of"),
        (["--activations", "relu,softmax", "--inputs", "6"], "--inputs 6 does not fit"),
    ],
)
def test_nanonn_json_errors(tmp_path, capsys, args, message):
    src, _ = _json_model(tmp_path)
    assert cli.main(["convert", str(src), "-o", str(tmp_path / "m.nnm")] + args) == 1
    assert message in capsys.readouterr().err


def test_nanonn_json_infers_unique_inputs(tmp_path):
    src, _ = _json_model(tmp_path, sizes=(4, 6, 1), acts=("tanh", "sigmoid"))
    spec = converters.load(src, activations="tanh,sigmoid")
    assert (spec.inputs, spec.outputs) == (4, 1)


# ---------------------------------------------------------------- exports


def test_py_export_loads_on_micropython(tmp_path):
    src, layers = _json_model(tmp_path)
    out = tmp_path / "gesture_model.py"
    convert(src, out, activations="relu,softmax", inputs=5)
    text = out.read_text()
    assert text.startswith("# Generated by `nanonn convert` from weights.json")
    assert "net = nanonn.load(gesture_model.MODEL)" in text
    X = np.random.default_rng(6).normal(size=(4, 5))
    nnm_path = tmp_path / "same.nnm"
    convert(src, nnm_path, activations="relu,softmax", inputs=5)
    np.testing.assert_array_equal(
        device_predict("", X, module="gesture_model", extra_path=tmp_path), device_predict(nnm_path, X)
    )


@pytest.mark.parametrize("board", ["esp32", "esp32s3", "esp32c3", "rp2040", "rp2350", "unix"])
def test_mpy_export_compiles_for_each_board(tmp_path, board):
    """--target checks the fit only: a model module holds no native code, so the .mpy
    is the same portable bytecode for every board (and without a target)."""
    src, _ = _json_model(tmp_path)
    out = tmp_path / "model.mpy"
    convert(src, out, target=board, activations="relu,softmax", inputs=5)
    data = out.read_bytes()
    assert data[:4] == b"M\x06\x00\x1f", data[:4]  # mpy v6, no native architecture
    assert profiles.load_profile(board).mpy_cross_arch in ARCHES
    portable = tmp_path / "no_target" / "model.mpy"
    portable.parent.mkdir()
    convert(src, portable, activations="relu,softmax", inputs=5)
    assert data == portable.read_bytes()
    if board == "unix":
        X = np.random.default_rng(7).normal(size=(3, 5))
        np.testing.assert_allclose(
            device_predict("", X, module="model", extra_path=tmp_path),
            device_predict(_nnm(src, tmp_path), X),
            rtol=0,
            atol=0,
        )


def test_mpy_export_without_target_is_portable_bytecode(tmp_path):
    src, _ = _json_model(tmp_path)
    out = tmp_path / "portable_model.mpy"
    convert(src, out, activations="relu,softmax", inputs=5)
    assert out.read_bytes()[:4] == b"M\x06\x00\x1f"  # mpy v6, no native architecture, small-int bits 31
    X = np.random.default_rng(8).normal(size=(2, 5))
    np.testing.assert_array_equal(
        device_predict("", X, module="portable_model", extra_path=tmp_path),
        device_predict(_nnm(src, tmp_path), X),
    )


def _nnm(src, tmp_path):
    out = tmp_path / "ref.nnm"
    convert(src, out, activations="relu,softmax", inputs=5)
    return out


def test_round_trip_convert_load_save_load_is_byte_identical(tmp_path):
    src, _ = _json_model(tmp_path)
    out = tmp_path / "m.nnm"
    convert(src, out, activations="relu,softmax", inputs=5)
    code = "import nanonn\nnet = nanonn.load(%r)\nnet.save(%r)\nnet2 = nanonn.load(%r)\nnet2.save(%r)\n" % (
        str(out),
        str(tmp_path / "a.nnm"),
        str(tmp_path / "a.nnm"),
        str(tmp_path / "b.nnm"),
    )
    proc = run_device("micropython", ["-c", code])
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a.nnm").read_bytes() == out.read_bytes() == (tmp_path / "b.nnm").read_bytes()
    assert nnm.dumps(nnm.read(out)) == out.read_bytes()


def test_target_refuses_a_model_too_big(tmp_path, capsys):
    layers = random_network([600, 64, 10], ["relu", "softmax"], seed=8)
    src = tmp_path / "big.json"
    src.write_text(json.dumps([flat_weights(layer) for layer in layers]))
    args = [
        "convert",
        str(src),
        "-o",
        str(tmp_path / "big.nnm"),
        "--activations",
        "relu,softmax",
        "--inputs",
        "600",
    ]
    assert cli.main(args + ["--target", "esp32"]) == 1
    err = capsys.readouterr().err
    assert "expected at most esp32's typical free heap of 110000 bytes" in err
    assert (
        "the largest is layer 0 (dense 600 -> 64" in err and "--quantize int8" in err and "freezing it" in err
    )
    assert cli.main(args + ["--target", "rp2350"]) == 0


def test_unsupported_output_and_lone_calibration(tmp_path):
    src, _ = _json_model(tmp_path)
    with pytest.raises(
        NanonnError, match=r"unsupported output extension '.tflite'; supported: .nnm, .py, .mpy"
    ):
        convert(src, tmp_path / "m.tflite", activations="relu,softmax", inputs=5)
    with pytest.raises(NanonnError, match="module name 'my-model' must be a Python identifier .* 'my_model'"):
        convert(src, tmp_path / "my-model.py", activations="relu,softmax", inputs=5)
    with pytest.raises(NanonnError, match="--calibration: expected together with --quantize int8"):
        convert(src, tmp_path / "m.nnm", calibration="x.npy", activations="relu,softmax", inputs=5)


# ---------------------------------------------------------------- info


def test_info_reports_layers_sizes_and_board_fit(tmp_path, capsys):
    src, _ = _json_model(tmp_path, sizes=(784, 40, 14, 10), acts=("leaky_relu", "leaky_relu", "softmax"))
    out = tmp_path / "mnist.nnm"
    convert(src, out, activations="leaky_relu,leaky_relu,softmax", inputs=784)
    assert cli.main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    params = 784 * 40 + 40 + 40 * 14 + 14 + 14 * 10 + 10
    assert "parameters: %d; MACs per inference: %d" % (params, 784 * 40 + 40 * 14 + 14 * 10) in text
    assert "file: %d bytes" % out.stat().st_size in text
    for name in ("esp32", "esp32c3", "esp32s3", "rp2040", "rp2350", "unix"):
        assert "\n" + name in text
    # 128 KB of float weights (784-40-14-10: clear of the edge; 784-36-14-10's 115 KB sits
    # within 100 B of the rp2040's heap from a file): too big for the esp32 heap from a file
    # once nanonn's own import and the load transient measured on the emulated boards are
    # counted (boards/measured.json), fine frozen; as int8 an rp2040 and (since
    # loading an int8 model imports only what it runs) an esp32 take it from a file.
    esp32 = [line for line in text.splitlines() if line.startswith("esp32 ")][0]
    assert esp32.split()[3:] == ["frozen", "only", "yes", "fits"], esp32
    rp2040 = [line for line in text.splitlines() if line.startswith("rp2040 ")][0]
    # rp2040: the float model from a file too, now that the measured load transient is
    # 10 KB (the reader allocates with fewer holes), not 45 KB
    assert rp2040.split()[3:] == ["yes", "yes", "fits"], rp2040


def test_info_takes_the_converter_options(tmp_path, capsys):
    src, _ = _json_model(tmp_path)
    assert cli.main(["info", str(src)]) == 1
    assert "activations: expected one name per layer" in capsys.readouterr().err
    assert cli.main(["info", str(src), "--activations", "relu,softmax", "--inputs", "5"]) == 0
    assert "float32 model, 2 layers, 5 inputs -> 3 outputs" in capsys.readouterr().out


def test_board_profiles_are_complete():
    assert profiles.names() == ["esp32", "esp32c3", "esp32s3", "rp2040", "rp2350", "unix"]
    for board in profiles.all_profiles():
        assert board.mpy_cross_arch in ARCHES
        assert board.heap_bytes > 50000
        if board.port != "unix":
            assert board.i2c is not None and set(board.i2c) == {"bus", "sda", "scl"}
            assert board.flash_bytes is not None and board.fs_bytes is not None
            assert board.flash_bytes > board.fs_bytes


def test_console_script_runs_convert(tmp_path):
    from support import tool

    src, _ = _json_model(tmp_path)
    proc = subprocess.run(
        [tool("nanonn"), "convert", str(src), "-o", str(tmp_path / "m.nnm"), "--activations", "relu,softmax"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and proc.stderr.startswith("nanonn: nanonn JSON: inputs: expected --inputs N")


def test_cli_passes_pytorch_options_to_the_torch_converter(tmp_path):
    torch = pytest.importorskip(
        "torch"
    )  # a test dependency (requirements.txt): never skipped under make test
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3), torch.nn.Softmax(dim=-1)
    )
    src = tmp_path / "model.pt"
    torch.save(model.state_dict(), src)
    out = tmp_path / "torch.nnm"
    assert cli.main(["convert", str(src), "-o", str(out), "--arch", "linear:6,tanh,linear:3,softmax"]) == 0
    X = np.random.default_rng(9).normal(size=(5, 4))
    with torch.no_grad():
        expected = model(torch.tensor(X, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(device_predict(out, X), expected, rtol=1e-4, atol=1e-5)
    whole = tmp_path / "whole.pt"
    torch.save(model, whole)
    assert cli.main(["convert", str(whole), "-o", str(out)]) == 1
    assert cli.main(["convert", str(whole), "-o", str(out), "--trust-code"]) == 0


def test_convert_target_help_says_what_it_does(capsys):
    """The help of `convert --target` says it checks the fit, not that it sets the .mpy arch."""
    with pytest.raises(SystemExit):
        cli.main(["convert", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    target = text.split(" options: ")[1]
    target = target[target.index("--target") :].split(" --quantize")[0]  # the option's help
    assert "arch" not in target and "fit" in target and "same for every board" in target, target
