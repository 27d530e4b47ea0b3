"""The loss pipeline, written once against a small interface of array primitives.

Every backend supplies an :class:`Ops` (its primitives); :func:`mse_adapters._prepare.prepare`
turns a user's arguments into a :class:`Prepared` call, and :func:`evaluate` runs it.
Nothing here imports a framework or branches on array values (only on shapes and the spec),
so the same code runs eagerly, under ``jax.jit``, ``torch.compile`` and ``tf.function``.
The stages are those of docs/design.md ("The pipeline")::

    r = where(valid, pred - target, 0)       # a select: masked NaN/inf never leaks
    l = rho(r)                                # the penalty table's value
    [l_s = sum_j(w m l) / sum_j(m)]           # optional per-sample stage (Keras)
    reduce(l, w, m)                           # none|sum|mean|sum_over_batch_size|...
    finalize                                  # identity|sqrt|nmse|r2
"""

from __future__ import annotations

import math
import sys
import types
import warnings
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from . import _messages as msg
from ._ops import (  # the interface, re-exported: the core's vocabulary
    EPS,
    ArgNames,
    Ops,
    Prepared,
    Whitening,
    check_trailing,
    leading_shape,
    var_shape,
)
from ._penalties import LOG_COSH_BIG, PENALTY_TABLE
from ._spec import LossSpec

__all__ = ["Ops", "ArgNames", "Prepared", "Whitening", "evaluate", "normalizer", "normalizer_shape", "EPS",
           "LOG_2PI_HALF", "LOG_COSH_BIG", "safe_div", "safe_sqrt", "units_of", "check_trailing"]

Array = Any
Shape = tuple[int, ...]
LOG_2PI_HALF = 0.5 * math.log(2.0 * math.pi)


#: Every penalty parameter's name (``delta``, ``beta``, ``tau``).
_PARAM_NAMES = tuple(sorted({q.name for pen in PENALTY_TABLE.values() for q in pen.params}))


class Params:
    """A penalty's parameters: the call's arrays, else the spec's floats (``p.delta``). Plain
    attributes (torch.compile traces reading them)."""

    def __init__(self, spec: LossSpec, arrays: Mapping[str, Array]) -> None:
        for name in _PARAM_NAMES:
            setattr(self, name, arrays[name] if name in arrays else getattr(spec, name))
        self.spec = spec
        self.arrays = dict(arrays)

    def replace(self, **arrays: Array) -> Params:
        """The same parameters with some arrays replaced."""
        return Params(self.spec, {**self.arrays, **arrays})


def params_of(prep: Prepared) -> Any:
    """What the penalty functions read their parameters from."""
    return Params(prep.spec, prep.params) if prep.params else prep.spec


# ---------------------------------------------------------------------------------------
# Helpers every stage (and every fast path) uses
# ---------------------------------------------------------------------------------------


def count_true(ops: Ops, x: Array, like: Array, axes: tuple[int, ...] | None = None) -> Array:
    """The number of True entries of the boolean ``x`` over ``axes``, in ``like``'s dtype."""
    return ops.sum(x, axes, dtype=ops.dtype(like))


def to_float(ops: Ops, x: Array, like: Array) -> Array:
    return ops.asarray(x, dtype=ops.dtype(like))


def safe_div(ops: Ops, num: Array, den: Array | float) -> Array:
    """num / den, and 0 (with a zero gradient) where den == 0: an all-zero normalizer. A NaN
    or inf in ``num`` still propagates there (``num * 0``): the guard never makes a number
    of a NaN."""
    if isinstance(den, (int, float)):
        return num / den if den else num * 0.0
    zero = den == 0
    return ops.where(zero, num * 0.0, num / ops.where(zero, 1.0, den))


def nonzero(ops: Ops, den: Array) -> Array:
    """``den`` with its zeros replaced by 1: the denominator of a ratio whose numerator vanishes
    (or is NaN) wherever ``den`` does, e.g. sum(w m l) over sum(w m) computed from the same
    w m (a fused kernel's). Dividing by it is :func:`safe_div` there, in two operations."""
    return ops.where(den == 0, 1.0, den)


