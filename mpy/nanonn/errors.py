"""Error types of the device package that callers catch by name (kept tiny: imported eagerly)."""


class ModelFormatError(ValueError):
    """Not a valid .nnm model: the message names the field, the expected and the actual value."""
