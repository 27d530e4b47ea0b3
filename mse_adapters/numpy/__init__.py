"""The NumPy float64 reference: the oracle every other backend is tested against.

Functions follow scikit-learn's argument order ``(y_true, y_pred, *, sample_weight=...)``
and always compute in float64. :func:`value_and_grad` and :func:`hessian_vector_product`
differentiate the same pipeline exactly, by reverse-mode automatic differentiation (forward
over reverse for second derivatives, :mod:`mse_adapters.numpy._autodiff`) with the
contract's conventions at the non-smooth points, in time and memory linear in the number of
elements, so the reference is an oracle for gradients and second derivatives as well as
values.

The options every loss shares: ``sample_weight`` (aligned with the leading axes of
``y_pred``), ``weight`` (broadcast by trailing rules: per element, per output), ``mask``
(boolean, or 0/1), ``missing="nan"``, ``reduction`` and ``multioutput`` (docs/design.md,
"Semantics"), and ``covariance`` / ``scale_tril`` / ``precision`` ("Whitening").
The preset functions are scikit-learn's metrics (where they reduce over the batch without a
transform: the streaming metric of one batch): all-zero weights, an all-false mask or an
empty batch give NaN with an :class:`~mse_adapters.UndefinedMetricWarning` (scikit-learn
raises), and so does an output with no valid target; :func:`loss` and the derivatives are
the losses, which give 0 there (docs/metrics.md, "Undefined values"). Other differences
from scikit-learn, on purpose: NaN or inf inputs propagate to the value instead of
raising (but under a mask or with ``missing="nan"``, where they count for nothing);
``sample_weight`` may have more than one axis; ``weight`` adds per-element and per-output
weights.

>>> from mse_adapters import numpy as mnp
>>> mnp.mse([3, -0.5, 2, 7], [2.5, 0.0, 2, 8])
0.375
>>> mnp.rmse([[0.5, 1], [-1, 1], [7, -6]], [[0, 2], [-1, 2], [8, -5]], multioutput="raw_values")
array([0.64549722, 1.        ])
>>> mnp.huber([3, -0.5, 2, 7], [2.5, 0.0, 2, 8], delta=0.5)
0.15625
>>> mnp.mse([[0.0, 0.0]], [[1.0, 1.0]], covariance=[[4.0, 0.0], [0.0, 1.0]])
0.625
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .. import _core, _prepare
from .._metrics import METRIC_REDUCTIONS
from .._ops import Ops
from .._presets import PRESET_TABLE, F, documented, preset
from .._spec import LossSpec
from . import _autodiff
from ._ops import NAMES, NumpyOps, Result
from .metrics import metric

__all__ = [
    "gaussian_nll", "multivariate_gaussian_nll", "value_and_grad", "hessian_vector_product", "NumpyOps",
    "normalizer", *(name for r in PRESET_TABLE if r.binds for name in r.names("numpy")),  # the table's bindings
]

Multioutput = str | Sequence[float]
OptArray = ArrayLike | None
_OPS = NumpyOps()


# ---------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------


def _result(out: Any) -> Result:
    out = np.asarray(out, dtype=np.float64)
    return float(out) if out.ndim == 0 else out


#: The plans of the reference's calls (docs/design.md, "Plans"; the spec is part of the key).
_PLANS = _prepare.Plans(256)


def _run(ops: Ops, spec: LossSpec, y_true: Any, y_pred: Any, check_values: bool = True, **kw: Any) -> Any:
    """The pipeline on a call (``kw``: the :class:`~mse_adapters._prepare.Call`'s optional
    arguments), in float64; plain calls by their signature's plan."""
    kw["params"] = kw.get("params") or {}
    call = _prepare.Call(y_pred, y_true, **kw)
    ctx = _prepare.Context(ops, NAMES, _prepare.NO_FIXED, check_values, "float64")
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        prep = _prepare.prepare(spec, call, ctx, _PLANS if ops is _OPS else None)
        return _core.evaluate(ops, prep)


