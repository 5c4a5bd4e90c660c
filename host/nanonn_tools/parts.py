"""The parts of the device package a board can install apart: the one table of which module
belongs to which part, and what each part needs.

`core` is what `nanonn.load` and `predict` of a float model import, and what building and
training a float network adds on first use (the PRNG, the losses, the training kernels);
the others are additions that bring the modules only they import. `nanonn deploy` copies
the parts a model needs (`needed`), `tools/package_json.py` writes one mip package per part
(`mpy/<part>.json`) and the whole package (`package.json`) from this table, and
`tests/test_packaging.py` installs each with mip and checks that every device module is in
exactly one part. Paths are relative to the device package folder (`mpy/nanonn/`).
"""

from __future__ import annotations

from . import NanonnError

# part -> (its modules, the parts it needs, what it is for)
PARTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "core": (
        (
            "__init__.py",
            "errors.py",
            "inputs.py",
            "typecode_viper.py",
            "rand.py",
            "crc32.py",
            "crc32_viper.py",
            "crc32_py.py",
            "float32/__init__.py",
            "float32/network.py",
            "float32/layers.py",
            "float32/activations.py",
            "float32/losses.py",
            "float32/dense_viper.py",
            "float32/dense_cache_viper.py",
            "float32/f32_viper.py",
            "float32/train_viper.py",
            "float32/momentum_viper.py",
            "nnm/__init__.py",
            "nnm/codes.py",
            "nnm/layout.py",
            "nnm/read.py",
            "nnm/layers.py",
            "nnm/views.py",
        ),
        (),
        "load a model and predict with a float network (build and train one too)",
    ),
    "int8": (
        (
            "int8/__init__.py",
            "int8/network.py",
            "int8/kernels_viper.py",
            "int8/kernels_extra_viper.py",
            "int8/kernels_wide_viper.py",
            "int8/kernels_py.py",
            "int8/multiplier.py",
            "nnm/int8.py",
        ),
        ("core",),
        "load and run int8 models",
    ),
    "quantize": (("int8/quantize.py",), ("int8",), "Network.quantize: a float network to int8 on the board"),
    "train": (
        ("int8/tune.py",),
        ("quantize", "save"),
        "fine-tune an int8 network on the board (int8.tune.Tuner: re-quantizes, saves); float training is in core",
    ),
    "save": (
        ("nnm/write.py", "nnm/backup.py"),
        ("core",),
        "save a network (Network.save, dumps), safe saves on FAT (backup=True: the writer asks "
        "the backup module whether the file is on FAT) and loading the models those write",
    ),
}
OPTIONAL = tuple(name for name in PARTS if name != "core")


def closure(names) -> list[str]:
    """The parts `names` and every part they need, in table order (core first)."""
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name not in PARTS:
            raise NanonnError("part: expected one of %s, got %r" % (", ".join(PARTS), name))
        if name not in seen:
            seen.add(name)
            todo.extend(PARTS[name][1])
    return [name for name in PARTS if name in seen]


def modules(names) -> list[str]:
    """The module paths of the parts `names` and of every part they need."""
    return [path for name in closure(names) for path in PARTS[name][0]]


def part_of(path: str) -> str | None:
    """The part that holds the module `path` (relative to the package folder), or None."""
    for name, (paths, _, _) in PARTS.items():
        if path in paths:
            return name
    return None


def needed(model: bytes) -> list[str]:
    """The parts that loading and running the `.nnm` model `model` (checked) imports: core; int8
    for an int8 model (header flag 0x0001); save for a model written by a safe
    save (a header of 36 bytes or more carries its generation: the reader then imports the
    backup module, in the save part)."""
    from .device_package import codes
    from .nnm import HEADER, Header

    h = Header._make(HEADER.unpack_from(model, 0))
    names = ["core"]
    if h.flags & codes.FLAGS["int8"]:
        names.append("int8")
    if h.header_size > codes.HEADER_SIZE:
        names.append("save")
    return closure(names)


def parse(text: str) -> list[str]:
    """Parts named on the command line ("int8,quantize", "all"): checked, with what they need."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if "all" in names:
        return list(PARTS)
    try:
        return closure(names)
    except NanonnError:
        raise NanonnError(
            "parts: expected a comma-separated list of %s, or all; got %r" % (", ".join(PARTS), text)
        ) from None
