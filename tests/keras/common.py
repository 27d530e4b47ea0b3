"""What the Keras tests share: running a loss on a case, by the active backend's autodiff,
and the float64 reference of the same case."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras.src.backend.common.masking import set_keras_mask  # noqa: E402

import mse_adapters.keras as mk  # noqa: E402
from mse_adapters import LossSpec  # noqa: E402
from mse_adapters import numpy as mnp  # noqa: E402
from tests.conformance.backend_keras import tensor, to_numpy, value_and_grad  # noqa: E402

BACKEND = keras.backend.backend()
__all__ = ["BACKEND", "KCase", "keras", "mk", "keras_run", "reference", "cotangent_for", "aligned"]


@dataclasses.dataclass
class KCase:
    """Keras-style arrays: ``kmask`` is a Keras mask (``y_pred._keras_mask``), ``mask`` and
    ``weight`` our call-time keywords."""

    name: str
    y_true: np.ndarray
    y_pred: np.ndarray
    sample_weight: np.ndarray | None = None
    kmask: np.ndarray | None = None
    weight: np.ndarray | None = None
    mask: np.ndarray | None = None

    def __repr__(self) -> str:
        return self.name

    @property
    def wrt(self) -> tuple[str, ...]:
        return ("y_true", "y_pred") + (("sample_weight",) if self.sample_weight is not None else ())


def keras_run(loss: Any, case: KCase, cotangent: np.ndarray | None = None, dtype: str = "float32",
              fresh_sample_weight: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``loss(y_true, y_pred, sample_weight)`` (with the case's Keras mask on ``y_pred`` and its
    ``weight``/``mask`` keywords when given): value and gradients as float64 NumPy.

    ``fresh_sample_weight`` passes ``sample_weight * 1`` (the same numbers and gradient): Keras'
    built-ins multiply a masked sample weight in place on the torch backend."""
    inputs = {"y_true": tensor(case.y_true, dtype), "y_pred": tensor(case.y_pred, dtype),
              "sample_weight": tensor(case.sample_weight, dtype)}
    kmask = tensor(case.kmask)
    kw = {}
    if case.weight is not None:
        kw["weight"] = tensor(case.weight, dtype)
    if case.mask is not None:
        kw["mask"] = tensor(case.mask)

    def fn(y_true: Any, y_pred: Any, sample_weight: Any) -> Any:
        if kmask is not None:
            set_keras_mask(y_pred, kmask)
        if fresh_sample_weight and sample_weight is not None:
            sample_weight = sample_weight * 1.0
        return loss(y_true, y_pred, sample_weight, **kw)

    out, grads = value_and_grad(fn, inputs, case.wrt, cotangent)
    return to_numpy(out), {n: to_numpy(g) for n, g in grads.items()}


def aligned(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keras' rank alignment (``squeeze_or_expand_to_same_rank``), in NumPy."""
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        return (y_true, y_pred[..., None]) if y_pred.ndim == 1 else (y_true[..., 0], y_pred)
    if y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        return (y_true[..., None], y_pred) if y_true.ndim == 1 else (y_true, y_pred[..., 0])
    return y_true, y_pred


def reference(spec: LossSpec, case: KCase, cotangent: np.ndarray | None = None,
              wrt: Sequence[str] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The float64 reference of a Keras-style case: rank alignment first; a Keras mask (one
    entry per sample) is a mask of the sample's elements."""
    t, p = aligned(case.y_true, case.y_pred)
    mask = None
    if case.kmask is not None:
        mask = np.broadcast_to(np.asarray(case.kmask, bool)[..., None], p.shape)
    if case.mask is not None:
        m = np.broadcast_to(np.asarray(case.mask, bool), p.shape)
        mask = m if mask is None else mask & m
    wrt = case.wrt if wrt is None else tuple(wrt)
    if not wrt:
        value = mnp.loss(spec, t, p, sample_weight=case.sample_weight, weight=case.weight, mask=mask)
        return np.asarray(value, dtype=np.float64), {}
    value, grads = mnp.value_and_grad(spec, t, p, sample_weight=case.sample_weight, weight=case.weight,
                                      mask=mask, wrt=wrt, cotangent=cotangent)
    shapes = {"y_true": case.y_true.shape, "y_pred": case.y_pred.shape}
    return (np.asarray(value, dtype=np.float64),
            {n: np.reshape(g, shapes.get(n, np.shape(g))) for n, g in grads.items()})


def cotangent_for(spec: LossSpec, case: KCase) -> np.ndarray | None:
    """A non-uniform cotangent for a non-scalar loss (every entry's gradient is tested)."""
    value, _ = reference(spec, case, wrt=())
    if not np.shape(value):
        return None
    return 1.0 + 0.25 * (np.arange(np.size(value), dtype=np.float64).reshape(np.shape(value)) % 3)
