"""nanonn: small neural networks for MicroPython boards (and CPython)."""

from .float32.activations import Activation
from .float32.layers import Dense, Dropout, Layer
from .float32.network import NN, Network, argmax

__version__ = "0.1.0"
__all__ = ["Activation", "Dense", "Dropout", "Layer", "NN", "Network", "argmax", "__version__"]

from .errors import ModelFormatError  # noqa: E402


def load(source, trainable: "bool | int" = False):
    """Load a .nnm model (a path, a file object or bytes-like): see `nanonn.nnm.read.load`.

    The reader is imported on first use, so a program that never loads a
    model does not pay its RAM (about 26 KB on the 64-bit unix port). Allocates
    the network (see `nanonn.nnm.read.load` for what it costs); collects garbage
    first, so the reader and the model's buffers get the largest free blocks
    (left to the allocator's next failure, the garbage of the caller's script
    fragments a board-sized heap)."""
    import gc

    gc.collect()
    import nanonn.nnm.read  # absolute: a relative import allocates on every call

    return nanonn.nnm.read.load(source, trainable)


__all__ += ["ModelFormatError", "load"]
