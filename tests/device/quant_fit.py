"""On-device quantization in a board's heap (driven by tests/test_ports.py).

    micropython -X heapsize=190000 tests/device/quant_fit.py 64-36-10

As a board script would: imports nanonn, builds a seeded float network of the given layer
sizes (relu hidden layers, softmax output) and 16 calibration rows, quantizes it on the
device and runs predict_int8 once. Prints one JSON line: "ok" (true, or the MemoryError's
message), the heap free before `quantize` and the int8 model's size in bytes (its .nnm).
"""

import gc
import json
import sys
from array import array

from nanonn import Dense, Network
from nanonn.rand import Random

sizes = [int(v) for v in sys.argv[1].split("-")]
out: dict[str, object] = {"sizes": sizes}
try:
    layers = [Dense(sizes[1], inputs=sizes[0], activation="relu")]
    for units in sizes[2:-1]:
        layers.append(Dense(units, activation="relu"))
    layers.append(Dense(sizes[-1], activation="softmax"))
    net = Network(*layers, seed=1)
    rng = Random(2)
    X = [array("f", bytes(4 * sizes[0])) for _ in range(16)]
    for row in X:
        for i in range(sizes[0]):
            row[i] = rng.symmetric(1.0)
    gc.collect()
    out["free_before"] = gc.mem_free()
    q = net.quantize(X)
    q.predict_int8(array("b", bytes(sizes[0])))
    net = X = None
    from nanonn.nnm.write import dumps

    out["model_bytes"] = len(dumps(q))
    out["ok"] = True
except MemoryError as exc:
    out["ok"] = str(exc)
print(json.dumps(out))
