"""nanonn: small neural networks for MicroPython boards (and CPython)."""

from .activations import Activation
from .layers import Dense, Dropout, Layer
from .network import NN, Network, argmax

__version__ = "0.1.0"
__all__ = ["Activation", "Dense", "Dropout", "Layer", "NN", "Network", "argmax", "__version__"]

from .nnm import ModelFormatError, load  # noqa: E402

__all__ += ["ModelFormatError", "load"]
