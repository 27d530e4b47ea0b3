"""Diagnostics and derivative penalties, written once for every backend.

- :func:`bias_variance`: the decomposition of the expected squared error of an ensemble (or
  of bootstrap refits) into the squared bias of its mean prediction and the spread of its
  members, with the contract's weights and masks;
- :func:`contributions`: each sample's share of a reduced loss (the shares add up to the
  loss) and the samples that contribute most;
- :func:`derivative` and :func:`derivative_penalty`: directional derivatives of a model with
  respect to its inputs at given points, by nested forward-mode products (the backend's
  ``jvp``), and a loss on them (a physics-informed constraint such as dE/dV(V0) = 0).

The adapters bind these with :func:`bind` (their ops, the preparation, their default loss,
their ``jvp``);
the arguments are named the same in every backend: ``predictions`` first, then ``target``.
Everything goes through the one preparation path (:mod:`mse_adapters._prepare`):
the same checks, dtypes and error messages as the losses.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from . import _messages as msg
from ._core import ArgNames, Ops, _normalizer, _reduce, _weight_and_mask, count_true, evaluate, safe_div, units_of
from ._ops import Call, Context, Prepared, check_input, compute_dtype
from ._presets import preset
from ._spec import LossSpec

__all__ = ["BiasVariance", "Contributions", "bias_variance", "contributions", "derivative", "bind"]

Array = Any
NAMES = ArgNames(pred="predictions", target="target")
#: A backend's forward-mode product: ``jvp(f, x, v) -> (f(x), f'(x) v)``.
Jvp = Callable[[Callable[[Array], Array], Array, Array], Any]


class BiasVariance(NamedTuple):
    """The decomposition of the expected squared error over K models.

    With p_k the K predictions, pbar their mean and t the target, per unit (element):
    ``bias2 = (pbar - t)**2``, ``variance = mean_k (p_k - pbar)**2`` and
    ``mean_k (p_k - t)**2 = bias2 + variance``; each is reduced as the losses are (weights,
    masks, the reduction). ``expected_mse`` is ``bias2 + variance`` (their sum, exactly); it
    equals the mean over the members of their (weighted) MSE to rounding."""

    bias2: Array
    variance: Array
    expected_mse: Array


class Contributions(NamedTuple):
    """Each sample's share of a reduced loss.

    ``per_sample`` (shape ``(B,)``) adds up to ``loss`` (to rounding): the weighted sum of a
    sample's units divided by the reduction's normalizer (a masked sample contributes 0).
    ``top_indices`` / ``top_values``: the ``k`` largest shares, largest first (NumPy
    arrays, computed on the host; None when ``k`` is None, so that the call can be traced)."""

    per_sample: Array
    loss: Array
    top_indices: np.ndarray | None
    top_values: np.ndarray | None


def _quiet(f: Callable[..., Any]) -> Callable[..., Any]:
    """NumPy's warnings off (NaN and inf propagate by the contract, as in the losses)."""

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            return f(*args, **kwargs)

    return wrapped


#: The preparation (:func:`mse_adapters._prepare.prepare`), given by the adapter that binds
#: the diagnostics (:func:`bind`): the diagnostics sit beside the preparation, not above it.
Prepare = Callable[[LossSpec, Call, Context], Prepared]


@_quiet
def bias_variance(prepare: Prepare, spec: LossSpec, call: Call, ctx: Context) -> BiasVariance:
    """See :class:`BiasVariance`. ``call.pred``: the stacked predictions ``(K, *target.shape)``;
    its ``weight``, ``sample_weight`` and ``mask`` are those of the target (every member is
    weighted alike)."""
    ops = ctx.ops
    check_input(ops, NAMES.pred, call.pred)
    check_input(ops, NAMES.target, call.target)
    p = ops.asarray(call.pred)
    t = ops.asarray(call.target, like=p)
    pshape, tshape = tuple(ops.shape(p)), tuple(ops.shape(t))
    if not pshape or pshape[1:] != tshape:
        raise ValueError(msg.stacked_shape(pshape, tshape))
    if pshape[0] == 0:
        raise ValueError(msg.no_members(pshape))
    dt = ctx.dtype or compute_dtype(ops, p, t)
    p = ops.asarray(p, dtype=dt)
    k = float(pshape[0])
    pbar = ops.sum(p, (0,)) / k
    prep = prepare(spec, call._replace(pred=pbar, target=t), ctx._replace(dtype=dt))
    bias2 = evaluate(ops, prep)
    units, valid = units_of(ops, prep)
    dev = p - pbar
    if valid is not None:  # a select: a masked member's NaN never reaches the value or the gradient
        dev = ops.where(valid, dev, 0.0)
    spread = ops.sum(dev * dev, (0,)) / k
    variance = _reduce(ops, spec.reduction, units._replace(loss=spread))
    return BiasVariance(bias2, variance, bias2 + variance)


