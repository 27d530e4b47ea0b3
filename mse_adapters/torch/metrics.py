"""Streaming metrics for torch: ``torchmetrics.Metric`` subclasses (docs/design.md, "Metrics").

So ``forward`` (the batch value), ``update``, ``compute``, ``reset``, ``merge_state``,
``MetricCollection``, DDP sync and Lightning's ``self.log`` work as torchmetrics users
expect. The torchmetrics namesakes keep their names, arguments and meaning
(:class:`MeanSquaredError` ``(squared=True, num_outputs=1)``, :class:`MeanAbsoluteError`
``(num_outputs=1)``, :class:`R2Score` ``(adjusted=0, multioutput="uniform_average")``,
:class:`LogCoshError` ``(num_outputs=1)``); every other preset has a class too
(:class:`RootMeanSquaredError`, :class:`NormalizedMeanSquaredError`, :class:`HuberError`,
:class:`ExpectileError`, ...), and :class:`Metric` takes any spec.

``update(preds, target, *, weight=None, sample_weight=None, mask=None)`` takes the losses'
options and checks. The state is one float64 tensor of sufficient statistics per output
(accumulated in float64; a batch's statistics are computed in its own dtype), synced across
processes by gathering the states and merging them (Chan's update for R^2 and NMSE), so
``compute()`` on every rank is the value of the global data. ``update`` never syncs with the
host, except for the value checks of a ``weight``, ``sample_weight`` or numeric ``mask``
(``check_values=False`` turns them off). For per-output statistics the number of outputs is
read from the first batch; under DDP give ``num_outputs`` when a rank may see no batch.

>>> import torch
>>> from mse_adapters.torch.metrics import R2Score
>>> m = R2Score()
>>> m.update(torch.tensor([2.5, 0.0]), torch.tensor([3.0, -0.5]))
>>> m.update(torch.tensor([2.0, 8.0]), torch.tensor([2.0, 7.0]))
>>> round(m.compute().item(), 6)
0.948608
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import torch
import torchmetrics
from torch import Tensor

from .. import _metrics
from .._core import ArgNames
from .._prepare import Call, Context, Plans, prepare
from .._presets import PRESET_TABLE, preset
from .._spec import LossSpec
from . import TorchOps

__all__ = ["Metric", "metric_class_name"]

NAMES = ArgNames(pred="preds", target="target")
_SPEC_FIELDS = frozenset(LossSpec.__dataclass_fields__)


class _MetricOps(TorchOps):
    """torch's primitives with the metrics' two optional ones (unweighted batches): the sum
    of a plain penalty of the residual in one or two passes (``F.mse_loss``'s fused sum of
    squares; |r| in place on the fresh residual), and the moments of the target from
    reading passes (sum, the centred sum, the sum of the centred squares). In place only
    where no gradient is taken: ``forward``'s batch value is differentiable."""

    PLAIN_SUMS = frozenset({"square", "abs"})

    def plain_sum(self, penalty: str, a: Tensor, b: Tensor, axes: tuple[int, ...] | None) -> Tensor:
        if penalty == "square" and axes is None:
            return torch.nn.functional.mse_loss(a, b, reduction="sum")
        d = a - b  # a fresh tensor: the penalty is applied in place unless it is differentiated
        if d.requires_grad:
            d = d * d if penalty == "square" else d.abs()
        else:
            d = d.mul_(d) if penalty == "square" else d.abs_()
        return d.sum() if axes is None else d.sum(dim=axes)

    def moments(self, y: Tensor, axes: tuple[int, ...], acc: str) -> tuple[Tensor, Tensor]:
        n = 1
        for a in axes:
            n *= y.shape[a]
        dt = getattr(torch, acc)
        if n == 0:
            z = torch.zeros(y.shape[-1], dtype=dt, device=y.device)
            return z, z
        mhat = torch.sum(y, dim=axes) / n
        dev = y - mhat
        s1 = torch.sum(dev, dim=axes).to(dt)
        # (dev is fresh: squared in place, after s1, unless it is differentiated)
        s2 = (dev * dev if dev.requires_grad else dev.mul_(dev)).sum(dim=axes).to(dt)
        return mhat.to(dt) + s1 / n, s2 - s1 * (s1 / n)  # the corrected two-pass


