"""The preset table's bindings in every adapter, generated as source (docs/design.md,
"Bindings").

Each adapter holds one region of generated code: a class (torch module, Keras loss) or a
function (torch functional form, JAX and NumPy functions) per row of the preset table, with
its real signature, so that Python, mypy and IDEs see every parameter and reject a wrong
keyword (``HuberLoss(deltaa=1.0)``) as for hand-written code. A binding's parameters are
the row's spec fields (its reduction, the penalty's parameters from the penalty table, the
row's extra fields, ``missing``) and the options every loss of the adapter shares, declared
once below per adapter; its body hands its ``locals()`` to the adapter's one binding
function. Its docstring is made from the table when the adapter is imported.

``python -m mse_adapters._bindings`` rewrites the regions from the tables (after a row is
added or changed); ``--check`` says whether they are current (the test suite runs it).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

from ._presets import PRESET_TABLE, Preset

__all__ = ["Arg", "row_args", "source", "check", "write", "ADAPTERS"]

BEGIN = "# <generated: the preset table's bindings; `python -m mse_adapters._bindings` rewrites this region>"
END = "# </generated>"


class _Required:
    """The default of a parameter without one."""


_REQUIRED = _Required()


class Arg(NamedTuple):
    """One parameter of a binding: its name, default, annotation (source text) and whether it
    is positional-or-keyword (else keyword-only)."""

    name: str
    default: Any
    annotation: str
    positional: bool = False

    def text(self) -> str:
        if self.default is _REQUIRED:
            return f"{self.name}: {self.annotation}" if self.annotation else self.name
        value = _literal(self.default)
        return f"{self.name}: {self.annotation} = {value}" if self.annotation else f"{self.name}={value}"


def _literal(v: Any) -> str:
    """A default as source (strings double-quoted, as the package writes them)."""
    if isinstance(v, str):
        return '"' + v + '"'
    return repr(v)


#: The annotations of the spec fields a binding takes (a penalty parameter's is the adapter's).
FIELD_TYPES = {"reduction": "str", "missing": "str | None", "multioutput": "Multioutput", "force_finite": "bool",
               "unit_norm": "float", "per_sample": "bool"}


def penalty_params(row: Preset) -> list[str]:
    """The penalty parameters a row's bindings take (not those it fixes)."""
    return list(row.params)


def row_args(row: Preset, ecosystem: str, param_type: str) -> list[Arg]:
    """A row's spec fields as parameters, with the ecosystem's defaults: its ``reduction``
    (when it has one), the penalty's parameters, its extra fields and ``missing``."""
    defaults = {**{k: getattr(row.spec, k) for k in ("reduction", "missing", *row.extras)},
                **{p: getattr(row.spec, p) for p in penalty_params(row)}, **row.defaults.get(ecosystem, {})}
    names = (["reduction"] if row.reduces else []) + penalty_params(row) + list(row.extras) + ["missing"]
    return [Arg(n, defaults[n], FIELD_TYPES.get(n, param_type)) for n in names]


def _signature(args: list[Arg], returns: str, indent: int) -> str:
    """``(a: t = d, ..., *, k: t = d) -> returns``, wrapped at 120 columns."""
    parts: list[str] = []
    star = False
    for a in args:
        if not a.positional and not star:
            parts.append("*")
            star = True
        parts.append(a.text())
    lines, line = [], ""
    for i, part in enumerate(parts):
        piece = part + (", " if i < len(parts) - 1 else f") -> {returns}:")
        if line and len(" " * indent + line + piece.rstrip()) > 120:
            lines.append(line.rstrip())
            line = ""
        line += piece
    lines.append(line)
    return ("\n" + " " * indent).join(lines)


def _def(name: str, args: list[Arg], returns: str, body: list[str], *, method: bool = False,
         decorator: str = "", doc: str = "") -> str:
    head = "    def " if method else "def "
    indent = len(head) + len(name) + 1
    lines = ([decorator] if decorator else []) + [f"{head}{name}(" + _signature(args, returns, indent)]
    pad = "        " if method else "    "
    if doc:
        lines.append(f'{pad}"""{doc}"""')
    lines += [pad + b for b in body]
    return "\n".join(lines)


def _wrapped(head: str, items: list[str], tail: str, indent: int = 4) -> list[str]:
    """``head item, item, ... tail`` over lines of at most 120 columns (continued under the
    first item)."""
    lines, line = [], head
    for i, item in enumerate(items):
        piece = item + (", " if i < len(items) - 1 else tail)
        if line.strip() and len(" " * indent + line + piece.rstrip()) > 120:
            lines.append(line.rstrip())
            line = " " * len(head)
        line += piece
    return [*lines, line]


def _positional(args: list[Arg], names: tuple[str, ...]) -> list[Arg]:
    """``args`` with those named made positional and moved first (in the order of ``names``)."""
    first = [a._replace(positional=True) for n in names for a in args if a.name == n]
    return first + [a for a in args if a.name not in names]


def _options(names: list[tuple[str, Any, str]]) -> list[Arg]:
    return [Arg(n, d, t) for n, d, t in names]


_MATRICES = [("covariance", None, "Any"), ("scale_tril", None, "Any"), ("precision", None, "Any")]


# -- torch --------------------------------------------------------------------------------


