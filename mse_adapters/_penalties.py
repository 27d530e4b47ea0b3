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
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

__all__ = ["Param", "Penalty", "PENALTY_TABLE", "BARRON", "LOG2", "LOG_COSH_BIG", "log_cosh_small"]

Array = Any
Fn = Callable[[Any, Array, Any], Array]  # (ops, r, params) -> array

LOG2 = math.log(2.0)
#: Machine epsilon by dtype name.
EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52}

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

    @property
    def infinite(self) -> bool:
        """Whether the parameter may be infinite: a closed lower bound of -inf admits -inf
        itself (Barron's ``alpha = -inf``, the Welsch loss). Every other parameter is finite."""
        return self.low == -math.inf and not self.low_open

    def admits(self, value: float) -> bool:
        """Whether ``value`` lies in the range (NaN never does; +inf never does; -inf only for
        an :attr:`infinite` parameter)."""
        if not value - value == 0.0 and not (self.infinite and value < 0):  # NaN or inf (traceable)
            return False
        above = value > self.low if self.low_open else value >= self.low
        return above and (self.high is None or value < self.high)


#: No parameter derivatives (the rows whose parameters are not differentiated through the table).
NO_PARAM_GRADS: Mapping[str, Fn] = MappingProxyType({})


class Penalty(NamedTuple):
    """One row of the table. ``param_grads``: d rho / d parameter, by the parameter's name,
    for the rows that give them (a parameter absent from it is differentiated, if at all,
    through ``value``)."""

    name: str
    params: tuple[Param, ...]
    value: Fn
    grad: Fn
    hess: Fn
    formula: str  # plain text, for docstrings and the docs
    smooth: bool  # twice differentiable everywhere
    param_grads: Mapping[str, Fn] = NO_PARAM_GRADS


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
    # (asym r) r, not asym (r r): XLA:CPU's fused reduction of this order is 1.3x faster
    return (_asym(ops, r, p.tau) * r) * r


def _expectile_grad(ops: Any, r: Array, p: Any) -> Array:
    return 2.0 * (_asym(ops, r, p.tau) * r)


def _expectile_hess(ops: Any, r: Array, p: Any) -> Array:
    return 2.0 * _asym(ops, r, p.tau)


def _quantile(ops: Any, r: Array, p: Any) -> Array:
    # selects of the lines, in one elementwise pass (XLA:CPU fused the product of the
    # weight and |r| as two); the inner one makes an autodiff of this formula give the
    # contract's derivative 0 at r = 0
    # (the constants made from r: an autodiff's first derivative still depends on r, so that
    # a second derivative, 0, is taken through it instead of failing)
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


# -- Barron's general robust loss ---------------------------------------------------------
#
# rho(r) = c**2 f(x, alpha), x = r / c, f(x, a) = b / a ((x**2 / b + 1)**(a / 2) - 1), b = |a - 2|
# (J. T. Barron, "A General and Adaptive Robust Loss Function", CVPR 2019). With q = x**2,
# z = q / b, L = log1p(z), u = b L / 2 = (q / 2) log1p(z) / z, y = (a / 2) L = (a / b) u and
# t = y - L = sign(a - 2) u, every quantity is a divided difference of exp at the nodes
# {0, y, t} (docs/design.md, "Barron's general robust loss (numerics)"):
#
#   f = u E(y)                         E(v) = expm1(v) / v = exp[0, v]
#   rho' = r e**t,  rho'' = e**t (b + (a - 1) q) / (b + q)
#   d rho / d c = -2 sign(a - 2) c u**2 exp[0, y, t]
#   d f / d a = (u L**2 / 2) exp[0, y, y, t]  (> 0)
#
# The nodes' finite limits carry alpha = 0 (y = 0), alpha = 2 (t = 0, z -> inf) and
# alpha = -inf (a / b -> -1, z -> 0, L -> 0, u -> q / 2: the Welsch loss) without a special
# case; no select ever feeds a NaN or an inf to a branch it does not pick (their gradients
# would poison the picked one's).

