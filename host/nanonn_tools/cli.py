"""The `nanonn` command: a thin layer over the nanonn_tools library.

Each command module contributes `register(subparsers)`, which adds its subcommand and
sets `handler=function(args) -> int` as a default. Importing them is cheap: they import
numpy at most, and each imports its heavy dependencies (a framework's converter,
mpremote, pyserial) inside the function that uses them, so `nanonn --help` and
`nanonn info` load no framework and no serial stack (tests/test_cli.py checks it).
"""

from __future__ import annotations

import argparse
import os
import sys

from . import NanonnError, __version__, bench_on_board, convert, deploy, info, verify

# In the order `nanonn --help` lists them: model format commands, then board commands.
COMMANDS: list = [convert.register, info.register, deploy.register, verify.register, bench_on_board.register]


def build_parser() -> argparse.ArgumentParser:
    """The `nanonn` argument parser with every command module in `COMMANDS` registered."""
    parser = argparse.ArgumentParser(
        prog="nanonn",
        description="Convert, quantize, inspect and deploy nanonn models for MicroPython boards.",
    )
    parser.add_argument("--version", action="version", version="nanonn " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `nanonn` command on `argv` (default: sys.argv[1:]); returns the exit status.

    A `NanonnError` is printed as `nanonn: message` and gives 1, and so is an
    `OSError` a command did not turn into one (a file it cannot read or write),
    and a closed output pipe (`nanonn info m.nnm | head`); argparse exits
    (SystemExit 2) on bad arguments.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return int(handler(args) or 0)
    except NanonnError as exc:
        print("nanonn: %s" % exc, file=sys.stderr)
        return 1
    except BrokenPipeError:
        _drop_stdout()
        print("nanonn: output closed before the command finished (broken pipe)", file=sys.stderr)
        return 1
    except OSError as exc:
        print("nanonn: %s" % exc, file=sys.stderr)
        return 1


def _drop_stdout() -> None:
    """Point a closed stdout at /dev/null, so that the flush at exit does not fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # a captured stdout (tests): nothing to drop
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


if __name__ == "__main__":
    sys.exit(main())
