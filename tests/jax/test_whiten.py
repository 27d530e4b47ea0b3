"""The JAX adapter's structured outputs (docs/design.md, "Whitening"): whitening by a covariance (host-factored
in float64, or traced), trainable ``scale_tril`` pytree leaves, precision cost matrices, the
Gaussian likelihoods and the unit-norm penalty, against ``jax.scipy.stats``, torch's
built-ins and the float64 reference; jit (one trace), checkify, the shared error catalogue,
pickling. The value/gradient grid is in tests/conformance (``structured_cases``)."""

from __future__ import annotations

import importlib.util
import math
import pickle

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax.experimental import checkify  # noqa: E402
from jax.scipy.stats import multivariate_normal  # noqa: E402

import mse_adapters.jax as mj  # noqa: E402
from mse_adapters import (  # noqa: E402
    LossSpec,
    _whiten,  # noqa: E402
    preset,
)
from mse_adapters import numpy as mnp  # noqa: E402
from tests.conformance.harness import ABSOLUTE_ONLY, assert_close  # noqa: E402
from tests.numpy.test_whitening import ERRORS, P6, T6, data, spd  # noqa: E402
from tests.oracles.gaussian_nll import torch_case  # noqa: E402

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
MVN = LossSpec(penalty="gaussian_nll", transform="whiten", full=True, reduction="none")


def x64():
    return jax.enable_x64(True)


# ---------------------------------------------------------------------------------------
# Whitening: semantics
# ---------------------------------------------------------------------------------------


def test_gls_mse_equals_the_reference_in_float64():
    p, t = data(8, 4)
    cov = spd(4, 1e3)
    with x64():
        for red in ("none", "sum", "mean", "per_sample", "per_output"):
            got = mj.mse(jnp.asarray(p), jnp.asarray(t), covariance=cov, reduction=red)
            assert got.dtype == jnp.float64
            assert_close(got, mnp.mse(t, p, covariance=cov, reduction=red), "float64", f"whitened mse {red}")


@pytest.mark.parametrize("how", ["covariance", "scale_tril", "precision"])
def test_identity_gives_exactly_the_plain_loss(how):
    p, t = data(16, 5)
    x, y = jnp.asarray(p, jnp.float32), jnp.asarray(t, jnp.float32)
    for red in ("none", "sum", "mean"):
        plain = mj.mse(x, y, reduction=red)
        for f in (lambda a, b, red=red: mj.mse(a, b, reduction=red, **{how: np.eye(5)}),
                  mj.compile(preset("mse", reduction=red), **{how: np.eye(5)})):
            np.testing.assert_array_equal(np.asarray(f(x, y)), np.asarray(plain))
        jitted = jax.jit(mj.compile(preset("mse", reduction=red), **{how: np.eye(5)}))  # vs the jitted plain loss
        np.testing.assert_array_equal(np.asarray(jitted(x, y)), np.asarray(jax.jit(mj.compile(preset(
            "mse", reduction=red)))(x, y)))


def test_batched_covariance_and_every_penalty():
    p, t = data(5, 3, seed=3)
    covs = np.stack([spd(3, 10.0 ** (1 + i % 3), seed=i) for i in range(5)])
    with x64():
        for pname, kw in (("mse", {}), ("huber", {"delta": 0.5}), ("log_cosh", {}), ("expectile", {"tau": 0.8})):
            spec = preset(pname, **kw)
            got = mj.loss(spec, jnp.asarray(p), jnp.asarray(t), covariance=covs)
            assert float(got) == pytest.approx(mnp.loss(spec, t, p, covariance=covs), rel=1e-12)


def test_float32_whitening_keeps_float64_accuracy_at_cond_1e6():
    """Factored in float64 on the host, applied in float32: relative error <= 1e-5 (a float32
    inverse of the covariance, the hand-rolled way, loses about three digits)."""
    rng = np.random.default_rng(0)
    d, b = 32, 512
    cov = spd(d, 1e6, seed=3)
    lower = np.linalg.cholesky(cov)
    t = rng.normal(size=(b, d)).astype(np.float32)
    p = (t + rng.normal(size=(b, d)) @ lower.T).astype(np.float32)
    truth = mnp.mse(t.astype(float), p.astype(float), covariance=cov)
    got = float(jax.jit(lambda a, c: mj.mse(a, c, covariance=cov))(p, t))
    assert abs(got - truth) / truth <= 1e-5
    r = jnp.asarray(p) - jnp.asarray(t)
    naive = float(jnp.mean(jnp.sum((r @ jnp.linalg.inv(jnp.asarray(cov, jnp.float32))) * r, -1)) / d)
    assert abs(naive - truth) / truth > 1e-5  # what the float64 factor buys


