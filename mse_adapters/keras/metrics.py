"""Streaming metrics for Keras 3: ``keras.metrics.Metric`` subclasses (docs/design.md, "Metrics").

For ``model.compile(metrics=[...])``, ``model.evaluate`` and custom loops, on every Keras
backend (public ``keras.*`` API only). Keras' names and arguments where Keras has the
metric (:class:`MeanSquaredError`, :class:`MeanAbsoluteError`, :class:`RootMeanSquaredError`,
:class:`LogCoshError`, :class:`R2Score` ``(class_aggregation="uniform_average",
num_regressors=0)``), one class per other preset (:class:`HuberError`,
:class:`NormalizedMeanSquaredError`, :class:`ExpectileError`, ...) and :class:`Metric` for any
spec. ``update_state(y_true, y_pred, sample_weight=None)`` (and the losses' ``weight=`` and
``mask=`` keywords), ``result()``, ``reset_state()``;
configs round-trip and the classes are registered, so a compiled model saves and loads with
them.

Unlike averaging a loss over batches (what ``compile(metrics=[a_loss])`` does), these are
exact over the whole epoch: a state of sufficient statistics per output, accumulated in
float64 (TensorFlow and torch backends; float32 (hi, lo) pairs on JAX without x64), R^2 and
NMSE from centred moments merged by Chan's update. Keras' semantics: each sample is first
averaged over its last axis, then the samples are averaged with ``sample_weight`` (a 1-D
``y`` is one output per sample); R^2 and NMSE are per output (the last axis) and combined by
``class_aggregation`` / ``multioutput``. Keras masks (``_keras_mask``) remove samples.

Under ``tf.distribute`` (e.g. ``MirroredStrategy``) the values are those of the global data:
the additive metrics' float64 states are sums, which Keras sums across replicas; R^2 and
NMSE gather every replica's batch statistics in each update and merge them (Chan's update),
so every replica holds the global state.

>>> import numpy as np
>>> from mse_adapters.keras.metrics import R2Score
>>> m = R2Score()
>>> m.update_state(np.array([3.0, -0.5]), np.array([2.5, 0.0]))
>>> m.update_state(np.array([2.0, 7.0]), np.array([2.0, 8.0]))
>>> round(float(m.result()), 6)
0.948608
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from .. import _metrics
from .._prepare import Call, Context, Plans, prepare
from .._presets import PRESET_TABLE, preset
from .._spec import LossSpec
from ._ops import NAMES, PACKAGE, KerasOps, _keras_mask, _same_rank

#: The registration package of the metrics (``mse_adapters.metrics>R2Score``): the loss
#: classes of the same names are ``mse_adapters>R2Score``.
METRICS_PACKAGE = f"{PACKAGE}.metrics"

__all__ = ["Metric", "metric_class_name"]

_BACKEND = keras.backend.backend()


metric_class_name = _metrics.metric_class_name


class _MetricOps(KerasOps):
    """Keras' primitives with the metrics' two optional ones (unweighted batches): fewer
    eager ops per update (Keras dispatches each one)."""

    PLAIN_SUMS = frozenset({"square", "abs"})

    def plain_sum(self, penalty: str, a: Any, b: Any, axes: tuple[int, ...] | None) -> Any:
        d = a - b
        return ops.sum(d * d if penalty == "square" else ops.abs(d), axis=axes)

    def moments(self, y: Any, axes: tuple[int, ...], acc: str) -> tuple[Any, Any]:
        n = self.count(y, axes)
        s = ops.sum(y, axis=axes)
        mhat = ops.divide_no_nan(s, ops.cast(n, s.dtype))
        dev = y - mhat
        s1 = ops.cast(ops.sum(dev, axis=axes), acc)
        s2 = ops.cast(ops.sum(dev * dev, axis=axes), acc)
        shift = ops.divide_no_nan(s1, ops.cast(n, acc))
        return ops.cast(mhat, acc) + shift, s2 - s1 * shift  # the corrected two-pass


def _accumulator() -> tuple[str, bool]:
    """(the statistics' dtype, whether they are compensated pairs)."""
    if _BACKEND == "jax":
        import jax

        if not jax.config.read("jax_enable_x64"):
            return "float32", True
    return "float64", False


def _spec_dtype(dtype: Any) -> str:
    name = keras.backend.standardize_dtype(dtype or keras.config.floatx())
    return "float32" if name in ("float16", "bfloat16") else name


@keras.saving.register_keras_serializable(package=METRICS_PACKAGE)
class Metric(keras.metrics.Metric):
    """The streaming metric of any spec (a reduction over the batch: ``mean``, ``sum``,
    ``sum_over_batch_size`` or ``per_output``), in the spec's own semantics.
    ``num_outputs``: the number of outputs of a per-output spec (read from the first batch
    when None)."""

    def __init__(self, spec: LossSpec | dict[str, Any] | None = None, name: str | None = "metric", dtype: Any = None,
                 *, num_outputs: int | None = None, check_values: bool = True) -> None:
        super().__init__(name=name, dtype=dtype)
        if isinstance(spec, dict):
            spec = LossSpec.from_dict(spec)
        self.spec = _metrics.check_spec(spec if spec is not None else LossSpec())
        self.check_values = check_values
        self.num_outputs = num_outputs
        self._acc, self._comp = _accumulator()
        self._plans = Plans()  # the updates' plans by call signature (docs/design.md, "Plans")
        self._rows = _metrics.state_size(self.spec, self._comp)
        self.stats = None
        if num_outputs is not None or not self.spec.per_output_stats:
            self._build(num_outputs if self.spec.per_output_stats and num_outputs else 1)

    def _build(self, k: int) -> None:
        # Additive states are sums: Keras sums them across replicas. Moment states (R^2, NMSE)
        # are made identical on every replica instead (each update merges every replica's
        # batch, _across_replicas), and read from the first.
        aggregation = "only_first_replica" if _metrics.moments(self.spec) else "sum"
        self.stats = self.add_variable(shape=(self._rows, k), initializer="zeros", dtype=self._acc, name="stats",
                                       aggregation=aggregation)

    def _across_replicas(self, ops_: KerasOps, batch: tuple[Any, ...]) -> tuple[Any, ...]:
        """The merge of every replica's batch statistics under a ``tf.distribute`` strategy
        (an all-gather of the small state in the replica context); ``batch`` elsewhere."""
        if _BACKEND != "tensorflow" or not _metrics.moments(self.spec):
            return batch
        import tensorflow as tf

        ctx = tf.distribute.get_replica_context()
        n = 1 if ctx is None else ctx.num_replicas_in_sync
        if n == 1:
            return batch
        gathered = ctx.all_gather(ops.expand_dims(ops.stack(batch), 0), axis=0)
        return _metrics.fold(ops_, self.spec, [tuple([gathered[i][r] for r in range(self._rows)]) for i in range(n)])

    def _inputs(self, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        dt = _spec_dtype(self.dtype)
        y_pred = ops.convert_to_tensor(y_pred, dtype=dt)
        y_true = ops.convert_to_tensor(y_true, dtype=dt)
        y_true, y_pred = _same_rank(y_true, y_pred)
        if len(y_pred.shape) == 1:  # one output per sample
            y_true, y_pred = ops.expand_dims(y_true, -1), ops.expand_dims(y_pred, -1)
        return y_true, y_pred

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None, *, weight: Any = None,
                     mask: Any = None) -> None:
        """Add a batch; ``weight`` and ``mask``: the losses' element weights and mask."""
        km = _keras_mask(y_pred, _spec_dtype(self.dtype)) if hasattr(y_pred, "_keras_mask") else None
        y_true, y_pred = self._inputs(y_true, y_pred)
        ops_ = _MetricOps(ref=y_pred)
        extra = () if km is None else (("mask", ops.reshape(km, tuple(km.shape) + (1,) *
                                                            (len(y_pred.shape) - len(km.shape)))),)
        prep = prepare(self.spec, Call(y_pred, y_true, weight, sample_weight, mask, extra_masks=extra),
                       Context(ops_, NAMES, check_values=self.check_values, dtype=_spec_dtype(self.dtype)),
                       None if ops_.is_abstract(y_pred) else self._plans)  # (compiled: the graph caches)
        k = _metrics.n_outputs(self.spec, prep.shape)
        if self.stats is None:
            self._build(k)
        assert self.stats is not None
        if tuple(self.stats.shape)[1] != k:
            raise ValueError(f"a batch with {k} outputs cannot join a metric of {self.stats.shape[1]} outputs")
        batch = tuple([ops.cast(b, self._acc) for b in _metrics.batch(ops_, prep, self._acc, self._comp)])
        batch = self._across_replicas(ops_, batch)
        state = ops.convert_to_tensor(self.stats)
        merged = _metrics.merge(ops_, self.spec, tuple([state[i] for i in range(self._rows)]), batch)
        self.stats.assign(ops.stack(merged))

    def result(self) -> Any:
        """The value on everything seen; NaN where undefined (docs/metrics.md, "Undefined
        values"), with an ``UndefinedMetricWarning`` when computed eagerly."""
        ops_ = KerasOps()
        # (no state yet: a per-output metric that has seen no batch, whose value is undefined)
        state = ops.convert_to_tensor(self.stats) if self.stats is not None else \
            ops.zeros((self._rows, 1), dtype=self._acc)
        stats = tuple([state[i] for i in range(self._rows)])
        out = _metrics.result(ops_, self.spec, stats, _spec_dtype(self.dtype))
        p = getattr(self, "num_regressors", 0)
        if p:
            out = _metrics.adjusted_r2(ops_, out, ops.sum(_metrics.count_of(self.spec, stats)), p)
        return ops.cast(out, self.dtype)

    def reset_state(self) -> None:
        if self.stats is not None:
            self.stats.assign(ops.zeros(tuple(self.stats.shape), dtype=self._acc))

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "spec": self.spec.to_dict(),
                "num_outputs": self.num_outputs, "check_values": self.check_values}


