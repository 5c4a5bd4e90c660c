"""Error types of the device package that callers catch by name (kept tiny: imported eagerly)."""


class ModelFormatError(ValueError):
    """Not a valid .nnm model: the message names the field, the expected and the actual value."""


# What importing a @micropython.viper module raises where the port cannot compile it:
# SyntaxError on MicroPython built without the native emitter (the WebAssembly port,
# boards whose firmware disables it), ImportError on CPython (no `micropython` module),
# the others on ports that reject the emitted code. Every viper import catches this tuple
# and falls back to plain Python (crc32, inputs, layers, quant); tests/test_no_native.py
# holds every viper import to it.
NO_NATIVE_CODE = (ImportError, SyntaxError, AttributeError, NotImplementedError, ValueError, TypeError)
