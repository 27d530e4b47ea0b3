"""The loss pipeline, written once against a minimal array-operations interface.

Every backend (NumPy, torch, Keras, JAX) supplies an :class:`Ops` and calls
:func:`evaluate`. Nothing here imports a framework; nothing here branches on array values
(only on shapes and on the spec), so the same code runs eagerly, under ``jax.jit``, under
``torch.compile`` and inside ``tf.function``.

Stages (DESIGN §2-3)::

    r = where(valid, pred - target, 0)          # a select: masked NaN/inf never leaks
    l = rho(r)                                   # penalty
    [l_s = sum_j(w m l) / sum_j(m)]              # optional per-sample stage (Keras)
    reduce(l, w, m)                              # none|sum|mean|sum_over_batch_size|...
    finalize                                     # identity|sqrt|nmse|r2
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, NamedTuple

from ._spec import LossSpec

__all__ = ["ArgNames", "Ops", "evaluate", "check_same_shape", "LOG2"]

LOG2 = math.log(2.0)

Array = Any
Shape = tuple[int, ...]


class ArgNames(NamedTuple):
    """How a backend names its arguments in error messages."""

    pred: str = "y_pred"
    target: str = "y_true"
    weight: str = "weight"
    sample_weight: str = "sample_weight"
    mask: str = "mask"


DEFAULT_NAMES = ArgNames()


class Ops(ABC):
    """The array operations the pipeline needs. One subclass per backend.

    Arithmetic (``+ - * /``, unary ``-``) and comparisons with Python scalars are used
    directly on the arrays; everything else goes through these methods.
    """

    name: str = "abstract"

    # -- inspection ----------------------------------------------------------------------
    @abstractmethod
    def shape(self, x: Array) -> Shape: ...

    def is_tracing(self, x: Array) -> bool:
        """True when ``x`` is symbolic (jit/compile): value checks are skipped then."""
        return False

    # -- elementwise ---------------------------------------------------------------------
    @abstractmethod
    def where(self, cond: Array, x: Array | float, y: Array | float) -> Array: ...

    @abstractmethod
    def abs(self, x: Array) -> Array:
        """|x| with derivative 0 at x = 0 (DESIGN §3)."""

    @abstractmethod
    def minimum(self, x: Array, c: float) -> Array: ...

    @abstractmethod
    def softplus(self, x: Array) -> Array: ...

    @abstractmethod
    def sqrt(self, x: Array) -> Array: ...

    @abstractmethod
    def isnan(self, x: Array) -> Array: ...

    @abstractmethod
    def logical_and(self, a: Array, b: Array) -> Array: ...

    @abstractmethod
    def isfinite(self, x: Array) -> Array: ...

    @abstractmethod
    def logical_or(self, a: Array, b: Array) -> Array: ...

    @abstractmethod
    def is_bool(self, x: Array) -> bool:
        """Whether ``x`` has a boolean dtype."""

    @abstractmethod
    def all(self, x: Array) -> bool:
        """Host-side truth of all(x): a host sync, used by the eager value checks only."""

    @abstractmethod
    def to_float(self, x: Array, like: Array) -> Array:
        """``x`` (e.g. a boolean) as ``like``'s floating dtype."""

    # -- shape ---------------------------------------------------------------------------
    @abstractmethod
    def reshape(self, x: Array, shape: Shape) -> Array: ...

    @abstractmethod
    def broadcast_to(self, x: Array, shape: Shape) -> Array: ...

    # -- reductions ----------------------------------------------------------------------
    @abstractmethod
    def sum(self, x: Array, axis: tuple[int, ...] | None = None) -> Array:
        """Accurate (pairwise or better) sum over ``axis`` (all axes when None)."""

    @abstractmethod
    def eps(self, like: Array) -> float:
        """The machine epsilon of ``like``'s dtype."""

    def count(self, x: Array, axes: tuple[int, ...] | None = None) -> Array | float:
        """The number of elements of ``x`` over ``axes`` (all axes when None), as a Python
        float. A backend whose shapes may be unknown until run time (a TensorFlow graph with
        a ``None`` batch axis) returns it as an array of ``x``'s dtype instead."""
        shape = self.shape(x)
        return float(math.prod(shape if axes is None else (shape[a] for a in axes)))

    @abstractmethod
    def constant(self, values: list[float], like: Array) -> Array:
        """A 1-D array of ``values`` with ``like``'s dtype (and device)."""


