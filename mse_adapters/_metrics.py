"""Streaming metrics, written once: the sufficient statistics of a spec and their merge.

Every loss whose reduction aggregates over the batch (``mean``, ``sum``,
``sum_over_batch_size``, ``per_output``) is also a streaming metric (docs/design.md,
"Metrics"): a batch becomes a few statistics per output, two partial states merge by an
associative rule, and the value is computed from the merged statistics by the same code as
the one-shot loss (:func:`mse_adapters._core.finish_outputs`). For any split of the data
and any merge order the value equals the one-shot loss on the concatenation, to the
rounding of the statistics.

The statistics, each an array of shape ``(k,)`` (``k`` = the number of outputs for a
per-output reduction or multioutput, else 1):

- additive losses (``finalize`` identity or sqrt): ``total`` = sum(w m l) and ``weight``
  = the reduction's normalizer (sum(w m) for ``mean``, the number of valid units for
  ``sum_over_batch_size``); merged by addition.
- NMSE and R^2: ``total`` (the SSE), ``weight`` (sum(w m)), ``mean`` (the weighted mean of
  the target), ``m2`` (its centred second moment sum(w m (y - mean)**2)) and ``count`` (the
  number of valid units, for the adjusted R^2). A batch's moments are computed centred
  within the batch (the corrected two-pass: sum(w d**2) - sum(w d)**2 / W about the batch's
  weighted mean) and merged by Chan's parallel update; never as sum(y**2) - sum(y)**2 / n.

Accumulation is compensated: in float64 where the backend has it cheaply (NumPy, torch,
Keras on TensorFlow or torch: the batch's statistics are computed in the compute dtype and
accumulated in float64), otherwise as (hi, lo) pairs of the compute dtype with error-free
additions (JAX without x64). A batch's statistics are computed in its compute dtype (no
float64 copy of the data). An empty or fully masked batch is an exact no-op.

A state is a tuple of arrays: the fields of :func:`fields` in that order, then (when
compensated) the ``_lo`` part of each.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _core
from . import _messages as msg
from ._core import Ops, Prepared, count_true, safe_div, safe_sqrt
from ._presets import PRESET_TABLE, Preset, preset
from ._spec import LossSpec

__all__ = ["check_spec", "fields", "n_outputs", "zeros", "batch", "merge", "fold", "result", "adjusted_r2",
           "state_size", "update_key", "METRIC_REDUCTIONS"]

Array = Any
Stats = tuple[Array, ...]

#: The reductions a streaming metric accepts (those that aggregate over the batch).
METRIC_REDUCTIONS = ("mean", "sum", "sum_over_batch_size", "per_output")

_ADDITIVE = ("total", "weight")
_MOMENTS = ("total", "weight", "mean", "m2", "count")


def check_spec(spec: LossSpec) -> LossSpec:
    """A spec a streaming metric can compute, or a ValueError that says why not."""
    if not isinstance(spec, LossSpec):
        raise TypeError(f"spec must be a LossSpec, got {type(spec).__name__}")
    if spec.reduction not in METRIC_REDUCTIONS:
        raise ValueError(
            f"a streaming metric needs a reduction over the batch ({', '.join(map(repr, METRIC_REDUCTIONS))}), "
            f"got reduction={spec.reduction!r}")
    if spec.transform is not None or spec.penalty == "gaussian_nll":
        raise ValueError("the streaming metrics do not take a transform (covariance, scale_tril, precision) or "
                         f"the Gaussian likelihoods, got penalty={spec.penalty!r}, transform={spec.transform!r}")
    return spec


def moments(spec: LossSpec) -> bool:
    """Whether the spec needs the target's moments (NMSE, R^2)."""
    return spec.finalize in ("nmse", "r2")


def fields(spec: LossSpec) -> tuple[str, ...]:
    """The names of the statistics of ``spec``."""
    return _MOMENTS if moments(spec) else _ADDITIVE


