"""PyTorch `nn.Sequential` models to a ModelSpec (extra `torch`).

Two sources:

- a state_dict (`torch.save(model.state_dict(), path)`), read with
  `torch.load(weights_only=True)`, which loads tensors only. Its layers come
  from `arch` (e.g. "linear:16,relu,dropout:0.2,linear:3,softmax"; items
  linear:UNITS, relu, leaky_relu[:SLOPE], sigmoid, tanh, softplus, softmax,
  identity, dropout[:RATE], flatten) or, without `arch`, from the
  state_dict's Linear weights in order plus `activations` (one activation
  item per Linear, e.g. "relu,leaky_relu:0.1,softmax"). A state_dict holds
  no activations, so one of the two is required: without them the error
  shows the `arch` of the file's Linear layers to complete.
- a file that is neither a zip archive with a `data.pkl` (torch.save's
  format) nor a legacy torch pickle, or one whose reading fails other than
  on a pickled module, is refused as not a readable PyTorch file (before any
  mention of `trust_code`).
- a whole pickled module (`torch.save(model, path)`). Unpickling a module
  runs code from the file, so it is done only with `trust_code=True`
  (`nanonn convert --trust-code`): use it only for files from a trusted
  source.

Supported modules: Linear, ReLU, LeakyReLU, Sigmoid, Tanh, Softplus (beta 1),
Softmax (last dim), Identity, Dropout, Flatten, and nested Sequential.
"""

from __future__ import annotations

import pickle
import zipfile

import numpy as np

from .. import NanonnError
from ._chain import Chain, check_file, check_options, require

