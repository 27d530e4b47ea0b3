"""The penalty table: each elementwise penalty rho of the residual r = pred - target, with its
first and second derivatives, written once against :class:`~mse_adapters._core.Ops`.

``value`` is what the general pipeline evaluates (and every framework differentiates);
``grad`` and ``hess`` are rho' and rho'' with the conventions of docs/design.md ("Non-smooth
points"): d|r|/dr = 0 at r = 0; at a kink of rho' (Huber at |r| = delta, Smooth L1 at
|r| = beta) the second derivative is the outer branch's (0), as ``torch.nn``'s double
backward. The fused paths are built from ``grad``; the tests prove that ``grad`` and
``hess`` equal the reference's exact (reverse-mode) derivatives of ``value``, and that every
framework's derivatives of ``value`` equal the reference's. A parameter (``p.delta``, ...)
is a Python float or an array broadcastable to ``r`` (every formula works with both).

Adding a penalty is a row here (its parameters, value, rho', rho'' and a formula for the
docs), a row of the preset table (:mod:`mse_adapters._presets`) and one binding line per
adapter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["Param", "Penalty", "PENALTY_TABLE", "LOG2", "LOG_COSH_BIG", "log_cosh_small"]

Array = Any
Fn = Callable[[Any, Array, Any], Array]  # (ops, r, params) -> array

LOG2 = math.log(2.0)

#: Above this |r|, log cosh r is |r| - log 2 to within e^-2|r| (e^-40 ~ 4e-18, below
#: float64's rounding); the formula below it would overflow far above.
LOG_COSH_BIG = 20.0


class Param(NamedTuple):
    """A penalty parameter: a field of the spec, with its admissible range."""

    name: str
    low: float  # the lower bound
    low_open: bool  # whether the bound itself is excluded
    high: float | None = None  # an open upper bound, if any
    what: str = ""  # for the error message: "delta must be > 0 (huber), got ..."


class Penalty(NamedTuple):
    """One row of the table."""

    name: str
    params: tuple[Param, ...]
    value: Fn
    grad: Fn
    hess: Fn
    formula: str  # plain text, for docstrings and the docs
    smooth: bool  # twice differentiable everywhere


def _like(r: Array, c: float) -> Array:
    """The constant ``c`` with ``r``'s shape and dtype (NaN where r is NaN: a NaN residual
    never turns into a number)."""
    return r * 0.0 + c


# -- the rows -------------------------------------------------------------------------------


def _square(ops: Any, r: Array, p: Any) -> Array:
    return r * r


def _abs(ops: Any, r: Array, p: Any) -> Array:
    return ops.abs(r)


def _sign(ops: Any, r: Array, p: Any) -> Array:
    return ops.sign(r)


def _zero(ops: Any, r: Array, p: Any) -> Array:
    return _like(r, 0.0)


def _huber(ops: Any, r: Array, p: Any) -> Array:
    a = ops.abs(r)
    # the quadratic branch written as 0.5 r**2 (not through |r|): second derivative 1 at 0
    return ops.where(a < p.delta, 0.5 * (r * r), p.delta * (a - 0.5 * p.delta))


def _huber_grad(ops: Any, r: Array, p: Any) -> Array:
    return ops.where(ops.abs(r) < p.delta, r, p.delta * ops.sign(r))


def _huber_hess(ops: Any, r: Array, p: Any) -> Array:
    return ops.where(ops.abs(r) < p.delta, _like(r, 1.0), _like(r, 0.0))


def _is_zero(beta: Any) -> bool:
    return isinstance(beta, (int, float)) and beta == 0.0


def _safe(ops: Any, beta: Any) -> Any:
    """beta where it is > 0, 1 elsewhere: the quadratic branch of an array beta that is 0 in
    places stays finite (its select never picks it there, and its gradient must not be NaN)."""
    return ops.where(beta > 0, beta, 1.0)


def _smooth_l1(ops: Any, r: Array, p: Any) -> Array:
    if _is_zero(p.beta):
        return ops.abs(r)
    a = ops.abs(r)
    if isinstance(p.beta, (int, float)):
        return ops.where(a < p.beta, (0.5 / p.beta) * (r * r), a - 0.5 * p.beta)
    return ops.where(a < p.beta, 0.5 * (r * r) / _safe(ops, p.beta), a - 0.5 * p.beta)


def _smooth_l1_grad(ops: Any, r: Array, p: Any) -> Array:
    if _is_zero(p.beta):
        return ops.sign(r)
    beta = p.beta if isinstance(p.beta, (int, float)) else _safe(ops, p.beta)
    return ops.where(ops.abs(r) < p.beta, r / beta, ops.sign(r))


def _smooth_l1_hess(ops: Any, r: Array, p: Any) -> Array:
    if _is_zero(p.beta):
        return _like(r, 0.0)
    beta = p.beta if isinstance(p.beta, (int, float)) else _safe(ops, p.beta)
    return ops.where(ops.abs(r) < p.beta, _like(r, 1.0) / beta, _like(r, 0.0))


def _even(ops: Any, r: Array) -> Array:
    """|r| as a select (derivative +1 at 0): an even function of it keeps its curvature at
    r = 0 under every framework's autodiff (through abs, whose derivative is 0 there, a
    second derivative would vanish)."""
    return ops.where(r < 0, -r, r)


def _log_cosh_parts(ops: Any, r: Array) -> tuple[Array, Array, Array]:
    """(|r| as a select, whether it exceeds LOG_COSH_BIG, and k = expm1(min(|r|, BIG)) with
    u = expm1(|r| / 2): k = u (u + 2)). The value and the derivative share them (one
    transcendental between them: a compiler's common-subexpression elimination keeps one)."""
    a = _even(ops, r)
    big = a > LOG_COSH_BIG
    u = ops.expm1(0.5 * ops.where(big, LOG_COSH_BIG, a))  # the unused branch stays finite
    return a, big, u


def _log_cosh(ops: Any, r: Array, p: Any) -> Array:
    # log cosh r = log1p(2 sinh^2(r/2)), sinh(r/2) = u (u + 2) / (2 (u + 1)): no cancellation
    # for small |r| (where |r| + softplus(-2|r|) - log 2 loses every digit below ~1e-4 in
    # float32), and |r| - log 2 beyond LOG_COSH_BIG.
    a, big, u = _log_cosh_parts(ops, r)
    s = u * (u + 2.0) / (2.0 * (u + 1.0))
    return ops.where(big, a - LOG2, ops.log1p(2.0 * (s * s)))


def _tanh(ops: Any, r: Array) -> Array:
    _, big, u = _log_cosh_parts(ops, r)
    k = u * (u + 2.0)  # expm1(|r|); tanh|r| = k (k + 2) / (k (k + 2) + 2), exact near 0
    kk = k * (k + 2.0)
    t = ops.where(big, 1.0, kk / (kk + 2.0))
    return ops.where(r < 0, -t, t)


def _log_cosh_grad(ops: Any, r: Array, p: Any) -> Array:
    return _tanh(ops, r)


def _log_cosh_hess(ops: Any, r: Array, p: Any) -> Array:
    t = _tanh(ops, r)
    return 1.0 - t * t


def log_cosh_small(ops: Any, r: Array) -> Array:
    """log cosh r for |r| <= LOG_COSH_BIG (the accurate form, used by Keras'
    built-in-compatible path where Keras' own formula cancels)."""
    return _log_cosh(ops, r, None)


def _asym(ops: Any, r: Array, tau: Any) -> Array:
    """The expectile's and the quantile's weight: 1 - tau where r > 0 (over-prediction),
    tau elsewhere (under-prediction, and r = 0)."""
    return ops.where(r > 0, _like(r, 1.0) - tau, _like(r, 0.0) + tau)


def _expectile(ops: Any, r: Array, p: Any) -> Array:
    return _asym(ops, r, p.tau) * (r * r)


def _expectile_grad(ops: Any, r: Array, p: Any) -> Array:
    return 2.0 * (_asym(ops, r, p.tau) * r)


def _expectile_hess(ops: Any, r: Array, p: Any) -> Array:
    return 2.0 * _asym(ops, r, p.tau)


def _quantile(ops: Any, r: Array, p: Any) -> Array:
    # selects of the lines, in one elementwise pass (XLA:CPU fused the product of the
    # weight and |r| as two); the inner one makes an autodiff of this formula give the
    # contract's derivative 0 at r = 0
    zero = _like(r, 0.0)
    return ops.where(r > 0, (_like(r, 1.0) - p.tau) * r, ops.where(r < 0, (zero - p.tau) * r, zero))


def _quantile_grad(ops: Any, r: Array, p: Any) -> Array:
    return ops.where(r > 0, _like(r, 1.0) - p.tau, ops.where(r < 0, _like(r, 0.0) - p.tau, _like(r, 0.0)))


def _pseudo_huber_root(ops: Any, r: Array, p: Any) -> Array:
    x = r / p.delta
    return ops.sqrt(1.0 + x * x)


def _pseudo_huber(ops: Any, r: Array, p: Any) -> Array:
    # delta**2 (sqrt(1 + (r/delta)**2) - 1) = r**2 / (sqrt(1 + (r/delta)**2) + 1): no
    # cancellation for small |r|
    return (r * r) / (_pseudo_huber_root(ops, r, p) + 1.0)


def _pseudo_huber_grad(ops: Any, r: Array, p: Any) -> Array:
    return r / _pseudo_huber_root(ops, r, p)


def _pseudo_huber_hess(ops: Any, r: Array, p: Any) -> Array:
    s = _pseudo_huber_root(ops, r, p)
    return 1.0 / (s * s * s)


_DELTA = Param("delta", 0.0, True)
_TAU = Param("tau", 0.0, True, 1.0)

#: Every elementwise penalty (the Gaussian likelihood, which also depends on a variance, is
#: the pipeline's structured stage and has no row).
PENALTY_TABLE: dict[str, Penalty] = {
    p.name: p
    for p in (
        Penalty("square", (), _square, lambda o, r, p: 2.0 * r, lambda o, r, p: _like(r, 2.0),
                "r**2", True),
        Penalty("abs", (), _abs, _sign, _zero, "|r| (derivative 0 at r = 0)", False),
        Penalty("huber", (_DELTA,), _huber, _huber_grad, _huber_hess,
                "0.5 r**2 for |r| < delta, else delta (|r| - delta / 2)", False),
        Penalty("smooth_l1", (Param("beta", 0.0, False),), _smooth_l1, _smooth_l1_grad, _smooth_l1_hess,
                "0.5 r**2 / beta for |r| < beta, else |r| - beta / 2 (beta = 0: |r|)", False),
        Penalty("log_cosh", (), _log_cosh, _log_cosh_grad, _log_cosh_hess, "log(cosh(r))", True),
        Penalty("expectile", (_TAU,), _expectile, _expectile_grad, _expectile_hess,
                "tau r**2 where the prediction is below the target, (1 - tau) r**2 where it is above",
                False),
        Penalty("pseudo_huber", (_DELTA,), _pseudo_huber, _pseudo_huber_grad, _pseudo_huber_hess,
                "delta**2 (sqrt(1 + (r / delta)**2) - 1) (Charbonnier: ~r**2 / 2 near 0, "
                "~delta |r| far away)", True),
        Penalty("quantile", (_TAU,), _quantile, _quantile_grad, _zero,
                "tau |r| where the prediction is below the target, (1 - tau) |r| where it is "
                "above (the pinball loss)", False),
    )
}
