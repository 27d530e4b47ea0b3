"""The NumPy float64 reference: the oracle every other backend is tested against.

Functions follow scikit-learn's argument order ``(y_true, y_pred, *, sample_weight=...)``
and always compute in float64. :func:`value_and_grad` gives exact gradients too (forward-mode
automatic differentiation of the same pipeline, with the contract's conventions at the
non-smooth points), so the reference is an oracle for gradients as well as values.

Differences from scikit-learn, on purpose (DESIGN §3): all-zero weights, an all-false mask
or an empty batch give 0 (scikit-learn raises); NaN targets are allowed under a mask or with
``missing="nan"``; ``sample_weight`` may have more than one axis (aligned with the leading
axes of ``y_pred``); ``weight`` adds per-element and per-output weights.

>>> from mse_adapters import numpy as mnp
>>> mnp.mse([3, -0.5, 2, 7], [2.5, 0.0, 2, 8])
0.375
>>> mnp.rmse([[0.5, 1], [-1, 1], [7, -6]], [[0, 2], [-1, 2], [8, -5]], multioutput="raw_values")
array([0.64549722, 1.        ])
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core, _whiten
from ._core import ArgNames, Ops, Whitening
from ._spec import LossSpec, preset

__all__ = [
    "mse",
    "mae",
    "rmse",
    "huber",
    "smooth_l1",
    "log_cosh",
    "expectile",
    "nmse",
    "r2",
    "gaussian_nll",
    "multivariate_gaussian_nll",
    "compile",
    "loss",
    "value_and_grad",
    "NumpyOps",
]

NAMES = ArgNames(pred="y_pred", target="y_true")
Result = float | NDArray[np.float64]
Multioutput = str | Sequence[float]


class NumpyOps(Ops):
    """The reference's operations: plain float64 NumPy."""

    name = "numpy"

    def shape(self, x: Any) -> tuple[int, ...]:
        return tuple(np.shape(x))

    def where(self, cond: Any, x: Any, y: Any) -> Any:
        return np.where(cond, x, y)

    def abs(self, x: Any) -> Any:
        return np.abs(x)

    def minimum(self, x: Any, c: float) -> Any:
        return np.minimum(x, c)

    def softplus(self, x: Any) -> Any:
        return np.logaddexp(0.0, x)

    def sqrt(self, x: Any) -> Any:
        return np.sqrt(x)

    def isnan(self, x: Any) -> Any:
        return np.isnan(x)

    def isfinite(self, x: Any) -> Any:
        return np.isfinite(x)

    def logical_and(self, a: Any, b: Any) -> Any:
        return np.logical_and(a, b)

    def logical_or(self, a: Any, b: Any) -> Any:
        return np.logical_or(a, b)

    def is_bool(self, x: Any) -> bool:
        return np.asarray(x).dtype == np.bool_

    def all(self, x: Any) -> bool:
        return bool(np.all(x))

    def to_float(self, x: Any, like: Any) -> Any:
        return np.asarray(x, dtype=np.float64)

    def reshape(self, x: Any, shape: tuple[int, ...]) -> Any:
        return np.reshape(x, shape)

    def broadcast_to(self, x: Any, shape: tuple[int, ...]) -> Any:
        return np.broadcast_to(x, shape)

    def sum(self, x: Any, axis: tuple[int, ...] | None = None) -> Any:
        return np.sum(x, axis=axis)  # NumPy's sum is pairwise

    def constant(self, values: list[float], like: Any) -> Any:
        return np.asarray(values, dtype=np.float64)

    def eps(self, like: Any) -> float:
        return float(np.finfo(np.float64).eps)

    def matvec(self, m: Any, x: Any) -> Any:
        return np.matmul(m, np.asarray(x)[..., None])[..., 0]

    def solve_tril(self, lower: Any, x: Any) -> Any:
        return _whiten.tril_solve(np.asarray(lower), np.asarray(x)[..., None])[..., 0]

    def log(self, x: Any) -> Any:
        return np.log(x)

    def diagonal(self, m: Any) -> Any:
        return np.diagonal(m, axis1=-2, axis2=-1)

    def clamp_min_nograd(self, x: Any, lo: float) -> Any:
        return np.maximum(x, lo)