#: Above z = 2**60, log1p(z) is 2 log|x| - log(b) to within 1 / z < 1e-18 (relative): the
#: quotient would overflow float32 near alpha = 2 (x = 1e18, |alpha - 2| = 1.2e-7), and the
#: second derivative of log1p(z) under autodiff, -1 / (1 + z)**2, for x > 4e9 at any alpha.
_Z_BIG = 2.0**60
#: |v| below which expm1(v) / v is its Taylor polynomial: exact at v = 0 and under autodiff
#: (the quotient's derivative loses ~4 eps / |v| to cancellation: <= 16 eps outside).
_E_BAND = 0.25
#: z below which log1p(z) / z is its Taylor polynomial: the quotient's derivative
#: 1 / (z (1 + z)) - log1p(z) / z**2 would overflow for a subnormal z (float32, x = 1e-20).
_G_BAND = 2.0**-10
#: A divided difference of exp whose nodes span less than this (all within [-1, 1] of 0)
#: is its Taylor series; a wider one the recursion on its extreme nodes, which then loses at
#: most a factor ~8 (3 bits) to cancellation (one of its two sub-intervals is >= 1/2 long).
_DD_SPREAD = 1.0
#: e**t for t < 0 is 1 / (1 + expm1(-t / 2))**2; |t| is clamped where e**t underflows to 0
#: in the dtype (expm1(|t| / 2) must stay finite: an inf would make the gradient NaN).
_EXP_CLAMP = {"float16": 20.0, "bfloat16": 170.0, "float32": 170.0, "float64": 1400.0}


def _series_terms(tail: Callable[[int], float]) -> dict[str, int]:
    """Per dtype, the number of Taylor terms n whose relative truncation bound ``tail(n)``
    is below eps / 8."""
    def need(eps: float) -> int:
        n = 1
        while tail(n) > eps / 8:
            n += 1
        return n
    return {name: need(eps) for name, eps in EPS.items()}


#: expm1(v) / v = sum v**k / (k + 1)! for |v| < 1/4 (the value >= E(-1/4) > 1/2).
_N_E = _series_terms(lambda n: 2.0 * _E_BAND**n / math.factorial(n + 1))
#: log1p(z) / z = sum (-z)**k / (k + 1) for 0 <= z < 2**-10 (the value > 0.999).
_N_G = _series_terms(lambda n: 2.0 * _G_BAND**n / (n + 1))
#: phi2(v) = (expm1(v) - v) / v**2 = sum v**k / (k + 2)! for |v| < 1 (the value >= 1/e).
_N_PHI2 = _series_terms(lambda n: 6.0 / math.factorial(n + 2))
#: exp[0, y, t] = sum h_k(y, t) / (k + 2)! and exp[0, y, y, t] = sum h_k(y, y, t) / (k + 3)!
#: with |y|, |t| <= 1: |h_k(y, t)| <= k + 1, |h_k(y, y, t)| <= C(k + 2, 2); the values are
#: >= 1 / (2 e) and 1 / (6 e) (the tails at most twice their first terms).
_N_DD = _series_terms(lambda n: max(11.0 * (n + 1) / math.factorial(n + 2),
                                    33.0 * math.comb(n + 2, 2) / math.factorial(n + 3)))


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _dtype(ops: Any, x: Array) -> str:
    name = ops.dtype(x)
    return name if name in EPS else "float64"


def _poly(v: Array, coefs: list[float]) -> Array:
    """sum coefs[k] v**k by Horner's rule."""
    acc = coefs[-1] * v + coefs[-2]
    for c in reversed(coefs[:-2]):
        acc = acc * v + c
    return acc


def _exp(ops: Any, t: Array, dtype: str, sign: Any = None) -> Array:
    """e**t from expm1 (the primitives have no exp): 1 + expm1(t) for t >= 0; for t < 0,
    1 / (1 + expm1(-t / 2))**2, accurate to a few ulps down to the subnormals (1 + expm1 of
    a negative argument would lose every digit of a small e**t), the argument clamped where
    the result underflows to 0; each branch sees a finite argument (finite gradients).
    ``sign``: the sign of every t, when known as a Python number (one branch, no select)."""
    if _is_number(sign) and sign >= 0:
        return 1.0 + ops.expm1(t)
    neg = t < 0
    h = -t if _is_number(sign) else ops.where(neg, -t, 0.0)
    g = 1.0 + ops.expm1(0.5 * ops.where(h < _EXP_CLAMP[dtype], h, _EXP_CLAMP[dtype]))
    inv = 1.0 / g
    if _is_number(sign):
        return inv * inv
    return ops.where(neg, inv * inv, 1.0 + ops.expm1(ops.where(neg, 0.0, t)))


