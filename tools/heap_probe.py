"""Where a board's heap goes when it loads the 784-36-14-10 int8 model (the figures behind
README "Boards": what a loaded model keeps, and why a file load needs more free heap than it
keeps). On the bare-metal firmware (tools/bench_boards.py's image: nanonn as .mpy on ROMFS):

- the heap each module of the int8 load path keeps when imported, in import order;
- the qstr pools those imports add (`micropython.qstr_info()`: its byte total also counts
  the names' text, which stays on ROMFS; the pools are the rest);
- after a load from a file into a free heap of `--free` bytes: the free heap and its largest
  block (`micropython.mem_info()`), i.e. whether the program's 784-byte input still fits;
- with `--strip-messages`: the same image with the text of every error message in the int8
  path's modules replaced by a format of the same arguments (an experiment: what the
  messages' string objects cost), its kept heap and smallest free heap for each source.

    python tools/heap_probe.py [--target cortex-m3|rv32imc] [--free 65536] [--strip-messages]
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "tests")]

import baremetal  # noqa: E402
import bench_boards  # noqa: E402

# the modules an int8 load imports, in import order (tests/test_load_ram.py holds the set)
INT8_PATH = (
    "nanonn",
    "nanonn.errors",
    "nanonn.crc32",
    "nanonn.inputs",
    "nanonn.nnm.codes",
    "nanonn.nnm.layout",
    "nanonn.int8.multiplier",
    "nanonn.int8.kernels_viper",
    "nanonn.int8.network",
    "nanonn.nnm.int8",
    "nanonn.nnm.read",
)
STRIPPED = ("__init__.py", "inputs.py", "int8/network.py", "nnm/int8.py", "nnm/read.py")

MODULES = """
import gc, json
def used():
    gc.collect()
    return gc.mem_alloc()
out = []
for m in %r:
    a = used()
    __import__(m)
    out.append([m, used() - a])
print(json.dumps({"modules": out}))
"""

QSTRS = """
import micropython
micropython.qstr_info()
import nanonn
net = nanonn.load("/rom/big.nnm")
micropython.qstr_info()
"""

AFTER_FILE_LOAD = """
import gc, json, micropython
import bench_boards_device as d
gc.collect()
block = bytearray(gc.mem_free() - %d)
gc.collect()
start = gc.mem_free()
import nanonn
with open("/rom/big.nnm", "rb") as f:
    net = nanonn.load(f)
gc.collect()
print(json.dumps({"free_start": start, "free_after_load": gc.mem_free()}))
micropython.mem_info()
"""


def _message(node: ast.Constant, docs: set[int]) -> bool:
    v = node.value
    return isinstance(v, str) and " " in v and len(v) > 10 and id(node) not in docs


def strip_messages(source: str) -> str:
    """`source` with each error message's text (a str constant of more than 10 characters
    with a space, not a docstring) replaced by "e" or a format of as many `%r` as it takes."""
    tree = ast.parse(source)
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))

    class Strip(ast.NodeTransformer):
        def visit_Constant(self, node):
            text = node.value
            if not isinstance(text, str) or not _message(node, docs):
                return node
            n = text.count("%") - 2 * text.count("%%")
            return ast.copy_location(ast.Constant(" ".join(["%r"] * n) if n else "e"), node)

    return ast.unparse(Strip().visit(tree))


def _json(target, image, code: str) -> dict:
    return bench_boards._run(target, image, code)[-1]


def _qstr_lines(target, image) -> list[dict]:
    out, err = baremetal.run(target, QSTRS, image, timeout=600)
    if err:
        raise SystemExit("heap_probe: %s: %s" % (target.name, err))
    rows = []
    for line in out.splitlines():
        if line.startswith("qstr pool:"):
            rows.append(dict((k.strip(), int(v)) for k, v in (p.split("=") for p in line[10:].split(","))))
    return rows


def _after_file_load(target, image, free: int) -> dict:
    out, err = baremetal.run(target, AFTER_FILE_LOAD % free, image, timeout=600)
    lines = out.splitlines()
    r = next((json.loads(x) for x in lines if x.startswith("{")), None)
    if err or r is None:
        return {"error": (out + err)[-300:]}
    for line in lines:
        if "max free sz:" in line:
            r["largest_free_block"] = 16 * int(line.rsplit("max free sz:", 1)[1].strip())
    return r


def stripped_image(b: bench_boards.Bench, target) -> Path:
    """The benchmark image with the messages of STRIPPED's modules stripped (strip_messages)."""
    image = b.image(target)
    tree = image.parent / "tree"
    with tempfile.TemporaryDirectory() as tmp:
        for rel in STRIPPED:
            src = Path(tmp) / rel.replace("/", "_")
            src.write_text(strip_messages((ROOT / "mpy" / "nanonn" / rel).read_text()))
            baremetal.mpy_cross(src, (tree / "lib" / "nanonn" / rel).with_suffix(".mpy"), target.march)
    baremetal.make_romfs(tree, image)
    return image


def report(target, image, label: str, free: int, sweep: bool) -> None:
    print("\n%s, %s" % (target.name, label))
    mods = _json(target, image, MODULES % (INT8_PATH,))["modules"]
    for name, kept in mods:
        print("  import %-28s keeps %6d B" % (name, kept))
    print("  the int8 load path's imports keep %d B" % sum(k for _, k in mods))
    q = _qstr_lines(target, image)
    if len(q) == 2:
        text = q[1]["n_str_data_bytes"] - q[0]["n_str_data_bytes"]
        total = q[1]["n_total_bytes"] - q[0]["n_total_bytes"]
        print(
            "  qstrs added by import + load: %d names; qstr_info counts %d B, of which %d B are their text"
            " (on ROMFS): pools %d B" % (q[1]["n_qstr"] - q[0]["n_qstr"], total, text, total - text)
        )
    r = _after_file_load(target, image, free)
    if "error" in r:
        print("  load from a file with %d B free: failed: %s" % (free, r["error"]))
    else:
        print(
            "  load from a file with %d B free: %d B free after it, largest free block %s B"
            " (the program's 784-byte input %s)"
            % (
                r["free_start"],
                r["free_after_load"],
                r.get("largest_free_block", "?"),
                "fits" if r.get("largest_free_block", 0) > 784 else "does not fit",
            )
        )
    for source in bench_boards.SOURCES:
        m = bench_boards.memory(target, image, source)
        line = "  %-6s kept %6d B" % (source, m.get("kept", -1))
        if sweep:
            s = bench_boards.heap_sweep(target, image, source, m["free_start"] - m["kept"] - 16384)
            line += ", smallest free heap %s B" % s["reliable"]
        print(line)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--target", choices=sorted(baremetal.TARGETS), default="cortex-m3")
    p.add_argument("--free", type=int, default=65536, help="free heap for the file-load probe (bytes)")
    p.add_argument("--strip-messages", action="store_true", help="also measure without the messages' text")
    args = p.parse_args(argv)
    target = baremetal.TARGETS[args.target]
    reason = baremetal.unavailable(target)
    if reason:
        print("heap_probe: %s" % reason, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        b = bench_boards.Bench(Path(tmp))
        report(target, b.image(target), "nanonn as it is", args.free, args.strip_messages)
        if args.strip_messages:
            report(target, stripped_image(b, target), "error messages' text stripped", args.free, True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