# ---------------------------------------------------------------------------------------
# Forward-mode duals: exact gradients of the same pipeline for the conformance suite.
# ---------------------------------------------------------------------------------------


class _Dual:
    """A float64 value with K tangents: ``t`` has shape ``(K,) + v.shape``."""

    __array_priority__ = 1000

    def __init__(self, v: Any, t: Any) -> None:
        self.v = np.asarray(v, dtype=np.float64)
        self.t = np.asarray(t, dtype=np.float64)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.v.shape)


def _split(x: Any, k: int, ndim: int) -> tuple[Any, Any]:
    """(value, tangent aligned for a result of ``ndim`` axes)."""
    if isinstance(x, _Dual):
        t = x.t
        pad = ndim - x.v.ndim
        if pad > 0:
            t = t.reshape((t.shape[0],) + (1,) * pad + x.v.shape)
        return x.v, t
    return np.asarray(x), np.zeros((k,) + (1,) * ndim)


def _k(*xs: Any) -> int:
    for x in xs:
        if isinstance(x, _Dual):
            return int(x.t.shape[0])
    raise AssertionError("no dual")  # pragma: no cover


def _nd(*xs: Any) -> int:
    return builtins.max(np.ndim(x.v if isinstance(x, _Dual) else x) for x in xs)


def _binary(a: Any, b: Any, op: str) -> _Dual:
    k, nd = _k(a, b), _nd(a, b)
    av, at = _split(a, k, nd)
    bv, bt = _split(b, k, nd)
    if op == "+":
        v, t = av + bv, at + bt
    elif op == "-":
        v, t = av - bv, at - bt
    elif op == "*":
        v, t = av * bv, at * bv + av * bt
    else:
        v = av / bv
        t = (at - v * bt) / bv
    return _Dual(v, np.broadcast_to(t, (k,) + np.shape(v)))


def _install_operators() -> None:
    def mk(op: str, reflected: bool) -> Callable[[_Dual, Any], _Dual]:
        if reflected:
            return lambda self, other: _binary(other, self, op)
        return lambda self, other: _binary(self, other, op)

    for op, name in (("+", "add"), ("-", "sub"), ("*", "mul"), ("/", "truediv")):
        setattr(_Dual, f"__{name}__", mk(op, False))
        setattr(_Dual, f"__r{name}__", mk(op, True))
    for name in ("gt", "ge", "lt", "le", "eq", "ne"):
        cmp = getattr(np, {"gt": "greater", "ge": "greater_equal", "lt": "less",
                           "le": "less_equal", "eq": "equal", "ne": "not_equal"}[name])
        setattr(_Dual, f"__{name}__",
                lambda self, other, cmp=cmp: cmp(self.v, other.v if isinstance(other, _Dual) else other))
    _Dual.__neg__ = lambda self: _Dual(-self.v, -self.t)  # type: ignore[attr-defined,operator]
    _Dual.__hash__ = None  # type: ignore[assignment]


_install_operators()