OPS = _MetricOps()


metric_class_name = _metrics.metric_class_name


def _fold_stacked(spec: LossSpec, stacked: Tensor) -> Tensor:
    """The merge of stacked states ``(n, fields, k)`` (the DDP sync and ``merge_state``)."""
    return torch.stack(_metrics.fold(OPS, spec, [tuple(s) for s in stacked.unbind(0)]))


class Metric(torchmetrics.Metric):
    """The streaming metric of any spec (a reduction over the batch: ``mean``, ``sum``,
    ``sum_over_batch_size`` or ``per_output``). ``num_outputs``: the number of outputs of a
    per-output spec (read from the first batch when None); ``kwargs``: torchmetrics'
    (``dist_sync_on_step``, ``process_group``, ``sync_on_compute``, ...).

    Differentiable as torchmetrics' regression metrics: ``forward``'s batch value carries
    the gradient of the inputs (the accumulated state does not). The state's name,
    ``stats_<key>``, tells what its update computes (:func:`mse_adapters._metrics.update_key`):
    a ``MetricCollection``'s compute groups share a state only among metrics whose updates
    are the same (``MeanSquaredError`` and ``RootMeanSquaredError``; never two Huber deltas).
    ``stats`` reads it."""

    is_differentiable = True
    higher_is_better: bool | None = None
    full_state_update = False
    __jit_unused_properties__: ClassVar[list[str]] = [*torchmetrics.Metric.__jit_unused_properties__, "stats"]

    def __init__(self, spec: LossSpec, *, num_outputs: int | None = None, check_values: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = _metrics.check_spec(spec)
        self.check_values = check_values
        if num_outputs is not None and (not isinstance(num_outputs, int) or num_outputs < 1):
            raise ValueError(f"num_outputs must be an int >= 1, got {num_outputs!r}")
        self._k_known = num_outputs is not None or not self.spec.per_output_stats
        self._compute_dtype = "float32"
        self._plans = Plans()  # the updates' plans by call signature (docs/design.md, "Plans")
        self._state = f"stats_{_metrics.update_key(self.spec)}{'' if check_values else '_unchecked'}"
        self._setup(num_outputs if self.spec.per_output_stats and num_outputs else 1)

    @property
    def stats(self) -> Tensor:
        """The state: the statistics of :mod:`mse_adapters._metrics`, shape ``(fields, k)``."""
        return getattr(self, self._state)

    @stats.setter
    def stats(self, value: Tensor) -> None:
        setattr(self, self._state, value)

    def _setup(self, k: int) -> None:
        rows = _metrics.state_size(self.spec, False)
        device = self.stats.device if self._state in self._defaults else torch.device("cpu")
        self.add_state(self._state, default=torch.zeros(rows, k, dtype=torch.float64, device=device),
                       dist_reduce_fx=functools.partial(_fold_stacked, self.spec))

    def _outputs(self, preds: Any) -> int:
        k = _metrics.n_outputs(self.spec, tuple(getattr(preds, "shape", ())))
        if not self._k_known:
            self._k_known = True
            if k != self.stats.shape[1]:
                self._setup(k)
        return k

    @torch.jit.unused
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The batch's value (differentiable), accumulated into the state."""
        self._outputs(args[0] if args else kwargs.get("preds"))
        return super().forward(*args, **kwargs)

    def update(self, preds: Tensor, target: Tensor, *, weight: Any = None, sample_weight: Any = None,
               mask: Any = None) -> None:
        """Add a batch (the losses' arguments and checks)."""
        prep = prepare(self.spec, Call(preds, target, weight, sample_weight, mask),
                       Context(OPS, NAMES, check_values=self.check_values),
                       None if torch.compiler.is_compiling() else self._plans)  # (compiled: the graph caches)
        k = self._outputs(prep.pred)
        if k != self.stats.shape[1]:
            raise ValueError(f"a batch with {k} outputs cannot join a metric of {self.stats.shape[1]} outputs "
                             "(num_outputs)")
        self._compute_dtype = str(prep.pred.dtype).removeprefix("torch.")
        stats = _metrics.batch(OPS, prep, "float64", False)
        self.stats = torch.stack(_metrics.merge(OPS, self.spec, tuple(self.stats), stats))

    def compute(self) -> Tensor:
        """The value on everything seen (by every process, once synced); NaN where undefined
        (docs/metrics.md, "Undefined values")."""
        out = _metrics.result(OPS, self.spec, tuple(self.stats), self._compute_dtype)
        adjusted = getattr(self, "adjusted", 0)
        if adjusted:
            out = _metrics.adjusted_r2(OPS, out, _metrics.count_of(self.spec, tuple(self.stats))[0], adjusted)
        return out.to(torch.get_default_dtype() if self._compute_dtype != "float64" else torch.float64)


def _split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(spec fields, torchmetrics' keyword arguments)."""
    fields = {k: v for k, v in kwargs.items() if k in _SPEC_FIELDS}
    if isinstance(fields.get("multioutput"), (list, tuple)):
        fields["multioutput"] = tuple(float(v) for v in fields["multioutput"])
    return fields, {k: v for k, v in kwargs.items() if k not in _SPEC_FIELDS}


class _Preset(Metric):
    higher_is_better: bool | None = False
    """A preset row as a metric: ``num_outputs`` as torchmetrics (1: one value over every
    element; n > 1: per-output values of ``(N, n)`` inputs), the spec's fields as keywords."""

    _preset = ""

    def __init__(self, *, num_outputs: int = 1, check_values: bool = True, **kwargs: Any) -> None:
        fields, rest = _split(kwargs)
        row = next(p for p in PRESET_TABLE if p.name == self._preset)
        fields = {**row.defaults.get("torch", {}), **fields}
        spec = preset(self._preset, **fields)
        if num_outputs != 1 and not spec.per_output_stats:
            spec = spec.replace(reduction="per_output")
        self.num_outputs = num_outputs
        # 1 (the default) with a per-output spec: the number of outputs is read from the data
        super().__init__(spec, num_outputs=num_outputs if spec.per_output_stats and num_outputs != 1 else None,
                         check_values=check_values, **rest)


class MeanSquaredError(_Preset):
    """Streaming mean squared error, as ``torchmetrics.MeanSquaredError`` (``squared=False``:
    its square root, the RMSE) with the losses' options (``weight``, ``mask``, ``missing``,
    ``reduction``) and float64 accumulation."""

    _preset = "mse"

    def __init__(self, squared: bool = True, num_outputs: int = 1, **kwargs: Any) -> None:
        if not isinstance(squared, bool):
            raise ValueError(f"Expected argument `squared` to be a boolean but got {squared}")
        self.squared = squared
        if not squared:
            self._preset = "rmse"
        super().__init__(num_outputs=num_outputs, **kwargs)


class R2Score(_Preset):
    """Streaming coefficient of determination, as ``torchmetrics.R2Score`` (``adjusted``: the
    number of regressors of the adjusted R^2; ``multioutput``: ``raw_values``,
    ``uniform_average``, ``variance_weighted`` or weights), numerically stable: centred
    moments merged by Chan's update, never sum(y^2) - sum(y)^2 / n."""

    _preset = "r2"
    higher_is_better = True

    def __init__(self, adjusted: int = 0, multioutput: Any = "uniform_average", num_outputs: int | None = None,
                 **kwargs: Any) -> None:
        if not isinstance(adjusted, int) or adjusted < 0:
            raise ValueError("`adjusted` parameter should be an integer larger or equal to 0.")
        self.adjusted = adjusted
        fields, rest = _split({"multioutput": multioutput, **kwargs})
        Metric.__init__(self, preset("r2", **fields), num_outputs=num_outputs, **rest)


_metrics.bind_classes(globals(), _Preset, ": ``num_outputs`` as torchmetrics, the loss' options as keywords",
                      attrs=lambda row: {"higher_is_better": row.spec.finalize == "r2"})