def _spec_fields(kwargs: dict[str, Any]) -> dict[str, Any]:
    if isinstance(kwargs.get("multioutput"), (list, tuple)):
        kwargs["multioutput"] = tuple(float(v) for v in kwargs["multioutput"])
    return kwargs


class _Preset(Metric):
    """A preset row as a Keras metric: Keras' semantics (each sample averaged over its last
    axis, then the samples averaged with ``sample_weight``), the loss' options as keywords."""

    _preset = ""

    def __init__(self, name: str | None = None, dtype: Any = None, *, num_outputs: int | None = None,
                 check_values: bool = True, **options: Any) -> None:
        row = next(p for p in PRESET_TABLE if p.name == self._preset)
        fields = _spec_fields({**row.defaults.get("keras", {}), **options})
        if row.spec.finalize not in ("nmse", "r2"):
            fields = {"per_sample": True, **fields}
            if fields.get("multioutput", "pooled") != "pooled" or fields.get("reduction") == "per_output":
                fields["per_sample"] = False
        self._options = options
        super().__init__(preset(self._preset, **fields), name=name or row.keras_name, dtype=dtype,
                         num_outputs=num_outputs, check_values=check_values)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "num_outputs": self.num_outputs,
                "check_values": self.check_values, **{k: (list(v) if isinstance(v, tuple) else v)
                                                      for k, v in self._options.items()}}