class _DualOps(NumpyOps):
    """NumpyOps over duals; the tangent rules encode the contract's conventions."""

    def shape(self, x: Any) -> tuple[int, ...]:
        return tuple(x.v.shape) if isinstance(x, _Dual) else tuple(np.shape(x))

    def where(self, cond: Any, x: Any, y: Any) -> Any:
        if not isinstance(x, _Dual) and not isinstance(y, _Dual):
            return np.where(cond, x, y)
        k, nd = _k(x, y), builtins.max(_nd(x, y), np.ndim(cond))
        xv, xt = _split(x, k, nd)
        yv, yt = _split(y, k, nd)
        v = np.where(cond, xv, yv)
        return _Dual(v, np.broadcast_to(np.where(cond, xt, yt), (k,) + v.shape))

    def abs(self, x: Any) -> Any:
        return _Dual(np.abs(x.v), x.t * np.sign(x.v))  # d|x|/dx = 0 at 0

    def minimum(self, x: Any, c: float) -> Any:
        d = np.where(x.v < c, 1.0, np.where(x.v == c, 0.5, 0.0))
        return _Dual(np.minimum(x.v, c), x.t * d)

    def softplus(self, x: Any) -> Any:
        return _Dual(np.logaddexp(0.0, x.v), x.t * (0.5 * (1.0 + np.tanh(0.5 * x.v))))

    def sqrt(self, x: Any) -> Any:
        v = np.sqrt(x.v)
        with np.errstate(divide="ignore", invalid="ignore"):
            return _Dual(v, x.t * (0.5 / v))

    def _v(self, x: Any) -> Any:
        return x.v if isinstance(x, _Dual) else x

    def isnan(self, x: Any) -> Any:
        return np.isnan(self._v(x))

    def isfinite(self, x: Any) -> Any:
        return np.isfinite(self._v(x))

    def is_bool(self, x: Any) -> bool:
        return not isinstance(x, _Dual) and np.asarray(x).dtype == np.bool_

    def all(self, x: Any) -> bool:
        return bool(np.all(self._v(x)))

    def reshape(self, x: Any, shape: tuple[int, ...]) -> Any:
        if isinstance(x, _Dual):
            return _Dual(x.v.reshape(shape), x.t.reshape((x.t.shape[0],) + tuple(shape)))
        return np.reshape(x, shape)

    def broadcast_to(self, x: Any, shape: tuple[int, ...]) -> Any:
        if isinstance(x, _Dual):
            k = x.t.shape[0]
            _, t = _split(x, k, len(shape))
            return _Dual(np.broadcast_to(x.v, shape), np.broadcast_to(t, (k,) + tuple(shape)))
        return np.broadcast_to(x, shape)

    def sum(self, x: Any, axis: tuple[int, ...] | None = None) -> Any:
        if not isinstance(x, _Dual):
            return np.sum(x, axis=axis)
        taxis = tuple(range(1, x.t.ndim)) if axis is None else tuple(a + 1 for a in axis)
        return _Dual(np.sum(x.v, axis=axis), np.sum(x.t, axis=taxis))

    # -- the transform stage: d(M x) = dM x + M dx; d(L^-1 x) = L^-1 (dx - dL L^-1 x) --------

    def matvec(self, m: Any, x: Any) -> Any:
        if not isinstance(m, _Dual) and not isinstance(x, _Dual):
            return super().matvec(m, x)
        k = _k(m, x)
        mv, xv = self._v(m), self._v(x)
        v = super().matvec(mv, xv)
        t = np.zeros((k,) + v.shape)
        if isinstance(x, _Dual):
            t = t + super().matvec(mv, _batch_tangent(x.t, v.ndim - 1, 1))
        if isinstance(m, _Dual):
            t = t + super().matvec(_batch_tangent(m.t, v.ndim - 1, 2), xv)
        return _Dual(v, t)

    def solve_tril(self, lower: Any, x: Any) -> Any:
        if not isinstance(lower, _Dual) and not isinstance(x, _Dual):
            return super().solve_tril(lower, x)
        k = _k(lower, x)
        lv, xv = np.tril(self._v(lower)), self._v(x)
        z = super().solve_tril(lv, xv)
        rhs = np.zeros((k,) + z.shape)
        if isinstance(x, _Dual):
            rhs = rhs + _batch_tangent(x.t, z.ndim - 1, 1)
        if isinstance(lower, _Dual):
            rhs = rhs - super().matvec(np.tril(_batch_tangent(lower.t, z.ndim - 1, 2)), z)
        return _Dual(z, super().solve_tril(lv, rhs))

    def log(self, x: Any) -> Any:
        if not isinstance(x, _Dual):
            return np.log(x)
        return _Dual(np.log(x.v), x.t / x.v)

    def diagonal(self, m: Any) -> Any:
        if not isinstance(m, _Dual):
            return super().diagonal(m)
        return _Dual(super().diagonal(m.v), np.diagonal(m.t, axis1=-2, axis2=-1))

    def clamp_min_nograd(self, x: Any, lo: float) -> Any:
        if not isinstance(x, _Dual):
            return np.maximum(x, lo)
        return _Dual(np.maximum(x.v, lo), x.t)  # the clamp is invisible to the gradient


def _batch_tangent(t: Any, nbatch: int, core: int) -> Any:
    """A tangent ``(K, *batch, *core_shape)`` with its batch axes padded on the left to
    ``nbatch`` (so that they broadcast against the other operand's from the right)."""
    have = t.ndim - 1 - core
    if have >= nbatch:
        return t
    return t.reshape((t.shape[0],) + (1,) * (nbatch - have) + t.shape[1:])