def safe_sqrt(ops: Ops, x: Array) -> Array:
    """sqrt(x) with derivative 0 (not inf or NaN) at x = 0, 0 for x < 0 (a quadratic form's
    per-output term may be negative); NaN stays NaN (``x * 0``)."""
    pos = x > 0
    return ops.where(pos, ops.sqrt(ops.where(pos, x, 1.0)), x * 0.0)


def validity(ops: Ops, prep: Prepared) -> Array | None:
    """The boolean mask of the units that count: the mask and the present targets."""
    valid = None if prep.mask is None else ops.broadcast_to(prep.mask, prep.shape)
    if prep.spec.missing == "nan":
        present = prep.target == prep.target  # False exactly where the target is NaN
        valid = present if valid is None else valid & present
    return valid


def element_weight(ops: Ops, prep: Prepared) -> Array | None:
    """``weight`` times ``sample_weight`` aligned with the leading axes (the element weight
    without the per-sample stage)."""
    w = prep.weight
    if prep.sample_weight is not None:
        lead = leading_shape(prep.names.sample_weight, ops.shape(prep.sample_weight), prep.shape, prep.names.pred)
        sw = ops.reshape(prep.sample_weight, lead)
        w = sw if w is None else w * sw
    return w



def reduction_normalizer(reduction: str, weighted: bool, masked: bool) -> str | None:
    """Which normalizer a reduction divides by (the fused paths' recipe; the pipeline
    reads the same choice off the arrays it has): ``None`` (``none``, ``sum``), ``"weights"``
    (sum(w m): ``mean``, ``per_sample`` and ``per_output`` with weights), ``"valid"`` (the
    number of valid units) or ``"count"`` (the number of units)."""
    if reduction in ("none", "sum"):
        return None
    if weighted and reduction != "sum_over_batch_size":
        return "weights"
    return "valid" if masked else "count"


# ---------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------


class _Units(NamedTuple):
    """Penalised units with their weight and validity, ready to reduce."""

    loss: Array  # l, the units' shape
    weight: Array | None  # w, broadcastable to the units' shape (None: all ones)
    valid: Array | None  # m, boolean, the units' shape (None: all valid)
    shape: Shape


def penalty(ops: Ops, prep: Prepared, r: Array) -> Array:
    """rho(r), elementwise: the penalty table's value."""
    return ops.penalty(PENALTY_TABLE[prep.spec.penalty], r, params_of(prep))


def evaluate(ops: Ops, prep: Prepared) -> Array:
    """Run the pipeline on a prepared call."""
    spec = prep.spec
    units, valid = units_of(ops, prep)
    if spec.per_output_stats:
        return _per_output(ops, spec, units, prep.target, valid, prep.names, prep)
    out = _reduce(ops, spec.reduction, units, prep)
    if spec.finalize == "sqrt":
        out = safe_sqrt(ops, out)
    return out


def units_of(ops: Ops, prep: Prepared) -> tuple[_Units, Array | None]:
    """The pipeline up to the reduction: the penalised units with their weight and validity,
    and the elements' validity (the diagnostics read a loss' units from here)."""
    spec, shape = prep.spec, prep.shape
    pred = prep.pred
    valid = validity(ops, prep)
    if valid is not None and spec.transform == "whiten":
        valid = _whole_samples(ops, valid, shape, pred)

    r = pred - prep.target
    if valid is not None:
        r = ops.where(valid, r, 0.0)
    if spec.transform is None and spec.penalty != "gaussian_nll":
        elem = penalty(ops, prep, r)
    else:
        elem = _structured_penalty(ops, prep, r, valid)
    if spec.unit_norm and not spec.event_units:
        elem = elem + ops.reshape(_unit_norm(ops, spec, pred, shape), shape[:-1] + (1,))

    if spec.event_units:
        units = _event_units(ops, prep, elem, valid)
        if spec.unit_norm:
            units = units._replace(loss=units.loss + _unit_norm(ops, spec, pred, shape))
    elif spec.per_sample:
        units = _per_sample_stage(ops, prep, elem, valid)
    else:
        units = _Units(elem, element_weight(ops, prep), valid, shape)
    return units, valid


