"""What the board commands (deploy, verify, bench) share: their CLI options and progress bar."""

from __future__ import annotations

import sys


class Progress:
    """`label [#####-----] i/n` on stderr, redrawn in place; silent when disabled."""

    def __init__(self, total: int, label: str, enabled: bool, stream=None):
        self.total, self.label, self.enabled = total, label, enabled
        self.stream = stream or sys.stderr
        self.drawn = False

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        width = 30
        fill = width * done // max(1, self.total)
        self.stream.write(
            "\r%s [%s%s] %d/%d" % (self.label, "#" * fill, "-" * (width - fill), done, self.total)
        )
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        """End the bar's line (if it was drawn)."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def add_board_options(parser, progress: str | None = None, board_path: bool = False) -> None:
    """The CLI options the board commands share: --port, optionally --board-path and
    --progress/--no-progress (`progress`: what the bar shows)."""
    parser.add_argument("--port", default="auto", help="serial port, 'auto' (default) or 'unix'")
    if board_path:
        parser.add_argument("--board-path", help="the model's path on the board (default /<name of MODEL>)")
    if progress:
        parser.add_argument(
            "--progress",
            action="store_true",
            default=None,
            help="show %s (default: on a terminal)" % progress,
        )
        parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide it")
