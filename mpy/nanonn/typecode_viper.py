"""Read one byte of an object's header in @micropython.viper (allocates nothing).

`nanonn.inputs` uses it to learn the element typecode of an `array` or
`memoryview` on MicroPython, where neither has `typecode`, `format` or
`itemsize`: both are a `mp_obj_array_t` (py/objarray.h), whose second word
holds the typecode in its low 8 bits. `nanonn.inputs` checks the result
against arrays of every typecode at import before it relies on it.
"""

import micropython


@micropython.viper
def header_byte(addr: int, offset: int) -> int:
    """The byte at address `addr + offset` (`addr`: an object's `id`)."""
    p = ptr8(addr)
    return int(p[offset])
