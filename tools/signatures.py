"""Parameter lists rebuilt from the AST, shared by `gen_api.py` (docs/api.md) and
`gen_stubs.py` (the viper modules' .pyi): one place that knows Python's parameter
syntax (positional-only `/`, keyword-only `*`, `*args`, `**kwargs`, defaults)."""

from __future__ import annotations

import ast
from collections.abc import Callable


def source_annotation(annotation: ast.expr | None) -> str | None:
    """An annotation as written in the source (None when there is none)."""
    return None if annotation is None else ast.unparse(annotation)


def parameters(args: ast.arguments, annotation: Callable[[ast.expr | None], str | None]) -> list[str]:
    """Each parameter of `args` as source text with PEP 8 spacing, and the `/` and `*`
    markers; `annotation` renders an annotation (returning None shows none)."""

    def one(arg: ast.arg, default: ast.expr | None, prefix: str = "") -> str:
        text = prefix + arg.arg
        ann = annotation(arg.annotation)
        if ann is not None:
            text += ": " + ann
        if default is not None:
            text += (" = " if ann is not None else "=") + ast.unparse(default)
        return text

    positional = args.posonlyargs + args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    params = [one(p, d) for p, d in zip(positional, defaults)]
    if args.posonlyargs:
        params.insert(len(args.posonlyargs), "/")
    if args.vararg is not None:
        params.append(one(args.vararg, None, "*"))
    elif args.kwonlyargs:
        params.append("*")
    params += [one(p, d) for p, d in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg is not None:
        params.append(one(args.kwarg, None, "**"))
    return params
