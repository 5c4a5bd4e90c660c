"""PyTorch converter: parity with torch for saved modules and state_dicts, and
the refused cases."""

from __future__ import annotations

import re
import sys

import pytest
import torch
from convert_support import activations, check_parity

from nanonn_tools import NanonnError, install_hint
from nanonn_tools.converters import torch as torch_converter

nn = torch.nn


def _data(seed=0, n=64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = ((x[:, 0] + x[:, 1] * x[:, 2] > 0).long() + (x[:, 3] > 1).long()).clamp(max=2)
    return x, y


def _model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(4, 12),
        nn.Tanh(),
        nn.Linear(12, 10),
        nn.LeakyReLU(0.05),
        nn.Dropout(0.1),
        nn.Sequential(nn.Linear(10, 8), nn.Softplus()),
        nn.Linear(8, 6),
        nn.Sigmoid(),
        nn.Linear(6, 5),
        nn.ReLU(),
        nn.Linear(5, 4),
        nn.Identity(),
        nn.Linear(4, 3),
        nn.Softmax(dim=-1),
    )


ARCH = "flatten,linear:12,tanh,linear:10,leaky_relu:0.05,dropout:0.1,linear:8,softplus,linear:6,sigmoid,linear:5,relu,linear:4,identity,linear:3,softmax"


@pytest.fixture(scope="module")
def trained():
    model = _model()
    x, y = _data()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.nll_loss(torch.log(model(x) + 1e-9), y)
        loss.backward()
        opt.step()
    model.eval()
    xt = _data(seed=7, n=20)[0]
    with torch.no_grad():
        expected = model(xt).numpy()
    return model, xt.numpy(), expected


def _check(spec, trained):
    _, x, expected = trained
    check_parity(spec, x, expected)
    assert activations(spec) == [
        "tanh", "leaky_relu", "dropout", "softplus", "sigmoid", "relu", "linear", "softmax",
    ]  # fmt: skip


def test_torch_state_dict_with_arch(tmp_path, trained):
    path = str(tmp_path / "m.pt")
    torch.save(trained[0].state_dict(), path)
    _check(torch_converter.load(path, arch=ARCH), trained)


def test_torch_state_dict_with_activations(tmp_path, trained):
    path = str(tmp_path / "m.pth")
    torch.save({"model_state_dict": trained[0].state_dict(), "epoch": 3}, path)
    spec = torch_converter.load(path, activations="tanh,leaky_relu:0.05,softplus,sigmoid,relu,linear,softmax")
    assert spec.layers[1].alpha == pytest.approx(0.05)
    _, x, expected = trained
    check_parity(spec, x, expected)  # the dropout is not in the state_dict: identity at inference


def test_torch_whole_module_needs_trust(tmp_path, trained):
    path = str(tmp_path / "whole.pt")
    torch.save(trained[0], path)
    with pytest.raises(NanonnError, match=re.escape("holds a pickled module, which is code")):
        torch_converter.load(path)
    _check(torch_converter.load(path, trust_code=True), trained)


def test_torch_in_memory_module(trained):
    _check(torch_converter.from_module(trained[0]), trained)


def test_torch_refuses_unsupported_module():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 2))
    with pytest.raises(
        NanonnError, match=r"torch module '1' \(BatchNorm1d\): unsupported; supported: Linear, ReLU"
    ):
        torch_converter.from_module(model)


@pytest.mark.parametrize(
    "module, message",
    [
        (lambda: nn.GELU(), r"torch module '1' \(GELU\): unsupported; supported: Linear, ReLU, LeakyReLU"),
        (lambda: nn.Softplus(beta=2.0), r"\(Softplus\): unsupported beta=2.0"),
        (lambda: nn.Softmax(dim=0), r"\(Softmax\): unsupported dim=0 \(only the last dimension"),
    ],
)
def test_torch_refuses_unsupported_activation(module, message):
    torch.manual_seed(0)
    with pytest.raises(NanonnError, match=message):
        torch_converter.from_module(nn.Sequential(nn.Linear(4, 3), module()))


def test_torch_refuses_shape_mismatch(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(5, 2))
    with pytest.raises(
        NanonnError,
        match=re.escape(
            "torch module '2' (Linear) inputs: expected 6 (the previous layer's output size), got 5"
        ),
    ):
        torch_converter.from_module(model)
    path = str(tmp_path / "sd.pt")
    torch.save(nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).state_dict(), path)
    with pytest.raises(
        NanonnError,
        match=re.escape(
            "torch state_dict layer '0' weight: expected 8 units (arch item 'linear:8'), got shape (6, 4)"
        ),
    ):
        torch_converter.load(path, arch="linear:8,relu,linear:2")
    with pytest.raises(
        NanonnError,
        match=re.escape("activations: expected 2 names (one per Linear layer in the state_dict), got 3"),
    ):
        torch_converter.load(path, activations="relu,relu,softmax")