def loss(spec: LossSpec, y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: OptArray = None,
         weight: OptArray = None, mask: OptArray = None, covariance: OptArray = None,
         scale_tril: OptArray = None, precision: OptArray = None, var: ArrayLike | float | None = None,
         params: dict[str, ArrayLike] | None = None, check_values: bool = True,
         normalizer: OptArray = None) -> Result:
    """Evaluate any spec once. ``params``: penalty parameters as arrays (``{"delta": ...}``:
    a scalar, per output or per element), in place of the spec's floats. ``normalizer``: the
    denominator to divide by instead of the batch's own (:func:`normalizer`; docs/design.md,
    "Scale-out").

    >>> from mse_adapters import LossSpec
    >>> loss(LossSpec(penalty="abs", reduction="sum"), [1.0, 2.0], [1.5, 0.0])
    2.5
    """
    return _result(_run(_OPS, spec, y_true, y_pred, check_values, sample_weight=sample_weight, weight=weight,
                        mask=mask, covariance=covariance, scale_tril=scale_tril, precision=precision, var=var,
                        params=params, normalizer=normalizer))


def normalizer(spec: LossSpec | str, y_true: ArrayLike, *, sample_weight: OptArray = None, weight: OptArray = None,
               mask: OptArray = None, check_values: bool = True, **fields: Any) -> Result:
    """The normalizer of a batch for ``spec`` (a :class:`~mse_adapters.LossSpec` or a preset
    name, with spec ``fields`` such as ``reduction=``): the denominator its reduction divides
    by (sum(w m) for ``mean``, the valid units for ``sum_over_batch_size``, one per output
    for the per-output reductions). Sum it over a window's micro-batches and pass it as
    ``normalizer=``: the micro-batch losses then add up to the window's.

    >>> w = normalizer("mse", [1.0, 2.0, 3.0], mask=[True, False, True]) + normalizer("mse", [4.0], mask=[True])
    >>> a = mse([1.0, 2.0, 3.0], [2.0, 2.0, 3.0], mask=[True, False, True], normalizer=w)
    >>> round(a + mse([4.0], [6.0], normalizer=w), 12), round(mse([1, 2, 3, 4], [2, 2, 3, 6], mask=[1, 0, 1, 1]), 12)
    (1.666666666667, 1.666666666667)
    """
    spec = preset(spec, **fields) if isinstance(spec, str) else (spec.replace(**fields) if fields else spec)
    call = _prepare.Call(y_true, y_true, weight, sample_weight, mask)
    ctx = _prepare.Context(_OPS, NAMES, _prepare.NO_FIXED, check_values, "float64")
    return _result(_prepare.batch_normalizer(spec, call, ctx))


def compile(spec: LossSpec) -> Callable[..., Result]:  # noqa: A001 - the package's verb
    """Compile a spec into a NumPy function ``f(y_true, y_pred, *, sample_weight=None,
    weight=None, mask=None, covariance=None, scale_tril=None, precision=None, var=None)``
    (a partial of :func:`loss`, so it pickles).

    >>> from mse_adapters import LossSpec
    >>> compile(LossSpec(penalty="abs", reduction="sum"))([1.0, 2.0], [1.5, 0.0])
    2.5
    """
    loss_fn = functools.partial(loss, spec)
    loss_fn.__name__ = "loss"  # type: ignore[attr-defined]
    loss_fn.spec = spec  # type: ignore[attr-defined]
    return loss_fn


_WRT = ("y_true", "y_pred", "weight", "sample_weight", "scale_tril", "precision", "var", *sorted(_prepare.PARAM_NAMES))
_TAPE_OPS = _autodiff.TapeOps(_OPS)