# ---------------------------------------------------------------------------------------
# The normalizer (docs/design.md, "Scale-out")
# ---------------------------------------------------------------------------------------


def normalizer_shape(spec: LossSpec, shape: Shape) -> Shape | None:
    """The shape of ``spec``'s normalizer for a prediction of ``shape``: ``()`` for the
    scalar reductions (``mean``, ``sum_over_batch_size``), ``(d,)`` for the per-output ones;
    None where the reduction divides by none that sums over a batch's parts (``none``,
    ``sum``, ``per_sample``)."""
    if spec.per_output_stats:
        ushape = shape[:-1] if (spec.per_sample or spec.event_units) else shape
        return (ushape[-1] if len(ushape) > 1 else 1,)
    if spec.reduction in ("mean", "sum_over_batch_size"):
        return ()
    return None


def normalizer(ops: Ops, prep: Prepared) -> Array:
    """The denominator ``spec``'s reduction divides this batch's sum by, by the contract's
    rules: sum(w m) (the broadcast weights times the validity) for ``mean``, the number of
    valid units for ``sum_over_batch_size``, one per output for the per-output reductions.
    It does not depend on the predictions (``prep.pred`` may be the targets). Summed over a
    window's micro-batches (and over replicas) and passed back as ``normalizer=``, each
    micro-batch's loss is its share of the window's: the shares sum to the window's loss."""
    spec, shape = prep.spec, prep.shape
    valid = validity(ops, prep)
    if valid is not None and spec.transform == "whiten":
        valid = _whole_samples(ops, valid, shape, prep.pred)
    if not (spec.event_units or spec.per_sample or spec.per_output_stats):
        # elementwise units: sum(w m) or the valid count, read from the weights and the mask
        # alone (no loss-shaped array is formed: this runs beside a fused kernel)
        w = element_weight(ops, prep)
        if spec.reduction == "sum_over_batch_size" or w is None:
            n = ops.count(prep.pred) if valid is None else count_true(ops, valid, prep.pred)
        else:
            wb = ops.broadcast_to(w, shape)
            n = ops.sum(wb if valid is None else ops.where(valid, wb, 0.0))
        return ops.constant(np.asarray(float(n)), prep.pred) if isinstance(n, (int, float)) else n
    zero = prep.pred * 0.0
    if valid is not None:
        zero = ops.where(valid, zero, 0.0)
    if spec.event_units:
        units = _event_units(ops, prep, zero, valid)
    elif spec.per_sample:
        units = _per_sample_stage(ops, prep, zero, valid)
    else:
        units = _Units(zero, element_weight(ops, prep), valid, shape)
    _, wm = _weight_and_mask(ops, units)
    if spec.per_output_stats:
        oshape = units.shape if len(units.shape) > 1 else (units.shape[0], 1)
        axes = tuple(range(len(oshape) - 1))
        like = ops.sum(_as_outputs(ops, units.loss, units.shape), axes)
        if wm is None:
            return as_array(ops, ops.count(_as_outputs(ops, units.loss, units.shape), axes), like)
        return ops.sum(_as_outputs(ops, wm, units.shape), axes)
    return as_array(ops, _scalar_normalizer(ops, spec.reduction, units, wm), ops.sum(units.loss))


def _whole_samples(ops: Ops, valid: Array, shape: Shape, like: Array) -> Array:
    """A sample is valid when all its outputs are (the eager check rejects partly observed
    samples; under tracing they are dropped)."""
    rows = count_true(ops, valid, like, (len(shape) - 1,)) == float(shape[-1])
    return ops.broadcast_to(ops.reshape(rows, shape[:-1] + (1,)), shape)


