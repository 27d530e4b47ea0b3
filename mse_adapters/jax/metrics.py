"""Streaming metrics in JAX: pure functions on a pytree state (docs/design.md, "Metrics").

One constructor per preset, named as the losses (``mse()``, ``rmse()``, ``r2()``,
``huber(delta=...)``, ...) and :func:`metric` for any spec; each returns a hashable
:class:`Metric` whose methods are pure::

    m = metrics.r2()
    state = m.init(targets_like)                  # a State (a NamedTuple of one array)
    state = m.update(state, predictions, targets, weight=None, sample_weight=None, mask=None)
    state = m.merge(state_a, state_b)
    value = m.compute(state)                      # or compute(state, axis_name="devices")

``update`` is jit-, vmap- and ``lax.scan``-able (the state's shape is fixed by ``init``: no
retrace per batch of the same shape); ``compute(state, axis_name=...)`` merges the states
of every device along a mapped axis (``shard_map``, ``pmap``). Without x64 the statistics
are float32 (hi, lo) pairs with error-free additions, so that long float32 streams keep
float64-like accuracy; with x64 they are float64.

>>> import jax.numpy as jnp
>>> from mse_adapters.jax import metrics
>>> m = metrics.mse()
>>> s = m.update(m.init(jnp.zeros(2)), jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0]))
>>> float(m.compute(m.update(s, jnp.array([3.0]), jnp.array([0.0]))))
4.666666507720459
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _metrics
from .._prepare import Call, Context, prepare
from .._presets import PRESET_TABLE
from .._spec import LossSpec
from . import NAMES, JaxOps

__all__ = ["Metric", "State", "metric", *(p.name for p in PRESET_TABLE)]

_OPS = JaxOps()


class State(NamedTuple):
    """A metric's state: ``stats``, shape ``(fields, k)`` (see :mod:`mse_adapters._metrics`)."""

    stats: jax.Array


def _x64() -> bool:
    return bool(jax.config.read("jax_enable_x64"))


class Metric:
    """The streaming metric of ``spec``: pure ``init``, ``update``, ``merge``, ``compute``.
    Hashable (by its spec), so it can be a static argument of ``jax.jit``."""

    def __init__(self, spec: LossSpec, *, check_values: bool = True) -> None:
        self.spec = _metrics.check_spec(spec)
        self.check_values = bool(check_values)

    def __repr__(self) -> str:
        return f"Metric({self.spec!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Metric) and (self.spec, self.check_values) == (other.spec, other.check_values)

    def __hash__(self) -> int:
        return hash((Metric, self.spec, self.check_values))

    @property
    def _acc(self) -> tuple[str, bool]:
        return ("float64", False) if _x64() else ("float32", True)

    def init(self, targets_like: Any) -> State:
        """The empty state for batches shaped like ``targets_like`` (an array, a
        ``jax.ShapeDtypeStruct`` or a shape tuple: only its last axis matters)."""
        shape = tuple(targets_like) if isinstance(targets_like, tuple) else tuple(jnp.shape(targets_like))
        k = _metrics.n_outputs(self.spec, shape)
        acc, comp = self._acc
        return State(jnp.zeros((_metrics.state_size(self.spec, comp), k), dtype=acc))

    def update(self, state: State, predictions: Any, targets: Any, *, weight: Any = None, sample_weight: Any = None,
               mask: Any = None) -> State:
        """The state with a batch added (the losses' arguments and checks; the value checks
        are skipped under tracing, as the losses')."""
        prep = prepare(self.spec, Call(predictions, targets, weight, sample_weight, mask),
                       Context(_OPS, NAMES, check_values=self.check_values))
        k = _metrics.n_outputs(self.spec, prep.shape)
        if state.stats.shape[-1] != k:
            raise ValueError(f"a batch with {k} outputs cannot join a state of {state.stats.shape[-1]} outputs "
                             "(init with targets of the batches' shape)")
        acc, comp = self._acc
        stats = _metrics.batch(_OPS, prep, acc, comp)
        return self._merge_stats(state.stats, stats)

    def _merge_stats(self, a: jax.Array, b: Any) -> State:
        acc = a.dtype
        merged = _metrics.merge(_OPS, self.spec, tuple(a), tuple(jnp.asarray(x, acc) for x in b))
        return State(jnp.stack(merged))

    def merge(self, a: State, b: State) -> State:
        """The state of the union of the data of ``a`` and ``b``."""
        return self._merge_stats(a.stats, tuple(b.stats))

    def compute(self, state: State, axis_name: Any = None) -> jax.Array:
        """The value. ``axis_name``: merge the states of every member of that mapped axis
        first (an all-gather of the small state, then the merge), so that every device gets
        the value of the global data."""
        stats = state.stats
        if axis_name is not None:
            everyone = jax.lax.all_gather(stats, axis_name)
            stats = jnp.stack(_metrics.fold(_OPS, self.spec, [tuple(everyone[i]) for i in range(everyone.shape[0])]))
        return _metrics.result(_OPS, self.spec, tuple(stats), str(np.dtype(stats.dtype).name))


def metric(spec: LossSpec, *, check_values: bool = True) -> Metric:
    """The streaming metric of any spec."""
    return Metric(spec, check_values=check_values)


for _row in PRESET_TABLE:
    globals()[_row.name] = _metrics.constructor(_row.name, "jax", metric)
del _row
