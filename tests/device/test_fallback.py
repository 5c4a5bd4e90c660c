"""Every @micropython.viper module has a plain-Python fallback that the package selects
where the port cannot compile viper (CPython; the WebAssembly port, which has no native
emitter; boards whose firmware disables it), and the package runs there end to end."""

from array import array

from check import IS_WASM, NATIVE, eq, ok
from nanonn import Dense, Network, crc32, load
from nanonn.crc32_py import crc32_py
from nanonn.errors import NO_NATIVE_CODE
from nanonn.float32 import layers
from nanonn.int8 import network as quant
from nanonn.nnm.write import dumps

VIPER_MODULES = (
    "crc32_viper",
    "float32.f32_viper",
    "float32.train_viper",
    "float32.momentum_viper",
    "float32.dense_cache_viper",
    "float32.dense_viper",
    "int8.kernels_viper",
    "int8.kernels_extra_viper",
    "typecode_viper",
)


def _import(name):
    """None if `nanonn.<name>` imports, else the exception its import raised."""
    try:
        __import__("nanonn." + name)
    except NO_NATIVE_CODE as exc:
        return exc
    return None


def test_viper_modules_import_only_where_native_code_exists():
    for name in VIPER_MODULES:
        exc = _import(name)
        if NATIVE:
            eq(exc, None, "import nanonn.%s on the unix port" % name)
        else:
            ok(exc is not None, "import nanonn.%s raises on a port without viper" % name)
        if IS_WASM:  # the port without the native emitter: the error of the report
            ok(isinstance(exc, SyntaxError), "import nanonn.%s: SyntaxError, got %r" % (name, exc))


def test_fallbacks_selected():
    eq(layers._fast is None, not NATIVE, "the plain float loop (layers._fast is None)")
    eq(quant.DEFAULT_KERNELS, "viper" if NATIVE else "python", "default int8 kernels")
    eq(
        (crc32._crc32_viper, crc32._crc32_py),
        (None, None),
        "crc32: binascii where the port has it, nothing else",
    )


def test_crc32_every_implementation():
    data = bytes((i * 37 + 11) & 255 for i in range(300))
    impls = [("crc32_py", crc32_py)]
    if NATIVE:
        from nanonn.crc32_viper import crc32_viper

        impls.append(("crc32_viper", crc32_viper))
    for name, fn in impls:
        eq(fn(b"123456789", 9, 0), 0xCBF43926, "%s('123456789')" % name)
        eq(fn(b"", 0, 0), 0, "%s of nothing" % name)
        eq(fn(data[100:], 200, fn(data, 100, 0)), crc32.update(0, data, 300), "%s chained" % name)
        eq(fn(memoryview(data), 300, 0), crc32.update(0, data, 300), "%s over a memoryview" % name)


def test_crc32_update_without_binascii():
    # update's last fallback (ports without binascii.crc32 and viper): bytes, and an array's bytes.
    floats = array("f", [1.0, -2.5, 3e-9])
    expected = [crc32.update(0, b"123456789", 9), crc32.update(0, bytes(floats), 12)]
    saved = crc32._binascii_crc32, crc32._crc32_py
    crc32._binascii_crc32, crc32._crc32_py = None, crc32_py  # as on a port with neither
    try:
        got = [crc32.update(0, b"123456789", 9), crc32.update(0, floats, 12)]
    finally:
        crc32._binascii_crc32, crc32._crc32_py = saved
    eq(got, expected, "update via crc32_py")


def test_model_round_trip_on_the_fallbacks():
    net = Network(Dense(5, inputs=3, activation="tanh"), Dense(2, activation="softmax"), seed=2)
    X = [[0.5, -1.0, 0.25], [1.5, 0.0, -0.75], [-0.2, 0.3, 0.9]]
    q = net.quantize(X)
    for model in (net, q):
        loaded = load(dumps(model))
        for x in X:
            eq(
                list(loaded.predict(x)),
                list(model.predict(x)),
                "loaded %s predicts as saved" % type(model).__name__,
            )