def update_key(spec: LossSpec) -> str:
    """A short name for what a batch's statistics depend on: two specs of equal keys run the
    same update (so torchmetrics' compute groups may share their state), specs that differ
    in anything an update reads never share a key. The spec, less what only :func:`result`
    reads: the finalizer within its family (identity and sqrt; NMSE and R^2),
    ``force_finite``, and the combination of per-output statistics (``raw_values``,
    ``uniform_average``, ``variance_weighted``; a tuple of weights stays: its length is
    checked per batch)."""
    d = spec.to_dict()
    d["finalize"] = "moments" if moments(spec) else "additive"
    d.pop("force_finite", None)
    if spec.per_output_stats and isinstance(spec.multioutput, str):
        d["reduction"], d["multioutput"] = "per_output", "per_output"
    return hashlib.blake2s(json.dumps(d, sort_keys=True).encode(), digest_size=6).hexdigest()


def state_size(spec: LossSpec, compensated: bool) -> int:
    """The number of arrays in a state."""
    return len(fields(spec)) * (2 if compensated else 1)


def n_outputs(spec: LossSpec, shape: Sequence[int]) -> int:
    """``k``, the length of each statistic, for batches of ``shape``."""
    if not spec.per_output_stats:
        return 1
    shape = tuple(shape)
    if not shape:
        raise ValueError(f"reduction={spec.reduction!r} with multioutput={spec.multioutput!r} needs predictions "
                         "with at least one axis")
    k = 1 if len(shape) == 1 else int(shape[-1])
    mo = spec.multioutput
    if isinstance(mo, tuple) and spec.reduction == "mean" and len(mo) != k:
        raise ValueError(msg.multioutput_count(len(mo), shape, k))
    return k


def zeros(k: int, spec: LossSpec, compensated: bool) -> list[np.ndarray]:
    """The empty state, as host float64 arrays (each adapter converts them)."""
    return [np.zeros((k,)) for _ in range(state_size(spec, compensated))]


# ---------------------------------------------------------------------------------------
# Compensated arithmetic on pairs (hi, lo); lo is None when the accumulator is float64
# ---------------------------------------------------------------------------------------


