"""The NumPy float64 reference: the oracle every other backend is tested against.

Functions follow scikit-learn's argument order ``(y_true, y_pred, *, sample_weight=...)``
and always compute in float64. :func:`value_and_grad` and :func:`hessian_vector_product`
differentiate the same pipeline exactly, by forward-mode automatic differentiation with the
contract's conventions at the non-smooth points, so the reference is an oracle for
gradients and second derivatives as well as values.

The options every loss shares: ``sample_weight`` (aligned with the leading axes of
``y_pred``), ``weight`` (broadcast by trailing rules: per element, per output), ``mask``
(boolean, or 0/1), ``missing="nan"``, ``reduction`` and ``multioutput`` (docs/design.md,
"Semantics"), and ``covariance`` / ``scale_tril`` / ``precision`` ("Whitening").
Differences from scikit-learn, on purpose: all-zero weights, an all-false mask or an empty
batch give 0 (scikit-learn raises); NaN or inf inputs propagate to the value instead of
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

import builtins
import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .. import _core, _prepare
from .._host import HostOps
from .._ops import ArgNames, Ops
from .._presets import docstring, preset
from .._spec import LossSpec

__all__ = [
    "mse", "mae", "rmse", "huber", "smooth_l1", "log_cosh", "expectile", "pseudo_huber", "quantile",
    "nmse", "r2", "gaussian_nll", "multivariate_gaussian_nll", "value_and_grad", "hessian_vector_product",
    "NumpyOps", "normalizer",
]

NAMES = ArgNames(pred="y_pred", target="y_true")
Result = float | NDArray[np.float64]
Multioutput = str | Sequence[float]
OptArray = ArrayLike | None


class NumpyOps(HostOps):
    """The reference's primitives: plain float64 NumPy."""

    name = "numpy"
    whiten_by = "solve"  # the reference whitens by a triangular solve against the float64 factor


# ---------------------------------------------------------------------------------------
# Forward-mode duals: exact first and second derivatives of the same pipeline.
# ---------------------------------------------------------------------------------------


class _Dual:
    """A float64 value ``v`` with K tangents ``t`` (shape ``(K,) + v.shape``) and, for
    second derivatives, a tangent ``s`` in one more direction (``v``'s shape) and the mixed
    second-order terms ``u`` (``t``'s shape). ``s`` and ``u`` are None in first order."""

    __array_priority__ = 1000

    def __init__(self, v: Any, t: Any, s: Any = None, u: Any = None) -> None:
        self.v = np.asarray(v, dtype=np.float64)
        self.t = np.asarray(t, dtype=np.float64)
        self.s = None if s is None else np.asarray(s, dtype=np.float64)
        self.u = None if u is None else np.asarray(u, dtype=np.float64)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.v.shape)


def _k(*xs: Any) -> int:
    for x in xs:
        if isinstance(x, _Dual):
            return int(x.t.shape[0])
    raise AssertionError("no dual")  # pragma: no cover


def _second(*xs: Any) -> bool:
    return any(isinstance(x, _Dual) and x.s is not None for x in xs)


def _nd(*xs: Any) -> int:
    return builtins.max(np.ndim(x.v if isinstance(x, _Dual) else x) for x in xs)


def _pad(t: Any, pad: int, vshape: tuple[int, ...]) -> Any:
    return t.reshape((t.shape[0],) + (1,) * pad + vshape) if pad > 0 else t


def _parts(x: Any, k: int, ndim: int) -> tuple[Any, Any, Any, Any]:
    """(value, tangents, direction tangent, mixed terms), the tangents aligned for a result
    of ``ndim`` axes (zeros for a constant)."""
    if isinstance(x, _Dual):
        pad = ndim - x.v.ndim
        s = 0.0 if x.s is None else x.s
        u = np.zeros((k,) + (1,) * ndim) if x.u is None else _pad(x.u, pad, x.v.shape)
        return x.v, _pad(x.t, pad, x.v.shape), s, u
    z = np.zeros((k,) + (1,) * ndim)
    return np.asarray(x), z, 0.0, z