def _leaves(args: dict[str, Any], wrt: Sequence[str], direction: Any = None) -> dict[str, _autodiff.Var]:
    """The arguments named in ``wrt`` as the inputs of a differentiation (float64); with
    ``direction``, their values are duals carrying it (second order)."""
    leaves: dict[str, _autodiff.Var] = {}
    for name in wrt:
        if name not in _WRT:
            raise ValueError(f"wrt={name!r} is not one of {sorted(_WRT)}")
        x = args.get(name)
        if x is None or isinstance(x, (int, float)) and name == "var":
            raise ValueError(f"wrt contains {name!r} but {name} was not given")
        _prepare.check_input(_OPS, name, x)
        a = np.asarray(x, dtype=np.float64)
        leaves[name] = _autodiff.Var(a if direction is None else _autodiff.Dual(a, direction))
    return leaves


def value_and_grad(spec: LossSpec, y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: OptArray = None,
                   weight: OptArray = None, mask: OptArray = None, covariance: OptArray = None,
                   scale_tril: OptArray = None, precision: OptArray = None, var: ArrayLike | float | None = None,
                   params: dict[str, ArrayLike] | None = None, wrt: Sequence[str] = ("y_pred",),
                   cotangent: ArrayLike | None = None, normalizer: OptArray = None
                   ) -> tuple[Result, dict[str, NDArray[np.float64]]]:
    """The loss and its exact gradients in float64, by reverse-mode differentiation of the
    pipeline: one evaluation that records each primitive, then one backward sweep, so time
    and memory are a small multiple of the loss' own (linear in the number of elements,
    whatever ``wrt`` holds). The derivatives at the non-smooth points are the contract's
    (docs/design.md, "Non-smooth points"); a masked NaN gets gradient 0.

    ``wrt`` names the arguments to differentiate: any of ``"y_pred"``, ``"y_true"``,
    ``"weight"``, ``"sample_weight"``, ``"scale_tril"`` (through the triangular solve and
    the log-determinant; entries above the diagonal get 0), ``"precision"``, ``"var"``
    (through the eps clamp as through the identity, as torch) and a penalty parameter given
    in ``params`` (``"delta"``, ``"beta"``, ``"tau"``). For a non-scalar loss the
    gradient is that of ``sum(loss * cotangent)`` (``cotangent`` defaults to ones).

    >>> from mse_adapters import preset
    >>> v, g = value_and_grad(preset("mse"), [3, -0.5, 2, 7], [2.5, 0.0, 2, 8])
    >>> v, g["y_pred"].tolist()
    (0.375, [-0.25, 0.25, 0.0, 0.5])
    """
    params = dict(params or {})
    args = {"y_true": y_true, "y_pred": y_pred, "weight": weight, "sample_weight": sample_weight,
            "scale_tril": scale_tril, "precision": precision, "var": var, **params}
    if not wrt:
        return loss(spec, y_true, y_pred, sample_weight=sample_weight, weight=weight, mask=mask,
                    covariance=covariance, scale_tril=scale_tril, precision=precision, var=var, params=params,
                    normalizer=normalizer), {}
    leaves = _leaves(args, wrt)
    given: dict[str, Any] = {**args, **leaves}
    out = _run(_TAPE_OPS, spec, given["y_true"], given["y_pred"], mask=mask, covariance=covariance,
               params={n: given[n] for n in params}, normalizer=normalizer,
               **{n: given[n] for n in ("weight", "sample_weight", "scale_tril", "precision", "var")})
    value, grads = _autodiff.gradients(out, [leaves[n] for n in wrt], cotangent)
    return _result(value), {n: np.array(g, dtype=np.float64) for n, g in zip(wrt, grads)}


