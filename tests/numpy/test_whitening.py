"""Whitening (GLS), precision cost matrices, Gaussian likelihoods and the unit-norm penalty
(docs/design.md, "Whitening"): semantics against independent formulas and the frameworks' own built-ins, the
shared error catalogue, accuracy at cond(Sigma) = 1e6. The value/gradient grid against the
float64 reference is in tests/conformance (``structured_cases``)."""

from __future__ import annotations

import importlib.util
import json
import math
import pickle

import numpy as np
import pytest

from mse_adapters import LossSpec, preset
from mse_adapters import numpy as mnp
from mse_adapters._linalg import tril_solve
from tests.conformance.harness import assert_close
from tests.oracles.gaussian_nll import torch_case

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")


def spd(d: int, cond: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q * np.logspace(0.0, np.log10(cond), d)) @ q.T


def data(b: int = 6, d: int = 3, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(b, d)), rng.normal(size=(b, d))


# ---------------------------------------------------------------------------------------
# The spec
# ---------------------------------------------------------------------------------------


def test_spec_fields_round_trip_and_hash():
    specs = [LossSpec(transform="whiten", penalty="huber", delta=0.3),
             LossSpec(transform="precision", reduction="sum", unit_norm=0.25),
             LossSpec(penalty="gaussian_nll", full=True, eps=1e-4),
             LossSpec(penalty="gaussian_nll", transform="whiten", reduction="none")]
    for spec in specs:
        again = LossSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
        assert again == spec and hash(again) == hash(spec)
        assert pickle.loads(pickle.dumps(spec)) == spec
    assert len(set(specs)) == len(specs)


def test_repr_shows_gaussian_parameters_only_for_gaussian_nll():
    assert repr(LossSpec(penalty="gaussian_nll", full=True, eps=1e-3)) == (
        "LossSpec(penalty='gaussian_nll', full=True, eps=0.001)")
    assert "eps" not in repr(LossSpec(penalty="huber", eps=1e-3))
    assert repr(LossSpec(transform="whiten", unit_norm=0.5)) == (
        "LossSpec(penalty='square', transform='whiten', unit_norm=0.5)")


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"transform": "cholesky"}, ["transform", "'cholesky'", "'whiten'", "'precision'"]),
        ({"transform": "precision", "penalty": "huber"}, ["transform='precision'", "penalty='square'", "huber"]),
        ({"transform": "whiten", "finalize": "r2", "multioutput": "uniform_average"}, ["finalize='r2'", "transform"]),
        ({"penalty": "gaussian_nll", "finalize": "sqrt"}, ["gaussian_nll", "finalize"]),
        ({"penalty": "gaussian_nll", "eps": 0.0}, ["eps", "> 0"]),
        ({"penalty": "gaussian_nll", "full": 1}, ["full", "bool"]),
        ({"penalty": "gaussian_nll", "transform": "whiten", "per_sample": True}, ["per_sample", "multivariate"]),
        ({"penalty": "gaussian_nll", "transform": "whiten", "reduction": "per_output"}, ["per_output", "per sample"]),
        ({"unit_norm": -1.0}, ["unit_norm", ">= 0"]),
        ({"unit_norm": float("inf")}, ["unit_norm", "finite"]),
        ({"unit_norm": 0.5, "finalize": "sqrt"}, ["unit_norm", "finalize"]),
    ],
)
def test_invalid_structured_specs_name_the_field(kwargs, words):
    with pytest.raises(ValueError) as info:
        LossSpec(**kwargs)
    for w in words:
        assert w in str(info.value)


# ---------------------------------------------------------------------------------------
# Semantics against independent formulas (NumPy reference)
# ---------------------------------------------------------------------------------------


def test_gls_mse_is_the_mahalanobis_mean():
    p, t = data(8, 4)
    cov = spd(4, 50.0)
    r = p - t
    maha = np.einsum("bi,ij,bj->b", r, np.linalg.inv(cov), r)
    assert mnp.mse(t, p, covariance=cov) == pytest.approx(np.mean(maha) / 4, rel=1e-12)
    assert mnp.mse(t, p, covariance=cov, reduction="sum") == pytest.approx(np.sum(maha), rel=1e-12)
    per = mnp.mse(t, p, covariance=cov, reduction="per_sample")
    assert_close(per, maha / 4, "float64", "per-sample Mahalanobis")


