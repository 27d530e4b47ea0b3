"""The streaming metrics' accuracy table: float32 streams of 1e6 samples in 100
batches of 1e4, targets of std 1 and mean mu, predictions target + 0.1 noise; the truth is
scikit-learn in float64 on the whole data. Columns: torchmetrics' and keras.metrics'
R2Score (which accumulate sum(y) and sum(y**2) in float32) and ours in every backend
installed; then the largest error of MSE, MAE, RMSE (relative) and NMSE, R^2 (absolute) of
ours per backend.

    python benchmarks/metrics_accuracy.py [--out FILE] [--n 1e6] [--batches 100]

Measures, asserts nothing (tests/metrics/test_accuracy.py checks a smaller table).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator

import numpy as np

MUS = (0.0, 1e3, 1e4, 1e6)
NAMES = ("mse", "mae", "rmse", "nmse", "r2")
CLASSES = {"mse": "MeanSquaredError", "mae": "MeanAbsoluteError", "rmse": "RootMeanSquaredError",
           "nmse": "NormalizedMeanSquaredError", "r2": "R2Score"}
Stream = Callable[[str, list[tuple[np.ndarray, np.ndarray]]], float]


def data(mu: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(int(mu) % 9973)
    y64 = rng.normal(size=n) + mu
    return y64.astype(np.float32), (y64 + 0.1 * rng.normal(size=n)).astype(np.float32)


def truth(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y64, p64 = y.astype(np.float64), p.astype(np.float64)
    r2, mse = float(r2_score(y64, p64)), float(mean_squared_error(y64, p64))
    return {"mse": mse, "mae": float(mean_absolute_error(y64, p64)), "rmse": mse ** 0.5, "nmse": 1.0 - r2, "r2": r2}


def _numpy(name: str, batches: list[tuple[np.ndarray, np.ndarray]]) -> float:
    from mse_adapters.numpy import metrics

    m = getattr(metrics, name)()
    for yb, pb in batches:
        m.update(yb, pb)
    return float(m.compute())


def _torch(name: str, batches: list[tuple[np.ndarray, np.ndarray]]) -> float:
    import torch

    from mse_adapters.torch import metrics

    m = getattr(metrics, CLASSES[name])()
    for yb, pb in batches:
        m.update(torch.from_numpy(pb), torch.from_numpy(yb))
    return float(m.compute())


def _jax(name: str, batches: list[tuple[np.ndarray, np.ndarray]]) -> float:
    import jax

    from mse_adapters.jax import metrics

    m = getattr(metrics, name)()
    update = jax.jit(m.update)
    state = m.init(batches[0][0])
    for yb, pb in batches:
        state = update(state, pb, yb)
    return float(m.compute(state))


def _keras(name: str, batches: list[tuple[np.ndarray, np.ndarray]]) -> float:
    from mse_adapters.keras import metrics

    m = getattr(metrics, CLASSES[name])()
    for yb, pb in batches:
        m.update_state(yb, pb)
    return float(m.result())


def _torchmetrics_r2(batches: list[tuple[np.ndarray, np.ndarray]]) -> float:
    import torch
    import torchmetrics

    m = torchmetrics.R2Score()
    for yb, pb in batches:
        m.update(torch.from_numpy(pb), torch.from_numpy(yb))
    return float(m.compute())


def _keras_r2(batches: list[tuple[np.ndarray, np.ndarray]]) -> float:
    import keras

    m = keras.metrics.R2Score()
    for yb, pb in batches:
        m.update_state(yb[:, None], pb[:, None])
    return float(m.result())


def streams() -> Iterator[tuple[str, Stream]]:
    import importlib.util

    for backend, module, fn in (("numpy", "numpy", _numpy), ("torch", "torch", _torch), ("jax", "jax", _jax),
                                ("keras", "keras", _keras)):
        if importlib.util.find_spec(module) is not None:
            yield backend, fn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--n", type=float, default=1e6)
    ap.add_argument("--batches", type=int, default=100)
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    n = int(args.n)
    ours = dict(streams())
    head = ["mu", "truth (sklearn, float64)", "torchmetrics.R2Score", "keras.metrics.R2Score",
            *(f"ours ({b})" for b in ours)]
    r2_rows, worst = [], {b: dict.fromkeys(NAMES, 0.0) for b in ours}
    for mu in MUS:
        y, p = data(mu, n)
        batches = list(zip(np.array_split(y, args.batches), np.array_split(p, args.batches)))
        t = truth(y, p)
        row = [f"{mu:g}", f"{t['r2']:.6f}", f"{_torchmetrics_r2(batches):.6f}", f"{_keras_r2(batches):.6f}"]
        for b, fn in ours.items():
            for name in NAMES:
                got = fn(name, batches)
                err = abs(got - t[name]) / (1.0 if name in ("nmse", "r2") else abs(t[name]))
                worst[b][name] = max(worst[b][name], err)
                if name == "r2":
                    row.append(f"{got:.6f}")
        r2_rows.append(row)
    lines = [f"Streaming R^2: {n:.0e} float32 samples in {args.batches} batches (targets std 1, mean mu; "
             "predictions target + 0.1 noise)", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in r2_rows]
    lines += ["", "Largest error of ours over the four mu (MSE, MAE, RMSE relative; NMSE, R^2 absolute):", "",
              "| backend | " + " | ".join(NAMES) + " |", "|---|" + "---|" * len(NAMES)]
    lines += [f"| {b} | " + " | ".join(f"{worst[b][k]:.1e}" for k in NAMES) + " |" for b in ours]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
