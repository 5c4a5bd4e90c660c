"""Where the accelerometer is: the I2C bus from the board profile, or a replay.

On a board, the I2C bus and pins come from `board.json` on the board's
filesystem: the board profile `boards/<board>/board.json` (copy it there), whose
`"i2c"` entry is e.g. `{"bus": 0, "sda": 19, "scl": 18}`. Without that file,
`machine.I2C(0)` is opened with the port's default pins (MicroPython's defaults:
ESP32 SCL 18 / SDA 19, Raspberry Pi Pico SDA GP4 / SCL GP5, which the esp32 and
rp2040 profiles repeat).

With `replay=path` (the unix port, which has no `machine.I2C`), the bus is a
`replay.ReplayI2C` serving recorded samples through the same drivers.

A window is read by `read_window(imu, window, rate_hz, pace)`: samples paced
by `time.ticks_us` at `rate_hz` (or back to back with `pace=False`, which is
right for a replay whose samples are already time-stamped by their order).
"""

import json
import time

import imu as imu_drivers

BOARD_FILE = "board.json"
FREQ = 400000


def i2c_config(path=BOARD_FILE):
    """The `i2c` entry of the board profile at `path` ({"bus", "sda", "scl"}), or None
    when there is no such file (then the port's default pins are used)."""
    try:
        with open(path) as f:
            profile = json.load(f)
    except OSError:
        return None
    cfg = profile.get("i2c")
    if not isinstance(cfg, dict):
        raise ValueError(
            "%s i2c: expected an object with bus, sda and scl, got %r (board %r has no I2C in its profile)"
            % (path, cfg, profile.get("name"))
        )
    for key in ("bus", "sda", "scl"):
        if type(cfg.get(key)) is not int:
            raise ValueError("%s i2c.%s: expected an int, got %r" % (path, key, cfg.get(key)))
    return cfg


def open_bus(replay=None, label=None, chip="mpu6050", board_file=BOARD_FILE):
    """machine.I2C on the profile's pins, or a ReplayI2C of `replay` (a CSV path)."""
    if replay is not None:
        from replay import ReplayI2C

        return ReplayI2C(replay, chip=chip, label=label)
    try:
        from machine import I2C, Pin
    except ImportError:
        raise ValueError("this port has no machine.I2C: pass a recorded CSV to replay instead") from None
    cfg = i2c_config(board_file)
    if cfg is None:
        return I2C(0, freq=FREQ)  # the port's default pins
    # The unix stubs declare a Pin() without arguments; the unix port has no machine.Pin at
    # all (ImportError above), the boards' Pin takes the pin id.
    sda, scl = Pin(cfg["sda"]), Pin(cfg["scl"])  # pyright: ignore[reportCallIssue]
    return I2C(cfg["bus"], sda=sda, scl=scl, freq=FREQ)


def open_imu(bus, rate_hz=50, range_g=8):
    """The accelerometer found on `bus` (MPU6050 or LSM6DS3 family)."""
    return imu_drivers.open_imu(bus, range_g=range_g, rate_hz=rate_hz)


if hasattr(time, "ticks_us"):
    _ticks_us, _ticks_add, _ticks_diff = time.ticks_us, time.ticks_add, time.ticks_diff
else:  # CPython

    def _cpython_ticks_us():
        # The boards' stubs rightly lack time.monotonic_ns: this branch runs on CPython only.
        return time.monotonic_ns() // 1000  # pyright: ignore[reportAttributeAccessIssue]

    def _cpython_ticks_add(t, d):
        return t + d

    def _cpython_ticks_diff(a, b):
        return a - b

    _ticks_us, _ticks_add, _ticks_diff = _cpython_ticks_us, _cpython_ticks_add, _cpython_ticks_diff


def read_window(sensor, window, rate_hz, pace=True):
    """Fill `window` (array('h') of 3 * n) with n samples in mg, x y z interleaved.

    Paced at `rate_hz` when `pace`; allocates nothing (the driver reads into its
    own buffer, ticks are small ints).
    """
    period = 1000000 // rate_hz
    t = _ticks_us()
    for i in range(0, len(window), 3):
        if pace:
            while _ticks_diff(t, _ticks_us()) > 0:
                pass
            t = _ticks_add(t, period)
        sensor.read_mg(window, i)
    return window