def test_whitening_is_by_the_lower_cholesky_factor():
    """A non-square penalty sees z = L^-1 r with L the lower Cholesky factor (not any other
    square root of the covariance)."""
    p, t = data(5, 3)
    cov = spd(3, 20.0)
    z = np.linalg.solve(np.linalg.cholesky(cov), (p - t).T).T
    got = mnp.loss(preset("huber", delta=0.4, reduction="none"), t, p, covariance=cov)
    a = np.abs(z)
    assert_close(got, np.where(a <= 0.4, 0.5 * z * z, 0.4 * (a - 0.2)), "float64", "Huber of L^-1 r")


def test_batched_covariance_is_one_per_sample():
    p, t = data(4, 3)
    covs = np.stack([spd(3, 10.0 ** (i + 1), seed=i) for i in range(4)])
    got = mnp.mse(t, p, covariance=covs, reduction="per_sample")
    for i in range(4):
        assert got[i] == pytest.approx(mnp.mse(t[i:i + 1], p[i:i + 1], covariance=covs[i]), rel=1e-12)


@pytest.mark.parametrize("pname", ["mse", "mae", "huber", "smooth_l1", "log_cosh", "expectile", "rmse"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "sum_over_batch_size", "per_sample", "per_output"])
def test_identity_gives_exactly_the_plain_loss(pname, reduction):
    try:
        spec = preset(pname, reduction=reduction)
    except ValueError:
        pytest.skip("not a valid combination")
    p, t = data(5, 3)
    mask = np.ones((5, 3), bool)
    mask[1] = False
    plain = mnp.loss(spec, t, p, mask=mask, sample_weight=np.arange(1.0, 6.0))
    for kw in ({"covariance": np.eye(3)}, {"scale_tril": np.eye(3)}):
        np.testing.assert_array_equal(mnp.loss(spec, t, p, mask=mask, sample_weight=np.arange(1.0, 6.0), **kw),
                                      plain)
    if pname in ("mse", "rmse"):
        np.testing.assert_array_equal(mnp.loss(spec, t, p, mask=mask, sample_weight=np.arange(1.0, 6.0),
                                               precision=np.eye(3)), plain)


def test_precision_is_the_cost_of_the_observed_outputs_under_a_partial_mask():
    rng = np.random.default_rng(3)
    p, t = data(6, 3)
    a = rng.normal(size=(3, 2))
    cost = a @ a.T  # singular PSD
    mask = rng.uniform(size=(6, 3)) > 0.4
    got = mnp.loss(LossSpec(transform="precision", reduction="none"), t, p, precision=cost, mask=mask)
    per_sample = got.sum(axis=1)
    for i in range(6):
        o = mask[i]
        r = (p - t)[i, o]
        assert per_sample[i] == pytest.approx(r @ cost[np.ix_(o, o)] @ r, rel=1e-12, abs=1e-15)
    total = mnp.loss(LossSpec(transform="precision"), t, p, precision=cost, mask=mask)
    assert total == pytest.approx(per_sample.sum() / mask.sum(), rel=1e-12)


def test_multivariate_gaussian_nll_equals_scipy():
    stats = pytest.importorskip("scipy.stats")
    p, t = data(5, 3)
    cov = spd(3, 1e3)
    want = np.array([-stats.multivariate_normal(p[i], cov).logpdf(t[i]) for i in range(5)])
    got = mnp.multivariate_gaussian_nll(t, p, covariance=cov, reduction="none")
    assert_close(got, want, "float64", "multivariate NLL against scipy")
    assert mnp.multivariate_gaussian_nll(t, p, covariance=cov) == pytest.approx(want.mean(), rel=1e-12)
    nofull = mnp.multivariate_gaussian_nll(t, p, covariance=cov, full=False, reduction="sum")
    assert nofull == pytest.approx(want.sum() - 5 * 1.5 * math.log(2 * math.pi), rel=1e-12)


