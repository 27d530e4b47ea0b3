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

import contextlib
import math
from abc import ABC, abstractmethod
from typing import Any, NamedTuple

from . import _whiten
from ._spec import LossSpec
from ._whiten import Whitening

__all__ = ["ArgNames", "Ops", "Whitening", "evaluate", "check_same_shape", "LOG2"]

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
        return float(math.prod(shape if axes is None else [shape[a] for a in axes]))

    def count_true(self, x: Array, like: Array, axis: tuple[int, ...] | None = None) -> Array:
        """The number of True entries of the boolean ``x`` over ``axis`` (all axes when None),
        as ``like``'s floating dtype: the normaliser of masked means. A backend may count
        without materialising ``x`` converted to that dtype."""
        return self.sum(self.to_float(x, like), axis)

    @abstractmethod
    def constant(self, values: list[float], like: Array) -> Array:
        """A 1-D array of ``values`` with ``like``'s dtype (and device)."""

    def finite_and_nonnegative(self, x: Array) -> tuple[bool, bool]:
        """(every element of ``x`` is finite, every element is >= 0): the eager weight
        checks. A backend may answer both from one pass and one host sync."""
        return self.all(self.isfinite(x)), self.all(x >= 0)

    def concrete(self) -> contextlib.AbstractContextManager[Any]:
        """The context of the eager value checks of arrays that are not traced. JAX stages
        every operation inside ``jax.jit``, even on a constant array (a weight closed over):
        its backends evaluate the checks of such constants at trace time instead of failing
        to convert a tracer to a bool."""
        return contextlib.nullcontext()

    # -- optional: the transform stage and the Gaussian likelihoods (DESIGN §4) ----------
    # Not abstract, so that a backend without them keeps working for every other spec.

    def _missing(self, what: str, needed_by: str) -> NotImplementedError:
        return NotImplementedError(f"the {self.name} backend does not implement Ops.{what} (needed by {needed_by})")

    def matvec(self, m: Array, x: Array) -> Array:
        """``m @ x`` for a matrix (or a batch of them) ``(..., d, d)`` and vectors on the last
        axis of ``x`` ``(..., d)``; batch axes broadcast, aligned from the right."""
        raise self._missing("matvec", "transform='whiten' and transform='precision'")

    def solve_tril(self, lower: Array, x: Array) -> Array:
        """z with ``lower @ z = x`` for a lower-triangular ``(..., d, d)`` (its strict upper
        triangle is ignored) and vectors on the last axis of ``x``; differentiable in both."""
        raise self._missing("solve_tril", "transform='whiten' with a trainable scale_tril")

    def log(self, x: Array) -> Array:
        raise self._missing("log", "penalty='gaussian_nll'")

    def diagonal(self, m: Array) -> Array:
        """The diagonals of ``(..., d, d)``, shape ``(..., d)``."""
        raise self._missing("diagonal", "penalty='gaussian_nll' with transform='whiten'")

    def clamp_min_nograd(self, x: Array, lo: float) -> Array:
        """max(x, lo) whose derivative is that of the identity: torch.nn.GaussianNLLLoss clamps
        its variance in place under ``no_grad``, so the gradient passes through the clamp."""
        raise self._missing("clamp_min_nograd", "penalty='gaussian_nll'")


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


