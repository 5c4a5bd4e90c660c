"""A tiny deterministic PRNG (xorshift32): the same numbers on every port.

Integers (`next32`, `below`, `shuffle`) are the same everywhere by construction. Of the
floats, `random`, `symmetric` and `glorot_limit` are exact: each result is a float32 value
made by exact operations (an integer below 2**24 times a power of two, or one product of
two float32 values, which a 64-bit port computes exactly and rounds to float32 once when it
is stored in an array('f'), as a single-precision board rounds it), so seeded weights and
dropout masks are bit-identical on x64, CPython and the 32-bit boards. `uniform` works in
the port's float precision and is not bit-identical across ports.
"""

_M32 = 0xFFFFFFFF
_2_24 = 16777216.0


def _isqrt(v):
    """floor(sqrt(v)) of an int v >= 0 (Newton's method on ints)."""
    x = v
    y = (x + 1) >> 1
    while y < x:
        x = y
        y = (x + v // x) >> 1
    return x


def glorot_limit(fan_in, fan_out):
    """sqrt(6 / (fan_in + fan_out)) (Glorot uniform's bound) rounded down to a multiple
    of 2**-23: a float32 value computed with integers only, the same on every port.
    Allocates (long ints on 32-bit ports): for build time."""
    return _isqrt((6 << 46) // (fan_in + fan_out)) / 8388608.0


class Random:
    """xorshift32 seeded with `seed` (0 is replaced by a fixed non-zero state).

    Allocates: on 32-bit ports every int >= 2**30 (the state, intermediates and
    `next32` results) is a heap (long) int; the float methods return floats."""

    def __init__(self, seed=1):
        s = int(seed) & _M32
        self.state = s if s else 0x2545F491

    def next32(self):
        x = self.state
        x ^= (x << 13) & _M32
        x ^= x >> 17
        x ^= (x << 5) & _M32
        self.state = x
        return x

    def bits24(self):
        """An int in [0, 2**24): the top 24 bits of `next32`."""
        return self.next32() >> 8

    def random(self):
        """A float in [0, 1): a multiple of 2**-24, exact on every port."""
        return self.bits24() / _2_24

    def symmetric(self, limit):
        """A float in (-limit, limit): `limit` times an odd multiple of 2**-24. For a
        float32 `limit`, stored in an array('f') it is the same float32 on every port."""
        return limit * ((2 * self.bits24() + 1 - 16777216) / _2_24)

    def uniform(self, lo, hi):
        """A float in [lo, hi), in the port's float precision (not bit-identical across
        ports; `symmetric` is)."""
        return lo + (hi - lo) * self.random()

    def below(self, n):
        """An int in [0, n)."""
        return self.next32() % n

    def shuffle(self, seq):
        """Fisher-Yates shuffle in place."""
        for i in range(len(seq) - 1, 0, -1):
            j = self.below(i + 1)
            seq[i], seq[j] = seq[j], seq[i]
