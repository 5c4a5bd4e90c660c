"""The gesture example's device code: IMU drivers (against the replaying bus), features.

Run from the repository root (the runner's cwd), under MicroPython and CPython.
"""

import sys

sys.path.append("examples/gesture")

from array import array  # noqa: E402

import features  # noqa: E402
import imu  # noqa: E402
from replay import HEADER, ReplayI2C  # noqa: E402

import check  # noqa: E402

SAMPLE = "examples/gesture/data/gesture_sample.csv"
# files outside the checkout (the runner's cwd), in the run's folder; the runner removes them
CSV = check.TMPDIR + "/replay.csv"
PROFILE = check.TMPDIR + "/board.json"
TEMP_FILES = (CSV, PROFILE)
NEEDS_FILESYSTEM = (
    "test_i2c_pins_come_from_the_board_profile",
    "test_replay_filters_by_label_and_wraps_around",
    "test_replay_serves_exact_mg_through_both_drivers_and_every_range",
)


def _write_csv(rows):
    with open(CSV, "w") as f:
        f.write(HEADER + "\n")
        for r in rows:
            f.write("%d,%s,%d,%d,%d\n" % r)
    return CSV


class ConstBus:
    """A bus whose every register read returns the same bytes (no allocation)."""

    def __init__(self, who_reg, who, data):
        self.who_reg = who_reg
        self.who = who
        self.data = data
        self.writes = []

    def scan(self):
        return [0x68]

    def readfrom_mem_into(self, address, register, buf):
        if register == self.who_reg:
            buf[0] = self.who
            return
        for i in range(len(buf)):
            buf[i] = self.data[i]

    def writeto_mem(self, address, register, data):
        self.writes.append((register, bytes(data)))


def test_mpu6050_scaling_and_setup():
    # X = 0x1000 = 4096 -> 1000 mg at +-8 g; Y = -4096 -> -1000; Z = 0x7FFF -> 7999 (floor)
    bus = ConstBus(imu.MPU_WHO_AM_I, 0x68, bytes((0x10, 0x00, 0xF0, 0x00, 0x7F, 0xFF)))
    s = imu.MPU6050(bus, range_g=8, rate_hz=50)
    out = array("h", [0, 0, 0, 0])
    s.read_mg(out, 1)
    check.eq(list(out), [0, 1000, -1000, 7999], "mpu6050 mg")
    check.close(s.read_g(), [1.0, -1.0, 7.999], 1e-6, "mpu6050 g")
    regs = dict(bus.writes)
    check.eq(regs[imu.MPU_ACCEL_CONFIG], bytes((2 << 3,)), "ACCEL_CONFIG for +-8 g")
    check.eq(regs[imu.MPU_SMPLRT_DIV], bytes((19,)), "SMPLRT_DIV for 50 Hz")
    check.eq(regs[imu.MPU_PWR_MGMT_1], b"\x01", "PWR_MGMT_1 last write (awake)")


def test_lsm6ds3_scaling_and_setup():
    # little-endian: X = 0x0400 = 1024 * 0.244 = 249.856 -> 249 mg at +-8 g
    bus = ConstBus(imu.LSM_WHO_AM_I, 0x69, bytes((0x00, 0x04, 0x00, 0xFC, 0xFF, 0x7F)))
    s = imu.LSM6DS3(bus, range_g=8)
    out = array("h", [0, 0, 0])
    s.read_mg(out, 0)
    check.eq(list(out), [249, -250, 7995], "lsm6ds3 mg")
    regs = dict(bus.writes)
    check.eq(regs[imu.LSM_CTRL1_XL], bytes(((4 << 4) | (3 << 2),)), "CTRL1_XL: 104 Hz, +-8 g")
    check.eq(regs[imu.LSM_CTRL3_C], b"\x44", "CTRL3_C: BDU + IF_INC")


def test_who_am_i_mismatch_is_a_clear_error():
    bus = ConstBus(imu.MPU_WHO_AM_I, 0x70, bytes(6))
    check.raises(imu.IMUError, imu.MPU6050, bus, contains=("WHO_AM_I", "0x68", "0x70"))
    bus = ConstBus(imu.LSM_WHO_AM_I, 0x12, bytes(6))
    check.raises(imu.IMUError, imu.LSM6DS3, bus, 0x6A, contains=("WHO_AM_I", "0x69", "0x12"))
    check.raises(imu.IMUError, imu.MPU6050, bus, 0x68, 3, contains=("range_g", "3"))


