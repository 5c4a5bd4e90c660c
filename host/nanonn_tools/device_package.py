"""The device package (`mpy/nanonn`, shipped in this package) and its facts, imported on CPython.

The device package runs on CPython too, so the host imports the device's own
tables and size formulas instead of keeping copies: the `.nnm` codes
(`nanonn/nnm/codes.py`), struct formats (`nanonn/nnm/layout.py`) and field names
(`device_fields`), the int8 block size (`nanonn/nnm/int8.py`), the RAM a loaded model
needs (`nanonn/nnm/read.py`). `device_module("nnm.codes")` imports
a module of the package as `nanonn_tools.device_package.nanonn.nnm.codes`: a
private name, so it never shadows a `nanonn` on sys.path (a checkout's
`mpy/nanonn`, or one a user installed), and the package's `__init__.py` (the
public API) is not run. Nothing is written next to the sources (no
`__pycache__` in the wheel's or the repository's folder).
"""

from __future__ import annotations

import collections
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import struct
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from . import NanonnError

PREFIX = __name__ + ".nanonn"  # the device package's private name on the host


def device_package_dir() -> Path:
    """The device package's sources (the repository's `mpy/nanonn`, shipped in this package;
    `NANONN_DEVICE_PACKAGE` names another copy)."""
    env = os.environ.get("NANONN_DEVICE_PACKAGE")
    path = Path(env) if env else Path(__file__).resolve().parent / "package-data" / "nanonn"
    if not (path / "__init__.py").is_file():
        raise NanonnError(
            "device package: expected nanonn's sources at %s, not found; set NANONN_DEVICE_PACKAGE "
            "to the mpy/nanonn directory" % path
        )
    return path


class _SourceOnly(importlib.machinery.SourceFileLoader):
    """Loads a device module from its source and writes no bytecode cache beside it."""

    def set_data(self, path, data, *, _mode=0o666) -> None:
        return None


class _Finder(importlib.abc.MetaPathFinder):
    """Finds `PREFIX.<module>` in the device package's folder (its subpackages included)."""

    def __init__(self, root: Path):
        self.root = root

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(PREFIX + "."):
            return None
        base = self.root.joinpath(*fullname[len(PREFIX) + 1 :].split("."))
        init = base / "__init__.py"
        if init.is_file():
            loader = _SourceOnly(fullname, str(init))
            return importlib.util.spec_from_file_location(
                fullname, init, loader=loader, submodule_search_locations=[str(base)]
            )
        source = base.with_suffix(".py")
        if source.is_file():
            return importlib.util.spec_from_file_location(
                fullname, source, loader=_SourceOnly(fullname, str(source))
            )
        return None


def _package() -> ModuleType:
    """The private parent package (its `__init__.py`, the device's public API, is not run)."""
    package = sys.modules.get(PREFIX)
    if package is None:
        root = device_package_dir()
        sys.meta_path.insert(0, _Finder(root))
        package = ModuleType(PREFIX, "nanonn's device package, imported by the host tools")
        package.__path__ = [str(root)]
        package.__package__ = PREFIX
        sys.modules[PREFIX] = package
    return package


def device_module(name: str) -> ModuleType:
    """The device package's module `name` ("nnm.codes", "nnm.int8", "nnm.read"), imported on
    CPython from the shipped sources under the private name `PREFIX.<name>`."""
    _package()
    try:
        return importlib.import_module(PREFIX + "." + name)
    except ModuleNotFoundError as exc:
        raise NanonnError(
            "device package: expected module nanonn.%s in %s, not found (%s)"
            % (name, device_package_dir(), exc)
        ) from None


def device_fields(module: str, prefix: str, fmt: str, typename: str) -> Any:
    """A namedtuple class `typename` for the items of the struct format `fmt`, each named as
    the device module `module` names its index: `<prefix>FIELD = const(i)` names item i
    `field` (nanonn/nnm/read.py's `_R_UNITS = const(5)`: a layer record's item 5 is `units`;
    tests/test_layout.py holds those indexes to the tables of docs/format.md, section
    "Layout"). Only the items after a `<prefix>..._BYTES` field may be left unnamed: they
    continue it, numbered (`_Q_RESERVED_BYTES`, three u8: `reserved_bytes`, `reserved_bytes_1`,
    `reserved_bytes_2`)."""
    count = len(struct.unpack(fmt, bytes(struct.calcsize(fmt))))
    named = {}
    for name, index in vars(device_module(module)).items():
        if name.startswith(prefix):
            if type(index) is not int or not 0 <= index < count or index in named:
                raise NanonnError(
                    "device package: expected nanonn.%s.%s to be a distinct index of the %d items of %r, got %r"
                    % (module, name, count, fmt, index)
                )
            named[index] = name[len(prefix) :].lower()
    fields: list[str] = []
    base, k = "", 0
    for i in range(count):
        if i in named:
            base, k = named[i], 0
        elif base.endswith("_bytes"):
            k += 1
        else:
            raise NanonnError(
                "device package: expected nanonn.%s to name item %d of %r (%s<FIELD> = const(%d)), found none"
                % (module, i, fmt, prefix, i)
            )
        fields.append("%s_%d" % (base, k) if k else base)
    return collections.namedtuple(typename, fields)


codes = device_module("nnm.codes")  # the .nnm format's constants and codes (docs/format.md)
