"""Streaming metrics' update cost against torchmetrics, and the JAX update under jit.

    python benchmarks/bench_metrics.py [--out FILE] [--quick]

One thread (torch.set_num_threads(1); run it under ``taskset -c N`` for a quiet core),
1e6 float32 elements per update, interleaved round by round, medians. Compared:

- torch: ``mse_adapters.torch.metrics.MeanSquaredError`` / ``R2Score`` / ``R2Score(multioutput=
  "raw_values")`` on (2.5e5, 4) / ``MeanAbsoluteError`` ``.update`` against the torchmetrics
  namesakes' ``.update`` (the goal: <= 1.2x MSE, <= 1.5x R2Score);
- JAX: ``metrics.mse()`` / ``metrics.r2()`` ``update`` under ``jax.jit`` against a jitted
  ``s + jnp.sum((p - t)**2)`` (the floor of a sum of squares);
- Keras: ``model.evaluate`` with our metrics against Keras' namesakes (the goal: steps/s
  >= 0.95x, i.e. a time ratio <= 1.05).

Times are never asserted anywhere: the table is for people.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np

N = 10**6


def _median(f: Callable[[], object], reps: int) -> float:
    f()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def torch_rows(rounds: int, reps: int) -> list[tuple[str, float, float]]:
    import torch
    import torchmetrics

    from mse_adapters.torch import metrics as ours

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    p, t = torch.randn(N, generator=g), torch.randn(N, generator=g) + 3.0
    p2, t2 = p.reshape(-1, 4), t.reshape(-1, 4)
    cases = [("MeanSquaredError", ours.MeanSquaredError(), torchmetrics.MeanSquaredError(), p, t),
             ("R2Score", ours.R2Score(), torchmetrics.R2Score(), p, t),
             ("R2Score raw_values (N/4, 4)", ours.R2Score(multioutput="raw_values"),
              torchmetrics.R2Score(multioutput="raw_values"), p2, t2),
             ("MeanAbsoluteError", ours.MeanAbsoluteError(), torchmetrics.MeanAbsoluteError(), p, t)]
    times: dict[str, tuple[list[float], list[float]]] = {c[0]: ([], []) for c in cases}
    for _ in range(rounds):
        for name, a, b, pp, tt in cases:
            times[name][0].append(_median(lambda: a.update(pp, tt), reps))  # noqa: B023
            times[name][1].append(_median(lambda: b.update(pp, tt), reps))  # noqa: B023
    return [(f"torch {k}", float(np.median(a)), float(np.median(b))) for k, (a, b) in times.items()]


def jax_rows(rounds: int, reps: int) -> list[tuple[str, float, float]]:
    import jax
    import jax.numpy as jnp

    from mse_adapters.jax import metrics

    p = jnp.asarray(np.random.default_rng(0).normal(size=N), jnp.float32)
    t = p + 1.0
    hand = jax.jit(lambda s, p, t: s + jnp.sum((p - t) ** 2))
    rows = []
    for name in ("mse", "r2"):
        m = getattr(metrics, name)()
        s = m.init(t)
        up = jax.jit(m.update)
        a, b = [], []
        for _ in range(rounds):
            a.append(_median(lambda: up(s, p, t).stats.block_until_ready(), reps))  # noqa: B023
            b.append(_median(lambda: hand(jnp.zeros(()), p, t).block_until_ready(), reps))
        rows.append((f"jax {name}() update under jit (vs jit sum of squares)", float(np.median(a)),
                     float(np.median(b))))
    return rows


def keras_rows(rounds: int, reps: int) -> list[tuple[str, float, float]]:
    """``model.evaluate`` (a Dense model, 64 batches of 256 x 8) with our metrics against the
    same with Keras' namesakes: seconds per evaluate, interleaved (Keras' backend as set by
    KERAS_BACKEND, TensorFlow by default)."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from mse_adapters.keras import metrics as ours

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64 * 256, 16)).astype("float32")
    y = (x[:, :8] + 0.1 * rng.normal(size=(len(x), 8))).astype("float32")

    def model(ms: list) -> keras.Model:
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8)])
        m.compile(loss="mse", metrics=ms)
        m.evaluate(x, y, batch_size=256, verbose=0)  # traced once
        return m

    pairs = [("MSE, RMSE, MAE", model([ours.MeanSquaredError(), ours.RootMeanSquaredError(),
                                      ours.MeanAbsoluteError()]),
              model([keras.metrics.MeanSquaredError(), keras.metrics.RootMeanSquaredError(),
                     keras.metrics.MeanAbsoluteError()])),
             ("R2Score", model([ours.R2Score()]), model([keras.metrics.R2Score()]))]
    rows = []
    for name, a, b in pairs:
        ta, tb = [], []
        for _ in range(rounds):
            ta.append(_median(lambda: a.evaluate(x, y, batch_size=256, verbose=0), max(3, reps // 5)))  # noqa: B023
            tb.append(_median(lambda: b.evaluate(x, y, batch_size=256, verbose=0), max(3, reps // 5)))  # noqa: B023
        rows.append((f"keras ({keras.backend.backend()}) evaluate, 64 steps, {name} (vs keras.metrics)",
                     float(np.median(ta)), float(np.median(tb))))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rounds, reps = (2, 5) if args.quick else (7, 15)
    rows = []
    for fn in (torch_rows, jax_rows, keras_rows):
        try:
            rows += fn(rounds, reps)
        except ImportError as e:  # pragma: no cover - a backend not installed
            print(f"skipped {fn.__name__}: {e}")
    lines = [f"# Streaming metrics: update of {N:.0e} float32 elements ({platform.machine()}, one thread)", "",
             "| case | ours (ms) | other (ms) | ratio |", "|---|---|---|---|"]
    lines += [f"| {n} | {a * 1e3:.3f} | {b * 1e3:.3f} | {a / b:.2f} |" for n, a, b in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
