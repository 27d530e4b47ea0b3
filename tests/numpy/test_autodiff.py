"""The reference's derivatives (``mnp.value_and_grad``, ``mnp.hessian_vector_product``: reverse
mode, and forward over reverse) against independent oracles:

- the K-tangent forward mode (tests/numpy/forward_oracle.py) on every case of the conformance
  grid (every preset of the table, reduction, weighting option, mask, ``missing``, per-sample
  stage, multioutput, whitening, precision, Gaussian NLLs, unit norm), kinks included, and on
  hypothesis' draws;
- the penalty table's own rho' and rho'' (hand-written) at and around every kink;
- finite differences (a fourth-order stencil) away from the kinks, for every penalty, the
  matrices, the variance, the penalty parameters and a normalizer;
- the conventions at the non-smooth points and the masked NaN, said point by point;
- memory linear in the number of elements (tracemalloc), and 1e5 elements in well under a second.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mse_adapters import LossSpec, preset
from mse_adapters import numpy as mnp
from mse_adapters._host import HOST
from mse_adapters._penalties import PENALTY_TABLE
from mse_adapters._presets import PRESET_TABLE
from tests.conformance.cases import BRANCH_PARAMS, REDUCTIONS, all_cases, spd
from tests.conformance.harness import _REF_NAMES, Case, assert_close
from tests.numpy import forward_oracle as fo

CASES = all_cases()


def _kwargs(case: Case) -> dict:
    return dict(sample_weight=case.sample_weight, weight=case.weight, mask=case.mask, **case.structured_kwargs())


def _cotangent(value: object) -> np.ndarray | None:
    """A non-uniform cotangent for a non-scalar loss (every entry's gradient is tested)."""
    shape = np.shape(value)
    return (1.0 + 0.25 * np.arange(int(np.prod(shape))).reshape(shape) % 3) if shape else None


def _same(got: object, want: object, what: str, scale: float = 1.0, floor: float = 0.0) -> None:
    """Reverse against forward mode: two float64 implementations of the same derivative, as a
    float64 backend against the reference (the transform's condition number amplifies the
    rounding of whitened cases; ``floor``: the problem's scale, for derivatives that cancel)."""
    assert_close(got, want, "float64", what, floor=floor, rtol_scale=scale)


# ---------------------------------------------------------------------------------------
# The whole conformance grid against the forward-mode oracle
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_reverse_mode_equals_forward_mode_on_the_grid(case: Case) -> None:
    wrt = tuple(_REF_NAMES[n] for n in case.wrt if getattr(case, n) is not None)
    kw = _kwargs(case)
    plain = mnp.loss(case.spec, case.target, case.pred, **kw)
    ct = _cotangent(plain)
    value, grads = mnp.value_and_grad(case.spec, case.target, case.pred, wrt=wrt, cotangent=ct, **kw)
    np.testing.assert_array_equal(value, plain)  # the recorded evaluation is the loss' own arithmetic
    want_v, want_g = fo.value_and_grad(case.spec, case.target, case.pred, wrt=wrt, cotangent=ct, **kw)
    floor = 0.1 * max(1.0, float(np.max(np.abs(want_v), initial=0.0)))
    _same(value, want_v, f"{case.name} value", case.cond_scale)
    for n in wrt:
        assert grads[n].shape == np.shape(want_g[n])
        _same(grads[n], want_g[n], f"{case.name} d/d{n}", case.cond_scale, floor)
    if case.scale_tril is not None:  # the Hessian-vector product takes no scale_tril
        return
    direction = np.random.default_rng(len(case.name)).normal(size=np.shape(case.pred))
    _, g, hv = mnp.hessian_vector_product(case.spec, case.target, case.pred, direction, cotangent=ct, **kw)
    _, want_g2, want_hv = fo.hessian_vector_product(case.spec, case.target, case.pred, direction, cotangent=ct,
                                                    **kw)
    _same(g, want_g2, f"{case.name} gradient", case.cond_scale, floor)
    _same(hv, want_hv, f"{case.name} H v", case.cond_scale, floor)


_SHAPES = st.sampled_from([(4,), (3, 2), (2, 3, 2), (5, 1)])


@st.composite
def _draws(draw: st.DrawFn) -> tuple:
    name = draw(st.sampled_from([r.name for r in PRESET_TABLE]))
    shape = draw(_SHAPES)
    try:
        spec = preset(name, reduction=draw(st.sampled_from(REDUCTIONS)), per_sample=draw(st.booleans()))
    except ValueError:
        spec = preset(name)
    spec = spec.replace(**BRANCH_PARAMS.get(spec.penalty, {}))
    # the kinks of BRANCH_PARAMS and multiples of 1/8: exact zero residuals and residuals on
    # the kinks come up often, and a non-zero residual is never tiny (where d2 sqrt(r^2)/dr2,
    # RMSE's, is the cancellation of terms of size 1/|r|: rounding noise of that size)
    grid = st.sampled_from([-0.7, -0.6, -0.5, 0.5, 0.6, 0.7]) | st.integers(-24, 24).map(lambda k: k / 8)
    n = int(np.prod(shape))
    pred = np.array(draw(st.lists(grid, min_size=n, max_size=n))).reshape(shape)
    target = np.array(draw(st.lists(grid, min_size=n, max_size=n))).reshape(shape) * draw(st.sampled_from([0, 1]))
    kw: dict = {}
    if draw(st.booleans()):
        # 0 or of order 1: d/dw of a ratio (NMSE, R^2) grows like 1 / w, and with it the
        # rounding of the terms that cancel in it
        weights = st.just(0.0) | st.floats(0.1, 2.0)
        kw["weight"] = np.array(draw(st.lists(weights, min_size=shape[-1], max_size=shape[-1])))
    if draw(st.booleans()):
        mask = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n))).reshape(shape)
        kw["mask"] = mask
        target = np.where(mask, target, np.nan)
    return spec, target, pred, kw, draw(st.integers(0, 2**16))