def _make(v: Any, t: Any, s: Any, u: Any, second: bool) -> _Dual:
    k = t.shape[0]
    shape = (k,) + np.shape(v)
    if not second:
        return _Dual(v, np.broadcast_to(t, shape))
    return _Dual(v, np.broadcast_to(t, shape), np.broadcast_to(s, np.shape(v)), np.broadcast_to(u, shape))


def _binary(a: Any, b: Any, op: str) -> _Dual:
    k, nd, second = _k(a, b), _nd(a, b), _second(a, b)
    av, at, as_, au = _parts(a, k, nd)
    bv, bt, bs, bu = _parts(b, k, nd)
    if op == "+":
        return _make(av + bv, at + bt, as_ + bs, au + bu, second)
    if op == "-":
        return _make(av - bv, at - bt, as_ - bs, au - bu, second)
    if op == "*":
        return _make(av * bv, at * bv + av * bt, as_ * bv + av * bs,
                     au * bv + av * bu + at * bs + as_ * bt, second)
    return _binary(a, _unary(b, 1.0 / np.asarray(_v(b)), lambda x: -1.0 / (x * x), lambda x: 2.0 / (x * x * x)), "*")


def _v(x: Any) -> Any:
    return x.v if isinstance(x, _Dual) else x


def _unary(x: Any, fv: Any, d1: Callable[[Any], Any], d2: Callable[[Any], Any]) -> Any:
    """f(x) for a dual ``x``: value ``fv``, first derivative ``d1(x.v)``, second ``d2(x.v)``."""
    if not isinstance(x, _Dual):
        return fv
    with np.errstate(all="ignore"):
        g = d1(x.v)
        if x.s is None:
            return _Dual(fv, x.t * g)
        return _Dual(fv, x.t * g, x.s * g, x.u * g + x.t * x.s * d2(x.v))


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
        setattr(_Dual, f"__{name}__", lambda self, other, cmp=cmp: cmp(self.v, _v(other)))
    _Dual.__neg__ = lambda self: _Dual(  # type: ignore[attr-defined,operator]
        -self.v, -self.t, None if self.s is None else -self.s, None if self.u is None else -self.u)
    _Dual.__hash__ = None  # type: ignore[assignment]


_install_operators()

def _ZERO(x: Any) -> Any:  # noqa: N802 - a constant derivative
    return np.zeros_like(x)


def _linear(x: Any, f: Callable[[Any], Any], tangent: Callable[[Any], Any] | None = None) -> Any:
    """A linear map ``f`` of a dual (``tangent`` maps the stacked tangents; default ``f``)."""
    if not isinstance(x, _Dual):
        return f(x)
    ft = tangent or f
    return _Dual(f(x.v), ft(x.t), None if x.s is None else f(x.s), None if x.u is None else ft(x.u))


