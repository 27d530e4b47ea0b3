"""Keras under tf.distribute.MirroredStrategy on 2 logical CPU devices (TensorFlow backend;
run by test_keras_mirrored.py in a fresh process: logical devices must be configured before
TensorFlow initialises). For each case, one ``model.fit`` step (and one custom-loop step)
with a masked (missing targets, whole samples missing on one replica) and weighted loss
against one step on the global batch on one device: the largest relative difference of the
weight updates. Prints one JSON object."""

from __future__ import annotations

import json
import os

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mse_adapters import PRESET_TABLE  # noqa: E402
from mse_adapters import keras as mk  # noqa: E402
from mse_adapters._presets import row  # noqa: E402

B = 16


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, 4)).astype("float32")
    y = rng.normal(size=(B, 3)).astype("float32")
    sw = rng.uniform(0.2, 2.0, size=B).astype("float32")
    y[:5] = np.nan  # the first replica's half: 5 of its 8 samples missing
    y[5:7, :2] = np.nan
    y[11, 0] = np.nan
    sw[5] = 0.0
    return x, y, sw


def cases() -> list[tuple[str, str | None]]:
    """The first linear preset of the table with Keras' two averaging reductions, and every
    finalized preset with its own."""
    first = next(r.name for r in PRESET_TABLE if r.spec.finalize == "identity")
    return [(first, "sum_over_batch_size"), (first, "mean_with_sample_weight")] + [
        (r.name, None) for r in PRESET_TABLE if r.spec.finalize != "identity"]


def build(name: str, reduction: str | None) -> keras.losses.Loss:
    kw = {} if reduction is None else {"reduction": reduction}
    return getattr(mk, row(name).keras)(missing="nan", **kw)


def model(name: str, reduction: str | None) -> keras.Model:
    keras.utils.set_random_seed(1)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    m.compile(optimizer=keras.optimizers.SGD(0.1), loss=build(name, reduction))
    return m


def update(m: keras.Model, fit: bool, strategy: tf.distribute.Strategy | None) -> list[np.ndarray]:
    x, y, sw = data()
    w0 = [w.numpy() for w in m.weights]
    if fit:
        m.fit(x, y, sample_weight=sw, batch_size=B, epochs=1, verbose=0, shuffle=False)
    else:  # a custom training loop
        assert strategy is not None
        ds = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices((x, y, sw)).batch(B))
        loss_fn, opt = m.loss, m.optimizer

        @tf.function
        def step(batch: tuple) -> None:
            def replica(xb: tf.Tensor, yb: tf.Tensor, wb: tf.Tensor) -> None:
                with tf.GradientTape() as tape:
                    loss = loss_fn(yb, m(xb, training=True), sample_weight=wb)
                grads = tape.gradient(loss, m.trainable_variables)
                opt.apply_gradients(zip(grads, m.trainable_variables))

            strategy.run(replica, args=batch)

        for batch in ds:
            step(batch)
    return [w.numpy() - a for w, a in zip(m.weights, w0)]


def main() -> None:
    if os.environ.get("NAIVE"):  # the per-replica reduction, for the notes' numbers
        mk._replica_sum = lambda: None  # type: ignore[attr-defined]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out: dict[str, float] = {"replicas": strategy.num_replicas_in_sync}
    for name, reduction in cases():
        ref = update(model(name, reduction), True, None)
        for fit in (True, False):
            with strategy.scope():
                m = model(name, reduction)
            got = update(m, fit, strategy)
            out[f"{name}-{reduction}-{'fit' if fit else 'loop'}"] = max(
                float(np.abs(g - r).max() / np.abs(r).max()) for g, r in zip(got, ref))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
