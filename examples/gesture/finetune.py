"""Fine-tune the gesture model on the board to a new sensor, hand or mounting.

The float32 model trained on the host (`gesture_f32.nnm`, from train.py) is loaded
with only its last layer(s) trainable (`nanonn.load(path, trainable=k)`: the layers
below are frozen and get no gradient buffers). A few labelled windows per gesture
recorded on the new device (live, or replayed from a CSV on the unix port) train
the last layer(s) on the board; accuracy on held-out windows is printed before and
after. The tuned model is saved power-safely (a temporary file, closed, renamed
over the target: `Network.save`) as float32 and, re-quantized on the board with the
new windows as calibration data (`Network.quantize`), as int8.

With `--int8` (`run(int8=True)`) it starts from the int8 model (`gesture_int8.nnm`, the one
a small board holds) instead: its first layer(s) stay int8 and frozen, float32 copies of the
last layer(s) train (`nanonn.int8.tune.Tuner`), and only those are re-quantized and saved
(gesture_tuned_int8.nnm).

    import finetune; finetune.run(adapt_per_class=4)        # on a board: records live
    micropython finetune.py --adapt adapt.csv --test test.csv --dir build   # unix port
    micropython finetune.py --int8 --adapt adapt.csv --test test.csv --dir build

Live recording prompts for each gesture in turn. Allocates: the model, the windows'
features (21 floats each) and the float work of training.
"""

import gc
import sys
from array import array

import sensor
from classify import load_meta
from features import Extractor, Scaler

import nanonn

try:
    import time

    _sleep = time.sleep
except ImportError:  # pragma: no cover
    _sleep = None


def collect(bus, imu, meta, count, label=None):
    """`count` windows as standardised features (array('f') each) and their labels
    (the replay's recorded label, or `label` when live)."""
    n, rate = meta["window"], meta["rate_hz"]
    extractor = Extractor(n)
    scaler = Scaler(meta["mean"], meta["scale"])
    buf = array("h", bytes(6 * n))
    xs, labels = [], []
    live = not hasattr(bus, "label")
    for _ in range(count):
        sensor.read_window(imu, buf, rate, pace=live)
        xs.append(array("f", scaler.apply(extractor.extract(buf))))
        labels.append(label if live else bus.label)  # pyright: ignore[reportAttributeAccessIssue]  (a ReplayI2C)
    return xs, labels


def accuracy(net, xs, labels, classes):
    """The fraction of `xs` whose argmax is the label's class."""
    hits = 0
    for x, label in zip(xs, labels):
        hits += classes[nanonn.argmax(net.predict(x))] == label
    return hits / len(xs)


def _test(net, path, count, meta, chip):
    """Accuracy of `net` on the first `count` windows replayed from `path`."""
    bus = sensor.open_bus(replay=path, chip=chip)
    xs, labels = collect(bus, sensor.open_imu(bus, rate_hz=meta["rate_hz"]), meta, count)
    bus.close()  # pyright: ignore[reportAttributeAccessIssue]  (a ReplayI2C)
    return accuracy(net, xs, labels, meta["classes"])


def one_hot(labels, classes):
    rows = []
    for label in labels:
        row = [0.0] * len(classes)
        row[classes.index(label)] = 1.0
        rows.append(row)
    return rows


