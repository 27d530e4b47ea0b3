"""Barron's general robust loss, the ``BARRON`` row of the penalty table: rho, rho', rho'',
d rho / d alpha and d rho / d scale against mpmath (tests/oracles/barron.py), in float64 and
float32 NumPy, with alpha and scale as Python floats and as arrays.

Every element g must satisfy |g - g_ref| <= rtol * scale + atol, ``TOLERANCE["barron-<dtype>"]``:
rtol is 8 ulps, scale is the element's error scale: |g_ref| (1 + v) + |r dg/dr| + |c dg/dc| +
min(|a|, |a - 2|) |dg/da|, the first-order effect of one rounding on each input (alpha - 2 is
exact near 2, so there its rounding is relative to |alpha - 2|) plus the exponent v that the
evaluation takes exp of (a computed exponent carries |v| eps into e**v: the primitives have no
pow). atol is the smallest normal number (results that underflow). The grid: alpha in
{-inf, -1e6, -10, -2, -1, -1e-3, -1e-8, 0, 1e-8, 1e-3, 0.5, 1, 2 -/+ 1e-3, 2 -/+ 1e-7, 2, 3, 10},
x = r / scale in {0, 1e-20, 1e-8, 1e-3, 0.5, 1, 3, 1e3, 1e15, X_MAX} and their negatives
(X_MAX = 1e30 in float64, 1e18 in float32: no overflow where the true value is finite; where it
is not, the result is inf of its sign).

At alpha = 2, d rho / d alpha is +inf (f = x**2 / 2 + O(|a - 2| log(1 / |a - 2|))): the row
holds it at its value at 2 -/+ eps within |alpha - 2| < eps (test_dalpha_near_two).
"""

from __future__ import annotations

import math
from collections import namedtuple
from typing import Any

import mpmath as mp
import numpy as np
import pytest

from mse_adapters import _prepare, _spec
from mse_adapters._host import HOST
from mse_adapters._ops import EPS
from mse_adapters._penalties import BARRON, PENALTY_TABLE
from tests.conformance.harness import TOLERANCE
from tests.oracles import barron as oracle

#: the float32 grid reaches true overflows (x = 1e18, alpha = 10: rho = inf, as it must be)
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

Params = namedtuple("Params", "alpha scale")
ALPHAS = (-math.inf, -1e6, -10.0, -2.0, -1.0, -1e-3, -1e-8, 0.0, 1e-8, 1e-3, 0.5, 1.0, 2 - 1e-3, 2 - 1e-7,
          2.0, 2 + 1e-7, 2 + 1e-3, 3.0, 10.0)
XS = (0.0, 1e-20, 1e-8, 1e-3, 0.5, 1.0, 3.0, 1e3, 1e15)
X_MAX = {"float64": 1e30, "float32": 1e18}
SCALE = 0.75
FUNCTIONS = {"value": BARRON.value, "grad": BARRON.grad, "hess": BARRON.hess,
             "dalpha": BARRON.param_grads["alpha"], "dscale": BARRON.param_grads["scale"]}
ODD = {"grad"}  # the others are even in r


def _residuals(dtype: str) -> np.ndarray:
    xs = np.asarray((*XS, X_MAX[dtype]))
    return (np.concatenate([xs, -xs[1:]]) * SCALE).astype(dtype)


def _reference(name: str, r: float, a: float, dtype: str) -> tuple[mp.mpf, mp.mpf]:
    """The oracle at |r| (one mpmath evaluation per pair of signs), the sign restored."""
    value, scale = oracle.reference(name, abs(r), a, SCALE, EPS[dtype])
    return (-value if name in ODD and r < 0 else value), scale


def _failures(name: str, dtype: str, got: Any, r: Any, a: Any) -> list[str]:
    rtol, atol = TOLERANCE[f"barron-{dtype}"]
    largest = float(np.finfo(dtype).max)
    out = []
    arrays = np.broadcast_arrays(np.asarray(got, np.float64), np.asarray(r, np.float64), np.asarray(a, np.float64))
    for g, ri, ai in zip(*(x.ravel() for x in arrays)):
        ref, scale = _reference(name, float(ri), float(ai), dtype)
        if abs(ref) > largest:
            ok = bool(np.isinf(g)) and (g > 0) == (ref > 0)
        else:
            ok = bool(np.isfinite(g)) and abs(mp.mpf(float(g)) - ref) <= rtol * scale + atol
        if not ok:
            out.append(f"alpha={ai!r} r={ri!r}: got {g!r}, mpmath {mp.nstr(ref, 17)} (error scale {mp.nstr(scale, 3)})")
    return out