def _structured_penalty(ops: Ops, prep: Prepared, r: Array, valid: Array | None) -> Array:
    """The elementwise loss with a transform and/or the Gaussian NLL."""
    spec, w = prep.spec, prep.whitening
    if spec.transform == "precision":
        assert w is not None
        return r * ops.matvec(w.matrix, r)  # sum over the last axis: r^T P r
    z = r
    if spec.transform == "whiten":
        assert w is not None
        z = ops.solve_tril(w.matrix, r) if w.kind == "solve" else ops.matvec(w.matrix, r)
    if spec.penalty != "gaussian_nll":
        return penalty(ops, prep, z)
    if spec.transform is None:  # heteroscedastic: 0.5 (log v + r^2 / v), v = max(var, eps)
        var = prep.var
        if isinstance(var, (int, float)):
            v = max(float(var), spec.eps)
            elem = 0.5 * (math.log(v) + (z * z) / v)
        else:
            vs = tuple(ops.shape(var))
            want = var_shape(vs, prep.shape, prep.names)
            vv = ops.clamp_min_nograd(var if want == vs else ops.reshape(var, want), spec.eps)
            if valid is not None:  # a masked element's variance never leaks (NaN, 0)
                vv = ops.where(valid, vv, 1.0)
            elem = 0.5 * (ops.log(vv) + (z * z) / vv)
    else:  # multivariate: 0.5 |z|^2 + sum_j log L_jj, per element before the event sum
        assert w is not None
        elem = 0.5 * (z * z) + log_scale_diag(ops, w)
    if spec.full:
        elem = elem + LOG_2PI_HALF
    return elem


def log_scale_diag(ops: Ops, w: Whitening) -> Array:
    """log L_jj, ``(..., d)``: given, or read off the factor (L, or L^-1 whose diagonal is
    1 / L_jj)."""
    if w.log_diag is not None:
        return w.log_diag
    d = ops.shape(w.matrix)[-1]
    diag = ops.sum(w.matrix * ops.constant(np.eye(d), w.matrix), (len(ops.shape(w.matrix)) - 1,))
    return ops.log(diag) if w.kind == "solve" else -ops.log(diag)



def _unit_norm(ops: Ops, spec: LossSpec, pred: Array, shape: Shape) -> Array:
    """lambda * (|pred|^2 - 1)^2 over the last axis, shape ``shape[:-1]``."""
    dev = ops.sum(pred * pred, (len(shape) - 1,)) - 1.0
    return spec.unit_norm * (dev * dev)


def _event_units(ops: Ops, prep: Prepared, elem: Array, valid: Array | None) -> _Units:
    """The multivariate Gaussian NLL's unit, a sample: the last axis is summed (masks and
    weights act on whole samples)."""
    shape, names = prep.shape, prep.names
    ushape = shape[:-1]
    last = (len(shape) - 1,)
    loss = ops.sum(elem if valid is None else ops.where(valid, elem, 0.0), last)
    uvalid = None if valid is None else count_true(ops, valid, elem, last) > 0
    w = None
    if prep.weight is not None:
        wshape = tuple(ops.shape(prep.weight))
        w = ops.reshape(prep.weight, wshape[:-1]) if wshape else prep.weight
    if prep.sample_weight is not None:
        sws = tuple(ops.shape(prep.sample_weight))
        if len(sws) == len(shape) and shape:
            if sws[-1] != 1:
                raise ValueError(msg.event_sample_weight(names.sample_weight, sws))
            sws = sws[:-1]
        sw = ops.reshape(prep.sample_weight, leading_shape(names.sample_weight, sws, ushape, "the per-sample loss"))
        w = sw if w is None else w * sw
    return _Units(loss, w, uvalid, ushape)


