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


def test_console_script_installed():
    from support import tool

    proc = subprocess.run([tool("nanonn"), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("nanonn "), proc.stderr
    assert sys.executable
