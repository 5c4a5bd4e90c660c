"""Record labelled windows of accelerometer samples into a CSV on the board.

On a board (files copied, see README):

    mpremote exec "import record; record.record('shake', 10)"

prints a countdown before each window, records `n` samples at `rate_hz` while
you perform the gesture, then appends the window to `gesture.csv` as rows
`window,label,ax_mg,ay_mg,az_mg`. Window ids continue from the file's last one.
Each window is appended and the file closed before the next one starts, so a
reset or power cut loses at most the window being recorded (littlefs commits
data at close).

On the unix port, the sensor is a replay of recorded data, e.g. the sample set:

    micropython record.py shake 8 --replay data/gesture_sample.csv [--out gesture.csv]
"""

import os
import sys
import time
from array import array

import sensor

HEADER = "window,label,ax_mg,ay_mg,az_mg"


def _check_label(label):
    if not label or "," in label or "\n" in label:
        raise ValueError("label: expected a non-empty word without commas, got %r" % label)
    return label


def last_window(path):
    """The id of the last window in the CSV at `path`, or -1 (no file or no rows)."""
    try:
        f = open(path)
    except OSError:
        return -1
    with f:
        size = f.seek(0, 2)
        f.seek(max(0, size - 256))
        tail = f.read().strip().split("\n")
    last = tail[-1] if tail else ""
    if last.strip() == HEADER or not last:
        return -1
    head = last.split(",")[0]
    try:
        return int(head)
    except ValueError:
        raise ValueError("%s last row: expected a window id first, got %r" % (path, last)) from None


def append_window(path, window_id, label, window):
    """Append one window's rows (the header first if the file is new); closes the file."""
    try:
        os.stat(path)
        exists = True
    except OSError:
        exists = False
    with open(path, "a") as f:
        if not exists:
            f.write(HEADER + "\n")
        for i in range(0, len(window), 3):
            f.write("%d,%s,%d,%d,%d\n" % (window_id, label, window[i], window[i + 1], window[i + 2]))


def record(
    label,
    windows=10,
    n=64,
    rate_hz=50,
    path="gesture.csv",
    replay=None,
    chip="mpu6050",
    countdown=3,
):
    """Record `windows` windows of `n` samples of gesture `label` into `path`.

    With `replay` (a CSV path), the samples come from that file's windows of the
    same label (no countdown, no pacing). Returns the ids of the windows written.
    """
    _check_label(label)
    if type(windows) is not int or windows < 1:
        raise ValueError("windows: expected an int >= 1, got %r" % windows)
    bus = sensor.open_bus(replay=replay, label=label, chip=chip)
    imu = sensor.open_imu(bus, rate_hz=rate_hz)
    print("sensor: %r" % imu)
    buf = array("h", bytes(2 * 3 * n))
    first = last_window(path) + 1
    ids = []
    for k in range(windows):
        if replay is None:
            for s in range(countdown, 0, -1):
                print("%s %d/%d in %d..." % (label, k + 1, windows, s))
                time.sleep(1)
            print("go!")
        sensor.read_window(imu, buf, rate_hz, pace=replay is None)
        append_window(path, first + k, label, buf)
        ids.append(first + k)
        print("saved window %d (%s) to %s" % (first + k, label, path))
    if replay is not None:
        # bus is the ReplayI2C whenever replay is given (sensor.open_bus); pyright cannot link the two
        bus.close()  # pyright: ignore[reportAttributeAccessIssue]
    return ids


def main(argv):
    """micropython record.py LABEL [WINDOWS] [--replay CSV] [--out CSV] [--chip mpu6050|lsm6ds3]"""
    args = list(argv)
    opts = {"--replay": None, "--out": "gesture.csv", "--chip": "mpu6050"}
    for key in list(opts):
        if key in args:
            i = args.index(key)
            if i + 1 >= len(args):
                raise ValueError("%s: expected a value after it" % key)
            opts[key] = args[i + 1]
            del args[i : i + 2]
    if not args:
        print(main.__doc__)
        return 2
    windows = int(args[1]) if len(args) > 1 else 10
    record(args[0], windows, path=opts["--out"], replay=opts["--replay"], chip=opts["--chip"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
