"""`.nnm` files as converter input (e.g. to export one as `.py`/`.mpy`, or to quantize it)."""

from __future__ import annotations

from .. import NanonnError, nnm


def load(path: str, **options):
    """The model spec stored in a `.nnm` file (float or int8); no options."""
    if options:
        raise NanonnError(
            "nnm input option(s) %s: not supported; supported: none" % ", ".join(sorted(options))
        )
    return nnm.read(path)
