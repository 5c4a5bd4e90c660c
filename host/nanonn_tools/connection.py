"""The serial connection to a MicroPython board: `Connection`, over mpremote's SerialTransport.

`open_connection(port)` finds and connects the board (`auto`, a device path, or
`unix` for the local `micropython` unix port run as a virtual board) and
returns a `Connection` in the raw REPL after a soft reset. Every failure becomes a
`NanonnError` whose message names the problem and what to do: no board, several
boards, a busy port, a board that does not answer, a board that disconnects,
an error raised by code on the board.
"""

from __future__ import annotations

import ast
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import NanonnError

# The unix port as a board (`--port unix`): its filesystem lives here.
UNIX_BOARD_ENV = "NANONN_UNIX_BOARD"
# sys.implementation._mpy >> 10: the native architecture (py/persistentcode.h).
ARCHES = (
    None,
    "x86",
    "x64",
    "armv6",
    "armv6m",
    "armv7m",
    "armv7em",
    "armv7emsp",
    "armv7emdp",
    "xtensa",
    "xtensawin",
    "rv32imc",
    "rv64imc",
)
# MicroPython's errno numbers (py/mperrno.h) of the errors the file operations handle.
ENOENT, EEXIST, ENOSPC = 2, 17, 28
READ_TIMEOUT = 5.0  # seconds a serial read may block (so every wait can time out)

# Run on the board: what it is and what it has. Prints one repr'd dict.
_PROBE = """
import sys, gc, os
gc.collect()
_i = sys.implementation
try:
    import hashlib
    _h = 'sha256' if hasattr(hashlib, 'sha256') else ''
except ImportError:
    _h = ''
try:
    import binascii
    _c = hasattr(binascii, 'crc32')
except ImportError:
    _c = False
try:
    _fs = os.statvfs('/')
except (OSError, AttributeError):
    _fs = None
print(repr({'name': _i.name, 'version': tuple(_i.version[:3]), 'mpy': getattr(_i, '_mpy', 0),
    'machine': getattr(_i, '_machine', ''), 'platform': sys.platform,
    'mem_free': gc.mem_free(), 'mem_alloc': gc.mem_alloc(),
    'statvfs': tuple(_fs) if _fs else None, 'hash': _h or ('crc32' if _c else 'crc32-py')}))
del _i, _h, _c, _fs
"""

# Run on the board: hash each of `paths` ('sha256', 'crc32', 'crc32-py'; None for a missing
# file), all in one exec. What nanonn adds to mpremote's fs_hashfile (one file per three
# round trips, hashlib only): deploy compares the whole package in one round trip, and a
# board without hashlib.sha256 hashes with CRC-32 instead of sending every file back.
_HASH = """
def _nn_hash(p, algo):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    buf = bytearray(512)
    mv = memoryview(buf)
    if algo == 'sha256':
        import hashlib
        h = hashlib.sha256()
    else:
        c = 0
    try:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            if algo == 'sha256':
                h.update(mv[:n])
            elif algo == 'crc32':
                import binascii
                c = binascii.crc32(mv[:n], c)
            else:
                c = c ^ 0xFFFFFFFF
                for i in range(n):
                    c ^= buf[i]
                    for _ in range(8):
                        c = (c >> 1) ^ (0xEDB88320 if c & 1 else 0)
                c = c ^ 0xFFFFFFFF
    finally:
        f.close()
    if algo == 'sha256':
        return ''.join('%%02x' %% b for b in h.digest())
    return '%%08x' %% (c & 0xFFFFFFFF)
print(repr([_nn_hash(p, %(algo)r) for p in %(paths)r]))
del _nn_hash
"""


def host_hash(data: bytes, algo: str) -> str:
    """The board's hash of `data` as computed on the host (see `_HASH`)."""
    if algo == "sha256":
        return hashlib.sha256(data).hexdigest()
    return "%08x" % (zlib.crc32(data) & 0xFFFFFFFF)


