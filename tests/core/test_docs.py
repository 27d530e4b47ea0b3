"""The examples in the README and in the docstrings run and print what they say."""

from __future__ import annotations

import contextlib
import doctest
import importlib
import importlib.util
import io
import pathlib
import re
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODULES = ["mse_adapters", "mse_adapters._spec", "mse_adapters._messages", "mse_adapters.numpy", "mse_adapters.torch",
           "mse_adapters.jax", "mse_adapters.keras"]
FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


#: README's examples: a ``python`` block followed by the ``text`` block of what it prints.
_EXAMPLE = re.compile(r"```python\n(.*?)```\n\n```text\n(.*?)```", re.S)
_FRAMEWORK = re.compile(r"^(?:import|from mse_adapters\.)(?: )?(torch|jax|keras)\b", re.M)


def _framework(code: str) -> str:
    found = _FRAMEWORK.search(code)
    return found.group(1) if found else "numpy"


def _readme_examples() -> list[Any]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [pytest.param(code, out, id=_framework(code)) for code, out in _EXAMPLE.findall(text)]


def test_readme_has_one_example_per_framework():
    ids = sorted(p.id for p in _readme_examples())
    assert ids == ["jax", "keras", "numpy", "torch"], ids


@pytest.mark.parametrize("code,printed", _readme_examples())
def test_readme_examples_run_as_written(code: str, printed: str) -> None:
    """Each example runs as written, in a namespace of its own, and prints what README shows."""
    if _framework(code) != "numpy":
        pytest.importorskip(_framework(code))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})  # noqa: S102 - our own README
    assert out.getvalue() == printed


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    top = name.split(".")[-1]
    if top in ("torch", "jax", "keras") and importlib.util.find_spec(top) is None:
        pytest.skip(f"{top} not installed")
    result = doctest.testmod(importlib.import_module(name), optionflags=FLAGS)
    assert result.failed == 0