def test_unit_norm_is_added_to_every_unit_of_its_sample():
    p, t = data(5, 3)
    lam = 0.7
    pen = lam * (np.sum(p * p, axis=1) - 1.0) ** 2
    elem = (p - t) ** 2
    assert mnp.mse(t, p, unit_norm=lam) == pytest.approx(elem.mean() + pen.mean(), rel=1e-12)
    assert mnp.mse(t, p, unit_norm=lam, reduction="sum") == pytest.approx(elem.sum() + 3 * pen.sum(), rel=1e-12)
    sw = np.array([1.0, 2.0, 0.0, 1.0, 3.0])
    want = np.sum(sw[:, None] * (elem + pen[:, None])) / (3 * sw.sum())
    assert mnp.mse(t, p, unit_norm=lam, sample_weight=sw) == pytest.approx(want, rel=1e-12)
    # Keras' per-sample stage: the penalty once per sample
    ks = mnp.loss(LossSpec(unit_norm=lam, per_sample=True, reduction="sum_over_batch_size"), t, p)
    assert ks == pytest.approx(np.mean(elem.mean(axis=1) + pen), rel=1e-12)


def test_value_and_grad_wrt_scale_tril_matches_finite_differences():
    p, t = data(4, 3)
    lower = np.linalg.cholesky(spd(3, 30.0))
    for spec in (LossSpec(transform="whiten", penalty="log_cosh"),
                 LossSpec(penalty="gaussian_nll", transform="whiten", full=True, reduction="sum")):
        _, g = mnp.value_and_grad(spec, t, p, scale_tril=lower, wrt=("scale_tril",))
        h = 1e-6
        fd = np.zeros_like(lower)
        for i in range(3):
            for j in range(i + 1):
                e = np.zeros_like(lower)
                e[i, j] = h
                fd[i, j] = (mnp.loss(spec, t, p, scale_tril=lower + e)
                            - mnp.loss(spec, t, p, scale_tril=lower - e)) / (2 * h)
        assert_close(g["scale_tril"], fd, "finite-difference", "d/dscale_tril against central differences")
        assert np.all(np.triu(g["scale_tril"], 1) == 0)


def test_tril_solve_reads_only_the_lower_triangle():
    rng = np.random.default_rng(0)
    lower = np.tril(rng.normal(size=(4, 4))) + 4 * np.eye(4)
    junk = lower + np.triu(rng.normal(size=(4, 4)), 1)
    rhs = rng.normal(size=(4, 2))
    assert_close(tril_solve(junk, rhs), np.linalg.solve(lower, rhs), "float64-exact", "tril_solve")


# ---------------------------------------------------------------------------------------
# Errors: one catalogue, the same type and message in every backend
# ---------------------------------------------------------------------------------------

