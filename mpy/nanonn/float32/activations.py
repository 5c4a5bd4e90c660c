"""Activation functions: one table, forward and derivative side by side.

Element-wise activations are `Activation(name, f, df)` where `f(x)` is the
function and `df(x, y)` its derivative given the input `x` and the output
`y = f(x)` (one of the two is usually cheaper). Softmax is vector-valued and
overrides `forward`/`backward`. A custom activation is any object with the
same `forward(z, a, n)` and `backward(z, a, g, d, n)` methods, or simply an
`Activation` built from two functions.

Every function is safe for all finite inputs: MicroPython's `math.exp` raises
`ValueError` on overflow, so exponentials only ever see arguments <= 0.
"""

import math
from array import array

from ..errors import NO_NATIVE_CODE

try:  # float32 kernels on bit patterns (allocation free); not on CPython
    from . import f32_viper as _f32k
except NO_NATIVE_CODE:
    _f32k = None
_f32t = None  # nanonn.float32.train_viper, imported by the first train_kernels() call
_exp = math.exp
_log = math.log
_tanh = math.tanh  # saturates to +-1, never overflows (MicroPython and CPython)


def train_kernels():
    """The training kernels (`nanonn.float32.train_viper`) where viper exists, else None
    (the float loops train). Imported on the first call (a backward pass, a training step):
    a program that only predicts never loads them. Allocates the module once."""
    global _f32t
    if _f32t is None and _f32k is not None:
        try:  # on first use: keeps the training kernels out of RAM for inference
            from . import train_viper
        except NO_NATIVE_CODE:  # (f32_viper compiled, so this does too)
            return None
        _f32t = train_viper
    return _f32t


def _relu_grad(z, g, d, n):
    """relu's backward kernel on float32 arrays (train_viper.relu_grad)."""
    train_kernels().relu_grad(z, g, d, n)  # pyright: ignore[reportOptionalMemberAccess]  (made only where _f32k exists)


class Activation:
    """An element-wise activation `f(x)` with derivative `df(x, y)`.

    forward/backward write into the caller's buffers and allocate only what
    `f`/`df` allocate (the built-in ones: float results)."""

    def __init__(self, name, f, df, kernel=None, dkernel=None):
        self.name = name
        self.f = f
        self.df = df
        self.kernel = kernel  # kernel(z, a, n) on float32 arrays (viper), or None
        self.dkernel = dkernel  # dkernel(z, g, d, n): backward on float32 arrays, or None

    def forward(self, z, a, n):
        """a[i] = f(z[i]) for i < n. Allocates only float results (nothing where
        a viper kernel does it: relu and leaky_relu on array('f') buffers)."""
        if self.kernel is not None and type(a) is array and type(z) is array:
            self.kernel(z, a, n)
            return
        f = self.f
        for i in range(n):
            a[i] = f(z[i])

    def backward(self, z, a, g, d, n):
        """d[i] = g[i] * f'(z[i]): the gradient at the activation's input. Allocates only
        float results (nothing where a viper kernel does it: relu and leaky_relu on
        array('f') buffers, where 0 * g gives +0.0 whatever the sign of g)."""
        if self.dkernel is not None and type(d) is array and type(g) is array and type(z) is array:
            self.dkernel(z, g, d, n)
            return
        df = self.df
        for i in range(n):
            d[i] = g[i] * df(z[i], a[i])

    def __repr__(self):
        return "<activation %s>" % self.name


def _linear(x):
    return x


def _d_linear(x, y):
    return 1.0


def _sigmoid(x):
    if x >= 0.0:
        return 1.0 / (1.0 + _exp(0.0 - x))
    e = _exp(x)
    return e / (1.0 + e)


def _d_sigmoid(x, y):
    return y * (1.0 - y)


def _d_tanh(x, y):
    return 1.0 - y * y


def _relu(x):
    return x if x > 0.0 else 0.0


def _d_relu(x, y):
    return 1.0 if x > 0.0 else 0.0


def _softplus(x):
    # log(1 + exp(x)) = max(x, 0) + log(1 + exp(-|x|))
    if x > 0.0:
        return x + _log(1.0 + _exp(0.0 - x))
    return _log(1.0 + _exp(x))


def _d_softplus(x, y):
    # The derivative of softplus is the sigmoid of its *input* (the original
    # nanonn applied it to the output).
    return _sigmoid(x)