@dataclass
class BoardInfo:
    """What a board says about itself (`Connection.info()`): version, .mpy ABI, heap, filesystem."""

    name: str
    version: tuple
    mpy: int  # sys.implementation._mpy (0 when the port does not say)
    machine: str
    platform: str
    mem_free: int
    mem_alloc: int
    statvfs: tuple | None
    hash: str

    @property
    def mpy_version(self) -> tuple[int, int]:
        """(major, sub) of the .mpy files this board loads."""
        return (self.mpy & 0xFF, (self.mpy >> 8) & 3)

    @property
    def arch(self) -> str | None:
        """The mpy-cross -march name of the board's native code, or None if unknown."""
        index = self.mpy >> 10
        return ARCHES[index] if index < len(ARCHES) else None

    @property
    def version_text(self) -> str:
        return "MicroPython %s" % ".".join(str(v) for v in self.version)

    @property
    def flash(self) -> tuple[int, int] | None:
        """(size, free) bytes of the filesystem at `/`, when the board reports it."""
        if not self.statvfs:
            return None
        frsize, blocks, bfree = self.statvfs[1] or self.statvfs[0], self.statvfs[2], self.statvfs[3]
        return frsize * blocks, frsize * bfree


def unix_board_root() -> str:
    """The directory standing in for the filesystem of `--port unix`."""
    root = os.environ.get(UNIX_BOARD_ENV) or os.path.join(Path.home(), ".cache", "nanonn", "unix-board")
    os.makedirs(root, exist_ok=True)
    return root


def serial_ports() -> list[str]:
    """USB serial ports that may be boards (as `mpremote connect auto` picks them)."""
    import serial.tools.list_ports

    return [
        p.device
        for p in sorted(serial.tools.list_ports.comports())
        if p.vid is not None and p.pid is not None
    ]


def resolve_port(port: str | None) -> str:
    """`auto`/None -> the one USB serial port; otherwise the port as given."""
    if port not in (None, "", "auto"):
        return port
    ports = serial_ports()
    if not ports:
        raise NanonnError(
            "no board found: connect a MicroPython board by USB (check the cable carries data), "
            "or pass --port PORT, or --port unix for the local micropython unix port"
        )
    if len(ports) > 1:
        raise NanonnError("several boards found (%s): pass --port with one of them" % ", ".join(ports))
    return ports[0]