_E_COEFS = [1.0 / math.factorial(k + 1) for k in range(max(_N_E.values()))]


def _e1(ops: Any, v: Array, dtype: str) -> Array:
    """E(v) = expm1(v) / v (1 at 0): the Taylor polynomial for |v| < _E_BAND."""
    inside = ops.abs(v) < _E_BAND
    poly = _poly(ops.where(inside, v, 0.0), _E_COEFS[:_N_E[dtype]])
    vs = ops.where(inside, 1.0, v)
    return ops.where(inside, poly, ops.expm1(vs) / vs)


def _log1p_ratio(ops: Any, z: Array, dtype: str) -> Array:
    """log1p(z) / z for 0 <= z <= 1 (1 at 0): the Taylor polynomial for z < _G_BAND."""
    inside = z < _G_BAND
    poly = _poly(ops.where(inside, z, 0.0), [(-1.0) ** k / (k + 1) for k in range(_N_G[dtype])])
    zs = ops.where(inside, 1.0, z)
    return ops.where(inside, poly, ops.log1p(zs) / zs)


def _phi2(ops: Any, v: Array, dtype: str) -> Array:
    """phi2(v) = (expm1(v) - v) / v**2 = exp[0, 0, v] (1/2 at 0): the Taylor polynomial for
    |v| < 1 (the quotient loses at most a factor 4.4 to cancellation outside)."""
    inside = ops.abs(v) < 1.0
    poly = _poly(ops.where(inside, v, 0.0), [1.0 / math.factorial(k + 2) for k in range(_N_PHI2[dtype])])
    vs = ops.where(inside, 2.0, v)
    return ops.where(inside, poly, (ops.expm1(vs) - vs) / (vs * vs))


def _de1(ops: Any, v: Array, dtype: str) -> Array:
    """E'(v) = exp[0, v, v] = e**v phi2(-v); for v <= -1 as (1 - e**v (1 - v)) / v**2 (no
    0 * inf; loses at most a factor 6.6 to cancellation)."""
    above = v > -1.0
    va, vb = ops.where(above, v, 0.0), ops.where(above, -1.0, v)
    return ops.where(above, _exp(ops, va, dtype) * _phi2(ops, -va, dtype),
                     (1.0 - _exp(ops, vb, dtype) * (1.0 - vb)) / (vb * vb))


class _Parts(NamedTuple):
    """The shared quantities of Barron's loss at one alpha (see the comment above); the
    alpha-only ones (``b``, ``s``, ``ratio`` = a / b, ``k`` = (a - 1) / b, ``low`` = a < 1,
    ``a_b`` = a where a >= 1 else 1, ``inv_b`` = 1 / b) are Python numbers for a Python-float
    alpha. At alpha = -inf: a / b = (a - 1) / b = -1, 1 / b = L = 0, u = q / 2."""

    dtype: str
    q: Array
    b: Any  # |a - 2|, 1 at a = 2 (where every use is multiplied by sign(a - 2) = 0)
    s: Any
    ratio: Any
    k: Any
    low: Any
    a_b: Any
    inv_b: Any
    big_l: Array
    u: Array
    y: Array
    t: Array