@settings(max_examples=150, deadline=None)
@given(_draws())
def test_reverse_mode_equals_forward_mode_on_random_draws(draw: tuple) -> None:
    spec, target, pred, kw, seed = draw
    wrt = ("y_pred", "y_true") + (("weight",) if "weight" in kw else ())
    ct = _cotangent(mnp.loss(spec, target, pred, **kw))
    value, grads = mnp.value_and_grad(spec, target, pred, wrt=wrt, cotangent=ct, **kw)
    want_v, want_g = fo.value_and_grad(spec, target, pred, wrt=wrt, cotangent=ct, **kw)
    floor = 0.1 * max(1.0, float(np.max(np.abs(want_v), initial=0.0)))
    _same(value, want_v, "value")
    for n in wrt:
        _same(grads[n], want_g[n], f"d/d{n}", floor=floor)
    v = np.random.default_rng(seed).normal(size=pred.shape)
    _, _, hv = mnp.hessian_vector_product(spec, target, pred, v, cotangent=ct, **kw)
    _same(hv, fo.hessian_vector_product(spec, target, pred, v, cotangent=ct, **kw)[2], "H v", floor=floor)


# ---------------------------------------------------------------------------------------
# The penalty table's hand-written derivatives, kinks included
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PENALTY_TABLE))
def test_derivatives_equal_the_penalty_tables_own(name: str) -> None:
    row = PENALTY_TABLE[name]
    spec = LossSpec(penalty=name, reduction="sum", **BRANCH_PARAMS.get(_preset_of(name), {}))
    kinks = [getattr(spec, p.name) for p in row.params if p.name != "tau"]
    points = sorted({0.0, 1e-300, -1e-300, 0.3, -0.3, 2.5, -2.5, 25.0, -25.0,
                     *kinks, *(-k for k in kinks), *(np.nextafter(k, 0.0) for k in kinks)})
    r = np.array(points)
    zeros = np.zeros_like(r)
    _, g = mnp.value_and_grad(spec, zeros, r)
    _same(g["y_pred"], row.grad(HOST, r, spec), f"{name}: rho'")
    _, _, hv = mnp.hessian_vector_product(spec, zeros, r, np.ones_like(r))
    _same(hv, row.hess(HOST, r, spec), f"{name}: rho''")


def _preset_of(penalty: str) -> str:
    return next((r.name for r in PRESET_TABLE if r.spec.penalty == penalty), penalty)


# ---------------------------------------------------------------------------------------
# Finite differences away from the kinks
# ---------------------------------------------------------------------------------------


def _fd(f, x: np.ndarray, h: float = 1e-3) -> np.ndarray:
    """The gradient of the scalar ``f`` at ``x`` by the fourth-order central stencil
    (truncation ~h**4, rounding ~eps / h: both far below the table's finite-difference bound)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros(x.shape + np.shape(f(x)))
    for i in np.ndindex(x.shape):
        def at(s: float, i: tuple = i) -> np.ndarray:
            y = x.copy()
            y[i] += s * h
            return np.asarray(f(y))
        out[i] = (8.0 * (at(1) - at(-1)) - (at(2) - at(-2))) / (12.0 * h)
    return out


def _off_kinks(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(target, pred) with every |residual| in [0.05, 0.25] or [1.2, 2]: away from 0 and from
    the kinks of BRANCH_PARAMS (0.5, 0.6, 0.7)."""
    rng = np.random.default_rng(seed)
    size = np.where(rng.random(shape) < 0.5, rng.uniform(0.05, 0.25, shape), rng.uniform(1.2, 2.0, shape))
    target = rng.normal(size=shape)
    return target, target + np.where(rng.random(shape) < 0.5, -size, size)