_OPS = NumpyOps()
_DUAL_OPS = _DualOps()


# ---------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------


def _as_float64(name: str, x: ArrayLike) -> NDArray[np.float64]:
    _core.check_not_foreign(name, x, "numpy")
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise _core.dtype_error(name, str(a.dtype))
    return a.astype(np.float64, copy=False)


def _as_mask(name: str, x: ArrayLike) -> NDArray[Any]:
    a = np.asarray(x)
    if a.dtype.kind == "b":
        return a
    return _as_float64(name, a)


def _dtype_eps(x: Any) -> float:
    dt = np.asarray(x).dtype
    return float(np.finfo(dt).eps) if dt.kind == "f" else float(np.finfo(np.float64).eps)


def _transform(
    spec: LossSpec,
    covariance: ArrayLike | None,
    scale_tril: ArrayLike | None,
    precision: ArrayLike | None,
    duals: dict[str, Any] | None = None,
) -> tuple[LossSpec, Whitening | None]:
    """The spec with its transform resolved, and the matrix validated and factored on the
    host in float64 (the reference always whitens by a triangular solve). ``duals`` holds a
    dual ``scale_tril`` / ``precision`` when differentiating with respect to it."""
    name, matrix = _whiten.pick_matrix(covariance, scale_tril, precision)
    spec = _whiten.resolve_spec(spec, name)
    if name is None:
        return spec, None
    a = np.asarray(matrix)
    if a.dtype.kind not in "biuf":
        raise _core.dtype_error(name, str(a.dtype))
    f = _whiten.host_factor(name, a, _dtype_eps(a))
    dual = None if duals is None else duals.get(name)
    if name == "precision":
        return spec, Whitening("precision", f.precision if dual is None else dual, None, name)
    if dual is not None:  # differentiate through the factor: solve, log diag from the dual
        return spec, Whitening("solve", dual, None, name)
    return spec, Whitening("solve", f.scale_tril, f.log_diag, name)


def _var(var: ArrayLike | float | None) -> Any:
    if var is None or isinstance(var, (int, float)) and not isinstance(var, bool):
        return None if var is None else float(var)
    return _as_float64("var", var)


def _check_missing(spec: LossSpec, y_true: ArrayLike) -> None:
    if spec.missing is not None:
        dt = np.asarray(y_true).dtype
        _core.check_missing_dtype(spec, NAMES, dt.kind == "f", str(dt))


def _evaluate(
    spec: LossSpec,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    sample_weight: ArrayLike | None,
    weight: ArrayLike | None,
    mask: ArrayLike | None,
    check_values: bool = True,
    covariance: ArrayLike | None = None,
    scale_tril: ArrayLike | None = None,
    precision: ArrayLike | None = None,
    var: ArrayLike | float | None = None,
) -> Result:
    _check_missing(spec, y_true)
    t = _as_float64(NAMES.target, y_true)
    p = _as_float64(NAMES.pred, y_pred)
    w = None if weight is None else _as_float64(NAMES.weight, weight)
    sw = None if sample_weight is None else _as_float64(NAMES.sample_weight, sample_weight)
    m = None if mask is None else _as_mask(NAMES.mask, mask)
    spec, whitening = _transform(spec, covariance, scale_tril, precision)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        out = _core.run(_OPS, spec, p, t, weight=w, sample_weight=sw, mask=m, names=NAMES,
                        check_values=check_values, whitening=whitening, var=_var(var))
    out = np.asarray(out, dtype=np.float64)
    return float(out) if out.ndim == 0 else out


