"""A replaying stand-in for an I2C bus with an accelerometer on it.

The unix port has no `machine.I2C`. `ReplayI2C` offers the methods the drivers in
`imu.py` use (`scan`, `readfrom_mem_into`, `readfrom_mem`, `writeto_mem`) and
behaves like an MPU6050 or an LSM6DS3 at the register level: WHO_AM_I, reset,
sleep/power-down (data stays 0 until the driver wakes the chip), the full-scale
setting, and the data registers, which serve the next recorded sample at each
read. So the real drivers run unchanged against recorded data.

Samples come from a gesture CSV (`window,label,ax_mg,ay_mg,az_mg`, one row per
sample), read line by line (the file is never loaded whole), optionally only the
windows of one label, wrapping around at the end. Milli-g values are encoded
into raw counts rounded up, so that the drivers' floor scaling gives back
exactly the recorded milli-g (values past the full scale saturate, as on a chip).
`label` and `window` tell which recorded window the last sample came from.
"""

import imu

CHIPS = {
    # chip: (address, WHO_AM_I register, id, data register, registers after reset)
    "mpu6050": (0x68, imu.MPU_WHO_AM_I, 0x68, imu.MPU_ACCEL_XOUT_H, {imu.MPU_PWR_MGMT_1: 0x40}),
    "lsm6ds3": (0x6A, imu.LSM_WHO_AM_I, 0x69, imu.LSM_OUTX_L_XL, {imu.LSM_CTRL3_C: 0x04}),
}
HEADER = "window,label,ax_mg,ay_mg,az_mg"


class ReplayI2C:
    """An I2C bus with one `chip` ("mpu6050" or "lsm6ds3") replaying `path`."""

    def __init__(self, path, chip="mpu6050", label=None):
        if chip not in CHIPS:
            raise ValueError("replay chip: expected one of %s, got %r" % (", ".join(sorted(CHIPS)), chip))
        self.chip = chip
        self.address, self._who_reg, self._who, self._data_reg, self._reset = CHIPS[chip]
        self.path = path
        self.want = label
        self.label = None
        self.window = None
        self.regs = bytearray(128)
        self._file = None
        self._power_on()

    def _power_on(self):
        regs = self.regs
        for i in range(len(regs)):
            regs[i] = 0
        regs[self._who_reg] = self._who
        for reg, value in self._reset.items():
            regs[reg] = value

    # machine.I2C methods

    def scan(self):
        return [self.address]

    def _check(self, address):
        if address != self.address:
            raise OSError(19, "ENODEV: no device at 0x%02x (replay has 0x%02x)" % (address, self.address))

    def readfrom_mem_into(self, address, register, buf):
        self._check(address)
        if register == self._data_reg and len(buf) == 6 and self._running():
            self._encode(self._next(), buf)
            return
        for i in range(len(buf)):
            buf[i] = self.regs[(register + i) & 0x7F]

    def readfrom_mem(self, address, register, n):
        buf = bytearray(n)
        self.readfrom_mem_into(address, register, buf)
        return bytes(buf)

    def writeto_mem(self, address, register, data):
        self._check(address)
        if self.chip == "mpu6050" and register == imu.MPU_PWR_MGMT_1 and data[0] & 0x80:
            self._power_on()
            return
        if self.chip == "lsm6ds3" and register == imu.LSM_CTRL3_C and data[0] & 0x01:
            self._power_on()
            return
        for i in range(len(data)):
            self.regs[(register + i) & 0x7F] = data[i]

    # the chip

    def _running(self):
        if self.chip == "mpu6050":
            return not self.regs[imu.MPU_PWR_MGMT_1] & 0x40
        return self.regs[imu.LSM_CTRL1_XL] >> 4 != 0

    def _range_g(self):
        if self.chip == "mpu6050":
            code = (self.regs[imu.MPU_ACCEL_CONFIG] >> 3) & 3
            table = imu.MPU_AFS_SEL
        else:
            code = (self.regs[imu.LSM_CTRL1_XL] >> 2) & 3
            table = imu.LSM_FS_XL
        for g, c in table.items():
            if c == code:
                return g
        raise ValueError("replay: no range for code %d" % code)

    def _encode(self, mg, buf):
        g = self._range_g()
        for k in range(3):
            if self.chip == "mpu6050":
                # driver: mg = raw * 1000 // lsb_per_g, with lsb_per_g > 1000
                den = imu.MPU_LSB_PER_G[g]
                raw = 0 - ((0 - mg[k] * den) // 1000)  # ceil
            else:
                # driver: mg = raw * ug_per_lsb // 1000, with ug_per_lsb < 1000
                num = imu.LSM_UG_PER_LSB[g]
                raw = 0 - ((0 - mg[k] * 1000) // num)  # ceil
            raw = max(-32768, min(32767, raw)) & 0xFFFF
            hi, lo = raw >> 8, raw & 0xFF
            if self.chip == "mpu6050":
                buf[2 * k], buf[2 * k + 1] = hi, lo
            else:
                buf[2 * k], buf[2 * k + 1] = lo, hi

    # the recording

    def _open(self):
        """(Re)open the recording past its header; returns the file."""
        if self._file is not None:
            self._file.close()
        self._file = f = open(self.path)
        header = f.readline().strip()
        if header != HEADER:
            raise ValueError("replay %s header: expected %r, got %r" % (self.path, HEADER, header))
        self._line = 1
        return f

    def _next(self):
        """The next sample (x, y, z) in mg of the wanted label, wrapping around."""
        f = self._file
        if f is None:
            f = self._open()
        wrapped = False
        while True:
            line = f.readline()
            if not line:
                if wrapped:
                    raise ValueError("replay %s: no samples labelled %r" % (self.path, self.want))
                wrapped = True
                f = self._open()
                continue
            self._line += 1
            parts = line.strip().split(",")
            if len(parts) != 5:
                raise ValueError(
                    "replay %s line %d: expected 5 fields (%s), got %d"
                    % (self.path, self._line, HEADER, len(parts))
                )
            if self.want is None or parts[1] == self.want:
                self.window = int(parts[0])
                self.label = parts[1]
                return (int(parts[2]), int(parts[3]), int(parts[4]))

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None
