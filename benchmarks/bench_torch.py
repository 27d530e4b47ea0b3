"""PyTorch: the adapter's modules against torch.nn and the best hand-written forms.

Run by ``python -m benchmarks`` in a process of its own, with one thread, timed by the
thread's CPU time (every operation of the forward and the backward runs on the calling
thread; see ``_runner.CLOCKS``). Inputs are float32 of shape (N / 10, 10); the prediction
requires grad (a training step), the target does not; "fwd+bwd" is the forward and
``torch.autograd.grad`` with respect to the prediction.

The batch-size rows (cases ``batch-*``): every penalty with a weight, a mask, both and
missing targets at the shapes of :data:`~benchmarks.penalties.BATCH_SHAPES`, eager, forward
and backward, with the default value checks on, against the hand-written form with the same
options (which checks nothing).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import mse_adapters.torch as mt

from . import penalties as grid
from ._runner import SIZES, Candidate, Row, Target, cell_rows, clock_name

D = 10  # outputs per sample
CLOCK = clock_name("thread")
#: The options of the grid at 1e7 (the batch-size rows add missing targets).
GRID_OPTIONS = ("plain", "weight", "mask", "weight+mask")
GRID_SIZES = (10**7,)
_PLAIN = (("MSE", "plain-mse", "MSELoss"), ("MAE", "plain-mae", "MAELoss"), ("Huber", "huber", "HuberLoss"),
          ("SmoothL1", "plain-smooth_l1", "SmoothL1Loss"))

#: A case: [(candidate name, its forward)] with the baseline first, the bytes per element
#: read beyond the prediction and the target (weight 4, mask 1), notes per candidate.
Case = tuple[list[tuple[str, Callable[[], Any]]], int, dict[str, str]]

TARGETS = [
    *(Target(f"torch {name} module, N={n} fwd+bwd, vs torch.nn", "torch", case, size, "fwd+bwd",
             f"mse_adapters {cls}", 1.05)
      for n, size in (("1e2", 10**2), ("1e7", 10**7)) for name, case, cls in _PLAIN),
    *(Target(f"torch {name} module per-call overhead, N=1e2 fwd, vs torch.nn", "torch", case, 10**2,
             "fwd", f"mse_adapters {cls}", 1.05) for name, case, cls in _PLAIN),
    Target("torch MSE, per-element weight + mask, N=1e7 fwd+bwd, vs plain F.mse_loss (nn.MSELoss)", "torch",
           "grid-mse-weight+mask", 10**7, "fwd+bwd", "mse_adapters MSELoss", 1.4),
    Target("torch weighted MSE, eager, N=1e7 fwd+bwd, vs plain F.mse_loss", "torch", "weighted",
           10**7, "fwd+bwd", "mse_adapters MSELoss", 1.5),
    Target("torch masked MSE, eager, N=1e7 fwd+bwd, vs plain F.mse_loss", "torch", "masked",
           10**7, "fwd+bwd", "mse_adapters MSELoss", 1.5),
    Target("torch weighted MSE in a torch.compile'd step, N=1e7 fwd+bwd, vs eager F.mse_loss",
           "torch", "compiled-weighted", 10**7, "fwd+bwd", "mse_adapters MSELoss (compiled step)", 1.0),
    Target("torch masked MSE in a torch.compile'd step, N=1e7 fwd+bwd, vs eager F.mse_loss",
           "torch", "compiled-masked", 10**7, "fwd+bwd", "mse_adapters MSELoss (compiled step)", 1.0),
]

#: The penalties torch.nn has a built-in for (the grid's baseline for them): f(p, t).
BUILTINS: dict[str, tuple[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = {
    "square": ("F.mse_loss", F.mse_loss),
    "abs": ("F.l1_loss", F.l1_loss),
    "huber": ("F.huber_loss", lambda p, t: F.huber_loss(p, t, delta=grid.PARAMS["huber"]["delta"])),
    "smooth_l1": ("F.smooth_l1_loss", lambda p, t: F.smooth_l1_loss(p, t, beta=grid.PARAMS["smooth_l1"]["beta"])),
}


#: The group of the batch-size targets (one line of the targets table; the cells are the
#: batch table's).
BATCH_GROUP = ("torch eager fwd+bwd at (32, 1), (256, 10), (4096, 64), every penalty with weight / mask / both / "
               "missing, vs hand-written with the same options")
GRID_GROUP = "torch N=1e7 fwd+bwd, every penalty and option"


def _grid_targets() -> list[Target]:
    """Every penalty x option at 1e7, forward and backward: plain <= 1.05x the built-in; a
    weight, a mask or both <= 1.3x the plain built-in, or <= 1.1x the hand-written
    equivalent with the same options where torch has no built-in. The batch-size rows: <=
    1.2x the hand-written form with the same options."""
    out = []
    for row in grid.ROWS:
        builtin = row.spec.penalty in BUILTINS
        for option in GRID_OPTIONS:
            limit = 1.05 if option == "plain" else (1.3 if builtin else 1.1)
            vs = "the plain built-in" if builtin else "hand-written with the same options"
            out.append(Target(f"torch {row.torch} {option}, N=1e7 fwd+bwd, vs {vs}", "torch",
                              grid.case_name(row.name, option), 10**7, "fwd+bwd", f"mse_adapters {row.torch}",
                              limit, group=GRID_GROUP))
        for option in grid.BATCH_OPTIONS:
            for shape in grid.BATCH_SHAPES:
                out.append(Target(f"torch {row.torch} {option} at {shape}, fwd+bwd, vs hand-written", "torch",
                                  grid.batch_case_name(row.name, option), math.prod(shape), "fwd+bwd",
                                  f"mse_adapters {row.torch}", 1.2, group=BATCH_GROUP))
    return out


TARGETS += _grid_targets()


def _data(n: int, seed: int = 0, shape: tuple[int, ...] | None = None) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape = shape or (max(n // D, 1), D)
    target = torch.randn(shape, generator=g)
    pred = (target + torch.randn(shape, generator=g)).requires_grad_(True)
    mask = torch.rand(shape, generator=g) > 0.3
    return {
        "pred": pred,
        "target": target,
        "weight": torch.rand(shape, generator=g) + 0.5,
        "weight_out": torch.rand(D, generator=g) + 0.5,
        "mask": mask,
        "target_masked": torch.where(mask, target, float("nan")),  # NaN under the mask
        "target_missing": torch.where(torch.rand(shape, generator=g) > 0.3, target, float("nan")),
    }


def _step(fn: Callable[[], torch.Tensor], pred: torch.Tensor, mode: str) -> Callable[[], Any]:
    if mode == "fwd":
        return fn

    def fwd_bwd() -> Any:
        return torch.autograd.grad(fn(), pred)

    return fwd_bwd


def _cases(x: dict[str, torch.Tensor], compiled: bool) -> dict[str, Case]:
    p, t, w, wo, m = x["pred"], x["target"], x["weight"], x["weight_out"], x["mask"]
    tm, tn = x["target_masked"], x["target_missing"]
    cases: dict[str, Case] = {}

    def on_pred_target(f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[[], Any]:
        return lambda: f(p, t)

    for case, ours, theirs in (
        ("plain-mse", mt.MSELoss(), nn.MSELoss()),
        ("plain-mae", mt.MAELoss(), nn.L1Loss()),
        ("huber", mt.HuberLoss(delta=0.5), nn.HuberLoss(delta=0.5)),
        ("plain-smooth_l1", mt.SmoothL1Loss(beta=0.5), nn.SmoothL1Loss(beta=0.5)),
    ):
        cases[case] = ([(f"torch.nn {type(theirs).__name__}", on_pred_target(theirs)),
                        (f"mse_adapters {type(ours).__name__}", on_pred_target(ours))], 0, {})

    mse = mt.MSELoss()
    mse_nocheck = mt.MSELoss(check_values=False)
    cases["weighted"] = ([
        ("F.mse_loss (plain)", lambda: F.mse_loss(p, t)),
        ("mse_adapters MSELoss", lambda: mse(p, t, weight=w)),
        ("mse_adapters MSELoss(check_values=False)", lambda: mse_nocheck(p, t, weight=w)),
        ("F.mse_loss(weight=w)", lambda: F.mse_loss(p, t, weight=w)),  # type: ignore[call-arg]
        ("hand-written (w*(p-t)**2).sum()/w.sum()", lambda: (w * (p - t) ** 2).sum() / w.sum()),
    ], 4, {"mse_adapters MSELoss": "with the default eager weight checks (one pass, one sync)"})
    cases["weighted-per-output"] = ([
        ("F.mse_loss (plain)", lambda: F.mse_loss(p, t)),
        ("mse_adapters MSELoss", lambda: mse(p, t, weight=wo)),
        ("hand-written (w*(p-t)**2).sum()/w.expand_as(p).sum()",
         lambda: (wo * (p - t) ** 2).sum() / wo.expand_as(p).sum()),
    ], 0, {})

    def masked_by_hand(target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        d = torch.where(valid, p - target, 0.0)
        return (d * d).sum() / valid.sum()

    cases["masked"] = ([
        ("F.mse_loss (plain)", lambda: F.mse_loss(p, t)),
        ("mse_adapters MSELoss", lambda: mse(p, tm, mask=m)),
        ("hand-written where(m, p-t, 0)", lambda: masked_by_hand(tm, m)),
    ], 1, {})
    missing = mt.MSELoss(missing="nan")
    cases["nan-missing"] = ([
        ("F.mse_loss (plain)", lambda: F.mse_loss(p, t)),
        ("mse_adapters MSELoss(missing='nan')", lambda: missing(p, tn)),
        ("hand-written where(~isnan(t), p-t, 0)", lambda: masked_by_hand(tn, ~torch.isnan(tn))),
    ], 0, {})
    cases["whitened"] = _whitened_case(p, t)
    if x["pred"].numel() in GRID_SIZES:
        cases.update(_grid_cases(x))
    if compiled:
        cases["compiled-weighted"] = ([
            ("F.mse_loss (plain, eager)", lambda: F.mse_loss(p, t)),
            ("mse_adapters MSELoss (compiled step)",
             _compiled(lambda p, t, w: mse(p, t, weight=w), p, t, w)),
            ("hand-written (compiled step)",
             _compiled(lambda p, t, w: (w * (p - t) ** 2).sum() / w.sum(), p, t, w)),
        ], 4, {})
        cases["compiled-masked"] = ([
            ("F.mse_loss (plain, eager)", lambda: F.mse_loss(p, t)),
            ("mse_adapters MSELoss (compiled step)",
             _compiled(lambda p, t, m: mse(p, t, mask=m), p, tm, m)),
            ("hand-written (compiled step)",
             _compiled(lambda p, t, m: (torch.where(m, p - t, 0.0) ** 2).sum() / m.sum(), p, tm, m)),
        ], 1, {})
    return cases


def _ours(row: Any, option: str) -> torch.nn.Module:
    """The preset's module for ``option`` (built once, as a training loop does)."""
    return getattr(mt, row.torch)(**grid.params(row), **grid.option_fields(option))


