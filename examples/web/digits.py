"""Classify a hand-drawn digit with the float32 and the int8 model (runs on MicroPython:
this page's WebAssembly port, or a board with the two .nnm files beside it).

The models were trained on scikit-learn's 8x8 digits (UCI optdigits): each image is a
32x32 bitmap of the digit, scaled to fill the height and centred, cut into 4x4 blocks;
a pixel is the number of inked bitmap pixels in its block (0..16).
"""

import time
from array import array

import nanonn


def load_models(folder="."):
    """{"float32": network, "int8": network} from the folder's .nnm files."""
    return {
        "float32": nanonn.load(folder + "/digits_f32.nnm"),
        "int8": nanonn.load(folder + "/digits_int8.nnm"),
    }


def blocks(bitmap):
    """64 pixels (0..16, row-major 8x8) from a 32x32 bitmap (1024 values 0 or 1,
    row-major): the inked pixels of each 4x4 block."""
    pixels = [0] * 64
    for y in range(32):
        row = 32 * y
        for x in range(32):
            if bitmap[row + x]:
                pixels[8 * (y >> 2) + (x >> 2)] += 1
    return pixels


def classify(models, pixels, repeat=20):
    """{name: [probabilities (10), predicted digit, microseconds per inference]}:
    each model predicts the 8x8 image `repeat` times (the mean time is reported)."""
    x = array("f", pixels)
    out = {}
    for name, net in models.items():
        probs = list(net.predict(x))
        t0 = time.ticks_us()
        for _ in range(repeat):
            net.predict(x)
        us = time.ticks_diff(time.ticks_us(), t0) / repeat
        out[name] = [probs, nanonn.argmax(probs), us]
    return out
