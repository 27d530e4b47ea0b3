"""The reference's derivatives: reverse-mode automatic differentiation of the one pipeline.

The pipeline (:mod:`mse_adapters._core`) is written against :class:`~mse_adapters._core.Ops`;
:class:`TapeOps` runs it on :class:`Var` arrays, each of which records the primitive that
made it and that primitive's vector-Jacobian product (VJP). :func:`gradients` sweeps the
record backwards from the loss once: the gradient with respect to every input costs a small
constant times the loss itself, in time and in memory (each recorded array is the size of
an input or smaller).

Second derivatives are forward over reverse: the recorded values are :class:`Dual` numbers
with ONE tangent (the direction ``v``), and the VJPs are written against :class:`DualOps`,
whose primitives take plain arrays and duals alike. The backward sweep of duals then
carries the gradient and its derivative in the direction ``v``: the Hessian-vector product
``H v``, at twice the cost of the gradient.

The conventions at the non-smooth points are those of the primitives' derivatives:
``d|x|/dx = sign(x)`` (0 at 0), ``sign`` and comparisons are constant, a select passes the
cotangent to the branch it picked only (a masked NaN never reaches an input), and
``clamp_min_nograd`` passes it through unchanged (the Gaussian NLL's clamp is invisible).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._host import HostOps
from .._linalg import tril_solve
from .._ops import Ops

__all__ = ["Dual", "DualOps", "Var", "TapeOps", "gradients", "primal", "tangent"]

Shape = tuple[int, ...]


# ---------------------------------------------------------------------------------------
# One-tangent duals (forward mode), and primitives over plain arrays and duals alike
# ---------------------------------------------------------------------------------------


class _Compared:
    """Comparisons of the values (plain boolean arrays: a select's condition is constant)."""

    __slots__ = ()
    __array_ufunc__ = None  # NumPy defers to the reflected operators of the subclasses

    def __lt__(self, b: Any) -> Any:
        return primal(self) < primal(b)

    def __le__(self, b: Any) -> Any:
        return primal(self) <= primal(b)

    def __gt__(self, b: Any) -> Any:
        return primal(self) > primal(b)

    def __ge__(self, b: Any) -> Any:
        return primal(self) >= primal(b)

    def __eq__(self, b: Any) -> Any:  # type: ignore[override]
        return primal(self) == primal(b)

    def __ne__(self, b: Any) -> Any:  # type: ignore[override]
        return primal(self) != primal(b)

    __hash__ = None  # type: ignore[assignment]


class Dual(_Compared):
    """``v + t e`` with ``e**2 = 0``: a float64 array ``v`` and its tangent ``t`` (``v``'s
    shape) in one direction. Arithmetic with plain arrays and numbers treats them as
    constants (no ``0 * inf`` from a constant's zero tangent)."""

    __slots__ = ("v", "t")

    def __init__(self, v: Any, t: Any) -> None:
        self.v = np.asarray(v, dtype=np.float64)
        self.t = np.broadcast_to(np.asarray(t, dtype=np.float64), self.v.shape)

    @property
    def shape(self) -> Shape:
        return tuple(self.v.shape)

    def __add__(self, b: Any) -> Dual:
        return Dual(self.v + b.v, self.t + b.t) if isinstance(b, Dual) else Dual(self.v + b, self.t)

    __radd__ = __add__

    def __sub__(self, b: Any) -> Dual:
        return Dual(self.v - b.v, self.t - b.t) if isinstance(b, Dual) else Dual(self.v - b, self.t)

    def __rsub__(self, b: Any) -> Dual:
        return Dual(b - self.v, -self.t)

    def __mul__(self, b: Any) -> Dual:
        if isinstance(b, Dual):
            return Dual(self.v * b.v, self.t * b.v + self.v * b.t)
        return Dual(self.v * b, self.t * b)

    __rmul__ = __mul__

    def __truediv__(self, b: Any) -> Dual:
        if isinstance(b, Dual):
            q = self.v / b.v
            return Dual(q, (self.t - q * b.t) / b.v)
        return Dual(self.v / b, self.t / b)

    def __rtruediv__(self, b: Any) -> Dual:
        q = b / self.v
        return Dual(q, -(q * self.t) / self.v)

    def __neg__(self) -> Dual:
        return Dual(-self.v, -self.t)


def primal(x: Any) -> Any:
    """The value of a :class:`Var` or a :class:`Dual` (a plain array as it is)."""
    if isinstance(x, Var):
        x = x.value
    return x.v if isinstance(x, Dual) else x


def tangent(x: Any) -> Any:
    """The tangent of a dual; zeros of its shape for a plain array."""
    return x.t if isinstance(x, Dual) else np.zeros(np.shape(x))


def _linear(f: Callable[[Any], Any], x: Any) -> Any:
    """A linear map of a dual (of its value and its tangent alike) or of a plain array."""
    return Dual(f(x.v), f(x.t)) if isinstance(x, Dual) else f(x)


def _unary(x: Any, value: Any, slope: Callable[[Any], Any]) -> Any:
    """f(x) for a dual: ``value`` = f(x.v) and f'(x.v) = ``slope(x.v)``."""
    return Dual(value, x.t * slope(x.v)) if isinstance(x, Dual) else value


class DualOps(HostOps):
    """float64 NumPy primitives on plain arrays and on one-tangent duals (the derivatives
    are the contract's: ``sign`` is constant, ``clamp_min_nograd`` passes the tangent). The
    matrices of :meth:`matvec` and :meth:`solve_tril` are plain (only vectors carry a
    direction); :meth:`transpose`, :meth:`tril` and :meth:`solve_tril_t` serve the VJPs."""

    def asarray(self, x: Any, dtype: str | None = None, like: Any = None) -> Any:
        return x if isinstance(x, Dual) else super().asarray(x, dtype, like)

    def dtype(self, x: Any) -> str:
        return "float64" if isinstance(x, Dual) else super().dtype(x)

    def to_host(self, x: Any) -> np.ndarray:
        return np.asarray(primal(x))

    def shape(self, x: Any) -> Shape:
        return tuple(np.shape(primal(x)))

    def where(self, cond: Any, x: Any, y: Any) -> Any:
        if not isinstance(x, Dual) and not isinstance(y, Dual):
            return np.where(cond, x, y)
        return Dual(np.where(cond, primal(x), primal(y)),
                    np.where(cond, x.t if isinstance(x, Dual) else 0.0, y.t if isinstance(y, Dual) else 0.0))

    def abs(self, x: Any) -> Any:
        return _unary(x, np.abs(primal(x)), np.sign)

    def sign(self, x: Any) -> Any:
        return np.sign(primal(x))  # constant: a plain array

    def sqrt(self, x: Any) -> Any:
        r = np.sqrt(primal(x))
        return _unary(x, r, lambda _: 0.5 / r)

    def expm1(self, x: Any) -> Any:
        return _unary(x, np.expm1(primal(x)), np.exp)

    def log(self, x: Any) -> Any:
        return _unary(x, np.log(primal(x)), lambda a: 1.0 / a)

    def log1p(self, x: Any) -> Any:
        return _unary(x, np.log1p(primal(x)), lambda a: 1.0 / (1.0 + a))

    def clamp_min_nograd(self, x: Any, lo: float) -> Any:
        return Dual(np.maximum(x.v, lo), x.t) if isinstance(x, Dual) else np.maximum(x, lo)

    def reshape(self, x: Any, shape: Shape) -> Any:
        return _linear(lambda a: np.reshape(a, shape), x)

    def broadcast_to(self, x: Any, shape: Shape) -> Any:
        return _linear(lambda a: np.broadcast_to(a, shape), x)

    def sum(self, x: Any, axis: tuple[int, ...] | None = None, dtype: str | None = None) -> Any:
        if not isinstance(x, Dual):
            return super().sum(x, axis, dtype)
        return x if axis is not None and not axis else _linear(lambda a: np.sum(a, axis=axis), x)

    def extrema(self, x: Any) -> tuple[Any, Any]:
        return super().extrema(primal(x))

    def matvec(self, m: Any, x: Any) -> Any:
        return _linear(lambda a: super(DualOps, self).matvec(m, a), x)

    def solve_tril(self, lower: Any, x: Any) -> Any:
        return _linear(lambda a: super(DualOps, self).solve_tril(lower, a), x)

    def solve_tril_t(self, lower: Any, x: Any) -> Any:
        """z with ``tril(lower)^T z = x`` along the last axis: the exchange permutation J
        makes ``J L^T J`` lower triangular, so ``J z`` is a forward substitution."""
        flipped = np.swapaxes(np.asarray(lower), -1, -2)[..., ::-1, ::-1]
        return _linear(lambda a: tril_solve(flipped, np.asarray(a)[..., ::-1, None])[..., ::-1, 0], x)

    def transpose(self, m: Any) -> Any:
        return _linear(lambda a: np.swapaxes(a, -1, -2), m)

    def tril(self, m: Any) -> Any:
        return _linear(np.tril, m)


_D = DualOps()


# ---------------------------------------------------------------------------------------
# The tape
# ---------------------------------------------------------------------------------------

#: Creation order: a recorded array is made after every array it was made from.
_ORDER = itertools.count()

Vjp = Callable[[Any], Any]


class Var(_Compared):
    """A recorded array: its value (plain or :class:`Dual`) and, per input it was made from,
    that input with the VJP mapping this array's cotangent to the input's. An input of the
    differentiation (a leaf) records nothing; :func:`gradients` leaves its gradient in
    ``grad``."""

    __slots__ = ("value", "parents", "order", "grad")

    def __init__(self, value: Any, parents: tuple[tuple[Var, Vjp], ...] = ()) -> None:
        self.value = value
        self.parents = parents
        self.order = next(_ORDER)
        self.grad: Any = None

    def __add__(self, b: Any) -> Any:
        return _binary(self, b, "+")

    def __radd__(self, a: Any) -> Any:
        return _binary(a, self, "+")

    def __sub__(self, b: Any) -> Any:
        return _binary(self, b, "-")

    def __rsub__(self, a: Any) -> Any:
        return _binary(a, self, "-")

    def __mul__(self, b: Any) -> Any:
        return _binary(self, b, "*")

    def __rmul__(self, a: Any) -> Any:
        return _binary(a, self, "*")

    def __truediv__(self, b: Any) -> Any:
        return _binary(self, b, "/")

    def __rtruediv__(self, a: Any) -> Any:
        return _binary(a, self, "/")

    def __neg__(self) -> Var:
        return Var(-self.value, ((self, lambda g: -g),))


def _value(x: Any) -> Any:
    return x.value if isinstance(x, Var) else x


def _record(value: Any, *parents: tuple[Any, Vjp]) -> Any:
    """``value`` as a recorded array made from the :class:`Var`\\ s among ``parents`` (a
    plain value when none is: constants are not recorded)."""
    made = tuple((x, vjp) for x, vjp in parents if isinstance(x, Var))
    return Var(value, made) if made else value


def unbroadcast(g: Any, shape: Shape) -> Any:
    """A cotangent of a broadcast result summed back to an operand's ``shape``."""
    have = _D.shape(g)
    if have == tuple(shape):
        return g
    lead = len(have) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and have[lead + i] != 1)
    return _D.reshape(_D.sum(g, axes), tuple(shape))