@keras.saving.register_keras_serializable(package=METRICS_PACKAGE)
class R2Score(_Preset):
    """Streaming coefficient of determination with ``keras.metrics.R2Score``'s arguments
    (``class_aggregation``: ``"uniform_average"``, ``"variance_weighted_average"`` or None
    for the per-output values; ``num_regressors``: the adjusted R^2, with Keras' n, the
    number of target values), numerically stable in float32
    (centred moments merged by Chan's update, never sum(y^2) - sum(y)^2 / n)."""

    _preset = "r2"

    def __init__(self, class_aggregation: str | None = "uniform_average", num_regressors: int = 0,
                 name: str | None = "r2_score", dtype: Any = None, **options: Any) -> None:
        if class_aggregation not in (None, "uniform_average", "variance_weighted_average", "variance_weighted"):
            raise ValueError("Invalid value for argument `class_aggregation`. Expected one of "
                             f"{(None, 'uniform_average', 'variance_weighted_average')}. Received: "
                             f"class_aggregation={class_aggregation}")
        if not isinstance(num_regressors, int) or num_regressors < 0:
            raise ValueError(f"num_regressors must be an int >= 0, got {num_regressors!r}")
        self.class_aggregation = class_aggregation
        self.num_regressors = num_regressors
        super().__init__(name=name, dtype=dtype,
                         **{"multioutput": {None: "raw_values", "variance_weighted_average": "variance_weighted"}.get(
                             class_aggregation, class_aggregation), **options})

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("multioutput", None)
        return {**config, "class_aggregation": self.class_aggregation, "num_regressors": self.num_regressors}


_metrics.bind_classes(globals(), _Preset, ", exact over the epoch; the loss' options as keywords",
                      register=keras.saving.register_keras_serializable(package=METRICS_PACKAGE))