def compile(spec: LossSpec) -> Callable[..., Result]:  # noqa: A001 - the package's verb
    """Compile a spec into a NumPy function ``f(y_true, y_pred, *, sample_weight=None,
    weight=None, mask=None, covariance=None, scale_tril=None, precision=None, var=None)``
    returning a float (or an array for non-scalar reductions).

    ``covariance`` (SPD, ``(d, d)`` or one per sample ``(..., d, d)``), ``scale_tril`` (its
    Cholesky factor) or ``precision`` (a PSD cost matrix) act on the last axis (DESIGN §4);
    giving one sets the spec's ``transform``. A covariance is validated and factored on the
    host in float64 at each call. ``var`` is the predicted variance of
    ``penalty="gaussian_nll"``.

    >>> from mse_adapters import LossSpec
    >>> f = compile(LossSpec(penalty="abs", reduction="sum"))
    >>> f([1.0, 2.0], [1.5, 0.0])
    2.5
    """

    # a partial of the module-level function (not a closure), so that it pickles
    loss_fn = functools.partial(loss, spec)
    loss_fn.__name__ = "loss"  # type: ignore[attr-defined]
    loss_fn.spec = spec  # type: ignore[attr-defined]
    return loss_fn


def loss(
    spec: LossSpec,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    covariance: ArrayLike | None = None,
    scale_tril: ArrayLike | None = None,
    precision: ArrayLike | None = None,
    var: ArrayLike | float | None = None,
) -> Result:
    """Evaluate any spec once (``compile(spec)(y_true, y_pred, ...)``)."""
    return _evaluate(spec, y_true, y_pred, sample_weight, weight, mask, True,
                     covariance, scale_tril, precision, var)


def value_and_grad(
    spec: LossSpec,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    covariance: ArrayLike | None = None,
    scale_tril: ArrayLike | None = None,
    precision: ArrayLike | None = None,
    var: ArrayLike | float | None = None,
    wrt: Sequence[str] = ("y_pred",),
    cotangent: ArrayLike | None = None,
) -> tuple[Result, dict[str, NDArray[np.float64]]]:
    """The loss and its exact gradients, by forward-mode differentiation in float64.

    ``wrt`` names the arguments to differentiate: any of ``"y_pred"``, ``"y_true"``,
    ``"weight"``, ``"sample_weight"``, ``"scale_tril"`` (through the triangular solve and
    the log-determinant; entries above the diagonal get 0), ``"precision"`` and ``"var"``
    (through the eps clamp as through the identity, as torch). For a non-scalar loss the
    gradient is that of
    ``sum(loss * cotangent)`` (``cotangent`` defaults to ones). Non-smooth points follow
    the contract: d|x|/dx = 0 at 0, d sqrt(m)/dm = 0 at m = 0.

    >>> from mse_adapters import preset
    >>> v, g = value_and_grad(preset("mse"), [3, -0.5, 2, 7], [2.5, 0.0, 2, 8])
    >>> v, g["y_pred"].tolist()
    (0.375, [-0.25, 0.25, 0.0, 0.5])
    """
    arrays: dict[str, Any] = {
        "y_true": _as_float64(NAMES.target, y_true),
        "y_pred": _as_float64(NAMES.pred, y_pred),
        "weight": None if weight is None else _as_float64(NAMES.weight, weight),
        "sample_weight": None if sample_weight is None else _as_float64(NAMES.sample_weight, sample_weight),
        "scale_tril": None if scale_tril is None else _as_float64("scale_tril", scale_tril),
        "precision": None if precision is None else _as_float64("precision", precision),
        "var": None if var is None or isinstance(var, (int, float)) else _as_float64("var", var),
    }
    for name in wrt:
        if name not in arrays:
            raise ValueError(f"wrt={name!r} is not one of {sorted(arrays)}")
        if arrays[name] is None:
            raise ValueError(f"wrt contains {name!r} but {name} was not given")
    if not wrt:  # nothing to differentiate (the dual-number ops need at least one tangent)
        return _evaluate(spec, y_true, y_pred, sample_weight, weight, mask, True, covariance, scale_tril,
                         precision, var), {}
    k = builtins.sum(arrays[n].size for n in wrt)
    offset = 0
    duals: dict[str, Any] = dict(arrays)
    for name in wrt:
        a = arrays[name]
        t = np.zeros((k, a.size))
        t[offset : offset + a.size] = np.eye(a.size)
        duals[name] = _Dual(a, t.reshape((k,) + a.shape))
        offset += a.size
    m = None if mask is None else _as_mask(NAMES.mask, mask)
    spec, whitening = _transform(spec, covariance, scale_tril, precision,
                                 {n: duals[n] for n in ("scale_tril", "precision") if n in wrt})
    v = duals["var"] if duals["var"] is not None else _var(var)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        out = _core.run(
            _DUAL_OPS, spec, duals["y_pred"], duals["y_true"], weight=duals["weight"],
            sample_weight=duals["sample_weight"], mask=m, names=NAMES, whitening=whitening, var=v,
        )
    if not isinstance(out, _Dual):  # the loss does not depend on the inputs (e.g. empty)
        out = _Dual(out, np.zeros((k,) + np.shape(out)))
    ct = np.ones(out.v.shape) if cotangent is None else np.broadcast_to(
        np.asarray(cotangent, dtype=np.float64), out.v.shape)
    flat = np.tensordot(out.t, ct, axes=out.v.ndim) if out.v.ndim else out.t
    grads: dict[str, NDArray[np.float64]] = {}
    offset = 0
    for name in wrt:
        a = arrays[name]
        grads[name] = np.asarray(flat[offset : offset + a.size]).reshape(a.shape)
        offset += a.size
    value = out.v if out.v.ndim else float(out.v)
    return value, grads


