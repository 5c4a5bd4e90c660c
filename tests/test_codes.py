"""The .nnm codes: one table, the device's `nanonn/nnm/codes.py`, which the host imports
from the device package it ships (under a private name: no `nanonn` on the host's path,
no bytecode cache written beside the sources); MicroPython reads the same values."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nanonn_tools import nnm
from nanonn_tools.device_package import PREFIX, codes, device_package_dir
from nanonn_tools.model import DenseSpec, ModelSpec
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


def test_host_codes_are_the_device_module(tmp_path):
    assert Path(str(codes.__file__)).resolve() == (device_package_dir() / "nnm" / "codes.py").resolve()
    assert codes.__name__ == PREFIX + ".nnm.codes"
    # From a copy of the device package, with bytecode caching on: the host's modules that use
    # the device's facts load it under the private name only, and write nothing beside it.
    copy = tmp_path / "nanonn"
    shutil.copytree(device_package_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    code = (
        "import sys, nanonn_tools.info as i, nanonn_tools.nnm_int8\n"
        "i.stats(i.nnm.loads(open(sys.argv[1], 'rb').read()))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'nanonn'))\n"
        "print(i.codes.__file__)"
    )
    model = tmp_path / "m.nnm"
    nnm.write(ModelSpec([DenseSpec(np.ones((2, 3)), None, "relu")]).validate(), model)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["NANONN_DEVICE_PACKAGE"] = str(copy)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(model)], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == ["[]", str(copy / "nnm" / "codes.py")]
    assert not list(copy.rglob("__pycache__"))


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
