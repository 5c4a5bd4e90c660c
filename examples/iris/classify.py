"""Classify the iris test flowers on the board with the host-trained model.

    micropython classify.py [DIR]      # unix port; DIR holds iris.nnm and iris_data.json
    mpremote run classify.py           # a board, both files copied to it

`iris.nnm` is scikit-learn's MLPClassifier converted by `nanonn convert`; it takes
raw measurements in cm (the host folded its scaler into the first layer). Prints
each flower's class and probability, the test accuracy and a last line
`RESULT {...}` (JSON) for the host script.
"""

import json
import sys

import nanonn
from nanonn import argmax


def main(folder=".", verbose=True):
    net = nanonn.load(folder + "/iris.nnm")
    with open(folder + "/iris_data.json") as f:
        data = json.load(f)
    classes = data["classes"]
    hits = 0
    for x, label in zip(data["x_test"], data["y_test"]):
        y = net.predict(x)
        k = argmax(y)
        hits += k == label
        if verbose:
            print(
                "%s -> %-10s %.2f%s"
                % (x, classes[k], y[k], "" if k == label else "  (is %s)" % classes[label])
            )
    accuracy = hits / len(data["y_test"])
    print(
        "host-trained, run on the board: test accuracy %.4f (%d/%d)" % (accuracy, hits, len(data["y_test"]))
    )
    print("RESULT " + json.dumps({"host_trained_accuracy": accuracy}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