# ---------------------------------------------------------------------------------------
# One function per preset, scikit-learn style.
# ---------------------------------------------------------------------------------------


def _mo(multioutput: Multioutput) -> str | tuple[float, ...]:
    return multioutput if isinstance(multioutput, str) else tuple(float(v) for v in multioutput)


def _preset_call(
    name: str,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    sample_weight: ArrayLike | None,
    weight: ArrayLike | None,
    mask: ArrayLike | None,
    covariance: ArrayLike | None = None,
    scale_tril: ArrayLike | None = None,
    precision: ArrayLike | None = None,
    **fields: Any,
) -> Result:
    return _evaluate(preset(name, **fields), y_true, y_pred, sample_weight, weight, mask, True,
                     covariance, scale_tril, precision)


def mse(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    missing: str | None = None,
    reduction: str = "mean",
    multioutput: Multioutput = "pooled",
    covariance: ArrayLike | None = None,
    scale_tril: ArrayLike | None = None,
    precision: ArrayLike | None = None,
    unit_norm: float = 0.0,
) -> Result:
    """Mean squared error, mean(w * (y_pred - y_true)**2) / mean(w).

    Equal to ``sklearn.metrics.mean_squared_error`` where that is defined ("pooled" and
    "uniform_average" coincide for per-sample weights; pass ``multioutput`` for the others).
    With a ``covariance`` (or ``scale_tril``) it is the generalised least squares loss, the
    mean of the squared whitened residuals L^-1 r; with a ``precision`` (cost) matrix P the
    quadratic form r^T P r summed per sample and divided like the plain MSE (the identity
    gives the plain MSE); ``unit_norm`` adds ``lambda * (|y_pred|**2 - 1)**2``.

    >>> mse([[0.5, 1], [-1, 1], [7, -6]], [[0, 2], [-1, 2], [8, -5]], multioutput=[0.3, 0.7])
    0.825
    >>> mse([[0.0, 0.0]], [[1.0, 1.0]], covariance=[[4.0, 0.0], [0.0, 1.0]])
    0.625
    """
    return _preset_call("mse", y_true, y_pred, sample_weight, weight, mask,
                        covariance=covariance, scale_tril=scale_tril, precision=precision, missing=missing,
                        reduction=reduction, multioutput=_mo(multioutput), unit_norm=unit_norm)


def mae(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    missing: str | None = None,
    reduction: str = "mean",
    multioutput: Multioutput = "pooled",
    covariance: ArrayLike | None = None,
    scale_tril: ArrayLike | None = None,
    precision: ArrayLike | None = None,
) -> Result:
    """Mean absolute error (equal to ``sklearn.metrics.mean_absolute_error``).

    A ``covariance`` or ``scale_tril`` whitens the residual first (the penalty acts on
    L^-1 r, DESIGN §4); a ``precision`` goes with the square penalty only (else a ValueError).

    >>> mae([3, -0.5, 2, 7], [2.5, 0.0, 2, 8])
    0.5
    """
    return _preset_call("mae", y_true, y_pred, sample_weight, weight, mask,
                        covariance=covariance, scale_tril=scale_tril, precision=precision, missing=missing,
                        reduction=reduction, multioutput=_mo(multioutput))