# ---------------------------------------------------------------------------------------
# Shape logic: pure Python on shape tuples; identical messages in every backend.
# ---------------------------------------------------------------------------------------


def check_same_shape(pred_shape: Shape, target_shape: Shape, names: ArgNames) -> None:
    if tuple(pred_shape) != tuple(target_shape):
        raise ValueError(
            f"{names.pred} and {names.target} must have the same shape, got "
            f"{names.pred} shape {tuple(pred_shape)} and {names.target} shape "
            f"{tuple(target_shape)} (no broadcasting between predictions and targets)"
        )


def _broadcasts_to(small: Shape, big: Shape) -> bool:
    if len(small) > len(big):
        return False
    for s, b in zip(reversed(small), reversed(big)):
        if s != 1 and s != b:
            return False
    return True


def check_trailing(name: str, shape: Shape, target: Shape, target_name: str) -> None:
    """``shape`` must broadcast to ``target`` by NumPy (trailing) rules, without growing it."""
    if not _broadcasts_to(tuple(shape), tuple(target)):
        raise ValueError(
            f"{name} of shape {tuple(shape)} does not broadcast to {target_name} shape "
            f"{tuple(target)} (trailing axes are aligned, as in NumPy; the result may not be "
            "larger than the prediction)"
        )


def leading_shape(name: str, shape: Shape, target: Shape, target_name: str) -> Shape:
    """Align ``shape`` with the LEADING axes of ``target``; return it padded with 1s."""
    shape = tuple(shape)
    ok = len(shape) <= len(target) and all(s in (1, t) for s, t in zip(shape, target))
    if not ok:
        raise ValueError(
            f"{name} of shape {shape} is not aligned with the leading axes of {target_name} "
            f"shape {tuple(target)} (sample_weight weights samples: shape (B,), (B, T), ...; "
            "use `weight` for trailing-aligned, per-output or per-element weights)"
        )
    return shape + (1,) * (len(target) - len(shape))


# ---------------------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------------------


def penalty(ops: Ops, spec: LossSpec, r: Array) -> Array:
    """rho(r), elementwise."""
    p = spec.penalty
    if p == "square":
        return r * r
    if p == "abs" or (p == "smooth_l1" and spec.beta == 0.0):
        return ops.abs(r)
    if p == "huber":
        a = ops.abs(r)
        q = ops.minimum(a, spec.delta)
        return 0.5 * (q * q) + spec.delta * (a - q)
    if p == "smooth_l1":
        a = ops.abs(r)
        q = ops.minimum(a, spec.beta)
        return (0.5 / spec.beta) * (q * q) + (a - q)
    if p == "log_cosh":
        return r + ops.softplus(-2.0 * r) - LOG2
    if p == "expectile":
        sq = r * r
        # r = pred - target > 0: over-prediction, weight 1 - tau; under-prediction: tau.
        return ops.where(r > 0, (1.0 - spec.tau) * sq, spec.tau * sq)
    raise AssertionError(p)  # pragma: no cover - the spec validates the name


def safe_div(ops: Ops, num: Array, den: Array | float) -> Array:
    """num / den, and exactly 0 (with a zero gradient) where den == 0."""
    if isinstance(den, (int, float)):
        return num / den if den else num * 0.0
    zero = den == 0
    return ops.where(zero, 0.0, num / ops.where(zero, 1.0, den))


