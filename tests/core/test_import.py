"""`import mse_adapters` imports no framework; each backend imports its own only."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

FRAMEWORKS = ("torch", "jax", "tensorflow", "keras", "optax", "sklearn")


def _loaded_after(stmt: str) -> set[str]:
    code = (
        f"import sys; {stmt}; "
        f"print(' '.join(m for m in {FRAMEWORKS!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def test_package_imports_no_framework():
    assert _loaded_after("import mse_adapters; mse_adapters.preset('mse'); mse_adapters.available_backends()") == set()


def test_numpy_backend_imports_no_framework():
    assert _loaded_after("import mse_adapters.numpy") == set()


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_torch_backend_imports_torch_only():
    assert _loaded_after("import mse_adapters.torch") == {"torch"}


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_lazy_attribute_access():
    assert _loaded_after("import mse_adapters as m; m.torch.MSELoss") == {"torch"}
