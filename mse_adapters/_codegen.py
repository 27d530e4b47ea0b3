"""Functions with real signatures, made from a parameter list (the bindings of the preset
table: docs/design.md, "Bindings").

A binding made by ``*args, **kwargs`` and :meth:`inspect.Signature.bind` costs microseconds a
call and hides its parameters from ``torch.compile``, which cannot trace the binding; one
made here is an ordinary ``def`` (as :mod:`dataclasses` makes ``__init__``): a wrong keyword
is Python's own TypeError, and calling it costs what calling any function costs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["make_function"]

_KW = inspect.Parameter.KEYWORD_ONLY
_POS = inspect.Parameter.POSITIONAL_OR_KEYWORD


def make_function(name: str, params: Sequence[inspect.Parameter], body: str, namespace: Mapping[str, Any],
                  *, doc: str | None = None, module: str | None = None, qualname: str | None = None,
                  returns: Any = inspect.Signature.empty) -> Callable[..., Any]:
    """``def name(<params>): <body>`` with the defaults of ``params`` (bound by name, so any
    object may be a default) and ``namespace`` visible to ``body`` (one or more lines,
    without indentation). Only positional-or-keyword and keyword-only parameters."""
    args: list[str] = []
    defaults: dict[str, Any] = {}
    star = False
    for p in params:
        if p.kind not in (_KW, _POS):
            raise ValueError(f"parameter {p.name}: only positional-or-keyword and keyword-only parameters")
        if p.kind == _KW and not star:
            args.append("*")
            star = True
        text = p.name
        if p.default is not inspect.Parameter.empty:
            defaults[f"__default_{p.name}"] = p.default
            text += f"=__default_{p.name}"
        args.append(text)
    lines = "\n".join("    " + line for line in body.strip().splitlines())
    source = f"def {name}({', '.join(args)}):\n{lines}\n"
    scope: dict[str, Any] = {**namespace, **defaults}
    exec(compile(source, f"<mse_adapters binding {name}>", "exec"), scope)  # noqa: S102 - our own source
    fn: Callable[..., Any] = scope[name]
    fn.__annotations__ = {p.name: p.annotation for p in params if p.annotation is not inspect.Parameter.empty}
    if returns is not inspect.Signature.empty:
        fn.__annotations__["return"] = returns
    fn.__doc__ = doc
    fn.__qualname__ = qualname or name
    if module is not None:
        fn.__module__ = module
    return fn