def _additive(spec: LossSpec) -> None:
    if spec.finalize != "identity" or spec.per_output_stats or spec.reduction not in ("mean", "sum",
                                                                                      "sum_over_batch_size"):
        what = f"reduction={spec.reduction!r}" if spec.finalize == "identity" else f"finalize={spec.finalize!r}"
        raise ValueError(msg.not_additive(what))


@_quiet
def contributions(prepare: Prepare, spec: LossSpec, call: Call, ctx: Context, k: int | None = None) -> Contributions:
    """See :class:`Contributions`. ``spec``: a loss whose reduction is ``mean``, ``sum`` or
    ``sum_over_batch_size`` and which has no finalizer (RMSE, NMSE and R^2 do not split into
    shares)."""
    _additive(spec)
    ops, names = ctx.ops, ctx.names
    prep = prepare(spec, call, ctx)
    units, _ = units_of(ops, prep)
    if not units.shape:
        raise ValueError(msg.contributions_scalar(names.pred))
    wl, wm = _weight_and_mask(ops, units)
    if wl is None:
        wl = units.loss
    num = ops.sum(wl, tuple(range(1, len(units.shape))))
    if spec.reduction == "sum":
        share = num
    elif spec.reduction == "mean":
        share = safe_div(ops, num, _normalizer(ops, units, wm))
    else:
        den = ops.count(wl) if units.valid is None else count_true(ops, units.valid, units.loss)
        share = safe_div(ops, num, den)
    total = _reduce(ops, spec.reduction, units)
    idx = vals = None
    if k is not None:
        host = np.asarray(ops.to_host(share), dtype=np.float64)
        idx = np.argsort(-host, kind="stable")[: int(k)]
        vals = host[idx]
    return Contributions(share, total, idx, vals)


def derivative(jvp: Jvp, ops: Ops, model: Callable[[Array], Array], points: Any, *, order: int = 1,
               direction: Any = None) -> Array:
    """The ``order``-th directional derivative of ``model`` at ``points`` along ``direction``:
    d^n/ds^n model(points + s v) at s = 0, by ``order`` nested forward-mode products.
    ``model`` maps a batch of points to a batch of outputs, each point's output depending on
    that point only (an MLP without batch statistics); ``direction``: one per point or one
    for all (default ones: the ordinary derivative of a scalar input). Differentiable with
    respect to the model's parameters (train through it)."""
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(msg.derivative_order(order))
    check_input(ops, "points", points)
    x = ops.asarray(points)
    x = ops.asarray(x, dtype=ops.float_dtype(x))
    shape = tuple(ops.shape(x))
    if direction is None:
        if math.prod(shape[1:]) > 1:
            raise ValueError(msg.derivative_direction(shape))
        v = x * 0.0 + 1.0
    else:
        check_input(ops, "direction", direction)
        v = x * 0.0 + ops.asarray(direction, dtype=ops.dtype(x), like=x)
    f = model
    for _ in range(order):
        f = _jvp_of(jvp, f, v)
    return f(x)


def _jvp_of(jvp: Jvp, f: Callable[[Array], Array], v: Array) -> Callable[[Array], Array]:
    return lambda y: jvp(f, y, v)[1]


# ---------------------------------------------------------------------------------------
# The adapters' bindings
# ---------------------------------------------------------------------------------------