_SPECS = {name: LossSpec(penalty=name, **BRANCH_PARAMS.get(_preset_of(name), {})) for name in PENALTY_TABLE}
_SPECS["gaussian_nll"] = LossSpec(penalty="gaussian_nll", full=True)


@pytest.mark.parametrize("name", sorted(_SPECS))
def test_gradient_and_hvp_equal_finite_differences(name: str) -> None:
    target, pred = _off_kinks((4, 3), 1)
    rng = np.random.default_rng(2)
    kw: dict = {"weight": rng.uniform(0.5, 2.0, (3,)), "sample_weight": rng.uniform(0.5, 2.0, (4,))}
    wrt = ("y_pred", "y_true", "weight", "sample_weight")
    if name == "gaussian_nll":
        kw["var"] = rng.uniform(0.5, 2.0, (4, 3))
        wrt += ("var",)
    spec = _SPECS[name]
    _, g = mnp.value_and_grad(spec, target, pred, wrt=wrt, **kw)
    args = {"y_true": target, "y_pred": pred, **kw}
    for n in wrt:
        def f(x: np.ndarray, n: str = n) -> object:
            a = {**args, n: x}
            return mnp.loss(spec, a.pop("y_true"), a.pop("y_pred"), **a)
        assert_close(g[n], _fd(f, args[n]), "finite-difference", f"{name} d/d{n}")
    v = rng.normal(size=pred.shape)
    _, _, hv = mnp.hessian_vector_product(spec, target, pred, v, **kw)
    fd = _fd(lambda p: mnp.value_and_grad(spec, target, p, **kw)[1]["y_pred"], pred)
    assert_close(hv, np.tensordot(v, fd, axes=v.ndim), "finite-difference", f"{name} H v")


@pytest.mark.parametrize("arg", ["scale_tril", "precision", "covariance"])
@pytest.mark.parametrize("penalty", ["mse", "huber", "log_cosh"])
def test_whitened_gradients_equal_finite_differences(arg: str, penalty: str) -> None:
    rng = np.random.default_rng(3)
    d = 3
    cov = spd(d, 30.0, rng)
    m = {"scale_tril": np.linalg.cholesky(cov), "precision": np.linalg.inv(cov), "covariance": cov}[arg]
    spec = preset(penalty, **BRANCH_PARAMS.get(penalty, {}))
    if arg == "precision" and penalty != "mse":
        spec = preset("mse", reduction="sum")
    target, pred = rng.normal(size=(5, d)), rng.normal(size=(5, d))
    wrt = ("y_pred",) + ((arg,) if arg != "covariance" else ())
    _, g = mnp.value_and_grad(spec, target, pred, wrt=wrt, **{arg: m})
    assert_close(g["y_pred"], _fd(lambda p: mnp.loss(spec, target, p, **{arg: m}), pred), "finite-difference",
                 f"{penalty} {arg} d/dy_pred")
    if arg == "scale_tril":  # only the lower triangle is read: the gradient above it is 0
        fd = np.tril(_fd(lambda s: mnp.loss(spec, target, pred, scale_tril=np.tril(s)), m))
        assert_close(g[arg], fd, "finite-difference", f"{penalty} d/dscale_tril")
        assert np.all(np.triu(g[arg], 1) == 0.0)
    elif arg == "precision":  # a precision must be symmetric: along a symmetric direction
        a = rng.normal(size=(d, d))
        sym = a + a.T
        fd = _fd(lambda s: mnp.loss(spec, target, pred, precision=m + s[0] * sym), np.zeros(1))
        assert_close(np.sum(g[arg] * sym), fd[0], "finite-difference", "d/dprecision")
    if arg != "scale_tril":
        v = rng.normal(size=pred.shape)
        _, _, hv = mnp.hessian_vector_product(spec, target, pred, v, **{arg: m})
        fd = _fd(lambda p: mnp.value_and_grad(spec, target, p, **{arg: m})[1]["y_pred"], pred)
        assert_close(hv, np.tensordot(v, fd, axes=2), "finite-difference", f"{penalty} {arg} H v")


