"""An independent oracle for the reference's derivatives: the K-tangent forward mode the
reference used before its reverse mode (one tangent per input element, and for second
derivatives one more tangent in the direction ``v`` with the mixed terms). It runs the same
pipeline (``mse_adapters.numpy._run``) on its own duals, so it checks the reverse mode's
VJPs and backward sweep exactly, kinks and conventions included; its memory is quadratic
in the number of elements: small inputs only.

    value, grads = value_and_grad(spec, y_true, y_pred, wrt=("y_pred", "weight"), weight=w)
    value, g, hv = hessian_vector_product(spec, y_true, y_pred, v, mask=m)
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mse_adapters import numpy as mnp
from mse_adapters.numpy import NumpyOps


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
    q = av / bv  # the value as the pipeline's (not a * (1 / b): 1 / b overflows for a subnormal b)
    if not isinstance(b, _Dual):
        return _make(q, at / bv, as_ / bv, au / bv, second)
    # q b = a, differentiated once along t and s, and along both
    tq, sq = (at - q * bt) / bv, (as_ - q * bs) / bv
    return _make(q, tq, sq, (au - q * bu - tq * bs - sq * bt) / bv, second)


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



_DUAL_OPS = _DualOps()


def _seeded(args: dict[str, Any], wrt: Sequence[str], direction: Any = None) -> tuple[dict[str, Any], int]:
    """The arguments with those in ``wrt`` as duals seeded with the identity (one tangent per
    element); with ``direction``, ``y_pred`` also carries it (second order)."""
    arrays = {name: np.asarray(args[name], dtype=np.float64) for name in wrt}
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
            field: str = "t") -> dict[str, np.ndarray]:
    if not isinstance(out, _Dual) or getattr(out, field) is None:  # the loss does not depend on the inputs
        shape = np.shape(_v(out))
        out = _Dual(_v(out), np.zeros((k,) + shape), np.zeros(shape), np.zeros((k,) + shape))
    ct = np.ones(out.v.shape) if cotangent is None else np.broadcast_to(np.asarray(cotangent, np.float64),
                                                                         out.v.shape)
    tan = getattr(out, field)
    flat = np.tensordot(tan, ct, axes=out.v.ndim) if out.v.ndim else tan
    grads: dict[str, np.ndarray] = {}
    offset = 0
    for name in wrt:
        a = seeded[name].v
        grads[name] = np.asarray(flat[offset : offset + a.size]).reshape(a.shape)
        offset += a.size
    return grads


def value_and_grad(spec: Any, y_true: Any, y_pred: Any, *, wrt: Sequence[str] = ("y_pred",),
                   cotangent: Any = None, params: dict[str, Any] | None = None,
                   **kw: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """``mnp.value_and_grad`` by K-tangent forward mode (``kw``: the other arguments)."""
    params = dict(params or {})
    args = {"y_true": y_true, "y_pred": y_pred, **kw, **params}
    seeded, k = _seeded(args, wrt)
    rest = {n: v for n, v in seeded.items() if n not in ("y_true", "y_pred") and n not in params}
    out = mnp._run(_DUAL_OPS, spec, seeded["y_true"], seeded["y_pred"], params={n: seeded[n] for n in params},
                   **rest)
    return np.asarray(_v(out)), _unseed(out, k, wrt, seeded, cotangent)


def hessian_vector_product(spec: Any, y_true: Any, y_pred: Any, direction: Any, *, cotangent: Any = None,
                           **kw: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    """``mnp.hessian_vector_product`` by second-order K-tangent forward mode."""
    seeded, k = _seeded({"y_true": y_true, "y_pred": y_pred}, ("y_pred",), direction)
    out = mnp._run(_DUAL_OPS, spec, seeded["y_true"], seeded["y_pred"], **kw)
    g = _unseed(out, k, ("y_pred",), seeded, cotangent)["y_pred"]
    hv = _unseed(out, k, ("y_pred",), seeded, cotangent, "u")["y_pred"]
    return np.asarray(_v(out)), g, hv
