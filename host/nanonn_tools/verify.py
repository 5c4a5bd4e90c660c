"""`nanonn verify MODEL --data X.npy [--labels y.npy]`: host reference against the board.

The board runs the model deployed as `/<name of MODEL>` (`nanonn deploy` puts
it there) on every row of X; the host runs the numpy reference of MODEL. The
report gives the maximum absolute output difference, the agreement (samples
whose predicted class, the argmax, is the same; for one output, the same side
of 0.5) and with labels the accuracy on both sides. Exit status 1 when any
difference exceeds the tolerance: 1e-4 for a float model, 0 for an int8 model
(its int8 outputs must be equal).

A progress bar goes to stderr when stderr is a terminal (or with --progress).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np

from . import NanonnError
from .board_commands import Progress, add_board_options
from .connection import Connection, open_connection
from .deployed_model import DeployedModel, load_inputs, load_labels, read_deployed_model

BATCH_CHARS = 6000  # about this much input text per exec on the board


@dataclass
class VerifyResult:
    """`verify`'s comparison: max difference vs tolerance, agreement, accuracies."""

    kind: str
    samples: int
    max_diff: float
    tolerance: float
    agreement: float
    host_accuracy: float | None
    board_accuracy: float | None
    board_model_matches: bool

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.max_diff) and self.max_diff <= self.tolerance)


def board_outputs(
    conn: Connection, model: DeployedModel, rows: list, progress: Progress | None = None
) -> np.ndarray:
    """Run each input row through the board's `_nn_net` (set up by `model.board_setup`)."""
    results = []
    i = 0
    per_row = max(1, len(repr(rows[0])))
    batch = max(1, BATCH_CHARS // per_row)
    dtype = np.int64 if model.kind == "int8" else np.float64
    while i < len(rows):
        chunk = rows[i : i + batch]
        code = "for _nn_x in %r:\n print(' '.join([repr(v) for v in %s]))" % (chunk, model.board_call())
        out = conn.exec(code, timeout=60, what="running the model on the board")
        lines = [line for line in out.splitlines() if line.strip()]
        if len(lines) != len(chunk):
            raise NanonnError(
                "board outputs: expected %d rows, got %d (%r)" % (len(chunk), len(lines), out[-200:])
            )
        for line in lines:
            values = line.split()
            if len(values) != model.outputs:
                raise NanonnError(
                    "board outputs: expected %d values per row, got %d" % (model.outputs, len(values))
                )
            results.append([float(v) if dtype is np.float64 else int(v) for v in values])
        i += len(chunk)
        if progress is not None:
            progress.update(i)
    return np.asarray(results, dtype=dtype)


def classes(outputs: np.ndarray, kind: str, model: DeployedModel) -> np.ndarray:
    """Predicted class per row: argmax, or for one output the side of 0.5 (int8: of its zero)."""
    if outputs.shape[1] > 1:
        return np.argmax(outputs, axis=1)
    threshold = 0.5
    if kind == "int8":
        last = model.spec.layers[-1]
        threshold = 0.5 / float(last.out_scale) + float(last.out_zp)
    return (outputs[:, 0] > threshold).astype(np.int64)


def verify(
    model_path: str,
    data: str,
    labels: str | None = None,
    port: str | None = "auto",
    board_path: str | None = None,
    progress: bool | None = None,
    out=print,
) -> VerifyResult:
    """Compare the board's outputs for the rows of `data` with the host reference; prints a report."""
    model = read_deployed_model(model_path)
    X = load_inputs(data, model.inputs)
    y = load_labels(labels, len(X)) if labels else None
    reference = model.reference(X)
    rows = model.board_inputs(X)
    dest = board_path or "/" + os.path.basename(model_path)
    with open_connection(port) as conn:
        info = conn.info()
        matches = conn.deployed(info, dest, model_path, out)
        code = "from array import array\n" + model.board_setup(dest)
        conn.exec(code, timeout=60, what="loading %s on the board" % dest)
        bar = Progress(len(rows), "verify", sys.stderr.isatty() if progress is None else progress)
        try:
            got = board_outputs(conn, model, rows, bar)
        finally:
            bar.close()
    diff = np.abs(got.astype(np.float64) - reference.astype(np.float64))
    max_diff = float(np.max(diff)) if np.all(np.isfinite(diff)) else float("inf")
    host_cls = classes(reference, model.kind, model)
    board_cls = classes(got, model.kind, model)
    result = VerifyResult(
        kind=model.kind,
        samples=len(X),
        max_diff=max_diff,
        tolerance=model.tolerance,
        agreement=float(np.mean(host_cls == board_cls)),
        host_accuracy=float(np.mean(host_cls == y)) if y is not None else None,
        board_accuracy=float(np.mean(board_cls == y)) if y is not None else None,
        board_model_matches=matches,
    )
    out("board: %s, %s, arch %s" % (conn.port, info.version_text, info.arch or "unknown"))
    out("model: %s (%s), %d samples" % (dest, model.kind, result.samples))
    unit = "int8 steps" if model.kind == "int8" else "absolute"
    out("max difference: %.3g (%s; tolerance %g)" % (result.max_diff, unit, result.tolerance))
    out("agreement: %.2f%% (same predicted class on host and board)" % (100 * result.agreement))
    if result.host_accuracy is not None and result.board_accuracy is not None:
        out("accuracy: host %.2f%%, board %.2f%%" % (100 * result.host_accuracy, 100 * result.board_accuracy))
    out("verify: %s" % ("PASS" if result.passed else "FAIL"))
    return result


def register(sub) -> None:
    """Add `nanonn verify` to the CLI's subparsers."""
    p = sub.add_parser("verify", help="compare the board's outputs with the host reference")
    p.add_argument("model", help="the .nnm model (deployed to the board as /<its name>)")
    p.add_argument("--data", required=True, help="inputs X.npy, shape (n, inputs)")
    p.add_argument("--labels", help="labels y.npy (class indices or one-hot) for accuracy")
    add_board_options(p, progress="a progress bar", board_path=True)
    p.set_defaults(handler=_main)


def _main(args) -> int:
    result = verify(
        args.model, args.data, args.labels, port=args.port, board_path=args.board_path, progress=args.progress
    )
    return 0 if result.passed else 1
