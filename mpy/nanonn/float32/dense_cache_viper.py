"""The checksum of a Dense layer's weights kept decoded (`Dense(cache=True)`), in viper.

A cached layer keeps its rows decoded by `dense_viper.decode` (4 bytes a weight) so
that `dense_viper.dot` need not decode them at every call; it keeps the `checksum` of
the float32 words they came from beside them and compares it at each predict, so a
weight written directly is noticed (then decoded again). A module of its
own: only a network with a cached layer imports it (its native code is RAM on a board).
Allocates nothing.
"""

import micropython


@micropython.viper
def checksum(w: ptr32, count: int) -> int:
    """A position-sensitive sum of `count` 32-bit words (Fletcher-like, wrapping at 2^32
    on the boards; its low 30 bits, a small int on every port): a change of one word, or an exchange
    of two groups of 4, changes it."""
    s1 = 0
    s2 = 0
    k = count >> 3
    while k:
        s1 += w[0] + w[1] + w[2] + w[3]
        s2 += s1
        s1 += w[4] + w[5] + w[6] + w[7]
        s2 += s1
        w = ptr32(int(w) + 32)
        k -= 1
    k = count & 7
    while k:
        s1 += w[0]
        s2 += s1
        w = ptr32(int(w) + 4)
        k -= 1
    b30 = 30  # a small int on every port: the result is not boxed
    return ((s1 ^ (s2 << 7) ^ (s2 >> 13)) + count) & ((1 << b30) - 1)