def _binary(a: Any, b: Any, op: str) -> Any:
    av, bv = _value(a), _value(b)
    sa, sb = np.shape(primal(av)), np.shape(primal(bv))
    if op == "+":
        return _record(av + bv, (a, lambda g: unbroadcast(g, sa)), (b, lambda g: unbroadcast(g, sb)))
    if op == "-":
        return _record(av - bv, (a, lambda g: unbroadcast(g, sa)), (b, lambda g: unbroadcast(-g, sb)))
    if op == "*":
        return _record(av * bv, (a, lambda g: unbroadcast(g * bv, sa)), (b, lambda g: unbroadcast(g * av, sb)))
    out = av / bv
    return _record(out, (a, lambda g: unbroadcast(g / bv, sa)), (b, lambda g: unbroadcast(-((g / bv) * out), sb)))


def _outer(a: Any, b: Any) -> Any:
    """``a[..., :, None] * b[..., None, :]`` (batch axes broadcast)."""
    sa, sb = _D.shape(a), _D.shape(b)
    return _D.reshape(a, sa + (1,)) * _D.reshape(b, sb[:-1] + (1, sb[-1]))


def _param_vjp(dparam: Callable[..., Any], r: Any, params: Any, shape: Shape) -> Vjp:
    """A penalty parameter's VJP: the cotangent times d rho / d param, summed to its shape."""
    return lambda g: unbroadcast(g * dparam(_D, r, params), shape)


