"""The numpy (float64) reference of nanonn's float networks: the test oracle.

A network is a list of layers, each a dict with `w` (units, inputs), `b`
(units,), `activation` (a name) and optionally `alpha` (leaky_relu slope).
Semantics match the device library exactly: activations, the `mse` loss
(mean of squared errors; gradient of half the summed squared error) and
`cross_entropy` (fused with a softmax output layer), one SGD step.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-7  # the device's smallest probability fed to log()


def _sigmoid(z):
    return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))


def activate(name: str, z: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    """The activation `name` applied to `z` (softmax over the last axis), as a new float64 array."""
    z = np.asarray(z, dtype=np.float64)
    if name == "linear":
        return z.copy()
    if name == "sigmoid":
        return _sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, alpha * z)
    if name == "softplus":
        return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))
    if name == "softmax":
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError("activation: expected one of %s, got %r" % (", ".join(ACTIVATIONS), name))


ACTIVATIONS = ("leaky_relu", "linear", "relu", "sigmoid", "softmax", "softplus", "tanh")


def activation_backward(
    name: str, z: np.ndarray, a: np.ndarray, g: np.ndarray, alpha: float = 0.01
) -> np.ndarray:
    """dL/dz given dL/da for one sample."""
    if name == "linear":
        return g.copy()
    if name == "sigmoid":
        return g * a * (1.0 - a)
    if name == "tanh":
        return g * (1.0 - a * a)
    if name == "relu":
        return g * (z > 0)
    if name == "leaky_relu":
        return g * np.where(z > 0, 1.0, alpha)
    if name == "softplus":
        return g * _sigmoid(z)
    if name == "softmax":
        return a * (g - np.dot(g, a))
    raise ValueError("activation: expected one of %s, got %r" % (", ".join(ACTIVATIONS), name))


def forward(layers: list[dict], x) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Output for one sample (or a batch, rows), and each layer's (x, z, a)."""
    v = np.asarray(x, dtype=np.float64)
    trace = []
    for layer in layers:
        z = v @ np.asarray(layer["w"], dtype=np.float64).T + np.asarray(layer["b"], dtype=np.float64)
        a = activate(layer["activation"], z, layer.get("alpha", 0.01))
        trace.append((v, z, a))
        v = a
    return v, trace


def predict(layers: list[dict], x) -> np.ndarray:
    """Output for one sample (or a batch, rows)."""
    return forward(layers, x)[0]


def loss_value(loss: str, out, target) -> float:
    """The loss `mse` or `cross_entropy` of one output against its target, as the device computes it."""
    out = np.asarray(out, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if loss == "mse":
        return float(np.mean((out - target) ** 2))
    if loss == "cross_entropy":
        return float(-np.sum(np.where(target != 0, target * np.log(np.maximum(out, EPS)), 0.0)))
    raise ValueError("loss: expected one of cross_entropy, mse, got %r" % loss)


def loss_gradient(loss: str, out, target) -> np.ndarray:
    """dL/d(out) of the loss `mse` or `cross_entropy` (unfused), as the device computes it."""
    out = np.asarray(out, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if loss == "mse":
        return out - target
    if loss == "cross_entropy":
        return -target / np.maximum(out, EPS)
    raise ValueError("loss: expected one of cross_entropy, mse, got %r" % loss)


def train_step(
    layers: list[dict], x, target, loss: str = "mse", rate: float = 0.1
) -> tuple[float, list[dict]]:
    """One SGD step on one sample: (loss before the step, updated layers)."""
    out, trace = forward(layers, x)
    value = loss_value(loss, out, target)
    last = len(layers) - 1
    fused = loss == "cross_entropy" and layers[last]["activation"] == "softmax"
    g = out - np.asarray(target, dtype=np.float64) if fused else loss_gradient(loss, out, target)
    new = [dict(layer) for layer in layers]
    for i in range(last, -1, -1):
        layer = layers[i]
        xin, z, a = trace[i]
        d = (
            g
            if (fused and i == last)
            else activation_backward(layer["activation"], z, a, g, layer.get("alpha", 0.01))
        )
        w = np.asarray(layer["w"], dtype=np.float64)
        g = d @ w
        new[i]["w"] = w - rate * np.outer(d, xin)
        new[i]["b"] = np.asarray(layer["b"], dtype=np.float64) - rate * d
    return value, new


def batch_step(
    layers: list[dict],
    xs,
    targets,
    loss: str = "mse",
    rate: float = 0.1,
    momentum: float = 0.0,
    velocity=None,
) -> tuple[list[dict], list]:
    """One mini-batch SGD step, as `Network.fit` takes it: the mean gradient of the samples
    `xs`, `targets`, then with momentum v = momentum * v - rate * g, w += v (else
    w -= rate * g). `velocity` is the previous step's list of (vw, vb), None at first.
    Returns (updated layers, new velocity)."""
    if not len(xs):
        raise ValueError("batch_step: expected at least one sample, got 0")
    grads = [(np.zeros_like(np.asarray(l["w"])), np.zeros_like(np.asarray(l["b"]))) for l in layers]
    for x, t in zip(xs, targets):
        _, stepped = train_step(layers, x, t, loss, 1.0)  # w - g for one sample
        g = [(np.asarray(l["w"]) - s["w"], np.asarray(l["b"]) - s["b"]) for l, s in zip(layers, stepped)]
        grads = [(a + c, b + d) for (a, b), (c, d) in zip(grads, g)]
    scale = rate / len(xs)
    if velocity is None:
        velocity = [(np.zeros_like(gw), np.zeros_like(gb)) for gw, gb in grads]
    new, new_velocity = [], []
    for layer, (gw, gb), (vw, vb) in zip(layers, grads, velocity):
        vw = momentum * vw - scale * gw
        vb = momentum * vb - scale * gb
        new.append(dict(layer, w=np.asarray(layer["w"]) + vw, b=np.asarray(layer["b"]) + vb))
        new_velocity.append((vw, vb))
    return new, new_velocity


def flat_weights(layer: dict) -> list[float]:
    """The original nanonn layout: per unit, its input weights then its bias."""
    w = np.asarray(layer["w"], dtype=np.float64)
    b = np.asarray(layer["b"], dtype=np.float64)
    return np.concatenate([w, b[:, None]], axis=1).ravel().tolist()


def from_flat(values, inputs: int, units: int, activation: str, alpha: float = 0.01) -> dict:
    """A layer dict from the original nanonn flat layout (per unit: inputs weights, then the bias)."""
    m = np.asarray(values, dtype=np.float64).reshape(units, inputs + 1)
    return {"w": m[:, :inputs], "b": m[:, inputs], "activation": activation, "alpha": alpha}


def random_network(sizes: list[int], activations: list[str], seed: int = 0, scale: float = 1.0) -> list[dict]:
    """A seeded random network: sizes [inputs, units1, units2, ...]."""
    rng = np.random.default_rng(seed)
    layers = []
    for n, u, act in zip(sizes[:-1], sizes[1:], activations):
        limit = scale * np.sqrt(6.0 / (n + u))
        layers.append(
            {"w": rng.uniform(-limit, limit, (u, n)), "b": rng.uniform(-0.5, 0.5, u), "activation": act}
        )
    return layers