class Connection:
    """A connected board in the raw REPL. Use `open_connection()`; close with `close()` or `with`."""

    def __init__(self, port: str, transport: Any, virtual=None):
        self.port = port
        self.transport: Any = transport
        self._virtual = virtual  # the VirtualBoard behind --port unix

    # ---- lifecycle ---------------------------------------------------------
    def close(self) -> None:
        transport, self.transport = self.transport, None
        if transport is not None:
            try:
                if transport.in_raw_repl:
                    transport.exit_raw_repl()
            except OSError:  # a vanished port (pyserial's SerialException is an OSError)
                pass
            try:
                transport.close()
            except OSError:
                pass
        if self._virtual is not None:
            self._virtual.stop()
            self._virtual = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- running code ------------------------------------------------------
    def exec(self, code: str, timeout: float = 30, what: str = "running code") -> str:
        """Run `code` on the board; returns its output. `timeout`: seconds of silence allowed."""
        out, err = self._call(what, self.transport.exec_raw, code, timeout=timeout)
        if err:
            raise BoardError(what, err.decode("utf-8", "replace"))
        return out.decode("utf-8", "replace")

    def eval(self, code: str, timeout: float = 30, what: str = "running code"):
        """Run `code`, whose last printed line is a Python literal; returns its value."""
        out = self.exec(code, timeout=timeout, what=what).strip()
        last = out.splitlines()[-1] if out else ""
        try:
            return ast.literal_eval(last)
        except (ValueError, SyntaxError):
            raise NanonnError(
                "board on %s: %s: expected a value, got %r" % (self.port, what, out[-200:])
            ) from None

    def _call(self, what: str, method, *args, **kwargs):
        """`method(*args, **kwargs)` of the transport (`exec_raw` or one of mpremote's
        `fs_*` file operations), its failures as nanonn's errors: an error raised by code
        on the board is a `BoardError` with the board's traceback, a lost connection
        (timeout, vanished port) the `_lost` error."""
        from mpremote.transport import TransportError, TransportExecError

        try:
            return method(*args, **kwargs)
        except TransportExecError as exc:  # code on the board raised
            raise BoardError(what, exc.error_output) from None
        except TransportError as exc:
            raise self._lost(what, exc) from None
        except OSError as exc:  # pyserial's SerialException is an OSError too
            # mpremote's fs_* raise an OSError on the board as a host OSError(errno, path),
            # raised while handling the TransportExecError that holds the board's traceback.
            raised = exc.__context__
            if isinstance(raised, TransportExecError) and not _is_serial_error(exc):
                raise BoardError(what, raised.error_output) from None
            raise self._lost(what, exc) from None

    def _lost(self, what: str, exc: Exception) -> NanonnError:
        return NanonnError(
            "board on %s stopped answering while %s (%s): check the USB connection, press reset "
            "and run the command again"
            % (self.port, what, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        )

    # ---- board facts -------------------------------------------------------
    def info(self) -> BoardInfo:
        return BoardInfo(**self.eval(_PROBE, what="reading the board's version"))

    def hashes(self, paths: list[str], algo: str) -> list[str | None]:
        """Hash of each board file (None where it does not exist), computed on the board."""
        if not paths:
            return []
        timeout = 120 if algo == "crc32-py" else 30
        return self.eval(_HASH % {"algo": algo, "paths": list(paths)}, timeout=timeout, what="hashing files")

    def listdir(self, folders) -> set[str]:
        """The paths of the files in board `folders` (absolute paths; a missing folder has
        none), by mpremote's fs_listdir."""
        found = set()
        for folder in sorted(folders):
            try:
                entries = self._call("listing %s" % folder, self.transport.fs_listdir, folder)
            except BoardError as exc:
                if exc.errno != ENOENT:
                    raise
                continue
            found.update(folder.rstrip("/") + "/" + e.name for e in entries if not e.st_mode & 0x4000)
        return found

    def deployed(self, info: BoardInfo, dest: str, model_path: str, out=print) -> bool:
        """Whether the board's `dest` is `model_path`'s content; NanonnError if `dest` is missing.

        Prints a note when it differs (verify and bench then run the board's copy)."""
        with open(model_path, "rb") as f:
            content = f.read()
        on_board = self.hashes([dest], info.hash)[0]
        if on_board is None:
            raise NanonnError("%s is not on the board: run `nanonn deploy %s` first" % (dest, model_path))
        if on_board != host_hash(content, info.hash):
            out(
                "note: %s on the board differs from %s (run `nanonn deploy` to update it)"
                % (dest, model_path)
            )
            return False
        return True

    # ---- files: mpremote's file operations, and the safe write nanonn adds ---
    def mkdirs(self, path: str) -> None:
        """Create `path` and its parents on the board (no error if they exist)."""
        folder = ""
        for name in path.strip("/").split("/"):
            folder += "/" + name
            try:
                self._call("creating %s" % path, self.transport.fs_mkdir, folder)
            except BoardError as exc:
                if exc.errno != EEXIST:
                    raise

    def remove(self, path: str) -> None:
        """Remove a board file if it exists (an OSError on the board is ignored)."""
        try:
            self._call("removing %s" % path, self.transport.fs_rmfile, path)
        except BoardError as exc:
            if exc.errno is None:
                raise

    def write_file(
        self, dest: str, data: bytes, algo: str, chunk: int = 1024, progress=None, activate: bool = True
    ) -> None:
        """Write `dest` safely: `dest + '.tmp'` (mpremote's fs_writefile), closed, its hash
        checked on the board, then renamed over `dest` (`activate`).

        With `activate=False` the checked temp file is left for `activate(dest)`.
        A full filesystem, a disconnect or a bad copy never replaces `dest`: the
        old file stays until the rename (atomic on littlefs). On ENOSPC the temp
        file is removed to give the space back.
        """
        tmp = dest + ".tmp"
        what = "writing %s" % dest
        step = None if progress is None else (lambda done, total: progress(done))
        try:
            self._call(what, self.transport.fs_writefile, tmp, data, chunk_size=chunk, progress_callback=step)
        except BoardError as exc:
            if exc.errno == ENOSPC:
                # fs_writefile leaves its file `f` open on the board: close it, then remove it.
                self.exec("try:\n f.close()\nexcept Exception:\n pass", what=what)
                self.remove(tmp)
                raise NanonnError(
                    "board filesystem is full: %s needs %d bytes; free space with "
                    "`mpremote fs rm` or use a smaller model (the previous %s is unchanged)"
                    % (dest, len(data), dest)
                ) from None
            raise
        got = self.hashes([tmp], algo)[0]
        if got != host_hash(data, algo):
            self.remove(tmp)
            raise NanonnError(
                "copy of %s is corrupt on the board (%s %s, expected %s): run the command again"
                % (dest, algo, got, host_hash(data, algo))
            )
        if activate:
            self.activate(dest)

    def activate(self, dest: str) -> None:
        """Rename `dest + '.tmp'` over `dest` (atomic on littlefs; FAT refuses: remove, then
        rename). mpremote's transport has no rename."""
        tmp = dest + ".tmp"
        self.exec(
            "import os\ntry:\n os.rename(%r, %r)\nexcept OSError:\n"
            " os.remove(%r)\n os.rename(%r, %r)" % (tmp, dest, dest, tmp, dest),
            what="renaming %s" % tmp,
        )


class BoardError(NanonnError):
    """Code on the board raised; `errno` is set for an OSError."""

    def __init__(self, what: str, traceback: str):
        lines = [line for line in traceback.strip().splitlines() if line.strip()]
        self.last = lines[-1] if lines else traceback
        self.errno = _errno(self.last)
        super().__init__("board error while %s: %s" % (what, self.last))


def _errno(line: str) -> int | None:
    if not line.startswith("OSError"):
        return None
    names = {"ENOSPC": ENOSPC, "ENOENT": ENOENT, "EEXIST": EEXIST, "EIO": 5, "ENOMEM": 12}
    for name, code in names.items():
        if name in line:
            return code
    digits = "".join(ch if ch.isdigit() else " " for ch in line).split()
    return int(digits[0]) if digits else None


def _is_serial_error(exc: Exception) -> bool:
    try:
        import serial
    except ImportError:  # pragma: no cover - pyserial is a dependency of mpremote
        return False
    return isinstance(exc, serial.SerialException)


def open_connection(port: str | None = "auto") -> Connection:
    """Connect the board on `port` (`auto`, a device path, or `unix`), soft-reset it, enter the raw REPL."""
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    virtual = None
    if port == "unix":
        from .virtualboard import VirtualBoard

        virtual = VirtualBoard(root=unix_board_root(), heap="2M").start()
        device = virtual.port
        label = "unix"
    else:
        device = resolve_port(port)
        label = device
        if not device.startswith(("socket:", "rfc2217:", "loop:")) and not os.path.exists(device):
            raise NanonnError(
                "no board at %s: check the port name (`mpremote connect list` shows the ports) "
                "or pass --port auto" % device
            )
    if virtual is None and os.path.exists(device) and not os.access(device, os.R_OK | os.W_OK):
        raise NanonnError(
            "no permission to open %s: on Linux add yourself to its group (e.g. `sudo usermod -aG "
            "dialout $USER`, then log in again)" % device
        )
    try:
        transport = SerialTransport(device, baudrate=115200)
    except TransportError as exc:
        if virtual is not None:
            virtual.stop()
        raise NanonnError(
            "port %s is busy (%s): close the program using it (mpremote, Thonny, a serial monitor) "
            "and retry" % (label, exc)
        ) from None
    port_io: Any = transport.serial
    port_io.timeout = READ_TIMEOUT
    conn = Connection(label, transport, virtual)
    try:
        transport.enter_raw_repl(soft_reset=True, timeout_overall=15)
    except (TransportError, OSError) as exc:
        conn.close()
        if _is_serial_error(exc):  # pyserial's SerialException (an OSError): the port went away
            raise NanonnError(
                "board on %s disconnected (%s): plug it in again and retry" % (label, exc)
            ) from None
        raise NanonnError(
            "board on %s does not answer as MicroPython (%s): press its reset button, check it runs "
            "MicroPython firmware, and retry" % (label, str(exc) or type(exc).__name__)
        ) from None
    return conn
