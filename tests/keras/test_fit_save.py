"""Every class in ``model.compile`` / ``fit(sample_weight=...)`` / ``evaluate`` and in a custom
training step, and saved and reloaded: ``get_config``/``from_config``, Keras' serialization,
and ``model.save("m.keras")`` + ``keras.models.load_model`` without ``custom_objects``; the
whitened classes too (covariance, scale_tril, precision and a trainable factor in the config;
the Gaussian NLL with its concatenated [mean, variance] output is in test_whiten.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mse_adapters import LossSpec, preset
from tests.conformance.harness import assert_close

from .common import BACKEND, KCase, keras, keras_run, mk, reference

D = 3
#: The "Loss" entry's dtype: float64, but where the backend cannot compute it. JAX without x64
#: (its default, the Keras tests') would truncate it to float32 with a warning in every
#: array it makes (float64 losses on JAX: the conformance suite, under jax.enable_x64).
F64 = "float32" if BACKEND == "jax" and not pytest.importorskip("jax").config.jax_enable_x64 else "float64"


def _losses() -> dict[str, object]:
    """One instance of every class, with hyperparameters away from their defaults."""
    return {
        "MeanSquaredError": mk.MeanSquaredError(reduction="sum", missing="nan"),
        "MeanAbsoluteError": mk.MeanAbsoluteError(per_sample=False, reduction="mean_with_sample_weight"),
        "RootMeanSquaredError": mk.RootMeanSquaredError(missing="nan"),
        "Huber": mk.Huber(delta=0.1, weight=[1.0, 0.5, 2.0]),
        "SmoothL1": mk.SmoothL1(beta=0.3, reduction="mean"),
        "LogCosh": mk.LogCosh(mask=[True, False, True], name="masked_log_cosh"),
        "Expectile": mk.Expectile(tau=0.8, check_values=False),
        "PseudoHuber": mk.PseudoHuber(delta=0.6, weight=[1.0, 0.5, 2.0]),
        "Quantile": mk.Quantile(tau=0.3, missing="nan"),
        "NormalizedMeanSquaredError": mk.NormalizedMeanSquaredError(multioutput=[0.2, 0.3, 0.5]),
        "R2Score": mk.R2Score(multioutput="variance_weighted", missing="nan"),
        "Loss": mk.compile(LossSpec(penalty="huber", delta=0.7, reduction="sum_over_batch_size",
                                    unit_norm=0.01), weight=[2.0, 1.0, 1.0], dtype=F64),
        # the transform stage (issue 5): the matrices are in the config, float64 exact
        "MeanSquaredError[covariance]": mk.MeanSquaredError(covariance=_COV, reduction="mean_with_sample_weight"),
        "Huber[scale_tril]": mk.Huber(delta=0.5, scale_tril=np.linalg.cholesky(_COV) / 3.0),
        "MeanSquaredError[precision]": mk.MeanSquaredError(precision=_COV / 7.0, missing="nan", unit_norm=0.01),
        "MultivariateGaussianNLL": mk.MultivariateGaussianNLL(covariance=_COV, full=False),
        "Loss[trainable_scale_tril]": mk.compile(LossSpec(penalty="log_cosh", reduction="sum_over_batch_size"),
                                                 covariance=_COV, trainable_scale_tril=True),
    }


_COV = np.array([[2.0, 0.3, 0.1], [0.3, 1.0 / 3.0, 0.05], [0.1, 0.05, 0.7]])


LOSSES = _losses()
CLASSES = sorted(LOSSES)


def _data(n: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, D)) + 0.1 * rng.normal(size=(n, D))).astype("float32")
    sw = rng.uniform(0.5, 2.0, n).astype("float32")
    return x, y, sw


def _model() -> keras.Model:
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(D)(inputs))


def _value(loss, y, p, sw=None) -> float:
    return float(keras.ops.convert_to_numpy(loss(y, p, sw)))


def _assert_same_value_and_gradient(again, loss, case: KCase) -> None:
    """The reloaded loss gives the original's value and its gradients (w.r.t. y_true, y_pred
    and sample_weight), bit for bit (issue 6, item 4)."""
    value, grads = keras_run(loss, case)
    got, got_grads = keras_run(again, case)
    np.testing.assert_array_equal(got, value)
    assert set(got_grads) == set(grads)
    for k in grads:
        np.testing.assert_array_equal(got_grads[k], grads[k], err_msg=k)


@pytest.mark.parametrize("name", CLASSES)
def test_config_round_trip(name):
    loss = LOSSES[name]
    config = loss.get_config()
    again = type(loss).from_config(config)
    assert again.get_config() == config
    assert again.spec == loss.spec and again.dtype == loss.dtype and again.name == loss.name
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss) and restored.get_config() == config
    x, y, sw = _data()
    p = y + np.random.default_rng(5).normal(size=y.shape).astype("float32")
    case = KCase("config", y, p, sample_weight=sw)
    _assert_same_value_and_gradient(again, loss, case)
    _assert_same_value_and_gradient(restored, loss, case)


@pytest.mark.parametrize("name", CLASSES)
def test_pickle_and_deepcopy_keep_value_and_gradient(name):
    """Beyond Keras' own serialization: a loss pickles (as multiprocessing and Ray ship it)
    and deep-copies with every hyperparameter, its matrices and trainable factor included."""
    import copy
    import pickle

    loss = LOSSES[name]
    x, y, sw = _data()
    p = y + np.random.default_rng(6).normal(size=y.shape).astype("float32")
    case = KCase("copy", y, p, sample_weight=sw)
    for again in (pickle.loads(pickle.dumps(loss)), copy.deepcopy(loss)):
        assert type(again) is type(loss) and again.get_config() == loss.get_config()
        _assert_same_value_and_gradient(again, loss, case)


@pytest.mark.parametrize("name", CLASSES)
def test_compile_fit_evaluate_save_load(name, tmp_path):
    loss = LOSSES[name]
    x, y, sw = _data()
    y_nan = y.copy()
    y_nan[::5, 1] = np.nan  # missing targets, for the losses with missing="nan"
    target = y_nan if loss.spec.missing == "nan" else y
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=loss)
    before = model.evaluate(x, target, sample_weight=sw, batch_size=len(x), verbose=0)
    history = model.fit(x, target, sample_weight=sw, batch_size=5, epochs=3, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    after = model.evaluate(x, target, sample_weight=sw, batch_size=len(x), verbose=0)
    direct = _value(loss, target, model.predict(x, verbose=0), sw)
    assert_close(after, direct, "float32", "evaluate after fit")
    if name != "R2Score":  # a score: SGD on it climbs
        assert after < before

    path = tmp_path / "m.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)  # no custom_objects
    assert type(reloaded.loss) is type(loss)
    assert reloaded.loss.get_config() == loss.get_config()
    assert_close(reloaded.evaluate(x, target, sample_weight=sw, batch_size=len(x), verbose=0), after,
                 "float32-rerun", "reloaded")
    # the reloaded loss itself: the same value and gradient as the one compiled
    p = model.predict(x, verbose=0)
    _assert_same_value_and_gradient(reloaded.loss, loss, KCase("saved", target, p, sample_weight=sw))


def test_load_model_in_a_fresh_process_needs_only_the_import(tmp_path):
    import subprocess
    import sys

    model = _model()
    model.compile(loss=mk.Huber(delta=0.1, reduction="sum"))
    path = tmp_path / "m.keras"
    model.save(path)
    code = ("import keras, mse_adapters.keras as mk; m = keras.models.load_model(%r); "
            "assert type(m.loss) is mk.Huber and m.loss.spec.delta == 0.1, m.loss.get_config(); print('ok')")
    out = subprocess.run([sys.executable, "-c", code % str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_per_output_weights_through_fit_sample_weight():
    """A (N, d) sample_weight weights each output (Keras' built-ins cannot take it)."""
    x, y, _ = _data()
    w_elem = np.tile(np.array([1.0, 0.0, 2.0], "float32"), (len(x), 1))
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=mk.MeanSquaredError())
    got = model.evaluate(x, y, sample_weight=w_elem, batch_size=len(x), verbose=0)
    p = model.predict(x, verbose=0)
    case = KCase("fit-elem-sw", y.astype(np.float64), p.astype(np.float64), sample_weight=w_elem)
    want, _ = reference(mk.MeanSquaredError().spec, case, wrt=())
    assert_close(got, want, "float32", "elementwise sample_weight")
    model.fit(x, y, sample_weight=w_elem, batch_size=4, epochs=1, verbose=0)