#: Taylor coefficients of log cosh(r) in powers of r**2: 2^2n (2^2n - 1) B_2n / (2n (2n)!),
#: n = 1..12 (B_2n the Bernoulli numbers); truncated below 0.3 the error is < 1e-17.
_LOG_COSH_SERIES = (
    1 / 2, -1 / 12, 1 / 45, -17 / 2520, 31 / 14175, -691 / 935550, 10922 / 42567525,
    -929569 / 10216206000, 3202291 / 97692469875, -221930581 / 18561569276250,
    9444233042 / 2143861251406875, -56963745931 / 34806217964017500,
)
_LOG_COSH_SMALL = 0.3


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
        # r + softplus(-2 r) - log 2 cancels for small |r| (an O(r**2) result from O(1)
        # terms: a relative error ~eps / r**2, 5e-11 at r = 1e-3 in float64, ~10% in
        # float32); there the Taylor series in r**2 is used (accurate to ~1e-15 below 0.3).
        sq = r * r
        small = sq < _LOG_COSH_SMALL * _LOG_COSH_SMALL
        x2 = ops.where(small, sq, 0.0)  # the unused branch stays finite (no inf * 0 gradient)
        series: Array = _LOG_COSH_SERIES[-1]
        for c in reversed(_LOG_COSH_SERIES[:-1]):
            series = series * x2 + c
        return ops.where(small, series * x2, r + ops.softplus(-2.0 * r) - LOG2)
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
    if not shape and spec.unit_norm:
        raise ValueError(f"{names.pred} is a scalar: unit_norm penalises the norm of its last axis")
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
    whitening: Whitening | None = None,
    var: Array | float | None = None,
) -> Array:
    """Run the whole pipeline. Inputs are already arrays of the compute dtype (``mask`` a
    boolean array); shapes are validated here, values by the backend. ``whitening`` is the
    transform stage prepared by the backend; ``var`` the predicted variance of the
    heteroscedastic Gaussian NLL."""
    shape = check_shapes(ops, spec, pred, target, weight, mask, names)
    # validity: the mask and the missing targets
    valid = None
    if mask is not None:
        valid = ops.broadcast_to(mask, shape)
    if spec.missing == "nan":
        present = ~ops.isnan(target)
        valid = present if valid is None else ops.logical_and(valid, present)
    if valid is not None and spec.transform == "whiten":
        valid = _whole_samples(ops, valid, shape, pred)

    r = pred - target
    if valid is not None:
        r = ops.where(valid, r, 0.0)
    if spec.transform is None and spec.penalty != "gaussian_nll":
        elem = penalty(ops, spec, r)
    else:
        elem = _structured_penalty(ops, spec, r, whitening, var, valid, shape, names)
    if spec.unit_norm and not spec.event_units:
        elem = elem + ops.reshape(_unit_norm(ops, spec, pred, shape), shape[:-1] + (1,))

    if spec.event_units:
        units = _event_units(ops, elem, weight, sample_weight, valid, shape, names)
        if spec.unit_norm:
            units = units._replace(loss=units.loss + _unit_norm(ops, spec, pred, shape))
    elif spec.per_sample:
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


# ---------------------------------------------------------------------------------------
# The transform stage, the Gaussian likelihoods and the unit-norm penalty (DESIGN §4)
# ---------------------------------------------------------------------------------------


def var_shape(vshape: Shape, pred_shape: Shape, names: ArgNames) -> Shape:
    """torch.nn.GaussianNLLLoss' accepted variance shapes: ``pred``'s shape; ``pred``'s shape
    without its last axis (one variance per sample: a trailing 1 is added); or ``pred``'s
    number of axes with exactly one mismatched axis, of size 1 in ``var``."""
    vshape, pred_shape = tuple(vshape), tuple(pred_shape)
    if vshape == pred_shape:
        return vshape
    if pred_shape and vshape == pred_shape[:-1]:
        return vshape + (1,)
    if len(vshape) == len(pred_shape) and sum(v for p, v in zip(pred_shape, vshape) if p != v) == 1:
        return vshape
    raise ValueError(
        f"var of shape {vshape} is of incorrect size for {names.pred} of shape {pred_shape}: it "
        f"must have {names.pred}'s shape, {names.pred}'s shape without its last axis, or "
        f"{names.pred}'s shape with exactly one axis of size 1 (torch.nn.GaussianNLLLoss' rule)"
    )


