"""The viper training kernel (mpy/nanonn/float32/f32_viper.py) run as plain Python on CPython:
its integer arithmetic op for op, with 32-bit loads both zero-extended (the 64-bit unix
port) and sign-extended (the boards), every intermediate checked to fit a signed 32-bit
int, against numpy's y + a * x (float64, rounded once to float32) over float32 values of
every exponent: within one ulp of the result plus 2^-26 of the larger operand."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from support import MPY

LO, HI = -(1 << 31), (1 << 31) - 1


class I32(int):
    """An int whose every arithmetic result must fit a signed 32-bit int (a board's viper int)."""

    def _r(self, v):
        if not LO <= v <= HI:
            raise AssertionError("intermediate %d outside int32" % v)
        return I32(v)

    def __add__(self, o):
        return self._r(int(self) + int(o))

    __radd__ = __add__

    def __sub__(self, o):
        return self._r(int(self) - int(o))

    def __rsub__(self, o):
        return self._r(int(o) - int(self))

    def __mul__(self, o):
        return self._r(int(self) * int(o))

    __rmul__ = __mul__

    def __lshift__(self, o):
        return self._r(int(self) << int(o))

    def __rlshift__(self, o):
        return self._r(int(o) << int(self))

    def __rshift__(self, o):
        return I32(int(self) >> int(o))

    def __and__(self, o):
        return I32(int(self) & int(o))

    __rand__ = __and__

    def __or__(self, o):
        return self._r(_signed(int(self) | int(o)))

    __ror__ = __or__

    def __xor__(self, o):
        return I32(int(self) ^ int(o))

    __rxor__ = __xor__


def _signed(v):
    return v - (1 << 32) if v >= 1 << 31 else v


class Ptr32:
    """A viper ptr32 over a uint32 view: loads sign- or zero-extended, stores truncate.
    `int(p)` is its address, `ptr32(address)` a pointer back into the same view (the
    kernel walks its buffers by pointer): each view gets an address range of its own."""

    spaces: list = []  # the views, by address range: view k starts at (k + 1) * 2^24

    def __init__(self, words, signed, at=0):
        self.words = words
        self.signed = signed
        self.at = at  # the word this pointer points at
        if not any(w is words for w, _ in Ptr32.spaces):
            Ptr32.spaces.append((words, signed))

    def __int__(self):
        k = next(i for i, (w, _) in enumerate(Ptr32.spaces) if w is self.words)
        return ((k + 1) << 24) + 4 * self.at

    def __getitem__(self, i):
        v = int(self.words[self.at + int(i)])
        return I32(_signed(v)) if self.signed else v

    def __setitem__(self, i, v):
        self.words[self.at + int(i)] = int(v) & 0xFFFFFFFF


def ptr32(address):
    """viper's cast of an address to a ptr32 (addresses within 2^20 bytes before or
    after a view's range belong to it: a pointer may sit one word before its buffer)."""
    address = int(address)
    k = ((address + (1 << 20)) >> 24) - 1
    words, signed = Ptr32.spaces[k]
    return Ptr32(words, signed, (address - ((k + 1) << 24)) // 4)


def _load_kernel():
    fake = types.ModuleType("micropython")
    fake.viper = lambda f: f  # pyright: ignore[reportAttributeAccessIssue]
    saved = sys.modules.get("micropython")
    sys.modules["micropython"] = fake
    try:
        namespace: dict = {"ptr32": ptr32}
        source = (MPY / "nanonn" / "float32" / "f32_viper.py").read_text()
        exec(compile(source, "f32_viper.py", "exec"), namespace)
    finally:
        if saved is None:
            del sys.modules["micropython"]
        else:
            sys.modules["micropython"] = saved
    return namespace["axpy_rows"]


def _random(rng, n, lo, hi):
    return (rng.uniform(-2, 2, n) * 2.0 ** rng.integers(lo, hi, n)).astype(np.float32)


@pytest.mark.parametrize("signed", [False, True], ids=["zero-extended", "sign-extended"])
@pytest.mark.parametrize("lo,hi", [(-3, 3), (-40, 40), (-140, -110), (60, 64)])
def test_outer_product_on_checked_ints(signed, lo, hi):
    axpy = _load_kernel()
    rng = np.random.default_rng(abs(lo) + 1000 * signed)
    rows, n = 4, 33
    y = _random(rng, rows * n, lo, hi)
    x = _random(rng, n, lo // 2, hi // 2)
    a = _random(rng, rows, lo // 2, hi // 2)
    x[3] = 0.0
    y[5] = 0.0
    want64 = y.astype(np.float64).reshape(rows, n) + np.outer(a.astype(np.float64), x.astype(np.float64))
    with np.errstate(over="ignore"):
        want = want64.astype(np.float32).ravel()
    big = np.maximum(np.abs(y.astype(np.float64)), np.abs(np.outer(a, x).astype(np.float64)).ravel())
    got = y.copy()

    def ptr(arr):
        return Ptr32(memoryview(arr).cast("B").cast("I"), signed)

    axpy(ptr(got), I32(n), ptr(x), I32(0), ptr(a), I32(rows), I32(n))
    finite = np.isfinite(want)
    assert np.array_equal(np.isinf(got), np.isinf(want))
    ulp = np.spacing(np.abs(want[finite]))
    err = np.abs(got[finite].astype(np.float64) - want[finite])
    assert np.all(err <= ulp + big[finite] * 2.0**-26), np.max(err / (ulp + big[finite] * 2.0**-26))
