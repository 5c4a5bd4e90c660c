"""Make the sample dataset `data/gesture_sample.csv` by physical simulation (host, numpy).

The shipped data was NOT recorded from a sensor: it is this script's output, seeded,
so anyone can regenerate it byte for byte (`python make_dataset.py`). What it models:

- A hand-held (or table-top) device with an accelerometer whose axes are tilted
  from the world by a random orientation (roll and pitch within 25 degrees, any yaw).
- The sensor measures specific force: the device's acceleration minus gravity,
  rotated into the sensor frame (flat and still it reads z = +1 g).
- Motions, simulated at 1 kHz in world coordinates (metres, seconds):
  idle    physiological tremor (8-12 Hz, 0.5-3 cm/s^2) and a slow sway (0.2-0.6 Hz);
  shake   back-and-forth along a random horizontal direction, 3-6 Hz, 1.5-4 cm
          amplitude (peak 0.5-5.8 g), with a weaker perpendicular wobble;
  circle  a circle drawn in a random vertical plane, 0.7-1.5 turns/s, radius 6-18 cm,
          either direction (centripetal acceleration 0.1-1.6 g);
  tap     the device lying nearly flat, 1-3 taps at random times, each a 8-20 ms
          pulse of 0.5-3 g along z followed by a small damped ring (60-120 Hz).
- The MPU6050's signal chain: its digital low-pass (21 Hz, modelled as a 2nd-order
  Butterworth), sampling at 50 Hz, per-window zero-g offsets (+-40 mg) and
  sensitivity errors (+-3 %), white noise (3 mg rms), quantisation to the +-8 g
  range (4096 LSB/g, saturating) and the driver's scaling to integer milli-g.

Output: one row per sample, `window,label,ax_mg,ay_mg,az_mg`, windows of 64 samples
(1.28 s at 50 Hz), `--per-class` windows of each gesture in a shuffled order.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

LABELS = ("idle", "shake", "circle", "tap")
G = 9.80665  # m/s^2
SIM_HZ = 1000
RATE_HZ = 50
WINDOW = 64
LSB_PER_G = 4096  # MPU6050 at +-8 g
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "data" / "gesture_sample.csv"


def rotation(rng: np.random.Generator, max_tilt_deg: float) -> np.ndarray:
    """Sensor-to-world rotation: random yaw, roll and pitch within max_tilt."""
    roll, pitch = np.radians(rng.uniform(-max_tilt_deg, max_tilt_deg, 2))
    yaw = rng.uniform(0, 2 * np.pi)
    cr, sr, cp, sp, cy, sy = (
        np.cos(roll),
        np.sin(roll),
        np.cos(pitch),
        np.sin(pitch),
        np.cos(yaw),
        np.sin(yaw),
    )
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def tremor(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """(len(t), 3) world acceleration of a resting hand, m/s^2."""
    a = np.zeros((len(t), 3))
    for axis in range(3):
        f = rng.uniform(8, 12)
        a[:, axis] += rng.uniform(0.005, 0.03) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        f = rng.uniform(0.2, 0.6)
        a[:, axis] += rng.uniform(0.01, 0.05) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return a


def motion(label: str, rng: np.random.Generator, t: np.ndarray) -> tuple[np.ndarray, float]:
    """World acceleration (len(t), 3) in m/s^2 of one gesture, and the device's max tilt."""
    a = tremor(rng, t)
    if label == "idle":
        return a, 25.0
    if label == "shake":
        f = rng.uniform(3, 6)
        amp = rng.uniform(0.015, 0.04)
        w = 2 * np.pi * f
        phase = rng.uniform(0, 2 * np.pi)
        heading = rng.uniform(0, 2 * np.pi)
        main = np.array([np.cos(heading), np.sin(heading), 0.0])
        side = np.array([-np.sin(heading), np.cos(heading), rng.uniform(-0.5, 0.5)])
        s = -amp * w * w * np.sin(w * t + phase)
        wobble = -0.2 * amp * w * w * np.sin(w * t + phase + rng.uniform(0.5, 1.5))
        return a + np.outer(s, main) + np.outer(wobble, side), 25.0
    if label == "circle":
        f = rng.uniform(0.7, 1.5) * rng.choice((-1, 1))
        r = rng.uniform(0.06, 0.18)
        w = 2 * np.pi * f
        theta = w * t + rng.uniform(0, 2 * np.pi)
        heading = rng.uniform(0, 2 * np.pi)
        u = np.array([np.cos(heading), np.sin(heading), 0.0])  # horizontal in-plane axis
        v = np.array([0.0, 0.0, 1.0])  # vertical in-plane axis
        # position r (cos theta u + sin theta v): acceleration -r w^2 (cos theta u + sin theta v)
        return a - r * w * w * (np.outer(np.cos(theta), u) + np.outer(np.sin(theta), v)), 25.0
    if label == "tap":
        a *= 0.2  # resting on a table: hardly any tremor
        for _ in range(rng.integers(1, 4)):
            t0 = rng.uniform(0.05, t[-1] - 0.1)
            width = rng.uniform(0.008, 0.020)
            peak = rng.uniform(0.5, 3.0) * G * rng.choice((-1, 1))
            pulse = peak * np.exp(-0.5 * ((t - t0) / (width / 2)) ** 2)
            after = t - t0 - width
            f_ring = rng.uniform(60, 120)
            ring = np.where(
                after > 0, 0.3 * peak * np.exp(-after / 0.02) * np.sin(2 * np.pi * f_ring * after), 0
            )
            a[:, 2] += pulse + ring
        return a, 5.0
    raise ValueError("label: expected one of %s, got %r" % (", ".join(LABELS), label))


