"""Streaming metrics' update cost against torchmetrics, and the JAX update under jit.

    python benchmarks/bench_metrics.py [--out FILE] [--quick]

One thread (torch.set_num_threads(1); run it under ``taskset -c N`` for a quiet core),
1e6 float32 elements per update, interleaved round by round, medians. Compared:

- torch: ``mse_adapters.torch.metrics.MeanSquaredError`` / ``R2Score`` / ``R2Score(multioutput=
  "raw_values")`` on (2.5e5, 4) / ``MeanAbsoluteError`` ``.update`` against the torchmetrics
  namesakes' ``.update`` (the goal: <= 1.2x MSE, <= 1.5x R2Score);
- JAX: ``metrics.mse()`` / ``metrics.r2()`` ``update`` under ``jax.jit`` against a jitted
  ``s + jnp.sum((p - t)**2)`` (the floor of a sum of squares).

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rounds, reps = (2, 5) if args.quick else (7, 15)
    rows = []
    for fn in (torch_rows, jax_rows):
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
