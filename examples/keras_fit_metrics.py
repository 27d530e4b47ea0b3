"""Exact epoch metrics in Keras' ``model.fit`` / ``evaluate`` (mse_adapters.keras.metrics).

``compile(metrics=[a_loss])`` averages the loss' per-batch values: right for a mean, wrong
for RMSE and R^2 (with ``batch_size=7`` below, the averaged values are far from the truth).
The streaming metrics keep sufficient statistics, so the epoch value equals scikit-learn's
on the whole data; they are registered, so the model saves and loads with them.

Runs under any Keras backend: ``KERAS_BACKEND=jax python examples/keras_fit_metrics.py``.
"""

from __future__ import annotations

import os
import tempfile

import mse_adapters.keras as mk  # first: it imports Keras with TensorFlow's start-up logging filtered
from mse_adapters.keras import metrics

# isort: split
import keras
import numpy as np
from sklearn.metrics import r2_score, root_mean_squared_error


def main() -> None:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(700, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 2)) + rng.normal(size=(700, 2)) + [0.0, 50.0]).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(0.1), mk.MeanSquaredError(), metrics=[
        metrics.RootMeanSquaredError(), metrics.R2Score(), metrics.HuberError(delta=1.0),
        mk.RootMeanSquaredError(name="rmse_loss_averaged"), mk.R2Score(name="r2_loss_averaged")])
    model.fit(x, y, batch_size=64, epochs=2, verbose=0)  # (fit runs the metrics too)
    xa = np.hstack([x, np.ones((len(x), 1), "float32")]).astype(np.float64)
    sol = np.linalg.lstsq(xa, y.astype(np.float64), rcond=None)[0]  # then the fitted weights, for the example
    model.layers[0].set_weights([sol[:4].astype("float32"), sol[4].astype("float32")])
    res = model.evaluate(x, y, batch_size=7, verbose=0, return_dict=True)
    pred = model.predict(x, verbose=0).astype(np.float64)
    truth_rmse = root_mean_squared_error(y.astype(np.float64).ravel(), pred.ravel())
    truth_r2 = r2_score(y.astype(np.float64), pred)
    print(f"Keras backend: {keras.backend.backend()}, evaluate(batch_size=7)")
    print(f"  RMSE  streaming metric {res['root_mean_squared_error']:.6f}   loss averaged over batches "
          f"{res['rmse_loss_averaged']:.6f}   scikit-learn {truth_rmse:.6f}")
    print(f"  R^2   streaming metric {res['r2_score']:.6f}   loss averaged over batches "
          f"{res['r2_loss_averaged']:.6f}   scikit-learn {truth_r2:.6f}")
    path = os.path.join(tempfile.mkdtemp(), "model.keras")
    model.save(path)
    again = keras.models.load_model(path).evaluate(x, y, batch_size=7, verbose=0, return_dict=True)
    print(f"  after save/load: R^2 {again['r2_score']:.6f}")
    assert abs(res["r2_score"] - truth_r2) < 1e-5 and abs(res["root_mean_squared_error"] - truth_rmse) < 1e-4
    assert abs(again["r2_score"] - res["r2_score"]) < 1e-6


if __name__ == "__main__":
    main()