@pytest.mark.parametrize("alpha", [-math.inf, -2.0, -1e-3, 0.0, 0.5, 1.0, 2 - 1e-7, 2.0, 3.0])
def test_the_oracle_derivatives_are_difference_quotients_of_its_rho(alpha):
    """The oracle's rho' (Barron's closed form) and d rho / d c (Euler's identity) are mpmath's
    difference quotients of its rho, to the oracle's digits (where rho' is not exponentially
    smaller than rho: a quotient cannot resolve that)."""
    agree = mp.mpf(10) ** -oracle.DIGITS
    with mp.workdps(oracle.DPS):
        for r in (1e-3, 0.4, 2.5):
            slope = mp.diff(lambda s: oracle.rho(s, alpha, SCALE), mp.mpf(r), h=oracle.STEP)
            assert abs(slope - oracle.grad(r, alpha, SCALE)) <= agree * abs(slope)
            by_c = mp.diff(lambda c, r=r: oracle.rho(r, alpha, c), mp.mpf(SCALE), h=oracle.STEP)
            assert abs(by_c - oracle.dscale(r, alpha, SCALE)) <= agree * (abs(by_c) + abs(slope))


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_python_float_parameters_against_mpmath(name, dtype):
    r = _residuals(dtype)
    bad = []
    for a in ALPHAS:  # a Python-float alpha: its formulas chosen statically, exact in the reference
        got = FUNCTIONS[name](HOST, r, Params(a, SCALE))
        assert got.dtype == np.dtype(dtype)
        bad += _failures(name, dtype, got, r, a)
    assert not bad, f"{name} ({dtype}): {len(bad)} elements off\n" + "\n".join(bad)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_array_parameters_against_mpmath(name, dtype):
    """alpha and scale as arrays of the residuals' dtype, broadcast against them: every alpha
    (-inf among them) in one call, each branch selected per element."""
    r = _residuals(dtype)[None, :]
    a = np.asarray(ALPHAS, dtype=dtype)[:, None]
    got = FUNCTIONS[name](HOST, r, Params(a, np.full((1, 1), SCALE, dtype=dtype)))
    assert got.dtype == np.dtype(dtype) and got.shape == (len(ALPHAS), r.size)
    bad = _failures(name, dtype, got, r, a)
    assert not bad, f"{name} ({dtype}): {len(bad)} elements off\n" + "\n".join(bad)