def _alpha_parts(ops: Any, a: Any) -> tuple[Any, ...]:
    """(finite, b, sign(a - 2), a / b, (a - 1) / b, a < 1, a where a >= 1 else 1, 1 / b):
    Python numbers for a Python-float alpha, selects otherwise (-inf replaced by 0 before
    dividing)."""
    if _is_number(a):
        fin = a > -math.inf
        a0 = float(a) if fin else 0.0
        b = abs(a0 - 2.0) or 1.0
        s = float((a0 > 2.0) - (a0 < 2.0))
        return (fin, b, s, (a0 / b if fin else -1.0), ((a0 - 1.0) / b if fin else -1.0), a < 1, max(a0, 1.0),
                (1.0 / b if fin else 0.0))
    fin = a > -math.inf
    d = ops.where(fin, a, 0.0) - 2.0
    b = ops.abs(d)
    b = ops.where(b > 0, b, 1.0)
    a0 = d + 2.0
    low = a < 1
    return (fin, b, ops.sign(d), ops.where(fin, a0 / b, -1.0), ops.where(fin, (a0 - 1.0) / b, -1.0), low,
            ops.where(low, 1.0, a0), ops.where(fin, 1.0 / b, 0.0))


def _pick(ops: Any, cond: Any, x: Any, y: Any) -> Any:
    return (x if cond else y) if isinstance(cond, bool) else ops.where(cond, x, y)


def _parts(ops: Any, r: Array, alpha: Any, scale: Any) -> _Parts:
    x = r / scale
    q = x * x
    fin, b, s, ratio, k, low, a_b, inv_b = _alpha_parts(ops, alpha)
    dtype = _dtype(ops, q if _is_number(b) else q + 0.0 * b)  # the compute dtype (b is finite)
    big = q > b * _Z_BIG  # log1p(q / b) as 2 log|x| - log(b)
    z = ops.where(big, 0.0, q) / b
    log_b = math.log(b) if _is_number(b) else ops.log(b)
    big_l = ops.where(big, 2.0 * ops.log(ops.where(big, ops.abs(x), 1.0)) - log_b, ops.log1p(z))
    small = q <= b  # z <= 1: u = (q / 2) log1p(z) / z, exact as b -> inf (alpha -> -inf)
    g = _log1p_ratio(ops, ops.where(small, z, 0.0), dtype)
    u = ops.where(small, (0.5 * q) * g, (0.5 * b) * big_l)
    u, big_l = _pick(ops, fin, u, 0.5 * q), _pick(ops, fin, big_l, 0.0 * q)
    return _Parts(dtype, q, b, s, ratio, k, low, a_b, inv_b, big_l, u, ratio * u, s * u)


def _divided_difference(ops: Any, p: _Parts, keep: Any, pre: Any, order: int) -> Array:
    """pre u**2 exp[0, y, t] (order 3) or pre u L**2 exp[0, y, y, t] (order 4) where ``keep``
    (finite stand-ins elsewhere), with L = y - t as computed (not recomputed from y and t,
    which are close when alpha << 0). Nodes spanning less than _DD_SPREAD: the Taylor series
    (h_k the complete homogeneous polynomials); wider: the recursion on the extreme nodes,
    with exp[t, y] = e**t E(L) and exp[y, y, v] = e**y phi2(v - y); for 0 <= t <= y with e**t
    factored out and multiplied last (an overflow is inf, never inf - inf, and only where the
    result overflows), for y < 0 with -t = u cancelled (u**2 would overflow float32 at
    alpha = -inf, x = 1e15)."""
    y, t = _pick(ops, keep, p.y, 0.0), _pick(ops, keep, p.t, 0.0)
    u, big_l, dtype = _pick(ops, keep, p.u, 0.0), _pick(ops, keep, p.big_l, 0.0), p.dtype
    spread = ops.where(y > 0, y, 0.0) - ops.where(t < 0, t, 0.0)
    ser = spread < _DD_SPREAD
    ys, ts = ops.where(ser, y, 0.0), ops.where(ser, t, 0.0)
    h3 = h4 = tk = ts * 0.0 + 1.0  # h_0
    series = (0.5 if order == 3 else 1.0 / 6.0) + 0.0 * h3
    for k in range(1, _N_DD[dtype]):
        tk = tk * ts
        h3 = ys * h3 + tk  # h_k(y, t)
        h4 = ys * h4 + h3  # h_k(y, y, t)
        series = series + (h3 if order == 3 else h4) * (1.0 / math.factorial(k + order - 1))
    # the recursion, in each order of the nodes, each on finite stand-ins where it is not used
    up, low = ~ser & (t >= 0), ~ser & (y < 0)  # 0 <= t <= y; t <= y < 0; else t < 0 <= y
    mid = ~(ser | up | low)
    y1, t1, l1 = ops.where(up, y, 1.0), ops.where(up, t, 0.0), ops.where(up, big_l, 1.0)
    up_dd = (_e1(ops, l1, dtype) - _e1(ops, -t1, dtype)) / y1  # exp[0, y, t] e**-t
    y2, t2, l2 = ops.where(mid, y, 1.0), ops.where(mid, t, -1.0), ops.where(mid, big_l, 2.0)
    mid_dd = (_e1(ops, y2, dtype) - _e1(ops, t2, dtype)) / l2
    y3, t3, l3 = ops.where(low, y, -1.0), ops.where(low, t, -2.0), ops.where(low, big_l, 1.0)
    if order == 3:
        low_dd = _e1(ops, y3, dtype) - _exp(ops, t3, dtype) * _e1(ops, l3, dtype)  # times -t = u
        w, w_low = pre * (u * u), pre * u
    else:
        up_dd = (_de1(ops, l1, dtype) - up_dd) / y1
        mid_dd = (_de1(ops, y2, dtype) - mid_dd) / l2
        low_dd = _de1(ops, y3, dtype) - _exp(ops, y3, dtype) * _phi2(ops, -l3, dtype)  # times -t = u
        w, w_low = pre * (u * (big_l * big_l)), pre * (big_l * big_l)
    rec = ops.where(up, (w * up_dd) * _exp(ops, t1, dtype), ops.where(low, w_low * low_dd, w * mid_dd))
    return ops.where(ser, w * series, rec)


