"""mse_adapters.jax: the public functions against the float64 reference, the elementwise
helpers, dtypes, inputs that are not JAX arrays, and the value checks (eager, skipped under
tracing, or as checkify checks)."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax.experimental import checkify  # noqa: E402

import mse_adapters.jax as mj  # noqa: E402
from mse_adapters import LossSpec, preset  # noqa: E402
from mse_adapters import numpy as mnp  # noqa: E402
from tests.conformance.harness import assert_close  # noqa: E402


def _data(shape=(6, 3), seed=0):
    rng = np.random.default_rng(seed)
    t = rng.normal(0.0, 2.0, shape)
    p = t + rng.normal(0.0, 1.5, shape)
    p.reshape(-1)[0] = t.reshape(-1)[0]
    return p, t


def _ref(name, p, t, **kw):
    """The reference (scikit-learn order) for the preset ``name`` with spec fields ``kw``."""
    arrays = {k: kw.pop(k) for k in ("weight", "sample_weight", "mask") if k in kw}
    return mnp.loss(preset(name, **kw), t, p, **arrays)


# -- each public function is the preset it names, with the options it forwards ---------------

FUNCTIONS = [
    ("mse", mj.mse, {}),
    ("mae", mj.mae, {}),
    ("rmse", mj.rmse, {}),
    ("rmse", mj.rmse, {"multioutput": "raw_values"}),
    ("rmse", mj.rmse, {"multioutput": (0.2, 0.3, 0.5)}),
    ("mse", mj.mse, {"multioutput": "uniform_average"}),
    ("huber", mj.huber, {"delta": 0.6}),
    ("smooth_l1", mj.smooth_l1, {"beta": 0.4}),
    ("smooth_l1", mj.smooth_l1, {"beta": 0.0}),
    ("log_cosh", mj.log_cosh, {}),
    ("expectile", mj.expectile, {"tau": 0.8}),
    ("pseudo_huber", mj.pseudo_huber, {"delta": 0.6}),
    ("quantile", mj.quantile, {"tau": 0.3}),
    ("nmse", mj.nmse, {}),
    ("r2", mj.r2, {}),
    ("r2", mj.r2, {"multioutput": "variance_weighted"}),
]


@pytest.mark.parametrize("name,fn,params", FUNCTIONS, ids=lambda x: x if isinstance(x, str) else None)
@pytest.mark.parametrize("weighting", ["plain", "weighted", "masked-missing"])
def test_function_equals_reference(name, fn, params, weighting):
    p, t = _data()
    rng = np.random.default_rng(3)
    kw: dict = {}
    if weighting == "weighted":
        kw = {"weight": rng.uniform(0.5, 2.0, 3), "sample_weight": rng.uniform(0.5, 2.0, 6)}
    elif weighting == "masked-missing":
        mask = rng.uniform(size=t.shape) > 0.3
        t = np.where(rng.uniform(size=t.shape) > 0.8, np.nan, t)
        kw = {"mask": mask, "missing": "nan"}
    got = fn(jnp.asarray(p, jnp.float32), jnp.asarray(t, jnp.float32), **params,
             **{k: (v if isinstance(v, str) else jnp.asarray(v)) for k, v in kw.items()})
    ref = _ref(name, np.float32(p).astype(float), np.float32(t).astype(float), **params, **kw)
    assert got.dtype == jnp.float32
    # floor 0.5: the error of a score (r2 = 1 - SSE/SST) is relative to its scale 1, not to its value
    assert_close(got, ref, "float32-pointwise", f"{name} float32", floor=0.5)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "sum_over_batch_size", "per_sample",
                                       "per_output"])
def test_reductions_and_shapes(reduction):
    p, t = _data((4, 2, 3))
    got = mj.huber(jnp.asarray(p), jnp.asarray(t), delta=0.5, reduction=reduction)
    ref = _ref("huber", np.float32(p).astype(float), np.float32(t).astype(float), delta=0.5,
               reduction=reduction)
    expected_shape = {"none": (4, 2, 3), "per_sample": (4,), "per_output": (3,)}.get(reduction, ())
    assert got.shape == expected_shape == np.shape(ref)
    assert_close(got, ref, "float32-pointwise", f"huber {reduction}")


def test_reduction_none_is_elementwise_and_zero_where_masked():
    p = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    t = jnp.array([[0.0, jnp.nan], [1.0, 1.0]])
    mask = jnp.array([[True, False], [True, True]])
    out = mj.mse(p, t, mask=mask, weight=jnp.array([2.0, 1.0]), reduction="none")
    np.testing.assert_array_equal(np.asarray(out), [[2.0, 0.0], [8.0, 9.0]])


def test_targets_default_to_zeros_as_in_optax():
    p = jnp.array([1.0, -2.0, 3.0])
    assert float(mj.mse(p)) == pytest.approx(14.0 / 3.0)
    np.testing.assert_array_equal(np.asarray(mj.squared_error(p)), [1.0, 4.0, 9.0])


def test_elementwise_helpers():
    p, t = _data((5, 3))
    p32, t32 = jnp.asarray(p, jnp.float32), jnp.asarray(t, jnp.float32)
    e = np.asarray(p32, float) - np.asarray(t32, float)
    assert_close(mj.squared_error(p32, t32), e**2, "float32-pointwise", "squared_error")
    assert_close(mj.l2_loss(p32, t32), 0.5 * e**2, "float32-pointwise", "l2_loss")
    assert_close(mj.absolute_error(p32, t32), np.abs(e), "float32-pointwise", "absolute_error")
    a = np.abs(e)
    hub = np.where(a <= 0.5, 0.5 * e**2, 0.5 * (a - 0.25))
    assert_close(mj.huber_loss(p32, t32, delta=0.5), hub, "float32-pointwise", "huber_loss")
    w = jnp.asarray([1.0, 0.0, 2.0])
    assert_close(mj.squared_error(p32, t32, weight=w), e**2 * np.asarray(w), "float32-pointwise",
                 "weighted squared_error")


# -- compile(spec) and loss(spec, ...) --------------------------------------------------------


def test_compile_is_hashable_and_equal_by_spec():
    a = mj.compile(preset("mse"))
    b = mj.compile(LossSpec(penalty="square"))
    assert a == b and hash(a) == hash(b)
    assert a != mj.compile(preset("mse", reduction="sum"))
    assert a.spec == preset("mse") and a.reduction == "mean"
    p, t = _data()
    assert_close(float(a(jnp.asarray(p), jnp.asarray(t))),
                 _ref("mse", np.float32(p).astype(float), np.float32(t).astype(float)),
                 "float32-pointwise", "compiled mse")


def test_compile_and_loss_reject_a_non_spec():
    with pytest.raises(TypeError, match="LossSpec"):
        mj.compile("mse")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="LossSpec"):
        mj.loss({"penalty": "square"}, jnp.zeros(3), jnp.zeros(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="check_values"):
        mj.compile(preset("mse"), check_values="yes")  # type: ignore[arg-type]


def test_spec_errors_surface_at_call():
    with pytest.raises(ValueError, match="reduction='batchmean'"):
        mj.mse(jnp.zeros(3), jnp.zeros(3), reduction="batchmean")
    with pytest.raises(ValueError, match="delta"):
        mj.huber(jnp.zeros(3), jnp.zeros(3), delta=0.0)


# -- dtypes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_inputs_give_a_float32_loss_and_half_gradients(dtype):
    p = jnp.full((1000,), 300.0, dtype)  # e**2 = 9e4 overflows float16 (max 65504)
    t = jnp.zeros((1000,), dtype)
    out = mj.mse(p, t, reduction="sum")
    assert out.dtype == jnp.float32
    assert float(out) == pytest.approx(9e7, rel=1e-2)
    g = jax.grad(mj.mse)(p[:4], t[:4])
    assert g.dtype == dtype
    assert_close(np.asarray(g, np.float32), np.full(4, 150.0), jnp.dtype(dtype).name, "half gradient")


def test_integer_inputs_are_promoted_to_the_default_float():
    out = mj.mse(jnp.array([1, 2, 3]), jnp.array([1, 1, 1]))
    assert out.dtype == jnp.float32 and float(out) == pytest.approx(5.0 / 3.0)
    with jax.enable_x64(True):
        out64 = mj.mse(jnp.array([1, 2, 3]), jnp.array([1, 1, 1]))
        assert out64.dtype == jnp.float64


def test_float64_with_x64():
    p, t = _data()
    with jax.enable_x64(True):
        out = mj.r2(jnp.asarray(p), jnp.asarray(t))
        assert out.dtype == jnp.float64
        assert float(out) == pytest.approx(_ref("r2", p, t), rel=1e-13)
        mixed = mj.mse(jnp.asarray(p, jnp.float32), jnp.asarray(t, jnp.float64))
        assert mixed.dtype == jnp.float64
        g = jax.grad(mj.mse)(jnp.asarray(p), jnp.asarray(t))
        assert g.dtype == jnp.float64
        _, ref_g = mnp.value_and_grad(preset("mse"), t, p)
        assert_close(g, ref_g["y_pred"], "float64-exact", "float64 gradient")


def test_float64_numpy_input_without_x64_is_float32():
    p, t = _data()
    assert mj.mse(p, t).dtype == jnp.float32


# -- inputs that are not JAX arrays ----------------------------------------------------------


def test_array_likes_are_accepted():
    p, t = _data((4,))
    ref = float(mj.mse(jnp.asarray(p), jnp.asarray(t)))
    assert float(mj.mse(p, t)) == pytest.approx(ref)  # NumPy arrays
    assert float(mj.mse(p.tolist(), t.tolist())) == pytest.approx(ref)  # lists
    assert float(mj.mse(2.0, 0.5)) == pytest.approx(2.25)  # Python scalars
    assert float(mj.mse(np.float32(2.0), 0)) == pytest.approx(4.0)  # NumPy scalar, int


@pytest.mark.parametrize("arg", ["predictions", "targets", "weight", "sample_weight", "mask"])
def test_a_torch_tensor_is_a_type_error_naming_the_argument(arg):
    torch = pytest.importorskip("torch")
    kw = {"predictions": jnp.zeros((4, 3)), "targets": jnp.ones((4, 3)), "weight": None,
          "sample_weight": None, "mask": None}
    kw[arg] = torch.ones((4, 3)) if arg != "mask" else torch.ones((4, 3), dtype=torch.bool)
    with pytest.raises(TypeError, match=rf"^{arg} is a torch array .*convert it explicitly"):
        mj.mse(kw.pop("predictions"), kw.pop("targets"), **kw)


def test_other_objects_are_type_errors():
    with pytest.raises(TypeError, match="targets must be a JAX array or an array-like"):
        mj.mse(jnp.zeros(3), {"a": 1})
    with pytest.raises(TypeError, match="predictions has dtype <U1"):
        mj.mse(["a", "b"], jnp.zeros(2))
    with pytest.raises(TypeError, match="complex"):
        mj.mse(jnp.zeros(3, jnp.complex64), jnp.zeros(3))


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"predictions shape \(4, 1\) and targets shape \(4,\)"):
        mj.huber(jnp.zeros((4, 1)), jnp.zeros(4))


# -- value checks: eager, skipped under tracing, or checkify -----------------------------------

NEG_W = jnp.array([1.0, -1.0, 1.0])
P3, T3 = jnp.array([1.0, 2.0, 3.0]), jnp.zeros(3)


def test_value_checks_run_eagerly():
    with pytest.raises(ValueError, match="weight must be non-negative"):
        mj.mse(P3, T3, weight=NEG_W)
    with pytest.raises(ValueError, match="sample_weight must be finite"):
        mj.mse(P3, T3, sample_weight=jnp.array([1.0, jnp.nan, 1.0]))
    with pytest.raises(ValueError, match="mask must be boolean, or numeric with only 0 and 1"):
        mj.mse(P3, T3, mask=jnp.array([1.0, 0.5, 0.0]))


def test_value_checks_run_under_an_eager_grad():
    """An eager jax.grad w.r.t. the weights still has concrete values: they are checked."""
    with pytest.raises(ValueError, match="weight must be non-negative"):
        jax.grad(lambda w: mj.mse(P3, T3, weight=w))(NEG_W)


def test_value_checks_are_skipped_under_jit_and_vmap():
    out = jax.jit(lambda w: mj.mse(P3, T3, weight=w))(NEG_W)
    assert float(out) == pytest.approx(float(mj.mse(P3, T3, weight=-NEG_W, check_values=False)))
    per_row = jax.vmap(lambda w: mj.mse(P3, T3, weight=w))(jnp.stack([NEG_W, NEG_W]))
    assert per_row.shape == (2,)


def test_check_values_false_skips_them_eagerly():
    out = mj.mse(P3, T3, weight=NEG_W, check_values=False)
    assert np.isfinite(float(out))


def test_checkify_mode_under_jit_with_the_eager_message():
    with pytest.raises(ValueError) as eager:
        mj.mse(P3, T3, weight=NEG_W)
    f = jax.jit(lambda w: mj.mse(P3, T3, weight=w, check_values="checkify"))
    err, _ = checkify.checkify(f)(NEG_W)
    assert err.get() is not None and str(eager.value) in err.get()
    with pytest.raises(checkify.JaxRuntimeError, match="weight must be non-negative"):
        err.throw()
    err_ok, out = checkify.checkify(f)(jnp.abs(NEG_W))
    assert err_ok.get() is None and float(out) == pytest.approx(14.0 / 3.0)
    mask_err, _ = checkify.checkify(jax.jit(
        lambda m: mj.mse(P3, T3, mask=m, check_values="checkify")))(jnp.array([1.0, 0.5, 0.0]))
    assert "mask must be boolean" in mask_err.get()


def test_checkify_mode_eagerly_raises():
    with pytest.raises(checkify.JaxRuntimeError, match="sample_weight must be finite"):
        mj.mse(P3, T3, sample_weight=jnp.array([1.0, jnp.inf, 1.0]), check_values="checkify")


def test_missing_nan_with_integer_targets():
    with pytest.raises(ValueError, match="missing='nan' .* targets has dtype int32"):
        mj.mse(jnp.zeros(3), jnp.zeros(3, jnp.int32), missing="nan")


def test_import_loads_jax_only():
    import subprocess
    import sys

    code = ("import sys, mse_adapters.jax; print(' '.join(m for m in "
            "('jax', 'torch', 'tensorflow', 'keras', 'optax', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["jax"]
