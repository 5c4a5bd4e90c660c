"""Device side of tools/bench_boards.py's small float model (MicroPython, on the bare-metal
firmware; from its ROMFS): a file of its own, so the other measurements' images and heap are
what they were before it.

    small_float(n, cache)     a 64-32-16-4 float network of Dense layers (relu, relu,
                              softmax; weights from a formula) built with Dense(cache=cache)
                              (None: the default decision): ticks_us per predict over n
                              calls less an empty loop, each layer's cache decision, the
                              free heap after `import nanonn` and the heap the built
                              network keeps after a first predict (its training buffers
                              included; with the cache: the decoded weights and
                              dense_cache_viper's code). Prints one JSON line.
"""

import gc
import json
from array import array

from bench_boards_device import _empty_loop, _per_call, _used, xf_input

SMALL_SHAPE = (64, 32, 16, 4)


def _small_weights(n, u, seed):
    """The original nanonn layout (each unit's n weights then its bias) from a formula."""
    w = array("f", bytes(4 * (n + 1) * u))
    for i in range(len(w)):
        w[i] = (((i * 37 + seed) % 101) / 50.0 - 1.0) * 0.3
    return w


def small_float(n, cache=None):
    gc.collect()
    free0 = gc.mem_free()
    from nanonn import Dense, Network

    a0 = _used()
    s = SMALL_SHAPE
    layers = [
        Dense(
            s[k + 1],
            inputs=s[k],
            activation="softmax" if k == len(s) - 2 else "relu",
            weights=_small_weights(s[k], s[k + 1], k),
            cache=cache,
        )
        for k in range(len(s) - 1)
    ]
    a1 = _used()
    net = Network(layers)
    x = xf_input(s[0])
    y = net.predict(x)
    out = {"cache": [d.cache for d in layers], "free_after_import": free0 - a0, "kept": _used() - a1}
    out["out"] = [float(v) for v in y]
    out["float_predict_small"] = _per_call(net.predict, x, n, _empty_loop(n, x))
    print(json.dumps(out))