class LeakyReLU(Activation):
    """max(x, alpha * x) with a configurable slope `alpha` (default 0.01).

    Allocates the object and its two closures; forward/backward allocate only
    float results."""

    def __init__(self, alpha=0.01):
        alpha = float(alpha)
        if not alpha >= 0.0:
            raise ValueError("leaky_relu alpha: expected a number >= 0, got %r" % alpha)
        self.alpha = alpha

        def f(x):
            return x if x > 0.0 else alpha * x

        def df(x, y):
            return 1.0 if x > 0.0 else alpha

        kernels = _leaky_kernels(alpha) if _f32k is not None else (None, None)
        Activation.__init__(self, "leaky_relu", f, df, kernels[0], kernels[1])


def _leaky_kernels(alpha):
    """(kernel(z, a, n), dkernel(z, g, d, n)): leaky ReLU and its derivative on float32
    bits (allocation free)."""
    scale = array("f", (alpha,))

    def kernel(z, a, n):
        _f32k.leaky_relu(z, a, n, scale)  # pyright: ignore[reportOptionalMemberAccess]  (made only where _f32k exists)

    def dkernel(z, g, d, n):
        train_kernels().leaky_relu_grad(z, g, d, n, scale)  # pyright: ignore[reportOptionalMemberAccess]  (made only where _f32k exists)

    return kernel, dkernel


class Softmax(Activation):
    """exp(z_i - max z) / sum_j exp(z_j - max z): never overflows.

    forward/backward write into the caller's buffers and allocate only float results."""

    def __init__(self):
        Activation.__init__(self, "softmax", None, None)

    def forward(self, z, a, n):
        # One frame of 11 words (a larger one is a heap block per call): 8 names and an
        # evaluation stack of 3 (`a[i] = a[i] / s`, not `a[i] /= s`, which needs 5).
        m = z[0]
        i = 1
        while i < n:
            if z[i] > m:
                m = z[i]
            i += 1
        s = 0.0
        i = 0
        while i < n:
            e = _exp(z[i] - m)
            a[i] = e
            s += e  # the sum of the unrounded values
            i += 1
        i = 0
        while i < n:
            a[i] = a[i] / s
            i += 1

    def backward(self, z, a, g, d, n):
        # Jacobian-vector product: d_i = a_i * (g_i - sum_j g_j a_j)
        s = 0.0
        for j in range(n):
            s += g[j] * a[j]
        for i in range(n):
            d[i] = a[i] * (g[i] - s)


# The table: name -> factory. Forward and derivative live side by side above.
ACTIVATIONS = {
    "linear": lambda: Activation("linear", _linear, _d_linear),
    "sigmoid": lambda: Activation("sigmoid", _sigmoid, _d_sigmoid),
    "tanh": lambda: Activation("tanh", _tanh, _d_tanh),
    "relu": lambda: Activation(
        "relu",
        _relu,
        _d_relu,
        _f32k.relu if _f32k is not None else None,
        _relu_grad if _f32k is not None else None,
    ),
    "leaky_relu": LeakyReLU,
    "softplus": lambda: Activation("softplus", _softplus, _d_softplus),
    "softmax": Softmax,
}


# The functions of the built-in element-wise activations, by name (`builtin_name`).
_FUNCTIONS = {
    "linear": (_linear, _d_linear),
    "sigmoid": (_sigmoid, _d_sigmoid),
    "tanh": (_tanh, _d_tanh),
    "relu": (_relu, _d_relu),
    "softplus": (_softplus, _d_softplus),
}


def builtin_name(activation):
    """The name of the built-in activation `activation` is (the name a model file
    stores), or None for a custom one: any other object, a subclass, or an
    `Activation` whose functions are not the built-in ones of its name (e.g.
    `Activation("relu", relu6, d_relu6)`). Allocates nothing."""
    t = type(activation)
    if t is Softmax:
        return "softmax"
    if t is LeakyReLU:
        return "leaky_relu"
    if t is Activation:
        name = activation.name
        fns = _FUNCTIONS.get(name) if type(name) is str else None
        if fns is not None and activation.f is fns[0] and activation.df is fns[1]:
            return name
    return None


def get(activation) -> "Activation":
    """Return an activation object for a name, None (linear) or an object.

    A custom object needs `forward(z, a, n)` and `backward(z, a, g, d, n)`.
    Allocates a new activation object for a name; returns an object as given.
    """
    if activation is None:
        activation = "linear"
    if isinstance(activation, str):
        factory = ACTIVATIONS.get(activation)
        if factory is None:
            raise ValueError(
                "activation: expected one of %s, got %r" % (", ".join(sorted(ACTIVATIONS)), activation)
            )
        return factory()
    if hasattr(activation, "forward") and hasattr(activation, "backward"):
        return activation
    raise TypeError(
        "activation: expected a name, None or an object with forward() and "
        "backward(), got %s" % type(activation).__name__
    )
