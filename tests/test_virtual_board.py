"""The virtual board (the unix port behind a pty) driven by the real mpremote command."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from nanonn_tools.virtualboard import VirtualBoard
from support import tool


@pytest.fixture
def vboard(tmp_path):
    board = VirtualBoard(root=str(tmp_path / "fs"), flash_size=64 * 1024).start()
    try:
        yield board
    finally:
        board.stop()
    assert board._proc is None  # the port was killed


def mpremote(board, *args, timeout=120):  # a hang guard
    return subprocess.run(
        [tool("mpremote"), "connect", board.port, *args], capture_output=True, text=True, timeout=timeout
    )


def test_exec_sees_a_board_filesystem_and_lib_path(vboard):
    proc = mpremote(
        vboard, "exec", "import sys, os; print(sys.path); print(os.getcwd()); print(os.listdir('/'))"
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "['', '.frozen', '/lib']"
    assert lines[1] == "/"
    assert lines[2] == "[]"  # the private directory, not the host's /


def test_fs_commands_work_on_the_private_directory(vboard, tmp_path):
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello board\n" * 10)
    back = tmp_path / "back.txt"
    proc = mpremote(
        vboard,
        *"fs mkdir :lib + fs cp".split(),
        str(src),
        ":lib/hello.txt",
        *"+ fs ls :lib + fs sha256sum :/lib/hello.txt + fs cp :lib/hello.txt".split(),
        str(back),
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "fs" / "lib" / "hello.txt").read_bytes() == src.read_bytes()
    assert back.read_bytes() == src.read_bytes()
    assert "120 hello.txt" in proc.stdout  # ls reports sizes, as littlefs does
    proc = mpremote(vboard, "fs", "rm", ":/lib/hello.txt", "+", "fs", "rmdir", ":lib")
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "fs" / "lib").exists()


def test_soft_reset_restarts_the_port_and_keeps_files(vboard):
    proc = mpremote(vboard, "exec", "x = 41\nopen('keep.txt', 'w').write('kept')")
    assert proc.returncode == 0, proc.stderr
    before = vboard.soft_resets
    proc = mpremote(vboard, "soft-reset", "exec", "print('x' in globals(), open('keep.txt').read())")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False kept"  # RAM state gone, flash kept
    assert vboard.soft_resets > before


def test_ctrl_c_interrupts_running_code_and_crlf_line_endings(vboard):
    from mpremote.transport_serial import SerialIntercept, SerialTransport

    t = SerialTransport(vboard.port, baudrate=115200)
    assert not isinstance(t.serial, SerialIntercept)  # the port itself (nothing mounted)
    t.serial.timeout = 1
    try:
        t.enter_raw_repl(timeout_overall=60)  # a hang guard: the soft reset restarts the port
        code = (
            "try:\n print('in the loop')\n while True:\n  pass\nexcept KeyboardInterrupt:\n print('stopped')"
        )
        t.exec_raw_no_follow(code)
        # Ctrl-C only once the code says it is inside its `try`: tied to the loop itself, not
        # to the port having a SIGINT handler (polled for at most 10 s, then sent anyway: under
        # load the byte could reach the port before its code ran, and the loop never ended).
        seen = t.read_until(1, b"in the loop\r\n", timeout=60)
        assert seen.endswith(b"in the loop\r\n"), seen
        assert vboard._running()  # the port's SIGINT handler is installed while code runs
        t.serial.write(b"\x03")
        out, err = t.follow(30)  # a hang guard (seconds between characters)
        assert (out, err) == (b"stopped\r\n", b"")
        assert t.exec("print('a\\nb')") == b"a\r\nb\r\n"
    finally:
        t.close()


def test_full_filesystem_fails_with_enospc(vboard, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(100 * 1024))  # the board holds 64 KiB
    proc = mpremote(vboard, "fs", "cp", str(big), ":big.bin")
    assert proc.returncode != 0
    assert "No space left on device" in proc.stdout + proc.stderr
    proc = mpremote(vboard, "exec", "import os; print(os.statvfs('/')[:4])")
    assert proc.stdout.strip() == "(4096, 4096, 16, 0)"  # 64 KiB, full


def test_older_mpy_version_is_reported(tmp_path):
    with VirtualBoard(root=str(tmp_path), mpy=(6, 1), version=(1, 21, 0)) as board:
        proc = mpremote(
            board, "exec", "import sys; print(sys.implementation._mpy & 0x3ff, sys.implementation.version)"
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "262 (1, 21, 0, '')"  # 6 | 1 << 8


def test_disconnect_closes_the_port_and_the_board_comes_back(tmp_path):
    with VirtualBoard(root=str(tmp_path / "fs")) as board:
        board.arm_disconnect(200, b"DISCONNECT-HERE")
        proc = mpremote(board, "exec", "x = 'DISCONNECT-HERE' + '%s'" % ("y" * 2000), timeout=40)
        assert proc.returncode != 0
        deadline = time.monotonic() + 10
        while board.disconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert board.disconnects == 1  # the port may come back under the same /dev/pts name
        proc = mpremote(board, "exec", "print('back')")
        assert proc.returncode == 0 and proc.stdout.strip() == "back", proc.stderr


def children(pid: int) -> list[int]:
    """Live child processes of `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def test_the_script_prints_its_port_and_stops_on_sigterm(tmp_path):
    import select
    import sys

    from support import ROOT

    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / "virtual_board.py"), "--root", str(tmp_path / "fs")]
        + ["--port-file", str(port_file), "--flash-size", "100000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None  # stdout=PIPE
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "no PORT line within 20 s"
        line = proc.stdout.readline().split()
        assert line[0] == "PORT" and line[1] == port_file.read_text().strip()
        out = subprocess.run(
            [tool("mpremote"), "connect", line[1], "exec", "import os; print(os.statvfs('/')[2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.stdout.strip() == "24", out.stderr  # 100000 // 4096 blocks
        ports = children(proc.pid)
        assert len(ports) == 1  # the micropython unix port (restarted by the soft reset)
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
    assert all(
        not Path("/proc/%d/stat" % pid).exists() or " Z " in Path("/proc/%d/stat" % pid).read_text()
        for pid in ports
    )
