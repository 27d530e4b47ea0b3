"""Host linear algebra in float64 NumPy, with no other dependency: the triangular solve that
the host factoring (:mod:`mse_adapters._whiten`), the reference's primitives
(:mod:`mse_adapters._host`) and its reverse mode share."""

from __future__ import annotations

import numpy as np

__all__ = ["tril_solve"]


def tril_solve(lower: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """X with ``tril(lower) @ X = rhs`` by forward substitution (float64, batched; only the
    lower triangle of ``lower`` is read). ``rhs`` is ``(..., d, k)``; batch axes broadcast."""
    d = lower.shape[-1]
    batch = np.broadcast_shapes(lower.shape[:-2], rhs.shape[:-2])
    out = np.zeros(batch + rhs.shape[-2:], dtype=np.result_type(lower, rhs, np.float64))
    for i in range(d):
        acc = rhs[..., i, :]
        if i:
            acc = acc - np.matmul(lower[..., i : i + 1, :i], out[..., :i, :])[..., 0, :]
        out[..., i, :] = acc / lower[..., i, i, None]
    return out
