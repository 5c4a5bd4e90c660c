"""The `nanonn` command skeleton: --version, --help, exit codes."""

import subprocess
import sys

from nanonn_tools import NanonnError, __version__, cli


def test_version(capsys):
    try:
        cli.main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.strip() == "nanonn " + __version__


def test_help_lists_program(capsys):
    assert cli.main([]) == 0
    assert "usage: nanonn" in capsys.readouterr().out


def test_error_is_one_line_exit_1(capsys, monkeypatch):
    def register(sub):
        p = sub.add_parser("boom")
        p.set_defaults(handler=lambda args: (_ for _ in ()).throw(NanonnError("it broke: x=1, expected 2")))

    monkeypatch.setattr(cli, "COMMANDS", [register])
    assert cli.main(["boom"]) == 1
    assert capsys.readouterr().err == "nanonn: it broke: x=1, expected 2\n"


# What the command modules import inside the functions that use them, never at import.
HEAVY = (
    "mpremote",
    "serial",
    "torch",
    "tensorflow",
    "onnx",
    "onnxruntime",
    "h5py",
    "tflite",
    "sklearn",
    "joblib",
)


def test_help_and_info_import_no_framework_and_no_serial_stack(tmp_path):
    """`nanonn --help` and `nanonn info` (every command module imported, one model read)
    load none of the frameworks, mpremote or pyserial; `nanonn deploy` does load mpremote."""
    code = (
        "import sys\nfrom nanonn_tools import cli\ntry:\n cli.main(sys.argv[1:])\nexcept SystemExit:\n pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(%r)), file=sys.stderr)" % (HEAVY,)
    )
    model = str(_model(tmp_path))
    for argv, loaded in (
        (["--help"], "[]"),
        (["info", model], "[]"),
        (["deploy", model, "--port", "/dev/nanonn-none"], None),
    ):
        proc = subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120
        )
        last = proc.stderr.strip().splitlines()[-1]
        if loaded is None:  # the check can fail: a board command does import the serial stack
            assert "'serial'" in last, proc.stderr
        else:
            assert last == loaded, (argv, proc.stderr)


def test_console_script_installed():
    from support import tool

    proc = subprocess.run([tool("nanonn"), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("nanonn "), proc.stderr
    assert sys.executable


def _model(tmp_path):
    import numpy as np

    from nanonn_tools import nnm
    from nanonn_tools.model import DenseSpec, ModelSpec

    rng = np.random.default_rng(0)
    spec = ModelSpec([DenseSpec(rng.normal(size=(3, 4)).astype(np.float32), np.zeros(3, np.float32), "relu")])
    path = tmp_path / "m.nnm"
    nnm.write(spec, path)
    return path


def test_output_into_a_missing_directory_is_one_line(tmp_path):
    from support import tool

    out = tmp_path / "nonexistent" / "dir" / "o.nnm"
    proc = subprocess.run(
        [tool("nanonn"), "convert", str(_model(tmp_path)), "-o", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr == "nanonn: -o %s: expected an existing directory, %s does not exist\n" % (
        out,
        out.parent,
    )


def test_unwritable_output_is_one_line(tmp_path, capsys, monkeypatch):
    from pathlib import Path

    def refuse(self, data):
        raise PermissionError(13, "Permission denied", str(self))

    model = _model(tmp_path)
    monkeypatch.setattr(Path, "write_bytes", refuse)  # as a read-only directory would (root ignores modes)
    assert cli.main(["convert", str(model), "-o", str(tmp_path / "o.nnm")]) == 1
    err = capsys.readouterr().err
    assert err == "nanonn: [Errno 13] Permission denied: '%s'\n" % (tmp_path / "o.nnm.tmp")


def test_closed_output_pipe_is_one_line(tmp_path):
    """`nanonn info m.nnm | head` where head has gone: no traceback, exit 1."""
    import os

    from support import tool

    read, write = os.pipe()
    os.close(read)  # the reader is gone before nanonn writes
    try:
        proc = subprocess.run(
            [tool("nanonn"), "info", str(_model(tmp_path))], stdout=write, stderr=subprocess.PIPE, text=True
        )
    finally:
        os.close(write)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr == "nanonn: output closed before the command finished (broken pipe)\n"