def safe_sqrt(ops: Ops, x: Array) -> Array:
    """sqrt(x) with derivative 0 (not inf or NaN) at x = 0."""
    pos = x > 0
    return ops.where(pos, ops.sqrt(ops.where(pos, x, 1.0)), 0.0)


class _Weighted(NamedTuple):
    """Penalised units with their weight and validity, ready to reduce."""

    loss: Array  # l, the units' shape
    weight: Array | None  # w, broadcastable to the units' shape (None: all ones)
    valid: Array | None  # m, boolean, the units' shape (None: all valid)
    shape: Shape  # the units' shape


def _output_axes(ndim: int) -> tuple[int, ...]:
    return tuple(range(ndim - 1))


def check_shapes(
    ops: Ops,
    spec: LossSpec,
    pred: Array,
    target: Array,
    weight: Array | None,
    mask: Array | None,
    names: ArgNames,
) -> Shape:
    """Shape checks (pure Python on shapes); returns pred's shape."""
    shape = tuple(ops.shape(pred))
    check_same_shape(shape, ops.shape(target), names)
    if not shape and (spec.per_sample or spec.reduction in ("per_sample", "per_output")
                      or spec.per_output_stats):
        raise ValueError(
            f"{names.pred} is a scalar: reduction={spec.reduction!r}, per_sample="
            f"{spec.per_sample} and multioutput={spec.multioutput!r} need at least one axis"
        )
    if weight is not None:
        check_trailing(names.weight, ops.shape(weight), shape, names.pred)
    if mask is not None:
        check_trailing(names.mask, ops.shape(mask), shape, names.pred)
    return shape


def evaluate(
    ops: Ops,
    spec: LossSpec,
    pred: Array,
    target: Array,
    *,
    weight: Array | None = None,
    sample_weight: Array | None = None,
    mask: Array | None = None,
    names: ArgNames = DEFAULT_NAMES,
) -> Array:
    """Run the whole pipeline. Inputs are already arrays of the compute dtype (``mask`` a
    boolean array); shapes are validated here, values by the backend."""
    shape = check_shapes(ops, spec, pred, target, weight, mask, names)
    # validity: the mask and the missing targets
    valid = None
    if mask is not None:
        valid = ops.broadcast_to(mask, shape)
    if spec.missing == "nan":
        present = ~ops.isnan(target)
        valid = present if valid is None else ops.logical_and(valid, present)

    r = pred - target
    if valid is not None:
        r = ops.where(valid, r, 0.0)
    elem = penalty(ops, spec, r)

    if spec.per_sample:
        units = _per_sample_stage(ops, elem, weight, sample_weight, valid, shape, names)
    else:
        w = weight
        if sample_weight is not None:
            sw_shape = leading_shape(names.sample_weight, ops.shape(sample_weight), shape, names.pred)
            sw = ops.reshape(sample_weight, sw_shape)
            w = sw if w is None else w * sw
        units = _Weighted(elem, w, valid, shape)

    if spec.per_output_stats:
        return _per_output(ops, spec, units, target, valid)
    out = _reduce(ops, spec.reduction, units)
    if spec.finalize == "sqrt":
        out = safe_sqrt(ops, out)
    return out