def test_solve_and_inverse_agree(monkeypatch):
    p, t = data(7, 4)
    cov = spd(4, 1e2)
    with x64():
        a = mj.mse(jnp.asarray(p), jnp.asarray(t), covariance=cov, reduction="none")
        monkeypatch.setattr(mj.JaxOps, "whiten_by", "solve")
        b = mj.compile(preset("mse", reduction="none"), covariance=cov)
        assert b.matrix is not None and b.matrix.whitening(mj.JaxOps(), jnp.zeros(4)).kind == "solve"
        assert_close(b(jnp.asarray(p), jnp.asarray(t)), a, "float64", "solve against the default whitening")
        for spec in (preset("huber", delta=0.3), LossSpec(penalty="gaussian_nll", transform="whiten")):
            ref_v, ref_g = mnp.value_and_grad(spec, t, p, covariance=cov, wrt=("y_pred", "y_true"))
            v, g = jax.value_and_grad(mj.compile(spec, covariance=cov), argnums=(0, 1))(jnp.asarray(p),
                                                                                          jnp.asarray(t))
            assert float(v) == pytest.approx(ref_v, rel=1e-12)
            assert_close(g[0], ref_g["y_pred"], "float64", "solve d/dy_pred")
            assert_close(g[1], ref_g["y_true"], "float64", "solve d/dy_true")


def test_whitening_takes_the_product_and_both_ways_keep_the_accuracy(monkeypatch):
    """JaxOps.whiten_by: the product with the float64-formed L^-1 (measured faster on XLA:CPU
    for every d benchmarked); "solve" selects the triangular solve. Both keep the float64
    factor's accuracy in float32 at cond 1e6."""
    assert mj.JaxOps.whiten_by == "inverse"
    d = 96
    big = spd(d, 1e6, seed=4)
    assert mj.compile(preset("mse"), covariance=big).matrix.by == "inverse"
    rng = np.random.default_rng(1)
    t = rng.normal(size=(256, d)).astype(np.float32)
    p = (t + rng.normal(size=t.shape) @ np.linalg.cholesky(big).T).astype(np.float32)
    truth = mnp.mse(t.astype(float), p.astype(float), covariance=big)
    for by in ("inverse", "solve"):
        monkeypatch.setattr(mj.JaxOps, "whiten_by", by)
        compiled = mj.compile(preset("mse"), covariance=big)
        assert compiled.matrix.by == by
        for f in (lambda a, b: mj.mse(a, b, covariance=big), jax.jit(compiled)):
            assert abs(float(f(p, t)) - truth) / truth <= 1e-5, by


def test_precision_is_the_cost_of_the_observed_outputs():
    p, t = data(6, 3)
    a = np.random.default_rng(3).normal(size=(3, 2))
    prec = a @ a.T  # singular
    mask = np.random.default_rng(4).uniform(size=(6, 3)) > 0.3
    with x64():
        got = mj.mse(jnp.asarray(p), jnp.asarray(t), precision=prec, mask=jnp.asarray(mask), reduction="sum")
    r = np.where(mask, p - t, 0.0)
    assert float(got) == pytest.approx(float(np.einsum("bi,ij,bj->", r, prec, r)), rel=1e-12)


def test_unit_norm_is_added_to_every_unit_of_its_sample():
    p, t = data(6, 3)
    with x64():
        got = mj.mse(jnp.asarray(p), jnp.asarray(t), unit_norm=0.5)
        spec_got = mj.loss(preset("huber", unit_norm=0.5, reduction="none"), jnp.asarray(p), jnp.asarray(t))
    pen = 0.5 * (np.sum(p * p, axis=-1) - 1.0) ** 2
    assert float(got) == pytest.approx(np.mean((p - t) ** 2) + np.mean(pen), rel=1e-12)
    assert_close(spec_got, mnp.loss(preset("huber", unit_norm=0.5, reduction="none"), t, p), "float64",
                 "unit_norm huber")
    with pytest.raises(ValueError, match="unit_norm"):
        mj.mse(jnp.ones(3), jnp.zeros(3), unit_norm=-1.0)


