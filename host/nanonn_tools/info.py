"""`nanonn info FILE`: layers, parameters, MACs, flash and RAM needs, fit on each board.

RAM figures are the heap a loaded model keeps on a 32-bit board, beyond the
nanonn package itself: the device loader's own figure (`nanonn/nnm/read.py`, the
one `nanonn.load` checks against the free heap, imported through
`device_package`), computed for a `.nnm` file of the model's shape:
weights (unless read in place from flash), each layer's output buffers and a
fixed overhead per buffer, layer and network. "file" means loaded from a `.nnm`
file or a `.mpy` on the filesystem (weights in RAM); "frozen" means a bytes
constant frozen into firmware or on ROMFS (weights used in place). int8 figures
are for the model quantized with `nanonn convert --quantize int8` (its dense
layers; dropout does not run at inference).

Fit on a board compares its typical free heap with what the model needs there
(`need`): with figures measured by `make bench-boards` on the board's emulated
stand-in (boards/measured.json: nanonn's import per load path on the board's arch,
the load transient per path), else the model's RAM alone. `--board NAME` shows
the breakdown and an estimated time per inference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import NanonnError, converters, nnm, nnm_int8, profiles
from .device_package import codes, device_module
from .model import DenseSpec, DropoutSpec, ModelSpec


@dataclass
class LayerStats:
    """One layer's size: kind, inputs, units, activation, parameters, MACs per inference."""

    kind: str  # "dense" or "dropout"
    inputs: int
    units: int
    activation: str = ""
    params: int = 0
    macs: int = 0


@dataclass
class ModelStats:
    """A model's layers and its flash and RAM needs, float32 and int8, from a file or frozen."""

    layers: list[LayerStats] = field(default_factory=list)
    dtype: str = "float32"
    file_bytes: int = 0  # the .nnm size of this model as it is
    flash_float: int = 0  # .nnm bytes as float32
    flash_int8: int = 0  # .nnm bytes once quantized to int8
    ram_float_file: int = 0
    ram_float_frozen: int = 0
    ram_int8_file: int = 0
    ram_int8_frozen: int = 0

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)


def layer_stats(spec) -> list[LayerStats]:
    """The LayerStats of each layer of a (float or int8) model spec."""
    out = []
    for layer in spec.layers:
        if isinstance(layer, DropoutSpec):
            out.append(LayerStats("dropout", layer.units, layer.units))
            continue
        u, n = layer.units, layer.inputs
        has_bias = getattr(layer, "b", None) is not None or not isinstance(layer, DenseSpec)
        out.append(LayerStats("dense", n, u, layer.activation, u * n + (u if has_bias else 0), u * n))
    return out


def records(layers: list[LayerStats], int8: bool) -> list:
    """The `.nnm` layer records (`nnm.Record`s) of `layers` stored as float32, or quantized
    to int8 (dense layers only: the quantizer drops dropout). Offsets are set by
    `nnm.assemble`; slopes, rates and seeds are 0: no size depends on them."""
    out = []
    for layer in layers:
        if layer.kind == "dropout":
            if int8:
                continue
            kind, dtype, act, flags, size = nnm.DROPOUT, 0, 0, 0, 0
        elif int8:
            kind, dtype, act, flags = nnm.DENSE, nnm.INT8, codes.ACTIVATIONS[layer.activation], nnm.BIAS
            size = nnm_int8.block_size(layer.units, layer.inputs, layer.activation)
        else:
            kind, dtype, act = nnm.DENSE, nnm.FLOAT32, codes.ACTIVATIONS[layer.activation]
            if layer.activation in codes.INT8_ONLY_ACTIVATIONS:  # no float layer has one
                act = codes.ACTIVATIONS["linear"]  # (no float size depends on the activation)
            bias = layer.params > layer.macs
            flags = nnm.BIAS if bias else 0
            size = nnm.float_block_size(layer.units, layer.inputs, bias)
        out.append(
            nnm.record(
                type=kind,
                dtype=dtype,
                activation=act,
                flags=flags,
                inputs=layer.inputs,
                units=layer.units,
                param=0.0,
                data_size=size,
                seed=0,
            )
        )
    return out