def check_structured(
    ops: Ops,
    spec: LossSpec,
    shape: Shape,
    weight: Array | None,
    whitening: Whitening | None,
    var: Array | float | None,
    names: ArgNames,
) -> None:
    """Shape and consistency checks of the transform stage and of ``var`` (pure Python)."""
    if whitening is None:
        _whiten.resolve_spec(spec, None)  # raises when the spec needs a matrix
    else:
        if spec.transform is None:
            raise ValueError(f"{whitening.name} was given but the spec has transform=None")
        if (whitening.kind == "precision") != (spec.transform == "precision"):
            raise ValueError(
                f"{whitening.name} was given but the spec has transform={spec.transform!r}"
            )
        _whiten.check_matrix_shape(whitening.name, ops.shape(whitening.matrix), shape, names.pred)
        if weight is not None and (spec.transform == "precision" or spec.event_units):
            wshape = tuple(ops.shape(weight))
            if wshape and wshape[-1] != 1 and shape and shape[-1] != 1:
                what = ("transform='precision' (the quadratic form r^T P r)" if spec.transform == "precision"
                        else "the multivariate Gaussian NLL")
                raise ValueError(
                    f"{names.weight} of shape {wshape} varies along the last axis, which {what} "
                    f"mixes: weight whole samples instead ({names.sample_weight}, or a "
                    f"{names.weight} whose last axis is 1)"
                )
    if spec.penalty == "gaussian_nll" and spec.transform is None:
        if var is None:
            raise ValueError(
                "penalty='gaussian_nll' without a covariance needs var, the predicted variance"
            )
        if not isinstance(var, (int, float)):
            var_shape(ops.shape(var), shape, names)
        elif var < 0:
            raise ValueError(VAR_NEGATIVE)
    elif var is not None:
        raise ValueError(
            "var is the predicted variance of penalty='gaussian_nll' (without a covariance); got "
            f"penalty={spec.penalty!r}, transform={spec.transform!r}"
        )


def check_structured_values(
    ops: Ops,
    spec: LossSpec,
    pred: Array,
    target: Array,
    mask: Array | None,
    var: Array | float | None,
    shape: Shape,
    names: ArgNames,
) -> None:
    """Eager value checks (skipped while tracing): a non-negative ``var``; whole samples
    masked when whitening."""
    if var is not None and not isinstance(var, (int, float)) and not ops.is_tracing(var):
        with ops.concrete():
            if not ops.all(~(var < 0)):
                raise ValueError(VAR_NEGATIVE)
    if spec.transform != "whiten" or not shape or ops.is_tracing(pred):
        return
    nan = spec.missing == "nan"
    if not nan and (mask is None or tuple(ops.shape(mask))[-1:] in ((), (1,))):
        return  # constant along the last axis by its shape
    if (mask is not None and ops.is_tracing(mask)) or (nan and ops.is_tracing(target)):
        return
    with ops.concrete():
        valid = None if mask is None else ops.broadcast_to(mask, shape)
        if nan:
            present = ~ops.isnan(target)
            valid = present if valid is None else ops.logical_and(valid, present)
        count = ops.count_true(valid, pred, (len(shape) - 1,))
        if not ops.all(ops.logical_or(count == 0, count == float(shape[-1]))):
            raise ValueError(partial_sample_message(names, nan, mask is not None))


#: The eager check of ``var`` (and the checkify one of the JAX adapter).
VAR_NEGATIVE = "var must be non-negative; it has negative entry/entries"


def partial_sample_message(names: ArgNames, nan: bool, has_mask: bool) -> str:
    """The error of a partly observed sample when whitening (eager, or a checkify check)."""
    what = names.mask if not nan else (
        f"{names.mask} (and the NaN values of {names.target}, missing='nan')" if has_mask
        else f"the NaN values of {names.target} (missing='nan')")
    return (
        f"{what} must keep or drop whole samples when whitening along the last axis "
        "(covariance or scale_tril): a whitened coordinate mixes every output of its sample, "
        "so a partly observed sample has no whitened residual. Mask whole samples, or use a "
        "precision (cost) matrix, whose quadratic form is exact on the observed outputs"
    )


def _whole_samples(ops: Ops, valid: Array, shape: Shape, like: Array) -> Array:
    """A sample is valid when all its outputs are (the eager check rejects partly observed
    samples; under tracing they are dropped)."""
    count = ops.count_true(valid, like, (len(shape) - 1,))
    rows = count == float(shape[-1])
    return ops.broadcast_to(ops.reshape(rows, shape[:-1] + (1,)), shape)


