"""`nanonn info FILE`: layers, parameters, MACs, flash and RAM needs, fit on each board.

RAM figures are the heap a loaded model keeps on a 32-bit board, beyond the
nanonn package itself, estimated the way the device loader estimates them
(`nanonn/nnm/read.py`): weights (unless read in place from flash), each layer's
output buffers and a fixed overhead per buffer, layer and network. "file"
means loaded from a `.nnm` file or a `.mpy` on the filesystem (weights in
RAM); "frozen" means a bytes constant frozen into firmware or on ROMFS
(weights used in place). int8 figures are for the model quantized with
`nanonn convert --quantize int8`.

Fit on a board compares its typical free heap with what the model needs there
(`need`): with figures measured by `make bench-boards` on the board's emulated
stand-in (boards/measured.json: nanonn's import per load path on the board's arch,
the load transient per path), else the model's RAM alone. `--board NAME` shows
the breakdown and an estimated time per inference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import NanonnError, codes, converters, profiles
from .model import DenseSpec, DropoutSpec, ModelSpec

# The device loader's overheads (mpy/nanonn/nnm/read.py): per buffer, per layer, per network.
PER_BUFFER = 48
PER_LAYER = 320
PER_NETWORK = 512
INT8_TABLE = {"sigmoid": 256, "tanh": 256, "softplus": 256, "softmax": 1024, "softmax_tflite": 1024}


def _align(n: int) -> int:
    return (n + 3) & ~3


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


def stats(spec, file_bytes: int = 0) -> ModelStats:
    """Sizes and RAM estimates of a ModelSpec (or an int8 model spec)."""
    layers = layer_stats(spec)
    s = ModelStats(layers, dtype="float32" if isinstance(spec, ModelSpec) else "int8", file_bytes=file_bytes)
    head = codes.HEADER_SIZE + codes.RECORD_SIZE * len(layers) + codes.CRC_SIZE
    s.flash_float = head + sum(4 * layer.params for layer in layers)
    dense = [layer for layer in layers if layer.kind == "dense"]
    s.flash_int8 = head + sum(
        _align(32 + 12 * d.units + _align(d.units) + _align(d.macs) + INT8_TABLE.get(d.activation, 0))
        for d in dense
    )
    base = PER_NETWORK + 4 * dense[-1].units + PER_BUFFER
    s.ram_float_file = s.ram_float_frozen = base
    # int8 network: input staging (9 bytes per input), int8 output, the float output table
    first, last = dense[0], dense[-1]
    s.ram_int8_file = s.ram_int8_frozen = base + 9 * first.inputs + 1024 + last.units + 5 * PER_BUFFER
    for layer in layers:
        u, n = layer.units, layer.inputs
        if layer.kind == "dropout":
            extra = PER_LAYER + 9 * n + 3 * PER_BUFFER
            s.ram_float_file += extra
            s.ram_float_frozen += extra
            continue
        out_bufs = 8 * u + 2 * PER_BUFFER  # z, y
        s.ram_float_frozen += PER_LAYER + out_bufs + (0 if layer.params > layer.macs else 4 * u + PER_BUFFER)
        s.ram_float_file += PER_LAYER + out_bufs + 4 * (u * n + u) + 2 * PER_BUFFER
        # int8 (nanonn.int8.network.QDense): w_scale, bias, mult (4 bytes each), shift and output
        # (1 byte), the accumulators (4 x max(units, inputs)), the activation's table, the
        # kernels' parameter block (24 bytes per unit and 24: acc0 and the requantization);
        # leaky_relu runs as a 256-byte table built at load
        small = 38 * u + 24 + 4 * max(u, n) + 10 * PER_BUFFER + INT8_TABLE.get(layer.activation, 0)
        if layer.activation == "leaky_relu":
            small += 256 + PER_BUFFER
        s.ram_int8_frozen += PER_LAYER + small
        s.ram_int8_file += PER_LAYER + small + u * n + PER_BUFFER
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