def hessian_vector_product(spec: LossSpec, y_true: ArrayLike, y_pred: ArrayLike, direction: ArrayLike, *,
                           sample_weight: OptArray = None, weight: OptArray = None, mask: OptArray = None,
                           covariance: OptArray = None, precision: OptArray = None,
                           var: ArrayLike | float | None = None,
                           cotangent: ArrayLike | None = None
                           ) -> tuple[Result, NDArray[np.float64], NDArray[np.float64]]:
    """(the loss, its gradient and its Hessian-vector product ``H v`` with respect to
    ``y_pred``), exactly, where ``H`` is that of ``sum(loss * cotangent)``: forward over
    reverse (the backward sweep of :func:`value_and_grad` run on values that carry one
    tangent, ``direction``), at about twice the cost of the gradient (linear in the number
    of elements). The conventions at non-smooth points are the pipeline's (the Huber loss
    has second derivative 1 for |r| < delta, r = 0 included, and 0 beyond).

    >>> from mse_adapters import preset
    >>> _, g, hv = hessian_vector_product(preset("huber", delta=0.5), [0.0, 0.0], [0.0, 2.0], [1.0, 1.0])
    >>> hv.tolist()
    [0.5, 0.0]
    """
    leaves = _leaves({"y_pred": y_pred}, ("y_pred",), direction)
    out = _run(_TAPE_OPS, spec, y_true, leaves["y_pred"], sample_weight=sample_weight, weight=weight, mask=mask,
               covariance=covariance, precision=precision, var=var)
    value, (g,) = _autodiff.gradients(out, [leaves["y_pred"]], cotangent)
    return (_result(_autodiff.primal(value)), np.array(_autodiff.primal(g), dtype=np.float64),
            np.array(_autodiff.tangent(g), dtype=np.float64))


# ---------------------------------------------------------------------------------------
# The presets: bindings of the preset table's rows (scikit-learn's argument order).
# ---------------------------------------------------------------------------------------

_OPTIONS = ("Options every loss shares (``sample_weight``, ``weight``, ``mask``, ``missing``, ``reduction``, "
            "``multioutput``, ``covariance`` / ``scale_tril`` / ``precision``): see :mod:`mse_adapters.numpy`.")
_CALL = ("y_true", "y_pred", "sample_weight", "weight", "mask", "covariance", "scale_tril", "precision", "var",
         "normalizer")


def _bind(name: str, args: dict[str, Any]) -> Result:
    """Evaluate the preset ``name`` on a binding's arguments (its ``locals()``). A reduction
    over the batch without a transform is a metric (scikit-learn's role): the streaming
    metric of one batch, whose undefined values are NaN (docs/metrics.md); the rest is the
    loss."""
    fields, params = _prepare.split_params({k: v for k, v in args.items() if k not in _CALL})
    if not isinstance(fields.get("multioutput", ""), str):
        fields["multioutput"] = tuple(float(v) for v in fields["multioutput"])
    arrays: dict[str, Any] = {k: args.get(k) for k in _CALL[2:] if args.get(k) is not None}
    spec = preset(name, **fields)
    if not params and arrays.keys() <= {"sample_weight", "weight", "mask"} and spec.reduction in METRIC_REDUCTIONS:
        return metric(spec).update(args["y_true"], args["y_pred"], **arrays).compute()
    return loss(spec, args["y_true"], args["y_pred"], params=params or None, **arrays)


def _doc(name: str) -> Callable[[F], F]:
    return documented(name, "numpy", _OPTIONS)


# <generated: the preset table's bindings; `python -m mse_adapters._bindings` rewrites this region>


@_doc("mse")
def mse(y_true: ArrayLike, y_pred: ArrayLike, *, reduction: str = "mean", multioutput: Multioutput = "pooled",
        unit_norm: float = 0.0, missing: str | None = None, sample_weight: OptArray = None, weight: OptArray = None,
        mask: OptArray = None, covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
        normalizer: OptArray = None) -> Result:
    return _bind("mse", locals())


@_doc("mae")
def mae(y_true: ArrayLike, y_pred: ArrayLike, *, reduction: str = "mean", multioutput: Multioutput = "pooled",
        missing: str | None = None, sample_weight: OptArray = None, weight: OptArray = None, mask: OptArray = None,
        covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
        normalizer: OptArray = None) -> Result:
    return _bind("mae", locals())


@_doc("rmse")
def rmse(y_true: ArrayLike, y_pred: ArrayLike, *, reduction: str = "mean", multioutput: Multioutput = "uniform_average",
         missing: str | None = None, sample_weight: OptArray = None, weight: OptArray = None, mask: OptArray = None,
         covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
         normalizer: OptArray = None) -> Result:
    return _bind("rmse", locals())