class _DualOps(NumpyOps):
    """NumpyOps over duals; the tangent rules encode the contract's conventions (d|x|/dx = 0
    at 0, the clamp of the Gaussian NLL invisible to the gradient)."""

    def asarray(self, x: Any, dtype: str | None = None, like: Any = None) -> Any:
        return x if isinstance(x, _Dual) else super().asarray(x, dtype, like)

    def dtype(self, x: Any) -> str:
        return "float64" if isinstance(x, _Dual) else super().dtype(x)

    def to_host(self, x: Any) -> np.ndarray:
        return np.asarray(_v(x))

    def is_traced(self, x: Any) -> bool:
        return isinstance(x, _Dual)  # a differentiated matrix: solved against, as the frameworks do

    def shape(self, x: Any) -> tuple[int, ...]:
        return tuple(np.shape(_v(x)))

    def where(self, cond: Any, x: Any, y: Any) -> Any:
        if not isinstance(x, _Dual) and not isinstance(y, _Dual):
            return np.where(cond, x, y)
        k, nd, second = _k(x, y), builtins.max(_nd(x, y), np.ndim(cond)), _second(x, y)
        xv, xt, xs, xu = _parts(x, k, nd)
        yv, yt, ys, yu = _parts(y, k, nd)
        v = np.where(cond, xv, yv)
        return _make(v, np.where(cond, xt, yt), np.where(cond, xs, ys), np.where(cond, xu, yu), second)

    def abs(self, x: Any) -> Any:
        return _unary(x, np.abs(_v(x)), np.sign, _ZERO)

    def sign(self, x: Any) -> Any:
        return _unary(x, np.sign(_v(x)), _ZERO, _ZERO)

    def sqrt(self, x: Any) -> Any:
        with np.errstate(all="ignore"):
            r = np.sqrt(_v(x))
        return _unary(x, r, lambda a: 0.5 / np.sqrt(a), lambda a: -0.25 / (a * np.sqrt(a)))

    def expm1(self, x: Any) -> Any:
        return _unary(x, np.expm1(_v(x)), np.exp, np.exp)

    def log(self, x: Any) -> Any:
        with np.errstate(all="ignore"):
            r = np.log(_v(x))
        return _unary(x, r, lambda a: 1.0 / a, lambda a: -1.0 / (a * a))

    def log1p(self, x: Any) -> Any:
        return _unary(x, np.log1p(_v(x)), lambda a: 1.0 / (1.0 + a), lambda a: -1.0 / ((1.0 + a) * (1.0 + a)))

    def clamp_min_nograd(self, x: Any, lo: float) -> Any:
        return _unary(x, np.maximum(_v(x), lo), np.ones_like, _ZERO)

    def reshape(self, x: Any, shape: tuple[int, ...]) -> Any:
        shape = tuple(shape)
        return _linear(x, lambda a: np.reshape(a, shape), lambda t: t.reshape((t.shape[0],) + shape))

    def broadcast_to(self, x: Any, shape: tuple[int, ...]) -> Any:
        if not isinstance(x, _Dual):
            return np.broadcast_to(x, shape)
        k, shape = x.t.shape[0], tuple(shape)
        pad = len(shape) - x.v.ndim
        return _linear(x, lambda a: np.broadcast_to(a, shape),
                       lambda t: np.broadcast_to(_pad(t, pad, x.v.shape), (k,) + shape))

    def sum(self, x: Any, axis: tuple[int, ...] | None = None, dtype: str | None = None) -> Any:
        if not isinstance(x, _Dual):
            return super().sum(x, axis, dtype)
        if axis is not None and not axis:
            return x
        taxis = None if axis is None else tuple(a % x.v.ndim + 1 for a in axis)

        def tsum(t: Any) -> Any:
            return np.sum(t, axis=tuple(range(1, t.ndim)) if taxis is None else taxis)

        return _linear(x, lambda a: np.sum(a, axis=axis), tsum)

    def extrema(self, x: Any) -> tuple[Any, Any]:
        return super().extrema(_v(x))

    # -- the transform stage: d(M x) = dM x + M dx; d(L^-1 x) = L^-1 (dx - dL L^-1 x) --------

    def matvec(self, m: Any, x: Any) -> Any:
        if not isinstance(m, _Dual) and not isinstance(x, _Dual):
            return super().matvec(m, x)
        if isinstance(m, _Dual) and (m.s is not None or _second(x)):
            raise NotImplementedError("second derivatives with respect to a matrix")  # pragma: no cover
        mv = _v(m)
        if not isinstance(m, _Dual):  # linear in x
            return _linear(x, lambda a: super(_DualOps, self).matvec(mv, a),
                           lambda t: super(_DualOps, self).matvec(mv, _batch_tangent(t, np.ndim(x.v) - 1, 1)))
        k, xv = _k(m, x), _v(x)
        v = super().matvec(mv, xv)
        t = np.zeros((k,) + v.shape)
        if isinstance(x, _Dual):
            t = t + super().matvec(mv, _batch_tangent(x.t, v.ndim - 1, 1))
        t = t + super().matvec(_batch_tangent(m.t, v.ndim - 1, 2), xv)
        return _Dual(v, t)

    def solve_tril(self, lower: Any, x: Any) -> Any:
        if not isinstance(lower, _Dual) and not isinstance(x, _Dual):
            return super().solve_tril(lower, x)
        lv = np.tril(_v(lower))
        if not isinstance(lower, _Dual):  # linear in x
            return _linear(x, lambda a: super(_DualOps, self).solve_tril(lv, a),
                           lambda t: super(_DualOps, self).solve_tril(lv, _batch_tangent(t, np.ndim(x.v) - 1, 1)))
        if lower.s is not None or _second(x):
            raise NotImplementedError("second derivatives with respect to a matrix")  # pragma: no cover
        k, xv = _k(lower, x), _v(x)
        z = super().solve_tril(lv, xv)
        rhs = np.zeros((k,) + z.shape)
        if isinstance(x, _Dual):
            rhs = rhs + _batch_tangent(x.t, z.ndim - 1, 1)
        rhs = rhs - super().matvec(np.tril(_batch_tangent(lower.t, z.ndim - 1, 2)), z)
        return _Dual(z, super().solve_tril(lv, rhs))


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


