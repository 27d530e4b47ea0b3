"""Keras under tf.distribute.MirroredStrategy on 2 logical CPU devices (TensorFlow backend;
run by test_keras_mirrored.py in a fresh process: logical devices must be configured before
TensorFlow initialises). For each case, one ``model.fit`` step (and one custom-loop step)
with a masked (missing targets, whole samples missing on one replica) and weighted loss
against one step on the global batch on one device (tests/distributed/_keras_cases.py): the
largest relative differences of the weight updates from the exact (float64) step, of the
replicated steps and of the one-device float32 step ("-single"). Prints one JSON object."""

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

from mse_adapters import keras as mk  # noqa: E402
from tests.distributed._keras_cases import B, Batch, cases, data, model, reference, relative  # noqa: E402


def update(m: keras.Model, batch: Batch, fit: bool = True, strategy: tf.distribute.Strategy | None = None
           ) -> list[np.ndarray]:
    x, y, sw = batch
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
        ref32, ref64 = reference(name, reduction, update)
        out[f"{name}-{reduction}-single"] = relative(ref32, ref64)
        for fit in (True, False):
            with strategy.scope():
                m = model(name, reduction)
            got = update(m, data(), fit, strategy)
            out[f"{name}-{reduction}-{'fit' if fit else 'loop'}"] = relative(got, ref64)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