P6, T6 = data(5, 3)
COV = spd(3, 10.0)
ERRORS = {
    # name: (spec, kwargs for the call, words in the message)
    "two-matrices": (preset("mse"), {"covariance": COV, "precision": np.eye(3)},
                     ["covariance", "precision", "exactly one"]),
    "non-symmetric": (preset("mse"), {"covariance": COV + np.triu(np.ones((3, 3)), 1)},
                      ["covariance", "symmetric"]),
    "not-pd": (preset("mse"), {"covariance": np.diag([1.0, -1.0, 1.0])}, ["covariance", "positive definite"]),
    "singular-cov": (preset("mse"), {"covariance": np.diag([1.0, 0.0, 1.0])}, ["covariance", "positive definite"]),
    "not-psd": (preset("mse"), {"precision": np.diag([1.0, -0.5, 0.0])}, ["precision", "positive semi-definite"]),
    "nan-cov": (preset("mse"), {"covariance": np.full((3, 3), np.nan)}, ["covariance", "finite"]),
    "tril-upper": (preset("mse"), {"scale_tril": np.ones((3, 3))}, ["scale_tril", "lower triangular"]),
    "tril-diag": (preset("mse"), {"scale_tril": np.diag([1.0, 0.0, 2.0])}, ["scale_tril", "positive diagonal"]),
    "not-square": (preset("mse"), {"covariance": np.ones((3, 2))}, ["covariance", "square", "(3, 2)"]),
    "trailing-shape": (preset("mse"), {"covariance": np.eye(2)}, ["covariance", "trailing shape", "(3, 3)"]),
    "batch-shape": (preset("mse"), {"covariance": np.broadcast_to(np.eye(3), (4, 3, 3))},
                    ["covariance", "batch shape", "(4,)"]),
    "partial-mask": (preset("mse"), {"covariance": COV, "mask": np.eye(5, 3, dtype=bool)},
                     ["mask", "whole samples"]),
    "partial-nan": (preset("mse", missing="nan"), {"covariance": COV, "target": np.where(np.eye(5, 3) > 0, np.nan, T6)},
                    ["NaN values", "whole samples"]),
    "weight-precision": (preset("mse"), {"precision": np.eye(3), "weight": np.ones(3)}, ["weight", "last axis"]),
    "no-matrix": (LossSpec(transform="whiten"), {}, ["transform='whiten'", "covariance", "scale_tril"]),
    "precision-for-whiten": (LossSpec(transform="whiten"), {"precision": np.eye(3)}, ["precision", "transform"]),
    "var-missing": (LossSpec(penalty="gaussian_nll"), {}, ["gaussian_nll", "var"]),
    "var-not-used": (preset("mse"), {"var": np.ones((5, 3))}, ["var", "gaussian_nll"]),
    "var-shape": (LossSpec(penalty="gaussian_nll"), {"var": np.ones((5, 2))}, ["var", "incorrect size", "(5, 2)"]),
    "var-negative": (LossSpec(penalty="gaussian_nll"), {"var": -np.ones((5, 3))}, ["var", "negative"]),
    "var-negative-float": (LossSpec(penalty="gaussian_nll"), {"var": -1.0}, ["var", "negative"]),
}

#: Each backend's names for the prediction and the target (errors are compared after mapping).
_NAMES = {"numpy": ("y_pred", "y_true"), "torch": ("input", "target")}


def _numpy_call(spec, kw):
    kw = dict(kw)
    target = kw.pop("target", T6)
    return mnp.loss(spec, target, P6, **kw)


def _torch_call(spec, kw, module: bool):
    import torch

    import mse_adapters.torch as mt

    kw = dict(kw)
    target = torch.tensor(kw.pop("target", T6))
    mats = {k: torch.tensor(np.ascontiguousarray(kw.pop(k))) for k in ("covariance", "scale_tril", "precision")
            if k in kw}
    rest = {k: (v if isinstance(v, float) else torch.tensor(v)) for k, v in kw.items()}
    if module:
        var = rest.pop("var", None)
        return mt.Loss(spec, **mats)(torch.tensor(P6), target, var=var, **rest)
    return mt.loss(spec, torch.tensor(P6), target, **mats, **rest)


def _normalised(msg: str, backend: str) -> str:
    pred, target = _NAMES[backend]
    return msg.replace(pred, "<pred>").replace(target, "<target>")


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_catalogue_numpy(name):
    spec, kw, words = ERRORS[name]
    with pytest.raises(ValueError) as info:
        _numpy_call(spec, kw)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


@needs_torch
@pytest.mark.parametrize("module", [False, True], ids=["functional", "module"])
@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_catalogue_torch_is_identical(name, module):
    spec, kw, _ = ERRORS[name]
    with pytest.raises(ValueError) as ref:
        _numpy_call(spec, kw)
    with pytest.raises(ValueError) as got:
        _torch_call(spec, kw, module)
    assert _normalised(str(got.value), "torch") == _normalised(str(ref.value), "numpy")


def test_under_tracing_a_partly_observed_sample_is_dropped_whole():
    """The eager check is skipped with check_values=False (as under jit/compile): a sample
    with any masked output is then dropped whole, never whitened with zeros."""
    mask = np.ones((5, 3), bool)
    mask[0, 1] = False
    out = mnp.loss(preset("mse", reduction="none", transform="whiten"), T6, P6, mask=mask, covariance=COV,
                   check_values=False)
    assert np.all(out[0] == 0) and np.all(out[1:] != 0)
    np.testing.assert_array_equal(out[1:], mnp.mse(T6[1:], P6[1:], covariance=COV, reduction="none"))