class TapeOps(HostOps):
    """The reference's primitives over :class:`Var`\\ s: each records its VJP, written
    against :class:`DualOps` (so that a backward sweep of duals is differentiated once
    more). Arrays that are no :class:`Var` are constants and go to :class:`DualOps`.
    ``base``: the reference's own ops, whose name and whitening policy this one shares (a
    constant covariance is factored, cached and applied as the reference's value does)."""

    def __init__(self, base: Ops) -> None:
        self.name, self.whiten_by = base.name, base.whiten_by

    def asarray(self, x: Any, dtype: str | None = None, like: Any = None) -> Any:
        return x if isinstance(x, Var) else _D.asarray(x, dtype, like)

    def dtype(self, x: Any) -> str:
        return _D.dtype(_value(x))

    def to_host(self, x: Any) -> np.ndarray:
        return np.asarray(primal(x))

    def is_traced(self, x: Any) -> bool:
        return isinstance(x, Var)  # a differentiated matrix: solved against, as the frameworks do

    def shape(self, x: Any) -> Shape:
        return _D.shape(_value(x))

    def penalty(self, row: Any, r: Any, params: Any) -> Any:
        """A penalty that gives its parameters' derivatives (Barron's) is one recorded node with
        the table's derivatives: rho'(r) for the residual, d rho / d param for a parameter
        given as an array (the table's, not an autodiff of its formula's branches)."""
        arrays = getattr(params, "arrays", {})
        if not row.param_grads or not all(k in row.param_grads for k, v in arrays.items() if isinstance(v, Var)):
            return super().penalty(row, r, params)
        plain = params.replace(**{k: _value(v) for k, v in arrays.items()}) if arrays else params
        rv = _value(r)
        parents = [(r, lambda g: g * row.grad(_D, rv, plain))]
        for name, v in arrays.items():
            parents.append((v, _param_vjp(row.param_grads[name], rv, plain, self.shape(v))))
        return _record(row.value(_D, rv, plain), *parents)

    def where(self, cond: Any, x: Any, y: Any) -> Any:
        sx, sy = self.shape(x), self.shape(y)
        return _record(_D.where(cond, _value(x), _value(y)),
                       (x, lambda g: unbroadcast(_D.where(cond, g, 0.0), sx)),
                       (y, lambda g: unbroadcast(_D.where(cond, 0.0, g), sy)))

    def abs(self, x: Any) -> Any:
        xv = _value(x)
        return _record(_D.abs(xv), (x, lambda g: g * _D.sign(xv)))

    def sign(self, x: Any) -> Any:
        return _D.sign(_value(x))  # constant

    def sqrt(self, x: Any) -> Any:
        out = _D.sqrt(_value(x))
        return _record(out, (x, lambda g: g * (0.5 / out)))

    def expm1(self, x: Any) -> Any:
        out = _D.expm1(_value(x))
        return _record(out, (x, lambda g: g * (out + 1.0)))

    def log(self, x: Any) -> Any:
        xv = _value(x)
        return _record(_D.log(xv), (x, lambda g: g / xv))

    def log1p(self, x: Any) -> Any:
        xv = _value(x)
        return _record(_D.log1p(xv), (x, lambda g: g / (xv + 1.0)))

    def clamp_min_nograd(self, x: Any, lo: float) -> Any:
        return _record(_D.clamp_min_nograd(_value(x), lo), (x, lambda g: g))

    def reshape(self, x: Any, shape: Shape) -> Any:
        have = self.shape(x)
        return _record(_D.reshape(_value(x), tuple(shape)), (x, lambda g: _D.reshape(g, have)))

    def broadcast_to(self, x: Any, shape: Shape) -> Any:
        have = self.shape(x)
        return _record(_D.broadcast_to(_value(x), tuple(shape)), (x, lambda g: unbroadcast(g, have)))

    def sum(self, x: Any, axis: tuple[int, ...] | None = None, dtype: str | None = None) -> Any:
        if not isinstance(x, Var):
            return _D.sum(x, axis, dtype)
        if axis is not None and not axis:
            return x
        have = self.shape(x)
        axes = range(len(have)) if axis is None else [a % len(have) for a in axis]
        kept = tuple(1 if i in axes else s for i, s in enumerate(have))
        return _record(_D.sum(x.value, axis), (x, lambda g: _D.broadcast_to(_D.reshape(g, kept), have)))

    def extrema(self, x: Any) -> tuple[Any, Any]:
        return _D.extrema(primal(x))

    def matvec(self, m: Any, x: Any) -> Any:
        mv, xv = _value(m), _value(x)
        sm, sx = self.shape(m), self.shape(x)
        return _record(_D.matvec(mv, xv),
                       (m, lambda g: unbroadcast(_outer(g, xv), sm)),
                       (x, lambda g: unbroadcast(_D.matvec(_D.transpose(mv), g), sx)))

    def solve_tril(self, lower: Any, x: Any) -> Any:
        lv, xv = _value(lower), _value(x)
        sl, sx = self.shape(lower), self.shape(x)
        z = _D.solve_tril(lv, xv)
        # z = L^-1 x: dz = L^-1 (dx - tril(dL) z), so x's cotangent is L^-T g and L's is
        # -tril(outer(L^-T g, z)) (only the lower triangle is read)
        return _record(z, (lower, lambda g: unbroadcast(-_D.tril(_outer(_D.solve_tril_t(lv, g), z)), sl)),
                       (x, lambda g: unbroadcast(_D.solve_tril_t(lv, g), sx)))


