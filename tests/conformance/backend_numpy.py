"""The NumPy backend: the public float64 functions (values) against the reference's
``value_and_grad`` (values, and gradients by reverse mode)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mse_adapters import LossSpec
from mse_adapters import numpy as mnp

from .harness import Case, reference_value_and_grad


class NumpyBackend:
    name = "numpy"
    dtypes = ("float64",)
    features = frozenset({"whiten", "precision", "gaussian_nll", "unit_norm"})

    def value_and_grad(
        self, spec: LossSpec, case: Case, dtype: str, wrt: Sequence[str]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        value = mnp.compile(spec)(case.target, case.pred, sample_weight=case.sample_weight,
                                  weight=case.weight, mask=case.mask, **case.structured_kwargs())
        _, grads = reference_value_and_grad(case, wrt)
        return np.asarray(value), grads


BACKENDS = [NumpyBackend()]