def test_torch_refuses_non_finite_weights():
    torch.manual_seed(0)
    last = nn.Linear(6, 2)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), last)
    with torch.no_grad():
        last.weight[1, 3] = float("inf")
    with pytest.raises(
        NanonnError,
        match=re.escape("torch module '2' (Linear) weights: expected finite values, got 1 NaN or infinite"),
    ):
        torch_converter.from_module(model)


def test_torch_refuses_non_linear_state_dict(tmp_path):
    path = str(tmp_path / "sd.pt")
    torch.save(nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6)).state_dict(), path)
    with pytest.raises(
        NanonnError,
        match=r"torch state_dict layer '1': parameters \['bias', 'num_batches_tracked', 'running_mean'",
    ):
        torch_converter.load(path, arch="linear:6,linear:6")


def test_torch_refuses_bad_arch_item(tmp_path):
    path = str(tmp_path / "sd.pt")
    torch.save(nn.Sequential(nn.Linear(4, 2)).state_dict(), path)
    with pytest.raises(
        NanonnError, match=r"torch arch item '1:swish' \(swish\): unsupported; supported: linear:UNITS, relu"
    ):
        torch_converter.load(path, arch="linear:2,swish")


def test_torch_missing_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(NanonnError, match=re.escape(install_hint("torch"))):
        torch_converter.load(str(tmp_path / "m.pt"), arch="linear:2")


def _corrupt_files(tmp_path, trained):
    """Files that are not readable PyTorch files: garbage, a cut zip, a zip with a flipped
    byte, a zip without data.pkl, a cut legacy (pre-zip) file."""
    import zipfile

    torch.save(trained[0].state_dict(), tmp_path / "ok.pt")
    data = (tmp_path / "ok.pt").read_bytes()
    torch.save(trained[0].state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    legacy = (tmp_path / "legacy.pt").read_bytes()
    with zipfile.ZipFile(tmp_path / "ok.pt") as z:
        info = z.getinfo(next(n for n in z.namelist() if n.endswith("data.pkl")))
    flipped = bytearray(data)
    local = info.header_offset  # the member's data follows its local header (name, extra: own lengths)
    start = local + 30 + int.from_bytes(data[local + 26 : local + 28], "little")
    start += int.from_bytes(data[local + 28 : local + 30], "little")
    flipped[start + 5] ^= 0xFF  # a byte of data.pkl
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("archive/weights.bin", b"\0" * 64)
    return {
        "garbage.pt": (b"not a torch file", "expected a torch.save zip archive or legacy pickle"),
        "cut.pt": (data[: len(data) // 2], "a damaged zip archive"),
        "flipped.pt": (bytes(flipped), "fails its CRC"),
        "nopickle.pt": (other.read_bytes(), "a zip archive without data.pkl"),
        "cut_legacy.pt": (
            legacy[: len(legacy) // 2],
            "not a readable PyTorch file (",
        ),  # IndexError, EOFError: where it is cut
    }


def test_torch_refuses_unreadable_file_before_mentioning_trust(tmp_path, trained):
    for name, (data, detail) in _corrupt_files(tmp_path, trained).items():
        path = tmp_path / name
        path.write_bytes(data)
        for trust in (False, True):
            with pytest.raises(NanonnError) as info:
                torch_converter.load(str(path), trust_code=trust)
            message = str(info.value)
            assert message.startswith("%s: not a readable PyTorch file (" % path), message
            assert detail in message and "trust" not in message, message


def test_torch_state_dict_needs_arch_or_activations(tmp_path, trained):
    """Without them the ReLU, softmax, ... would silently become linear: refused, with the
    --arch of the file's Linear layers to complete."""
    path = tmp_path / "m.pt"
    torch.save(trained[0].state_dict(), path)
    with pytest.raises(NanonnError) as info:
        torch_converter.load(str(path))
    message = str(info.value)
    assert message.startswith(
        "%s: a state_dict holds the Linear layers' weights but not the activations" % path
    )
    assert (
        "--arch linear:12,ACT,linear:10,ACT,linear:8,ACT,linear:6,ACT,linear:5,ACT,linear:4,ACT,linear:3,ACT "
        in message
    )
    assert (
        "e.g. --arch linear:12,relu,linear:10,relu,linear:8,relu,linear:6,relu,linear:5,relu,linear:4,relu,linear:3,softmax;"
        in message
    )
    assert "--activations" in message
    linear = torch_converter.load(str(path), activations=",".join(["linear"] * 7))  # all linear, on request
    assert activations(linear) == ["linear"] * 7