# ---------------------------------------------------------------------------------------
# The backward sweep
# ---------------------------------------------------------------------------------------


def gradients(out: Any, leaves: Sequence[Var], cotangent: Any = None) -> tuple[Any, list[Any]]:
    """(the value of ``out``, the gradient of ``sum(out * cotangent)`` with respect to each
    leaf) by one backward sweep (``cotangent`` defaults to ones). A gradient is a plain
    array, or a :class:`Dual` when the recorded values are duals (its tangent: the
    Hessian-vector product); zeros for a leaf that ``out`` does not depend on."""
    value = _value(out)
    shape = _D.shape(value)
    ct = np.ones(shape) if cotangent is None else np.broadcast_to(np.asarray(cotangent, dtype=np.float64), shape)
    with np.errstate(all="ignore"):
        if isinstance(out, Var):
            _sweep(out, ct)
    grads = [np.zeros(_D.shape(leaf.value)) if leaf.grad is None else leaf.grad for leaf in leaves]
    return value, grads


def _sweep(out: Var, ct: Any) -> None:
    """Every recorded array that ``out`` depends on, latest first, hands its cotangent to
    the arrays it was made from; each is released once passed (memory stays that of the
    record)."""
    seen, stack, nodes = {id(out)}, [out], []
    while stack:
        node = stack.pop()
        nodes.append(node)
        for parent, _ in node.parents:
            if id(parent) not in seen:
                seen.add(id(parent))
                stack.append(parent)
    nodes.sort(key=lambda n: n.order, reverse=True)
    out.grad = ct
    for node in nodes:
        g, parents = node.grad, node.parents
        if not parents:  # a leaf keeps its gradient
            continue
        node.grad, node.parents = None, ()
        if g is None:
            continue
        for parent, vjp in parents:
            gp = vjp(g)
            parent.grad = gp if parent.grad is None else parent.grad + gp
