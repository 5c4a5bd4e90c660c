"""Every use of MicroPython's native emitter in the device package falls back: the
decorators live only in `*_viper` modules, and every import of such a module catches
`errors.NO_NATIVE_CODE` (what a port without the emitter raises at import: SyntaxError on
the WebAssembly port; tests/device/test_fallback.py runs the fallbacks there)."""

from __future__ import annotations

import ast

import pytest

from support import MPY

MODULES = sorted((MPY / "nanonn").rglob("*.py"))


def _catches_no_native_code(handler: ast.ExceptHandler) -> bool:
    return isinstance(handler.type, ast.Name) and handler.type.id == "NO_NATIVE_CODE"


def _native_decorators(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for dec in node.decorator_list:
                if isinstance(dec, ast.Attribute) and dec.attr in (
                    "viper",
                    "native",
                    "asm_thumb",
                    "asm_xtensa",
                ):
                    found.append("%s: @%s" % (node.name, ast.unparse(dec)))
    return found


def _viper_imports(tree: ast.Module) -> list[tuple[ast.AST, bool]]:
    """(import node, guarded) for each import of a nanonn `*_viper` module."""
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_catches_no_native_code(h) for h in node.handlers):
            for stmt in node.body:
                guarded.add(id(stmt))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""] + [a.name for a in node.names]
            if any(n.split(".")[-1].endswith("_viper") for n in names):
                out.append((node, id(node) in guarded))
        elif isinstance(node, ast.Import) and any(a.name.endswith("_viper") for a in node.names):
            out.append((node, id(node) in guarded))
    return out


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_native_code_only_in_viper_modules_imported_with_a_fallback(path):
    tree = ast.parse(path.read_text())
    decorators = _native_decorators(tree)
    if decorators:
        assert path.stem.endswith("_viper"), "%s: native code outside a *_viper module: %s" % (
            path.name,
            decorators,
        )
    imports = _viper_imports(tree)
    # an import inside a function (layers' fdense_cache_viper, when a cached layer is
    # built) runs only on a path that a guarded module-level viper import enabled
    in_functions = {
        id(n)
        for f in ast.walk(tree)
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
        for n in ast.walk(f)
    }
    module_level_guarded = any(g for n, g in imports if id(n) not in in_functions)
    for node, guarded in imports:
        if id(node) in in_functions and module_level_guarded:
            continue
        if path.stem.endswith("_viper"):
            continue  # a viper module importing another: where it fails, its own import failed first
        assert guarded, "%s line %d: %s not in try/except NO_NATIVE_CODE" % (
            path.name,
            getattr(node, "lineno", 0),
            ast.unparse(node),
        )


def test_every_viper_module_is_imported_with_a_fallback():
    viper = {p.stem for p in MODULES if p.stem.endswith("_viper")}
    assert viper == {
        "crc32_viper",
        "f32_viper",
        "train_viper",
        "momentum_viper",
        "dense_cache_viper",
        "dense_viper",
        "kernels_viper",
        "kernels_extra_viper",
        "kernels_wide_viper",
        "typecode_viper",
    }
    imported = set()
    for path in MODULES:
        for node, _ in _viper_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                imported |= {
                    n.split(".")[-1]
                    for n in [node.module or ""] + [a.name for a in node.names]
                    if n.endswith("_viper")
                }
    assert viper <= imported