def _two_sum(a: Array, b: Array) -> tuple[Array, Array]:
    """Knuth's error-free sum: a + b = s + e exactly."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _add(a: tuple[Array, Array | None], b: tuple[Array, Array | None]) -> tuple[Array, Array | None]:
    if a[1] is None:
        return a[0] + b[0], None
    s, e = _two_sum(a[0], b[0])
    e = e + (a[1] + b[1])
    h = s + e
    return h, e - (h - s)


def _value(a: tuple[Array, Array | None]) -> Array:
    return a[0] if a[1] is None else a[0] + a[1]


def _split(stats: Stats, n: int) -> list[tuple[Array, Array | None]]:
    if len(stats) == n:
        return [(s, None) for s in stats]
    return [(stats[i], stats[n + i]) for i in range(n)]


def _join(pairs: list[tuple[Array, Array | None]]) -> Stats:
    out = [p[0] for p in pairs]
    if pairs[0][1] is not None:
        out += [p[1] for p in pairs]
    return tuple(out)


# ---------------------------------------------------------------------------------------
# A batch
# ---------------------------------------------------------------------------------------


def _full(ops: Ops, x: Array | float, k: int, like: Array, dtype: str | None = None) -> Array:
    """A count (a Python float or a scalar array) as a ``(k,)`` array of ``like``'s dtype (or
    ``dtype``), on its device. (A Python number, not a NumPy array: no host array to convert
    inside a compiled function, where torch.compile would break the graph.)"""
    if isinstance(x, (int, float)):
        return ops.broadcast_to(ops.asarray(float(x), dtype=dtype or ops.dtype(like), like=like), (k,))
    return ops.broadcast_to(ops.reshape(x, (1,)), (k,)) if tuple(ops.shape(x)) != (k,) else x


def _plain(prep: Prepared) -> bool:
    """Whether a batch has no weight and no mask (every element counts once)."""
    return (prep.weight is None and prep.sample_weight is None and prep.mask is None and prep.spec.missing is None
            and not prep.params)


class _Sums(NamedTuple):
    """A batch's loss statistics before accumulation: ``total`` and ``den`` (each of shape
    ``(k,)``), the output axes, the units, the valid-element selector and the per-output
    weight-and-mask (None when every unit counts 1)."""

    total: Array
    den: Array
    k: int
    axes: tuple[int, ...] | None
    units: Any
    valid: Array | None
    wm_o: Array | None


def batch(ops: Ops, prep: Prepared, acc: str, compensated: bool) -> Stats:
    """The statistics of one prepared batch, in the accumulator dtype ``acc`` (pairs of it
    when ``compensated``).

    A backend's metric ops may answer two optional primitives for unweighted, unmasked
    batches (its optimisation, as the losses' fused paths): ``plain_sum(penalty, a, b,
    axes)`` for the penalties in its ``PLAIN_SUMS``, the sum of penalty(a - b) over ``axes``
    (None: all) in the fewest passes, and ``moments(y, axes, acc)``, the mean (in ``acc``)
    and centred second moment of ``y`` in one or two reading passes (float64-accumulated)."""
    s = _loss_sums(ops, prep)
    up = functools.partial(ops.asarray, dtype=acc)
    zero = None if not compensated else _full(ops, 0.0, s.k, prep.pred, acc)
    pairs: list[tuple[Array, Array | None]] = [(up(s.total), zero), (up(s.den), zero)]
    if moments(prep.spec):
        pairs += _moment_pairs(ops, prep, s, acc, zero)
    return _join(pairs)


def _loss_sums(ops: Ops, prep: Prepared) -> _Sums:
    """The penalty's weighted sum and the reduction's normalizer of one batch, per output
    when the spec keeps outputs; by the backend's ``plain_sum`` when it has one for an
    unweighted, unmasked batch."""
    spec = prep.spec
    # (with the per-sample stage and no mask every sample has the same number of elements,
    # so the sum of the per-sample means is the plain sum over that number)
    per = prep.shape[-1] if spec.per_sample and prep.shape else 1
    fused = (_plain(prep) and spec.penalty in getattr(ops, "PLAIN_SUMS", ()) and not spec.unit_norm
             and isinstance(per, int) and per > 0)
    like = prep.pred
    if fused:
        sum_sq = functools.partial(ops.plain_sum, spec.penalty)  # type: ignore[attr-defined]
        u = _core._Units(prep.pred, None, None, prep.shape)  # (only its shape is read below)
        if spec.per_output_stats:
            oshape = u.shape if len(u.shape) > 1 else (u.shape[0], 1)
            k, axes = oshape[-1], tuple(range(len(oshape) - 1))
            total = ops.reshape(sum_sq(prep.pred, prep.target, axes if len(u.shape) > 1 else None), (k,))
            return _Sums(total, _full(ops, ops.count(prep.pred) / k, k, like), k, axes, u, None, None)
        total = ops.reshape(sum_sq(prep.pred, prep.target, None), (1,))
        d: Any = ops.count(prep.pred)
        if per != 1:
            total, d = total / float(per), d / float(per)
        return _Sums(total, _full(ops, d, 1, like), 1, None, u, None, None)
    u, valid = _core.units_of(ops, prep)
    wl, wm = _core._weight_and_mask(ops, u)
    if wl is None:
        wl = u.loss
    if spec.per_output_stats:
        oshape = u.shape if len(u.shape) > 1 else (u.shape[0], 1)
        k, axes = oshape[-1], tuple(range(len(oshape) - 1))
        wl_o = _core._as_outputs(ops, wl, u.shape)
        wm_o = None if wm is None else _core._as_outputs(ops, wm, u.shape)
        den = ops.count(wl_o, axes) if wm_o is None else ops.sum(wm_o, axes)
        return _Sums(ops.sum(wl_o, axes), _full(ops, den, k, like), k, axes, u, valid, wm_o)
    if spec.reduction == "mean":
        d = _core._normalizer(ops, u, wm)
    else:  # sum_over_batch_size (and sum: not used)
        d = ops.count(wl) if u.valid is None else count_true(ops, u.valid, u.loss)
    return _Sums(ops.reshape(ops.sum(wl), (1,)), _full(ops, d, 1, like), 1, None, u, valid, None)


def _moment_pairs(ops: Ops, prep: Prepared, s: _Sums, acc: str,
                  zero: Array | None) -> list[tuple[Array, Array | None]]:
    """The target's statistics for NMSE and R^2: its weighted mean, centred second moment
    and count, each an (accumulator, compensation) pair; centred within the batch (the
    corrected two-pass) or by the backend's ``moments`` primitive."""
    assert s.axes is not None
    compensated = zero is not None
    up = functools.partial(ops.asarray, dtype=acc)
    valid, wm_o, den, like = s.valid, s.wm_o, s.den, prep.pred
    y = _core._as_outputs(ops, prep.target if valid is None else ops.where(valid, prep.target, 0.0), s.units.shape)
    fast_moments = getattr(ops, "moments", None)
    if wm_o is None and fast_moments is not None and not compensated:
        mean_acc, m2 = fast_moments(y, s.axes, acc)
        return [(mean_acc, None), (up(m2), None), (up(den), None)]
    if wm_o is None:
        mhat = safe_div(ops, ops.sum(y, s.axes), den)
        dev = y - mhat
        s1 = ops.sum(dev, s.axes)
        s2 = ops.sum(dev * dev, s.axes)
        cnt = den
    else:
        mhat = safe_div(ops, ops.sum(wm_o * y, s.axes), den)
        dev = y - mhat
        wdev = wm_o * dev
        s1 = ops.sum(wdev, s.axes)
        s2 = ops.sum(wdev * dev, s.axes)
        vo = None if valid is None else _core._as_outputs(ops, ops.broadcast_to(valid, prep.shape), s.units.shape)
        n = ops.count(y, s.axes) if vo is None else count_true(ops, vo, like, s.axes)
        cnt = _full(ops, n, s.k, like)
    shift = safe_div(ops, s1, den)  # the batch mean's correction (the corrected two-pass)
    m2 = s2 - s1 * shift
    mean = _two_sum(mhat, shift) if compensated else (up(mhat) + up(shift), None)
    return [mean, (up(m2), zero), (up(cnt), zero)]