def rmse(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    missing: str | None = None,
    reduction: str = "mean",
    multioutput: Multioutput = "uniform_average",
    covariance: ArrayLike | None = None,
    scale_tril: ArrayLike | None = None,
    precision: ArrayLike | None = None,
) -> Result:
    """Root mean squared error. The default, as in scikit-learn's
    ``root_mean_squared_error``, is the mean of the per-output RMSEs; ``multioutput="pooled"``
    is the square root of the mean over everything (the torch, Keras and JAX default).
    A ``covariance`` or ``scale_tril`` whitens the residual first (DESIGN §4); with a
    ``precision`` P the mean square is the quadratic form r^T P r, as in :func:`mse`.

    >>> round(rmse([3, -0.5, 2, 7], [2.5, 0.0, 2, 8]), 6)
    0.612372
    """
    return _preset_call("rmse", y_true, y_pred, sample_weight, weight, mask,
                        covariance=covariance, scale_tril=scale_tril, precision=precision, missing=missing,
                        reduction=reduction, multioutput=_mo(multioutput))


def huber(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    delta: float = 1.0,
    sample_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    missing: str | None = None,
    reduction: str = "mean",
    covariance: ArrayLike | None = None,
    scale_tril: ArrayLike | None = None,
    precision: ArrayLike | None = None,
) -> Result:
    """Huber loss: 0.5 r**2 for |r| <= delta, else delta * (|r| - delta / 2).

    A ``covariance`` or ``scale_tril`` whitens the residual first (the penalty acts on
    L^-1 r, DESIGN §4); a ``precision`` goes with the square penalty only (else a ValueError).

    >>> huber([3, -0.5, 2, 7], [2.5, 0.0, 2, 8], delta=0.5)
    0.15625
    """
    return _preset_call("huber", y_true, y_pred, sample_weight, weight, mask,
                        covariance=covariance, scale_tril=scale_tril, precision=precision, delta=delta,
                        missing=missing, reduction=reduction)


def smooth_l1(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    beta: float = 1.0,
    sample_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    missing: str | None = None,
    reduction: str = "mean",
    covariance: ArrayLike | None = None,
    scale_tril: ArrayLike | None = None,
    precision: ArrayLike | None = None,
) -> Result:
    """Smooth L1: 0.5 r**2 / beta for |r| < beta, else |r| - beta / 2 (= huber / beta).

    A ``covariance`` or ``scale_tril`` whitens the residual first (the penalty acts on
    L^-1 r, DESIGN §4); a ``precision`` goes with the square penalty only (else a ValueError).

    >>> smooth_l1([3, -0.5, 2, 7], [2.5, 0.0, 2, 8], beta=0.5)
    0.3125
    """
    return _preset_call("smooth_l1", y_true, y_pred, sample_weight, weight, mask,
                        covariance=covariance, scale_tril=scale_tril, precision=precision, beta=beta,
                        missing=missing, reduction=reduction)


def log_cosh(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    missing: str | None = None,
    reduction: str = "mean",
    covariance: ArrayLike | None = None,
    scale_tril: ArrayLike | None = None,
    precision: ArrayLike | None = None,
) -> Result:
    """log(cosh(r)), computed stably as r + softplus(-2 r) - log 2.

    A ``covariance`` or ``scale_tril`` whitens the residual first (the penalty acts on
    L^-1 r, DESIGN §4); a ``precision`` goes with the square penalty only (else a ValueError).

    >>> round(log_cosh([[3, -0.5], [2, 7]], [[2.5, 0.0], [2, 8]]), 7)
    0.1685025
    """
    return _preset_call("log_cosh", y_true, y_pred, sample_weight, weight, mask,
                        covariance=covariance, scale_tril=scale_tril, precision=precision,
                        missing=missing, reduction=reduction)


