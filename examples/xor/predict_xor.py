"""After a reset: load the XOR model `train_xor.py` saved, and predict.

micropython predict_xor.py [DIR]   # unix port (a new process: nothing survives but the file)
mpremote soft-reset run predict_xor.py   # a board
"""

import sys

import nanonn

X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]


def main(folder="."):
    net = nanonn.load(folder + "/xor.nnm")
    print("loaded %s: %d inputs, %d output" % (folder + "/xor.nnm", net.inputs, net.outputs))
    for x in X:
        y = net.predict(x)[0]
        print("%d xor %d -> %.3f (%d)" % (x[0], x[1], y, y > 0.5))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