# ---------------------------------------------------------------------------------------
# torch: against torch.nn.GaussianNLLLoss and torch.distributions.MultivariateNormal
# ---------------------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("vshape", ["elem", "sample", "col", "row", "float"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gaussian_nll_equals_torch(full, reduction, vshape, dtype):
    import torch

    import mse_adapters.torch as mt

    x, y, var, g = torch_case(dtype, vshape)
    want_args = [x.clone().requires_grad_(), y.clone().requires_grad_()]
    got_args = [x.clone().requires_grad_(), y.clone().requires_grad_()]
    want_var = var if isinstance(var, float) else var.clone().requires_grad_()
    got_var = var if isinstance(var, float) else var.clone().requires_grad_()
    want = torch.nn.GaussianNLLLoss(full=full, reduction=reduction)(*want_args, want_var)
    got = mt.GaussianNLLLoss(full=full, reduction=reduction)(*got_args, got_var)
    ct = torch.rand(want.shape, generator=g, dtype=x.dtype)
    entry = "float32-pointwise" if dtype == "float32" else "float64"
    assert got.dtype == want.dtype and got.shape == want.shape
    assert_close(got.detach().numpy(), want.detach().numpy(), entry, "GaussianNLLLoss value")
    leaves_w = want_args + ([] if isinstance(want_var, float) else [want_var])
    leaves_g = got_args + ([] if isinstance(got_var, float) else [got_var])
    gw = torch.autograd.grad((want * ct).sum(), leaves_w)
    gg = torch.autograd.grad((got * ct).sum(), leaves_g)
    for i, (a, b) in enumerate(zip(gg, gw)):
        assert_close(a.numpy(), b.numpy(), entry, f"GaussianNLLLoss gradient {i}")
    fn = mt.gaussian_nll_loss(x, y, var, full=full, reduction=reduction)
    assert_close(fn.detach().numpy(), want.detach().numpy(), entry, "gaussian_nll_loss value")


@needs_torch
@pytest.mark.parametrize("vshape", [(6, 1, 1), (1, 1), (4,), (6, 3)])
def test_gaussian_nll_rejects_the_variance_shapes_torch_rejects(vshape):
    import torch

    import mse_adapters.torch as mt

    x, y, var = torch.zeros(6, 4), torch.zeros(6, 4), torch.ones(vshape)
    with pytest.raises(ValueError, match="incorrect size"):
        torch.nn.GaussianNLLLoss()(x, y, var)
    with pytest.raises(ValueError, match="incorrect size"):
        mt.GaussianNLLLoss()(x, y, var)


@needs_torch
@pytest.mark.parametrize("how", ["covariance", "scale_tril", "trainable", "batched"])
@pytest.mark.parametrize("full", [False, True])
def test_multivariate_gaussian_nll_equals_torch_distributions(how, full):
    import torch

    import mse_adapters.torch as mt

    cov = spd(3, 1e3, seed=5)
    lower = np.linalg.cholesky(cov)
    if how == "batched":
        lower = np.linalg.cholesky(np.stack([spd(3, 10.0 ** (i % 4 + 1), seed=i) for i in range(6)]))
    p, t = data(6, 3, seed=2)
    x = torch.tensor(p, requires_grad=True)
    y = torch.tensor(t)
    lt = torch.tensor(lower, requires_grad=how in ("trainable", "batched"))
    want = -torch.distributions.MultivariateNormal(x, scale_tril=lt).log_prob(y)
    if not full:
        want = want - 1.5 * math.log(2 * math.pi)
    if how == "covariance":
        f = mt.MultivariateGaussianNLLLoss(covariance=torch.tensor(cov), full=full, reduction="none")
    elif how == "scale_tril":
        f = mt.MultivariateGaussianNLLLoss(scale_tril=torch.tensor(lower), full=full, reduction="none")
    elif how == "trainable":
        param = torch.nn.Parameter(torch.tensor(lower))
        f = mt.MultivariateGaussianNLLLoss(scale_tril=param, full=full, reduction="none")
    if how == "batched":
        xg = x.detach().clone().requires_grad_()
        lg = lt.detach().clone().requires_grad_()
        got = mt.multivariate_gaussian_nll_loss(xg, y, scale_tril=lg, full=full, reduction="none")
    else:
        xg = x.detach().clone().requires_grad_()
        got = f(xg, y)
    assert got.dtype == want.dtype
    assert_close(got.detach(), want.detach(), "float64", f"{how} NLL against torch.distributions")
    ct = torch.arange(1.0, 7.0, dtype=torch.float64)
    leaves_w = [x] + ([lt] if lt.requires_grad else [])
    gw = torch.autograd.grad((want * ct).sum(), leaves_w)
    leaves_g = [xg] + ([lg] if how == "batched" else [param] if how == "trainable" else [])
    gg = torch.autograd.grad((got * ct).sum(), leaves_g)
    for a, b in zip(gg, gw):
        assert a.dtype == b.dtype
        assert_close(a, b, "float64", f"{how} NLL gradient against torch.distributions")
    ref = mnp.multivariate_gaussian_nll(t, p, scale_tril=lower, full=full)
    assert got.mean().item() == pytest.approx(ref, rel=1e-12)