def expectile(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    tau: float = 0.5,
    sample_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    missing: str | None = None,
    reduction: str = "mean",
    covariance: ArrayLike | None = None,
    scale_tril: ArrayLike | None = None,
    precision: ArrayLike | None = None,
) -> Result:
    """Expectile (asymmetric squared) loss: ``tau * r**2`` where y_pred < y_true
    (under-prediction) and ``(1 - tau) * r**2`` where y_pred > y_true. tau = 0.5 is half
    the MSE; tau > 0.5 fits an upper expectile.

    A ``covariance`` or ``scale_tril`` whitens the residual first (the penalty acts on
    L^-1 r, DESIGN §4); a ``precision`` goes with the square penalty only (else a ValueError).

    >>> expectile([0.0, 0.0], [1.0, -1.0], tau=0.9)
    0.5
    """
    return _preset_call("expectile", y_true, y_pred, sample_weight, weight, mask,
                        covariance=covariance, scale_tril=scale_tril, precision=precision, tau=tau,
                        missing=missing, reduction=reduction)


def gaussian_nll(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    var: ArrayLike | float,
    *,
    full: bool = False,
    eps: float = 1e-6,
    sample_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    missing: str | None = None,
    reduction: str = "mean",
) -> Result:
    """Heteroscedastic Gaussian negative log-likelihood with a predicted variance,
    ``0.5 * (log v + (y_pred - y_true)**2 / v)`` with ``v = max(var, eps)`` (plus
    ``0.5 * log(2 pi)`` with ``full``), equal to ``torch.nn.GaussianNLLLoss`` (its variance
    shapes, its eps clamp, its errors), with weights, masks and every reduction.

    >>> round(gaussian_nll([0.0, 0.0], [1.0, 2.0], [1.0, 4.0]), 6)
    0.846574
    """
    spec = LossSpec(penalty="gaussian_nll", full=full, eps=eps, missing=missing, reduction=reduction)
    return _evaluate(spec, y_true, y_pred, sample_weight, weight, mask, var=var)


def multivariate_gaussian_nll(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    covariance: ArrayLike | None = None,
    scale_tril: ArrayLike | None = None,
    full: bool = True,
    sample_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    missing: str | None = None,
    reduction: str = "mean",
) -> Result:
    """Full-covariance Gaussian negative log-likelihood per sample (the last axis is the
    event): ``0.5 * |L^-1 r|**2 + sum(log diag L) + d/2 log(2 pi)`` with ``Sigma = L L^T``,
    i.e. ``-scipy.stats.multivariate_normal(y_pred, Sigma).logpdf(y_true)``, reduced over
    samples (``reduction="none"`` gives one value per sample). ``full=False`` drops the
    constant.

    >>> round(multivariate_gaussian_nll([[0.0, 0.0]], [[1.0, 0.0]], covariance=[[2.0, 0.0], [0.0, 1.0]]), 6)
    2.434451
    """
    spec = LossSpec(penalty="gaussian_nll", transform="whiten", full=full, missing=missing,
                    reduction=reduction)
    return _evaluate(spec, y_true, y_pred, sample_weight, weight, mask, True, covariance, scale_tril)


def nmse(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    missing: str | None = None,
    multioutput: Multioutput = "uniform_average",
) -> Result:
    """Normalised MSE, per output SSE / SST with the weighted, centred target variance;
    NMSE = 1 - R^2.

    >>> round(nmse([3, -0.5, 2, 7], [2.5, 0.0, 2, 8]), 6)
    0.051392
    """
    return _preset_call("nmse", y_true, y_pred, sample_weight, weight, mask, missing=missing,
                        multioutput=_mo(multioutput))


def r2(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    missing: str | None = None,
    multioutput: Multioutput = "uniform_average",
) -> Result:
    """Coefficient of determination, equal to ``sklearn.metrics.r2_score`` (with its
    ``force_finite=True``: a constant target scores 1.0 if predicted exactly, else 0.0).
    "Constant" is judged relative to rounding: a column whose weighted sum of squared
    deviations is at most ``(4 eps)**2`` times its weighted sum of squares is constant
    (scikit-learn needs exactly 0, so for targets ``[1, 0]`` weighted ``[1, 1e-250]`` it
    gives -1e250 where this gives 0.0).

    >>> round(r2([3, -0.5, 2, 7], [2.5, 0.0, 2, 8]), 4)
    0.9486
    """
    return _preset_call("r2", y_true, y_pred, sample_weight, weight, mask, missing=missing,
                        multioutput=_mo(multioutput))