@_doc("huber")
def huber(y_true: ArrayLike, y_pred: ArrayLike, *, reduction: str = "mean", delta: float | ArrayLike = 1.0,
          missing: str | None = None, sample_weight: OptArray = None, weight: OptArray = None, mask: OptArray = None,
          covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
          normalizer: OptArray = None) -> Result:
    return _bind("huber", locals())


@_doc("smooth_l1")
def smooth_l1(y_true: ArrayLike, y_pred: ArrayLike, *, reduction: str = "mean", beta: float | ArrayLike = 1.0,
              missing: str | None = None, sample_weight: OptArray = None, weight: OptArray = None,
              mask: OptArray = None, covariance: OptArray = None, scale_tril: OptArray = None,
              precision: OptArray = None, normalizer: OptArray = None) -> Result:
    return _bind("smooth_l1", locals())


@_doc("log_cosh")
def log_cosh(y_true: ArrayLike, y_pred: ArrayLike, *, reduction: str = "mean", missing: str | None = None,
             sample_weight: OptArray = None, weight: OptArray = None, mask: OptArray = None,
             covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
             normalizer: OptArray = None) -> Result:
    return _bind("log_cosh", locals())


@_doc("expectile")
def expectile(y_true: ArrayLike, y_pred: ArrayLike, *, reduction: str = "mean", tau: float | ArrayLike = 0.5,
              missing: str | None = None, sample_weight: OptArray = None, weight: OptArray = None,
              mask: OptArray = None, covariance: OptArray = None, scale_tril: OptArray = None,
              precision: OptArray = None, normalizer: OptArray = None) -> Result:
    return _bind("expectile", locals())


@_doc("pseudo_huber")
def pseudo_huber(y_true: ArrayLike, y_pred: ArrayLike, *, reduction: str = "mean", delta: float | ArrayLike = 1.0,
                 missing: str | None = None, sample_weight: OptArray = None, weight: OptArray = None,
                 mask: OptArray = None, covariance: OptArray = None, scale_tril: OptArray = None,
                 precision: OptArray = None, normalizer: OptArray = None) -> Result:
    return _bind("pseudo_huber", locals())


@_doc("quantile")
def quantile(y_true: ArrayLike, y_pred: ArrayLike, *, reduction: str = "mean", tau: float | ArrayLike = 0.5,
             missing: str | None = None, sample_weight: OptArray = None, weight: OptArray = None, mask: OptArray = None,
             covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
             normalizer: OptArray = None) -> Result:
    return _bind("quantile", locals())


@_doc("barron")
def barron(y_true: ArrayLike, y_pred: ArrayLike, *, reduction: str = "mean", alpha: float | ArrayLike = 1.0,
           scale: float | ArrayLike = 1.0, missing: str | None = None, sample_weight: OptArray = None,
           weight: OptArray = None, mask: OptArray = None, covariance: OptArray = None, scale_tril: OptArray = None,
           precision: OptArray = None, normalizer: OptArray = None) -> Result:
    return _bind("barron", locals())


@_doc("cauchy")
def cauchy(y_true: ArrayLike, y_pred: ArrayLike, *, reduction: str = "mean", scale: float | ArrayLike = 1.0,
           missing: str | None = None, sample_weight: OptArray = None, weight: OptArray = None, mask: OptArray = None,
           covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
           normalizer: OptArray = None) -> Result:
    return _bind("cauchy", locals())


@_doc("geman_mcclure")
def geman_mcclure(y_true: ArrayLike, y_pred: ArrayLike, *, reduction: str = "mean", scale: float | ArrayLike = 1.0,
                  missing: str | None = None, sample_weight: OptArray = None, weight: OptArray = None,
                  mask: OptArray = None, covariance: OptArray = None, scale_tril: OptArray = None,
                  precision: OptArray = None, normalizer: OptArray = None) -> Result:
    return _bind("geman_mcclure", locals())


