"""Compiled graphs: inside ``tf.function(jit_compile=True)`` (XLA) every class is traced once
and then called without retracing, with static and with unknown (``None``) batch sizes, and
gives the eager values; ``model.fit(jit_compile=True)`` trains with it. On the JAX backend, the
same under ``jax.jit``."""

from __future__ import annotations

import numpy as np
import pytest

from mse_adapters import LossSpec
from mse_adapters._presets import PRESET_TABLE
from tests.conformance.harness import assert_close, nondefault_params

from .common import BACKEND, KCase, keras, mk, reference  # noqa: I001

LOSSES = {
    "mse": lambda: mk.MeanSquaredError(),
    "mse-missing-mwsw": lambda: mk.MeanSquaredError(missing="nan", reduction="mean_with_sample_weight"),
    "mae-elementwise": lambda: mk.MeanAbsoluteError(per_sample=False),
    "rmse": lambda: mk.RootMeanSquaredError(missing="nan"),
    "huber": lambda: mk.Huber(delta=0.5, weight=[1.0, 2.0, 0.5]),
    "smooth_l1": lambda: mk.SmoothL1(beta=0.5, mask=[True, True, False]),
    "log_cosh": lambda: mk.LogCosh(reduction="sum"),
    "expectile": lambda: mk.Expectile(tau=0.9),
    "pseudo_huber": lambda: mk.PseudoHuber(delta=0.6, mask=[True, False, True]),
    "quantile": lambda: mk.Quantile(tau=0.3, reduction="sum"),
    "nmse": lambda: mk.NormalizedMeanSquaredError(missing="nan"),
    "r2": lambda: mk.R2Score(multioutput="variance_weighted"),
    "spec-per-sample": lambda: mk.compile(LossSpec(reduction="per_sample", missing="nan")),
}
#: Every other row of the preset table, with its parameters away from their defaults.
LOSSES.update({row.name: (lambda row=row: getattr(mk, row.keras)(**nondefault_params(row)))
               for row in PRESET_TABLE if row.name not in LOSSES})


def _batch(seed: int, n: int = 8):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, 3)).astype("float32")
    y[0, 1] = np.nan  # a missing target (only the missing="nan" losses see NaN)
    p = rng.normal(size=(n, 3)).astype("float32")
    sw = rng.uniform(0.5, 2.0, n).astype("float32")
    return y, p, sw


def _targets(loss, y):
    return y if loss.spec.missing == "nan" else np.nan_to_num(y)


def _eager_and_reference(loss, y, p, sw):
    eager = float(np.sum(keras.ops.convert_to_numpy(loss(y, p, sw))))
    t = _targets(loss, y)
    want, _ = reference(loss.spec, KCase("r", t.astype(np.float64), p.astype(np.float64),
                                         sample_weight=sw.astype(np.float64),
                                         weight=loss.weight, mask=loss.mask), wrt=())
    return eager, float(np.asarray(want).sum())


tf_only = pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.function needs the TensorFlow backend")


@tf_only
@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("signature", ["static", "unknown-batch"])
def test_xla_no_retracing(name, signature):
    import tensorflow as tf

    loss = LOSSES[name]()
    traces = []
    spec = None
    if signature == "unknown-batch":
        spec = [tf.TensorSpec((None, 3)), tf.TensorSpec((None, 3)), tf.TensorSpec((None,))]

    @tf.function(jit_compile=True, input_signature=spec)
    def step(y, p, sw):
        traces.append(1)  # runs only while tracing
        with tf.GradientTape() as tape:
            tape.watch(p)
            value = tf.reduce_sum(loss(y, p, sw))
        return value, tape.gradient(value, p)

    sizes = (8, 8, 8) if signature == "static" else (8, 5, 11)
    for seed, n in enumerate(sizes):
        y, p, sw = _batch(seed, n)
        y = _targets(loss, y)
        value, grad = step(tf.constant(y), tf.constant(p), tf.constant(sw))
        eager, want = _eager_and_reference(loss, y, p, sw)
        assert_close(float(value), eager, "float32", "traced against eager")
        assert_close(float(value), want, "float32", "traced against the reference")
        assert np.all(np.isfinite(grad.numpy()))
    assert len(traces) == 1


