"""The penalty grid shared by the torch and JAX benchmarks: every penalty of the table with
no option, a weight, a mask and both, against the framework's built-in where it has one and
the best hand-written equivalent with the same options (no framework imported here: the
hand-written forms are written once over an array namespace, ``torch`` or ``jax.numpy``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from mse_adapters._presets import PRESET_TABLE

#: The penalty parameters of the grid (away from the defaults, so that both branches run).
PARAMS: dict[str, dict[str, float]] = {"huber": {"delta": 0.5}, "smooth_l1": {"beta": 0.5},
                                       "expectile": {"tau": 0.8}, "pseudo_huber": {"delta": 0.5},
                                       "quantile": {"tau": 0.8}}
OPTIONS = ("plain", "weight", "mask", "weight+mask")
#: Sizes at which the grid runs (every option and penalty): the per-call overhead and the
#: large-input throughput.
GRID_SIZES = (10**2, 10**7)
#: One preset per penalty (the finalizer-free rows of the table).
ROWS = [r for r in PRESET_TABLE if r.spec.finalize == "identity"]


def hand_rho(penalty: str, xp: Any, softplus: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """rho(r), hand-written as a user would (elementwise, the framework's own ops)."""
    p = PARAMS.get(penalty, {})
    if penalty == "square":
        return lambda r: r * r
    if penalty == "abs":
        return xp.abs
    if penalty == "huber":
        d = p["delta"]
        return lambda r: xp.where(xp.abs(r) <= d, 0.5 * r * r, d * (xp.abs(r) - 0.5 * d))
    if penalty == "smooth_l1":
        b = p["beta"]
        return lambda r: xp.where(xp.abs(r) < b, 0.5 * r * r / b, xp.abs(r) - 0.5 * b)
    if penalty == "log_cosh":  # |r| + softplus(-2|r|) - log 2: stable for large |r|
        return lambda r: xp.abs(r) + softplus(-2.0 * xp.abs(r)) - math.log(2.0)
    if penalty == "expectile":
        tau = p["tau"]
        return lambda r: xp.where(r > 0, 1.0 - tau, tau) * r * r
    if penalty == "pseudo_huber":
        d = p["delta"]
        return lambda r: d * d * (xp.sqrt(1.0 + (r / d) ** 2) - 1.0)
    if penalty == "quantile":
        tau = p["tau"]
        return lambda r: xp.where(r > 0, (1.0 - tau) * r, -tau * r)
    raise KeyError(penalty)


def hand_loss(penalty: str, option: str, xp: Any, softplus: Callable[[Any], Any]) -> Callable[..., Any]:
    """The best hand-written mean with ``option``: f(p, t, w, m) (the target is NaN under the
    mask; rho(0) = 0 for every penalty, so the select on the residual is the only one)."""
    rho = hand_rho(penalty, xp, softplus)
    if option == "plain":
        return lambda p, t, w, m: rho(p - t).mean()
    if option == "weight":
        return lambda p, t, w, m: (w * rho(p - t)).sum() / w.sum()
    if option == "mask":
        return lambda p, t, w, m: rho(xp.where(m, p - t, 0.0)).sum() / m.sum()
    if option == "weight+mask":
        def both(p: Any, t: Any, w: Any, m: Any) -> Any:
            wm = xp.where(m, w, 0.0)
            return (wm * rho(xp.where(m, p - t, 0.0))).sum() / wm.sum()
        return both
    raise KeyError(option)


def option_kwargs(option: str, w: Any, m: Any) -> dict[str, Any]:
    """The adapter's keyword arguments for ``option``."""
    return {"plain": {}, "weight": {"weight": w}, "mask": {"mask": m},
            "weight+mask": {"weight": w, "mask": m}}[option]


def case_name(row_name: str, option: str) -> str:
    return f"grid-{row_name}-{option}"
