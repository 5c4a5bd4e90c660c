"""Read an array's typecode from its object header in @micropython.viper (allocates nothing).

`nanonn.inputs` uses it to learn the element typecode of an `array` or
`memoryview` on MicroPython, where neither has `typecode`, `format` or
`itemsize`: both are a `mp_obj_array_t` (py/objarray.h), whose second word
holds the typecode in its low 8 bits. `nanonn.inputs` checks the result
against arrays of every typecode at import before it relies on it.
"""

import micropython


@micropython.viper
def header_code(addr: int, wrapped: int, offset: int) -> int:
    """The typecode of the array or memoryview at address `addr` (its `id`), as
    `nanonn.inputs.typecode` returns it: the byte at `addr + offset` without the
    writable flag (bit 7), a bytearray's 1 as ord("B"), 0 unless one of
    bBhHiIlLqQfd. `wrapped`: whether that id was negative (on a 32-bit port, an
    address in [2^30, 2^31) comes back from id() as a small int with bit 31 set:
    the address | 2^31)."""
    if wrapped:
        b31 = 31  # a literal >= 2^30 would be a Python object on 32-bit ports
        addr = addr & ((1 << b31) - 1)
    p = ptr8(addr)
    c = int(p[offset]) & 0x7F
    if c == 1:  # bytearray
        return 66
    # b B h H i I l L q Q f d
    if c == 98 or c == 66 or c == 104 or c == 72 or c == 105 or c == 73:
        return c
    if c == 108 or c == 76 or c == 113 or c == 81 or c == 102 or c == 100:
        return c
    return 0