def _seeded(args: dict[str, Any], wrt: Sequence[str], direction: Any = None) -> tuple[dict[str, Any], int]:
    """The arguments with those in ``wrt`` as duals seeded with the identity (one tangent per
    element); with ``direction``, ``y_pred`` also carries it (second order)."""
    arrays: dict[str, Any] = {}
    for name in wrt:
        if name not in _WRT:
            raise ValueError(f"wrt={name!r} is not one of {sorted(_WRT)}")
        x = args.get(name)
        if x is None or isinstance(x, (int, float)) and name == "var":
            raise ValueError(f"wrt contains {name!r} but {name} was not given")
        _prepare.check_input(_OPS, name, x)
        arrays[name] = np.asarray(x, dtype=np.float64)
    k = builtins.sum(a.size for a in arrays.values())
    out = dict(args)
    offset = 0
    for name, a in arrays.items():
        t = np.zeros((k, a.size))
        t[offset : offset + a.size] = np.eye(a.size)
        t = t.reshape((k,) + a.shape)
        if direction is not None and name == "y_pred":
            out[name] = _Dual(a, t, np.broadcast_to(np.asarray(direction, np.float64), a.shape), np.zeros_like(t))
        else:
            out[name] = _Dual(a, t)
        offset += a.size
    return out, k


def _unseed(out: Any, k: int, wrt: Sequence[str], seeded: dict[str, Any], cotangent: Any,
            field: str = "t") -> dict[str, NDArray[np.float64]]:
    ct = np.ones(out.v.shape) if cotangent is None else np.broadcast_to(np.asarray(cotangent, np.float64),
                                                                         out.v.shape)
    tan = getattr(out, field)
    flat = np.tensordot(tan, ct, axes=out.v.ndim) if out.v.ndim else tan
    grads: dict[str, NDArray[np.float64]] = {}
    offset = 0
    for name in wrt:
        a = seeded[name].v
        grads[name] = np.asarray(flat[offset : offset + a.size]).reshape(a.shape)
        offset += a.size
    return grads


