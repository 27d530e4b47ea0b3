"""The examples in the README and in the docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODULES = ["mse_adapters", "mse_adapters._spec", "mse_adapters._messages", "mse_adapters.numpy", "mse_adapters.torch",
           "mse_adapters.jax", "mse_adapters.keras"]
FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def test_readme_examples():
    result = doctest.testfile(str(ROOT / "README.md"), module_relative=False, optionflags=FLAGS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    top = name.split(".")[-1]
    if top in ("torch", "jax", "keras") and importlib.util.find_spec(top) is None:
        pytest.skip(f"{top} not installed")
    result = doctest.testmod(importlib.import_module(name), optionflags=FLAGS)
    assert result.failed == 0