# ---------------------------------------------------------------------------------------
# Merge and value
# ---------------------------------------------------------------------------------------


def merge(ops: Ops, spec: LossSpec, a: Stats, b: Stats) -> Stats:
    """The state of the union of the data of ``a`` and ``b`` (associative, up to rounding;
    an empty ``b`` is an exact no-op)."""
    n = len(fields(spec))
    pa, pb = _split(a, n), _split(b, n)
    total = _add(pa[0], pb[0])
    weight = _add(pa[1], pb[1])
    if not moments(spec):
        return _join([total, weight])
    wa, wb = _value(pa[1]), _value(pb[1])
    frac = safe_div(ops, wb, _value(weight))  # W_b / W
    ma, mb = pa[2], pb[2]
    delta = (mb[0] - ma[0]) if ma[1] is None else (mb[0] - ma[0]) + (mb[1] - ma[1])
    mean = _add(ma, (delta * frac, None if ma[1] is None else delta * 0.0))
    corr = delta * delta * (wa * frac)  # delta^2 W_a W_b / W
    m2 = _add(_add(pa[3], pb[3]), (corr, None if ma[1] is None else corr * 0.0))
    count = _add(pa[4], pb[4])
    return _join([total, weight, mean, m2, count])


def fold(ops: Ops, spec: LossSpec, states: Sequence[Stats]) -> Stats:
    """Merge a sequence of states (pairwise, as a balanced tree)."""
    states = list(states)
    if not states:
        raise ValueError("nothing to merge")
    while len(states) > 1:
        nxt = [merge(ops, spec, states[i], states[i + 1]) for i in range(0, len(states) - 1, 2)]
        if len(states) % 2:
            nxt.append(states[-1])
        states = nxt
    return states[0]


def result(ops: Ops, spec: LossSpec, stats: Stats, dtype: str) -> Array:
    """The metric's value from a state (in the accumulator dtype); ``dtype``: the inputs'
    compute dtype (whose rounding defines a constant target for NMSE and R^2).

    A metric reports, it does not train: where a total weight is 0 (an output with no valid
    target, a stream with no data) the value is undefined, NaN with an
    :class:`~mse_adapters.UndefinedMetricWarning` (``_core.finish_outputs`` with
    ``undefined="nan"``); the averages over outputs take the defined ones. A ``sum`` is a
    total: 0 over no data."""
    n = len(fields(spec))
    vals = [_value(p) for p in _split(stats, n)]
    total, den = vals[0], vals[1]
    k = int(ops.shape(total)[0])
    if spec.per_output_stats:
        sst = sq = None
        if moments(spec):
            mean, m2 = vals[2], vals[3]
            sst = m2
            sq = m2 + den * (mean * mean)
        return _core.finish_outputs(ops, spec, total, den, sst, sq, k, dtype, (k,), undefined="nan")
    t, d = ops.reshape(total, ()), ops.reshape(den, ())
    if spec.reduction == "sum":  # a total: 0 over no data (the empty sum), never undefined
        return t
    out = safe_div(ops, t, d)
    if spec.finalize == "sqrt":
        out = safe_sqrt(ops, out)
    return _core.mark_undefined(ops, spec, out, d, False)[0]


