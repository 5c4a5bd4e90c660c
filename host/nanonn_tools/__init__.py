"""nanonn_tools: host-side tools for nanonn (CPython)."""

__version__ = "0.1.0"  # the wheel's version; = nanonn.__version__ and package.json (tests/test_packaging.py)


class NanonnError(Exception):
    """The one error type of the host tools; the CLI prints it as `nanonn: message`."""


def install_hint(extra: str) -> str:
    """The pip command that installs the host tools' optional `extra` (one wording everywhere)."""
    return "pip install 'nanonn-tools[%s]' (from a clone of nanonn: pip install './host[%s]')" % (
        extra,
        extra,
    )
