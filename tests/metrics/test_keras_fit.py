"""Keras metrics in ``model.compile(metrics=[...])``: ``evaluate`` with small batches equals
scikit-learn on the whole data (where averaging per-batch loss values does not), and the
model saves and loads with them (under the active Keras backend; nox runs this file under
each)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score  # noqa: E402

import mse_adapters.keras as mk  # noqa: E402
from mse_adapters.keras import metrics as km  # noqa: E402
from tests.conformance.harness import TOLERANCE, assert_close  # noqa: E402


def test_compile_evaluate_save_load(tmp_path) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    x = rng.normal(size=(103, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 2)) + 0.5 * rng.normal(size=(103, 2)) + 3).astype("float32")
    sw = rng.uniform(0.5, 2.0, size=103).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    # the loss and the metric of the same name (each registered under its own package)
    model.compile("adam", mk.MeanSquaredError(), metrics=[
        km.MeanSquaredError(), km.RootMeanSquaredError(), km.R2Score(), km.MeanAbsoluteError(),
        km.HuberError(delta=0.5), km.R2Score(class_aggregation=None, name="r2raw")])
    model.fit(x, y, batch_size=7, epochs=1, verbose=0)
    res = model.evaluate(x, y, batch_size=7, verbose=0, return_dict=True)
    pred = model.predict(x, verbose=0).astype(np.float64)
    y64 = y.astype(np.float64)
    assert_close(res["root_mean_squared_error"], np.sqrt(mean_squared_error(y64, pred)), "float32", "rmse")
    assert_close(res["mean_absolute_error"], mean_absolute_error(y64, pred), "float32", "mae")
    rtol, atol = TOLERANCE["float32-ratio"]
    np.testing.assert_allclose(res["r2_score"], r2_score(y64, pred), rtol=rtol, atol=atol)
    np.testing.assert_allclose(res["r2raw"], r2_score(y64, pred, multioutput="raw_values"), rtol=rtol, atol=atol)
    # with sample weights through evaluate: what Keras' own R2Score and MSE get from the same plumbing
    both = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    both.compile("adam", "mse", metrics=[km.R2Score(name="ours"), keras.metrics.R2Score(name="keras"),
                                         km.MeanSquaredError(name="ours_mse"),
                                         keras.metrics.MeanSquaredError(name="k_mse")])
    weighted = both.evaluate(x, y, sample_weight=sw, batch_size=7, verbose=0, return_dict=True)
    np.testing.assert_allclose(weighted["ours"], weighted["keras"], rtol=rtol, atol=atol)
    assert_close(weighted["ours_mse"], weighted["k_mse"], "float32", "weighted mse against Keras'")
    path = str(tmp_path / "model.keras")
    model.save(path)
    again = keras.models.load_model(path)
    assert type(again.loss) is mk.MeanSquaredError
    res2 = again.evaluate(x, y, batch_size=7, verbose=0, return_dict=True)
    rtol, atol = TOLERANCE["float32-rerun"]  # the reloaded model evaluated again
    for k, v in res.items():
        np.testing.assert_allclose(res2[k], v, rtol=rtol, atol=atol, err_msg=k)