def _per_sample_stage(
    ops: Ops,
    elem: Array,
    weight: Array | None,
    sample_weight: Array | None,
    valid: Array | None,
    shape: Shape,
    names: ArgNames,
) -> _Weighted:
    """Keras' unit: l_s = sum_j(w_sj m_sj l_sj) / sum_j(m_sj) over the last axis."""
    ushape = shape[:-1]
    w_in = weight
    sw_unit = None
    if sample_weight is not None:
        sws = tuple(ops.shape(sample_weight))
        if len(sws) == len(shape) and len(shape) > 0 and sws[-1] != 1:
            # A full-shape weight with a last axis longer than 1 cannot weight a sample:
            # it weights elements inside the per-sample stage (per-output weights).
            check_trailing(names.sample_weight, sws, shape, names.pred)
            w_in = sample_weight if w_in is None else w_in * sample_weight
        else:
            if len(sws) == len(shape) and len(shape) > 0:  # Keras squeezes a trailing 1
                sws = sws[:-1]
                sample_weight = ops.reshape(sample_weight, sws)
            sw_unit = ops.reshape(
                sample_weight, leading_shape(names.sample_weight, sws, ushape, "the per-sample loss")
            )
    num = elem if w_in is None else ops.broadcast_to(w_in, shape) * elem
    last = (len(shape) - 1,)
    num = ops.sum(num, last)
    if valid is None:
        per = safe_div(ops, num, ops.count(elem, last))
        uvalid = None
        if shape[-1] == 0:
            uvalid = ops.broadcast_to(ops.isnan(num), ushape)  # all False
    else:
        count = ops.sum(ops.to_float(valid, elem), last)
        per = safe_div(ops, num, count)
        uvalid = count > 0
    return _Weighted(per, sw_unit, uvalid, ushape)


def _weight_and_mask(ops: Ops, u: _Weighted) -> tuple[Array | None, Array | None]:
    """(w*l with masked units exactly 0, w*m broadcast to the units' shape) or Nones."""
    if u.weight is None and u.valid is None:
        return None, None
    if u.weight is None:
        wm = ops.to_float(u.valid, u.loss)
        return ops.where(u.valid, u.loss, 0.0), wm
    w = ops.broadcast_to(u.weight, u.shape)
    if u.valid is not None:
        w = ops.where(u.valid, w, 0.0)
    return w * u.loss, w


def _reduce(ops: Ops, reduction: str, u: _Weighted) -> Array:
    wl, wm = _weight_and_mask(ops, u)
    if wl is None:
        wl = u.loss
    if reduction == "none":
        return wl
    if reduction == "sum":
        return ops.sum(wl)
    if reduction == "mean":
        return safe_div(ops, ops.sum(wl), ops.count(wl) if wm is None else ops.sum(wm))
    if reduction == "sum_over_batch_size":
        den = ops.count(wl) if u.valid is None else ops.sum(ops.to_float(u.valid, u.loss))
        return safe_div(ops, ops.sum(wl), den)
    if reduction == "per_sample":
        axes = tuple(range(1, len(u.shape)))
        if wm is None:
            return safe_div(ops, ops.sum(wl, axes), ops.count(wl, axes))
        return safe_div(ops, ops.sum(wl, axes), ops.sum(wm, axes))
    raise AssertionError(reduction)  # pragma: no cover


def _as_outputs(ops: Ops, x: Array | None, shape: Shape) -> Array | None:
    """View a units array as (..., d): a 1-D array is one output column (scikit-learn)."""
    if x is None or len(shape) != 1:
        return x
    return ops.reshape(x, (shape[0], 1))