def count_of(spec: LossSpec, stats: Stats) -> Array:
    """The number of valid units per output (NMSE and R^2 states)."""
    n = len(fields(spec))
    return _value(_split(stats, n)[4])


def adjusted_r2(ops: Ops, r2: Array, n: Array, regressors: int) -> Array:
    """The adjusted R^2, 1 - (1 - R^2) (n - 1) / (n - p - 1) (torchmetrics' ``adjusted``
    with n the number of samples, Keras' ``num_regressors`` with n the number of target
    values); R^2 itself where n - p - 1 <= 0 (both libraries warn and return R^2 there)."""
    if not regressors:
        return r2
    n = ops.reshape(n, ())
    ok = n - (regressors + 1.0) > 0
    ratio = (n - 1.0) / ops.where(ok, n - (regressors + 1.0), 1.0)
    return ops.where(ok, 1.0 - (1.0 - r2) * ratio, r2)


# ---------------------------------------------------------------------------------------
# The bindings' shared pieces
# ---------------------------------------------------------------------------------------


def metric_class_name(row: Preset) -> str:
    """The metric class of a preset row (torch, Keras): the Keras loss name when it names an
    error or a score (``MeanSquaredError``, ``R2Score``), else that name + ``Error``
    (``HuberError``)."""
    return row.keras if row.keras.endswith(("Error", "Score")) else row.keras + "Error"


def constructor(name: str, backend: str, factory: Callable[..., Any]) -> Callable[..., Any]:
    """The metric constructor of the preset ``name`` in a functional backend (``"jax"``,
    ``"numpy"``): its options are the loss' fields with the backend's defaults, and
    ``factory(spec, check_values=...)`` builds the metric."""
    row = next(p for p in PRESET_TABLE if p.name == name)

    def make(*, check_values: bool = True, **options: Any) -> Any:
        if isinstance(options.get("multioutput"), (list, tuple, np.ndarray)):
            options["multioutput"] = tuple(float(v) for v in options["multioutput"])
        return factory(preset(name, **{**row.defaults.get(backend, {}), **options}), check_values=check_values)

    make.__name__ = make.__qualname__ = name
    make.__doc__ = (f"Streaming {row.title[0].lower() + row.title[1:]}: a :class:`Metric` of the preset "
                    f"``{name}`` (options: the fields of the loss ``mse_adapters.{backend}.{name}``, e.g. "
                    "``reduction``, ``multioutput``, ``missing``"
                    + ("".join(f", ``{p}``" for p in row.params)) + ").")
    return make


def bind_classes(namespace: dict[str, Any], base: type, note: str,
                 attrs: Callable[[Preset], dict[str, Any]] | None = None,
                 register: Callable[[type], type] | None = None) -> None:
    """A metric class per preset row (torch, Keras), a subclass of ``base`` named by
    :func:`metric_class_name`, into a module's ``namespace`` and its ``__all__`` (a class
    written there already, e.g. ``R2Score`` with its framework's arguments, is kept).
    ``note``: the docstring after the preset's name; ``attrs``: further class attributes of a
    row; ``register``: the framework's registration (Keras' serialisation)."""
    for row in PRESET_TABLE:
        name = metric_class_name(row)
        if name not in namespace:
            doc = (f"Streaming {row.title[0].lower() + row.title[1:]} (the preset ``{row.name}``){note}"
                   + (" (" + ", ".join(f"``{p}``" for p in row.params) + ")" if row.params else "") + ".")
            cls = type(name, (base,), {"_preset": row.name, "__doc__": doc, "__module__": namespace["__name__"],
                                       **(attrs(row) if attrs else {})})
            namespace[name] = register(cls) if register else cls
        namespace["__all__"].append(name)

