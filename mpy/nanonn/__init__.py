"""nanonn: small neural networks for MicroPython boards (and CPython)."""

from .errors import ModelFormatError

__version__ = "0.1.0"
__all__ = ["Activation", "Dense", "Dropout", "Layer", "NN", "Network", "argmax", "__version__"]
__all__ += ["ModelFormatError", "load"]

# The public classes are imported on first use (a module `__getattr__`, PEP 562; MicroPython
# has it from the CORE_FEATURES ROM level, every board port): `import nanonn` keeps only this
# module in RAM, and a program that loads an int8 model never imports the float network.
# `from nanonn import Dense` and `nanonn.Dense` work as before.
_LAZY = {
    "Activation": "float32.activations",
    "Dense": "float32.layers",
    "Dropout": "float32.layers",
    "Layer": "float32.layers",
    "NN": "float32.network",
    "Network": "float32.network",
    "argmax": "float32.network",
}

TYPE_CHECKING = False  # true for type checkers only (MicroPython has no `typing`)
if TYPE_CHECKING:
    from .float32.activations import Activation
    from .float32.layers import Dense, Dropout, Layer
    from .float32.network import NN, Network, argmax


def __getattr__(name):
    """A public class on first use; else the submodule `nanonn.<name>` (MicroPython's
    `from nanonn import x` asks here before it imports a submodule). Raises
    AttributeError for neither."""
    where = _LAZY.get(name)
    if where is None:
        try:
            return __import__("nanonn." + name, None, None, ("*",))
        except ImportError:
            raise AttributeError("module 'nanonn' has no attribute %r" % name)
    value = getattr(__import__("nanonn." + where, None, None, ("*",)), name)
    globals()[name] = value
    return value


def load(source, trainable: "bool | int" = False):
    """Load a .nnm model (a path, a file object or bytes-like): see `nanonn.nnm.read.load`.

    The reader is imported on first use, so a program that never loads a
    model does not pay its RAM. Loading an int8 model imports the reader and
    the int8 network only; a float model, the float network's inference code
    (no losses, training kernels or PRNG: imported at the first training step). Allocates the network (see `nanonn.nnm.read.load` for what
    it costs); collects garbage first, so the reader and the model's buffers
    get the largest free blocks (left to the allocator's next failure, the
    garbage of the caller's script fragments a board-sized heap)."""
    import gc

    gc.collect()
    import nanonn.nnm.read  # absolute: a relative import allocates on every call

    return nanonn.nnm.read.load(source, trainable)