def test_open_imu_finds_either_chip_or_says_what_it_scanned():
    for chip, name in (("mpu6050", "MPU6050"), ("lsm6ds3", "LSM6DS3")):
        s = imu.open_imu(ReplayI2C(SAMPLE, chip=chip))
        check.eq(s.name, name, "chip found")

    class Empty:
        def scan(self):
            return [0x3C]

    check.raises(imu.IMUError, imu.open_imu, Empty(), contains=("0x3c", "MPU6050", "LSM6DS3"))


def test_replay_serves_exact_mg_through_both_drivers_and_every_range():
    rows = [(0, "a", 0, 1, -1), (0, "a", 1990, -1990, 123), (1, "b", 7, 8, 9), (1, "b", -555, 444, 1000)]
    path = _write_csv(rows)
    for chip in ("mpu6050", "lsm6ds3"):
        for g in imu.RANGES_G:
            bus = ReplayI2C(path, chip=chip)
            s = imu.open_imu(bus, range_g=g)
            out = array("h", [0, 0, 0])
            for r in rows:
                s.read_mg(out, 0)
                check.eq(list(out), list(r[2:]), "%s +-%d g sample of window %d" % (chip, g, r[0]))
                check.eq((bus.window, bus.label), r[:2], "replay position")
            bus.close()
    # saturation: 3 g on a +-2 g range reads as the full scale
    path = _write_csv([(0, "a", 3000, -3000, 0)])
    s = imu.open_imu(ReplayI2C(path, chip="mpu6050"), range_g=2)
    out = array("h", [0, 0, 0])
    s.read_mg(out, 0)
    check.eq(list(out), [1999, -2000, 0], "saturated at +-2 g")


def test_replay_filters_by_label_and_wraps_around():
    rows = [(0, "a", 1, 1, 1), (1, "b", 2, 2, 2), (2, "a", 3, 3, 3)]
    path = _write_csv(rows)
    bus = ReplayI2C(path, chip="mpu6050", label="a")
    s = imu.open_imu(bus)
    out = array("h", [0, 0, 0])
    seen = []
    for _ in range(3):
        s.read_mg(out, 0)
        seen.append(out[0])
    check.eq(seen, [1, 3, 1], "label a, wrapped")
    bus.close()
    bus = ReplayI2C(path, chip="mpu6050", label="zzz")
    s = imu.open_imu(bus)
    check.raises(ValueError, s.read_mg, out, 0, contains=("zzz",))
    bus.close()


def test_replay_chip_asleep_until_the_driver_wakes_it():
    bus = ReplayI2C(SAMPLE, chip="mpu6050")
    buf = bytearray(6)
    bus.readfrom_mem_into(0x68, imu.MPU_ACCEL_XOUT_H, buf)
    check.eq(bytes(buf), bytes(6), "data registers after power-up (asleep)")
    check.raises(OSError, bus.readfrom_mem_into, 0x69, imu.MPU_WHO_AM_I, buf)
    bus.close()


def test_isqrt_is_floor_sqrt():
    for v in list(range(0, 2000)) + [2**20 - 1, 2**20, 10**9, 2**30 - 1]:
        r = features.isqrt(v)
        check.ok(r * r <= v < (r + 1) * (r + 1), "isqrt(%d) = %d" % (v, r))
    check.eq(features.isqrt(-5), 0, "isqrt of a negative")


def test_features_of_a_known_window():
    # x: 0, 10, 0, 10 (mean 5, std 5, rms isqrt(50) = 7, 3 crossings, jerk 10)
    # y: constant -3; z: +-20000 clipped to +-16000
    w = array("h", [0, -3, 20000, 10, -3, -20000, 0, -3, 20000, 10, -3, -20000])
    ex = features.Extractor(4)
    out = ex.extract(w)
    check.eq(list(out[0:7]), [5, 5, 0, 10, 7, 3, 10], "x features")
    check.eq(list(out[7:14]), [-3, 0, -3, -3, 3, 0, 0], "y features")
    check.eq(list(out[14:21]), [0, 16000, -16000, 16000, 16000, 3, 32000], "z features")
    check.eq(len(features.FEATURES), 21, "feature count")
    check.raises(ValueError, ex.extract, array("h", [0] * 9), contains=("12", "9"))
    check.raises(ValueError, features.Extractor, 1, contains=("2..1024",))


