"""The accuracy table: float32 streams (here 2e5 samples in 20 batches, targets of std 1 and
mean mu, predictions target + 0.1 noise): R^2 and NMSE within 1e-6 absolute of
scikit-learn in float64 on the whole data, MSE, MAE and RMSE within 1e-6 relative, in every
backend, for mu up to 1e6 (where accumulating sum(y) and sum(y**2) in float32 gives R^2 = 1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from tests.conformance.harness import ABSOLUTE_ONLY, assert_close
from tests.metrics.common import RUNNERS

N, BATCHES = 200_000, 20
NAMES = ("mse", "mae", "rmse", "nmse", "r2")


def _data(mu: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(int(mu) % 9973)
    y64 = rng.normal(size=N) + mu
    return y64.astype(np.float32), (y64 + 0.1 * rng.normal(size=N)).astype(np.float32)


def _truth(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    y64, p64 = y.astype(np.float64), p.astype(np.float64)
    r2 = r2_score(y64, p64)
    mse = mean_squared_error(y64, p64)
    return {"mse": mse, "mae": mean_absolute_error(y64, p64), "rmse": float(np.sqrt(mse)), "nmse": 1.0 - r2, "r2": r2}


def _stream_numpy(name: str, y: np.ndarray, p: np.ndarray) -> float:
    from mse_adapters.numpy import metrics

    m = getattr(metrics, name)()
    for yb, pb in zip(np.split(y, BATCHES), np.split(p, BATCHES)):
        m.update(yb, pb)
    return float(m.compute())


def _stream_torch(name: str, y: np.ndarray, p: np.ndarray) -> float:
    import torch

    from mse_adapters.torch import metrics

    cls = {"mse": "MeanSquaredError", "mae": "MeanAbsoluteError", "rmse": "RootMeanSquaredError",
           "nmse": "NormalizedMeanSquaredError", "r2": "R2Score"}[name]
    m = getattr(metrics, cls)()
    for yb, pb in zip(np.split(y, BATCHES), np.split(p, BATCHES)):
        m.update(torch.from_numpy(pb), torch.from_numpy(yb))
    return float(m.compute())


def _stream_jax(name: str, y: np.ndarray, p: np.ndarray) -> float:
    import jax
    import jax.numpy as jnp

    from mse_adapters.jax import metrics

    m = getattr(metrics, name)()
    update = jax.jit(m.update)
    state = m.init(y[: N // BATCHES])
    for yb, pb in zip(np.split(y, BATCHES), np.split(p, BATCHES)):
        state = update(state, jnp.asarray(pb), jnp.asarray(yb))
    return float(m.compute(state))


def _stream_keras(name: str, y: np.ndarray, p: np.ndarray) -> float:
    from mse_adapters.keras import metrics

    cls = {"mse": "MeanSquaredError", "mae": "MeanAbsoluteError", "rmse": "RootMeanSquaredError",
           "nmse": "NormalizedMeanSquaredError", "r2": "R2Score"}[name]
    m = getattr(metrics, cls)()
    for yb, pb in zip(np.split(y, BATCHES), np.split(p, BATCHES)):
        m.update_state(yb, pb)
    return float(m.result())


STREAMS: dict[str, Callable[[str, np.ndarray, np.ndarray], float]] = {
    "numpy": _stream_numpy, "torch": _stream_torch, "jax": _stream_jax, "keras": _stream_keras}


@pytest.fixture(scope="module", params=[0.0, 1e3, 1e4, 1e6], ids=lambda mu: f"mu={mu:g}")
def table(request: Any) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    y, p = _data(request.param)
    return y, p, _truth(y, p)


@pytest.mark.parametrize("backend", sorted(RUNNERS))
def test_accuracy_table(backend: str, table: tuple[np.ndarray, np.ndarray, dict[str, float]]) -> None:
    y, p, truth = table
    for name in NAMES:
        got = STREAMS[backend](name, y, p)
        if name in ("r2", "nmse"):
            assert_close(got, truth[name], "metric-accuracy-ratio", f"{backend} {name}", rtol_scale=ABSOLUTE_ONLY)
        else:
            assert_close(got, truth[name], "metric-accuracy", f"{backend} {name}")