def value_and_grad(spec: LossSpec, y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: OptArray = None,
                   weight: OptArray = None, mask: OptArray = None, covariance: OptArray = None,
                   scale_tril: OptArray = None, precision: OptArray = None, var: ArrayLike | float | None = None,
                   params: dict[str, ArrayLike] | None = None, wrt: Sequence[str] = ("y_pred",),
                   cotangent: ArrayLike | None = None, normalizer: OptArray = None
                   ) -> tuple[Result, dict[str, NDArray[np.float64]]]:
    """The loss and its exact gradients, by forward-mode differentiation in float64.

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
    seeded, k = _seeded(args, wrt)
    out = _run(_DUAL_OPS, spec, seeded["y_true"], seeded["y_pred"], mask=mask, covariance=covariance,
               params={n: seeded[n] for n in params}, normalizer=normalizer,
               **{n: seeded[n] for n in ("weight", "sample_weight", "scale_tril", "precision", "var")})
    if not isinstance(out, _Dual):  # the loss does not depend on the inputs (e.g. empty)
        out = _Dual(out, np.zeros((k,) + np.shape(out)))
    return _result(out.v), _unseed(out, k, wrt, seeded, cotangent)


def hessian_vector_product(spec: LossSpec, y_true: ArrayLike, y_pred: ArrayLike, direction: ArrayLike, *,
                           sample_weight: OptArray = None, weight: OptArray = None, mask: OptArray = None,
                           covariance: OptArray = None, precision: OptArray = None,
                           var: ArrayLike | float | None = None,
                           cotangent: ArrayLike | None = None
                           ) -> tuple[Result, NDArray[np.float64], NDArray[np.float64]]:
    """(the loss, its gradient and its Hessian-vector product ``H v`` with respect to
    ``y_pred``), exactly, by second-order forward mode: ``H`` is that of
    ``sum(loss * cotangent)``. The conventions at non-smooth points are the pipeline's
    (the Huber loss has second derivative 1 for |r| < delta, r = 0 included, and 0 beyond).

    >>> from mse_adapters import preset
    >>> _, g, hv = hessian_vector_product(preset("huber", delta=0.5), [0.0, 0.0], [0.0, 2.0], [1.0, 1.0])
    >>> hv.tolist()
    [0.5, 0.0]
    """
    args = {"y_true": y_true, "y_pred": y_pred}
    seeded, k = _seeded(args, ("y_pred",), direction)
    out = _run(_DUAL_OPS, spec, seeded["y_true"], seeded["y_pred"], sample_weight=sample_weight, weight=weight,
               mask=mask, covariance=covariance, precision=precision, var=var)
    if not isinstance(out, _Dual) or out.u is None:
        z = np.zeros(np.shape(_v(out)) and (k,) + np.shape(_v(out)) or (k,))
        out = _Dual(_v(out), z, np.zeros(np.shape(_v(out))), z)
    g = _unseed(out, k, ("y_pred",), seeded, cotangent)["y_pred"]
    hv = _unseed(out, k, ("y_pred",), seeded, cotangent, "u")["y_pred"]
    return _result(out.v), g, hv


# ---------------------------------------------------------------------------------------
# The presets: bindings of the preset table's rows (scikit-learn's argument order).
# ---------------------------------------------------------------------------------------

_OPTIONS = ("Options every loss shares (``sample_weight``, ``weight``, ``mask``, ``missing``, ``reduction``, "
            "``multioutput``, ``covariance`` / ``scale_tril`` / ``precision``): see :mod:`mse_adapters.numpy`.")
_CALL = ("y_true", "y_pred", "sample_weight", "weight", "mask", "covariance", "scale_tril", "precision", "var",
         "normalizer")


def _bind(name: str, args: dict[str, Any]) -> Result:
    """Evaluate the preset ``name`` on a binding's arguments (its ``locals()``)."""
    fields, params = _prepare.split_params({k: v for k, v in args.items() if k not in _CALL})
    if not isinstance(fields.get("multioutput", ""), str):
        fields["multioutput"] = tuple(float(v) for v in fields["multioutput"])
    arrays: dict[str, Any] = {k: args.get(k) for k in _CALL[2:] if args.get(k) is not None}
    return loss(preset(name, **fields), args["y_true"], args["y_pred"], params=params or None, **arrays)


def _doc(name: str) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    def wrap(f: Callable[..., Result]) -> Callable[..., Result]:
        f.__doc__ = docstring(name, "numpy", _OPTIONS)
        return f

    return wrap