def _per_sample_stage(ops: Ops, prep: Prepared, elem: Array, valid: Array | None) -> _Units:
    """Keras' unit: l_s = sum_j(w_sj m_sj l_sj) / sum_j(m_sj) over the last axis."""
    shape, names = prep.shape, prep.names
    ushape = shape[:-1]
    w_in = prep.weight
    sw_unit = None
    sample_weight = prep.sample_weight
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
            sw_unit = ops.reshape(sample_weight, leading_shape(names.sample_weight, sws, ushape,
                                                               "the per-sample loss"))
    num = elem if w_in is None else ops.broadcast_to(w_in, shape) * elem
    last = (len(shape) - 1,)
    num = ops.sum(num, last)
    if valid is None:
        per = safe_div(ops, num, ops.count(elem, last))
        uvalid = None
        if shape[-1] == 0:
            uvalid = ops.broadcast_to(num != num, ushape)  # all False (num is 0 there)
    else:
        count = count_true(ops, valid, elem, last)
        per = safe_div(ops, num, count)
        uvalid = count > 0
    return _Units(per, sw_unit, uvalid, ushape)


def _weight_and_mask(ops: Ops, u: _Units) -> tuple[Array | None, Array | None]:
    """(w*l with masked units exactly 0, w*m broadcast to the units' shape) or Nones."""
    if u.weight is None and u.valid is None:
        return None, None
    if u.weight is None:
        return ops.where(u.valid, u.loss, 0.0), to_float(ops, u.valid, u.loss)
    w = ops.broadcast_to(u.weight, u.shape)
    if u.valid is not None:
        w = ops.where(u.valid, w, 0.0)
    return w * u.loss, w


def _normalizer(ops: Ops, u: _Units, wm: Array | None, axes: tuple[int, ...] | None = None) -> Array | float:
    """sum(w * m) over ``axes``: a count without weights (of the valid units, if masked)."""
    if wm is None:
        return ops.count(u.loss, axes)
    if u.weight is None:
        return count_true(ops, u.valid, u.loss, axes)
    return ops.sum(wm, axes)


def _reduce(ops: Ops, reduction: str, u: _Units, prep: Prepared | None = None) -> Array:
    wl, wm = _weight_and_mask(ops, u)
    if wl is None:
        wl = u.loss
    if reduction == "none":
        return wl
    if reduction == "per_sample":
        axes = tuple(range(1, len(u.shape)))
        return safe_div(ops, ops.sum(wl, axes), _normalizer(ops, u, wm, axes))
    num = ops.sum(wl)
    if reduction == "sum":
        if prep is not None and prep.allreduce is not None:
            (num,) = prep.allreduce((num,))
        return num
    if prep is not None and prep.normalizer is not None:
        den: Array | float = prep.normalizer
        if prep.allreduce is not None:
            (num,) = prep.allreduce((num,))
        return safe_div(ops, num, den)
    den = _scalar_normalizer(ops, reduction, u, wm)
    if prep is not None and prep.allreduce is not None:
        num, den = prep.allreduce((num, as_array(ops, den, num)))
    return safe_div(ops, num, den)


def _scalar_normalizer(ops: Ops, reduction: str, u: _Units, wm: Array | None) -> Array | float:
    """The denominator of ``mean`` (sum(w m)) or ``sum_over_batch_size`` (the valid units)."""
    if reduction == "mean":
        return _normalizer(ops, u, wm)
    assert reduction == "sum_over_batch_size", reduction
    return ops.count(u.loss) if u.valid is None else count_true(ops, u.valid, u.loss)


def as_array(ops: Ops, x: Array | float, like: Array) -> Array:
    """A Python number (a static count) as an array of ``like``'s dtype and device."""
    if isinstance(x, (int, float)):
        return ops.constant(np.full(tuple(ops.shape(like)), float(x)), like)
    return x


def _as_outputs(ops: Ops, x: Array | None, shape: Shape) -> Array | None:
    """View a units array as (..., d): a 1-D array is one output column (scikit-learn)."""
    if x is None or len(shape) != 1:
        return x
    return ops.reshape(x, (shape[0], 1))