def bind(ops: Ops, prepare: Prepare, *, dtype: str | None = None, result: Callable[[Any], Any] | None = None,
         jvp: Jvp | None = None, loss: Callable[..., Array] | None = None) -> tuple[Callable[..., Any], ...]:
    """The diagnostics of one backend: ``(bias_variance, contributions)``, and with ``jvp``
    and its default ``loss`` also ``(derivative, derivative_penalty)``. ``dtype``: the
    compute dtype (NumPy's float64); ``result``: how a value is returned (NumPy: a float)."""
    out = result or (lambda x: x)

    def bias_variance_(predictions: Any, target: Any, *, weight: Any = None, sample_weight: Any = None,
                       mask: Any = None, missing: str | None = None, reduction: str = "mean",
                       check_values: bool = True) -> BiasVariance:
        spec = LossSpec(penalty="square", reduction=reduction, missing=missing)
        bv = bias_variance(prepare, spec, Call(predictions, target, weight, sample_weight, mask),
                           Context(ops, NAMES, check_values=check_values, dtype=dtype))
        return BiasVariance(*map(out, bv))

    def contributions_(predictions: Any, target: Any, loss: str | LossSpec = "mse", *, weight: Any = None,
                       sample_weight: Any = None, mask: Any = None, k: int | None = None,
                       check_values: bool = True, **fields: Any) -> Contributions:
        spec = preset(loss, **fields) if isinstance(loss, str) else (loss.replace(**fields) if fields else loss)
        c = contributions(prepare, spec, Call(predictions, target, weight, sample_weight, mask),
                          Context(ops, NAMES, check_values=check_values, dtype=dtype), k)
        return c._replace(per_sample=out(c.per_sample), loss=out(c.loss))

    bias_variance_.__name__ = bias_variance_.__qualname__ = "bias_variance"
    bias_variance_.__doc__ = _BIAS_VARIANCE_DOC
    contributions_.__name__ = contributions_.__qualname__ = "contributions"
    contributions_.__doc__ = _CONTRIBUTIONS_DOC
    if jvp is None:
        return bias_variance_, contributions_
    assert loss is not None

    def derivative_(model: Callable[[Array], Array], points: Any, *, order: int = 1, direction: Any = None) -> Array:
        return derivative(jvp, ops, model, points, order=order, direction=direction)

    def derivative_penalty_(model: Callable[[Array], Array], points: Any, target: Any = None, *, order: int = 1,
                            direction: Any = None, scale: Any = None, loss: Callable[..., Array] | None = None,
                            **loss_kw: Any) -> Array:
        # loss(scale * derivative, target): a penalty on the model's derivatives, with any loss
        # of the backend and its weights, masks and reductions; target zeros by default
        d = derivative(jvp, ops, model, points, order=order, direction=direction)
        if scale is not None:
            d = d * scale
        if target is None:
            target = ops.constant(np.zeros(tuple(ops.shape(d))), d)
        return (loss or default)(d, target, **loss_kw)

    default = loss
    derivative_.__name__ = derivative_.__qualname__ = "derivative"
    derivative_.__doc__ = _DERIVATIVE_DOC
    derivative_penalty_.__name__ = derivative_penalty_.__qualname__ = "derivative_penalty"
    derivative_penalty_.__doc__ = _DERIVATIVE_PENALTY_DOC
    return bias_variance_, contributions_, derivative_, derivative_penalty_


_BIAS_VARIANCE_DOC = """The bias-variance decomposition of K models' squared error.

``predictions`` stacks the predictions of an ensemble or of bootstrap refits on a leading
axis, ``(K, *target.shape)``. Returns ``BiasVariance(bias2, variance, expected_mse)``: per
element ``bias2 = (mean_k p_k - t)**2``, ``variance = mean_k (p_k - mean_k p_k)**2``, each
reduced as a loss is (``weight``, ``sample_weight``, ``mask``, ``missing="nan"`` and
``reduction`` as for ``mse``; every member is weighted alike), and
``expected_mse = bias2 + variance`` (exactly their sum; it equals the mean over the members
of their MSE to rounding). The arguments are ``(predictions, target)`` in every backend.
"""

_CONTRIBUTIONS_DOC = """Each sample's share of a reduced loss, and the samples that contribute most.

``loss``: a preset name (``"mse"``, ``"huber"``, ...) or a ``LossSpec``; further keyword
arguments override its fields (``delta=0.5``, ``reduction="sum"``, ``missing="nan"``).
Returns ``Contributions(per_sample, loss, top_indices, top_values)``: ``per_sample``, shape
``(B,)`` (the leading axis), adds up to ``loss`` (to rounding); with ``k``, the ``k``
largest shares, largest first (NumPy arrays, computed on the host). The reduction must be
``mean``, ``sum`` or ``sum_over_batch_size`` and the loss have no square root or ratio (not
RMSE, NMSE or R^2). The arguments are ``(predictions, target)`` in every backend.
"""

_DERIVATIVE_DOC = """The ``order``-th derivative of ``model`` with respect to its input at ``points``.

``model`` maps a batch of points to a batch of outputs, each output depending on its own
point only; the result is d^n/ds^n model(points + s v) at s = 0, by nested forward-mode
products (torch: ``torch.func.jvp``; JAX: ``jax.jvp``), with ``v = direction`` (one per point
or one for all; default ones: the ordinary derivative of a scalar input). Differentiable with
respect to the model's parameters.
"""

_DERIVATIVE_PENALTY_DOC = """A loss on a model's derivatives at given points.

``loss(scale * derivative(model, points, order=order, direction=direction), target, **loss_kw)``,
with ``loss`` the backend's MSE by default (any loss of the backend, with its ``weight``,
``mask``, ``reduction``, ...) and ``target`` zeros by default. For example a physics-informed
fit of E(V) adds ``derivative_penalty(E, V0)`` (dE/dV(V0) = 0) and
``derivative_penalty(E, V0, B, order=2, scale=V0)`` (V0 E''(V0) = B) to its data loss.
"""
