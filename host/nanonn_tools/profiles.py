"""Board profiles: `BoardProfile`, what `boards/<name>/board.json` says (arch, memory, pins).

`load_profile(name)` reads one, `all_profiles()` every one; `measured(name)` gives the
figures `make bench-boards` measured for it. They describe a kind of board; the serial
connection to a board is `connection.Connection`.

Fields: `name`, `description`, `port` and `micropython_board` (for `make
firmware`), `mpy_cross_arch` (for `.mpy` exports), `heap_bytes` (typical free
heap after boot, the budget `nanonn info` and `nanonn convert --target` check),
`flash_bytes`, `fs_bytes` (filesystem space), `i2c` ({bus, sda, scl}: the
firmware's default I2C pins, for an IMU; null on the unix port). The profiles
are the repository's `boards/`, shipped in the package as `package-data/boards`
(override with NANONN_BOARDS=<dir>).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from . import NanonnError

FIELDS = (
    "name",
    "description",
    "port",
    "micropython_board",
    "mpy_cross_arch",
    "heap_bytes",
    "flash_bytes",
    "fs_bytes",
    "i2c",
)


@dataclass(frozen=True)
class BoardProfile:
    """A board profile: boards/<name>/board.json (port, mpy-cross arch, heap and flash sizes, I2C pins)."""

    name: str
    description: str
    port: str
    micropython_board: str
    mpy_cross_arch: str
    heap_bytes: int
    flash_bytes: int | None
    fs_bytes: int | None
    i2c: dict | None


def profiles_dir() -> Path:
    """The folder of board profiles: $NANONN_BOARDS, else the package's package-data/boards (= boards/)."""
    env = os.environ.get("NANONN_BOARDS")
    return Path(env) if env else Path(__file__).resolve().parent / "package-data" / "boards"


def names() -> list[str]:
    """The names of the board profiles found (folders with a board.json), sorted."""
    root = profiles_dir()
    return sorted(p.parent.name for p in root.glob("*/board.json"))


def load_profile(name: str) -> BoardProfile:
    """The profile `name`; NanonnError naming the known boards, or the missing fields."""
    path = profiles_dir() / name / "board.json"
    if not path.is_file():
        raise NanonnError("board %r: expected one of %s" % (name, ", ".join(names()) or "(no boards/ found)"))
    data = json.loads(path.read_text())
    missing = [f for f in FIELDS if f not in data]
    if missing:
        raise NanonnError("%s: missing field(s) %s" % (path, ", ".join(missing)))
    return BoardProfile(**{f: data[f] for f in FIELDS})


def measured(name: str) -> dict | None:
    """The figures `make bench-boards` measured for board `name` on an emulated stand-in
    (boards/measured.json, "boards" entry named by its "applies_to" map: a board without
    its own emulator takes the nearest measured one), or None when there are none."""
    path = profiles_dir() / "measured.json"
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    key = doc.get("applies_to", {}).get(name)
    if key is None:
        return None
    if key not in doc.get("boards", {}):
        raise NanonnError(
            "%s: applies_to names %r for %s, expected one of %s" % (path, key, name, sorted(doc["boards"]))
        )
    return dict(doc["boards"][key], measured_on=key)


def all_profiles() -> list[BoardProfile]:
    """Every board profile, sorted by name."""
    return [load_profile(n) for n in names()]