def _per_output(ops: Ops, spec: LossSpec, u: _Units, target: Array, valid: Array | None,
                names: ArgNames, prep: Prepared | None = None) -> Array:
    """reduction 'per_output', or 'mean' with a scikit-learn multioutput: per-output weighted
    means, the finalizer per output, then the outputs combined."""
    wl, wm = _weight_and_mask(ops, u)
    if wl is None:
        wl = u.loss
    oshape = u.shape if len(u.shape) > 1 else (u.shape[0], 1)
    d = oshape[-1]
    axes = tuple(range(len(oshape) - 1))
    wl = _as_outputs(ops, wl, u.shape)
    num = ops.sum(wl, axes)
    if wm is None:
        den: Array | float = ops.count(wl, axes)
        wm_o = None
    else:
        wm_o = _as_outputs(ops, wm, u.shape)
        den = ops.sum(wm_o, axes)
    reduce = None if prep is None else prep.allreduce
    if prep is not None and prep.normalizer is not None:
        den = prep.normalizer

    f = spec.finalize
    sst = sq = None
    if f in ("nmse", "r2"):
        y = _as_outputs(ops, target if valid is None else ops.where(valid, target, 0.0), u.shape)
        assert y is not None
        sy = ops.sum(y if wm_o is None else wm_o * y, axes)
        if reduce is not None:  # the global weighted mean first: SST is centred on it, exactly
            den, sy = reduce((as_array(ops, den, num), sy))
        dev = y - safe_div(ops, sy, den)
        if wm_o is None:
            sst = ops.sum(dev * dev, axes)
            sq = ops.sum(y * y, axes)
        else:
            sst = ops.sum(wm_o * (dev * dev), axes)
            sq = ops.sum(wm_o * (y * y), axes)
        if reduce is not None:
            num, sst, sq = reduce((num, sst, sq))
    elif reduce is not None:
        if prep is not None and prep.normalizer is not None:
            (num,) = reduce((num,))
        else:
            num, den = reduce((num, as_array(ops, den, num)))
    dtype = str(ops.dtype(num))
    return finish_outputs(ops, spec, num, den, sst, sq, d, dtype, tuple(u.shape))


#: What a ratio over a total weight of 0 is: ``"zero"``, the losses' training convention (0
#: with a zero gradient: an all-masked batch trains on nothing), or ``"nan"``, a metric's
#: report (undefined: NaN, with an :class:`~mse_adapters.UndefinedMetricWarning` when the value
#: is concrete). Decided once per caller: the losses take the default, the streaming metrics'
#: ``result`` (and through it the NumPy metric functions) ``"nan"``.
UNDEFINED = ("zero", "nan")