def test_scaler_standardises_and_validates():
    k = len(features.FEATURES)
    sc = features.Scaler([1.0] * k, [2.0] * k)
    y = sc.apply(array("i", range(k)))
    check.close(y, [(i - 1.0) / 2.0 for i in range(k)], 1e-6, "scaled")
    check.raises(
        ValueError, features.Scaler, [0.0] * k, [1.0] * (k - 1) + [0.0], contains=("scale[20]", "z_mad")
    )
    check.raises(ValueError, features.Scaler, [0.0], [1.0], contains=("21",))


def test_i2c_pins_come_from_the_board_profile():
    import sensor

    def profile(text):
        with open(PROFILE, "w") as f:
            f.write(text)
        return PROFILE

    cfg = sensor.i2c_config(profile('{"name": "esp32", "i2c": {"bus": 0, "sda": 19, "scl": 18}}'))
    if cfg is None:
        raise check.CheckFailed("i2c_config: expected the profile's pins, got None")
    check.eq((cfg["bus"], cfg["sda"], cfg["scl"]), (0, 19, 18), "pins from the profile")
    check.raises(
        ValueError, sensor.i2c_config, profile('{"name": "unix", "i2c": null}'), contains=("unix", "i2c")
    )
    check.raises(
        ValueError,
        sensor.i2c_config,
        profile('{"i2c": {"bus": 0, "sda": "x", "scl": 1}}'),
        contains=("i2c.sda",),
    )
    check.eq(sensor.i2c_config("no/such/board.json"), None, "no profile: the port's defaults")
    # neither test runtime (unix port, CPython) has machine.I2C
    check.raises(ValueError, sensor.open_bus, contains=("machine.I2C",))


def test_int8_input_is_within_one_step_of_the_float_quantizer():
    from nanonn.rand import Random

    rng = Random(5)
    k = len(features.FEATURES)
    exact = total = 0
    for _trial in range(20):
        mean = [rng.uniform(-2000.0, 2000.0) for _ in range(k)]
        scale = [rng.uniform(0.5, 3000.0) for _ in range(k)]
        in_scale = rng.uniform(0.005, 0.1)
        in_zp = int(rng.uniform(-128.0, 127.0))
        q = features.Int8Input(mean, scale, in_scale, in_zp)
        f = array("i", bytes(4 * k))
        for _ in range(20):
            for i in range(k):
                f[i] = int(mean[i] + scale[i] * rng.uniform(-6.0, 6.0))
            out = q.apply(f)
            for i in range(k):
                want = int(((f[i] - mean[i]) / scale[i] / in_scale + in_zp + 0.5) // 1)
                want = max(-128, min(127, want))
                check.ok(
                    abs(out[i] - want) <= 1,
                    "%s: got %d, float quantizer %d" % (features.FEATURES[i], out[i], want),
                )
                exact += out[i] == want
                total += 1
    check.ok(exact >= 0.98 * total, "exact %d of %d" % (exact, total))
    check.raises(ValueError, features.Int8Input, [0.0] * k, [1.0] * k, 0.1, 300, contains=("in_zp", "300"))


def test_int8_input_takes_integer_sequences_and_refuses_the_rest():
    """Int8Input.apply: the same int8 values for the features as an array('i'), a
    list, an array('h')/array('q') or a memoryview slice; float features (standardise
    those with Scaler), other lengths and non-sequences raise (issue 12)."""
    k = len(features.FEATURES)
    q = features.Int8Input([10.0 * i for i in range(k)], [50.0 + i for i in range(k)], 0.05, -3)
    values = [(i * 37) % 200 - 100 for i in range(k)]
    want = list(q.apply(array("i", values)))
    check.ok(len(set(want)) > 3, "the features map to different int8 values: %r" % want)
    forms = [values, tuple(values), array("h", values), memoryview(array("i", [0] + values + [0]))[1 : 1 + k]]
    for f in forms:
        check.eq(list(q.apply(f)), want, "apply(%s)" % type(f).__name__)
    for bad in (array("f", values), [float(v) for v in values], values[:-1] + [None]):
        check.raises(TypeError, q.apply, bad, contains=("features[", "expected an int"))
    for n in (0, k - 1, k + 1):
        check.raises(
            ValueError, q.apply, array("i", bytes(4 * n)), contains=("expected %d" % k, "got %d" % n)
        )
    for bad in (None, 3, "abc", {0: 1}):
        check.raises(
            TypeError, q.apply, bad, contains=("list, tuple, array or memoryview", type(bad).__name__)
        )
