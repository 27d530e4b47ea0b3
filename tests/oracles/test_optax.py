"""External oracle: Optax 0.2.8. With no weights or masks our functions are drop-in
replacements of Optax's regression losses reduced by a mean (or a sum), in value and
gradient, eagerly and under jit; and where we differ from Optax on purpose, we do."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
import jax.numpy as jnp  # noqa: E402

import mse_adapters.jax as mj  # noqa: E402
from tests.conformance.harness import assert_close  # noqa: E402


def _inputs(shape, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    t = rng.normal(0.0, 2.0, shape) * scale
    p = t + rng.normal(0.0, 1.5, shape) * scale
    flat_p, flat_t = p.reshape(-1), t.reshape(-1)
    flat_p[0] = flat_t[0]  # an exact zero residual
    if flat_p.size > 2:
        flat_p[1] = flat_t[1] + 0.5  # |e| exactly at delta = 0.5 (huber's tie)
    return p, t


# (name, ours, Optax's reduced the same way)
PAIRS = [
    ("mse-vs-squared_error-mean", lambda p, t: mj.mse(p, t),
     lambda p, t: optax.squared_error(p, t).mean()),
    ("mse-vs-2-l2_loss-mean", lambda p, t: mj.mse(p, t),
     lambda p, t: 2.0 * optax.l2_loss(p, t).mean()),
    ("mse-sum-vs-squared_error-sum", lambda p, t: mj.mse(p, t, reduction="sum"),
     lambda p, t: optax.squared_error(p, t).sum()),
    ("expectile-0.5-vs-l2_loss-mean", lambda p, t: mj.expectile(p, t, tau=0.5),
     lambda p, t: optax.l2_loss(p, t).mean()),
    ("huber-vs-huber_loss-mean", lambda p, t: mj.huber(p, t),
     lambda p, t: optax.huber_loss(p, t).mean()),
    ("huber-0.5-vs-huber_loss-mean", lambda p, t: mj.huber(p, t, delta=0.5),
     lambda p, t: optax.huber_loss(p, t, delta=0.5).mean()),
    ("huber-2.5-sum-vs-huber_loss-sum", lambda p, t: mj.huber(p, t, delta=2.5, reduction="sum"),
     lambda p, t: optax.huber_loss(p, t, delta=2.5).sum()),
    ("log_cosh-vs-log_cosh-mean", lambda p, t: mj.log_cosh(p, t),
     lambda p, t: optax.log_cosh(p, t).mean()),
    # elementwise: reduction="none" and the Optax-named helpers
    ("squared_error-vs-squared_error", mj.squared_error, optax.squared_error),
    ("l2_loss-vs-l2_loss", mj.l2_loss, optax.l2_loss),
    ("huber_loss-vs-huber_loss", lambda p, t: mj.huber_loss(p, t, delta=0.5),
     lambda p, t: optax.huber_loss(p, t, delta=0.5)),
    ("log_cosh-none-vs-log_cosh", lambda p, t: mj.log_cosh(p, t, reduction="none"), optax.log_cosh),
]
SHAPES = [(7,), (5, 3), (2, 3, 4)]


def _value_and_grads(fn, p, t, jit):
    def scalar(p, t):
        out = fn(p, t)
        return jnp.sum(out * jnp.arange(1.0, out.size + 1.0).reshape(out.shape)), out

    vg = jax.value_and_grad(scalar, argnums=(0, 1), has_aux=True)
    (_, out), grads = (jax.jit(vg) if jit else vg)(p, t)
    return out, grads


@pytest.mark.parametrize("shape,jit", [(s, False) for s in SHAPES] + [((5, 3), True)],
                         ids=lambda x: "jit" if x is True else "eager" if x is False else str(x))
@pytest.mark.parametrize("name,ours,theirs", PAIRS, ids=[p[0] for p in PAIRS])
def test_equals_optax_float32(name, ours, theirs, shape, jit):
    p, t = (jnp.asarray(a, jnp.float32) for a in _inputs(shape))
    got, g_ours = _value_and_grads(ours, p, t, jit)
    ref, g_theirs = _value_and_grads(theirs, p, t, jit)
    assert got.shape == ref.shape and got.dtype == ref.dtype == jnp.float32
    assert_close(got, ref, "float32-pointwise", f"{name} against optax")
    for a, b in zip(g_ours, g_theirs):
        assert_close(a, b, "float32-pointwise", f"{name} gradient against optax")


@pytest.mark.parametrize("name,ours,theirs", PAIRS, ids=[p[0] for p in PAIRS])
def test_equals_optax_float64(name, ours, theirs):
    with jax.enable_x64(True):
        p, t = (jnp.asarray(a, jnp.float64) for a in _inputs((6, 4), seed=1))
        got, g_ours = _value_and_grads(ours, p, t, jit=False)
        ref, g_theirs = _value_and_grads(theirs, p, t, jit=False)
        assert got.dtype == ref.dtype == jnp.float64
        assert_close(got, ref, "float64-exact", f"{name} against optax")
        for a, b in zip(g_ours, g_theirs):
            assert_close(a, b, "float64-exact", f"{name} gradient against optax")


def test_squared_error_is_bitwise_optax():
    p, t = (jnp.asarray(a, jnp.float32) for a in _inputs((64, 3), seed=2))
    np.testing.assert_array_equal(np.asarray(mj.squared_error(p, t)), np.asarray(optax.squared_error(p, t)))
    np.testing.assert_array_equal(np.asarray(mj.huber_loss(p, t)), np.asarray(optax.huber_loss(p, t)))


def test_log_cosh_large_residuals():
    p = jnp.array([-200.0, -30.0, 0.0, 30.0, 200.0])
    got, ref = mj.log_cosh(p, reduction="none"), optax.log_cosh(p)
    assert np.all(np.isfinite(np.asarray(got)))
    assert_close(got, ref, "float32-rerun", "log_cosh against optax")
    assert_close(jax.grad(mj.log_cosh)(p), jax.grad(lambda x: optax.log_cosh(x).mean())(p), "float32-rerun",
                 "log_cosh gradient against optax")


def test_optax_training_step_equivalence():
    """One adam step with our loss moves the parameters exactly as with Optax's."""
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(32, 4)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(32,)), jnp.float32)
    params = {"w": jnp.zeros(4), "b": jnp.zeros(())}
    opt = optax.adam(1e-2)

    def step(loss_fn):
        def loss(prm):
            return loss_fn(x @ prm["w"] + prm["b"], y)

        grads = jax.grad(loss)(params)
        updates, _ = opt.update(grads, opt.init(params), params)
        return optax.apply_updates(params, updates)

    ours = jax.jit(lambda: step(lambda p, t: mj.huber(p, t, delta=0.3)))()
    theirs = jax.jit(lambda: step(lambda p, t: optax.huber_loss(p, t, delta=0.3).mean()))()
    for k in params:
        assert_close(ours[k], theirs[k], "float32-rerun", f"{k} after a step")


