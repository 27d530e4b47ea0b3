"""The reference's primitives (:class:`NumpyOps`: plain float64 NumPy) and its vocabulary,
shared by its losses (:mod:`mse_adapters.numpy`) and its metrics
(:mod:`mse_adapters.numpy.metrics`)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .._host import HostOps
from .._ops import ArgNames

__all__ = ["NumpyOps", "NAMES", "Result"]

NAMES = ArgNames(pred="y_pred", target="y_true")
Result = float | NDArray[np.float64]


class NumpyOps(HostOps):
    """The reference's primitives: plain float64 NumPy."""

    name = "numpy"
    whiten_by = "solve"  # the reference whitens by a triangular solve against the float64 factor