SUPPORTED = (
    "Linear, ReLU, LeakyReLU, Sigmoid, Tanh, Softplus, Softmax, Identity, Dropout, Flatten "
    "inside nn.Sequential"
)
ARCH_ITEMS = "linear:UNITS, relu, leaky_relu[:SLOPE], sigmoid, tanh, softplus, softmax, identity, dropout[:RATE], flatten"
_SIMPLE = {"ReLU": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Identity": "linear"}
_ARCH_ACTIVATIONS = ("relu", "sigmoid", "tanh", "softplus", "softmax", "identity", "linear")


def load(path: str, arch=None, activations=None, trust_code: bool = False, **options):
    """Read a saved state_dict (with `arch` or `activations`) or, with `trust_code`, a pickled module."""
    check_options("torch", options, ("arch", "activations", "trust_code"))
    torch = require("torch", "torch", "reading PyTorch files")
    check_file(path)
    _check_readable(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for a pickled module; others for a damaged file
        if not isinstance(exc, pickle.UnpicklingError):
            raise NanonnError(
                "%s: not a readable PyTorch file (%s: %s)" % (path, type(exc).__name__, _first_line(exc))
            ) from None
        if not trust_code:
            raise NanonnError(
                "%s: not a plain state_dict (%s). A file saved with torch.save(model) holds a pickled "
                "module, which is code: load it only from a trusted source with trust_code=True "
                "(nanonn convert --trust-code), or save model.state_dict() and give --arch"
                % (path, type(exc).__name__)
            ) from None
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # whatever unpickling the file raises
            raise NanonnError(
                "%s: not a readable PyTorch file (%s: %s)" % (path, type(exc).__name__, exc)
            ) from None
    if isinstance(obj, torch.nn.Module):
        if arch is not None or activations is not None:
            raise NanonnError(
                "%s: holds a whole module; arch and activations apply to state_dicts only" % path
            )
        return from_module(obj, path)
    if isinstance(obj, dict):
        return from_state_dict(_unwrap(obj, path), arch=arch, activations=activations, source=path)
    raise NanonnError("%s: expected a state_dict or an nn.Module, got %s" % (path, type(obj).__name__))


# The start of a legacy (pre-zip) torch.save file: pickle protocol 2, then the magic number.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def _check_readable(path: str) -> None:
    """NanonnError unless `path` is a complete torch.save zip archive or starts like a legacy one."""
    with open(path, "rb") as f:
        head = f.read(len(_LEGACY_MAGIC))
    if head == _LEGACY_MAGIC:
        return
    if head[:4] != b"PK\x03\x04":
        raise NanonnError(
            "%s: not a readable PyTorch file (expected a torch.save zip archive or legacy pickle, "
            "got bytes %r)" % (path, head[:8])
        )
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise NanonnError(
            "%s: not a readable PyTorch file (a damaged zip archive: %s)" % (path, exc)
        ) from None
    if bad is not None:
        raise NanonnError("%s: not a readable PyTorch file (zip member %s fails its CRC)" % (path, bad))
    if not any(name.endswith("data.pkl") for name in names):
        raise NanonnError("%s: not a readable PyTorch file (a zip archive without data.pkl)" % path)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    if text:
        return text.splitlines()[0]
    return "the file ends early" if isinstance(exc, EOFError) else "no details"


def _unwrap(obj: dict, path: str) -> dict:
    """A training checkpoint often nests the state_dict under one of these keys."""
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj.get(key), dict):
            return obj[key]
    return obj


def from_module(module, source: str = "module"):
    """Convert an in-memory `nn.Sequential` (or a module tree of Sequentials)."""
    torch = require("torch", "torch", "converting PyTorch modules")
    chain = Chain(source, "torch module", SUPPORTED)
    if not isinstance(module, torch.nn.Sequential):
        raise chain.unsupported("model", type(module).__name__, "top-level module (expected nn.Sequential)")
    for name, child in _flatten(module, "", torch.nn.Sequential):
        _module(chain, torch, name, child)
    return chain.spec()


def _flatten(module, prefix: str, sequential):
    for name, child in module.named_children():
        full = prefix + name
        if isinstance(child, sequential):
            yield from _flatten(child, full + ".", sequential)
        else:
            yield full, child


def _module(chain: Chain, torch, name: str, m) -> None:
    nn = torch.nn
    kind = type(m).__name__
    if type(m) is nn.Linear:
        w = m.weight.detach().cpu().numpy()
        b = None if m.bias is None else m.bias.detach().cpu().numpy()
        chain.dense(name, kind, w, b)
    elif kind in _SIMPLE and type(m) is getattr(nn, kind):
        chain.activation(name, kind, _SIMPLE[kind])
    elif type(m) is nn.LeakyReLU:
        chain.activation(name, kind, "leaky_relu", float(m.negative_slope))
    elif type(m) is nn.Softplus:
        # torch's threshold (x * beta > threshold -> x) differs from the exact
        # softplus by at most log1p(exp(-threshold)) (2e-9 for the default 20).
        if m.beta != 1 or m.threshold < 15:
            raise chain.unsupported(
                name, kind, "beta=%r, threshold=%r (only beta=1, threshold >= 15)" % (m.beta, m.threshold)
            )
        chain.activation(name, kind, "softplus")
    elif type(m) is nn.Softmax:
        if m.dim not in (-1, 1, None):  # None: torch's implicit choice, 1 for a batch of vectors
            raise chain.unsupported(name, kind, "dim=%r (only the last dimension, -1 or 1)" % (m.dim,))
        chain.activation(name, kind, "softmax")
    elif type(m) is nn.Dropout:
        chain.dropout(name, kind, float(m.p))
    elif type(m) is nn.Flatten:
        if m.start_dim != 1 or m.end_dim != -1:
            raise chain.unsupported(
                name, kind, "start_dim=%r, end_dim=%r (only 1, -1)" % (m.start_dim, m.end_dim)
            )
        if chain.layers:
            raise chain.unsupported(name, kind, "after other layers (only first, on a vector input)")
    else:
        raise chain.unsupported(name, kind)


def _linear_groups(state: dict, source: str) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(prefix, weight, bias) of each Linear in the state_dict, in order; other parameters are refused."""
    groups: dict[str, dict] = {}
    for key, value in state.items():
        prefix, _, leaf = str(key).rpartition(".")
        if not hasattr(value, "detach"):
            raise NanonnError(
                "%s: state_dict entry %r: expected a tensor, got %s" % (source, key, type(value).__name__)
            )
        groups.setdefault(prefix, {})[leaf] = value.detach().cpu().numpy()
    out = []
    for prefix, params in groups.items():
        extra = sorted(set(params) - {"weight", "bias"})
        if extra or "weight" not in params or params["weight"].ndim != 2:
            raise NanonnError(
                "torch state_dict layer %r: parameters %s (shapes %s) are not a Linear's; supported: %s"
                % (prefix, sorted(params), [tuple(p.shape) for p in params.values()], SUPPORTED)
            )
        out.append((prefix, params["weight"], params.get("bias")))
    return out


def _split(text, what: str) -> list[str]:
    if isinstance(text, str):
        items = [t.strip() for t in text.split(",")]
    else:
        items = [str(t).strip() for t in text]
    if not items or "" in items:
        raise NanonnError("%s: expected a comma-separated list, got %r" % (what, text))
    return items


def from_state_dict(state: dict, arch=None, activations=None, source: str = "state_dict"):
    """Convert a state_dict of Linear layers given `arch` or per-Linear `activations`."""
    groups = _linear_groups(state, source)
    if arch is not None and activations is not None:
        raise NanonnError("%s: give either arch or activations, not both" % source)
    if arch is None and activations is None:
        raise NanonnError(
            "%s: a state_dict holds the Linear layers' weights but not the activations between them "
            "(without them ReLU, softmax etc. would silently become linear); give --arch %s with ACT "
            "the activation after each Linear (relu, leaky_relu[:SLOPE], sigmoid, tanh, softplus, "
            "softmax or identity; dropout[:RATE] and flatten where the model has them), e.g. --arch %s; "
            "or --activations with one name per Linear"
            % (
                source,
                ",".join("linear:%d,ACT" % w.shape[0] for _, w, _ in groups),
                ",".join(
                    "linear:%d,%s" % (w.shape[0], "softmax" if i == len(groups) - 1 else "relu")
                    for i, (_, w, _) in enumerate(groups)
                ),
            )
        )
    if arch is None:
        acts = _split(activations, "activations")
        if len(acts) != len(groups):
            raise NanonnError(
                "activations: expected %d names (one per Linear layer in the state_dict), got %d: %s"
                % (len(groups), len(acts), ",".join(acts))
            )
        items = []
        for act in acts:  # "linear" here is the activation, i.e. identity
            items += ["linear:*", "identity" if act.lower() == "linear" else act]
    else:
        items = _split(arch, "arch")
    chain = Chain(source, "torch arch item", ARCH_ITEMS)
    linear = 0
    for i, item in enumerate(items):
        kind, _, arg = item.partition(":")
        kind = kind.strip().lower()
        name = "%d:%s" % (i, item)
        if kind == "linear":
            if linear >= len(groups):
                raise NanonnError(
                    "arch item %r: expected at most %d linear items (the state_dict's Linear layers), got more"
                    % (item, len(groups))
                )
            prefix, w, b = groups[linear]
            linear += 1
            if arg not in ("*", "") and _int(arg, item) != w.shape[0]:
                raise NanonnError(
                    "torch state_dict layer %r weight: expected %s units (arch item %r), got shape %s"
                    % (prefix, arg, item, tuple(w.shape))
                )
            chain.dense(prefix, "Linear", w, b)
        elif kind == "leaky_relu":
            chain.activation(name, "LeakyReLU", "leaky_relu", _float(arg, item) if arg else 0.01)
        elif kind in _ARCH_ACTIVATIONS and not arg:
            chain.activation(name, kind, "linear" if kind == "identity" else kind)
        elif kind == "dropout":
            chain.dropout(name, "Dropout", _float(arg, item) if arg else 0.5)
        elif kind == "flatten" and not arg:
            if chain.layers:
                raise chain.unsupported(name, "Flatten", "after other layers (only first, on a vector input)")
        else:
            raise chain.unsupported(name, kind or "empty")
    if linear != len(groups):
        raise NanonnError(
            "arch: expected %d linear items (the state_dict's Linear layers), got %d" % (len(groups), linear)
        )
    return chain.spec()


def _int(text: str, item: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise NanonnError("arch item %r: expected an integer after ':', got %r" % (item, text)) from None


def _float(text: str, item: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise NanonnError("arch item %r: expected a number after ':', got %r" % (item, text)) from None