def finish_outputs(ops: Ops, spec: LossSpec, num: Array, den: Array | float, sst: Array | None,
                   sq: Array | None, d: int, dtype: str, shape: Shape, undefined: str = "zero") -> Array:
    """Per-output statistics to the value: ``num`` = sum(w m l) and ``den`` = sum(w m) per
    output, and for NMSE and R^2 the centred ``sst`` = sum(w m (y - ybar)**2) and ``sq`` =
    sum(w m y**2) (which judges a constant target); the finalizer per output, then the
    outputs combined by ``multioutput``. Shared by the loss and the streaming metrics
    (``dtype``: the compute dtype, whose rounding defines a constant target; ``undefined``:
    an output with ``den`` = 0 is 0 (``"zero"``) or NaN (``"nan"``, see :data:`UNDEFINED`),
    and with ``"nan"`` the averages over the outputs take the defined ones)."""
    f = spec.finalize
    if f in ("nmse", "r2"):
        assert sst is not None and sq is not None
        # A constant target (SST = 0): "constant" is judged relative to the rounding of the
        # weighted mean (a single observed target gives y - ybar of one ulp, not 0).
        zero = sst <= sq * (4.0 * EPS[dtype]) ** 2
        if spec.force_finite:  # scikit-learn: R^2 = 1 if fitted exactly, else 0
            hit = ops.where(num == 0, num * 0.0, num * 0.0 + 1.0)  # NaN stays NaN
            per = ops.where(zero, hit, num / ops.where(zero, 1.0, sst))
        else:  # the raw ratio: inf (R^2 = -inf) or NaN
            per = num / ops.where(zero, sst * 0.0, sst)
    else:
        per = safe_div(ops, num, den)
        if f == "sqrt":
            per = safe_sqrt(ops, per)

    mo = spec.multioutput
    if undefined == "nan":
        per, defined = mark_undefined(ops, spec, per, as_array(ops, den, num), True)
        out = per if spec.reduction == "per_output" or mo == "raw_values" else \
            _defined_average(ops, mo, per, sst, defined, shape)
    elif spec.reduction == "per_output" or mo == "raw_values":
        out = per
    elif mo == "uniform_average":
        out = ops.sum(per) / float(d) if d else ops.sum(per) * 0.0
    elif mo == "variance_weighted":
        assert sst is not None
        tot = ops.sum(sst)
        uniform = ops.sum(per) / float(d) if d else ops.sum(per) * 0.0
        out = ops.where(tot > 0, ops.sum(sst * per) / ops.where(tot > 0, tot, 1.0), uniform)
    else:
        out = ops.sum(per * ops.constant(_output_weights(mo, shape, d), per))
    if f == "r2":
        out = 1.0 - out
    return out


def _output_weights(mo: object, shape: Shape, d: int) -> list[float]:
    """A multioutput tuple as weights that sum to 1 (or the error of a wrong length)."""
    assert isinstance(mo, tuple)
    if len(mo) != d:
        raise ValueError(msg.multioutput_count(len(mo), shape, d))
    return [v / sum(mo) for v in mo]


def mark_undefined(ops: Ops, spec: LossSpec, value: Array, den: Array, per_output: bool) -> tuple[Array, Array]:
    """A metric's ``value`` with NaN where its total weight ``den`` is 0 (and an
    :class:`~mse_adapters.UndefinedMetricWarning` naming those outputs, when ``den`` is
    concrete: under ``jit`` / ``tf.function`` / ``torch.compile`` no warning is possible),
    and the mask of the defined entries."""
    defined = den != 0
    if not ops.is_abstract(den):
        host = np.reshape(ops.to_host(den), (-1,))
        missing = [int(i) for i in np.flatnonzero(host == 0)]
        if missing:
            warnings.warn(msg.undefined_metric(f"the metric of {spec!r}", missing, host.size, per_output),
                          msg.UndefinedMetricWarning, stacklevel=_user_level())
    return ops.where(defined, value, math.nan), defined


def _user_level() -> int:
    """The ``stacklevel`` of a warning raised by this module's caller's caller that points at
    the first frame outside this package and the frameworks' metric machinery."""
    frame: types.FrameType | None = sys._getframe(2)
    level = 2
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] in _INSIDE:
        frame, level = frame.f_back, level + 1
    return level


_INSIDE = frozenset({"mse_adapters", "torchmetrics", "keras", "torch"})


def _defined_average(ops: Ops, mo: object, per: Array, sst: Array | None, defined: Array, shape: Shape) -> Array:
    """``multioutput``'s average of the defined outputs only (NaN when none is defined)."""
    on = to_float(ops, defined, per)
    z = ops.where(defined, per, 0.0)
    if mo == "uniform_average":
        return ops.sum(z) / ops.sum(on)
    if mo == "variance_weighted":
        assert sst is not None
        v = ops.where(defined, sst, 0.0)
        tot = ops.sum(v)
        weighted = ops.sum(v * z) / ops.where(tot > 0, tot, 1.0)
        return ops.where(tot > 0, weighted, ops.sum(z) / ops.sum(on))
    w = ops.constant(_output_weights(mo, shape, int(ops.shape(per)[0])), per) * on
    return ops.sum(w * z) / ops.sum(w)