@pytest.mark.parametrize("name,param", [("huber", "delta"), ("smooth_l1", "beta"), ("pseudo_huber", "delta"),
                                        ("expectile", "tau"), ("quantile", "tau")])
def test_penalty_parameter_gradients_equal_finite_differences_and_forward_mode(name: str, param: str) -> None:
    target, pred = _off_kinks((4, 3), 4)
    rng = np.random.default_rng(5)
    value = rng.uniform(0.4, 0.8, (3,))  # per output; the residuals stay off its kinks
    spec = preset(name)
    _, g = mnp.value_and_grad(spec, target, pred, params={param: value}, wrt=("y_pred", param))
    fd = _fd(lambda x: mnp.loss(spec, target, pred, params={param: x}), value)
    assert_close(g[param], fd, "finite-difference", f"{name} d/d{param}")
    _, want = fo.value_and_grad(spec, target, pred, params={param: value}, wrt=("y_pred", param))
    _same(g[param], want[param], f"{name} d/d{param}")


@pytest.mark.parametrize("reduction,multioutput", [("mean", "pooled"), ("sum_over_batch_size", "pooled"),
                                                   ("per_output", "pooled"), ("mean", "raw_values")])
def test_normalizer_gradients(reduction: str, multioutput: str) -> None:
    target, pred = _off_kinks((6, 2), 6)
    w = np.random.default_rng(7).uniform(0.5, 2.0, (6, 2))
    spec = preset("huber", delta=0.7, reduction=reduction, multioutput=multioutput)
    norm = np.asarray(mnp.normalizer(spec, target, weight=w)) * 1.5
    ct = _cotangent(mnp.loss(spec, target, pred, weight=w, normalizer=norm))
    _, g = mnp.value_and_grad(spec, target, pred, weight=w, normalizer=norm, cotangent=ct, wrt=("y_pred", "weight"))
    _, want = fo.value_and_grad(spec, target, pred, weight=w, normalizer=norm, cotangent=ct, wrt=("y_pred", "weight"))
    for n in ("y_pred", "weight"):
        _same(g[n], want[n], f"normalizer d/d{n}")

    def f(p: np.ndarray) -> float:
        out = mnp.loss(spec, target, p, weight=w, normalizer=norm)
        return float(np.sum(out * (1.0 if ct is None else ct)))
    assert_close(g["y_pred"], _fd(f, pred), "finite-difference", "normalizer d/dy_pred")


# ---------------------------------------------------------------------------------------
# The conventions, point by point
# ---------------------------------------------------------------------------------------


def test_conventions_at_the_non_smooth_points() -> None:
    r = np.array([0.0, 0.5, -0.5, 0.2])
    z = np.zeros(4)
    one = np.ones(4)
    sum_ = {"reduction": "sum"}
    assert mnp.value_and_grad(preset("mae", **sum_), z, r)[1]["y_pred"][0] == 0.0  # d|r|/dr = 0 at 0
    assert mnp.value_and_grad(preset("quantile", tau=0.3, **sum_), z, r)[1]["y_pred"][0] == 0.0
    # Huber and Smooth L1: rho'' = 1 (1 / beta) inside, r = 0 included; 0 at and beyond the kink
    assert mnp.hessian_vector_product(preset("huber", delta=0.5, **sum_), z, r, one)[2].tolist() == [1, 0, 0, 1]
    assert mnp.hessian_vector_product(preset("smooth_l1", beta=0.5, **sum_), z, r, one)[2].tolist() == [2, 0, 0, 2]
    # the Gaussian NLL's clamp is invisible to the gradient: that of 0.5 (log v + r**2 / v) at v = eps
    eps, var = 0.1, np.array([0.01, 0.2, 1.0, 0.1])
    _, g = mnp.value_and_grad(LossSpec(penalty="gaussian_nll", eps=eps, reduction="sum"), z, r, var=var,
                              wrt=("var",))
    v = np.maximum(var, eps)
    _same(g["var"], 0.5 / v - 0.5 * r * r / (v * v), "d/dvar through the clamp")


