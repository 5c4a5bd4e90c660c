"""A tiny deterministic PRNG (xorshift32): same numbers on every port."""

_M32 = 0xFFFFFFFF


class Random:
    """xorshift32 seeded with `seed` (0 is replaced by a fixed non-zero state).

    Allocates: on 32-bit ports every int >= 2**30 (the state, intermediates and
    `next32` results) is a heap (long) int; `random`/`uniform` return floats."""

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

    def random(self):
        """A float in [0, 1)."""
        return (self.next32() >> 8) / 16777216.0

    def uniform(self, lo, hi):
        return lo + (hi - lo) * self.random()

    def below(self, n):
        """An int in [0, n)."""
        return self.next32() % n

    def shuffle(self, seq):
        """Fisher-Yates shuffle in place."""
        for i in range(len(seq) - 1, 0, -1):
            j = self.below(i + 1)
            seq[i], seq[j] = seq[j], seq[i]
