"""`nanonn convert` on each framework's file: the written .nnm predicts like the
converter's ModelSpec (the parity with each framework is in test_convert_*.py)."""

from __future__ import annotations

import numpy as np
import pytest
import tflite_writer as tw
import torch

from nanonn_tools import cli, nnm
from nanonn_tools.converters import onnx as onnx_converter
from nanonn_tools.converters import tflite as tflite_converter
from nanonn_tools.converters import torch as torch_converter
from nanonn_tools.quantize import QuantModelSpec


def _convert(capsys, *argv) -> tuple[int, str]:
    code = cli.main(["convert", *map(str, argv)])
    return code, capsys.readouterr().err


def _same(path, spec, inputs):
    x = np.random.default_rng(0).normal(size=(8, inputs))
    np.testing.assert_allclose(nnm.read(path).predict(x), spec.predict(x), rtol=0, atol=1e-6)


@pytest.fixture()
def state_dict(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3), torch.nn.Softmax(dim=1)
    )
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    torch.save(model, tmp_path / "whole.pt")
    return model


def test_cli_torch_arch_activations_and_trust(tmp_path, capsys, state_dict):
    arch = "linear:6,relu,linear:3,softmax"
    out = tmp_path / "a.nnm"
    assert _convert(capsys, tmp_path / "sd.pt", "-o", out, "--arch", arch) == (0, "")
    _same(out, torch_converter.load(str(tmp_path / "sd.pt"), arch=arch), 4)
    assert _convert(capsys, tmp_path / "sd.pt", "-o", out, "--activations", "relu,softmax") == (0, "")
    _same(out, torch_converter.load(str(tmp_path / "sd.pt"), arch=arch), 4)
    code, err = _convert(capsys, tmp_path / "whole.pt", "-o", out)
    assert code == 1 and "pickled module, which is code" in err and "--trust-code" in err
    assert _convert(capsys, tmp_path / "whole.pt", "-o", out, "--trust-code") == (0, "")
    _same(out, torch_converter.from_module(state_dict), 4)


def test_cli_onnx_tflite_and_refusals(tmp_path, capsys, state_dict):
    import warnings

    path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(state_dict, (torch.zeros(1, 4),), str(path), dynamo=False)
    out = tmp_path / "o.nnm"
    assert _convert(capsys, path, "-o", out) == (0, "")
    _same(out, onnx_converter.load(str(path)), 4)
    code, err = _convert(capsys, path, "-o", out, "--arch", "linear:3")
    assert code == 1 and "onnx converter option 'arch': not supported" in err

    rng = np.random.default_rng(1)
    data = tw.float_mlp(
        [
            (rng.normal(size=(5, 4)), rng.normal(size=5), 1, None),
            (rng.normal(size=(2, 5)), rng.normal(size=2), 0, ("SOFTMAX", {})),
        ],
        4,
    )
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    assert _convert(capsys, path, "-o", out) == (0, "")
    _same(out, tflite_converter.load(str(path)), 4)
    bad = tw.float_mlp([(rng.normal(size=(5, 4)), rng.normal(size=5), 3, None)], 4)
    path.write_bytes(bad)
    code, err = _convert(capsys, path, "-o", out)
    assert code == 1 and err.startswith(
        "nanonn: tflite op '#0 fc0' (FULLY_CONNECTED): unsupported fused activation RELU6"
    )


def _big_keras(path):
    import os

    os.environ["KERAS_BACKEND"] = "torch"
    import keras

    keras.utils.set_random_seed(0)
    keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(512, activation="relu"), keras.layers.Dense(10)]
    ).save(str(path))


def _big_torch(path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
    torch.save(model.state_dict(), path)


def _big_onnx(path):
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=s).astype(np.float32), n)
        for n, s in (("w", (512, 64)), ("w2", (10, 512)))
    ]
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "w"], ["h"], transB=1),
            helper.make_node("Gemm", ["h", "w2"], ["y"], transB=1),
        ],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    save(helper.make_model(graph), str(path))


def _big_tflite(path):
    rng = np.random.default_rng(0)
    layers = [
        (rng.normal(size=(512, 64)), np.zeros(512), 1, None),
        (rng.normal(size=(10, 512)), np.zeros(10), 0, None),
    ]
    path.write_bytes(tw.float_mlp(layers, 64))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras 3.15 on torch, numpy 2 __array__
@pytest.mark.parametrize(
    "ext, make", [(".keras", _big_keras), (".pt", _big_torch), (".onnx", _big_onnx), (".tflite", _big_tflite)]
)
def test_cli_refuses_model_too_big_for_target(tmp_path, capsys, ext, make):
    src = tmp_path / ("big" + ext)
    make(src)
    options = ["--activations", "relu,linear"] if ext == ".pt" else []
    code, err = _convert(capsys, src, "-o", tmp_path / "big.nnm", "--target", "esp32", *options)
    assert code == 1, err
    assert "expected at most esp32's typical free heap of 110000 bytes" in err
    assert "the largest is layer 0 (dense 64 -> 512" in err and "alternatives: --quantize int8" in err
    assert not (tmp_path / "big.nnm").exists()
    assert _convert(capsys, src, "-o", tmp_path / "big.nnm", "--target", "rp2350", *options) == (0, "")


def test_cli_tflite_int8(tmp_path, capsys):
    rng = np.random.default_rng(2)
    layers = [
        (rng.normal(size=(8, 4)), rng.normal(size=8) * 0.3, 1, None),
        (rng.normal(size=(3, 8)), rng.normal(size=3) * 0.3, 0, ("SOFTMAX", {})),
    ]
    x = rng.normal(size=(40, 4))
    path = tmp_path / "q.tflite"
    path.write_bytes(tw.int8_mlp(layers, x, per_channel=True, float_io=True))
    out = tmp_path / "q.nnm"
    assert _convert(capsys, path, "-o", out) == (0, "")
    spec, written = tflite_converter.load(str(path)), nnm.read(out)
    assert isinstance(written, QuantModelSpec) and isinstance(spec, QuantModelSpec)
    xq = spec.quantize_input(x.astype(np.float32))
    np.testing.assert_array_equal(written.predict_int8(xq), spec.predict_int8(xq))