@pytest.mark.parametrize("first", ["per-sample", "per-output"])
def test_one_compiled_model_fits_either_sample_weight_shape(first):
    """One compiled model fitted with (N,) sample weights, then (N, d) ones, then (N,) again
    (or the reverse): on TensorFlow the second fit retraces the compiled step with the
    weight's rank unknown. Every step and evaluation equals a freshly compiled model's (with
    ``mean_with_sample_weight``, where the two shapes normalize differently)."""
    x, y, sw = _data()
    shapes = {"per-sample": sw, "per-output": sw[:, None] * np.array([1.0, 0.0, 2.0], "float32")}
    second = next(k for k in shapes if k != first)

    def compiled(weights=None) -> keras.Model:
        m = _model()
        if weights is not None:
            m.set_weights(weights)
        m.compile(optimizer=keras.optimizers.SGD(0.1), loss=mk.Huber(delta=0.5, reduction="mean_with_sample_weight"))
        return m

    model = compiled()
    for step, kind in enumerate((first, second, first)):
        w = shapes[kind]
        fresh = compiled(model.get_weights())
        for m in (model, fresh):
            m.fit(x, y, sample_weight=w, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
        for got, want in zip(model.get_weights(), fresh.get_weights()):
            assert_close(got, want, "float32", f"step {step} ({kind} sample weights)")
        assert_close(model.evaluate(x, y, sample_weight=w, batch_size=len(x), verbose=0),
                     fresh.evaluate(x, y, sample_weight=w, batch_size=len(x), verbose=0), "float32",
                     f"evaluate after step {step}")


def test_keras_mask_from_a_masking_layer():
    """A Masking layer's mask (one entry per time step) removes those steps, as in Keras."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 5, 2)).astype("float32")
    x[:, 3:] = 0.0  # padding
    y = rng.normal(size=(4, 5, 1)).astype("float32")
    inputs = keras.Input((5, 2))
    out = keras.layers.Dense(1)(keras.layers.Masking(0.0)(inputs))
    model = keras.Model(inputs, out)
    sw = rng.uniform(0.5, 2.0, size=(4, 5)).astype("float32")
    results = {}
    for label, loss in (("ours", mk.MeanSquaredError()), ("keras", keras.losses.MeanSquaredError()),
                        ("ours-missing", mk.MeanSquaredError(missing="nan"))):
        model.compile(loss=loss)
        results[label] = model.evaluate(x, y, sample_weight=sw, batch_size=4, verbose=0)
    p = model.predict(x, verbose=0)
    case = KCase("masking", y.astype(np.float64), p.astype(np.float64), sample_weight=sw.astype(np.float64),
                 kmask=np.arange(5)[None, :].repeat(4, 0) < 3)
    want, _ = reference(mk.MeanSquaredError().spec, case, wrt=())
    for label in ("ours", "ours-missing", "keras"):
        assert_close(results[label], want, "float32", label)


def _custom_step_grads(loss, model, x, y, sw):
    """One training step's loss and gradients by the backend's own autodiff, outside fit."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=True), sw)
        return value, tape.gradient(value, model.trainable_variables)
    if BACKEND == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        def f(tv):
            p, _ = model.stateless_call(tv, non_trainable, x, training=True)
            return loss(y, p, sw)

        return jax.value_and_grad(f)(trainable)
    value = loss(y, model(x, training=True), sw)
    model.zero_grad()
    value.backward()
    return value, [v.value.grad for v in model.trainable_variables]


def test_custom_training_step():
    """A hand-written step (tf.GradientTape on TensorFlow, jax.value_and_grad on JAX, autograd
    on torch): finite gradients equal to fit's, and the loss goes down."""
    x, y, sw = _data()
    y[::4, 0] = np.nan
    loss = mk.RootMeanSquaredError(missing="nan")
    model = _model()
    optimizer = keras.optimizers.SGD(0.05)
    values = []
    for _ in range(5):
        value, grads = _custom_step_grads(loss, model, keras.ops.convert_to_tensor(x),
                                          keras.ops.convert_to_tensor(y), keras.ops.convert_to_tensor(sw))
        assert all(np.all(np.isfinite(keras.ops.convert_to_numpy(g))) for g in grads)
        values.append(float(keras.ops.convert_to_numpy(value)))
        if BACKEND == "jax":
            for v, g in zip(model.trainable_variables, grads):
                v.assign(v - 0.05 * g)
        else:
            optimizer.apply(grads, model.trainable_variables)
    assert values[-1] < values[0]
    # The step's loss is the loss fit reports for one full batch.
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=loss)
    reported = model.evaluate(x, y, sample_weight=sw, batch_size=len(x), verbose=0)
    assert_close(reported, _value(loss, y, model.predict(x, verbose=0), sw), "float32", "reported by fit")


