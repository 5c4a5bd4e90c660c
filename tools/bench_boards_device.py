"""Device side of tools/bench_boards.py (MicroPython, on the bare-metal firmware; from its ROMFS).

The 784-36-14-10 int8 model is /rom/big.nnm (read as a stream into RAM: "file"; by its
path, used in place on ROMFS: "romfs") and `big_int8.MODEL` (a bytes constant of a .mpy
on ROMFS: used in place, as when frozen: "const"); the float model is
/rom/big_f32.nnm (read in place through a memoryview of the ROMFS file). Each function prints one JSON line.

    memory(source, blocker)   heap used by `import nanonn`, by loading the model from
                              `source` ("file", "romfs" or "const"), kept after a first
                              predict_int8, and whether predict_int8 then runs under
                              heap_lock; `blocker` bytes are allocated first (to bisect
                              the smallest free heap that runs it).
    speed(n, float_model)     ticks_us per call of predict_int8, int8 predict (float in
                              and out) and float predict (the float model, unless
                              `float_model` is False), n calls each,
                              less an empty loop; under qemu -icount shift=0 one ticks_us
                              is 1000 instructions.
"""

import gc
import json
import time
from array import array

import micropython


def _used():
    gc.collect()
    return gc.mem_alloc()


def x8_input(n):
    """The int8 input of every measurement (and of the C version): (i * 37) % 256 - 128.
    One allocation of n bytes, filled in place: a list of n ints would be a 4 KB block,
    and array("b", bytes(n)) a second n-byte block (its zero-filled temporary), which a
    fragmented board heap may not have although the model runs (the measurement's own
    cost, not nanonn's). MicroPython's array("b", range(n)) sizes the array from
    len(range) and truncates each item; every item is overwritten below."""
    x = array("b", range(n))
    for i in range(n):
        x[i] = (i * 37) % 256 - 128
    return x


def xf_input(n):
    """The float input: ((i * 37) % 101) / 50 - 1 (tools/bench_memory.py's)."""
    x = array("f", bytes(4 * n))
    for i in range(n):
        x[i] = ((i * 37) % 101) / 50.0 - 1.0
    return x


def _load(source):
    """The int8 model from "file" (/rom/big.nnm as a stream: read into RAM, as from a
    board's littlefs or FAT), "romfs" (the path /rom/big.nnm: used in place) or "const"
    (big_int8.MODEL, a bytes constant of a .mpy on ROMFS: in place, as when frozen)."""
    import nanonn
    from nanonn.int8.network import QNetwork  # (loading an int8 model imports it anyway)

    if source == "file":
        with open("/rom/big.nnm", "rb") as f:
            net = nanonn.load(f)
    elif source == "romfs":
        net = nanonn.load("/rom/big.nnm")
    else:
        import big_int8  # pyright: ignore[reportMissingImports] (made by bench_boards.py on ROMFS)

        net = nanonn.load(big_int8.MODEL)
    if not isinstance(net, QNetwork):
        raise TypeError("expected the int8 model, got %s" % type(net).__name__)
    return net


def memory(source, blocker=0):
    block = bytearray(blocker) if blocker else None
    gc.collect()
    out = {
        "source": source,
        "blocker": blocker,
        "free_start": gc.mem_free(),
        "heap": gc.mem_free() + gc.mem_alloc(),
    }
    a0 = _used()
    try:
        import nanonn  # noqa: F401 (measured: the heap its import keeps)

        a1 = _used()
        net = _load(source)
        a2 = _used()
        x8 = x8_input(net.inputs)
        net.predict_int8(x8)
        a3 = _used()
        micropython.heap_lock()
        try:
            y = net.predict_int8(x8)
            locked = True
        except MemoryError:
            y, locked = None, False
        finally:
            micropython.heap_unlock()
        out.update(
            {
                "import": a1 - a0,
                "load": a2 - a1,
                "kept": a3 - a0,
                "locked": locked,
                "out": list(y) if y else None,
            }
        )
    except MemoryError as exc:
        out["error"] = str(exc)
    out["blocker_held"] = len(block) if block else 0  # held to the end of the run
    print(json.dumps(out))


def _per_call(fn, x, n, empty):
    fn(x)
    t0 = time.ticks_us()
    for _ in range(n):
        fn(x)
    return (time.ticks_diff(time.ticks_us(), t0) - empty) / n


def _empty_loop(n, x):
    """ticks_us of n calls of a function that only returns x (what _per_call takes off)."""

    def nothing(x):
        return x

    t0 = time.ticks_us()
    for _ in range(n):
        nothing(x)
    return time.ticks_diff(time.ticks_us(), t0)


def speed(n, float_model=True):
    import nanonn

    empty = _empty_loop(n, n)
    out = {"n": n, "empty_loop_ticks": empty}
    net = _load("const")
    x8, xf = x8_input(net.inputs), xf_input(net.inputs)
    out["out"] = list(net.predict_int8(x8))
    out["predict_int8"] = _per_call(net.predict_int8, x8, n, empty)
    out["int8_predict_float_io"] = _per_call(net.predict, xf, n, empty)
    net = None
    gc.collect()
    if not float_model:
        print(json.dumps(out))
        return
    try:
        # in place from ROMFS (bench_boards.py aligns the file), as frozen weights would be
        fnet = nanonn.load(memoryview(open("/rom/big_f32.nnm", "rb")))  # pyright: ignore[reportArgumentType] (VfsRom files are buffers)
        out["float_in_place"] = fnet.layers[0].in_place
        out["float_predict"] = _per_call(fnet.predict, xf, n, empty)
    except MemoryError as exc:
        out["float_predict_error"] = str(exc)
    print(json.dumps(out))