# ---------------------------------------------------------------------------------------
# Gaussian likelihoods
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("how", ["covariance", "scale_tril", "batched", "traced"])
def test_multivariate_gaussian_nll_equals_jax_scipy_logpdf(how, full):
    p, t = data(6, 3, seed=2)
    cov = spd(3, 1e3, seed=5)
    covs = np.stack([spd(3, 10.0 ** (i % 4 + 1), seed=i) for i in range(6)])
    with x64():
        x, y = jnp.asarray(p), jnp.asarray(t)
        if how == "batched":
            want = -jnp.stack([multivariate_normal.logpdf(y[i], x[i], covs[i]) for i in range(6)])
            got = mj.multivariate_gaussian_nll(x, y, covariance=covs, full=full, reduction="none")
        else:
            want = -multivariate_normal.logpdf(y, x, cov)
            if how == "covariance":
                got = mj.multivariate_gaussian_nll(x, y, covariance=cov, full=full, reduction="none")
            elif how == "scale_tril":
                got = mj.multivariate_gaussian_nll(x, y, scale_tril=np.linalg.cholesky(cov), full=full,
                                                   reduction="none")
            else:  # a covariance passed into a jitted function: factored per call, in its dtype
                got = jax.jit(lambda a, b, c: mj.multivariate_gaussian_nll(a, b, covariance=c, full=full,
                                                                            reduction="none"))(x, y, cov)
        if not full:
            want = want - 1.5 * math.log(2 * math.pi)
        assert_close(got, want, "float64", f"multivariate NLL {how}")
        mean = mj.multivariate_gaussian_nll(x, y, covariance=covs if how == "batched" else cov, full=full)
        assert float(mean) == pytest.approx(float(jnp.mean(want)), rel=1e-12)


def test_multivariate_gaussian_nll_in_float32_against_logpdf():
    p, t = data(64, 8, seed=4)
    cov = spd(8, 1e2, seed=6)
    got = mj.multivariate_gaussian_nll(jnp.asarray(p, jnp.float32), jnp.asarray(t, jnp.float32), covariance=cov)
    assert got.dtype == jnp.float32
    with x64():
        want = -jnp.mean(multivariate_normal.logpdf(jnp.asarray(t), jnp.asarray(p), cov))
    assert float(got) == pytest.approx(float(want), rel=1e-6)


def test_gaussian_nll_float_var_and_reductions():
    p, t = data(6, 4)
    with x64():
        for red in ("none", "sum", "mean", "per_sample"):
            got = mj.gaussian_nll(jnp.asarray(p), jnp.asarray(t), 0.3, reduction=red)
            want = mnp.gaussian_nll(t, p, 0.3, reduction=red)
            assert_close(got, want, "float64", f"gaussian_nll {red}")


