"""Accelerometer drivers over `machine.I2C`: MPU6050 and the LSM6DS3 family.

Both drivers read the three acceleration axes and scale them to milli-g
(integers) or g (floats):

- `read_mg(out, offset)` writes x, y, z in mg into `out[offset:offset + 3]`
  (an `array('h')` or any int buffer) and allocates nothing: the I2C transfer
  goes into a buffer owned by the driver.
- `read_g()` returns a new `(x, y, z)` tuple of floats in g (convenient, allocates).

`open_imu(i2c)` finds whichever of the two is on the bus. Only the bus object's
`scan`, `readfrom_mem_into` and `writeto_mem` are used, so a stand-in with the
same methods (see `replay.py`) drives the very same code on the unix port.

Register maps (from the datasheets):

MPU6050 (InvenSense RM-MPU-6000A-00 rev 4.2), address 0x68 (AD0 low) or 0x69:
  0x19 SMPLRT_DIV    sample rate = 1 kHz / (1 + div) with the DLPF on
  0x1A CONFIG        DLPF_CFG bits 2:0 (4 = accel bandwidth 21 Hz, 1 kHz rate)
  0x1C ACCEL_CONFIG  AFS_SEL bits 4:3: 0 = +-2 g (16384 LSB/g), 1 = +-4 g (8192),
                     2 = +-8 g (4096), 3 = +-16 g (2048)
  0x3B ACCEL_XOUT_H  six bytes: X, Y, Z, each int16 big-endian
  0x6B PWR_MGMT_1    bit 7 DEVICE_RESET, bit 6 SLEEP (set after power-up),
                     bits 2:0 CLKSEL (1 = PLL on the X gyro)
  0x75 WHO_AM_I      0x68

LSM6DS3 / LSM6DS33 / LSM6DS3TR-C / LSM6DSL / LSM6DSM / LSM6DSO(X) (ST DocID026899
and siblings), address 0x6A (SA0 low) or 0x6B:
  0x0F WHO_AM_I      0x69 (DS3, DS33), 0x6A (DS3TR-C, DSL, DSM), 0x6C (DSO, DSOX)
  0x10 CTRL1_XL      ODR_XL bits 7:4 (4 = 104 Hz, 0 = power-down),
                     FS_XL bits 3:2: 0 = +-2 g, 2 = +-4 g, 3 = +-8 g, 1 = +-16 g
                     sensitivity 0.061 / 0.122 / 0.244 / 0.488 mg per LSB
  0x12 CTRL3_C       bit 6 BDU (block data update), bit 2 IF_INC (auto-increment),
                     bit 0 SW_RESET
  0x28 OUTX_L_XL     six bytes: X, Y, Z, each int16 little-endian

Scaling: mg = raw * num // den (floor), with num/den the datasheet sensitivity;
every product stays well inside a small int (|raw| <= 32768, num <= 1000).
"""

import time
from array import array

RANGES_G = (2, 4, 8, 16)

# MPU6050
MPU_ADDRESSES = (0x68, 0x69)
MPU_WHO_AM_I = 0x75
MPU_IDS = {0x68: "MPU6050"}
MPU_SMPLRT_DIV = 0x19
MPU_CONFIG = 0x1A
MPU_ACCEL_CONFIG = 0x1C
MPU_ACCEL_XOUT_H = 0x3B
MPU_PWR_MGMT_1 = 0x6B
MPU_AFS_SEL = {2: 0, 4: 1, 8: 2, 16: 3}
MPU_LSB_PER_G = {2: 16384, 4: 8192, 8: 4096, 16: 2048}

# LSM6DS3 family
LSM_ADDRESSES = (0x6A, 0x6B)
LSM_WHO_AM_I = 0x0F
LSM_IDS = {0x69: "LSM6DS3", 0x6A: "LSM6DS3TR-C/LSM6DSL/LSM6DSM", 0x6C: "LSM6DSO"}
LSM_CTRL1_XL = 0x10
LSM_CTRL3_C = 0x12
LSM_OUTX_L_XL = 0x28
LSM_FS_XL = {2: 0, 4: 2, 8: 3, 16: 1}
LSM_UG_PER_LSB = {2: 61, 4: 122, 8: 244, 16: 488}  # micro-g per LSB
LSM_ODR_104HZ = 4


class IMUError(Exception):
    """No sensor, a sensor of an unexpected kind, or a bad setting."""


def _sleep_ms(ms):
    if hasattr(time, "sleep_ms"):
        time.sleep_ms(ms)  # MicroPython
    else:
        time.sleep(ms / 1000)  # CPython


def _check_range(range_g):
    if range_g not in RANGES_G:
        raise IMUError("range_g: expected one of %s, got %r" % (RANGES_G, range_g))
    return range_g


