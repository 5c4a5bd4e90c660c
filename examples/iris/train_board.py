"""Train the iris network on the board itself (nanonn `fit`), then classify the test split.

    micropython train_board.py [DIR]                       # unix port, DIR holds iris_data.json
    mpremote run train_board.py                            # a board, iris_data.json copied to it

The same 4-8-3 network as the host's (ReLU, softmax, cross-entropy), trained from
scratch with mini-batch SGD and momentum on the 105 training flowers, standardised
with statistics the board computes from them. Prints the loss every 20 epochs, the
test accuracy, and a last line `RESULT {...}` (JSON) for the host script.
"""

import json
import sys

from nanonn import Dense, Network, argmax

EPOCHS = 120


def standardise(rows, mean, std):
    return [[(r[i] - mean[i]) / std[i] for i in range(len(r))] for r in rows]


def main(folder="."):
    with open(folder + "/iris_data.json") as f:
        data = json.load(f)
    xtr, ytr = data["x_train"], data["y_train"]
    n = len(xtr)
    k = len(xtr[0])
    mean = [sum(r[i] for r in xtr) / n for i in range(k)]
    std = [(sum((r[i] - mean[i]) ** 2 for r in xtr) / n) ** 0.5 for i in range(k)]
    X = standardise(xtr, mean, std)
    classes = len(data["classes"])
    Y = [[1.0 if c == label else 0.0 for c in range(classes)] for label in ytr]
    net = Network(
        Dense(8, inputs=k, activation="relu"),
        Dense(classes, activation="softmax"),
        loss="cross_entropy",
        seed=2,
    )

    def progress(epoch, loss):
        if epoch % 20 == 0 or epoch == EPOCHS - 1:
            print("epoch %3d  loss %.4f" % (epoch, loss))

    net.fit(X, Y, epochs=EPOCHS, rate=0.02, batch_size=4, momentum=0.9, seed=1, callback=progress)
    xte = standardise(data["x_test"], mean, std)
    hits = 0
    for x, label in zip(xte, data["y_test"]):
        hits += argmax(net.predict(x)) == label
    accuracy = hits / len(xte)
    print("board-trained: test accuracy %.4f (%d/%d)" % (accuracy, hits, len(xte)))
    print("RESULT " + json.dumps({"board_trained_accuracy": accuracy}))
    return net


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