def _torch(row: Preset) -> str:
    fields = row_args(row, "torch", "float | Tensor")
    module_args = _positional(fields, ("reduction", *penalty_params(row))) + _options(
        [("weight", None, "Tensor | None"), ("mask", None, "Tensor | None"), ("check_values", True, "bool"),
         *(_MATRICES if row.matrices else []), ("process_group", None, "Any")])
    cls = (f'class {row.torch}(_Preset, preset="{row.name}"):\n'
           + _def("__init__", [Arg("self", _REQUIRED, "", True), *module_args], "None", ["self._bind(locals())"],
                  method=True))
    fn_args = [Arg("input", _REQUIRED, "Tensor", True), Arg("target", _REQUIRED, "Tensor", True), *fields,
               *_options([("weight", None, "Tensor | None"), ("mask", None, "Tensor | None"),
                          ("sample_weight", None, "Tensor | None"), ("check_values", True, "bool"),
                          ("normalizer", None, "Tensor | None"), ("process_group", None, "Any")])]
    fn = _def(row.torch_fn, fn_args, "Tensor", [
        *_wrapped("fields = {", [f'"{a.name}": {a.name}' for a in fields], "}"),
        f'return _functional_call("{row.name}", input, target, fields, weight, sample_weight, mask, check_values,',
        "                        normalizer, process_group)"],
        doc=f"Functional :class:`{row.torch}` (its arguments, and ``sample_weight``,\n    ``normalizer``, "
            "``process_group``).")
    return cls + "\n\n\n" + fn


# -- Keras --------------------------------------------------------------------------------


def _keras(row: Preset) -> str:
    fields = row_args(row, "keras", "Any")
    keras_defaults = {"reduction": "sum_over_batch_size" if row.reduces else "mean_with_sample_weight"}
    lead = [a for a in fields if a.name in penalty_params(row) or (not row.reduces and a.name == "multioutput")]
    rest = [a for a in fields if a not in lead and a.name != "reduction"]
    args = [Arg("self", _REQUIRED, "", True), *(a._replace(positional=True) for a in lead),
            Arg("reduction", keras_defaults["reduction"], "str | None", True),
            Arg("name", row.keras_name, "str | None", True), Arg("dtype", None, "Any", True),
            *([Arg("per_sample", True, "bool")] if row.reduces else []), *rest,
            *_options([("weight", None, "Any"), ("mask", None, "Any"), ("check_values", True, "bool"),
                       *(_MATRICES + [("trainable_scale_tril", False, "bool")] if row.matrices else [])])]
    return (f'class {row.keras}(_Preset, preset="{row.name}"):\n'
            + _def("__init__", args, "None", ["self._bind(locals())"], method=True))


# -- JAX and NumPy --------------------------------------------------------------------------


def _jax(row: Preset) -> str:
    args = [Arg("predictions", _REQUIRED, "ArrayLike", True), Arg("targets", None, "OptArray", True),
            *row_args(row, "jax", "float | ArrayLike"),
            *_options([("weight", None, "OptArray"), ("sample_weight", None, "OptArray"), ("mask", None, "OptArray"),
                       ("check_values", True, "CheckValues"),
                       *((n, d, "OptArray") for n, d, _ in (_MATRICES if row.matrices else [])),
                       ("normalizer", None, "OptArray"), ("axis_name", None, "Any")])]
    return _def(row.name, args, "jax.Array", [f'return _bind("{row.name}", locals())'],
                decorator=f'@_doc("{row.name}")')


def _numpy(row: Preset) -> str:
    args = [Arg("y_true", _REQUIRED, "ArrayLike", True), Arg("y_pred", _REQUIRED, "ArrayLike", True),
            *row_args(row, "numpy", "float | ArrayLike"),
            *_options([("sample_weight", None, "OptArray"), ("weight", None, "OptArray"), ("mask", None, "OptArray"),
                       *((n, d, "OptArray") for n, d, _ in (_MATRICES if row.matrices else [])),
                       ("normalizer", None, "OptArray")])]
    return _def(row.name, args, "Result", [f'return _bind("{row.name}", locals())'], decorator=f'@_doc("{row.name}")')


#: Each adapter's file (relative to the package) and how it binds a row.
ADAPTERS: dict[str, tuple[str, Callable[[Preset], str]]] = {
    "torch": ("torch/__init__.py", _torch),
    "keras": ("keras/__init__.py", _keras),
    "jax": ("jax/__init__.py", _jax),
    "numpy": ("numpy/__init__.py", _numpy),
}


def source(ecosystem: str) -> str:
    """The generated region of an adapter (its markers included)."""
    bind = ADAPTERS[ecosystem][1]
    body = "\n\n\n".join(bind(row) for row in PRESET_TABLE if row.binds)
    return f"{BEGIN}\n\n\n{body}\n\n\n{END}"


def _path(ecosystem: str) -> pathlib.Path:
    return pathlib.Path(__file__).resolve().parent / ADAPTERS[ecosystem][0]


def _region(text: str, path: pathlib.Path) -> tuple[int, int]:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{path}: no generated region ({BEGIN!r} ... {END!r})")
    return start, end + len(END)


def check() -> list[str]:
    """The adapters whose generated region is not what the tables give (empty: current)."""
    stale = []
    for eco in ADAPTERS:
        path = _path(eco)
        text = path.read_text(encoding="utf-8")
        start, end = _region(text, path)
        if text[start:end] != source(eco):
            stale.append(str(path))
    return stale


def write() -> list[str]:
    """Rewrite every stale region; returns the files rewritten."""
    written = []
    for eco in ADAPTERS:
        path = _path(eco)
        text = path.read_text(encoding="utf-8")
        start, end = _region(text, path)
        new = text[:start] + source(eco) + text[end:]
        if new != text:
            path.write_text(new, encoding="utf-8")
            written.append(str(path))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only say whether the regions are current")
    args = parser.parse_args(argv)
    if args.check:
        stale = check()
        for path in stale:
            print(f"stale: {path} (run python -m mse_adapters._bindings)")
        return 1 if stale else 0
    for path in write():
        print(f"rewrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
