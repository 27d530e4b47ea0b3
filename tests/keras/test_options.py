"""Beyond the built-ins: ``weight`` and ``mask`` given to the constructor or at call time (the
same loss either way, combined when both are given), with Keras masks and missing targets;
and the loss ``dtype`` deciding the compute dtype as in Keras. Values and gradients against
the float64 reference (the conformance suite covers every preset x reduction x option)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conformance.harness import assert_close

from .common import BACKEND, KCase, cotangent_for, keras, keras_run, mk, reference

RNG = np.random.default_rng(11)
Y = RNG.normal(size=(6, 3))
P = Y + RNG.normal(size=(6, 3))
SW = RNG.uniform(0.5, 2.0, 6)
W_OUT = np.array([1.0, 0.25, 2.0])  # per-output weights
W_ELEM = RNG.uniform(0.5, 2.0, (6, 3))
VISIBLE = RNG.uniform(size=(6, 3)) > 0.3
KMASK = np.array([True, True, False, True, True, True])

PRESETS = {
    "mse": lambda **kw: mk.MeanSquaredError(**kw),
    "mae-elementwise": lambda **kw: mk.MeanAbsoluteError(per_sample=False, **kw),
    "rmse": lambda **kw: mk.RootMeanSquaredError(reduction="mean_with_sample_weight", **kw),
    "huber-sum": lambda **kw: mk.Huber(delta=0.5, reduction="sum", **kw),
    "expectile-none": lambda **kw: mk.Expectile(tau=0.7, reduction="none", **kw),
    "r2": lambda **kw: mk.R2Score(**kw),
}


def _check(loss, case: KCase, spec=None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    spec = loss.spec if spec is None else spec
    ct = cotangent_for(spec, case)
    got_v, got_g = keras_run(loss, case, ct)
    ref_v, ref_g = reference(spec, case, ct)
    assert_close(got_v, ref_v, "float32", f"{case.name} value")
    for n in case.wrt:
        assert_close(got_g[n], ref_g[n], "float32", f"{case.name} d/d{n}", 1.0)
    return got_v, got_g


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("what", ["weight_output", "weight_elem", "mask"])
def test_constructor_and_call_time_are_the_same_loss(name, what):
    value = {"weight_output": W_OUT, "weight_elem": W_ELEM, "mask": VISIBLE}[what]
    key = "mask" if what == "mask" else "weight"
    y = np.where(VISIBLE, Y, np.nan) if key == "mask" else Y  # NaN under the mask must not leak
    at_call = KCase(f"{name}-{what}", y, P, sample_weight=SW, **{key: value})
    v1, g1 = _check(PRESETS[name](), at_call)
    built = PRESETS[name](**{key: value})
    v2, g2 = keras_run(built, KCase("ctor", y, P, sample_weight=SW), cotangent_for(built.spec, at_call))
    assert_close(v2, v1, "float32-rerun", "constructor against call time")
    for n in g2:
        assert_close(g2[n], g1[n], "float32-rerun", f"constructor against call time d/d{n}")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_everything_combined(name):
    """Constructor weight x call weight, constructor mask & call mask & Keras mask & NaN targets."""
    y = Y.copy()
    y[2, 1] = np.nan  # missing
    y[4] = np.nan  # under the Keras mask, and missing
    kmask = KMASK.copy()
    kmask[4] = False
    ctor_mask = np.array([True, True, False])
    loss = PRESETS[name](weight=W_OUT, mask=ctor_mask, missing="nan")
    call_w, call_mask = W_ELEM, VISIBLE | np.eye(6, 3, dtype=bool)
    case = KCase(f"{name}-combined", y, P, sample_weight=SW, kmask=kmask, weight=call_w, mask=call_mask)
    spec = loss.spec
    ct = cotangent_for(spec, KCase("shape", Y, P))
    got_v, got_g = keras_run(loss, case, ct)
    ref_case = KCase("ref", y, P, sample_weight=SW, kmask=kmask, weight=W_OUT * call_w,
                     mask=np.broadcast_to(ctor_mask, (6, 3)) & call_mask)
    ref_v, ref_g = reference(spec, ref_case, ct)
    assert_close(got_v, ref_v, "float32", "value")
    for n in case.wrt:
        assert_close(got_g[n], ref_g[n], "float32", f"d/d{n}", 1.0)
        assert np.all(np.isfinite(got_g[n]))


def test_missing_targets_without_nan_leaks():
    y = Y.copy()
    y[0, :] = np.nan  # a sample with no observed output is masked as a whole
    y[3, 2] = np.nan
    v, g = _check(mk.MeanSquaredError(missing="nan"), KCase("missing", y, P, sample_weight=SW))
    assert np.all(g["y_pred"][0] == 0) and g["y_pred"][3, 2] == 0
    with pytest.raises(ValueError, match="missing='nan'"):
        mk.MeanSquaredError(missing="nan")(Y.astype("int32"), P)


def test_default_dtype_computes_half_inputs_in_float32():
    y = np.zeros((4, 2), "float16")
    p = np.full((4, 2), 300.0, "float16")
    for loss in (mk.MeanSquaredError(), mk.MeanSquaredError(missing="nan")):
        out = loss(y, p)
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
        assert float(np.asarray(keras.ops.convert_to_numpy(out))) == 90000.0  # no overflow
    out = mk.MeanSquaredError()(y.astype("int32"), p.astype("int32"))  # integers are promoted
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


@pytest.mark.parametrize("dtype", ["float16", "mixed_float16", "bfloat16"])
def test_loss_dtype_decides_as_in_keras(dtype):
    """As Keras: the loss dtype (or a policy's compute dtype) is the compute dtype."""
    y = np.zeros((4, 2), "float32")
    p = np.full((4, 2), 0.5, "float32")
    compute = "float16" if dtype == "mixed_float16" else dtype
    for loss in (mk.MeanSquaredError(dtype=dtype), mk.MeanSquaredError(missing="nan", dtype=dtype)):
        out = loss(y, p)
        assert keras.backend.standardize_dtype(out.dtype) == compute
        builtin = keras.losses.MeanSquaredError(dtype=dtype)(y, p)
        assert keras.backend.standardize_dtype(builtin.dtype) == compute
    big = np.full((4, 2), 300.0, "float32")
    if compute == "float16":  # e^2 = 90000 overflows float16, as Keras' built-in does
        assert np.isinf(float(keras.ops.convert_to_numpy(mk.MeanSquaredError(dtype=dtype)(y, big))))
        assert np.isinf(float(keras.ops.convert_to_numpy(keras.losses.MeanSquaredError(dtype=dtype)(y, big))))


@pytest.mark.skipif(BACKEND == "jax", reason="JAX computes float64 only with x64 enabled (conformance does it)")
def test_float64_loss_dtype_stays_float64():
    y, p = Y, P + 1e-9  # a difference float32 cannot hold
    for loss in (mk.MeanSquaredError(dtype="float64"), mk.LogCosh(dtype="float64"),
                 mk.MeanSquaredError(dtype="float64", reduction="mean_with_sample_weight", missing="nan")):
        out = loss(y, p, SW)
        assert keras.backend.standardize_dtype(out.dtype) == "float64"
        want, _ = reference(loss.spec, KCase("f64", y, p, sample_weight=SW), wrt=())
        assert_close(float(keras.ops.convert_to_numpy(out)), want, "float64-exact", "float64 loss")
