"""Drop-in: with default arguments ``MeanSquaredError``, ``MeanAbsoluteError``, ``Huber`` and
``LogCosh`` equal ``keras.losses``' namesakes bit for bit, in value and in the gradients with
respect to ``y_true``, ``y_pred`` and ``sample_weight``, for every Keras reduction x weighting
(none, sample weights of every consistent shape, Keras masks, masks with weights) x shape
(2-D, 3-D sequences, 1-D, Keras' (B,) vs (B, 1) alignment) where Keras is defined and
consistent, under the Keras backend of this process. Both of our paths, Keras' own computation
and the shared pipeline, agree with the float64 reference on every such case.

Where Keras is not consistent, ``test_differences`` shows what Keras does and that we follow
docs/design.md, "Semantics" (the float64 reference) instead."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conformance.harness import assert_close
from tests.keras.common import BACKEND, KCase, cotangent_for, keras, keras_run, mk, reference

BUILTINS = {
    "mse": (mk.MeanSquaredError, keras.losses.MeanSquaredError, {}),
    "mae": (mk.MeanAbsoluteError, keras.losses.MeanAbsoluteError, {}),
    "huber": (mk.Huber, keras.losses.Huber, {}),
    "huber-delta0.3": (mk.Huber, keras.losses.Huber, {"delta": 0.3}),
    "log_cosh": (mk.LogCosh, keras.losses.LogCosh, {}),
}
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none")


def _cases() -> list[tuple[KCase, tuple[str, ...]]]:
    """(case, the reductions for which Keras is consistent on it)."""
    rng = np.random.default_rng(7)

    def y(*shape: int) -> tuple[np.ndarray, np.ndarray]:
        t = rng.normal(0.0, 1.5, shape)
        # |residual| >= 0.35: no exact zero (MAE's d|x|/dx) and no small log-cosh residual
        # (test_log_cosh_of_small_residuals_is_accurate)
        r = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.35, 2.5, shape)
        return t, t + r

    def w(*shape: int) -> np.ndarray:
        return rng.uniform(0.2, 3.0, shape)

    def m(*shape: int) -> np.ndarray:
        mask = rng.uniform(size=shape) > 0.4
        mask.flat[0] = True
        mask.flat[-1] = False
        return mask

    all_ = REDUCTIONS
    no_mwsw = tuple(r for r in REDUCTIONS if r != "mean_with_sample_weight")
    t2, p2 = y(6, 3)
    t3, p3 = y(3, 4, 2)
    t1, p1 = y(6)
    return [
        (KCase("2d", t2, p2), all_),
        (KCase("2d-sw", t2, p2, sample_weight=w(6)), all_),
        (KCase("2d-sw-col", t2, p2, sample_weight=w(6, 1)), all_),
        (KCase("2d-sw-zero", t2, p2, sample_weight=np.zeros(6)), all_),
        (KCase("2d-sw-scalar", t2, p2, sample_weight=np.array(2.5)), no_mwsw),
        (KCase("2d-kmask", t2, p2, kmask=m(6)), all_),
        (KCase("2d-kmask-sw", t2, p2, sample_weight=w(6), kmask=m(6)), all_),
        (KCase("2d-kmask-none", t2, p2, kmask=np.zeros(6, bool)), all_),
        (KCase("3d", t3, p3), all_),
        (KCase("3d-sw", t3, p3, sample_weight=w(3, 4)), all_),
        (KCase("3d-sw-col", t3, p3, sample_weight=w(3, 4, 1)), all_),
        (KCase("3d-sw-per-sequence", t3, p3, sample_weight=w(3, 1)), no_mwsw),
        (KCase("3d-kmask", t3, p3, kmask=m(3, 4)), all_),
        (KCase("3d-kmask-sw", t3, p3, sample_weight=w(3, 4), kmask=m(3, 4)), all_),
        # a Masking layer with a per-sequence or scalar weight: Keras broadcasts the weight by
        # its product with the mask (its torch backend cannot: KERAS_TORCH_FAILS)
        (KCase("3d-kmask-sw-per-sequence", t3, p3, sample_weight=w(3, 1), kmask=m(3, 4)), all_),
        (KCase("3d-kmask-sw-scalar", t3, p3, sample_weight=np.array(1.5), kmask=m(3, 4)), all_),
        (KCase("2d-kmask-sw-scalar", t2, p2, sample_weight=np.array(2.5), kmask=m(6)), all_),
        (KCase("true(B,)-pred(B,1)", t1, p1[:, None]), all_),
        (KCase("true(B,1)-pred(B,)", t1[:, None], p1), all_),
        (KCase("true(B,)-pred(B,1)-sw", t1, p1[:, None], sample_weight=w(6)), all_),
        (KCase("true(B,1)-pred(B,1)-sw-col", t1[:, None], p1[:, None], sample_weight=w(6, 1)), all_),
        (KCase("1d-one-sample", t1, p1), all_),
        (KCase("1d-one-sample-sw-scalar", t1, p1, sample_weight=np.array(1.7)), no_mwsw),
    ]


CASES = _cases()
#: Where Keras' torch backend raises (``sample_weight *= mask`` in place cannot broadcast).
KERAS_TORCH_FAILS = {"3d-kmask-sw-per-sequence", "3d-kmask-sw-scalar", "2d-kmask-sw-scalar"}
#: Every default built-in on every case; Huber with another delta on the 2-D cases.
PARAMS = [pytest.param(name, red, case, id=f"{name}-{red}-{case.name}")
          for name in BUILTINS for case, reds in CASES for red in reds
          if name != "huber-delta0.3" or case.name.startswith("2d")]


def _pair(name: str, reduction: str):
    ours, theirs, kw = BUILTINS[name]
    return ours(reduction=reduction, **kw), theirs(reduction=reduction, **kw)


@pytest.mark.parametrize("name,reduction,case", PARAMS)
def test_bit_for_bit_and_both_paths_agree_with_the_reference(name, reduction, case):
    ours, theirs = _pair(name, reduction)
    ct = cotangent_for(ours.spec, case)
    got_v, got_g = keras_run(ours, case, ct)
    ref_v, ref_g = reference(ours.spec, case, ct)
    assert got_v.shape == ref_v.shape  # the per-sample losses' shape (Keras: (B, 1) for "2d-sw-col")
    if BACKEND == "torch" and case.name in KERAS_TORCH_FAILS:
        with pytest.raises(RuntimeError):
            keras_run(theirs, case, ct, fresh_sample_weight=True)
    else:
        want_v, want_g = keras_run(theirs, case, ct, fresh_sample_weight=True)
        assert np.array_equal(got_v, want_v.reshape(got_v.shape)), (got_v, want_v)
        for n in case.wrt:
            assert np.array_equal(got_g[n], want_g[n]), (n, got_g[n], want_g[n])

    general, _ = _pair(name, reduction)
    general._keras_fn = None  # the shared pipeline, as for any option Keras does not have
    floor = 0.1 * max(1.0, float(np.max(np.abs(ref_v), initial=0.0)))
    for path, (v, g) in (("keras", (got_v, got_g)), ("general", keras_run(general, case, ct))):
        what = f"{path} path: {name} {reduction} {case.name}"
        assert_close(v, ref_v, "float32", f"{what} value")
        for n in case.wrt:
            assert_close(g[n], ref_g[n], "float32", f"{what} d/d{n}", floor)


# ---------------------------------------------------------------------------------------
# Where Keras is not consistent: what it does, and that we follow the contract instead.
# ---------------------------------------------------------------------------------------


def _close_to_reference(loss, case: KCase) -> np.ndarray:
    ct = cotangent_for(loss.spec, case)
    got_v, got_g = keras_run(loss, case, ct)
    ref_v, ref_g = reference(loss.spec, case, ct)
    assert_close(got_v, ref_v, "float32", f"{case.name} value")
    for n in case.wrt:
        assert_close(got_g[n], ref_g[n], "float32", f"{case.name} d/d{n}", 1.0)
    return got_v


def _keras_value(loss, case: KCase) -> np.ndarray:
    return keras_run(loss, case, fresh_sample_weight=True)[0]


RNG = np.random.default_rng(3)
T, P = RNG.normal(size=(4, 3)), RNG.normal(size=(4, 3))
PER_SAMPLE = np.mean((P - T) ** 2, axis=-1)


def test_mean_with_sample_weight_broadcasts_the_weights_before_summing():
    case = KCase("scalar-sw", T, P, sample_weight=np.array(3.0))
    got = _close_to_reference(mk.MeanSquaredError(reduction="mean_with_sample_weight"), case)
    assert np.isclose(got, PER_SAMPLE.mean())  # the weighted mean of a constant weight
    keras_v = _keras_value(keras.losses.MeanSquaredError(reduction="mean_with_sample_weight"), case)
    assert np.isclose(keras_v, 3.0 * PER_SAMPLE.sum() / 3.0)  # Keras: divided by the scalar


def test_mean_with_sample_weight_per_sequence_weights():
    t, p = RNG.normal(size=(2, 5, 3)), RNG.normal(size=(2, 5, 3))
    sw = np.array([[1.0], [3.0]])
    per = np.mean((p - t) ** 2, axis=-1)
    case = KCase("seq-sw", t, p, sample_weight=sw)
    got = _close_to_reference(mk.MeanSquaredError(reduction="mean_with_sample_weight"), case)
    assert np.isclose(got, np.sum(sw * per) / (5 * sw.sum()))
    keras_v = _keras_value(keras.losses.MeanSquaredError(reduction="mean_with_sample_weight"), case)
    assert np.isclose(keras_v, np.sum(sw * per) / sw.sum())  # Keras: inflated by T = 5


def test_one_sample_weighted_mean_divides_by_the_weight():
    t, p = T[:, 0], P[:, 0]
    case = KCase("1d-scalar-sw", t, p, sample_weight=np.array(2.0))
    got = _close_to_reference(mk.MeanSquaredError(reduction="mean_with_sample_weight"), case)
    assert np.isclose(got, np.mean((p - t) ** 2))
    keras_v = _keras_value(keras.losses.MeanSquaredError(reduction="mean_with_sample_weight"), case)
    assert np.isclose(keras_v, 2.0 * np.mean((p - t) ** 2))  # Keras: a scalar loss is not reduced


def test_one_dimensional_prediction_with_per_element_weights():
    t, p, sw = T[:, 0], P[:, 0], np.array([1.0, 2.0, 0.0, 1.0])
    case = KCase("1d-sw", t, p, sample_weight=sw)
    got = _close_to_reference(mk.MeanSquaredError(reduction="sum"), case)
    assert np.isclose(got, np.sum(sw * (p - t) ** 2) / 4)  # each element weighted
    keras_v = _keras_value(keras.losses.MeanSquaredError(reduction="sum"), case)
    assert np.isclose(keras_v, np.mean((p - t) ** 2) * sw.sum())  # Keras: one mean times each weight


def test_full_shape_sample_weight_weights_elements():
    sw = RNG.uniform(0.5, 2.0, size=(4, 3))
    case = KCase("elem-sw", T, P, sample_weight=sw)
    got = _close_to_reference(mk.MeanSquaredError(), case)
    assert np.isclose(got, np.mean(np.mean(sw * (P - T) ** 2, axis=-1)))
    with pytest.raises(Exception):  # noqa: B017 - Keras: a backend broadcasting error (B != d)
        _keras_value(keras.losses.MeanSquaredError(), case)


def test_square_full_shape_sample_weight_is_not_mispaired():
    t, p = RNG.normal(size=(3, 3)), RNG.normal(size=(3, 3))
    sw = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    case = KCase("square-sw", t, p, sample_weight=sw)
    got = _close_to_reference(mk.MeanSquaredError(), case)
    per = np.mean((p - t) ** 2, axis=-1)
    assert np.isclose(got, (per[0] + per[2]) / 3)
    keras_v = _keras_value(keras.losses.MeanSquaredError(), case)
    assert np.isclose(keras_v, np.mean(per[None, :] * sw))  # Keras pairs the weights' rows with losses' columns


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_batch_gives_zero(reduction):
    case = KCase("empty", np.zeros((0, 3)), np.zeros((0, 3)))
    got = _close_to_reference(mk.MeanSquaredError(reduction=reduction), case)
    assert got.shape == ((0,) if reduction == "none" else ())
    keras_v = _keras_value(keras.losses.MeanSquaredError(reduction=reduction), case)
    assert keras_v.shape == (0,)  # Keras: an unreduced empty array for every reduction


def test_nan_target_under_the_keras_mask():
    t = T.copy()
    t[1] = np.nan
    kmask = np.array([True, False, True, True])
    case = KCase("nan-under-kmask", t, P, sample_weight=np.ones(4), kmask=kmask)
    got = _close_to_reference(mk.MeanSquaredError(), case)
    assert np.isclose(got, PER_SAMPLE[kmask].sum() / 3)
    keras_v = _keras_value(keras.losses.MeanSquaredError(), case)
    assert np.isnan(keras_v)  # Keras: 0 * NaN


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_non_finite_prediction_and_target_under_the_keras_mask(reduction, bad):
    """A masked sample contributes exactly nothing, whatever its prediction or target holds
    (docs/design.md, "Semantics": a select, never a product with 0): on Keras' own path and the pipeline's."""
    t, p = T.copy(), P.copy()
    t[1, 0], p[1, 2], p[3, 1] = bad, bad, np.nan
    kmask = np.array([True, False, True, False])
    case = KCase("bad-under-kmask", t, p, sample_weight=np.array([1.0, 2.0, 0.5, 1.0]), kmask=kmask)
    for loss in (mk.MeanSquaredError(reduction=reduction), mk.Huber(reduction=reduction),
                 mk.MeanSquaredError(reduction=reduction, missing="nan")):
        got = _close_to_reference(loss, case)
        assert np.all(np.isfinite(got))
        _, grads = keras_run(loss, case, cotangent_for(loss.spec, case))
        for n in case.wrt:
            assert np.all(grads[n][~kmask] == 0), (loss, n, grads[n])


@pytest.mark.parametrize("name", ["mse", "mae", "huber", "log_cosh"])
def test_call_returns_the_per_sample_losses_as_keras_does(name):
    ours, theirs = _pair(name, "sum_over_batch_size")
    t, p = T, T + np.sign(P - T) * (0.4 + np.abs(P - T))  # |r| >= 0.3: Keras' log_cosh formula
    t, p = keras.ops.convert_to_tensor(t, "float32"), keras.ops.convert_to_tensor(p, "float32")
    got, want = keras.ops.convert_to_numpy(ours.call(t, p)), keras.ops.convert_to_numpy(theirs.call(t, p))
    assert got.shape == (4,) and np.array_equal(got, want)
    assert mk.RootMeanSquaredError().call(t, p).shape == ()  # finalized: the loss itself


def test_mae_gradient_at_a_zero_residual_is_zero():
    t = T.copy()
    p = T.copy()
    p[:, 1] += 1.0
    case = KCase("zero-residual", t, p)
    got = _close_to_reference(mk.MeanAbsoluteError(), case)
    _, grads = keras_run(mk.MeanAbsoluteError(), case)
    assert np.all(grads["y_pred"][:, [0, 2]] == 0) and np.all(grads["y_true"][:, [0, 2]] == 0)
    keras_v, theirs = keras_run(keras.losses.MeanAbsoluteError(), case)
    assert np.array_equal(got, keras_v)
    assert np.array_equal(grads["y_pred"][:, 1], theirs["y_pred"][:, 1])
    # Keras' d|x|/dx at 0 is its backend's: 0 on TensorFlow and torch, 1 on JAX.
    expected = 1.0 / 12.0 if BACKEND == "jax" else 0.0
    assert np.allclose(np.abs(theirs["y_pred"][:, [0, 2]]), expected)


@pytest.mark.parametrize("scale", [1e-3, 0.05, 0.25])
def test_log_cosh_of_small_residuals_is_accurate(scale):
    """Keras' r + softplus(-2 r) - log 2 cancels for small |r| (a relative error ~eps / r**2);
    below |r| = 0.3 we use the pipeline's Taylor series (bit for bit Keras above)."""
    f32 = lambda x: x.astype(np.float32).astype(np.float64)  # noqa: E731 - what the loss sees
    p = f32(T + scale * RNG.normal(size=T.shape))
    case = KCase(f"small-{scale}", f32(T), p, sample_weight=f32(RNG.uniform(0.5, 2.0, 4)))
    got = _close_to_reference(mk.LogCosh(), case)
    ref, _ = reference(mk.LogCosh().spec, case, wrt=())
    keras_v = _keras_value(keras.losses.LogCosh(), case)
    if scale == 1e-3:
        assert abs(keras_v - ref) > 1e-3 * ref and abs(got - ref) < 1e-5 * ref


def test_huber_keeps_delta_in_its_config():
    h = mk.Huber(delta=0.3, reduction="sum")
    again = mk.Huber.from_config(h.get_config())
    assert again.spec == h.spec and again.reduction == "sum"
    builtin = keras.losses.Huber(delta=0.3, reduction="sum")
    assert "delta" not in builtin.get_config()  # Keras 3.15 drops it (a reloaded model uses 1.0)
