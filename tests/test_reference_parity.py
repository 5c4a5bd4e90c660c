"""Device float networks against the numpy reference (float64), on both runtimes.

Seeded random networks of every activation with both losses: `predict` and
one `train` step match `nanonn_tools.reference` within 1e-5 relative; so do two
mini-batch steps of `fit`, with and without momentum.
"""

from __future__ import annotations

import numpy as np
import pytest

from nanonn_tools import reference
from support import run_device_json

TOL = 1e-5

DEVICE_CODE = """
import json, sys
from nanonn import Dense, Network
from nanonn.float32.activations import LeakyReLU
spec = json.loads(sys.stdin.read())
out = []
for case in spec:
    layers = []
    for i, l in enumerate(case["layers"]):
        act = LeakyReLU(l["alpha"]) if l["activation"] == "leaky_relu" else l["activation"]
        layers.append(Dense(l["units"], inputs=l["inputs"], activation=act, weights=l["flat"]))
    net = Network(*layers, loss=case["loss"])
    preds = [list(net.predict(x)) for x in case["xs"]]
    loss = net.train(case["xs"][0], case["target"], rate=case["rate"])
    out.append({"preds": preds, "loss": loss, "weights": net.get_weights()})
print(json.dumps(out))
"""


def _cases():
    cases = []
    rng = np.random.default_rng(1234)
    for k, act in enumerate(reference.ACTIVATIONS):
        for loss in ("mse", "cross_entropy"):
            sizes = [int(rng.integers(1, 9)), int(rng.integers(1, 12)), int(rng.integers(2, 6))]
            acts = [act, "softmax" if loss == "cross_entropy" and act != "softmax" else act]
            layers = reference.random_network(sizes, acts, seed=100 + k)
            for layer in layers:
                layer["alpha"] = 0.05
            xs = rng.normal(0, 1.5, (3, sizes[0]))
            target = (
                rng.dirichlet(np.ones(sizes[-1])) if loss == "cross_entropy" else rng.normal(0, 1, sizes[-1])
            )
            cases.append((act, loss, layers, xs, target))
    return cases


CASES = _cases()


def _f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_random_networks_match_reference(runtime):
    payload = []
    for _act, loss, layers, xs, target in CASES:
        payload.append(
            {
                "loss": loss,
                "rate": 0.1,
                "target": target.tolist(),
                "xs": xs.tolist(),
                "layers": [
                    {
                        "units": l["w"].shape[0],
                        "inputs": l["w"].shape[1],
                        "activation": l["activation"],
                        "alpha": l["alpha"],
                        "flat": reference.flat_weights(l),
                    }
                    for l in layers
                ],
            }
        )
    results = run_device_json(runtime, DEVICE_CODE, payload)
    assert len(results) == len(CASES)
    for (act, loss, layers, xs, target), got in zip(CASES, results):
        # The device stores weights as float32: the reference starts from the same rounded values.
        ref_layers = [dict(l, w=_f32(l["w"]), b=_f32(l["b"])) for l in layers]
        expected = reference.predict(ref_layers, _f32(xs))
        np.testing.assert_allclose(
            got["preds"], expected, rtol=TOL, atol=TOL, err_msg="%s/%s predict" % (act, loss)
        )
        value, updated = reference.train_step(ref_layers, _f32(xs[0]), target, loss=loss, rate=0.1)
        assert got["loss"] == pytest.approx(value, rel=TOL, abs=TOL), (act, loss)
        for i, layer in enumerate(updated):
            np.testing.assert_allclose(
                got["weights"][i],
                reference.flat_weights(layer),
                rtol=TOL,
                atol=TOL,
                err_msg="%s/%s layer %d" % (act, loss, i),
            )


def test_reference_reproduces_seed_vectors():
    import json

    from support import DATA

    seed = json.loads((DATA / "seed_vectors.json").read_text())
    case = seed["backprop_2_2_2"]
    layers = [reference.from_flat(l["weights"], l["inputs"], l["units"], "sigmoid") for l in case["layers"]]
    np.testing.assert_allclose(reference.predict(layers, case["x"]), case["predicted"], atol=1e-12)
    value, updated = reference.train_step(layers, case["x"], case["target"], "mse", case["rate"])
    assert value == pytest.approx(case["loss_before_update"], abs=1e-12)
    for layer, expected in zip(updated, case["weights_after_one_step"]):
        np.testing.assert_allclose(reference.flat_weights(layer), expected, atol=1e-12)


FIT_CODE = """
import json, sys
from nanonn import Dense, Network
spec = json.loads(sys.stdin.read())
out = []
for case in spec:
    layers = [Dense(l["units"], inputs=l["inputs"], activation=l["activation"], weights=l["flat"])
              for l in case["layers"]]
    net = Network(*layers, loss=case["loss"])
    net.fit(case["xs"], case["targets"], epochs=2, rate=0.2, batch_size=case["batch"],
            momentum=case["momentum"], shuffle=False)
    out.append(net.get_weights())
print(json.dumps(out))
"""


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_fit_batches_and_momentum_match_reference(runtime):
    rng = np.random.default_rng(77)
    cases, payload = [], []
    for loss, acts in (("mse", ["tanh", "sigmoid"]), ("cross_entropy", ["relu", "softmax"])):
        for momentum, batch in ((0.0, 3), (0.9, 3), (0.9, 1)):
            sizes = [9, 12, 4]
            layers = reference.random_network(sizes, acts, seed=len(cases) + 7)
            xs = _f32(rng.normal(0, 1, (3, sizes[0])))
            if loss == "mse":
                targets = rng.uniform(0, 1, (3, sizes[-1]))
            else:
                targets = np.eye(sizes[-1])[rng.integers(0, sizes[-1], 3)]
            cases.append((loss, momentum, batch, layers, xs, targets))
            payload.append(
                {
                    "loss": loss,
                    "momentum": momentum,
                    "batch": batch,
                    "xs": xs.tolist(),
                    "targets": targets.tolist(),
                    "layers": [
                        {
                            "units": l["w"].shape[0],
                            "inputs": l["w"].shape[1],
                            "activation": l["activation"],
                            "flat": reference.flat_weights(l),
                        }
                        for l in layers
                    ],
                }
            )
    results = run_device_json(runtime, FIT_CODE, payload)
    for (loss, momentum, batch, layers, xs, targets), got in zip(cases, results):
        ref = [dict(l, w=_f32(l["w"]), b=_f32(l["b"])) for l in layers]
        velocity = None
        for _ in range(2):  # two epochs, samples in order
            for k in range(0, len(xs), batch):
                ref, velocity = reference.batch_step(
                    ref, xs[k : k + batch], targets[k : k + batch], loss, 0.2, momentum, velocity
                )
        for i, layer in enumerate(ref):
            np.testing.assert_allclose(
                got[i],
                reference.flat_weights(layer),
                rtol=TOL,
                atol=TOL,
                err_msg="%s momentum %g batch %d layer %d" % (loss, momentum, batch, i),
            )