def run(
    adapt_per_class=4,
    adapt=None,
    test=None,
    test_windows=0,
    layers=1,
    epochs=100,
    rate=0.05,
    folder=".",
    chip="mpu6050",
    int8=False,
):
    """Fine-tune `layers` last layers on `adapt_per_class` windows per gesture (live, or
    from the `adapt` CSV); report accuracy on `test_windows` windows of the `test` CSV
    before and after; save gesture_tuned_f32.nnm and gesture_tuned_int8.nnm in `folder`.
    `int8`: start from the int8 model (gesture_int8.nnm) instead, its other layers frozen
    in int8 (`nanonn.int8.tune.Tuner`), and save gesture_tuned_int8.nnm only.
    Returns (accuracy before, accuracy after, int8 accuracy after)."""
    meta = load_meta(folder + "/gesture_meta.json")
    classes = meta["classes"]
    gc.collect()
    if int8:
        from nanonn.int8.tune import Tuner  # imported only here: the float mode never pays for it

        base = nanonn.load(folder + "/gesture_int8.nnm")
        if isinstance(base, nanonn.Network):
            raise ValueError("model: expected the int8 model (gesture_int8.nnm), got a float32 one")
        net = Tuner(base, layers)  # mse, as the float32 model loads: the same training
    else:
        net = base = nanonn.load(folder + "/gesture_f32.nnm", trainable=layers)
        if not isinstance(net, nanonn.Network):
            raise ValueError("model: expected the float32 model (gesture_f32.nnm), got an int8 one")
    xs, labels = [], []
    for label in classes:
        bus = sensor.open_bus(replay=adapt, label=label, chip=chip)
        imu = sensor.open_imu(bus, rate_hz=meta["rate_hz"])
        if adapt is None:
            print("record %d windows of %r: start in 2 s" % (adapt_per_class, label))
            if _sleep is not None:
                _sleep(2)
        got, names = collect(bus, imu, meta, adapt_per_class, label)
        xs += got
        labels += names
        if adapt is not None:
            bus.close()  # pyright: ignore[reportAttributeAccessIssue]  (a ReplayI2C)
    before = after = after8 = None
    if test is not None:
        before = _test(base, test, test_windows, meta, chip)
        print("before: %.3f on %d held-out windows" % (before, test_windows))
    losses = net.fit(xs, one_hot(labels, classes), epochs=epochs, rate=rate, momentum=0.9, seed=1)
    print(
        "fine-tuned %d layer(s) on %d windows: loss %.3f -> %.3f" % (layers, len(xs), losses[0], losses[-1])
    )
    if isinstance(net, nanonn.Network):  # the float32 mode: the tuned float model too
        net.save(folder + "/gesture_tuned_f32.nnm")
    if test is not None:
        after = _test(net, test, test_windows, meta, chip)
    gc.collect()
    # int8 again, calibrated on the new windows (a Tuner re-quantizes the tuned layers only,
    # their input domain kept); saved power-safely: a temporary file, closed, renamed
    q = net.quantize(xs)
    q.save(folder + "/gesture_tuned_int8.nnm")
    del net, base, xs
    if test is not None:
        after8 = _test(q, test, test_windows, meta, chip)
        print("after: %.3f (int8 %.3f) on %d held-out windows" % (after, after8, test_windows))
    gc.collect()
    print("heap in use: %d bytes" % gc.mem_alloc())  # pyright: ignore[reportAttributeAccessIssue]  (MicroPython)
    return before, after, after8


def main(argv):
    opts = {"--adapt": None, "--test": None, "--dir": ".", "--per-class": "4", "--test-windows": "0"}
    opts.update({"--layers": "1", "--epochs": "100", "--rate": "0.05", "--chip": "mpu6050"})
    int8 = "--int8" in argv  # a flag: start from the int8 model
    argv = [a for a in argv if a != "--int8"]
    i = 1
    while i < len(argv):
        if argv[i] not in opts or i + 1 >= len(argv):
            print("usage: finetune.py [--int8] [%s VALUE ...]" % " VALUE ".join(sorted(opts)))
            return 2
        opts[argv[i]] = argv[i + 1]
        i += 2
    run(
        adapt_per_class=int(opts["--per-class"]),
        adapt=opts["--adapt"],
        test=opts["--test"],
        test_windows=int(opts["--test-windows"]),
        layers=int(opts["--layers"]),
        epochs=int(opts["--epochs"]),
        rate=float(opts["--rate"]),
        folder=opts["--dir"],
        chip=opts["--chip"],
        int8=int8,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
