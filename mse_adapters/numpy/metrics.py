"""Streaming metrics, the float64 reference: every loss as an ``update`` / ``merge`` /
``compute`` object (docs/design.md, "Metrics").

One constructor per preset (``mse()``, ``rmse()``, ``r2()``, ``huber(delta=...)``, ...,
with the preset's NumPy defaults: RMSE averages the per-output RMSEs, as scikit-learn) and
:func:`metric` for any spec. ``update(y_true, y_pred, *, sample_weight=None, weight=None,
mask=None)`` takes scikit-learn's argument order and the losses' options; for any split of
the data into batches and any order of merging, ``compute()`` equals the one-shot loss on
the concatenation.

>>> from mse_adapters.numpy import metrics
>>> m = metrics.r2()
>>> _ = m.update([3.0, -0.5], [2.5, 0.0]).update([2.0, 7.0], [2.0, 8.0])
>>> round(m.compute(), 6)
0.948608
"""

from __future__ import annotations

import copy

import numpy as np
from numpy.typing import ArrayLike

from .. import _metrics, _prepare
from .._presets import PRESET_TABLE
from .._spec import LossSpec
from ._ops import NAMES, NumpyOps, Result

__all__ = ["Metric", "metric", *(p.name for p in PRESET_TABLE)]

_OPS = NumpyOps()
#: The plans of the updates (docs/design.md, "Plans"; the spec is part of the key).
_PLANS = _prepare.Plans(256)


class Metric:
    """A streaming metric of ``spec`` (float64 statistics).

    ``update`` adds a batch, ``merge`` adds another metric's data, ``compute`` gives the
    value, ``reset`` forgets everything. ``state`` is the tuple of statistics (see
    :mod:`mse_adapters._metrics`)."""

    def __init__(self, spec: LossSpec, *, check_values: bool = True) -> None:
        self.spec = _metrics.check_spec(spec)
        self.check_values = check_values
        self.state: tuple[np.ndarray, ...] | None = None

    def __repr__(self) -> str:
        return f"Metric({self.spec!r})"

    def reset(self) -> Metric:
        self.state = None
        return self

    def update(self, y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: ArrayLike | None = None,
               weight: ArrayLike | None = None, mask: ArrayLike | None = None) -> Metric:
        """Add a batch (the losses' arguments and checks)."""
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            prep = _prepare.prepare(self.spec, _prepare.Call(y_pred, y_true, weight, sample_weight, mask),
                                    _prepare.Context(_OPS, NAMES, check_values=self.check_values, dtype="float64"),
                                    _PLANS)
            k = _metrics.n_outputs(self.spec, prep.shape)
            stats = _metrics.batch(_OPS, prep, "float64", False)
            self._add(stats, k)
        return self

    def _add(self, stats: tuple[np.ndarray, ...], k: int) -> None:
        if self.state is None:
            self.state = tuple(np.asarray(s, dtype=np.float64) for s in _metrics.zeros(k, self.spec, False))
        if self.state[0].shape != (k,):
            raise ValueError(f"a batch with {k} outputs cannot join a metric of {self.state[0].shape[0]} outputs")
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            self.state = tuple(np.asarray(s) for s in _metrics.merge(_OPS, self.spec, self.state, stats))

    def merge(self, other: Metric) -> Metric:
        """Add the data of ``other`` (a metric of the same spec)."""
        if not isinstance(other, Metric) or other.spec != self.spec:
            raise ValueError("merge needs a metric of the same spec")
        if other.state is not None:
            self._add(other.state, other.state[0].shape[0])
        return self

    def copy(self) -> Metric:
        return copy.deepcopy(self)

    def compute(self) -> Result:
        """The value on everything seen so far (the one-shot loss' on the concatenation)."""
        state = self.state or tuple(_metrics.zeros(1, self.spec, False))
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            out = np.asarray(_metrics.result(_OPS, self.spec, state, "float64"), dtype=np.float64)
        return float(out) if out.ndim == 0 else out


def metric(spec: LossSpec, *, check_values: bool = True) -> Metric:
    """The streaming metric of any spec."""
    return Metric(spec, check_values=check_values)


for _row in PRESET_TABLE:
    globals()[_row.name] = _metrics.constructor(_row.name, "numpy", metric)
del _row