@tf_only
def test_keras_mask_inside_tf_function():
    import tensorflow as tf
    from keras.src.backend.common.masking import set_keras_mask

    traces = []
    loss = mk.MeanSquaredError()

    @tf.function(jit_compile=True)
    def f(y, p, m):
        traces.append(1)
        set_keras_mask(p, m)
        return loss(y, p)

    for seed in range(3):
        y, p, _ = _batch(seed)
        y = np.nan_to_num(y)
        m = np.random.default_rng(seed).uniform(size=8) > 0.3
        got = float(f(tf.constant(y), tf.constant(p), tf.constant(m)))
        want, _ = reference(loss.spec, KCase("m", y.astype(np.float64), p.astype(np.float64), kmask=m), wrt=())
        assert_close(got, want, "float32", "masked, traced")
    assert len(traces) == 1


@tf_only
@pytest.mark.parametrize("sw_shape", [(), (None, 1)], ids=["scalar", "per-sequence"])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight", "none"])
def test_keras_mask_with_a_broadcasting_weight_and_unknown_batch(reduction, sw_shape):
    """A Masking layer's mask with a scalar or (B, 1) weight takes Keras' own computation,
    also when the batch size is known only at run time: bit for bit keras.losses."""
    import tensorflow as tf
    from keras.src.backend.common.masking import set_keras_mask

    ours, theirs = mk.MeanSquaredError(reduction=reduction), keras.losses.MeanSquaredError(reduction=reduction)
    spec = [tf.TensorSpec([None, 4, 2]), tf.TensorSpec([None, 4, 2]), tf.TensorSpec([None, 4], tf.bool),
            tf.TensorSpec(sw_shape)]

    @tf.function(input_signature=spec)
    def both(y, p, m, sw):
        p1, p2 = tf.identity(p), tf.identity(p)
        set_keras_mask(p1, m)
        set_keras_mask(p2, m)
        return ours(y, p1, sw), theirs(y, p2, sw)

    rng = np.random.default_rng(5)
    y, p = rng.normal(size=(3, 4, 2)).astype("float32"), rng.normal(size=(3, 4, 2)).astype("float32")
    m = rng.uniform(size=(3, 4)) > 0.4
    sw = rng.uniform(0.5, 2.0, size=(3, 1) if sw_shape else ()).astype("float32")
    got, want = both(y, p, m, sw)
    assert np.array_equal(got.numpy(), want.numpy())


@tf_only
def test_fit_with_jit_compile():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 3))).astype("float32")
    y[::3, 2] = np.nan
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=mk.MeanSquaredError(missing="nan"),
                  jit_compile=True)
    hist = model.fit(x, y, batch_size=10, epochs=4, verbose=0)  # batches of 10, 10, 10 and 2
    losses = hist.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


@pytest.mark.skipif(BACKEND != "jax", reason="jax.jit needs the JAX backend")
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_jax_jit_no_retracing(name):
    import jax

    loss = LOSSES[name]()
    traces = []

    @jax.jit
    def step(y, p, sw):
        traces.append(1)
        return jax.value_and_grad(lambda q: keras.ops.sum(loss(y, q, sw)))(p)

    for seed in range(3):
        y, p, sw = _batch(seed)
        y = _targets(loss, y)
        value, grad = step(y, p, sw)
        eager, want = _eager_and_reference(loss, y, p, sw)
        assert_close(float(value), eager, "float32", "traced against eager")
        assert_close(float(value), want, "float32", "traced against the reference")
        assert np.all(np.isfinite(np.asarray(grad)))
    assert len(traces) == 1


def test_every_class_runs_in_a_compiled_graph():
    """Every Keras loss class is in LOSSES here or in test_whiten.GRAPH_LOSSES (the whitened
    and Gaussian ones), which run under tf.function(jit_compile=True) and jax.jit."""
    from .test_whiten import GRAPH_LOSSES

    built = {type(make()).__name__ for make in [*LOSSES.values(), *GRAPH_LOSSES.values()]}
    classes = {n for n in mk.__all__
               if isinstance(getattr(mk, n), type) and issubclass(getattr(mk, n), keras.losses.Loss)}
    assert classes <= built, classes - built
