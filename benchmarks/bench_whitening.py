"""Whitened MSE (GLS) versus the hand-rolled alternatives, in torch and JAX.

    python benchmarks/bench_whitening.py [--out FILE] [--quick]

Problem: B = 4096 samples, d in {8, 64, 256} outputs, float32 inputs, a covariance with
condition number 1e6 (given, as users have it, in float64). Compared, in the same run,
interleaved call by call (medians):

- ``ours``: ``mse_adapters`` whitened MSE, the mean of (L^-1 r)**2, L factored once in
  float64 at construction and applied in float32 (torch: ``MSELoss(covariance=S)``;
  JAX: ``mse_adapters.jax.mse(p, t, covariance=S)`` under ``jax.jit``, S closed over, so
  factored once at trace time); the row names how the adapter applies it;
- ``other whitening``: the same adapter forced the other way: a float32 triangular solve
  against L instead of the product with the precomputed L^-1 (torch: the solve is the
  adapter's own path for a trainable ``scale_tril``; JAX: ``_jax_whiten.WHITEN_BY``), the
  alternative each backend's choice was measured against;
- ``inv32``: the hand-rolled float32 explicit inverse, mean of r^T inv(Sigma) r / d, the
  inverse precomputed once (in float32, from the float32 covariance);
- ``mvn``: torch: ``-MultivariateNormal(pred, scale_tril=L32).log_prob(target)``, mean over
  samples, the float32 Cholesky factor precomputed once (the cheapest way to use it); JAX:
  ``-jax.scipy.stats.multivariate_normal.logpdf(target - pred, 0, Sigma32)``, which takes
  only a covariance and factors it in every call (its compiled program holds the Cholesky
  decomposition: JAX has no ``scale_tril`` form of it).

Forward ("fwd") and forward + backward with respect to the predictions ("fwd+bwd").
Ratios are ours' median time over the other's, from the same run. "rel err" is the
relative error of the float32 value against the same quantity in float64 (NumPy, from the
float64 covariance). Times are never asserted anywhere: the table is for people.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import statistics
import time
from collections.abc import Callable

import numpy as np

B = 4096
DIMS = (8, 64, 256)
COND = 1e6


def make_cov(d: int, cond: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q * np.logspace(0.0, np.log10(cond), d)) @ q.T


def problem(d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    sigma = make_cov(d, COND, seed)
    lower = np.linalg.cholesky(sigma)
    target = rng.normal(size=(B, d))
    pred = target + rng.normal(size=(B, d)) @ lower.T  # residuals distributed as N(0, Sigma)
    return pred.astype(np.float32), target.astype(np.float32), sigma


def truths(pred: np.ndarray, target: np.ndarray, sigma: np.ndarray) -> dict[str, float]:
    """float64 values of each quantity, on the float32 inputs."""
    r = pred.astype(np.float64) - target.astype(np.float64)
    lower = np.linalg.cholesky(sigma)
    z = np.linalg.solve(lower, r.T).T
    d = r.shape[1]
    maha = np.sum(z * z, axis=1)
    nll = 0.5 * maha + np.sum(np.log(np.diag(lower))) + 0.5 * d * np.log(2 * np.pi)
    return {"mse": float(np.mean(z * z)), "nll": float(np.mean(nll))}


def interleaved(fns: dict[str, Callable[[], object]], min_reps: int, budget_s: float) -> dict[str, float]:
    """Median seconds per call of each function, measured round-robin in a shuffled order."""
    for f in fns.values():  # warm-up (and compilation)
        f()
        f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    order = list(fns)
    rng = random.Random(0)
    start = time.perf_counter()
    reps = 0
    while reps < min_reps or (time.perf_counter() - start < budget_s and reps < 200):
        rng.shuffle(order)  # no function always runs first (or right after another's backward)
        for k in order:
            f = fns[k]
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
        reps += 1
    return {k: statistics.median(v) for k, v in times.items()}


# ---------------------------------------------------------------------------------------
# torch
# ---------------------------------------------------------------------------------------


def bench_torch(d: int, min_reps: int, budget_s: float) -> list[dict[str, object]]:
    import torch

    from mse_adapters import _torch_whiten
    from mse_adapters import torch as mt

    p_np, t_np, sigma = problem(d)
    truth = truths(p_np, t_np, sigma)
    pred, target = torch.tensor(p_np), torch.tensor(t_np)
    pred_g = pred.clone().requires_grad_(True)
    sigma64 = torch.tensor(sigma)

    ours = mt.MSELoss(covariance=sigma64)
    saved = _torch_whiten.WHITEN_BY
    try:
        _torch_whiten.WHITEN_BY = "solve" if saved == "inverse" else "inverse"
        other = mt.MSELoss(covariance=sigma64)
    finally:
        _torch_whiten.WHITEN_BY = saved
    other_name = "solve" if saved == "inverse" else "inverse"
    variants = {f"ours ({saved})": ours, f"ours ({other_name})": other}

    sigma32 = sigma64.float()
    inv32 = torch.linalg.inv(sigma32)
    l32 = torch.linalg.cholesky(sigma32)

    def inv_loss(p: torch.Tensor) -> torch.Tensor:
        r = p - target
        return ((r @ inv32) * r).sum(-1).mean() / d

    def mvn_loss(p: torch.Tensor) -> torch.Tensor:
        return -torch.distributions.MultivariateNormal(p, scale_tril=l32, validate_args=False).log_prob(
            target).mean()

    fns: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        **{k: (lambda p, m=m: m(p, target)) for k, m in variants.items()},
        "inv32": inv_loss,
        "mvn": mvn_loss,
    }
    values = {k: float(f(pred)) for k, f in fns.items()}
    errors = {k: abs(v - truth["nll" if k == "mvn" else "mse"]) / abs(truth["nll" if k == "mvn" else "mse"])
              for k, v in values.items()}

    def fwd(f: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return f(pred)
        return run

    def fwd_bwd(f: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], object]:
        def run() -> object:
            return torch.autograd.grad(f(pred_g), pred_g)
        return run

    rows = []
    for mode, wrap in (("fwd", fwd), ("fwd+bwd", fwd_bwd)):
        t = interleaved({k: wrap(f) for k, f in fns.items()}, min_reps, budget_s)
        rows.append(_row("torch", d, mode, t, errors, f"ours ({saved})", f"ours ({other_name})"))
    return rows


# ---------------------------------------------------------------------------------------
# JAX
# ---------------------------------------------------------------------------------------


def _jax_adapter_other(sigma: np.ndarray) -> tuple[str, str, Callable[..., object]]:
    """(the adapter's choice for this matrix, the other one, the adapter's whitened MSE
    applied the other way: ``_jax_whiten.WHITEN_BY`` forced)."""
    from mse_adapters import _jax_whiten, preset
    from mse_adapters import jax as mj

    saved = _jax_whiten.WHITEN_BY
    chosen = _jax_whiten.whiten_by(sigma.shape)
    other = "solve" if chosen == "inverse" else "inverse"
    try:
        _jax_whiten.WHITEN_BY = other
        fn = mj.compile(preset("mse"), covariance=sigma)  # the choice is read when it is built
    finally:
        _jax_whiten.WHITEN_BY = saved
    return chosen, other, fn


def bench_jax(d: int, min_reps: int, budget_s: float) -> list[dict[str, object]]:
    import jax
    import jax.numpy as jnp
    from jax.scipy.stats import multivariate_normal

    p_np, t_np, sigma = problem(d)
    truth = truths(p_np, t_np, sigma)
    pred, target = jnp.asarray(p_np), jnp.asarray(t_np)
    sigma32 = jnp.asarray(sigma, dtype=jnp.float32)
    inv32 = jnp.linalg.inv(sigma32)
    mean0 = jnp.zeros((d,), jnp.float32)

    from mse_adapters import jax as mj

    chosen, other_by, other_fn = _jax_adapter_other(sigma)
    ours_name, other_name = f"ours ({chosen})", f"ours ({other_by})"

    def inv_loss(p: jax.Array) -> jax.Array:
        r = p - target
        return jnp.mean(jnp.sum((r @ inv32) * r, axis=-1)) / d

    def mvn_loss(p: jax.Array) -> jax.Array:
        # logpdf(x, mean, cov) takes only a covariance and factors it in every call (the
        # compiled program holds the Cholesky decomposition): that is its cost
        return -jnp.mean(multivariate_normal.logpdf(target - p, mean0, sigma32))

    fns: dict[str, Callable[[jax.Array], jax.Array]] = {
        ours_name: lambda p: mj.mse(p, target, covariance=sigma),
        "inv32": inv_loss,
        "mvn": mvn_loss,
        other_name: lambda p: other_fn(p, target),
    }
    jitted = {k: jax.jit(f) for k, f in fns.items()}
    values = {k: float(f(pred)) for k, f in jitted.items()}
    errors = {k: abs(v - truth["nll" if k == "mvn" else "mse"]) / abs(truth["nll" if k == "mvn" else "mse"])
              for k, v in values.items()}
    grads = {k: jax.jit(jax.grad(f)) for k, f in fns.items()}
    rows = []
    for mode, table in (("fwd", jitted), ("fwd+bwd", grads)):
        t = interleaved({k: (lambda f=f: jax.block_until_ready(f(pred))) for k, f in table.items()},
                        min_reps, budget_s)
        rows.append(_row("jax", d, mode, t, errors, ours_name, other_name))
    return rows


# ---------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------


def _row(fw: str, d: int, mode: str, t: dict[str, float], err: dict[str, float], ours: str,
         solve: str) -> dict[str, object]:
    return {
        "framework": fw, "d": d, "mode": mode,
        "ours_ms": t[ours] * 1e3, "alt_ms": t[solve] * 1e3, "inv_ms": t["inv32"] * 1e3, "mvn_ms": t["mvn"] * 1e3,
        "vs_inv": t[ours] / t["inv32"], "vs_mvn": t[ours] / t["mvn"], "vs_alt": t[ours] / t[solve],
        "alt_name": solve, "ours_name": ours,
        "err_ours": err[ours], "err_alt": err[solve], "err_inv": err["inv32"], "err_mvn": err["mvn"],
    }


def markdown(rows: list[dict[str, object]]) -> str:
    head = ("| framework | d | pass | ours (ms) | inv32 (ms) | mvn (ms) | ours / inv32 | ours / mvn "
            "| other whitening (ms) | ours / other | rel err ours | rel err other | rel err inv32 "
            "| rel err mvn |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        lines.append(
            f"| {r['framework']} {r['ours_name']} | {r['d']} | {r['mode']} | {r['ours_ms']:.3f} | {r['inv_ms']:.3f} "
            f"| {r['mvn_ms']:.3f} | {r['vs_inv']:.2f} | {r['vs_mvn']:.2f} | {r['alt_name']}: {r['alt_ms']:.3f} "
            f"| {r['vs_alt']:.2f} | {r['err_ours']:.1e} | {r['err_alt']:.1e} | {r['err_inv']:.1e} "
            f"| {r['err_mvn']:.1e} |"
        )
    return head + "\n".join(lines) + "\n"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="also write the Markdown table to this file")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    ap.add_argument("--frameworks", default="torch,jax")
    ap.add_argument("--threads", type=int, default=1,
                    help="intra-op threads for torch and XLA (default 1: stable medians on a shared machine)")
    args = ap.parse_args()
    if args.threads > 0:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                                   f"intra_op_parallelism_threads={args.threads}").strip()
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass
    min_reps, budget = (3, 0.2) if args.quick else (15, 2.0)
    rows: list[dict[str, object]] = []
    import importlib.util

    for fw in args.frameworks.split(","):
        if importlib.util.find_spec(fw) is None:
            print(f"{fw} not installed: skipped")
            continue
        for d in DIMS:
            rows.extend((bench_torch if fw == "torch" else bench_jax)(d, min_reps, budget))
    versions = []
    for mod in ("torch", "jax", "numpy"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            pass
    text = (f"Whitened MSE, B = {B}, float32, cond(Sigma) = {COND:.0e}; {datetime.date.today()}, "
            f"{machine()}, {args.threads or 'default'} thread(s); {', '.join(versions)}. Median of interleaved "
            "calls; ratios < 1: ours faster.\n\n"
            + markdown(rows))
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
