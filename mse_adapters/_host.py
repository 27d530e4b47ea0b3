"""The primitives on host NumPy arrays (float64): the reference's (:mod:`mse_adapters.numpy`
records them for its reverse-mode derivatives) and the checks of host arrays a loss is built with."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._linalg import tril_solve
from ._ops import Ops

__all__ = ["HostOps", "HOST"]


class HostOps(Ops):
    """Plain NumPy primitives, in float64 where an input is converted: the reference's, and
    those that check the host arrays a loss is built with (a Keras loss' weight and mask)."""

    name = "host"
    framework = "numpy"
    accepts = "a NumPy array or an array-like"

    def asarray(self, x: Any, dtype: str | None = None, like: Any = None) -> Any:
        a = np.asarray(x)
        return a if dtype is None else a.astype(dtype, copy=False)

    def dtype(self, x: Any) -> str:
        return str(np.asarray(x).dtype.name)

    def float_dtype(self, *xs: Any) -> str:
        return "float64"

    def constant(self, values: Any, like: Any) -> Any:
        return np.asarray(values, dtype=np.float64)

    def where(self, cond: Any, x: Any, y: Any) -> Any:
        return np.where(cond, x, y)

    def abs(self, x: Any) -> Any:
        return np.abs(x)

    def sign(self, x: Any) -> Any:
        return np.sign(x)

    def sqrt(self, x: Any) -> Any:
        return np.sqrt(x)

    def expm1(self, x: Any) -> Any:
        return np.expm1(x)

    def log(self, x: Any) -> Any:
        return np.log(x)

    def log1p(self, x: Any) -> Any:
        return np.log1p(x)

    def clamp_min_nograd(self, x: Any, lo: float) -> Any:
        return np.maximum(x, lo)

    def shape(self, x: Any) -> tuple[int, ...]:
        return tuple(np.shape(x))

    def reshape(self, x: Any, shape: tuple[int, ...]) -> Any:
        return np.reshape(x, shape)

    def broadcast_to(self, x: Any, shape: tuple[int, ...]) -> Any:
        return np.broadcast_to(x, shape)

    def sum(self, x: Any, axis: tuple[int, ...] | None = None, dtype: str | None = None) -> Any:
        if axis is not None and not axis:
            return np.asarray(x, dtype=dtype) if dtype else x
        return np.sum(x, axis=axis, dtype=dtype)  # NumPy's sum is pairwise

    def extrema(self, x: Any) -> tuple[Any, Any]:
        return np.min(x), np.max(x)

    def matvec(self, m: Any, x: Any) -> Any:
        return np.matmul(m, np.asarray(x)[..., None])[..., 0]

    def solve_tril(self, lower: Any, x: Any) -> Any:
        return tril_solve(np.asarray(lower), np.asarray(x)[..., None])[..., 0]

    def cholesky(self, m: Any) -> Any:
        return np.linalg.cholesky(m)


HOST = HostOps()
