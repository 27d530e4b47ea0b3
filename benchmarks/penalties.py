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

#: The penalty parameters of the grid by preset (away from the defaults, so that both
#: branches run); a preset not named here takes its own.
PARAMS: dict[str, dict[str, float]] = {"huber": {"delta": 0.5}, "smooth_l1": {"beta": 0.5},
                                       "expectile": {"tau": 0.8}, "pseudo_huber": {"delta": 0.5},
                                       "quantile": {"tau": 0.8}, "barron": {"alpha": 0.5, "scale": 0.5}}


def params(row: Any) -> dict[str, float]:
    """The parameters a preset row's binding is called with in the grid."""
    return dict(PARAMS.get(row.name, {}))
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


def hand_rho(row: Any, xp: Any, softplus: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """rho(r) of a preset row, hand-written as a user would (elementwise, the framework's own
    ops; Barron's as the paper writes it, each named case by its closed form)."""
    penalty = row.spec.penalty
    p = {**{k: getattr(row.spec, k) for k in ("delta", "beta", "tau", "alpha", "scale")}, **params(row)}
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
    if penalty == "barron":
        return _barron(p["alpha"], p["scale"], xp)
    raise KeyError(penalty)


def _barron(a: float, c: float, xp: Any) -> Callable[[Any], Any]:
    c2 = c * c
    if a == 0.0:  # Cauchy
        return lambda r: c2 * xp.log1p(0.5 * (r / c) ** 2)
    if a == -math.inf:  # Welsch
        return lambda r: c2 * (1.0 - xp.exp(-0.5 * (r / c) ** 2))
    if a == -2.0:  # Geman-McClure
        return lambda r: c2 * 2.0 * (r / c) ** 2 / ((r / c) ** 2 + 4.0)
    b = abs(a - 2.0)
    return lambda r: c2 * (b / a) * (((r / c) ** 2 / b + 1.0) ** (a / 2.0) - 1.0)


def hand_loss(row: Any, option: str, xp: Any, softplus: Callable[[Any], Any]) -> Callable[..., Any]:
    """The best hand-written mean with ``option``: f(p, t, w, m), ``t`` the target of the
    option (:func:`option_target`: NaN under the mask, or where missing; rho(0) = 0 for every
    penalty, so the select on the residual is the only one). It checks nothing."""
    rho = hand_rho(row, xp, softplus)
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
