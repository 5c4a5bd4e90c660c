"""Read an array's typecode byte from its object header in @micropython.viper (allocates nothing).

`nanonn.inputs` uses it to learn the element typecode of an `array` or
`memoryview` on MicroPython, where neither has `typecode`, `format` or
`itemsize`: both are a `mp_obj_array_t` (py/objarray.h), whose second word
holds the typecode in its low 8 bits. `nanonn.inputs` maps the byte to a typecode
(its `_CODES` table: a table costs a board less RAM than the comparisons as native
code) and checks the result against arrays of every typecode at import before it
relies on it.
"""

import micropython


@micropython.viper
def header_code(addr: int, wrapped: int, offset: int) -> int:
    """The byte at `addr + offset` without bit 7 (a writable memoryview's flag): the
    typecode byte of the array or memoryview at address `addr` (its `id`), 1 for a
    bytearray. `wrapped`: whether that id was negative (on a 32-bit port, an
    address in [2^30, 2^31) comes back from id() as a small int with bit 31 set:
    the address | 2^31)."""
    if wrapped:
        b31 = 31  # a literal >= 2^30 would be a Python object on 32-bit ports
        addr = addr & ((1 << b31) - 1)
    return int(ptr8(addr)[offset]) & 0x7F