def _per_output(ops: Ops, spec: LossSpec, u: _Weighted, target: Array, valid: Array | None) -> Array:
    """reduction 'per_output', or 'mean' with a scikit-learn multioutput: per-output weighted
    means, the finalizer per output, then the outputs combined."""
    wl, wm = _weight_and_mask(ops, u)
    if wl is None:
        wl = u.loss
    oshape = u.shape if len(u.shape) > 1 else (u.shape[0], 1)
    d = oshape[-1]
    axes = _output_axes(len(oshape))
    wl = _as_outputs(ops, wl, u.shape)
    num = ops.sum(wl, axes)
    if wm is None:
        den: Array | float = ops.count(wl, axes)
        wm_o = None
    else:
        wm_o = _as_outputs(ops, wm, u.shape)
        den = ops.sum(wm_o, axes)

    f = spec.finalize
    sst = None
    if f in ("nmse", "r2"):
        y = target if valid is None else ops.where(valid, target, 0.0)
        y = _as_outputs(ops, y, u.shape)
        assert y is not None
        if wm_o is None:
            ybar = safe_div(ops, ops.sum(y, axes), den)
            dev = y - ybar
            sst = ops.sum(dev * dev, axes)
        else:
            ybar = safe_div(ops, ops.sum(wm_o * y, axes), den)
            dev = y - ybar
            sst = ops.sum(wm_o * (dev * dev), axes)
        # A constant target (SST = 0) follows scikit-learn's force_finite: R^2 = 1 if fitted
        # exactly, else 0 (NMSE = 1 - R^2). "Constant" is judged relative to the rounding
        # of the weighted mean: a single observed target gives y - ybar of one ulp, not 0.
        sq = y * y if wm_o is None else wm_o * (y * y)
        zero = sst <= ops.sum(sq, axes) * (4.0 * ops.eps(y)) ** 2
        per = ops.where(zero, ops.to_float(num != 0, num), num / ops.where(zero, 1.0, sst))
    else:
        per = safe_div(ops, num, den)
        if f == "sqrt":
            per = safe_sqrt(ops, per)

    mo = spec.multioutput
    if spec.reduction == "per_output" or mo == "raw_values":
        out = per
    elif mo == "uniform_average":
        out = ops.sum(per) / float(d) if d else ops.sum(per) * 0.0
    elif mo == "variance_weighted":
        assert sst is not None
        tot = ops.sum(sst)
        uniform = ops.sum(per) / float(d) if d else ops.sum(per) * 0.0
        out = ops.where(tot > 0, ops.sum(sst * per) / ops.where(tot > 0, tot, 1.0), uniform)
    else:
        assert isinstance(mo, tuple)
        if len(mo) != d:
            raise ValueError(
                f"multioutput has {len(mo)} weights but the prediction of shape "
                f"{tuple(u.shape)} has {d} outputs (its last axis)"
            )
        out = ops.sum(per * ops.constant([v / sum(mo) for v in mo], per))
    if f == "r2":
        out = 1.0 - out
    return out


# ---------------------------------------------------------------------------------------
# Eager value checks (DESIGN §3 "Validation"): same messages in every backend.
# ---------------------------------------------------------------------------------------


def check_weight_values(ops: Ops, name: str, w: Array) -> None:
    """Weights must be finite and non-negative (skipped while tracing)."""
    if ops.is_tracing(w):
        return
    if not ops.all(ops.isfinite(w)):
        raise ValueError(f"{name} must be finite; it contains NaN or inf")
    if not ops.all(w >= 0):
        raise ValueError(f"{name} must be non-negative; it contains negative values")


def mask_to_bool(ops: Ops, name: str, mask: Array, check: bool) -> Array:
    """A boolean mask as is; a numeric one must hold only 0 and 1 (checked eagerly)."""
    if ops.is_bool(mask):
        return mask
    if check and not ops.is_tracing(mask):
        if not ops.all(ops.logical_or(mask == 0, mask == 1)):
            raise ValueError(
                f"{name} must be boolean, or numeric with only 0 and 1; it contains other values"
            )
    return mask != 0


def run(
    ops: Ops,
    spec: LossSpec,
    pred: Array,
    target: Array,
    *,
    weight: Array | None = None,
    sample_weight: Array | None = None,
    mask: Array | None = None,
    names: ArgNames = DEFAULT_NAMES,
    check_values: bool = True,
) -> Array:
    """The checks every backend shares, then :func:`evaluate`. Inputs are arrays already
    converted to the compute dtype by the backend."""
    check_shapes(ops, spec, pred, target, weight, mask, names)
    if mask is not None:
        mask = mask_to_bool(ops, names.mask, mask, check_values)
    if check_values:
        if weight is not None:
            check_weight_values(ops, names.weight, weight)
        if sample_weight is not None:
            check_weight_values(ops, names.sample_weight, sample_weight)
    return evaluate(
        ops, spec, pred, target, weight=weight, sample_weight=sample_weight, mask=mask, names=names
    )