@pytest.mark.parametrize("name", [r.name for r in PRESET_TABLE])
def test_a_masked_nan_never_leaks_and_an_unmasked_one_propagates(name: str) -> None:
    rng = np.random.default_rng(8)
    target, pred = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    mask = np.ones((4, 3), bool)
    mask[1, 2] = mask[3, 0] = False
    t_nan, p_nan = target.copy(), pred.copy()
    t_nan[1, 2] = p_nan[3, 0] = np.nan
    spec = preset(name)
    wrt = ("y_pred", "y_true", "weight")
    w = rng.uniform(0.5, 2.0, (4, 3))
    value, g = mnp.value_and_grad(spec, t_nan, p_nan, weight=w, mask=mask, wrt=wrt)
    assert np.isfinite(value)
    for n in wrt:
        assert np.all(np.isfinite(g[n])), n
        assert g[n][1, 2] == 0.0 and g[n][3, 0] == 0.0, n
    _, gp, hv = mnp.hessian_vector_product(spec, t_nan, p_nan, np.ones((4, 3)), weight=w, mask=mask)
    assert np.all(np.isfinite(gp)) and np.all(np.isfinite(hv)) and hv[1, 2] == 0.0 and hv[3, 0] == 0.0
    value, g = mnp.value_and_grad(spec, t_nan, pred, wrt=("y_pred",))  # no mask: it propagates
    assert np.isnan(value) and np.isnan(g["y_pred"][1, 2])


def test_errors_name_the_argument() -> None:
    spec = preset("mse")
    with pytest.raises(ValueError, match="wrt='covariance' is not one of"):
        mnp.value_and_grad(spec, [1.0], [2.0], covariance=[[1.0]], wrt=("covariance",))
    with pytest.raises(ValueError, match="wrt contains 'weight' but weight was not given"):
        mnp.value_and_grad(spec, [1.0], [2.0], wrt=("weight",))
    with pytest.raises(ValueError, match="wrt contains 'var' but var was not given"):
        mnp.value_and_grad(LossSpec(penalty="gaussian_nll"), [1.0], [2.0], var=1.0, wrt=("var",))
    with pytest.raises(TypeError, match="y_pred"):
        mnp.value_and_grad(spec, [1.0], ["a"])
    with pytest.raises(ValueError, match="delta"):
        mnp.value_and_grad(preset("huber"), [1.0], [2.0], params={"delta": [-1.0]}, wrt=("delta",))


def test_the_results_are_fresh_writable_arrays() -> None:
    p = np.ones((3, 2))
    _, g = mnp.value_and_grad(preset("mse", reduction="none"), np.zeros((3, 2)), p)
    _, g2, hv = mnp.hessian_vector_product(preset("mse"), np.zeros((3, 2)), p, np.ones(2))
    for a in (g["y_pred"], g2, hv):
        assert a.flags.writeable and a.shape == (3, 2) and a.dtype == np.float64
    _, g = mnp.value_and_grad(preset("mse"), np.zeros((0, 2)), np.zeros((0, 2)), wrt=("y_pred", "y_true"))
    assert g["y_pred"].shape == (0, 2) and g["y_true"].shape == (0, 2)


# ---------------------------------------------------------------------------------------
# Linear memory and time
# ---------------------------------------------------------------------------------------


def _peak(f) -> int:
    tracemalloc.start()
    try:
        f()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _inputs(n: int, d: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(9)
    shape = (n // d, d)
    return rng.normal(size=shape), rng.normal(size=shape), rng.uniform(0.5, 2.0, shape), rng.random(shape) > 0.3


@pytest.mark.parametrize("what", ["huber-grad", "huber-hvp", "scale_tril-grad", "covariance-hvp"])
def test_memory_is_linear_in_the_number_of_elements(what: str) -> None:
    """Peak memory at 4n is ~4x that at n (a per-element tangent would make it 16x), and
    1e5 elements run (the quadratic forward mode needed 80 GB there)."""
    d = 8
    cov = spd(d, 100.0, np.random.default_rng(10))
    lower = np.linalg.cholesky(cov)

    def run(n: int) -> None:
        t, p, w, m = _inputs(n, d)
        if what == "huber-grad":
            mnp.value_and_grad(preset("huber"), t, p, weight=w, mask=m, wrt=("y_pred", "y_true", "weight"))
        elif what == "huber-hvp":
            mnp.hessian_vector_product(preset("huber"), t, p, w, weight=w, mask=m)
        elif what == "scale_tril-grad":
            mnp.value_and_grad(preset("mse"), t, p, scale_tril=lower, wrt=("y_pred", "scale_tril"))
        else:
            mnp.hessian_vector_product(preset("log_cosh"), t, p, w, covariance=cov)

    small, large = _peak(lambda: run(25_000)), _peak(lambda: run(100_000))
    assert large < 6 * small, (small, large)
    # and the record holds a bounded number of input-sized arrays (f64: 8 bytes an element)
    assert large < 60 * 8 * 100_000, large
