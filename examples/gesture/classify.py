"""Classify live accelerometer windows and print the gesture with its probability.

Needs the trained files beside it (written by `train.py`, copied by its deploy step):
`gesture_meta.json` (classes, window length, rate, feature scaler) and the model,
`gesture_int8.nnm` (or the float32 `gesture_f32.nnm` with `--model`).

On a board:        mpremote exec "import classify; classify.run()"
On the unix port:  micropython classify.py --replay data/gesture_sample.csv [--windows 20] [--dir build]

Per window: read n samples (paced at the model's rate), extract the integer
features, quantize them into the int8 network's input and run it (integer work
that allocates nothing, from the sensor read to the class index; tested under
`micropython.heap_lock()`), print
`gesture  probability`. With a replay, the recorded label is printed too and a
tally at the end.
"""

import json
import sys
from array import array

import sensor
from features import FEATURES, Extractor, Int8Input, Scaler

import nanonn
from nanonn import argmax

META = "gesture_meta.json"
MODEL = "gesture_int8.nnm"


def _load_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as exc:
        raise ValueError(
            "%s %s: cannot open (%s); run train.py and copy its output" % (what, path, exc)
        ) from None


def load_meta(path=META):
    meta = _load_json(path, "meta")
    for key in ("classes", "window", "rate_hz", "features", "mean", "scale"):
        if key not in meta:
            raise ValueError("meta %s: expected key %r, keys are %s" % (path, key, sorted(meta)))
    if list(meta["features"]) != list(FEATURES):
        raise ValueError(
            "meta %s features: expected this device's %s, got %s" % (path, list(FEATURES), meta["features"])
        )
    return meta


class Classifier:
    """Integer features -> class index. With an int8 network (`predict_int8`) the
    features are quantized into its input domain by `Int8Input` and the whole step
    is integer work that allocates nothing (with the viper kernels); with a float
    network they are standardised by `Scaler` (float results allocate)."""

    def __init__(self, net, meta):
        self.net = net
        self.int8 = hasattr(net, "predict_int8")
        if self.int8:
            first, last = net.layers[0], net.layers[-1]
            self.input = Int8Input(meta["mean"], meta["scale"], first.in_scale, first.in_zp)
            self.out_scale, self.out_zp = last.out_scale, last.out_zp
        else:
            self.input = Scaler(meta["mean"], meta["scale"])
            self.out_scale, self.out_zp = 1.0, 0
        # the outputs of the last classify() (the network's own buffer); zeros before
        self.y = array("f", bytes(4 * net.outputs))

    def classify(self, features):
        """The index of the most likely class; allocates nothing for an int8 network."""
        if self.int8:
            self.y = self.net.predict_int8(self.input.apply(features))
        else:
            self.y = self.net.predict(self.input.apply(features))
        return argmax(self.y)

    def probability(self, k):
        """Class k's probability in the last `classify` (a float: allocates)."""
        if self.int8:
            return (self.y[k] - self.out_zp) * self.out_scale
        return self.y[k]


def run(windows=None, replay=None, chip="mpu6050", meta_path=META, model_path=MODEL):
    """Classify `windows` windows (None: forever). Returns (correct, labelled) for a replay."""
    meta = load_meta(meta_path)
    net = nanonn.load(model_path)
    classes = meta["classes"]
    if net.outputs != len(classes):
        raise ValueError(
            "model outputs: expected %d (the classes in meta), got %d" % (len(classes), net.outputs)
        )
    n = meta["window"]
    rate = meta["rate_hz"]
    extractor = Extractor(n)
    window_class = Classifier(net, meta)
    bus = sensor.open_bus(replay=replay, chip=chip)
    imu = sensor.open_imu(bus, rate_hz=rate)
    print("sensor: %r, window %d samples at %d Hz" % (imu, n, rate))
    buf = array("h", bytes(2 * 3 * n))
    correct = labelled = 0
    k = 0
    while windows is None or k < windows:
        sensor.read_window(imu, buf, rate, pace=replay is None)
        best = window_class.classify(extractor.extract(buf))
        prob = window_class.probability(best)
        if replay is not None:
            labelled += 1
            # bus is the ReplayI2C whenever replay is given (sensor.open_bus); pyright cannot link the two
            recorded = bus.label  # pyright: ignore[reportAttributeAccessIssue]
            correct += classes[best] == recorded
            print("%-7s %.2f  (recorded: %s)" % (classes[best], prob, recorded))
        else:
            print("%-7s %.2f" % (classes[best], prob))
        k += 1
    if replay is not None:
        bus.close()  # pyright: ignore[reportAttributeAccessIssue]  # the ReplayI2C (see above)
        print("replay: %d/%d windows classified as recorded" % (correct, labelled))
    return correct, labelled


def main(argv):
    """micropython classify.py [--replay CSV] [--windows N] [--chip mpu6050|lsm6ds3] [--dir DIR] [--model NNM]"""
    args = list(argv)
    opts = {"--replay": None, "--windows": None, "--chip": "mpu6050", "--dir": ".", "--model": MODEL}
    for key in list(opts):
        if key in args:
            i = args.index(key)
            if i + 1 >= len(args):
                raise ValueError("%s: expected a value after it" % key)
            opts[key] = args[i + 1]
            del args[i : i + 2]
    if args:
        print(main.__doc__)
        return 2
    windows = int(opts["--windows"]) if opts["--windows"] is not None else None
    if windows is None and opts["--replay"] is not None:
        windows = 20
    d = opts["--dir"]
    run(windows, opts["--replay"], opts["--chip"], d + "/" + META, d + "/" + opts["--model"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