def _who_am_i(i2c, address, register, ids, chip):
    buf = bytearray(1)
    try:
        i2c.readfrom_mem_into(address, register, buf)
    except OSError as exc:
        raise IMUError(
            "%s at I2C address 0x%02x: no answer (%s); check wiring and pins" % (chip, address, exc)
        ) from None
    if buf[0] not in ids:
        raise IMUError(
            "%s at I2C address 0x%02x: WHO_AM_I (register 0x%02x) expected one of %s, got 0x%02x"
            % (chip, address, register, ", ".join("0x%02x" % k for k in sorted(ids)), buf[0])
        )
    return ids[buf[0]]


class _IMU:
    """Shared part: a 6-byte data buffer and the int16 -> mg scaling."""

    name = "?"

    def __init__(self, i2c, address, range_g):
        self.i2c = i2c
        self.address = address
        self.range_g = _check_range(range_g)
        self._buf = bytearray(6)
        self._mg = array("h", (0, 0, 0))

    def read_mg(self, out, offset):
        """x, y, z in mg into out[offset:offset + 3]: each chip's class implements it."""
        raise NotImplementedError("%s.read_mg" % type(self).__name__)

    def read_g(self):
        """(x, y, z) in g as a new tuple of floats (allocates)."""
        m = self._mg
        self.read_mg(m, 0)
        return (m[0] / 1000, m[1] / 1000, m[2] / 1000)

    def __repr__(self):
        return "<%s at 0x%02x, +-%d g>" % (self.name, self.address, self.range_g)


class MPU6050(_IMU):
    """InvenSense MPU6050 accelerometer (the gyro is left unused)."""

    def __init__(self, i2c, address=0x68, range_g=8, rate_hz=50):
        _IMU.__init__(self, i2c, address, range_g)
        self.name = _who_am_i(i2c, address, MPU_WHO_AM_I, MPU_IDS, "MPU6050")
        if not 4 <= rate_hz <= 1000:
            raise IMUError("MPU6050 rate_hz: expected 4..1000, got %r" % rate_hz)
        w = i2c.writeto_mem
        w(address, MPU_PWR_MGMT_1, b"\x80")  # reset every register
        _sleep_ms(100)
        w(address, MPU_PWR_MGMT_1, b"\x01")  # wake up, PLL clock
        w(address, MPU_CONFIG, b"\x04")  # DLPF: 21 Hz accel bandwidth, 1 kHz base rate
        w(address, MPU_SMPLRT_DIV, bytes((1000 // rate_hz - 1,)))
        w(address, MPU_ACCEL_CONFIG, bytes((MPU_AFS_SEL[range_g] << 3,)))
        self._den = MPU_LSB_PER_G[range_g]

    def read_mg(self, out, offset):
        """x, y, z in mg into out[offset:offset + 3]; allocates nothing."""
        b = self._buf
        self.i2c.readfrom_mem_into(self.address, MPU_ACCEL_XOUT_H, b)
        den = self._den
        for k in range(3):
            v = (b[2 * k] << 8) | b[2 * k + 1]  # big-endian
            if v > 32767:
                v -= 65536
            out[offset + k] = v * 1000 // den


class LSM6DS3(_IMU):
    """ST LSM6DS3-family accelerometer (the gyro is left powered down)."""

    def __init__(self, i2c, address=0x6A, range_g=8):
        _IMU.__init__(self, i2c, address, range_g)
        self.name = _who_am_i(i2c, address, LSM_WHO_AM_I, LSM_IDS, "LSM6DS3")
        w = i2c.writeto_mem
        w(address, LSM_CTRL3_C, b"\x01")  # software reset
        _sleep_ms(20)
        w(address, LSM_CTRL3_C, b"\x44")  # BDU + IF_INC
        w(address, LSM_CTRL1_XL, bytes(((LSM_ODR_104HZ << 4) | (LSM_FS_XL[range_g] << 2),)))
        self._num = LSM_UG_PER_LSB[range_g]

    def read_mg(self, out, offset):
        """x, y, z in mg into out[offset:offset + 3]; allocates nothing."""
        b = self._buf
        self.i2c.readfrom_mem_into(self.address, LSM_OUTX_L_XL, b)
        num = self._num
        for k in range(3):
            v = (b[2 * k + 1] << 8) | b[2 * k]  # little-endian
            if v > 32767:
                v -= 65536
            out[offset + k] = v * num // 1000


def open_imu(i2c, range_g=8, rate_hz=50):
    """The MPU6050 or LSM6DS3-family sensor found on `i2c` (scans the bus)."""
    found = i2c.scan()
    for address in MPU_ADDRESSES:
        if address in found:
            return MPU6050(i2c, address, range_g, rate_hz)
    for address in LSM_ADDRESSES:
        if address in found:
            return LSM6DS3(i2c, address, range_g)
    raise IMUError(
        "no accelerometer on I2C: expected an MPU6050 at 0x68/0x69 or an LSM6DS3 at 0x6A/0x6B, "
        "the bus scan found [%s]; check wiring and the I2C pins" % ", ".join("0x%02x" % a for a in found)
    )