@needs_torch
def test_covariance_that_requires_grad_gets_its_gradient():
    import torch

    import mse_adapters.torch as mt

    p, t = data(6, 3)
    a = torch.tensor(np.linalg.cholesky(spd(3, 50.0)), requires_grad=True)
    cov = a @ a.mT + 0.1 * torch.eye(3, dtype=torch.float64)
    got = mt.multivariate_gaussian_nll_loss(torch.tensor(p), torch.tensor(t), covariance=cov)
    (ga,) = torch.autograd.grad(got, a)
    a2 = a.detach().clone().requires_grad_()
    want = -torch.distributions.MultivariateNormal(
        torch.tensor(p), covariance_matrix=a2 @ a2.mT + 0.1 * torch.eye(3, dtype=torch.float64)).log_prob(
        torch.tensor(t)).mean()
    (gw,) = torch.autograd.grad(want, a2)
    torch.testing.assert_close(got, want.detach())
    torch.testing.assert_close(ga, gw)


@needs_torch
def test_identity_gives_exactly_the_plain_loss_in_torch():
    import torch

    import mse_adapters.torch as mt

    p, t = data(16, 5)
    x, y = torch.tensor(p, dtype=torch.float32), torch.tensor(t, dtype=torch.float32)
    for red in ("none", "sum", "mean"):
        plain = mt.loss(preset("mse", reduction=red), x, y)
        for kw in ({"covariance": torch.eye(5)}, {"scale_tril": torch.eye(5)}, {"precision": torch.eye(5)}):
            assert torch.equal(mt.MSELoss(red, **kw)(x, y), plain)
            assert torch.equal(mt.loss(preset("mse", reduction=red), x, y, **kw), plain)


@needs_torch
def test_float32_whitening_keeps_float64_accuracy_at_cond_1e6():
    """docs/design.md, "Whitening": factored in float64, applied in float32: relative error <= 1e-5 where a
    float32 factorisation loses about three digits."""
    import torch

    import mse_adapters.torch as mt

    d = 16
    cov = spd(d, 1e6, seed=3)
    lower = np.linalg.cholesky(cov)
    rng = np.random.default_rng(4)
    t = rng.normal(size=(512, d))
    p = t + rng.normal(size=(512, d)) @ lower.T
    p32, t32 = p.astype(np.float32), t.astype(np.float32)
    exact = mnp.mse(t32.astype(np.float64), p32.astype(np.float64), covariance=cov)
    got = float(mt.MSELoss(covariance=torch.tensor(cov))(torch.tensor(p32), torch.tensor(t32)))
    assert abs(got - exact) / exact <= 1e-5
    nll = float(mt.MultivariateGaussianNLLLoss(covariance=torch.tensor(cov))(torch.tensor(p32), torch.tensor(t32)))
    exact_nll = mnp.multivariate_gaussian_nll(t32.astype(np.float64), p32.astype(np.float64), covariance=cov)
    assert abs(nll - exact_nll) / abs(exact_nll) <= 1e-5


