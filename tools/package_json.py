"""Write (or with --check, verify) package.json: the mip package of the device files.

`mpremote mip install github:<owner>/<repo>` reads package.json at the repository
root; its relative URLs name the device package files under mpy/nanonn/, its version
is the device package's `nanonn.__version__`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def device_version() -> str:
    """`__version__` of mpy/nanonn/__init__.py (read as text: the package is not imported)."""
    path = ROOT / "mpy" / "nanonn" / "__init__.py"
    m = re.search(r'^__version__ = "([^"]+)"$', path.read_text(), re.M)
    if m is None:
        raise SystemExit('%s: expected a line __version__ = "X.Y.Z"' % path)
    return m.group(1)


def expected() -> str:
    files = sorted((ROOT / "mpy" / "nanonn").rglob("*.py"))
    urls = [[f.relative_to(ROOT / "mpy").as_posix(), f.relative_to(ROOT).as_posix()] for f in files]
    return json.dumps({"urls": urls, "version": device_version()}, indent=2) + "\n"


def main(argv: list[str]) -> int:
    path = ROOT / "package.json"
    text = expected()
    if "--check" in argv:
        if not path.exists() or path.read_text() != text:
            print("package.json is out of date: run python tools/package_json.py", file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