def _structured_penalty(
    ops: Ops,
    spec: LossSpec,
    r: Array,
    whitening: Whitening | None,
    var: Array | float | None,
    valid: Array | None,
    shape: Shape,
    names: ArgNames,
) -> Array:
    """The elementwise loss with a transform and/or the Gaussian NLL."""
    t = spec.transform
    if t == "precision":
        assert whitening is not None
        return r * ops.matvec(whitening.matrix, r)  # sum over the last axis: r^T P r
    z = r
    if t == "whiten":
        assert whitening is not None
        z = _whiten.whiten(ops, whitening, r)
    if spec.penalty != "gaussian_nll":
        return penalty(ops, spec, z)
    if t is None:  # heteroscedastic: 0.5 (log v + r^2 / v), v = max(var, eps)
        if isinstance(var, (int, float)):
            v = max(float(var), spec.eps)
            elem = 0.5 * (math.log(v) + (z * z) / v)
        else:
            assert var is not None
            vs = tuple(ops.shape(var))
            want = var_shape(vs, shape, names)
            v = ops.clamp_min_nograd(var if want == vs else ops.reshape(var, want), spec.eps)
            if valid is not None:  # a masked element's variance never leaks (NaN, 0)
                v = ops.where(valid, v, 1.0)
            elem = 0.5 * (ops.log(v) + (z * z) / v)
    else:  # multivariate: 0.5 |z|^2 + sum_j log L_jj, per element before the event sum
        assert whitening is not None
        elem = 0.5 * (z * z) + _whiten.log_scale_diag(ops, whitening)
    if spec.full:
        elem = elem + _whiten.LOG_2PI_HALF
    return elem


def _unit_norm(ops: Ops, spec: LossSpec, pred: Array, shape: Shape) -> Array:
    """lambda * (|pred|^2 - 1)^2 over the last axis, shape ``shape[:-1]``."""
    dev = ops.sum(pred * pred, (len(shape) - 1,)) - 1.0
    return spec.unit_norm * (dev * dev)


def _event_units(
    ops: Ops,
    elem: Array,
    weight: Array | None,
    sample_weight: Array | None,
    valid: Array | None,
    shape: Shape,
    names: ArgNames,
) -> _Weighted:
    """The multivariate Gaussian NLL's unit, a sample: the last axis is summed (masks and
    weights act on whole samples)."""
    ushape = shape[:-1]
    last = (len(shape) - 1,)
    loss = ops.sum(elem if valid is None else ops.where(valid, elem, 0.0), last)
    uvalid = None if valid is None else ops.count_true(valid, elem, last) > 0
    w = None
    if weight is not None:
        wshape = tuple(ops.shape(weight))
        w = ops.reshape(weight, wshape[:-1]) if wshape else weight
    if sample_weight is not None:
        sws = tuple(ops.shape(sample_weight))
        if len(sws) == len(shape) and shape:
            if sws[-1] != 1:
                raise ValueError(
                    f"{names.sample_weight} of shape {sws} varies along the last axis, but the "
                    "multivariate Gaussian NLL has one value per sample"
                )
            sws = sws[:-1]
        sw = ops.reshape(sample_weight, leading_shape(names.sample_weight, sws, ushape, "the per-sample loss"))
        w = sw if w is None else w * sw
    return _Weighted(loss, w, uvalid, ushape)


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
        count = ops.count_true(valid, elem, last)
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
        return safe_div(ops, ops.sum(wl), _normaliser(ops, u, wm))
    if reduction == "sum_over_batch_size":
        den = ops.count(wl) if u.valid is None else ops.count_true(u.valid, u.loss)
        return safe_div(ops, ops.sum(wl), den)
    if reduction == "per_sample":
        axes = tuple(range(1, len(u.shape)))
        return safe_div(ops, ops.sum(wl, axes), _normaliser(ops, u, wm, axes))
    raise AssertionError(reduction)  # pragma: no cover