def _form_a(ops: Any, p: _Parts, low: Any) -> Array:
    """f = u E(y) = expm1(y) / (a / b) for alpha < 1 (no cancellation; y <= L / 2). The
    quotient by a / b (the definition) never divides by y, whose square overflows float32
    under autodiff at alpha = -inf, x = 1e10, nor loses e**y in a difference; it is the form
    for a Python-float alpha (u itself at alpha = 0). An array alpha may be differentiated:
    u E(y) with E's Taylor polynomial for |y| < _E_BAND, where d/d alpha of the quotient would
    cancel (alpha near 0)."""
    if _is_number(p.ratio):
        return p.u if p.ratio == 0 else ops.expm1(p.y) / p.ratio
    y = _pick(ops, low, p.y, 0.0)
    inside = ops.abs(y) < _E_BAND
    series = p.u * _poly(ops.where(inside, y, 0.0), _E_COEFS[:_N_E[p.dtype]])
    return ops.where(inside, series, ops.expm1(ops.where(inside, 0.0, y)) / ops.where(inside, 1.0, p.ratio))


def _form_b(ops: Any, p: _Parts, low: Any, c2: Any) -> Array:
    """c**2 f = (c**2 q / a) e**t + (c**2 b / a) expm1(t) for alpha >= 1: at alpha = 2 exactly
    q / 2; near it no overflow of (q / b)**(a / 2) (float32, x = 1e18) and no loss to alpha's
    rounding (positive terms for alpha >= 2; for 1 <= alpha < 2 at most a factor 2 / a lost);
    divided first, so that it overflows only where c**2 f does."""
    t = _pick(ops, low, 0.0, p.t)
    return ((c2 * p.q) / p.a_b) * _exp(ops, t, p.dtype, p.s) + ((c2 * p.b) / p.a_b) * ops.expm1(t)


class _Delta(NamedTuple):
    delta: Any


#: Which of the short forms' quantities to compute.
_RHO, _GRAD, _HESS = 0, 1, 2


def _cauchy(ops: Any, r: Array, c: Any, k: int) -> Array:
    """alpha = 0: rho, rho', rho'' (``k``) = c**2 log1p(q / 2), r / d, (1 - q / 2) / d**2, q =
    (r / c)**2, d = 1 + q / 2 (each division on its own: d**2 overflows before the result)."""
    x = r / c
    q = x * x
    if k == _RHO:
        return (c * c) * ops.log1p(0.5 * q)
    d = 1.0 + 0.5 * q
    return r / d if k == _GRAD else ((1.0 - 0.5 * q) / d) / d