@pytest.mark.parametrize("alpha", [-math.inf, -1e6, -2.0, 0.0, 1e-8, 0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("array", [False, True], ids=["float", "array"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_zero_residual(alpha, array, dtype):
    """rho(0) = 0, rho'(0) = 0, rho''(0) = 1 and both parameter derivatives 0, exactly."""
    r = np.zeros(3, dtype=dtype)
    p = Params(np.full(3, alpha, dtype=dtype) if array else alpha, SCALE)
    for name, want in (("value", 0.0), ("grad", 0.0), ("hess", 1.0), ("dalpha", 0.0), ("dscale", 0.0)):
        assert np.array_equal(FUNCTIONS[name](HOST, r, p), np.full(3, want)), name


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_alpha_one_is_pseudo_huber_bit_for_bit(dtype):
    r = _residuals(dtype)
    huber = PENALTY_TABLE["pseudo_huber"]
    for fn, other in ((BARRON.value, huber.value), (BARRON.grad, huber.grad), (BARRON.hess, huber.hess)):
        assert np.array_equal(fn(HOST, r, Params(1.0, SCALE)), other(HOST, r, namedtuple("D", "delta")(SCALE)))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_alpha_two_scale_one_is_half_the_square_bit_for_bit(dtype):
    """barron(alpha=2, scale=1) = r**2 / 2 = mse / 2, alpha as a float and as an array."""
    r = _residuals(dtype)
    half_square = PENALTY_TABLE["square"].value(HOST, r, None) / 2
    for alpha in (2.0, np.full(r.shape, 2.0, dtype=dtype)):
        p = Params(alpha, 1.0)
        assert np.array_equal(BARRON.value(HOST, r, p), half_square)
        assert np.array_equal(BARRON.grad(HOST, r, p), r)
        assert np.array_equal(BARRON.hess(HOST, r, p), np.ones_like(r))
        assert np.array_equal(BARRON.param_grads["scale"](HOST, r, p), np.zeros_like(r))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_array_alpha_one_is_pseudo_huber(dtype):
    """An array alpha = 1 goes through the general formulas: pseudo-Huber to the tolerance."""
    r = _residuals(dtype)
    huber = PENALTY_TABLE["pseudo_huber"]
    rtol, atol = TOLERANCE[f"barron-{dtype}"]
    p = Params(np.ones(r.shape, dtype=dtype), SCALE)
    for fn, other in ((BARRON.value, huber.value), (BARRON.grad, huber.grad), (BARRON.hess, huber.hess)):
        want = other(HOST, r.astype(np.float64), namedtuple("D", "delta")(SCALE))
        expo = np.asarray([float(oracle.exponent(float(x), 1.0, SCALE)) for x in r])
        assert np.all(np.abs(fn(HOST, r, p) - want) <= rtol * np.abs(want) * (2 + expo) + atol)


def _named_cases(r: np.ndarray, c: float) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """The closed forms (value, rho') of Cauchy (alpha = 0), Geman-McClure (-2), Welsch (-inf)."""
    q = (r / c) ** 2
    return {0.0: (c * c * np.log1p(q / 2), r / (1 + q / 2)),
            -2.0: (c * c * 2 * q / (q + 4), 16 * r / (q + 4) ** 2),
            -math.inf: (-c * c * np.expm1(-q / 2), r * np.exp(-q / 2))}


@pytest.mark.parametrize("array", [False, True], ids=["float", "array"])
def test_named_cases(array):
    r = _residuals("float64")
    rtol, atol = TOLERANCE["barron-float64"]
    for alpha, (value, slope) in _named_cases(r, SCALE).items():
        p = Params(np.full(r.shape, alpha) if array else alpha, SCALE)
        # the closed forms are a few ulps themselves; e**(-x**2 / 2) carries x**2 / 2 ulps
        expo = np.asarray([float(oracle.exponent(float(x), alpha, SCALE)) for x in r])
        assert np.all(np.abs(BARRON.value(HOST, r, p) - value) <= rtol * np.abs(value) * (1 + expo) + atol)
        assert np.all(np.abs(BARRON.grad(HOST, r, p) - slope) <= rtol * np.abs(slope) * (1 + expo) + atol)


CONTINUITY = [10.0**-k for k in (1, 2, 4, 6, 8, 10, 12, 14)]
#: from here on the distance to the center shrinks monotonically (further out, d rho / d alpha
#: for alpha > 2 and large |x| grows with alpha like x**alpha log x, against the log(1 / |alpha - 2|))
ASYMPTOTIC = 2


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("center", [0.0, 2.0])
def test_continuity_across_zero_and_two(name, center):
    """On a fine grid of alpha either side of 0 and of 2: within the tolerance of mpmath, and
    the distance to the value at the center shrinking as alpha approaches it (the derivative
    with respect to alpha: to the held value at 2)."""
    r = np.asarray([1.3, -1.3, 1e3]) * SCALE
    alphas = [center + s * d for d in CONTINUITY for s in (-1.0, 1.0)] + [center]
    got = {a: FUNCTIONS[name](HOST, r, Params(a, SCALE)) for a in alphas}
    bad = [line for a in alphas for line in _failures(name, "float64", got[a], r, np.full(r.shape, a))]
    assert not bad, "\n".join(bad)
    rtol, atol = TOLERANCE["barron-float64"]
    noise = rtol * np.abs(got[center]) * 64 + atol
    for side in (-1.0, 1.0):
        gaps = [np.abs(got[center + side * d] - got[center]) for d in CONTINUITY[ASYMPTOTIC:]]
        assert all(np.all(b <= a + noise) for a, b in zip(gaps, gaps[1:])), (side, gaps)


def test_dalpha_near_two():
    """d f / d alpha grows like log(1 / |alpha - 2|) on both sides of 2 (mpmath, x = 1.3: below
    and above 2, 1.32 and 1.38 at |alpha - 2| = 1e-2, then 3.27, 7.16, 14.9 at 1e-4, 1e-8,
    1e-16); the row's values are finite, increase toward 2 on each side, and at alpha = 2 are
    those at 2 - eps."""
    for gap, wants in ((1e-2, ("1.32", "1.38")), (1e-4, ("3.27",) * 2), (1e-8, ("7.16",) * 2),
                       (1e-16, ("14.9",) * 2)):
        for side, want in zip((-1, 1), wants):
            with mp.workdps(oracle.DPS):
                a = 2 + side * mp.mpf(gap)
                got = mp.diff(lambda s: oracle.f(mp.mpf("1.3"), s), a, h=oracle.STEP)
            assert mp.nstr(got, 3) == want, (gap, side, got)
    dalpha = BARRON.param_grads["alpha"]
    for dtype in ("float64", "float32"):
        eps = EPS[dtype]
        r = np.asarray([1.3], dtype=dtype)
        steps = [2.0**-k for k in range(1, 60) if 2.0**-k >= eps]
        for side in (-1.0, 1.0):
            vals = [float(dalpha(HOST, r, Params(np.asarray(2 + side * d, dtype=dtype), 1.0))[0]) for d in steps]
            assert all(np.isfinite(vals)) and all(b > a for a, b in zip(vals, vals[1:])), (dtype, side, vals)
        held = dalpha(HOST, r, Params(np.asarray(2.0, dtype=dtype), 1.0))
        assert np.array_equal(held, dalpha(HOST, r, Params(np.asarray(2 - eps, dtype=dtype), 1.0)))
        assert np.array_equal(held, dalpha(HOST, r, Params(2.0, 1.0)))


def test_parameters_and_ranges():
    """alpha: any real number or -inf (a closed lower bound of -inf admits -inf itself);
    scale > 0; the other rows' parameters stay finite. The spec's and the preparation's
    checks follow the ranges."""
    alpha, scale = BARRON.params
    assert (alpha.name, scale.name) == ("alpha", "scale") and set(BARRON.param_grads) == {"alpha", "scale"}
    assert alpha.infinite and not scale.infinite
    assert [alpha.admits(v) for v in (-math.inf, -1e300, 0.0, 2.0, 1e300, math.inf, math.nan)] == [
        True, True, True, True, True, False, False]
    assert [scale.admits(v) for v in (1e-300, 1.0, 0.0, -1.0, math.inf, math.nan)] == [
        True, True, False, False, False, False]
    assert PENALTY_TABLE["barron"] is BARRON and _spec._USERS["alpha"] == ("barron",)
    for row in PENALTY_TABLE.values():
        if row is not BARRON:
            assert not row.param_grads and all(not p.infinite and not p.admits(math.inf) for p in row.params)
    assert _spec._check_param("alpha", -math.inf) == -math.inf
    for bad in (math.inf, math.nan):
        with pytest.raises(ValueError, match="alpha must be a real number or -inf"):
            _spec._check_param("alpha", bad)
    with pytest.raises(ValueError, match="delta must be finite"):
        _spec._check_param("delta", math.inf)
    check = _prepare._param_check("alpha")

    def rules(x: list[float]) -> Any:
        return check.rules(np, *check.stats(HOST, np.asarray(x)))

    assert all(bool(ok) for ok, _, _ in rules([-math.inf, 0.0, 2.0, 5.0]))
    for bad in ([0.0, math.inf], [math.nan, 1.0]):
        (ok, message, _), _ = rules(bad)
        assert not bool(ok) and "alpha must be a real number or -inf" in message
    (ok, message, _), _ = _prepare._param_check("delta").rules(np, -math.inf, 1.0)
    assert not bool(ok) and "delta must be finite" in message


# -- autodiff of the value ---------------------------------------------------------------
#
# The general pipeline differentiates ``value`` (the NumPy reference by its own reverse mode,
# the frameworks by theirs). Its derivatives must be finite wherever the
# value and the table's derivative are (no select may feed a NaN or an inf to the branch it
# does not pick) and agree with the table's to the tolerance, with the chain rule's terms,
# which cancel in the saturated tails and for small |x|, in the error scale: |rho| / |r| (d/dr),
# |rho| / r**2 (d2/dr2), |rho| (d/dalpha), |rho| / c (d/dscale), times 1 + the exponent. At
# alpha = 2 exactly autodiff gives d rho / d alpha = -r**2 / 4 (the derivative of b = |alpha - 2|
# is 0 there): a framework must take d/dalpha from ``param_grads`` (the table's convention).

AUTODIFF_ALPHAS = tuple(a for a in ALPHAS if a != 2.0)


def _autodiff_grid(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    xs = np.asarray((*XS, -1e-3, -3.0, -1e15))
    a, x = np.meshgrid(np.asarray(AUTODIFF_ALPHAS + (2.0,)), xs, indexing="ij")
    return a.ravel().astype(dtype), (x.ravel() * SCALE).astype(dtype)


def _check_autodiff(dtype: str, a: np.ndarray, r: np.ndarray, auto: dict[str, np.ndarray]) -> None:
    p = Params(a, np.full(r.shape, SCALE, dtype=dtype))
    from mse_adapters._penalties import _parts
    parts = _parts(HOST, r.astype(np.float64), a.astype(np.float64), SCALE)
    expo = 1 + np.abs(parts.y) + np.abs(parts.t)
    rho = np.abs(BARRON.value(HOST, r, p).astype(np.float64))
    ar = np.abs(r.astype(np.float64))
    scales = {"grad": rho / np.where(ar > 0, ar, 1), "hess": rho / np.where(ar > 0, ar * ar, 1),
              "dalpha": rho, "dscale": rho / SCALE}
    rtol, atol = TOLERANCE[f"barron-{dtype}"]
    two = a == 2
    for name, got in auto.items():
        table = FUNCTIONS[name](HOST, r, p).astype(np.float64)
        live = np.isfinite(table) & np.isfinite(rho) & ~(two if name == "dalpha" else False)
        assert np.all(np.isfinite(got[live])), (name, a[live & ~np.isfinite(got)], r[live & ~np.isfinite(got)])
        with np.errstate(invalid="ignore"):  # inf - inf where the value overflows (not checked)
            err = np.abs(got - table)
        bound = rtol * (np.abs(table) + scales[name] * expo) + atol
        off = live & ~(err <= bound)
        assert not off.any(), (name, dtype, a[off], r[off], got[off], table[off])
    want = -(r.astype(np.float64) ** 2) / 4  # autodiff at alpha = 2: not the convention
    assert np.all(np.abs(auto["dalpha"][two] - want[two]) <= rtol * np.abs(want[two]) + atol)


def test_reference_reverse_mode_of_the_value():
    """The NumPy reference's reverse mode (its second derivative forward over reverse)."""
    from mse_adapters.numpy import _TAPE_OPS, _autodiff

    a, r = _autodiff_grid("float64")
    rv, av = _autodiff.Var(_autodiff.Dual(r, np.ones_like(r))), _autodiff.Var(a.copy())
    cv = _autodiff.Var(np.full_like(r, SCALE))
    _, (gr, ga, gc) = _autodiff.gradients(BARRON.value(_TAPE_OPS, rv, Params(av, cv)), [rv, av, cv])
    got = {"grad": _autodiff.primal(gr), "hess": _autodiff.tangent(gr), "dalpha": _autodiff.primal(ga),
           "dscale": _autodiff.primal(gc)}
    _check_autodiff("float64", a, r, {k: np.asarray(v, dtype=np.float64) for k, v in got.items()})


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_autograd_of_the_value(dtype):
    torch = pytest.importorskip("torch")
    from mse_adapters.torch import OPS

    a, r = _autodiff_grid(dtype)
    rt, at = torch.tensor(r, requires_grad=True), torch.tensor(a, requires_grad=True)
    ct = torch.full_like(rt, SCALE, requires_grad=True)
    value = BARRON.value(OPS, rt, Params(at, ct))
    gr, ga, gc = torch.autograd.grad(value.sum(), (rt, at, ct), create_graph=True)
    (hr,) = torch.autograd.grad(gr.sum(), (rt,))
    got = {"grad": gr, "hess": hr, "dalpha": ga, "dscale": gc}
    _check_autodiff(dtype, a, r, {k: v.detach().double().numpy() for k, v in got.items()})


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_jax_grad_of_the_value(dtype):
    jax = pytest.importorskip("jax")
    from mse_adapters.jax import _OPS as OPS

    a, r = _autodiff_grid(dtype)
    with jax.enable_x64(dtype == "float64"):
        def f(ri: Any, ai: Any, ci: Any) -> Any:
            return BARRON.value(OPS, ri, Params(ai, ci))

        args = (jax.numpy.asarray(r), jax.numpy.asarray(a), jax.numpy.full(r.shape, SCALE, dtype=dtype))
        gr, ga, gc = jax.vmap(jax.grad(f, argnums=(0, 1, 2)))(*args)
        hr = jax.vmap(jax.grad(jax.grad(f)))(*args)
        got = {"grad": gr, "hess": hr, "dalpha": ga, "dscale": gc}
        _check_autodiff(dtype, a, r, {k: np.asarray(v, dtype=np.float64) for k, v in got.items()})