def shape_file(recs: list) -> bytes:
    """A valid `.nnm` file with the layer records `recs` (`nnm.Record`s) and zero-filled data
    blocks: a model's shape, which is all its sizes depend on."""
    return nnm.assemble(recs, [bytes(rec.data_size) for rec in recs])


def ram_needed(model: bytes, in_place: bool) -> int:
    """The heap (bytes) `nanonn.load` says the `.nnm` `model` needs for prediction: the
    device reader's own figure (`nanonn.nnm.read.ram_needed`), computed here. `in_place`:
    loaded from a bytes constant (frozen, ROMFS), its weights used where they are; else from
    a file (every block read into RAM)."""
    read = device_module("nnm.read")
    return read.ram_needed(model, not in_place)


def stats(spec, file_bytes: int = 0) -> ModelStats:
    """Sizes and RAM needs (the device loader's figures) of a ModelSpec (or an int8 model spec)."""
    layers = layer_stats(spec)
    s = ModelStats(layers, dtype="float32" if isinstance(spec, ModelSpec) else "int8", file_bytes=file_bytes)
    as_float, as_int8 = shape_file(records(layers, False)), shape_file(records(layers, True))
    s.flash_float, s.flash_int8 = len(as_float), len(as_int8)
    s.ram_float_file = ram_needed(as_float, in_place=False)
    s.ram_float_frozen = ram_needed(as_float, in_place=True)
    s.ram_int8_file = ram_needed(as_int8, in_place=False)
    s.ram_int8_frozen = ram_needed(as_int8, in_place=True)
    return s


def largest_layer(spec) -> tuple[int, LayerStats]:
    """(index, stats) of the layer with the most parameters."""
    layers = layer_stats(spec)
    index = max(range(len(layers)), key=lambda i: layers[i].params)
    return index, layers[index]


# MACs of the model the measured figures were taken on (784-36-14-10, boards/measured.json)
BENCH_MACS = 784 * 36 + 36 * 14 + 14 * 10


def need(s: ModelStats, board: profiles.BoardProfile) -> dict:
    """Free heap (bytes) the model needs on `board`, per (dtype, path): dtype "float" or
    "int8", path "file" or "frozen". With figures measured for the board
    (boards/measured.json, `make bench-boards`): the heap nanonn's import keeps for that
    dtype's load path on the board's arch, plus the model's RAM estimate, plus the load
    transient measured on that path for the 784-36-14-10 model (the smallest free heap that
    ran it less what it kept: buffers while loading and importing, fragmentation).
    Without: the model's RAM estimate alone."""
    ram = {
        ("float", "file"): s.ram_float_file,
        ("float", "frozen"): s.ram_float_frozen,
        ("int8", "file"): s.ram_int8_file,
        ("int8", "frozen"): s.ram_int8_frozen,
    }
    m = profiles.measured(board.name)
    if m is None:
        return ram
    return {
        (dtype, path): m["import_" + dtype] + r + m["smallest_free_heap_" + path] - m["kept_" + path]
        for (dtype, path), r in ram.items()
    }


def fit(s: ModelStats, board: profiles.BoardProfile) -> dict:
    """Whether the model fits `board`: {"float": ..., "int8": ...}, each "yes",
    "frozen only" or "no" (RAM, by `need`), and whether the file fits the filesystem."""
    result = {}
    needs = need(s, board)
    for dtype in ("float", "int8"):
        if needs[(dtype, "file")] <= board.heap_bytes:
            result[dtype] = "yes"
        elif needs[(dtype, "frozen")] <= board.heap_bytes:
            result[dtype] = "frozen only"
        else:
            result[dtype] = "no"
    size = s.file_bytes or s.flash_float
    result["fs"] = board.fs_bytes is None or size <= board.fs_bytes
    return result