@needs_torch
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("vshape", ["elem", "sample", "col", "row", "float"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gaussian_nll_equals_torch(full, reduction, vshape, dtype):
    """Value and gradients (predictions, targets, var) equal torch.nn.GaussianNLLLoss', its
    variance shapes and its eps clamp (the gradient passes through it) included."""
    import torch

    tdt = getattr(torch, dtype)
    x, y, var, g = torch_case(dtype, vshape)
    leaves = [x.clone().requires_grad_(), y.clone().requires_grad_()]
    if not isinstance(var, float):
        leaves.append(var.clone().requires_grad_())
    want = torch.nn.GaussianNLLLoss(full=full, reduction=reduction)(leaves[0], leaves[1],
                                                                    leaves[2] if len(leaves) == 3 else var)
    ct = torch.rand(want.shape, generator=g, dtype=tdt)
    gw = torch.autograd.grad((want * ct).sum(), leaves)

    def ours(*a):
        v = a[2] if len(a) == 3 else var
        return jnp.sum(mj.gaussian_nll(a[0], a[1], v, full=full, reduction=reduction) * jnp.asarray(ct.numpy()))

    ctx = x64() if dtype == "float64" else jax.enable_x64(False)
    with ctx:
        args = [jnp.asarray(leaf.detach().numpy()) for leaf in leaves]
        got = mj.gaussian_nll(*args[:2], args[2] if len(args) == 3 else var, full=full, reduction=reduction)
        grads = jax.grad(ours, argnums=tuple(range(len(args))))(*args)
        # jitted too (for one reduction: each is an XLA compilation)
        jitted = jax.jit(jax.grad(ours, argnums=tuple(range(len(args)))))(*args) if reduction == "mean" else grads
    entry = "float32-pointwise" if dtype == "float32" else "float64"
    assert_close(np.asarray(got), want.detach().numpy(), entry, "gaussian_nll value")
    for i, (a, b, c) in enumerate(zip(grads, jitted, gw)):
        assert a.dtype == getattr(jnp, dtype)
        assert_close(np.asarray(a), c.numpy(), entry, f"gaussian_nll gradient {i}")
        assert_close(np.asarray(b), c.numpy(), entry, f"gaussian_nll jitted gradient {i}")


@pytest.mark.parametrize("vshape", [(6, 1, 1), (1, 1), (4,), (6, 3)])
def test_gaussian_nll_rejects_the_variance_shapes_torch_rejects(vshape):
    with pytest.raises(ValueError, match="incorrect size"):
        mj.gaussian_nll(jnp.zeros((6, 4)), jnp.zeros((6, 4)), jnp.ones(vshape))


def test_gaussian_nll_negative_var_eagerly_and_under_checkify():
    p, t = jnp.zeros((2, 3)), jnp.ones((2, 3))
    neg = -jnp.ones((2, 3))
    with pytest.raises(ValueError) as eager:
        mj.gaussian_nll(p, t, neg)
    assert "var must be non-negative" in str(eager.value)
    jax.jit(lambda v: mj.gaussian_nll(p, t, v))(neg)  # under jit: not checked (NaN, no error)
    err, _ = checkify.checkify(jax.jit(lambda v: mj.gaussian_nll(p, t, v, check_values="checkify")))(neg)
    assert err.get() is not None and str(eager.value) in err.get()
    ok, _ = checkify.checkify(jax.jit(lambda v: mj.gaussian_nll(p, t, v, check_values="checkify")))(-neg)
    assert ok.get() is None


# ---------------------------------------------------------------------------------------
# A trainable scale_tril: a pytree leaf, differentiated by jax.grad
# ---------------------------------------------------------------------------------------

TRIL = np.linalg.cholesky(spd(3, 30.0, seed=8))
TRILS = np.linalg.cholesky(np.stack([spd(3, 10.0 ** (1 + i % 3), seed=i) for i in range(6)]))


@pytest.mark.parametrize("spec", [preset("mse"), preset("huber", delta=0.5), preset("mse", reduction="sum"),
                                  LossSpec(penalty="gaussian_nll", transform="whiten", full=True)],
                         ids=["mse", "huber", "mse-sum", "mvn"])
@pytest.mark.parametrize("batched", [False, True])
def test_trainable_scale_tril_gradient_equals_the_reference(spec, batched):
    p, t = data(6, 3, seed=9)
    lower = TRILS if batched else TRIL
    ref_v, ref_g = mnp.value_and_grad(spec, t, p, scale_tril=lower, wrt=("y_pred", "scale_tril"))
    with x64():
        def f(params, x, y):
            return mj.loss(spec, x, y, scale_tril=params["L"])

        params = {"L": jnp.asarray(lower)}
        for fn in (jax.value_and_grad(f, argnums=(0, 1)), jax.jit(jax.value_and_grad(f, argnums=(0, 1)))):
            v, (gp, gx) = fn(params, jnp.asarray(p), jnp.asarray(t))
            assert float(v) == pytest.approx(ref_v, rel=1e-12)
            assert_close(gp["L"], ref_g["scale_tril"], "float64", "d/dscale_tril")
            assert_close(gx, ref_g["y_pred"], "float64", "d/dy_pred")
            assert np.all(np.triu(np.asarray(gp["L"]), 1) == 0)  # the upper triangle is not read


@needs_torch
@pytest.mark.parametrize("spec", [preset("mse"), LossSpec(penalty="gaussian_nll", transform="whiten")],
                         ids=["mse", "mvn"])
def test_trainable_scale_tril_gradient_equals_torch(spec):
    import torch

    import mse_adapters.torch as mt

    p, t = data(6, 3, seed=9)
    param = torch.nn.Parameter(torch.tensor(TRIL, dtype=torch.float32))
    out = mt.compile(spec, scale_tril=param)(torch.tensor(p, dtype=torch.float32),
                                             torch.tensor(t, dtype=torch.float32))
    (want,) = torch.autograd.grad(out, param)
    got_v, got = jax.value_and_grad(lambda lo: mj.loss(spec, p.astype(np.float32), t.astype(np.float32),
                                                       scale_tril=lo))(jnp.asarray(TRIL, jnp.float32))
    assert got.dtype == jnp.float32
    assert float(got_v) == pytest.approx(out.item(), rel=2e-6)
    assert_close(got, want.numpy(), "float32", "float32 d/dscale_tril against torch")


def test_a_trainable_scale_tril_learns_the_noise_covariance():
    """An Optax-style loop: the Gaussian NLL with a learned Cholesky factor recovers the
    covariance of the residuals."""
    rng = np.random.default_rng(0)
    true_l = np.array([[1.0, 0.0], [0.8, 0.5]])
    r = rng.normal(size=(4000, 2)) @ true_l.T
    x, y = jnp.asarray(r, jnp.float32), jnp.zeros((4000, 2), jnp.float32)

    @jax.jit
    def step(raw):
        def f(raw):
            lower = jnp.tril(raw, -1) + jnp.diag(jnp.exp(jnp.diagonal(raw)))  # a valid factor
            return mj.multivariate_gaussian_nll(x, y, scale_tril=lower)
        return raw - 0.1 * jax.grad(f)(raw)

    raw = jnp.zeros((2, 2))
    for _ in range(400):
        raw = step(raw)
    lower = np.tril(np.asarray(raw), -1) + np.diag(np.exp(np.diagonal(np.asarray(raw))))
    assert_close(lower @ lower.T, np.cov(r.T), "learned-covariance", "learned covariance", rtol_scale=ABSOLUTE_ONLY)


# ---------------------------------------------------------------------------------------
# jit: one trace; a matrix closed over, compiled in, or passed as an argument
# ---------------------------------------------------------------------------------------


def test_jit_traces_once_and_factors_once(monkeypatch):
    calls = {"trace": 0, "factor": 0}
    real = _whiten.host_factor

    def counting(*a, **k):
        calls["factor"] += 1
        return real(*a, **k)

    monkeypatch.setattr(_whiten, "host_factor", counting)
    cov = spd(3, 50.0, seed=11)
    f = mj.compile(preset("mse"), covariance=cov)
    assert calls["factor"] == 1

    @jax.jit
    def step(x, y):
        calls["trace"] += 1
        return jax.value_and_grad(f)(x, y)

    p, t = data(6, 3)
    for i in range(4):
        step(jnp.asarray(p + i, jnp.float32), jnp.asarray(t, jnp.float32))
    assert calls == {"trace": 1, "factor": 1}
    # the functional form, closed over: factored at trace time, from the cache thereafter
    g = jax.jit(lambda x, y: mj.mse(x, y, covariance=cov))
    for i in range(3):
        g(jnp.asarray(p + i, jnp.float32), jnp.asarray(t, jnp.float32))
    for _ in range(3):  # eagerly: one factorisation for the same matrix
        mj.mse(jnp.asarray(p, jnp.float32), jnp.asarray(t, jnp.float32), covariance=cov)
    assert calls["factor"] == 1  # compile() and the functional forms share the cache (by content)


def test_a_compiled_loss_is_a_static_argument():
    cov = spd(3, 50.0, seed=11)
    a, b = mj.compile(preset("mse"), covariance=cov), mj.compile(preset("mse"), covariance=cov.copy())
    assert a == b and hash(a) == hash(b) and a != mj.compile(preset("mse"), covariance=2 * cov)
    assert a != mj.compile(preset("mse"), precision=cov) and a.spec.transform == "whiten"
    traces = []

    def call(fn, x, y):
        traces.append(1)
        return fn(x, y)

    run = jax.jit(call, static_argnums=0)
    p, t = data(6, 3)
    v1 = run(a, jnp.asarray(p, jnp.float32), jnp.asarray(t, jnp.float32))
    v2 = run(b, jnp.asarray(p, jnp.float32), jnp.asarray(t, jnp.float32))
    assert float(v1) == float(v2) and len(traces) == 1


def test_traced_covariance_equals_the_host_factored_one():
    p, t = data(6, 3)
    cov = spd(3, 1e2, seed=12)
    with x64():
        host = mj.mse(jnp.asarray(p), jnp.asarray(t), covariance=cov)
        traced = jax.jit(lambda x, y, c: mj.mse(x, y, covariance=c))(jnp.asarray(p), jnp.asarray(t), cov)
        gc = jax.grad(lambda c: mj.mse(jnp.asarray(p), jnp.asarray(t), covariance=c))(jnp.asarray(cov))
    assert float(traced) == pytest.approx(float(host), rel=1e-12)
    # d/dSigma mean(r^T Sigma^-1 r)/d = -Sigma^-1 (sum r r^T) Sigma^-1 / (B d): symmetric input,
    # jnp.linalg.cholesky reads the lower triangle (its gradient lands there, symmetrised)
    r = p - t
    s_inv = np.linalg.inv(cov)
    want = -s_inv @ (r.T @ r) @ s_inv / r.size
    assert_close(np.asarray(gc) + np.asarray(gc).T - np.diag(np.diag(np.asarray(gc))),
                 want + want.T - np.diag(np.diag(want)), "float64", "d/dcovariance")


def test_vmap_over_examples_with_a_covariance():
    p, t = data(6, 3)
    cov = spd(3, 1e2, seed=13)
    f = mj.compile(preset("mse", reduction="sum"), covariance=cov)
    with x64():
        per = jax.vmap(f)(jnp.asarray(p), jnp.asarray(t))
    assert_close(per, 3 * mnp.mse(t, p, covariance=cov, reduction="per_sample"), "float64", "vmap per sample")


# ---------------------------------------------------------------------------------------
# Errors: the catalogue of tests/numpy/test_whitening.py, identical to NumPy's
# ---------------------------------------------------------------------------------------


def _numpy_error(spec, kw):
    kw = dict(kw)
    target = kw.pop("target", T6)
    with pytest.raises(ValueError) as info:
        mnp.loss(spec, target, P6, **kw)
    return str(info.value).replace("y_pred", "<pred>").replace("y_true", "<target>")


def _jax_error(fn):
    with pytest.raises(ValueError) as info:
        fn()
    return str(info.value).replace("predictions", "<pred>").replace("targets", "<target>")


def _jax_args(kw):
    kw = dict(kw)
    target = jnp.asarray(kw.pop("target", T6), jnp.float32)
    mats = {k: kw.pop(k) for k in ("covariance", "scale_tril", "precision") if k in kw}
    rest = {k: (v if isinstance(v, float) else jnp.asarray(v)) for k, v in kw.items()}
    return jnp.asarray(P6, jnp.float32), target, mats, rest


@pytest.mark.parametrize("how", ["functional", "compiled"])
@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_catalogue_is_identical_to_numpy(name, how):
    spec, kw, _ = ERRORS[name]
    want = _numpy_error(spec, kw)
    p, t, mats, rest = _jax_args(kw)
    if how == "functional":
        got = _jax_error(lambda: mj.loss(spec, p, t, **mats, **rest))
    else:
        got = _jax_error(lambda: mj.compile(spec, **mats)(p, t, **rest))
    assert got == want


@pytest.mark.parametrize("name", ["tril-upper", "tril-diag", "nan-cov", "trailing-shape", "not-square"])
def test_a_traced_scale_tril_under_an_eager_grad_is_checked_as_a_constant(name):
    spec, kw, _ = ERRORS[name]
    m = next(iter(v for k, v in kw.items() if k in ("covariance", "scale_tril")))
    want = _numpy_error(spec, {"scale_tril": m})  # the same matrix as a constant scale_tril
    got = _jax_error(lambda: jax.grad(lambda lo: mj.loss(spec, P6, T6, scale_tril=lo))(jnp.asarray(m)))
    assert got == want


CHECKIFY = {  # name: (matrix argument, traced matrix)
    "not-pd": ("covariance", np.diag([1.0, -1.0, 1.0])),
    "not-psd": ("precision", np.diag([1.0, -0.5, 0.0])),
    "tril-upper": ("scale_tril", np.ones((3, 3))),
    "tril-diag": ("scale_tril", np.diag([1.0, 0.0, 2.0])),
    "nan-cov": ("covariance", np.full((3, 3), np.nan)),
    "non-symmetric": ("covariance", np.array([[2.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])),
    "batched-not-pd": ("covariance", np.stack([np.eye(3), np.diag([1.0, 1.0, -2.0])])),
}


@pytest.mark.parametrize("name", sorted(CHECKIFY))
def test_checkify_checks_a_traced_matrix_with_the_host_message(name):
    arg, m = CHECKIFY[name]
    p = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError) as host:
        mnp.loss(preset("mse"), p, p + 1.0, **{arg: m})
    f = jax.jit(lambda mat: mj.loss(preset("mse"), p, p + 1.0, check_values="checkify", **{arg: mat}))
    err, _ = checkify.checkify(f)(jnp.asarray(m, jnp.float32))
    assert err.get() is not None
    assert str(host.value) in err.get(), (str(host.value), err.get())
    # check_values=True under jit: the values cannot be checked (no error; NaN where not PD)
    jax.jit(lambda mat: mj.loss(preset("mse"), p, p + 1.0, **{arg: mat}))(jnp.asarray(m, jnp.float32))
    ok, _ = checkify.checkify(f)(jnp.asarray(np.eye(3) if m.ndim == 2 else np.stack([np.eye(3)] * 2),
                                             jnp.float32))
    assert ok.get() is None


def test_a_partly_observed_sample_eagerly_under_jit_and_under_checkify():
    cov = spd(3, 10.0)
    p, t = data(5, 3)
    mask = np.ones((5, 3), bool)
    mask[0, 1] = False
    with pytest.raises(ValueError, match="whole samples"):
        mj.mse(p, t, covariance=cov, mask=mask)
    got = jax.jit(lambda m: mj.mse(p, t, covariance=cov, mask=m))(mask)  # dropped whole
    with x64():
        want = mnp.mse(t[1:], p[1:], covariance=cov)
    assert float(got) == pytest.approx(want, rel=1e-5)
    err, _ = checkify.checkify(jax.jit(lambda m: mj.mse(p, t, covariance=cov, mask=m, check_values="checkify")))(
        mask)
    assert err.get() is not None and "must keep or drop whole samples" in err.get()


def test_matrices_at_compile_and_at_call_are_exclusive():
    cov = spd(3, 10.0)
    f = mj.compile(preset("mse"), covariance=cov)
    with pytest.raises(ValueError, match="mutually exclusive.*covariance \\(when the loss was compiled\\) and "
                                         "scale_tril \\(at call time\\)"):
        f(P6, T6, scale_tril=np.eye(3))
    with pytest.raises(TypeError, match="pass a traced covariance at call time"):
        jax.jit(lambda c: mj.compile(preset("mse"), covariance=c)(P6, T6))(cov)
    with pytest.raises(TypeError, match="covariance is a torch array") if HAS_TORCH else pytest.raises(TypeError):
        import torch

        mj.mse(P6, T6, covariance=torch.eye(3))
    with pytest.raises(TypeError, match="covariance has complex dtype"):
        mj.mse(P6, T6, covariance=np.eye(3, dtype=complex))


# ---------------------------------------------------------------------------------------
# Pickling
# ---------------------------------------------------------------------------------------


def test_a_compiled_loss_with_a_covariance_pickles():
    cov = spd(3, 1e3, seed=14)
    f = mj.compile(LossSpec(penalty="gaussian_nll", transform="whiten", full=True), covariance=cov)
    p, t = data(6, 3)
    before = float(f(jnp.asarray(p, jnp.float32), jnp.asarray(t, jnp.float32)))  # (caches a float32 cast)
    g = pickle.loads(pickle.dumps(f))
    assert g == f and hash(g) == hash(f) and g.spec == f.spec
    assert float(g(jnp.asarray(p, jnp.float32), jnp.asarray(t, jnp.float32))) == before
    assert "covariance of shape (3, 3)" in repr(g)
    np.testing.assert_array_equal(g.matrix.factor.scale_tril, np.linalg.cholesky(cov))
