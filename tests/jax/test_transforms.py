"""mse_adapters.jax under JAX's transformations: jit (no retracing: a trace counter), grad /
value_and_grad, vmap (per-example losses and gradients), checkpoint, traced weights and
masks, and the contract's conventions at non-smooth points."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import mse_adapters.jax as mj  # noqa: E402
from mse_adapters import LossSpec, preset  # noqa: E402
from mse_adapters import numpy as mnp  # noqa: E402
from tests.conformance.harness import assert_close  # noqa: E402


def _batch(seed, shape=(8, 3)):
    rng = np.random.default_rng(seed)
    t = rng.normal(size=shape).astype(np.float32)
    p = (t + rng.normal(size=shape)).astype(np.float32)
    w = rng.uniform(0.5, 2.0, shape[-1:]).astype(np.float32)
    sw = rng.uniform(0.5, 2.0, shape[:1]).astype(np.float32)
    m = rng.uniform(size=shape) > 0.3
    t = np.where(m, t, np.nan).astype(np.float32)  # NaN under the mask
    return p, t, w, sw, m


def _ref(spec, p, t, w=None, sw=None, m=None, wrt=("y_pred",)):
    f = lambda a: None if a is None else np.asarray(a, np.float64)  # noqa: E731
    return mnp.value_and_grad(spec, f(t), f(p), weight=f(w), sample_weight=f(sw), mask=m, wrt=wrt)


# -- jit: one trace per shape ----------------------------------------------------------------


def test_jit_traces_once_per_shape_with_traced_weights_and_masks():
    traces = []

    def step(p, t, w, sw, m):
        traces.append(1)  # runs only while tracing
        return mj.huber(p, t, delta=0.7, weight=w, sample_weight=sw, mask=m)

    f = jax.jit(step)
    spec = preset("huber", delta=0.7)
    for seed in range(4):  # new values (and new masks) every call, same shapes
        p, t, w, sw, m = _batch(seed)
        got = f(p, t, w, sw, m)
        ref, _ = _ref(spec, p, t, w, sw, m)
        assert_close(float(got), ref, "float32-pointwise", f"jit call {seed}")
    assert len(traces) == 1
    f(*_batch(9, (5, 3)))  # a new shape traces again, once
    f(*_batch(10, (5, 3)))
    assert len(traces) == 2


def test_jit_with_the_spec_static_does_not_retrace_for_an_equal_spec():
    traces = []

    def fn(spec, p, t):
        traces.append(1)
        return mj.loss(spec, p, t)

    f = jax.jit(fn, static_argnums=0)
    p, t, *_ = _batch(0)
    t = np.nan_to_num(t)
    a = f(preset("rmse"), p, t)
    b = f(LossSpec(penalty="square", finalize="sqrt"), p + 1, t)  # equal spec, new object
    assert len(traces) == 1 and float(a) != float(b)
    f(preset("rmse", multioutput="raw_values"), p, t)  # another spec: a new trace
    assert len(traces) == 2


def test_a_compiled_loss_is_a_static_argument():
    traces = []

    def train_loss(loss_fn, p, t, m):
        traces.append(1)
        return loss_fn(p, t, mask=m)

    f = jax.jit(train_loss, static_argnums=0)
    p, t, _, _, m = _batch(1)
    for _ in range(3):
        f(mj.compile(preset("mse", missing="nan")), p, t, m)  # a fresh but equal object each call
    assert len(traces) == 1


def test_jit_of_value_and_grad_equals_eager_and_reference():
    p, t, w, sw, m = _batch(2)
    spec = preset("mse")
    fn = mj.compile(spec)

    def loss(p, w):
        return fn(p, t, weight=w, sample_weight=sw, mask=m)

    vg = jax.value_and_grad(loss, argnums=(0, 1))
    (v_e, (gp_e, gw_e)), (v_j, (gp_j, gw_j)) = vg(p, w), jax.jit(vg)(p, w)
    ref_v, ref_g = _ref(spec, p, t, w, sw, m, wrt=("y_pred", "weight"))
    for v in (v_e, v_j):
        assert float(v) == pytest.approx(ref_v, rel=2e-6)
    for gp, gw in ((gp_e, gw_e), (gp_j, gw_j)):
        assert np.all(np.isfinite(gp)) and np.all(np.asarray(gp)[~m] == 0)  # masked: exactly 0
        assert_close(gp, ref_g["y_pred"], "float32", "d/dy_pred")
        assert_close(gw, ref_g["weight"], "float32", "d/dweight")


def test_numeric_traced_mask_under_jit():
    p, t, _, _, m = _batch(3)
    f = jax.jit(lambda p, t, m: mj.mae(p, t, mask=m))
    got = f(p, t, m.astype(np.float32))  # a 0/1 float mask, traced
    ref, _ = _ref(preset("mae"), p, t, m=m)
    assert float(got) == pytest.approx(ref, rel=2e-6)


# -- vmap: per-example losses and gradients -----------------------------------------------------


def test_vmap_gives_per_example_losses():
    p, t, w, sw, m = _batch(4, (6, 5, 3))  # 6 examples of (5, 3)
    per = jax.vmap(lambda p, t, m: mj.log_cosh(p, t, weight=w, mask=m))(p, t, m)
    assert per.shape == (6,)
    for i in range(6):
        ref, _ = _ref(preset("log_cosh"), p[i], t[i], w, None, m[i])
        assert float(per[i]) == pytest.approx(ref, rel=2e-6)
    # the per_sample reduction is the same thing without vmap
    direct = mj.log_cosh(p, t, weight=w, mask=m, reduction="per_sample")
    assert_close(per, direct, "float32-pointwise", "vmap against per_sample")


def test_vmap_of_grad_gives_per_example_gradients():
    p, t, _, _, m = _batch(5, (4, 6))
    spec = preset("rmse")
    grads = jax.jit(jax.vmap(jax.grad(mj.compile(spec)), in_axes=(0, 0)))(p, np.nan_to_num(t))
    for i in range(4):
        _, ref_g = _ref(spec, p[i], np.nan_to_num(t[i]))
        assert_close(grads[i], ref_g["y_pred"], "float32", f"per-example gradient {i}")


def test_vmap_over_sample_weights():
    p, t, _, sw, _ = _batch(6, (5, 3))
    t = np.nan_to_num(t)
    sws = np.stack([sw, 2 * sw, np.ones_like(sw)])
    out = jax.vmap(lambda s: mj.mse(p, t, sample_weight=s))(sws)
    for i in range(3):
        ref, _ = _ref(preset("mse"), p, t, sw=sws[i])
        assert float(out[i]) == pytest.approx(ref, rel=2e-6)


# -- checkpoint -----------------------------------------------------------------------------------


def test_checkpoint_gives_the_same_value_and_gradient():
    p, t, w, sw, m = _batch(7)
    fn = mj.compile(preset("smooth_l1", beta=0.5))

    def loss(p):
        return fn(jnp.tanh(p) * 3.0, t, weight=w, sample_weight=sw, mask=m)

    v0, g0 = jax.value_and_grad(loss)(p)
    v1, g1 = jax.value_and_grad(jax.checkpoint(loss))(p)
    v2, g2 = jax.jit(jax.value_and_grad(jax.checkpoint(loss)))(p)
    for v, g in ((v1, g1), (v2, g2)):
        assert float(v) == pytest.approx(float(v0), rel=1e-6)
        assert_close(g, g0, "float32", "checkpointed gradient")


def test_scan_over_batches():
    """A loss inside lax.scan (a training loop's inner loop) accumulates per-batch losses."""
    p, t, _, _, m = _batch(8, (4, 5, 3))

    def body(carry, xs):
        return carry + mj.mse(xs[0], xs[1], mask=xs[2]), None

    total, _ = jax.lax.scan(body, jnp.float32(0.0), (p, t, m))
    ref = sum(_ref(preset("mse"), p[i], t[i], m=m[i])[0] for i in range(4))
    assert float(total) == pytest.approx(ref, rel=2e-6)


# -- non-smooth points: one convention ------------------------------------------------------------


@pytest.mark.parametrize("fn", [
    lambda p, t: mj.mae(p, t),
    lambda p, t: mj.huber(p, t, delta=0.5),
    lambda p, t: mj.smooth_l1(p, t, beta=0.0),
    lambda p, t: mj.smooth_l1(p, t, beta=0.5),
    lambda p, t: mj.rmse(p, t),
    lambda p, t: mj.expectile(p, t, tau=0.9),
], ids=["mae", "huber", "smooth_l1_beta0", "smooth_l1", "rmse", "expectile"])
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_zero_gradient_at_a_zero_residual(fn, jit):
    p = jnp.array([1.0, 2.0, -3.0])
    g = (jax.jit(jax.grad(fn)) if jit else jax.grad(fn))(p, p)
    np.testing.assert_array_equal(np.asarray(g), 0.0)
    assert float(jax.grad(lambda x: jnp.abs(x))(0.0)) == 1.0  # what jnp.abs alone would give


def test_mae_gradient_is_sign_elsewhere():
    p, t = jnp.array([1.0, 2.0, 3.0, 4.0]), jnp.array([1.0, 3.0, 2.0, 4.0])
    np.testing.assert_array_equal(np.asarray(jax.grad(mj.mae)(p, t)), [0.0, -0.25, 0.25, 0.0])


def test_second_order_gradients():
    """Hessian-vector products work (e.g. for Newton or influence functions)."""
    p, t, *_ = _batch(9, (4,))
    t = np.nan_to_num(t)
    h = jax.hessian(lambda x: mj.mse(x, t))(jnp.asarray(p))
    assert_close(h, np.eye(4) * 2.0 / 4.0, "float32-rerun", "mse Hessian")
    hm = jax.hessian(lambda x: mj.mae(x, t))(jnp.asarray(p))
    np.testing.assert_array_equal(np.asarray(hm), 0.0)


# -- half precision under jit (the conformance backend jax-jit runs float32 and float64) -----

HALF_JIT_CASES = ["mse-mean-combined-2d", "huber-sum-ps-combined-3d", "log_cosh-none-mask-2d",
                  "rmse-mo=raw_values-combined", "r2-mean-combined-2d", "mae-per_output-weight_output-2d",
                  "expectile-sum_over_batch_size-sample_weight_col-2d", "everything-masked"]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", HALF_JIT_CASES)
def test_half_precision_under_jit_against_the_reference(name, dtype):
    from tests.conformance.backend_jax import JaxBackend
    from tests.conformance.cases import all_cases
    from tests.conformance.harness import check

    case = next(c for c in all_cases() if c.name == name)
    check(JaxBackend(jit=True, dtypes=(dtype,), sampled=False), case, dtype)
