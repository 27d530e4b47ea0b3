"""The penalty grid shared by the torch and JAX benchmarks: every penalty of the table with
no option, a weight, a mask, both and missing targets (``missing="nan"``), against the
framework's built-in where it has one and the best hand-written equivalent with the same
options (no framework imported here: the hand-written forms are written once over an array
namespace, ``torch`` or ``jax.numpy``).

The inputs of every option: the prediction ``p``, the target ``t``, the target NaN under the
mask ``tm`` (the options with a mask: the mask must remove the NaN), the target NaN where it
is missing ``tn`` (``missing``), a weight ``w`` of the input's shape and a boolean mask ``m``.
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
OPTIONS = ("plain", "weight", "mask", "weight+mask", "missing")
#: The options of the batch-size rows (torch eager, forward + backward).
BATCH_OPTIONS = ("weight", "mask", "weight+mask", "missing")
#: The input shapes of the batch-size rows: a regression head's batch, a small and a large
#: multi-output batch.
BATCH_SHAPES = ((32, 1), (256, 10), (4096, 64))
#: The bytes per element each option reads beyond the prediction and the target.
EXTRA_BYTES = {"plain": 0, "weight": 4, "mask": 1, "weight+mask": 5, "missing": 0}
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
    """The best hand-written mean with ``option``: f(p, t, w, m), ``t`` the target of the
    option (:func:`option_target`: NaN under the mask, or where missing; rho(0) = 0 for every
    penalty, so the select on the residual is the only one). It checks nothing."""
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
    if option == "missing":
        def present(p: Any, t: Any, w: Any, m: Any) -> Any:
            v = ~xp.isnan(t)
            return rho(xp.where(v, p - t, 0.0)).sum() / v.sum()
        return present
    raise KeyError(option)


def option_kwargs(option: str, w: Any, m: Any) -> dict[str, Any]:
    """The adapter's call arguments for ``option`` (``missing``: none; the loss is built with
    :func:`option_fields`)."""
    return {"plain": {}, "weight": {"weight": w}, "mask": {"mask": m},
            "weight+mask": {"weight": w, "mask": m}, "missing": {}}[option]


def option_fields(option: str) -> dict[str, Any]:
    """The loss' own arguments for ``option`` besides the penalty parameters."""
    return {"missing": "nan"} if option == "missing" else {}


def option_target(option: str, t: Any, tm: Any, tn: Any) -> Any:
    """The target ``option`` is measured on: NaN under the mask, NaN where missing, or clean."""
    return tm if "mask" in option else tn if option == "missing" else t


def case_name(row_name: str, option: str) -> str:
    return f"grid-{row_name}-{option}"


def batch_case_name(row_name: str, option: str) -> str:
    return f"batch-{row_name}-{option}"
