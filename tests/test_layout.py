"""The device package's layout (docs/developers.md, "Module map"): the graph of every import,
those inside functions included, has no cycle; every module says in its first line what it
is; every import follows the module map's rules; the header and record field indexes
the `.nnm` code names agree with docs/format.md, the format's one specification; and the
host's `.nnm` code reads and builds headers and records by those names, never by position."""

from __future__ import annotations

import ast
import re
import struct

import pytest

from nanonn_tools import NanonnError, nnm, nnm_int8
from nanonn_tools.device_package import device_fields, device_module
from support import MPY, ROOT, nanonn_imports

PACKAGE = MPY / "nanonn"


def _name(path):
    """The dotted name below nanonn of a module file ("" for nanonn/__init__.py)."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text()) for name, path in MODULES.items()}


def _show(name):
    return "nanonn" + ("." + name if name else "")


class _Imports(ast.NodeVisitor):
    """The nanonn modules a module imports: {imported: [where]}, where is the qualified
    name of the function around the import ("Network.save") or "" at the top level."""

    def __init__(self, name):
        self.name = name
        self.scope = []
        self.function = 0  # how many of the enclosing scopes are functions
        self.found = {}

    def _scoped(self, node, is_function):
        self.scope.append(node.name)
        self.function += is_function
        self.generic_visit(node)
        self.function -= is_function
        self.scope.pop()

    def visit_ClassDef(self, node):
        self._scoped(node, 0)

    def visit_FunctionDef(self, node):
        self._scoped(node, 1)

    def _add(self, node):
        where = ".".join(self.scope) if self.function else ""
        for target in nanonn_imports(node, self.name)[1]:
            self.found.setdefault(target, []).append(where)

    def visit_Import(self, node):
        self._add(node)

    def visit_ImportFrom(self, node):
        self._add(node)


def _edges():
    """{(importer, imported): [where each import is: a function's name, or "" at the top level]}."""
    edges = {}
    for name, tree in TREES.items():
        visitor = _Imports(name)
        visitor.visit(tree)
        for target, where in visitor.found.items():
            edges[(name, target)] = sorted(where)
    return edges


EDGES = _edges()


def test_every_import_resolves_to_a_module_file():
    missing = sorted("%s imports %s" % (_show(a), _show(b)) for a, b in EDGES if b not in MODULES)
    assert not missing, missing


def _cycle(edges):
    """One import cycle as a list of module names (first == last), or None."""
    graph = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
    state = {}  # 1: on the current path, 2: done
    path = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_the_import_graph_has_no_cycle():
    """Counting the imports inside functions: none may exist only to break a cycle."""
    cycle = _cycle(EDGES)
    assert cycle is None, "import cycle: " + " -> ".join(_show(n) for n in cycle)


def _uncommented_lazy_imports(name):
    """The lazy imports of nanonn modules in module `name` with no comment saying why: on the
    import's line, or the line before its group of import lines."""
    lines = MODULES[name].read_text().splitlines()
    found = []
    for fn in ast.walk(TREES[name]):
        if not isinstance(fn, ast.FunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and nanonn_imports(node, name)[1]:
                first = node.lineno - 1
                while first > 0 and lines[first - 1].strip().startswith(("from ", "import ")):
                    first -= 1
                if (
                    "#" not in lines[node.lineno - 1]
                    and "#" not in lines[first]
                    and "#" not in lines[first - 1]
                ):
                    found.append(
                        "%s:%d %s"
                        % (MODULES[name].relative_to(ROOT), node.lineno, lines[node.lineno - 1].strip())
                    )
    return found


def test_every_lazy_import_says_why():
    """An import inside a function keeps code a program may never run out of RAM, and a
    comment beside it says so (docs/developers.md, "Module map")."""
    found = [line for name in MODULES for line in _uncommented_lazy_imports(name)]
    assert not found, found


def test_the_cycle_finder_finds_one():
    assert _cycle({("a", "b"): [""], ("b", "c"): ["f"], ("c", "a"): [""]}) == ["a", "b", "c", "a"]
    assert _cycle({("a", "b"): [""], ("a", "c"): [""], ("b", "c"): [""]}) is None


@pytest.mark.parametrize("name", sorted(MODULES), ids=_show)
def test_every_module_says_what_it_is_in_its_first_line(name):
    doc = ast.get_docstring(TREES[name], clean=False)
    assert doc, "%s has no module docstring" % MODULES[name]
    lines = doc.strip().splitlines()
    assert lines[0].rstrip().endswith("."), "%s: the docstring's first line is not one sentence: %r" % (
        MODULES[name],
        lines[0],
    )
    assert len(lines) == 1 or not lines[1].strip(), "%s: a blank line after the first line" % MODULES[name]


# ---------------------------------------------------------------- the module map's rules

# The rows of docs/developers.md's module map, top to bottom: (the first column's
# modules, "may import" as written there). A folder row holds the subpackage's modules.
ROWS = [
    (["__init__"], "everything below"),
    (["errors"], "nothing"),
    (["inputs", "typecode_viper"], "`errors`"),
    (["rand"], "nothing"),
    (["crc32", "crc32_viper", "crc32_py"], "`errors`"),
    (["float32/"], "the rows above"),
    (["int8/"], "the rows above (`float32/`: the quantizer and `tune` only)"),
    (["nnm/"], "the rows above"),
]
# The convenience methods that import a module of a lower row, inside the method (first use).
EXCEPTIONS = {
    ("float32.network", "nnm.write"): "Network.save",
    ("float32.network", "int8.quantize"): "Network.quantize",
    ("int8.network", "nnm.write"): "QNetwork.save",
}
FLOAT_USERS = ("int8.quantize", "int8.tune")  # the int8 modules that may import float32/


def _row(name):
    """The module map row of module `name` (its subpackage's row), or None."""
    top = name.split(".")[0] if name else "__init__"
    for i, (names, _rule) in enumerate(ROWS):
        if top in names or top + "/" in names:
            return i
    return None


def _allowed(importer, imported):
    """Whether the module map lets `importer` import `imported` (its own row: always)."""
    mine, theirs = _row(importer), _row(imported)
    assert mine is not None and theirs is not None, (importer, imported)
    rule = ROWS[mine][1]
    if theirs == mine:
        return True
    if rule == "everything below":
        return theirs > mine
    if rule == "nothing":
        return False
    if rule == "`errors`":
        return imported == "errors"
    if theirs > mine:
        return False
    if ROWS[theirs][0] == ["float32/"] and rule.endswith("(`float32/`: the quantizer and `tune` only)"):
        return importer in FLOAT_USERS
    return rule.startswith("the rows above")


def _doc_table():
    """[(modules, what it holds, may import)] of docs/developers.md's module map."""
    text = (ROOT / "docs" / "developers.md").read_text()
    section = text[text.index("## Module map") :]
    section = section[: section.index("\n## ", 1)]
    table = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            table.append((re.findall(r"`([^`]+)`", cells[0]), cells[1], cells[2]))
    return table


def test_the_module_map_table_is_the_one_in_developers_md():
    assert [(names, rule) for names, _holds, rule in _doc_table()] == ROWS


def test_the_module_map_names_every_module():
    """A subpackage's modules are named (`network`) in its row's "what it holds"."""
    table = _doc_table()
    unnamed = []
    for name in MODULES:
        row = _row(name)
        if row is None or "." not in name:
            continue  # a top-level module or a subpackage's __init__: its own first column
        if "`%s`" % name.split(".")[-1] not in table[row][1]:
            unnamed.append(_show(name))
    assert not unnamed, "modules missing from docs/developers.md's module map: %s" % unnamed


def test_every_module_has_a_row():
    assert not [_show(n) for n in MODULES if _row(n) is None]


def test_every_import_follows_the_module_map():
    bad = []
    for (importer, imported), where in sorted(EDGES.items()):
        if _allowed(importer, imported):
            continue
        method = EXCEPTIONS.get((importer, imported))
        if method is not None and where == [method]:
            continue  # the documented exception: inside that method only
        bad.append(
            "%s imports %s (%s)"
            % (_show(importer), _show(imported), ", ".join(w or "top level" for w in where))
        )
    assert not bad, "imports against docs/developers.md's module map: %s" % bad


def test_the_exceptions_are_used_and_lazy():
    for (importer, imported), method in EXCEPTIONS.items():
        assert EDGES.get((importer, imported)) == [method], (
            importer,
            imported,
            EDGES.get((importer, imported)),
        )


def test_the_rules_reject_what_they_should():
    assert not _allowed("errors", "inputs")
    assert not _allowed("crc32", "rand")
    assert not _allowed("float32.network", "nnm.write")
    assert not _allowed("int8.network", "float32.network")
    assert _allowed("int8.quantize", "float32.layers")
    assert _allowed("int8.tune", "float32.network")
    assert _allowed("nnm.read", "int8.network")
    assert not _allowed("inputs", "float32.layers")
    assert _allowed("", "nnm.read")


# ---------------------------------------------------------------- the format's one specification

FORMAT = ROOT / "docs" / "format.md"
SIZES = {"u8": 1, "i8": 1, "u16": 2, "u32": 4, "i32": 4, "f32": 4, "4s": 4}


def _table(heading_start, heading_end):
    """(offset, type, field) rows of docs/format.md's block between the two lines."""
    text = FORMAT.read_text()
    block = text[text.index(heading_start) :]
    block = block[: block.index(heading_end)]
    rows = []
    for line in block.splitlines():
        m = re.match(r"\s+(\d+)\s+(\d+ u8|u8|i8|u16|u32|i32|f32|4s)\s+(\w+)", line)
        if m:
            rows.append((int(m.group(1)), m.group(2), m.group(3)))
    return rows


HEADER_ROWS = _table("header (header_size", "layer records (")
RECORD_ROWS = _table("layer records (", "data blocks, in layer order")
INT8_ROWS = _table("### int8 dense block", "f32   w_scale[units]")


def _constant(module, name):
    """The value of the module-level `name = "..."` of device module `module` (not imported)."""
    for node in TREES[module].body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            return node.value.value  # pyright: ignore[reportAttributeAccessIssue]
    raise AssertionError("%s has no %s" % (module, name))


def _codes(fmt):
    return re.findall(r"\d*[a-zA-Z]", fmt.lstrip("<"))


def _offsets_of(fmt):
    offsets, pos = [], 0
    for code in _codes(fmt):
        offsets.append(pos)
        pos += struct.calcsize("<" + code)
    return offsets, pos


def test_the_struct_formats_match_the_format_tables():
    for fmt, rows in (
        (_constant("nnm.layout", "HEADER"), HEADER_ROWS),
        (_constant("nnm.layout", "RECORD"), RECORD_ROWS),
    ):
        offsets, total = _offsets_of(fmt)
        assert total == 32
        assert offsets == [r[0] for r in rows], (fmt, rows)
        for (_off, kind, _field), code in zip(rows, _codes(fmt)):
            assert struct.calcsize("<" + code) == SIZES[kind], (kind, code)
    offsets, total = _offsets_of(_constant("nnm.int8", "HEAD"))
    assert total == 32
    expanded = []  # "3 u8 reserved": three one-byte fields
    for off, kind, _field in INT8_ROWS:
        expanded += [off + k for k in range(int(kind.split()[0]) if " " in kind else 1)]
    assert offsets == expanded


def _consts(name, prefix):
    """{FIELD: index} of the module's `_<prefix>FIELD = const(index)` assignments."""
    out = {}
    for node in TREES[name].body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id.startswith(prefix)
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", None) == "const"
        ):
            out[node.targets[0].id[len(prefix) :]] = node.value.args[0].value  # pyright: ignore[reportAttributeAccessIssue]
    return out


@pytest.mark.parametrize("module", ["nnm.read", "nnm.int8", "nnm.write"])
def test_named_field_indexes_agree_with_the_format_tables(module):
    """`rec[_R_UNITS]` is the record's `units` field: its place in docs/format.md's table
    (`_Q_RESERVED_BYTES`: the first of the int8 block head's three reserved bytes)."""
    header = [field.upper() for _off, _kind, field in HEADER_ROWS]
    record = [field.upper() for _off, _kind, field in RECORD_ROWS]
    int8_head = []
    for _off, kind, field in INT8_ROWS:
        int8_head += [field.upper()] * (int(kind.split()[0]) if " " in kind else 1)
    checked = 0
    for prefix, fields in (("_H_", header), ("_R_", record), ("_Q_", int8_head)):
        for field, index in _consts(module, prefix).items():
            name = field[: -len("_BYTES")] if field.endswith("_BYTES") else field
            assert index < len(fields) and fields[index] == name, (
                "%s: %s%s = const(%d), but field %d of docs/format.md's table is %s"
                % (module, prefix, field, index, index, fields[index] if index < len(fields) else "none")
            )
            checked += 1
    assert checked, module


def test_the_code_constants_are_the_codes_table():
    """The readers' inlined codes (`_A_<NAME> = const(code)`, nnm.int8's `_LUT_MASK`, read's
    `_MAGIC`) are `nanonn.nnm.codes`' values: const() keeps their names out of a board's RAM."""
    codes = device_module("nnm.codes")
    checked = 0
    for module in ("nnm.read", "nnm.int8"):
        for name, value in _consts(module, "_A_").items():
            assert codes.ACTIVATIONS[name.lower()] == value, (module, name, value)
            checked += 1
    assert checked >= 4
    lut = _consts("nnm.int8", "_LUT_")["MASK"]
    assert lut == sum(1 << codes.ACTIVATIONS[a] for a in ("sigmoid", "tanh", "softplus"))
    assert _consts("nnm.read", "_MAGIC")[""] == struct.unpack("<I", codes.MAGIC)[0]


# ---------------------------------------------------------------- the host's records by name
#
# The host's `.nnm` code (nanonn_tools/nnm.py, nnm_int8.py) names a header's, a layer record's
# and an int8 block head's fields as the device does (`device_package.device_fields`: the
# `_H_`, `_R_`, `_Q_` indexes checked above), so `rec.units` is field 5 exactly when
# `_R_UNITS` is. The checks below keep a positional index from creeping back in.


def test_the_host_field_names_are_the_format_tables():
    """nnm.Header, nnm.Record and nnm_int8.Head: the fields of docs/format.md's tables, in
    order (a three-u8 field: `reserved_bytes`, `reserved_bytes_1`, `reserved_bytes_2`)."""
    assert nnm.Header._fields == tuple(field for _off, _kind, field in HEADER_ROWS)
    assert nnm.Record._fields == tuple(field for _off, _kind, field in RECORD_ROWS)
    expanded = []
    for _off, kind, field in INT8_ROWS:
        if " " in kind:
            count = int(kind.split()[0])
            expanded += [field + "_bytes"] + ["%s_bytes_%d" % (field, k) for k in range(1, count)]
        else:
            expanded.append(field)
    assert nnm_int8.Head._fields == tuple(expanded)


def test_device_fields_refuses_an_unnamed_or_stray_index():
    layout = device_module("nnm.layout")
    with pytest.raises(NanonnError, match=r"expected nanonn.nnm.int8 to name item 0 of '<BBBBIIfIIII'"):
        device_fields("nnm.int8", "_R_", layout.RECORD, "Record")
    with pytest.raises(NanonnError, match=r"expected nanonn.nnm.read to name item 11 of '<4sBBHIHHHHIII'"):
        device_fields("nnm.read", "_R_", layout.HEADER, "Header")
    with pytest.raises(NanonnError, match=r"nanonn.nnm.read._H_DATA_OFFSET to be a distinct index of the 11"):
        device_fields("nnm.read", "_H_", layout.RECORD, "Record")


HOST = ROOT / "host" / "nanonn_tools"
STRICT = ("nnm.py", "nnm_int8.py")  # the host's reader and writer: no literal index at all
STRUCTS = ("HEADER", "RECORD", "HEAD")  # the format's struct.Structs on the host
NAMED = ("Header", "Record", "Head", "record")  # their namedtuples, and nnm.record
# The list of records in nnm.assemble: its first and last elements, [0] and [-1].
LISTS = ("placed",)
# A tuple of a header's, a record's or a block head's length holding one of these codes is
# one laid out by position.
CODES = ("MAGIC", "DENSE", "DROPOUT", "FLOAT32", "INT8", "BIAS", "FLAG_INT8")
FIELD_COUNTS = {len(nnm.Header._fields), len(nnm.Record._fields), len(nnm_int8.Head._fields)}


def _int_literal(node):
    """The int of an integer literal (`7`, `-1`), else None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _int_literal(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None


def _last_name(node):
    """`RECORD` of `RECORD` or `nnm.RECORD`; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def _positional(source, strict):
    """The places in Python `source` that treat a header, layer record or int8 block head by
    position: unpacked other than into its namedtuple (`Record._make(RECORD.unpack_from(..))`),
    packed from other than one starred namedtuple (`RECORD.pack_into(buf, off, *rec)`), a
    namedtuple or `record` given positional fields, a tuple of their length holding a format
    code (`(DENSE, FLOAT32, act, ...)`). `strict` (the reader and writer): also
    any subscript or slice by an integer literal (but [0] and [-1] of LISTS) and any struct
    format literal not named once by a module-level assignment (`CRC = struct.Struct("<I")`)."""
    tree = ast.parse(source)
    parent = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []

    def flag(node, why):
        found.append("line %d: %s (%s)" % (node.lineno, ast.unparse(node), why))

    for node in ast.walk(tree):
        if (
            isinstance(node, (ast.Tuple, ast.List))
            and len(node.elts) in FIELD_COUNTS
            and any(_last_name(e) in CODES for e in node.elts)
        ):
            flag(node, "fields laid out by position")
        if strict and isinstance(node, ast.Subscript):
            index = node.slice
            bounds = (index.lower, index.upper, index.step) if isinstance(index, ast.Slice) else (index,)
            literal = [b for b in bounds if b is not None and _int_literal(b) is not None]
            first_last = (
                isinstance(node.value, ast.Name) and node.value.id in LISTS and _int_literal(index) in (0, -1)
            )
            if literal and not first_last:
                flag(node, "an index by position")
        if not isinstance(node, ast.Call):
            continue
        func, up = node.func, parent.get(node)
        if isinstance(func, ast.Attribute) and _last_name(func.value) in STRUCTS:
            if func.attr in ("unpack", "unpack_from", "iter_unpack"):
                into_make = (
                    isinstance(up, ast.Call)
                    and isinstance(up.func, ast.Attribute)
                    and up.func.attr == "_make"
                    and up.args[:1] == [node]
                )
                if not into_make:
                    flag(node, "unpacked other than into its namedtuple's _make")
            elif func.attr in ("pack", "pack_into"):
                values = node.args[2:] if func.attr == "pack_into" else node.args
                if len(values) != 1 or not isinstance(values[0], ast.Starred):
                    flag(node, "packed from other than one *namedtuple")
        if _last_name(func) in NAMED and node.args:
            flag(node, "fields given by position")
        if (
            strict
            and isinstance(func, ast.Attribute)
            and _last_name(func.value) == "struct"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not (isinstance(up, ast.Assign) and isinstance(parent.get(up), ast.Module))
        ):
            flag(node, "a struct format not named once")
    return found


HOST_MODULES = sorted(p for p in HOST.rglob("*.py") if "package-data" not in p.parts)


@pytest.mark.parametrize("path", HOST_MODULES, ids=lambda p: str(p.relative_to(HOST)))
def test_the_host_names_record_fields(path):
    found = _positional(path.read_text(), path.name in STRICT)
    assert not found, "%s: positional header/record fields: %s" % (path.relative_to(ROOT), found)


def test_the_host_record_check_catches_positions():
    bad = [
        "rec[7]",
        "h[-1]",
        "rec[:7] + (cursor, size) + rec[9:]",
        "records[0][4]",
        "HEADER.unpack_from(data, 0)[0]",
        "a, b = RECORD.unpack_from(data, 32)",
        "RECORD.pack_into(buf, 32, 1, 2, 3)",
        "HEAD.pack(*fields, 0)",
        "Record(1, 2, 3)",
        "nnm.record(DENSE, dtype=1)",
        "out.append((nnm.DROPOUT, 0, 0, 0, n, u, 0.0, 0, 0, 0, 0))",
        "def f(data):\n    return struct.unpack_from('<I', data, 0)",
    ]
    for snippet in bad:
        assert _positional(snippet, strict=True), snippet
    assert _positional("x = rec[7]", strict=False) == []  # a literal index: strict modules only
    good = (
        "CRC = struct.Struct('<I')\n"
        "rec = Record._make(RECORD.unpack_from(data, off))\n"
        "RECORD.pack_into(buf, off, *rec._replace(data_offset=0))\n"
        "first, last = placed[0], placed[-1]\n"
        "block = data[rec.data_offset : end]\n"
        "h = Header(magic=b'NNM', major=1)\n"
        "kind, dtype, act, flags, size = nnm.DROPOUT, 0, 0, 0, 0\n"
    )
    assert _positional(good, strict=True) == []
