"""Train XOR on the board from scratch, save the model safely, and check it.

    micropython train_xor.py [DIR]     # unix port (DIR: where to save, default .)
    mpremote run train_xor.py          # a board (saves xor.nnm on its filesystem)

`fit` prints the epoch and loss through its progress callback; `net.save` writes
`xor.nnm` safely (a temporary file, closed, then renamed over the old model: a
reset or power cut mid-save leaves the old or the new model, never half of one).
After a reset, `predict_xor.py` loads it back and predicts.
"""

import sys

from nanonn import Dense, Network

X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
Y = [[0.0], [1.0], [1.0], [0.0]]
EPOCHS = 1500


def report(epoch, loss):
    if epoch % 250 == 0 or epoch == EPOCHS - 1:
        print("epoch %4d  loss %.5f" % (epoch, loss))


def main(folder="."):
    net = Network(Dense(4, inputs=2, activation="tanh"), Dense(1, activation="sigmoid"), seed=3)
    net.fit(X, Y, epochs=EPOCHS, rate=0.5, seed=1, callback=report)
    loss, accuracy = net.evaluate(X, Y)
    print("trained: mse %.5f, accuracy %d%%" % (loss, accuracy * 100))
    for x in X:
        print("%d xor %d -> %.3f" % (x[0], x[1], net.predict(x)[0]))
    path = folder + "/xor.nnm"
    net.save(path)
    print("saved %s" % path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