def _geman_mcclure(ops: Any, r: Array, c: Any, k: int) -> Array:
    """alpha = -2: c**2 2 q / (q + 4), r / d**2, (1 - 3 q / 4) / d**3, d = 1 + q / 4; the value
    as 2 / (1 + 4 / q) beyond q = 4 (its limit 2 c**2 where q overflows)."""
    x = r / c
    q = x * x
    if k == _RHO:
        big = q > 4.0
        return (c * c) * ops.where(big, 2.0 / (1.0 + 4.0 / ops.where(big, q, 1.0)), (2.0 * q) / (q + 4.0))
    d = 1.0 + 0.25 * q
    return (r / d) / d if k == _GRAD else (((1.0 - 0.75 * q) / d) / d) / d


def _welsch(ops: Any, r: Array, c: Any, k: int) -> Array:
    """alpha = -inf: -c**2 expm1(-q / 2), r e**(-q / 2), (1 - q) e**(-q / 2)."""
    x = r / c
    q = x * x
    if k == _RHO:
        return -(c * c) * ops.expm1(-0.5 * q)
    e = _exp(ops, -0.5 * q, _dtype(ops, q), -1.0)
    return r * e if k == _GRAD else (1.0 - q) * e


#: The named cases' closed forms (rho, rho', rho'') for a Python-float alpha: a few
#: operations, where the general form's stable parts take about thirty (docs/penalties.md).
_NAMED_FORMS = {0.0: _cauchy, -2.0: _geman_mcclure, -math.inf: _welsch}


#: A Python-float alpha at least this far from 2 takes :func:`_power_form`; nearer, the
#: general form (whose parts keep q / b and its logarithm apart).
POWER_FORM_FROM = 1e-3


def _power_form(ops: Any, r: Array, c: Any, k: int, a: float) -> Array:
    """A Python-float alpha away from 2 (and not 0, 1, -inf): with b = |a - 2|, L =
    log1p(q / b), rho, rho', rho'' (``k``) = c**2 (b / a) expm1(a L / 2), r e**t, e**t (b +
    (a - 1) q) / (b + q), t = (a / 2 - 1) L: a few operations, accurate to a few ulps times the
    exponent a L / 2 (the tolerance of the general form too)."""
    b = abs(a - 2.0)
    x = r / c
    q = x * x
    big_l = ops.log1p(q / b)
    if k == _RHO:
        return (c * c) * (b / a) * ops.expm1((0.5 * a) * big_l)
    dtype, sign = _dtype(ops, q), 1.0 if a > 2.0 else -1.0
    if k == _GRAD:
        half = _exp(ops, (0.25 * a - 0.5) * big_l, dtype, sign)  # r e**t as (r e**(t/2)) e**(t/2), as the row
        return (r * half) * half
    # the row's ratios: no overflow of (a - 1) q (alpha << 0) nor of q / b (alpha near 2)
    ratio = (1.0 + ((a - 1.0) / b) * q) / (1.0 + q / b) if a < 1.0 else (b + (a - 1.0) * q) / (b + q)
    return _exp(ops, (0.5 * a - 1.0) * big_l, dtype, sign) * ratio


def _short(ops: Any, r: Array, p: Any, k: int) -> Array | None:
    """rho, rho' or rho'' (``k``) by a short form: the closed form of a named case, or the power
    form for another Python-float alpha away from 2; None for an array alpha (or one near 2:
    the general form)."""
    if not _is_number(p.alpha):
        return None
    if p.alpha in _NAMED_FORMS:
        return _NAMED_FORMS[p.alpha](ops, r, p.scale, k)
    if abs(p.alpha - 2.0) < POWER_FORM_FROM:
        return None
    return _power_form(ops, r, p.scale, k, float(p.alpha))


