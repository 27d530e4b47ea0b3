"""The inputs of the torch.nn.GaussianNLLLoss oracle tests (tests/numpy/test_whitening.py for
the torch adapter, tests/jax/test_whiten.py for JAX): predictions, targets and a variance of
each shape torch accepts, one entry below torch's eps (clamped, the gradient passing through)."""

from __future__ import annotations

from typing import Any

#: The variance shapes of a (6, 4) batch: per element, per sample, as a column, as a row.
VAR_SHAPES = {"elem": (6, 4), "sample": (6,), "col": (6, 1), "row": (1, 4)}


def torch_case(dtype: str, vshape: str) -> tuple[Any, Any, Any, Any]:
    """(x, y, var, generator): ``var`` a Python float for ``vshape == "float"``; the generator
    goes on to draw the tests' cotangents."""
    import torch

    dt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, generator=g, dtype=dt)
    y = torch.randn(6, 4, generator=g, dtype=dt)
    if vshape == "float":
        return x, y, 0.3, g
    v = torch.rand(VAR_SHAPES[vshape], generator=g, dtype=dt) + 0.1
    v.view(-1)[0] = 1e-9  # below the default eps: clamped, the gradient passes through
    return x, y, v, g