def _normaliser(ops: Ops, u: _Weighted, wm: Array | None, axes: tuple[int, ...] | None = None) -> Array | float:
    """sum(w * m) over ``axes``: a count without weights (of the valid units, if masked)."""
    if wm is None:
        return ops.count(u.loss, axes)
    if u.weight is None:
        return ops.count_true(u.valid, u.loss, axes)
    return ops.sum(wm, axes)


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
    with ops.concrete():
        finite, nonnegative = ops.finite_and_nonnegative(w)
    if not finite:
        raise ValueError(f"{name} must be finite; it contains NaN or inf")
    if not nonnegative:
        raise ValueError(f"{name} must be non-negative; it contains negative values")


def mask_to_bool(ops: Ops, name: str, mask: Array, check: bool) -> Array:
    """A boolean mask as is; a numeric one must hold only 0 and 1 (checked eagerly)."""
    if ops.is_bool(mask):
        return mask
    if check and not ops.is_tracing(mask):
        with ops.concrete():
            ok = ops.all(ops.logical_or(mask == 0, mask == 1))
        if not ok:
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
    whitening: Whitening | None = None,
    var: Array | float | None = None,
) -> Array:
    """The checks every backend shares, then :func:`evaluate`. Inputs are arrays already
    converted to the compute dtype by the backend; ``whitening`` (the transform stage, see
    :class:`Whitening`) and ``var`` (the Gaussian NLL's variance) are prepared by it too."""
    shape = check_shapes(ops, spec, pred, target, weight, mask, names)
    structured = whitening is not None or var is not None or spec.transform is not None \
        or spec.penalty == "gaussian_nll"
    if structured:
        check_structured(ops, spec, shape, weight, whitening, var, names)
    if mask is not None:
        mask = mask_to_bool(ops, names.mask, mask, check_values)
    if check_values:
        if weight is not None:
            check_weight_values(ops, names.weight, weight)
        if sample_weight is not None:
            check_weight_values(ops, names.sample_weight, sample_weight)
        if structured:
            check_structured_values(ops, spec, pred, target, mask, var, shape, names)
    if not structured:
        return evaluate(
            ops, spec, pred, target, weight=weight, sample_weight=sample_weight, mask=mask, names=names
        )
    return evaluate(ops, spec, pred, target, weight=weight, sample_weight=sample_weight, mask=mask,
                    names=names, whitening=whitening, var=var)


# ---------------------------------------------------------------------------------------
# Input-type checks every backend shares (no framework is imported to make them).
# ---------------------------------------------------------------------------------------

_FRAMEWORK_OF_MODULE = {"torch": "torch", "jax": "jax", "jaxlib": "jax", "tensorflow": "tensorflow"}


def dtype_error(name: str, dtype: str) -> TypeError:
    """The one message for an array (an input, a weight, a matrix, ``var``) whose dtype no
    loss takes: complex, or not numeric. ``dtype`` as the framework spells it, without its
    module prefix (``complex64``, not ``torch.complex64``)."""
    dtype = str(dtype).removeprefix("torch.")
    if dtype.startswith("complex"):
        return TypeError(f"{name} has complex dtype {dtype}; only real inputs are supported")
    return TypeError(f"{name} has dtype {dtype}; expected a real numeric array")


def check_not_foreign(name: str, x: Any, own: str) -> None:
    """A TypeError if ``x`` is an array of another deep-learning framework than ``own``
    (``"numpy"``, ``"torch"``, ``"jax"``, or a Keras backend's framework). Converting
    silently would copy across devices and cut the gradient."""
    framework = _FRAMEWORK_OF_MODULE.get(type(x).__module__.split(".")[0])
    if framework is not None and framework != own:
        raise TypeError(
            f"{name} is a {framework} array ({type(x).__name__}) but this loss is the {own} "
            f"backend; convert it explicitly (mixing frameworks would copy it and cut the gradient)"
        )


def check_missing_dtype(spec: LossSpec, names: ArgNames, target_is_float: bool, dtype: str) -> None:
    """``missing="nan"`` marks missing targets with NaN, which an integer or boolean target
    cannot hold: that combination is a ValueError rather than a silent no-op."""
    if spec.missing == "nan" and not target_is_float:
        raise ValueError(
            f"missing='nan' marks missing targets with NaN, but {names.target} has dtype {dtype}, "
            "which cannot hold NaN; pass floating-point targets or a mask"
        )
