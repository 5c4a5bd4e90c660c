"""docs/api.md cannot drift: it equals tools/gen_api.py's output, every public
name has its docstrings, and (checked independently, by importing the packages)
every public function, class and method appears with the signature it has."""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib
import inspect
import re
import sys

import pytest

from support import MPY, load_tool

gen_api = load_tool("gen_api")

HEADING = re.compile(r"^#### (?:class )?`(\w+)(\(.*\)(?: -> .*)?)?`")
METHOD = re.compile(r"^- (?:property |staticmethod |classmethod )?`(\w+)(\(.*?\))?(?: -> [^`]*)?`")


def test_api_doc_is_generated_from_the_code():
    expected = gen_api.render()
    actual = gen_api.DOC.read_text()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                actual.splitlines(True), expected.splitlines(True), "docs/api.md", "generated", n=1
            )
        )
        pytest.fail("docs/api.md differs from the code: run `make api`\n" + diff[:6000])


def test_every_public_name_has_its_docstrings():
    assert gen_api.problems() == []


def sections() -> dict[str, list[str]]:
    """docs/api.md split by module: {dotted module name: its lines}."""
    out: dict[str, list[str]] = {}
    current = None
    for line in gen_api.DOC.read_text().splitlines():
        m = re.match(r"^### `([\w.]+)`$", line)
        if m:
            current = out.setdefault(m.group(1), [])
        elif current is not None:
            current.append(line)
    return out


def same(doc: list[tuple[str, str, object]], code: list[tuple[str, str, object]]) -> bool:
    if [p[:2] for p in doc] != [p[:2] for p in code]:
        return False
    for (_, _, d), (_, _, c) in zip(doc, code):
        if _UNKNOWN in (d, c):
            if (d == _NO_DEFAULT) != (c == _NO_DEFAULT):
                return False
        elif d != c:
            return False
    return True


_NO_DEFAULT = "<none>"
_UNKNOWN = "<expression>"


def from_doc(sig: str, method: bool) -> list[tuple[str, str, object]]:
    """(name, kind, default) of each parameter of a documented signature."""
    fn = ast.parse("def f%s: pass" % sig).body[0]
    assert isinstance(fn, ast.FunctionDef)
    a = fn.args
    out = []
    positional = a.posonlyargs + a.args
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    for i, (p, d) in enumerate(zip(positional, defaults)):
        kind = "POSITIONAL_ONLY" if i < len(a.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        out.append((p.arg, kind, _literal(d)))
    if a.vararg:
        out.append((a.vararg.arg, "VAR_POSITIONAL", _NO_DEFAULT))
    for p, d in zip(a.kwonlyargs, a.kw_defaults):
        out.append((p.arg, "KEYWORD_ONLY", _literal(d)))
    if a.kwarg:
        out.append((a.kwarg.arg, "VAR_KEYWORD", _NO_DEFAULT))
    return out


def _literal(node):
    if node is None:
        return _NO_DEFAULT
    try:
        return ast.literal_eval(node)
    except ValueError:
        pass
    try:  # constant arithmetic such as 2 * 1024 * 1024 (no names, no builtins)
        return eval(compile(ast.Expression(node), "<default>", "eval"), {"__builtins__": {}}, {})
    except Exception:
        return _UNKNOWN  # a name or call: only its presence is compared


def from_code(obj) -> list[tuple[str, str, object]]:
    out = []
    for p in inspect.signature(obj).parameters.values():
        if p.default is inspect.Parameter.empty:
            default = _NO_DEFAULT
        elif isinstance(p.default, (int, float, str, bytes, bool, tuple, type(None))):
            default = p.default
        else:
            default = _UNKNOWN
        out.append((p.name, p.kind.name, default))
    return out


def public_objects():
    """(module name, public name, object) for every function and class defined in a public module."""
    sys.path.insert(0, str(MPY))
    try:
        modules = gen_api.load()
        for package, _, _ in gen_api.PACKAGES:
            for mod in gen_api._public_modules(modules, package):
                try:
                    module = importlib.import_module(mod.name)
                except ImportError as exc:
                    # A MicroPython-only module (viper kernels: `import micropython` at the
                    # top) cannot load here; its doc is still checked against its source by
                    # test_api_doc_is_generated_from_the_code.
                    if exc.name == "micropython" and _imports_micropython(mod.tree):
                        continue
                    raise
                for name, obj in vars(module).items():
                    if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                        continue
                    if getattr(obj, "__module__", None) == mod.name:
                        yield mod.name, name, obj
    finally:
        sys.path.remove(str(MPY))


def _imports_micropython(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.Import) and any(a.name == "micropython" for a in node.names)
        for node in tree.body
    )


def test_every_public_name_is_documented_with_its_signature():
    doc = sections()
    found = 0
    for module, name, obj in public_objects():
        found += 1
        lines = doc.get(module)
        assert lines is not None, "docs/api.md has no section for module %s" % module
        headings = {m.group(1): m.group(2) for m in map(HEADING.match, lines) if m}
        assert name in headings, "%s.%s is not documented in docs/api.md" % (module, name)
        if obj.__name__ != name:  # an alias
            assert "An alias of `%s`." % obj.__name__ in lines, "%s.%s: alias not documented" % (module, name)
            continue
        sig = headings[name]
        own_init = inspect.isclass(obj) and ("__init__" in vars(obj) or dataclasses.is_dataclass(obj))
        if inspect.isfunction(obj) or own_init:
            assert sig is not None, "%s.%s: documented without its signature" % (module, name)
            doc_params, code_params = from_doc(sig, False), from_code(obj)
            assert same(doc_params, code_params), "%s.%s signature: %s != %s" % (
                module,
                name,
                doc_params,
                code_params,
            )
        if inspect.isclass(obj):
            _check_methods(module, obj, lines)
    assert found >= 20, "only %d public names found: the discovery is broken" % found


def _check_methods(module: str, cls, lines: list[str]):
    start = next(
        i for i, line in enumerate(lines) if (m := HEADING.match(line)) and m.group(1) == cls.__name__
    )
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#### ")), len(lines))
    documented = {m.group(1): m.group(2) for m in map(METHOD.match, lines[start:end]) if m}
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        where = "%s.%s.%s" % (module, cls.__name__, name)
        if isinstance(member, property):
            assert name in documented, "%s (property) is not documented" % where
        elif inspect.isfunction(member) or isinstance(member, (staticmethod, classmethod)):
            assert name in documented, "%s is not documented" % where
            func = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
            code = from_code(func)
            if not isinstance(member, staticmethod):
                code = code[1:]  # self / cls
            doc_params = from_doc(documented[name], True)
            assert same(doc_params, code), "%s signature: %s != %s" % (where, doc_params, code)
