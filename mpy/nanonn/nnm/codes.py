"""The `.nnm` model format's constants and codes: the device's one table.

The host tools import this very module (`nanonn_tools.device_package`); it
must stay plain Python that runs on CPython too. The format is specified in
`docs/format.md`.
"""

MAGIC = b"NNM\x1a"
VERSION_MAJOR = 1  # a reader refuses any other major version
VERSION_MINOR = 0  # a reader accepts every minor version of its major
HEADER_SIZE = 32  # minimum; a later minor version may grow it
RECORD_SIZE = 32  # minimum per layer record; likewise
CRC_SIZE = 4
ALIGN = 4  # every data block starts at a multiple of 4 from the file start
MAX_LAYERS = 255
MAX_FILE_SIZE = 0x3FFFFFFF  # stays a small int on 32-bit ports

# Header feature flags: a reader refuses a bit it does not know.
FLAGS = {"int8": 0x0001}

# Layer record codes.
LAYERS = {"dense": 1, "dropout": 2}
DTYPES = {"none": 0, "float32": 1, "int8": 2}
ACTIVATIONS = {
    "linear": 0,
    "sigmoid": 1,
    "tanh": 2,
    "relu": 3,
    "leaky_relu": 4,
    "softplus": 5,
    "softmax": 6,
    "softmax_tflite": 7,
}
# Activations of int8 layers only (a float layer with one of these codes is refused).
INT8_ONLY_ACTIVATIONS = ("softmax_tflite",)
LAYER_FLAGS = {"bias": 0x01}


def name_of(table, code):
    """The name for `code` in one of the tables above, or None. Allocates nothing."""
    for name in table:
        if table[name] == code:
            return name
    return None