def _option_calls(x: dict[str, torch.Tensor], row: Any, option: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(the adapter's call, the hand-written form's) of ``row`` with ``option`` on ``x``."""
    p, w, m = x["pred"], x["weight"], x["mask"]
    target = grid.option_target(option, x["target"], x["target_masked"], x["target_missing"])
    module, kw = _ours(row, option), grid.option_kwargs(option, w, m)
    hand = grid.hand_loss(row, option, torch, F.softplus)
    return (lambda: module(p, target, **kw)), (lambda: hand(p, target, w, m))


def _builtin_call(penalty: str, p: torch.Tensor, t: torch.Tensor) -> tuple[str, Callable[[], Any]]:
    name, f = BUILTINS[penalty]
    return f"{name} (plain)", functools.partial(f, p, t)


def _grid_cases(x: dict[str, torch.Tensor]) -> dict[str, Case]:
    """Every penalty x option of the grid (the prediction and the target are the same arrays
    as the other cases'; the target is NaN under the mask where a mask is given)."""
    p, t = x["pred"], x["target"]
    cases: dict[str, Case] = {}
    for row in grid.ROWS:
        pen = row.spec.penalty
        for option in GRID_OPTIONS:
            ours, by_hand = _option_calls(x, row, option)
            # the baseline of the target: torch's plain built-in, else the hand-written form
            # with the same options (the batch-size rows compare every penalty with the latter)
            base = _builtin_call(pen, p, t) if pen in BUILTINS else (f"hand-written ({option})", by_hand)
            cands = [base, (f"mse_adapters {row.torch}", ours)]
            cases[grid.case_name(row.name, option)] = (cands, grid.EXTRA_BYTES[option], {})
    return cases


def run_batch(rounds: int, cases: str = "") -> list[Row]:
    """The batch-size rows: every penalty with each option of ``BATCH_OPTIONS`` at each shape
    of ``BATCH_SHAPES``, forward and backward, the hand-written form with the same options the
    baseline (``cases``: a regular expression the case names must match)."""
    rows: list[Row] = []
    for shape in grid.BATCH_SHAPES:
        x = _data(0, shape=shape)
        n = x["pred"].numel()
        for row in grid.ROWS:
            for option in grid.BATCH_OPTIONS:
                case = grid.batch_case_name(row.name, option)
                if not re.search(cases, case):
                    continue
                ours, by_hand = _option_calls(x, row, option)
                candidates = [Candidate(f"hand-written ({option})", _step(by_hand, x["pred"], "fwd+bwd")),
                              Candidate(f"mse_adapters {row.torch}", _step(ours, x["pred"], "fwd+bwd"))]
                moved = n * (4 + 4 + 4 + grid.EXTRA_BYTES[option])
                rows += cell_rows("torch", case, n, "fwd+bwd", candidates, moved, rounds=max(rounds, 15),
                                  clock=CLOCK, extra={"shape": list(shape)}, warmup=5)
                print(f"  torch {case:28s} {str(shape):>10s} fwd+bwd  {rows[-1].ratio:.2f}", flush=True)
    return rows


def _compiled(fn: Callable[..., torch.Tensor], *args: torch.Tensor) -> Callable[[], torch.Tensor]:
    step = torch.compile(fn, fullgraph=True, dynamic=False)
    return lambda: step(*args)


def _whitened_case(p: torch.Tensor, t: torch.Tensor) -> Case:
    """GLS with a fixed (D, D) covariance: the adapter (factored once in float64 at
    construction) against the hand-written whitening by the inverse Cholesky factor."""
    cov = _covariance()
    loss = mt.MSELoss(covariance=cov)
    linv = torch.linalg.inv(torch.linalg.cholesky(cov)).to(torch.float32)

    def by_hand() -> torch.Tensor:
        z = (p - t) @ linv.mT
        return (z * z).mean()

    return ([("hand-written (p-t) @ L^-T, mean of squares", by_hand),
             ("mse_adapters MSELoss(covariance=S)", lambda: loss(p, t)),
             ("F.mse_loss (plain, no whitening)", lambda: F.mse_loss(p, t))], 0, {})


def _covariance() -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    a = torch.randn(D, D, generator=g, dtype=torch.float64)
    return a @ a.T / D + 0.5 * torch.eye(D, dtype=torch.float64)


def run(sizes: tuple[int, ...] = SIZES, rounds: int = 9, compiled: bool = True, quick: bool = False,
        cases: str = "") -> list[Row]:
    """Every case at every size of ``sizes``, forward, and forward and backward (``quick``, the
    grid and the compiled steps: forward and backward only), then the batch-size rows;
    ``cases``: a regular expression the case names must match."""
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    rows: list[Row] = []
    for n in sizes:
        x = _data(n)
        elem = x["pred"].numel()
        for case, (cands, extra_bytes, notes) in _cases(x, compiled).items():
            if not re.search(cases, case):
                continue
            # the grid and the compiled steps: forward and backward only (their targets)
            for mode in ("fwd+bwd",) if quick or case.startswith(("grid-", "compiled")) else ("fwd", "fwd+bwd"):
                # the floor: read pred and target (and the weight / mask) once, and in the
                # backward write one gradient
                moved = elem * (4 + 4 + extra_bytes) + (elem * 4 if mode == "fwd+bwd" else 0)
                candidates = [Candidate(name, _step(f, x["pred"], mode)) for name, f in cands]
                rows += cell_rows("torch", case, n, mode, candidates, moved,
                                  rounds=rounds if n >= 10**6 else max(rounds, 15), notes=notes, clock=CLOCK)
                print(f"  torch {case:20s} {n:>9d} {mode:8s} " + "  ".join(
                    f"{r.ratio:.2f}" for r in rows[-len(candidates) + 1:]), flush=True)
    return rows + run_batch(rounds, cases)


def info() -> dict[str, Any]:
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "clock": CLOCK}