@_doc("mse")
def mse(y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: OptArray = None, weight: OptArray = None,
        mask: OptArray = None, missing: str | None = None, reduction: str = "mean", multioutput: Multioutput = "pooled",
        covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
        unit_norm: float = 0.0,
        normalizer: OptArray = None) -> Result:
    return _bind("mse", locals())


@_doc("mae")
def mae(y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: OptArray = None, weight: OptArray = None,
        mask: OptArray = None, missing: str | None = None, reduction: str = "mean", multioutput: Multioutput = "pooled",
        covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
        normalizer: OptArray = None) -> Result:
    return _bind("mae", locals())


@_doc("rmse")
def rmse(y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: OptArray = None, weight: OptArray = None,
         mask: OptArray = None, missing: str | None = None, reduction: str = "mean",
         multioutput: Multioutput = "uniform_average", covariance: OptArray = None, scale_tril: OptArray = None,
         precision: OptArray = None,
        normalizer: OptArray = None) -> Result:
    return _bind("rmse", locals())


@_doc("huber")
def huber(y_true: ArrayLike, y_pred: ArrayLike, *, delta: float = 1.0, sample_weight: OptArray = None,
          weight: OptArray = None, mask: OptArray = None, missing: str | None = None, reduction: str = "mean",
          covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
        normalizer: OptArray = None) -> Result:
    return _bind("huber", locals())


@_doc("smooth_l1")
def smooth_l1(y_true: ArrayLike, y_pred: ArrayLike, *, beta: float = 1.0, sample_weight: OptArray = None,
              weight: OptArray = None, mask: OptArray = None, missing: str | None = None, reduction: str = "mean",
              covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
        normalizer: OptArray = None) -> Result:
    return _bind("smooth_l1", locals())


@_doc("log_cosh")
def log_cosh(y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: OptArray = None, weight: OptArray = None,
             mask: OptArray = None, missing: str | None = None, reduction: str = "mean",
             covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
        normalizer: OptArray = None) -> Result:
    return _bind("log_cosh", locals())


@_doc("expectile")
def expectile(y_true: ArrayLike, y_pred: ArrayLike, *, tau: float = 0.5, sample_weight: OptArray = None,
              weight: OptArray = None, mask: OptArray = None, missing: str | None = None, reduction: str = "mean",
              covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
        normalizer: OptArray = None) -> Result:
    return _bind("expectile", locals())


@_doc("pseudo_huber")
def pseudo_huber(y_true: ArrayLike, y_pred: ArrayLike, *, delta: float = 1.0, sample_weight: OptArray = None,
                 weight: OptArray = None, mask: OptArray = None, missing: str | None = None, reduction: str = "mean",
                 covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
        normalizer: OptArray = None) -> Result:
    return _bind("pseudo_huber", locals())


@_doc("quantile")
def quantile(y_true: ArrayLike, y_pred: ArrayLike, *, tau: float = 0.5, sample_weight: OptArray = None,
             weight: OptArray = None, mask: OptArray = None, missing: str | None = None, reduction: str = "mean",
             covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
        normalizer: OptArray = None) -> Result:
    return _bind("quantile", locals())


@_doc("nmse")
def nmse(y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: OptArray = None, weight: OptArray = None,
         mask: OptArray = None, missing: str | None = None, multioutput: Multioutput = "uniform_average",
         force_finite: bool = True,
        normalizer: OptArray = None) -> Result:
    return _bind("nmse", locals())


@_doc("r2")
def r2(y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: OptArray = None, weight: OptArray = None,
       mask: OptArray = None, missing: str | None = None, multioutput: Multioutput = "uniform_average",
       force_finite: bool = True,
        normalizer: OptArray = None) -> Result:
    return _bind("r2", locals())


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

bias_variance, contributions = _bind_diagnostics(_OPS, dtype="float64", result=_result)
__all__ += ["bias_variance", "contributions"]