def _barron(ops: Any, r: Array, p: Any) -> Array:
    if _is_number(p.alpha) and p.alpha == 2.0:  # c**2 (r / c)**2 / 2, written as mse / 2
        return 0.5 * (r * r)
    if _is_number(p.alpha) and p.alpha == 1.0:  # bit for bit the pseudo-Huber row
        return _pseudo_huber(ops, r, _Delta(p.scale))
    if (short := _short(ops, r, p, _RHO)) is not None:
        return short
    pt, c2 = _parts(ops, r, p.alpha, p.scale), p.scale * p.scale
    if isinstance(pt.low, bool):
        return c2 * _form_a(ops, pt, True) if pt.low else _form_b(ops, pt, False, c2)
    return ops.where(pt.low, c2 * _form_a(ops, pt, pt.low), _form_b(ops, pt, pt.low, c2))


def _barron_grad(ops: Any, r: Array, p: Any) -> Array:
    if _is_number(p.alpha) and p.alpha == 1.0:
        return _pseudo_huber_grad(ops, r, _Delta(p.scale))
    if (short := _short(ops, r, p, _GRAD)) is not None:
        return short
    pt = _parts(ops, r, p.alpha, p.scale)
    half = _exp(ops, 0.5 * pt.t, pt.dtype, pt.s)  # r e**t as (r e**(t/2)) e**(t/2): e**t may be subnormal
    return (r * half) * half


def _barron_hess(ops: Any, r: Array, p: Any) -> Array:
    if _is_number(p.alpha) and p.alpha == 1.0:
        return _pseudo_huber_hess(ops, r, _Delta(p.scale))
    if (short := _short(ops, r, p, _HESS)) is not None:
        return short
    pt = _parts(ops, r, p.alpha, p.scale)
    # e**t (b + (a - 1) q) / (b + q): positive terms for alpha >= 1 (1 at alpha = 2, b = 1
    # there); (1 + k q) / (1 + q / b) below, with k = (a - 1) / b -> -1, 1 / b -> 0 as
    # alpha -> -inf (b > 1: no overflow)
    if isinstance(pt.low, bool):
        ratio = ((1.0 + pt.k * pt.q) / (1.0 + pt.q * pt.inv_b) if pt.low
                 else (pt.b + (pt.a_b - 1.0) * pt.q) / (pt.b + pt.q))
    else:
        q_low, q_high = ops.where(pt.low, pt.q, 0.0), ops.where(pt.low, 0.0, pt.q)
        ratio = ops.where(pt.low, (1.0 + pt.k * q_low) / (1.0 + q_low * pt.inv_b),
                          (pt.b + (pt.a_b - 1.0) * q_high) / (pt.b + q_high))
    return _exp(ops, pt.t, pt.dtype, pt.s) * ratio


def _near_two(p: _Parts) -> Any:
    """Where the closed forms of the parameter derivatives hold: alpha >= 1 and L >= 1/2 (the
    nodes y ~ L and t ~ 0 far apart; e**y may overflow float32 there, f does not). None when
    nowhere (a Python-float alpha < 1)."""
    wide = p.big_l >= 0.5
    if isinstance(p.low, bool):
        return None if p.low else wide
    return (~p.low) & wide


def _lift(ops: Any, p: _Parts, near: Any) -> tuple[Array, ...]:
    """Near alpha = 2 (where ``near``; finite stand-ins elsewhere): (m, e**t, y, t, L, e**-L)
    with u e**y = m e**t, m = u + q L / 2 (e**y itself may overflow where the result does not)."""
    t, u = ops.where(near, p.t, 0.0), ops.where(near, p.u, 0.0)
    y, big_l = ops.where(near, p.y, 1.0), ops.where(near, p.big_l, 1.0)
    return (u + 0.5 * p.q * big_l, _exp(ops, t, p.dtype), y, t, big_l, _exp(ops, -big_l, p.dtype))


def _times_lift(ops: Any, w: Array, m: Array, et: Array, t: Array) -> Array:
    """w m e**t in the order that overflows only where the product does: e**t (< 1) into m
    first for t < 0, last for t >= 0."""
    return ops.where(t < 0, w * (m * et), (w * m) * et)


