"""The backends the diagnostics exist in, for the tests: how to make their arrays, how to
differentiate a scalar function of one array, and the adapter module. The NumPy float64
reference (``mse_adapters.numpy``) is the oracle; ``MSE_ADAPTERS_TEST_BACKENDS`` selects as
in the conformance suite (a Keras-only run selects none of these)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from ..conformance.harness import TOLERANCE

WANTED = [w for w in os.environ.get("MSE_ADAPTERS_TEST_BACKENDS", "").split(",") if w]


def selected(name: str) -> bool:
    return not WANTED or any(name.startswith(w.split("-")[0]) for w in WANTED)


class Backend:
    """One backend in one dtype."""

    def __init__(self, name: str, dtype: str) -> None:
        self.name, self.dtype = name, dtype
        self.rtol, self.atol = TOLERANCE[dtype]

    @property
    def id(self) -> str:
        return f"{self.name}-{self.dtype}"

    def ctx(self) -> Any:
        """JAX float64 runs inside ``jax.enable_x64(True)`` (the rest of the process keeps
        float32)."""
        if self.name == "jax" and self.dtype == "float64":
            import jax

            return jax.enable_x64(True)
        return contextlib.nullcontext()

    def module(self) -> Any:
        if self.name == "numpy":
            from mse_adapters import numpy as m
        elif self.name == "torch":
            pytest.importorskip("torch")
            from mse_adapters import torch as m
        else:
            pytest.importorskip("jax")
            from mse_adapters import jax as m
        return m

    def array(self, x: Any) -> Any:
        if x is None:
            return None
        a = np.asarray(x)
        if a.dtype.kind == "f":
            a = a.astype(self.dtype)
        if self.name == "torch":
            import torch

            return torch.tensor(a)
        if self.name == "jax":
            import jax.numpy as jnp

            return jnp.asarray(a)
        return a

    def host(self, x: Any) -> np.ndarray:
        if self.name == "torch":
            return x.detach().double().numpy()
        return np.asarray(x, dtype=np.float64)

    def grad(self, f: Callable[[Any], Any], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(f(x), df/dx) for a scalar f of one array, as float64 NumPy."""
        if self.name == "torch":
            import torch

            t = self.array(x).requires_grad_(True)
            v = f(t)
            (g,) = torch.autograd.grad(v, t)
            return self.host(v), self.host(g)
        import jax

        v, g = jax.value_and_grad(f)(self.array(x))
        return self.host(v), self.host(g)

    def close(self, got: Any, ref: Any, scale: float = 1.0) -> None:
        got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
        np.testing.assert_allclose(got, ref, rtol=self.rtol * scale,
                                   atol=self.rtol * scale * max(1.0, float(np.nanmax(np.abs(ref), initial=0.0))))


ALL = [Backend(n, d) for n in ("numpy", "torch", "jax") for d in ("float64", "float32")
       if selected(n) and not (n == "numpy" and d == "float32")]
DIFFERENTIABLE = [b for b in ALL if b.name != "numpy"]
