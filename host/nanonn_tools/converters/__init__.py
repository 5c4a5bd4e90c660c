"""Converters: model files of other frameworks -> `ModelSpec`.

The registry maps a file extension to a converter module in this package,
imported only when a file of its kind is converted. Every converter module
exposes `load(path: str, **options) -> ModelSpec` (a validated spec) and
raises `NanonnError` for what it cannot convert, naming the layer and the
supported alternatives. Its framework is an optional extra of the
`nanonn-tools` package (`pip install 'nanonn-tools[onnx]'`); when it is
missing, `load` says which extra to install.

Options (`**options`) are converter-specific (e.g. `activations` for nanonn
JSON); the CLI passes only those the user gave, and a converter refuses an
option it does not take.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from .. import NanonnError, install_hint

# extension -> converter module (in this package)
FORMATS = {
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
# converter module -> the optional extra that installs its framework (None: no extra)
EXTRAS = {
    "keras": "keras",
    "torch": "torch",
    "onnx": "onnx",
    "tflite": "tflite",
    "sklearn": "sklearn",
    "nanonn_json": None,
    "nnm_file": None,
}


def add_options(parser) -> None:
    """The converters' options on an argparse parser (`nanonn convert`, `nanonn info`)."""
    parser.add_argument(
        "--activations",
        help="nanonn JSON / PyTorch state_dict input: one activation per layer, e.g. relu,relu,softmax",
    )
    parser.add_argument(
        "--inputs", type=int, help="nanonn JSON input: the number of inputs (when not inferable)"
    )
    parser.add_argument(
        "--arch",
        help="PyTorch state_dict input: the layers, e.g. linear:16,relu,dropout:0.2,linear:3,softmax",
    )
    parser.add_argument(
        "--trust-code",
        action="store_true",
        help="allow inputs that are code (pickled PyTorch modules, scikit-learn pickles): trusted files only",
    )


def options_from(args) -> dict:
    """The converter options the user gave (see add_options)."""
    options = {name: getattr(args, name) for name in ("activations", "inputs", "arch")}
    options = {name: value for name, value in options.items() if value is not None}
    if args.trust_code:
        options["trust_code"] = True
    return options


def converter_name(path) -> str:
    """The converter module's name for a path, by its extension."""
    ext = Path(path).suffix.lower()
    name = FORMATS.get(ext)
    if name is None:
        raise NanonnError(
            "%s: unsupported input extension %r; supported: %s" % (path, ext, ", ".join(sorted(FORMATS)))
        )
    return name


def _missing(name: str, exc: ImportError, path) -> NanonnError:
    extra = EXTRAS.get(name)
    package = (exc.name or "?").split(".")[0]
    if extra is None:
        return NanonnError(
            "%s: the %s converter needs the Python package %r (%s)" % (path, name, package, exc)
        )
    return NanonnError(
        "%s: reading this file needs the %r extra (missing Python package %r); install it with: %s"
        % (path, extra, package, install_hint(extra))
    )


def converter(name: str, path=""):
    """Import the converter module `name` (lazily); NanonnError naming the extra when it cannot."""
    try:
        return importlib.import_module("%s.%s" % (__name__, name))
    except ImportError as exc:
        if (exc.name or "").startswith(__name__ + "." + name):
            raise NanonnError(
                "%s: no %s converter in this installation of nanonn-tools" % (path, name)
            ) from None
        raise _missing(name, exc, path) from None


def load(path, **options):
    """Convert the model file at `path` into a validated ModelSpec, picking the converter by extension."""
    path = str(path)
    if not Path(path).is_file():
        raise NanonnError("%s: no such file" % path)
    name = converter_name(path)
    module = converter(name, path)
    given = {key: value for key, value in options.items() if value is not None}
    try:
        spec = module.load(path, **given)
    except ImportError as exc:
        raise _missing(name, exc, path) from None
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):
            raise NanonnError(
                "%s: the %s converter does not take option(s) %s" % (path, name, ", ".join(sorted(given)))
            ) from None
        raise
    if not spec.source:
        spec.source = path
    return spec