def test_gradient_wrt_the_prediction_in_fit_matches_the_reference():
    """The gradient that reaches the model: d loss / d y_pred by the backend's autodiff."""
    rng = np.random.default_rng(4)
    y = rng.normal(size=(6, D))
    y[1, 2] = np.nan
    p = rng.normal(size=(6, D))
    sw = rng.uniform(0.5, 2.0, 6)
    loss = mk.MeanSquaredError(missing="nan", reduction="mean_with_sample_weight")
    case = KCase("grad", y, p, sample_weight=sw)
    _, got = keras_run(loss, case)
    _, want = reference(preset("mse", per_sample=True, missing="nan"), case)
    assert_close(got["y_pred"], want["y_pred"], "float32", "d/dy_pred")


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute needs the TensorFlow backend")
def test_mirrored_strategy_scales_like_keras():
    """Under tf.distribute each replica's averaging loss is divided by the number of replicas,
    as Keras' built-ins do (the SUM over replicas is then the global mean): both paths."""
    import subprocess
    import sys

    code = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, mse_adapters.keras as mk
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
rng = np.random.default_rng(0)
y, p = rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=(4, 3)).astype("float32")
ds = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices((y, p)).batch(4))
out = {}
with strategy.scope():
    for name, loss in (("keras", keras.losses.MeanSquaredError()), ("fast", mk.MeanSquaredError()),
                       ("general", mk.MeanSquaredError(missing="nan"))):
        per = strategy.run(lambda a, b: loss(a, b), args=next(iter(ds)))
        out[name] = float(strategy.reduce(tf.distribute.ReduceOp.SUM, per, axis=None))
want = float(np.mean((p - y) ** 2))
assert all(abs(v - want) < 1e-6 for v in out.values()), (out, want)
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-3000:]