@_doc("welsch")
def welsch(y_true: ArrayLike, y_pred: ArrayLike, *, reduction: str = "mean", scale: float | ArrayLike = 1.0,
           missing: str | None = None, sample_weight: OptArray = None, weight: OptArray = None, mask: OptArray = None,
           covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
           normalizer: OptArray = None) -> Result:
    return _bind("welsch", locals())


@_doc("nmse")
def nmse(y_true: ArrayLike, y_pred: ArrayLike, *, multioutput: Multioutput = "uniform_average",
         force_finite: bool = True, missing: str | None = None, sample_weight: OptArray = None, weight: OptArray = None,
         mask: OptArray = None, normalizer: OptArray = None) -> Result:
    return _bind("nmse", locals())


@_doc("r2")
def r2(y_true: ArrayLike, y_pred: ArrayLike, *, multioutput: Multioutput = "uniform_average", force_finite: bool = True,
       missing: str | None = None, sample_weight: OptArray = None, weight: OptArray = None, mask: OptArray = None,
       normalizer: OptArray = None) -> Result:
    return _bind("r2", locals())


# </generated>


def gaussian_nll(y_true: ArrayLike, y_pred: ArrayLike, var: ArrayLike | float, *, full: bool = False,
                 eps: float = 1e-6, sample_weight: OptArray = None, weight: OptArray = None, mask: OptArray = None,
                 missing: str | None = None, reduction: str = "mean", normalizer: OptArray = None) -> Result:
    """Heteroscedastic Gaussian negative log-likelihood with a predicted variance,
    ``0.5 * (log v + (y_pred - y_true)**2 / v)`` with ``v = max(var, eps)`` (plus
    ``0.5 * log(2 pi)`` with ``full``), equal to ``torch.nn.GaussianNLLLoss`` (its variance
    shapes, its eps clamp, its errors), with weights, masks and every reduction.

    >>> round(gaussian_nll([0.0, 0.0], [1.0, 2.0], [1.0, 4.0]), 6)
    0.846574
    """
    spec = LossSpec(penalty="gaussian_nll", full=full, eps=eps, missing=missing, reduction=reduction)
    return loss(spec, y_true, y_pred, sample_weight=sample_weight, weight=weight, mask=mask, var=var,
                normalizer=normalizer)


def multivariate_gaussian_nll(y_true: ArrayLike, y_pred: ArrayLike, *, covariance: OptArray = None,
                              scale_tril: OptArray = None, full: bool = True, sample_weight: OptArray = None,
                              weight: OptArray = None, mask: OptArray = None, missing: str | None = None,
                              reduction: str = "mean", normalizer: OptArray = None) -> Result:
    """Full-covariance Gaussian negative log-likelihood per sample (the last axis is the
    event): ``0.5 * |L^-1 r|**2 + sum(log diag L) + d/2 log(2 pi)`` with ``Sigma = L L^T``,
    i.e. ``-scipy.stats.multivariate_normal(y_pred, Sigma).logpdf(y_true)``, reduced over
    samples. ``full=False`` drops the constant.

    >>> round(multivariate_gaussian_nll([[0.0, 0.0]], [[1.0, 0.0]], covariance=[[2.0, 0.0], [0.0, 1.0]]), 6)
    2.434451
    """
    spec = LossSpec(penalty="gaussian_nll", transform="whiten", full=full, missing=missing, reduction=reduction)
    return loss(spec, y_true, y_pred, sample_weight=sample_weight, weight=weight, mask=mask, covariance=covariance,
                scale_tril=scale_tril, normalizer=normalizer)


# Diagnostics (written once in mse_adapters/_diagnostics.py).
from .._diagnostics import bind as _bind_diagnostics  # noqa: E402

bias_variance, contributions = _bind_diagnostics(_OPS, _prepare.prepare, dtype="float64", result=_result)
__all__ += ["bias_variance", "contributions"]