# -- where we differ from Optax on purpose (docs/design.md, "Semantics") -------------------------------------------


def test_no_silent_broadcasting_where_optax_broadcasts():
    p, t = jnp.zeros((4, 1)), jnp.ones((4,))
    assert optax.huber_loss(p, t).shape == (4, 4)  # Optax: the (B, 1) vs (B,) bug
    assert optax.log_cosh(p, t).shape == (4, 4)
    for fn in (mj.huber, mj.log_cosh, mj.huber_loss, mj.mse):
        with pytest.raises(ValueError, match="same shape"):
            fn(p, t)


def test_half_precision_does_not_overflow_where_optax_does():
    p = jnp.full((1000,), 300.0, jnp.float16)
    assert not np.isfinite(float(optax.squared_error(p).sum()))
    assert float(mj.mse(p, reduction="sum")) == pytest.approx(9e7, rel=1e-3)


def test_empty_batch_is_zero_not_nan():
    p = jnp.zeros((0, 3))
    assert np.isnan(float(optax.squared_error(p, p).mean()))
    assert float(mj.mse(p, p)) == 0.0
    np.testing.assert_array_equal(np.asarray(jax.grad(mj.mse)(p, p)), np.zeros((0, 3)))


def test_integer_predictions_are_promoted_where_optax_refuses():
    with pytest.raises(TypeError):
        optax.squared_error(jnp.array([1, 2]), jnp.array([0, 0]))
    assert float(mj.mse(jnp.array([1, 2]), jnp.array([0, 0]))) == pytest.approx(2.5)


def test_log_cosh_of_small_residuals_is_accurate_in_float32():
    """Optax's logaddexp(e, -e) - log 2 cancels for small |e| (an O(e**2) result from O(1)
    terms); ours switches to the Taylor series there. (Both agree to ~1e-7 in absolute
    terms, which is what the drop-in tests above check.)"""
    e = np.array([1e-4, 1e-3, 0.01, 0.1, 0.29, 0.31, 1.0], np.float32)
    exact = np.log1p(2.0 * np.sinh(e.astype(np.float64) / 2.0) ** 2)
    ours = np.asarray(mj.log_cosh(jnp.asarray(e), reduction="none"), np.float64)
    for e_i, o, x in zip(e, ours, exact):  # per element: the relative accuracy of each small value
        assert_close(o, x, "log_cosh-float32", f"log_cosh({e_i})")
    # (optax 0.2.8's relative errors on the first four: 1.0, 7e-2, 1e-3, 2e-5)
