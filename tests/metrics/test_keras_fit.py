"""Keras metrics in ``model.compile(metrics=[...])``: ``evaluate`` with small batches equals
scikit-learn on the whole data (where averaging per-batch loss values does not), the model
saves and loads with them (after ``import mse_adapters.keras`` alone), and a metric-heavy
``jit_compile=True`` model traces each update once (under the active Keras backend; nox runs
this file under each)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

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


def _every_metric() -> list:
    """A metric of every preset (two parameter values where the preset has a parameter)."""
    from mse_adapters._metrics import metric_class_name
    from mse_adapters._presets import PRESET_TABLE

    out = []
    for row in PRESET_TABLE:
        cls = getattr(km, metric_class_name(row))
        p = row.params[0] if row.params else None
        out += [cls()] if p is None else [cls(**{p: 0.3}, name=f"{row.name}_a"), cls(**{p: 0.7}, name=f"{row.name}_b")]
    return out


def test_load_after_the_adapter_import_alone(tmp_path) -> None:  # noqa: ANN001
    """A model compiled with every metric class loads in a fresh process after ``import
    mse_adapters.keras`` alone (the metrics module is not imported by hand) and evaluates to
    the same values."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 3)) + 0.5 * rng.normal(size=(40, 3))).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile("adam", mk.MeanSquaredError(), metrics=_every_metric())
    res = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    path, data = tmp_path / "model.keras", tmp_path / "data.npz"
    model.save(str(path))
    np.savez(data, x=x, y=y)
    code = ("import json, sys, keras, numpy as np, mse_adapters.keras\n"
            "assert 'mse_adapters.keras.metrics' in sys.modules\n"
            f"m = keras.saving.load_model({str(path)!r})\n"
            f"d = np.load({str(data)!r})\n"
            "res = m.evaluate(d['x'], d['y'], batch_size=8, verbose=0, return_dict=True)\n"
            "print(json.dumps({k: np.asarray(v).tolist() for k, v in res.items()}))\n")
    root = pathlib.Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    again = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(again) == set(res)
    for k, v in res.items():
        assert_close(again[k], v, "float32-rerun", f"{k} after reloading")


def test_jit_compile_traces_each_update_once() -> None:
    """A metric-heavy ``jit_compile=True`` model: each of our metrics' updates is traced as
    often as Keras' own metric's (once per compiled function), never once per step; on the
    torch backend the updates of every metric compile in one graph (``fullgraph=True``)
    with no recompilation for new batches."""
    backend = keras.backend.backend()
    if backend == "torch":
        _torch_fullgraph()
        return
    calls: dict[str, int] = {}

    def counted(cls: type, **kw: object) -> keras.metrics.Metric:
        class Counted(cls):  # type: ignore[valid-type, misc]
            def update_state(self, *args: object, **kwargs: object) -> object:
                calls[self.name] = calls.get(self.name, 0) + 1  # Python runs at trace time only
                return super().update_state(*args, **kwargs)

        return Counted(**kw)

    ours = [counted(type(m), **m.get_config()) for m in _every_metric()]
    theirs = counted(keras.metrics.MeanSquaredError, name="keras_mse")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 3))).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile("adam", "mse", metrics=[*ours, theirs], jit_compile=True)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)  # 8 steps
    assert 0 < calls["keras_mse"] < 8
    assert {k: v for k, v in calls.items() if k != "keras_mse"} == {m.name: calls["keras_mse"] for m in ours}


def _torch_fullgraph() -> None:
    import torch

    metrics = _every_metric() + [km.R2Score(class_aggregation=None, name="r2_raw")]
    eager = [type(m).from_config(m.get_config()) for m in metrics]
    for m in metrics:  # an empty batch builds the per-output states (Keras does this when it builds the model)
        m.update_state(np.zeros((0, 3), "float32"), np.zeros((0, 3), "float32"))

    @torch.compile(fullgraph=True)
    def step(y: torch.Tensor, p: torch.Tensor, sw: torch.Tensor) -> None:
        for m in metrics:
            m.update_state(y, p, sample_weight=sw)

    rng = np.random.default_rng(3)
    for i in range(3):
        y = torch.as_tensor(rng.normal(size=(16, 3)), dtype=torch.float32)
        p = y + torch.as_tensor(rng.normal(size=(16, 3)), dtype=torch.float32)
        sw = torch.as_tensor(rng.uniform(0.5, 2.0, size=16), dtype=torch.float32)
        with torch._dynamo.config.patch(error_on_recompile=i > 0):
            step(y, p, sw)
        for m in eager:
            m.update_state(y, p, sample_weight=sw)
    for a, b in zip(metrics, eager):
        assert_close(keras.ops.convert_to_numpy(a.result()), keras.ops.convert_to_numpy(b.result()), "float32-rerun",
                     f"{a.name} compiled against eager")
