"""The .nnm codes: the host table and the device table agree (read on both runtimes)."""

import json

import pytest

from nanonn_tools import codes
from support import run_device

NAMES = (
    "MAGIC",
    "VERSION_MAJOR",
    "VERSION_MINOR",
    "HEADER_SIZE",
    "RECORD_SIZE",
    "CRC_SIZE",
    "ALIGN",
    "MAX_LAYERS",
    "MAX_FILE_SIZE",
    "FLAGS",
    "LAYERS",
    "DTYPES",
    "ACTIVATIONS",
    "LAYER_FLAGS",
    "INT8_ONLY_ACTIVATIONS",
)
DUMP = """
import json
from nanonn.nnm import codes
out = {}
for name in %r:
    v = getattr(codes, name)
    out[name] = list(v) if type(v) is bytes or type(v) is tuple else v
print(json.dumps(out))
""" % (NAMES,)


def _host():
    return {
        name: list(v) if isinstance(v, (bytes, tuple)) else v
        for name, v in vars(codes).items()
        if name in NAMES
    }


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_device_codes_equal_host_codes(runtime):
    proc = run_device(runtime, ["-c", DUMP])
    assert proc.returncode == 0, proc.stderr
    device = json.loads(proc.stdout.strip().splitlines()[-1])
    assert device == _host()


def test_codes_are_unique_and_activations_cover_the_library():
    from nanonn_tools.reference import ACTIVATIONS

    for table in (codes.LAYERS, codes.DTYPES, codes.ACTIVATIONS):
        assert len(set(table.values())) == len(table)
    assert sorted(codes.ACTIVATIONS) == sorted(ACTIVATIONS + codes.INT8_ONLY_ACTIVATIONS)
    assert codes.name_of(codes.ACTIVATIONS, 4) == "leaky_relu" and codes.name_of(codes.LAYERS, 99) is None