def butterworth_lowpass(x: np.ndarray, cutoff_hz: float, fs: float) -> np.ndarray:
    """2nd-order Butterworth low-pass (bilinear transform), along axis 0."""
    k = np.tan(np.pi * cutoff_hz / fs)
    norm = 1 / (1 + np.sqrt(2) * k + k * k)
    b0 = k * k * norm
    b1, b2 = 2 * b0, b0
    a1 = 2 * (k * k - 1) * norm
    a2 = (1 - np.sqrt(2) * k + k * k) * norm
    y = np.empty_like(x)
    x1 = x2 = y1 = y2 = x[0]  # start settled at the first value
    for i in range(len(x)):
        y[i] = b0 * x[i] + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
        x2, x1 = x1, x[i]
        y2, y1 = y1, y[i]
    return y


def window(label: str, rng: np.random.Generator) -> np.ndarray:
    """One window: (WINDOW, 3) int milli-g as the driver would report them."""
    settle = 0.2  # seconds simulated before the window so the filter has settled
    t = np.arange(int((WINDOW / RATE_HZ + settle) * SIM_HZ)) / SIM_HZ
    a_world, tilt = motion(label, rng, t)
    r = rotation(rng, tilt)
    gravity = np.array([0.0, 0.0, -G])
    specific = (a_world - gravity) @ r  # rows: R^T (a - g), the sensor frame
    g_units = specific / G
    filtered = butterworth_lowpass(g_units, 21.0, SIM_HZ)
    step = SIM_HZ // RATE_HZ
    start = int(settle * SIM_HZ)
    samples = filtered[start : start + WINDOW * step : step]
    gain = 1 + rng.uniform(-0.03, 0.03, 3)
    offset = rng.uniform(-0.04, 0.04, 3)
    measured = samples * gain + offset + rng.normal(0, 0.003, samples.shape)
    raw = np.clip(np.round(measured * LSB_PER_G), -32768, 32767).astype(np.int64)
    return (raw * 1000) // LSB_PER_G  # the driver's integer scaling (floor)


def make(per_class: int, seed: int) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    labels = [label for label in LABELS for _ in range(per_class)]
    order = rng.permutation(len(labels))
    return [(labels[i], window(labels[i], rng)) for i in order]


def write_csv(path: Path, windows: list[tuple[str, np.ndarray]]) -> None:
    lines = ["window,label,ax_mg,ay_mg,az_mg"]
    for w, (label, samples) in enumerate(windows):
        lines.extend("%d,%s,%d,%d,%d" % (w, label, x, y, z) for x, y, z in samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--per-class", type=int, default=24, help="windows of each gesture (default 24)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    windows = make(args.per_class, args.seed)
    write_csv(args.out, windows)
    print("wrote %s: %d windows of %d samples (%s)" % (args.out, len(windows), WINDOW, ", ".join(LABELS)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
