"""Barron's general robust loss in mpmath: the reference of tests/core/test_barron.py, written
from the definition and textbook calculus, independently of the library's formulas.

rho(r) = c**2 f(r / c), f(x, a) = |a - 2| / a ((x**2 / |a - 2| + 1)**(a / 2) - 1) with its
limits x**2 / 2 (a = 2), log(x**2 / 2 + 1) (a = 0), 1 - exp(-x**2 / 2) (a = -inf); rho'(r) =
r (x**2 / |a - 2| + 1)**(a / 2 - 1) (Barron's paper); rho'' the derivative of that; d rho / d c
by Euler's identity for rho(r; c) = c**2 f(r / c): (2 rho - r rho') / c; d rho / d alpha a
central difference in alpha. Every value is correct to 50 digits or more: the working
precision (``DPS``) covers the difference quotients' step (1e-60) and the cancellation of
rho(alpha + h) - rho(alpha - h) for |x| down to 1e-20 (a relative change of x**4 h).

``bound`` is the per-element error scale the tests multiply by a few ulps (the harness
table's ``barron-<dtype>`` entries): the condition numbers of the function with respect to
its inputs, plus the exponent of the evaluation (module docstring of the test).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import mpmath as mp

DPS = 200
#: the digits every value of the oracle is correct to
DIGITS = 50
#: the step of the difference quotients that define rho'' and d rho / d alpha
STEP = mp.mpf(10) ** -60
#: the (relative) step of the difference quotients that estimate condition numbers
COND_STEP = mp.mpf(10) ** -20

Fn = Callable[[float, float, float], mp.mpf]


def f(x: mp.mpf, a: float) -> mp.mpf:
    q = x * x
    if a == -math.inf:
        return -mp.expm1(-q / 2)
    if a == 0:
        return mp.log1p(q / 2)
    if a == 2:
        return q / 2
    a = mp.mpf(a)
    b = abs(a - 2)
    return b / a * mp.expm1(a / 2 * mp.log1p(q / b))


def _w(x: mp.mpf, a: float) -> mp.mpf:
    """rho'(r) / r = (x**2 / |a - 2| + 1)**(a / 2 - 1)."""
    q = x * x
    if a == -math.inf:
        return mp.exp(-q / 2)
    if a == 2:
        return mp.mpf(1)
    a = mp.mpf(a)
    return mp.power(q / abs(a - 2) + 1, a / 2 - 1)


def rho(r: float, a: float, c: float) -> mp.mpf:
    with mp.workdps(DPS):
        c = mp.mpf(c)
        return c * c * f(mp.mpf(r) / c, a)


def grad(r: float, a: float, c: float) -> mp.mpf:
    with mp.workdps(DPS):
        return mp.mpf(r) * _w(mp.mpf(r) / c, a)


def hess(r: float, a: float, c: float) -> mp.mpf:
    if r == 0:
        return mp.mpf(1)
    with mp.workdps(DPS):
        return mp.diff(lambda s: s * _w(s / c, a), mp.mpf(r), h=abs(mp.mpf(r)) * STEP)


def dscale(r: float, a: float, c: float) -> mp.mpf:
    with mp.workdps(DPS):
        return (2 * rho(r, a, c) - mp.mpf(r) * grad(r, a, c)) / c


def dalpha(r: float, a: float, c: float) -> mp.mpf:
    """d rho / d alpha (0 at alpha = -inf, its limit; +inf at alpha = 2, see ``dalpha_held``)."""
    if a == -math.inf or r == 0:
        return mp.mpf(0)
    with mp.workdps(DPS):
        return mp.diff(lambda s: rho(r, s, c), mp.mpf(a), h=STEP)


def dalpha_held(eps: float) -> Fn:
    """d rho / d alpha with the row's convention: at |alpha - 2| < eps, its value at 2 -/+ eps."""
    def held(r: float, a: float, c: float) -> mp.mpf:
        if a != -math.inf and abs(a - 2) < eps:
            a = 2 + eps if a > 2 else 2 - eps
        return dalpha(r, a, c)
    return held


def exponent(r: float, a: float, c: float) -> mp.mpf:
    """The largest exponent the evaluation takes exp of: max(|a / 2|, |a / 2 - 1|) L, L =
    log1p(x**2 / |a - 2|) (x**2 / 2 at alpha = -inf). A computed exponent v carries
    |v| eps of its own rounding into e**v (the primitives have no pow to do better)."""
    with mp.workdps(30):
        x = mp.mpf(r) / c
        if a == -math.inf:
            return x * x / 2
        if a == 2:
            return mp.mpf(0)
        big_l = mp.log1p(x * x / abs(mp.mpf(a) - 2))
        return max(abs(mp.mpf(a) / 2), abs(mp.mpf(a) / 2 - 1)) * big_l


@functools.cache
def reference(name: str, r: float, a: float, c: float, eps: float) -> tuple[mp.mpf, mp.mpf]:
    """(the function ``name`` at (r, alpha, c), its error scale): |g| (1 + exponent) plus the
    sum of |v dg/dv| over the inputs v = r, c and, for alpha, min(|alpha|, |alpha - 2|) |dg/da|
    (alpha - 2 is exact near 2, so there its rounding is relative to |alpha - 2|)."""
    g = FUNCTIONS[name] if name != "dalpha" else dalpha_held(eps)
    if name == "dalpha" and a != -math.inf and abs(a - 2) < eps:
        a = 2 + eps if a > 2 else 2 - eps  # the convention's alpha: its conditioning
    with mp.workdps(DPS):
        value = g(r, a, c)
        scale = abs(value) * (1 + exponent(r, a, c))
        if r != 0:
            scale += abs(mp.diff(lambda s: g(s, a, c), mp.mpf(r), h=abs(mp.mpf(r)) * COND_STEP) * r)
        scale += abs(mp.diff(lambda s: g(r, a, s), mp.mpf(c), h=mp.mpf(c) * COND_STEP) * c)
        lever = 0 if a == -math.inf else min(abs(mp.mpf(a)), abs(mp.mpf(a) - 2))
        if lever > 0:
            scale += abs(mp.diff(lambda s: g(r, s, c), mp.mpf(a), h=lever * COND_STEP) * lever)
    return value, scale


FUNCTIONS: dict[str, Fn] = {"value": rho, "grad": grad, "hess": hess, "dscale": dscale, "dalpha": dalpha}
