"""Multi-output regression in Keras with missing targets and per-output weights.

Three targets are linear in five features; 30% of the target entries are missing, marked
with NaN in ``y`` itself (the common multi-task case). Keras' ``MeanSquaredError`` is NaN
from the first batch. ``MeanSquaredError(missing="nan", weight=...)`` ignores the missing
entries in the value, the gradient and the normalizer, weights the three outputs
``1 : 1 : 4`` (the third is the one we care most about), trains with ``model.fit`` and
per-sample weights, and survives ``model.save`` / ``keras.models.load_model`` with every
hyperparameter (no ``custom_objects`` needed).

Runs under any Keras backend: ``KERAS_BACKEND=jax python examples/keras_compile_fit.py``.
"""

from __future__ import annotations

import os
import tempfile

from mse_adapters.keras import MeanSquaredError  # first: it imports Keras with TensorFlow's start-up logging filtered

# isort: split
import keras
import numpy as np


def main() -> None:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n, d_in, d_out = 2000, 5, 3
    true_w = rng.normal(size=(d_in, d_out))
    true_b = np.array([0.5, -1.0, 2.0])
    x = rng.normal(size=(n, d_in)).astype("float32")
    y = (x @ true_w + true_b + 0.05 * rng.normal(size=(n, d_out))).astype("float32")
    missing = rng.uniform(size=(n, d_out)) < 0.3
    y[missing] = np.nan
    sample_weight = rng.uniform(0.5, 1.5, size=n).astype("float32")  # e.g. measurement quality
    print(f"{missing.sum()} of {missing.size} targets are missing (NaN); backend {keras.backend.backend()}")

    loss = MeanSquaredError(missing="nan", weight=[1.0, 1.0, 4.0])
    inputs = keras.Input((d_in,))
    model = keras.Model(inputs, keras.layers.Dense(d_out)(inputs))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
    naive = keras.losses.MeanSquaredError()
    print(f"keras.losses.MeanSquaredError on this data: {float(naive(y, model.predict(x, verbose=0)))}")

    history = model.fit(x, y, sample_weight=sample_weight, batch_size=200, epochs=15, verbose=0)
    print(f"our loss: epoch 1 {history.history['loss'][0]:.4f}, epoch 15 {history.history['loss'][-1]:.5f}")

    kernel, bias = (keras.ops.convert_to_numpy(v) for v in model.layers[-1].weights)
    err_w, err_b = np.abs(kernel - true_w).max(), np.abs(bias - true_b).max()
    print(f"largest weight error {err_w:.4f}, bias error {err_b:.4f}")
    if not (err_w < 0.02 and err_b < 0.02):
        raise SystemExit("the fit did not recover the true weights")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        reloaded = keras.models.load_model(path)  # no custom_objects
    config = reloaded.loss.get_config()
    print(f"reloaded loss: {type(reloaded.loss).__name__}, missing={config['missing']!r}, weight={config['weight']}")
    before = model.evaluate(x, y, sample_weight=sample_weight, batch_size=n, verbose=0)
    after = reloaded.evaluate(x, y, sample_weight=sample_weight, batch_size=n, verbose=0)
    print(f"evaluate: original {before:.6f}, reloaded {after:.6f}")
    if config != loss.get_config() or not np.isclose(before, after, rtol=1e-6):
        raise SystemExit("the reloaded model's loss differs")
    print("recovered the true weights despite the missing targets; the saved model round-trips")


if __name__ == "__main__":
    main()
