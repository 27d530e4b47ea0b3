"""JAX: the adapter's functions against Optax and the best hand-written jnp forms, under
``jax.jit``.

Run by ``python -m benchmarks`` in a process of its own, with XLA on one thread, timed by
the process' CPU time (XLA:CPU runs a program on a thread of its own; see
``_runner.CLOCKS``). Inputs are float32 of shape (N / 10, 10). "fwd" is the jitted loss;
"fwd+bwd" is the jitted ``jax.value_and_grad`` with respect to the predictions. Every call
is waited for (``block_until_ready``); compilation happens in the warm-up, never in a timed
call.

The grid (cases ``grid-*``, at :data:`GRID_SIZES`, value_and_grad): every penalty with each
option (none, a weight, a mask, both, missing targets) against the hand-written ``jnp`` form
with the same options.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mse_adapters import jax as mjax

from . import penalties as grid
from ._runner import SIZES, Candidate, Row, Target, cell_rows, clock_name

D = 10  # outputs per sample
CLOCK = clock_name("process")
GRID_SIZES = (10**6, 10**7)
GRID_GROUP = ("JAX under jit, value_and_grad at N=1e6 and 1e7, every penalty and option, vs hand-written jnp "
              "with the same options")

#: A case: [(candidate name, loss(p, *args))] with the baseline first, its extra arrays,
#: the bytes per element read beyond the prediction and the target.
Case = tuple[list[tuple[str, Callable[..., Any]]], tuple[str, ...], int]

TARGETS = [
    Target("JAX MSE under jit, N=1e7 value_and_grad, vs optax.squared_error(...).mean()", "jax",
           "plain-mse", 10**7, "fwd+bwd", "mse_adapters mjax.mse", 1.05),
    Target("JAX weighted MSE under jit, N=1e7 value_and_grad, vs optax plain", "jax", "weighted",
           10**7, "fwd+bwd", "mse_adapters mjax.mse", 1.2),
    Target("JAX masked MSE under jit, N=1e7 value_and_grad, vs optax plain", "jax", "masked",
           10**7, "fwd+bwd", "mse_adapters mjax.mse", 1.2),
]


TARGETS += [
    Target(f"JAX {row.name} {option} under jit, N={n:.0e} value_and_grad, vs hand-written jnp ({option})", "jax",
           grid.case_name(row.name, option), n, "fwd+bwd", f"mse_adapters mjax.{row.name}", 1.1, group=GRID_GROUP)
    for n in GRID_SIZES for row in grid.ROWS for option in grid.OPTIONS
]


def _data(n: int, seed: int = 0) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    shape = (max(n // D, 1), D)
    target = rng.standard_normal(shape, dtype=np.float32)
    pred = target + rng.standard_normal(shape, dtype=np.float32)
    mask = rng.uniform(size=shape) > 0.3
    arrays = {
        "pred": pred,
        "target": target,
        "weight": (rng.uniform(size=shape) + 0.5).astype(np.float32),
        "mask": mask,
        "target_masked": np.where(mask, target, np.float32(np.nan)),
        "target_missing": np.where(rng.uniform(size=shape) > 0.3, target, np.float32(np.nan)),
    }
    return {k: jnp.asarray(v) for k, v in arrays.items()}


def _optax_mse(p: jax.Array, t: jax.Array) -> jax.Array:
    return optax.squared_error(p, t).mean()


def _masked_by_hand(p: jax.Array, t: jax.Array, m: jax.Array) -> jax.Array:
    d = jnp.where(m, p - t, 0.0)
    return jnp.sum(d * d) / jnp.sum(m)


def _cases(n: int) -> dict[str, Case]:
    cases: dict[str, Case] = {
        "plain-mse": ([("optax.squared_error(p, t).mean()", _optax_mse),
                       ("mse_adapters mjax.mse", mjax.mse)], ("target",), 0),
        "plain-mae": ([("jnp.abs(p - t).mean()", lambda p, t: jnp.abs(p - t).mean()),
                       ("mse_adapters mjax.mae", mjax.mae)], ("target",), 0),
        "huber": ([("optax.huber_loss(p, t, 0.5).mean()", lambda p, t: optax.huber_loss(p, t, delta=0.5).mean()),
                   ("mse_adapters mjax.huber", lambda p, t: mjax.huber(p, t, delta=0.5))], ("target",), 0),
        "weighted": ([("optax plain", lambda p, t, w: _optax_mse(p, t)),
                      ("mse_adapters mjax.mse", lambda p, t, w: mjax.mse(p, t, weight=w)),
                      ("hand-written sum(w*(p-t)**2)/sum(w)",
                       lambda p, t, w: jnp.sum(w * (p - t) ** 2) / jnp.sum(w))],
                     ("target", "weight"), 4),
        "masked": ([("optax plain", lambda p, t, tm, m: _optax_mse(p, t)),
                    ("mse_adapters mjax.mse", lambda p, t, tm, m: mjax.mse(p, tm, mask=m)),
                    ("hand-written where(m, p-t, 0)", lambda p, t, tm, m: _masked_by_hand(p, tm, m))],
                   ("target", "target_masked", "mask"), 1),
        "nan-missing": ([("optax plain", lambda p, t, tn: _optax_mse(p, t)),
                         ("mse_adapters mjax.mse(missing='nan')", lambda p, t, tn: mjax.mse(p, tn, missing="nan")),
                         ("hand-written where(~isnan(t), p-t, 0)",
                          lambda p, t, tn: _masked_by_hand(p, tn, ~jnp.isnan(tn)))],
                        ("target", "target_missing"), 0),
    }
    if n in GRID_SIZES:
        cases.update(_grid_cases())
    return cases


def _grid_cases() -> dict[str, Case]:
    """Every penalty x option: the baseline is the hand-written jnp form with the same options;
    the candidates take (p, t, t NaN under the mask, t NaN where missing, w, m)."""
    cases: dict[str, Case] = {}
    for row in grid.ROWS:
        params = grid.params(row)
        for option in grid.OPTIONS:
            fn = functools.partial(getattr(mjax, row.name), **params, **grid.option_fields(option))
            hand = grid.hand_loss(row, option, jnp, jax.nn.softplus)

            def ours(p: Any, t: Any, tm: Any, tn: Any, w: Any, m: Any, fn: Any = fn, option: str = option) -> Any:
                return fn(p, grid.option_target(option, t, tm, tn), **grid.option_kwargs(option, w, m))

            def by_hand(p: Any, t: Any, tm: Any, tn: Any, w: Any, m: Any, hand: Any = hand,
                        option: str = option) -> Any:
                return hand(p, grid.option_target(option, t, tm, tn), w, m)

            cands: list[tuple[str, Callable[..., Any]]] = [
                (f"hand-written jnp ({option})", by_hand), (f"mse_adapters mjax.{row.name}", ours)]
            cases[grid.case_name(row.name, option)] = (
                cands, ("target", "target_masked", "target_missing", "weight", "mask"), grid.EXTRA_BYTES[option])
    return cases


def _candidate(name: str, fn: Callable[..., Any], args: tuple[jax.Array, ...], mode: str) -> Candidate:
    f = jax.jit(fn if mode == "fwd" else jax.value_and_grad(fn))

    def call() -> Any:
        return jax.block_until_ready(f(*args))

    return Candidate(name, call)


def run(sizes: tuple[int, ...] = SIZES, rounds: int = 9, quick: bool = False, cases: str = "") -> list[Row]:
    """Every case at every size of ``sizes``: forward and value_and_grad (``quick``, and the
    grid: value_and_grad only); ``cases``: a regular expression the case names must match."""
    rows: list[Row] = []
    for n in sizes:
        x = _data(n)
        elem = int(x["pred"].size)
        for case, (cands, extra, extra_bytes) in _cases(n).items():
            if not re.search(cases, case):
                continue
            args = (x["pred"], *(x[k] for k in extra))
            for mode in ("fwd+bwd",) if quick or case.startswith("grid-") else ("fwd", "fwd+bwd"):
                moved = elem * (4 + 4 + extra_bytes) + (elem * 4 if mode == "fwd+bwd" else 0)
                candidates = [_candidate(name, fn, args, mode) for name, fn in cands]
                rows += cell_rows("jax", case, n, mode, candidates, moved,
                                  rounds=rounds if n >= 10**6 else max(rounds, 15), clock=CLOCK)
                print(f"  jax {case:20s} {n:>9d} {mode:8s} " + "  ".join(
                    f"{r.ratio:.2f}" for r in rows[-len(candidates) + 1:]), flush=True)
    return rows


def info() -> dict[str, Any]:
    return {"jax": jax.__version__, "optax": optax.__version__,
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "clock": CLOCK}