@needs_torch
def test_trainable_scale_tril_learns_the_noise_covariance():
    import torch

    import mse_adapters.torch as mt

    true = np.linalg.cholesky(np.array([[2.0, 0.8], [0.8, 1.0]]))
    rng = np.random.default_rng(0)
    noise = torch.tensor(rng.normal(size=(4000, 2)) @ true.T)
    param = torch.nn.Parameter(torch.eye(2, dtype=torch.float64))
    f = mt.MultivariateGaussianNLLLoss(scale_tril=param)
    assert [n for n, _ in f.named_parameters()] == ["scale_tril"]
    opt = torch.optim.Adam(f.parameters(), lr=0.05)
    zeros = torch.zeros_like(noise)
    first = None
    for _ in range(300):
        opt.zero_grad()
        loss = f(noise, zeros)
        first = float(loss.detach()) if first is None else first
        loss.backward()
        with torch.no_grad():
            param.tril_()  # keep it triangular (the gradient above the diagonal is 0 anyway)
        opt.step()
    assert float(loss.detach()) < first
    learned = param.detach().numpy()
    assert_close(learned @ learned.T, np.cov(noise.numpy().T, bias=True), "learned-covariance", "learned covariance")


@needs_torch
def test_module_factor_is_a_buffer_and_round_trips():
    import torch

    import mse_adapters.torch as mt

    cov = torch.tensor(spd(3, 100.0))
    f = mt.MSELoss(covariance=cov)
    assert set(f.state_dict()) == {"inv_scale_tril", "log_scale_diag", "_extra_state"}
    g = mt.MSELoss(covariance=torch.eye(3))
    g.load_state_dict(f.state_dict())
    x, y = torch.randn(5, 3), torch.randn(5, 3)
    assert torch.equal(g(x, y), f(x, y))
    assert torch.equal(pickle.loads(pickle.dumps(f))(x, y), f(x, y))
    assert set(mt.MSELoss(precision=cov).state_dict()) == {"precision", "_extra_state"}


@needs_torch
def test_torch_compile_has_no_graph_break():
    import torch

    import mse_adapters.torch as mt

    cov = torch.tensor(spd(3, 100.0))
    x, y = torch.randn(8, 3), torch.randn(8, 3)
    for f in (mt.MSELoss(covariance=cov), mt.Loss(preset("huber"), covariance=cov),
              mt.MultivariateGaussianNLLLoss(covariance=cov), mt.MSELoss(precision=cov)):
        torch._dynamo.reset()
        compiled = torch.compile(f, fullgraph=True, backend="eager")
        torch.testing.assert_close(compiled(x, y), f(x, y))


@needs_torch
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "sum_over_batch_size"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_module_fast_path_equals_the_general_pipeline_to_second_order(reduction, dtype):
    """The module's whitened-MSE fast path (one GEMM each way) against the general pipeline:
    value, gradients and a Hessian-vector product (create_graph)."""
    import torch

    import mse_adapters.torch as mt

    dt = getattr(torch, dtype)
    cov = torch.tensor(spd(4, 1e3, seed=8))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(9, 4, generator=g, dtype=dt, requires_grad=True)
    y = torch.randn(9, 4, generator=g, dtype=dt, requires_grad=True)
    fast = mt.MSELoss(reduction, covariance=cov)(x, y)
    general = mt.loss(preset("mse", reduction=reduction), x, y, covariance=cov)
    entry = "float32-pointwise" if dtype == "float32" else "float64"
    assert fast.dtype == general.dtype and fast.shape == general.shape
    assert_close(fast.detach().numpy(), general.detach().numpy(), entry, "whitened fast path value")
    ct = torch.rand(fast.shape, generator=g, dtype=dt)
    gf = torch.autograd.grad((fast * ct).sum(), (x, y), create_graph=True)
    gg = torch.autograd.grad((general * ct).sum(), (x, y), create_graph=True)
    v = torch.randn(9, 4, generator=g, dtype=dt)
    hf = torch.autograd.grad((gf[0] * v).sum(), (x, y))
    hg = torch.autograd.grad((gg[0] * v).sum(), (x, y))
    for i, (a, b) in enumerate(zip(gf + hf, gg + hg)):
        assert_close(a.detach().numpy(), b.detach().numpy(), entry, f"whitened fast path derivative {i}")