def _barron_dscale(ops: Any, r: Array, p: Any) -> Array:
    """d rho / d c = c (2 f - q e**t) = -2 sign(a - 2) c u**2 exp[0, y, t]; near alpha = 2
    (alpha >= 1, L >= 1/2) as -sign(a - 2) c b u e**y (E(-y) - e**-L E(-t))."""
    pt = _parts(ops, r, p.alpha, p.scale)
    pre = -pt.s * p.scale
    near = _near_two(pt)
    if near is None:
        return _divided_difference(ops, pt, True, 2.0 * pre, 3)
    m, et, y, t, _, e_l = _lift(ops, pt, near)
    close = _times_lift(ops, (pre * pt.b) * (_e1(ops, -y, pt.dtype) - e_l * _e1(ops, -t, pt.dtype)), m, et, t)
    return ops.where(near, close, _divided_difference(ops, pt, ~near, 2.0 * pre, 3))


def _compute_dtype(ops: Any, r: Array, p: Any) -> str:
    x = r / p.scale
    return _dtype(ops, x if _is_number(p.alpha) else x + 0.0 * ops.where(p.alpha > -math.inf, p.alpha, 0.0))


def _alpha_off_two(ops: Any, alpha: Any, eps: float) -> Any:
    """alpha, moved to 2 -/+ eps where |alpha - 2| < eps (the convention at alpha = 2)."""
    if _is_number(alpha):
        return alpha if abs(alpha - 2.0) >= eps else (2.0 + eps if alpha > 2.0 else 2.0 - eps)
    finite = ops.where(alpha > -math.inf, alpha, 0.0)
    moved = ops.where(alpha > 2.0, _like(finite, 2.0 + eps), _like(finite, 2.0 - eps))
    return ops.where(ops.abs(finite - 2.0) < eps, moved, alpha)


def _barron_dalpha(ops: Any, r: Array, p: Any) -> Array:
    """d rho / d alpha = c**2 (u L**2 / 2) exp[0, y, y, t] (> 0); near alpha = 2 (alpha >= 1,
    L >= 1/2) as c**2 u e**y (L phi2(-y) - E(-y) + e**-L E(-t)) / 2. It grows like
    log(1 / |alpha - 2|) on both sides of 2: within |alpha - 2| < eps (the compute dtype's;
    alpha = 2 itself when alpha has that dtype) it is held at its value at 2 -/+ eps."""
    alpha = _alpha_off_two(ops, p.alpha, EPS[_compute_dtype(ops, r, p)])
    pt = _parts(ops, r, alpha, p.scale)
    pre = 0.5 * (p.scale * p.scale)
    near = _near_two(pt)
    if near is None:
        return _divided_difference(ops, pt, True, pre, 4)
    m, et, y, t, big_l, e_l = _lift(ops, pt, near)
    bracket = big_l * _phi2(ops, -y, pt.dtype) - _e1(ops, -y, pt.dtype) + e_l * _e1(ops, -t, pt.dtype)
    close = _times_lift(ops, pre * bracket, m, et, t)
    return ops.where(near, close, _divided_difference(ops, pt, ~near, pre, 4))


_ALPHA = Param("alpha", -math.inf, False)  # -inf itself admitted: the Welsch loss
_SCALE = Param("scale", 0.0, True)

#: Barron's general robust loss.
BARRON = Penalty(
    "barron", (_ALPHA, _SCALE), _barron, _barron_grad, _barron_hess,
    "scale**2 f(r / scale), f(x) = |alpha - 2| / alpha ((x**2 / |alpha - 2| + 1)**(alpha / 2) - 1), "
    "with its limits x**2 / 2 (alpha = 2), log(x**2 / 2 + 1) (alpha = 0) and 1 - exp(-x**2 / 2) "
    "(alpha = -inf) (Barron, CVPR 2019; alpha = 1: pseudo-Huber with delta = scale). "
    "d rho / d alpha grows like log(1 / |alpha - 2|) near 2; within |alpha - 2| < eps of the compute "
    "dtype it is held at its value at 2 -/+ eps", True,
    MappingProxyType({"alpha": _barron_dalpha, "scale": _barron_dscale}))
PENALTY_TABLE[BARRON.name] = BARRON