def board_report(s: ModelStats, board: profiles.BoardProfile) -> list[str]:
    """The lines `nanonn info --board NAME` adds: the heap needed per dtype and path and,
    from the measured figures, an estimate of the time per inference."""
    m = profiles.measured(board.name)
    needs = need(s, board)
    lines = ["%s: %s free heap (typical after boot)" % (board.name, _kb(board.heap_bytes))]
    if m is None:
        lines.append(
            "  no figures measured for %s: the model's RAM estimate alone (nanonn itself not counted)"
            % board.name
        )
    else:
        lines.append(
            "  measured on %s (emulated: %s, .mpy %s; make bench-boards): import nanonn keeps %s "
            "(int8 path %s, float path %s)"
            % (
                m["measured_on"],
                m["interpreter"],
                m["mpy_arch"],
                _kb(m["import_nanonn"]),
                _kb(m["import_int8"]),
                _kb(m["import_float"]),
            )
        )
    for dtype in ("float", "int8"):
        for path in ("file", "frozen"):
            n = needs[(dtype, path)]
            lines.append(
                "  %-5s %-6s needs about %s: %s"
                % (dtype, path, _kb(n), "fits" if n <= board.heap_bytes else "does not fit")
            )
    if m is not None and s.macs:
        for name, key in (("predict_int8", "predict_int8"), ("float predict", "float_predict")):
            per_mac = m["instructions"][key] / BENCH_MACS
            ins = per_mac * s.macs
            lines.append(
                "  %s: about %d instructions (%.1f per MAC measured on %s), estimated %.0f us at %d MHz "
                "(one instruction per cycle assumed)"
                % (name, ins, per_mac, m["interpreter"], ins / m["clock_mhz"], m["clock_mhz"])
            )
    return lines


def _kb(n: int) -> str:
    return "%.1f KB" % (n / 1024.0)


def report(spec, file_bytes: int = 0, source: str = "", board: str = "") -> str:
    """The `nanonn info` text: layers, parameters, MACs, flash and RAM needs, fit on each
    board (or, with `board`, on that board with the heap needed per path)."""
    s = stats(spec, file_bytes)
    lines = [
        "%s: %s model, %d layers, %d inputs -> %d outputs"
        % (source or "model", s.dtype, len(s.layers), s.layers[0].inputs, s.layers[-1].units)
    ]
    lines.append("  #  layer    inputs  units  activation   params      MACs")
    for i, layer in enumerate(s.layers):
        lines.append(
            "%3d  %-7s %7d %6d  %-11s %7d %9d"
            % (i, layer.kind, layer.inputs, layer.units, layer.activation or "-", layer.params, layer.macs)
        )
    lines.append("parameters: %d; MACs per inference: %d" % (s.params, s.macs))
    if file_bytes:
        lines.append("file: %d bytes" % file_bytes)
    lines.append(
        "flash (.nnm): float32 %d bytes (%s), int8 %d bytes (%s)"
        % (s.flash_float, _kb(s.flash_float), s.flash_int8, _kb(s.flash_int8))
    )
    lines.append(
        "RAM at inference: float32 %s from a file, %s frozen; int8 %s from a file, %s frozen"
        % (_kb(s.ram_float_file), _kb(s.ram_float_frozen), _kb(s.ram_int8_file), _kb(s.ram_int8_frozen))
    )
    chosen = [profiles.load_profile(board)] if board else profiles.all_profiles()
    lines.append("board      heap       float        int8         filesystem")
    for b in chosen:
        f = fit(s, b)
        lines.append(
            "%-9s %9s  %-11s  %-11s  %s"
            % (b.name, _kb(b.heap_bytes), f["float"], f["int8"], "fits" if f["fs"] else "too big")
        )
    if board:
        lines.extend(board_report(s, chosen[0]))
    return "\n".join(lines)


def run(args) -> int:
    """The `nanonn info` command on args.file."""
    path = args.file
    if not Path(path).is_file():
        raise NanonnError("%s: no such file" % path)
    spec = converters.load(path, **converters.options_from(args))
    size = Path(path).stat().st_size if path.endswith(".nnm") else 0
    print(report(spec, size, path, board=args.board or ""))
    return 0


def register(sub) -> None:
    """Add the `info` subcommand to the CLI's subparsers."""
    p = sub.add_parser("info", help="layers, parameters, MACs, flash and RAM needs, fit on each board")
    p.add_argument("file", help="a .nnm model (or any file `nanonn convert` reads)")
    p.add_argument("--board", help="one board profile (boards/<name>): the heap needed per path, and speed")
    converters.add_options(p)
    p.set_defaults(handler=run)
