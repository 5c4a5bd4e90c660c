"""Saves that survive a power cut where rename is not atomic (FAT): generations and a backup.

`nanonn.nnm.write.save(net, path, backup=True)` (the default on a FAT mount) writes the
model with a generation number in a 4-byte header extension (header bytes 32..35,
skipped by every 1.x reader; docs/format.md, "Saving with a backup"), one more than the
newest of `path` and `path + ".bak"`. After the temporary file is closed, `rotate`
renames a valid `path` to `path + ".bak"` (removing the old backup first, so the rename
replaces nothing) or removes a damaged one (keeping the backup), then `save` renames
the temporary file to `path`. `nanonn.load(path)` (`nanonn.nnm.read`) loads the valid
one with the higher `generation`, and the other when that one is missing or damaged.
At every step at least one valid model, the old or the new, is on the filesystem
(tests/test_power_loss.py, docs/reliability.md).

Imported only when saving with a backup (or to learn whether a path is on FAT) or
loading a path that has a generation; it imports neither the reader nor the writer.
Its functions allocate only small fixed buffers (a header, a 256-byte chunk) and path
strings; nothing sized from a file.
"""

import os
import struct

from ..crc32 import update as _crc
from . import codes
from .layout import const

_HEADER_SIZE_AT = const(12)  # byte offset of the header's u16 header_size (docs/format.md, "Layout")
_FILE_SIZE_AT = const(8)  # byte offset of the header's u32 file_size


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
    head = bytearray(codes.HEADER_SIZE + 4)
    try:
        with open(path, "rb") as f:
            got = f.readinto(head) or 0  # a file reads whole up to its end
    except OSError:
        return -1
    if got < codes.HEADER_SIZE or head[0:4] != codes.MAGIC:
        return -1
    if struct.unpack_from("<H", head, _HEADER_SIZE_AT)[0] < codes.HEADER_SIZE + 4 or got < len(head):
        return 0
    return struct.unpack_from("<I", head, codes.HEADER_SIZE)[0]


def next_generation(path):
    """One more than the newest generation of `path` and its backup."""
    return (max(generation(path), generation(path + ".bak"), 0) + 1) & 0xFFFFFFFF


def valid_file(path):
    """Whether `path` holds a whole model: its magic, its header's file_size, its length
    and its CRC agree (read in 256-byte chunks; nothing sized from the file is
    allocated). The other fields are checked when it loads."""
    buf = bytearray(256)
    try:
        size = os.stat(path)[6]
        with open(path, "rb") as f:
            view = memoryview(buf)[0 : codes.HEADER_SIZE]
            if (f.readinto(view) or 0) < codes.HEADER_SIZE:  # a file reads whole up to its end
                return False
            if buf[0:4] != codes.MAGIC or struct.unpack_from("<I", buf, _FILE_SIZE_AT)[0] != size:
                return False
            crc = _crc(0, view, codes.HEADER_SIZE)
            left = size - codes.HEADER_SIZE - codes.CRC_SIZE
            while left > 0:
                k = left if left < 256 else 256
                view = memoryview(buf)[0:k]
                if (f.readinto(view) or 0) < k:
                    return False
                crc = _crc(crc, view, k)
                left -= k
            if (f.readinto(memoryview(buf)[0:4]) or 0) < 4:
                return False
            return crc == struct.unpack_from("<I", buf, 0)[0]
    except OSError:
        return False


def rotate(path):
    """Before the temporary file is renamed to `path`: keep a valid `path` as the backup."""
    bak = path + ".bak"
    if valid_file(path):
        _remove(bak)  # so the rename below replaces nothing, even on FAT
        os.rename(path, bak)
    else:
        _remove(path)  # missing or damaged: keep the backup as it is


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
