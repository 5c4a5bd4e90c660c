"""Saves that survive a power cut where rename is not atomic (FAT): generations and a backup.

`nanonn.nnm.read.save(net, path, backup=True)` (the default on a FAT mount) writes the
model with a generation number in a 4-byte header extension (header bytes 32..35,
skipped by every 1.x reader; docs/format.md), one more than the newest of `path`
and `path + ".bak"`. After the temporary file is closed, `rotate` renames a valid
`path` to `path + ".bak"` (removing the old backup first, so the rename replaces
nothing) or removes a damaged one (keeping the backup), then `save` renames the
temporary file to `path`. `load_newest` (used by `nanonn.load(path)` when a backup
exists) loads the valid one with the higher generation, and the other when that one
is missing or damaged. At every step at least one valid model, the old or the new,
is on the filesystem (tests/test_power_loss.py, docs/reliability.md).

Imported only when saving with a backup or loading a path that has one. Its
functions allocate only small fixed buffers (a header, a 256-byte chunk), path
strings and, for `load_newest`, the loaded network; nothing sized from a file.
"""

import os
import struct

from ..crc32 import update as _crc
from ..errors import ModelFormatError
from . import codes

# The reader's helpers are imported inside the functions that read (on use): `save` on a
# filesystem without a backup imports this module only for `on_fat`, and never the reader.


def on_fat(path):
    """True when `path` is on a FAT mount (MicroPython's vfs.mount() lists the mounts)."""
    try:
        import vfs

        mounts = vfs.mount()
    except (ImportError, AttributeError, TypeError, OSError):
        return False
    if not path.startswith("/"):
        path = os.getcwd().rstrip("/") + "/" + path
    best, fat = -1, False
    for fs, point in mounts:
        point = point.rstrip("/")
        if (path == point or path.startswith(point + "/")) and len(point) > best:
            best, fat = len(point), type(fs).__name__ == "VfsFat"
    return fat


def generation(path):
    """The generation number in the header of the model at `path` (0 for a model saved
    without one), or -1 when there is no readable model header."""
    from .read import _readinto  # on use (see the top)

    head = bytearray(codes.HEADER_SIZE + 4)
    try:
        with open(path, "rb") as f:
            got = _readinto(f, head, len(head))
    except OSError:
        return -1
    if got < codes.HEADER_SIZE or head[0:4] != codes.MAGIC:
        return -1
    if struct.unpack_from("<H", head, 12)[0] < codes.HEADER_SIZE + 4 or got < len(head):
        return 0
    return struct.unpack_from("<I", head, codes.HEADER_SIZE)[0]


def next_generation(path):
    """One more than the newest generation of `path` and its backup."""
    return (max(generation(path), generation(path + ".bak"), 0) + 1) & 0xFFFFFFFF


def valid_file(path):
    """Whether `path` holds a whole model: its header's size, its length and its CRC
    agree (read in 256-byte chunks; nothing sized from the file is allocated)."""
    from .read import _header, _readinto  # on use (see the top)

    buf = bytearray(256)
    try:
        size = os.stat(path)[6]
        with open(path, "rb") as f:
            view = memoryview(buf)[0 : codes.HEADER_SIZE]
            if _readinto(f, view, codes.HEADER_SIZE) < codes.HEADER_SIZE:
                return False
            _header(buf, size)
            crc = _crc(0, view, codes.HEADER_SIZE)
            left = size - codes.HEADER_SIZE - codes.CRC_SIZE
            while left > 0:
                k = left if left < 256 else 256
                view = memoryview(buf)[0:k]
                if _readinto(f, view, k) < k:
                    return False
                crc = _crc(crc, view, k)
                left -= k
            if _readinto(f, memoryview(buf)[0:4], 4) < 4:
                return False
            return crc == struct.unpack_from("<I", buf, 0)[0]
    except (OSError, ValueError):
        return False


def rotate(path):
    """Before the temporary file is renamed to `path`: keep a valid `path` as the backup."""
    bak = path + ".bak"
    if valid_file(path):
        _remove(bak)  # so the rename below replaces nothing, even on FAT
        os.rename(path, bak)
    else:
        _remove(path)  # missing or damaged: keep the backup as it is


def load_newest(path, trainable):
    """The valid newest of `path` and `path + ".bak"` by generation number; the other
    when that one is missing or damaged; the first one's error when neither loads."""
    from .read import _load_file  # on use (see the top)

    first, second = path, path + ".bak"
    if generation(second) > generation(first):
        first, second = second, first
    try:
        return _load_file(first, trainable)
    except (OSError, ModelFormatError) as exc:
        try:
            return _load_file(second, trainable)
        except (OSError, ModelFormatError):
            raise exc


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
