"""The preset table: every named loss, once, with its name in each ecosystem.

A row is a spec with the contract's (torch/JAX) defaults, the names each adapter binds it
under, the ecosystem-specific defaults that differ from the spec's, and the built-ins it
equals. The adapters' named losses are short bindings of these rows (a real signature, a
docstring made by :func:`docstring`), and the tests read their lists of presets from here,
so a new row is tested everywhere without editing a list.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._penalties import PENALTY_TABLE
from ._spec import LossSpec, _check_choice

__all__ = ["Preset", "PRESET_TABLE", "PRESETS", "preset", "row", "docstring", "documented", "ECOSYSTEMS"]

#: The adapters, by the key a row's names use.
ECOSYSTEMS = ("numpy", "torch", "keras", "jax")


@dataclass(frozen=True)
class Preset:
    """One named loss."""

    name: str  # the NumPy and JAX function name, and the PRESETS key
    spec: LossSpec  # the contract's defaults (those of torch and JAX)
    title: str  # "Huber loss"
    torch: str  # the torch module class
    torch_fn: str  # the torch functional form
    keras: str  # the Keras loss class
    keras_name: str  # the Keras loss' default ``name``
    #: Whether the loss takes ``covariance`` / ``scale_tril`` / ``precision``.
    matrices: bool = True
    #: Defaults that differ from the spec's, per ecosystem (e.g. NumPy's RMSE averages the
    #: per-output RMSEs, as scikit-learn does).
    defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: The built-ins it equals with default arguments, per ecosystem.
    equals: Mapping[str, str] = field(default_factory=dict)
    #: A sentence that the docstring adds (a property worth knowing).
    note: str = ""
    #: The spec fields its bindings take besides its reduction, its penalty's parameters and
    #: ``missing`` (mse_adapters/_bindings.py).
    extras: tuple[str, ...] = ()
    #: Whether its bindings take a ``reduction`` (NMSE and R^2 have their own).
    reduces: bool = True
    #: Whether the adapters bind it by name (generated from this table).
    binds: bool = True
    #: Penalty parameters the row fixes (its bindings do not take them: Cauchy's alpha).
    fixed: tuple[str, ...] = ()

    @property
    def formula(self) -> str:
        """The penalty's formula (from the penalty table), or the finalizer's definition."""
        s = self.spec
        if s.finalize == "sqrt":
            return "sqrt(mean(w (y_pred - y_true)**2)), with d sqrt(m)/dm taken as 0 at a perfect fit"
        if s.finalize == "nmse":
            return "per output, sum(w r**2) / sum(w (y_true - mean_w(y_true))**2) (the centred, weighted variance)"
        if s.finalize == "r2":
            return "1 - NMSE per output (scikit-learn's r2_score)"
        if s.penalty == "gaussian_nll":
            return ("0.5 (log v + r**2 / v) with v = max(var, eps)" if s.transform is None else
                    "0.5 |L^-1 r|**2 + sum(log diag L) + d/2 log(2 pi) per sample, Sigma = L L^T")
        return PENALTY_TABLE[s.penalty].formula

    @property
    def params(self) -> tuple[str, ...]:
        """The penalty parameters the loss takes (``delta``, ``beta``, ``tau``, ...; not those
        the row fixes)."""
        pen = PENALTY_TABLE.get(self.spec.penalty)
        return () if pen is None else tuple(p.name for p in pen.params if p.name not in self.fixed)

    def names(self, ecosystem: str) -> tuple[str, ...]:
        """The public names the row is bound to in ``ecosystem``."""
        if ecosystem == "torch":
            return (self.torch, self.torch_fn)
        if ecosystem == "keras":
            return (self.keras,)
        return (self.name,)


def _row(name: str, spec: LossSpec, title: str, torch: str, torch_fn: str, keras: str, keras_name: str,
         **kw: Any) -> Preset:
    return Preset(name, spec, title, torch, torch_fn, keras, keras_name, **kw)


_MO_UNIFORM = {"numpy": {"multioutput": "uniform_average"}}

#: Every named loss, in the order the docs list them.
PRESET_TABLE: tuple[Preset, ...] = (
    _row("mse", LossSpec(penalty="square"), "Mean squared error", "MSELoss", "mse_loss", "MeanSquaredError",
         "mean_squared_error", extras=("multioutput", "unit_norm"),
         equals={"torch": "torch.nn.MSELoss", "keras": "keras.losses.MeanSquaredError",
                 "jax": "optax.squared_error(p, t).mean()", "numpy": "sklearn.metrics.mean_squared_error"}),
    _row("mae", LossSpec(penalty="abs"), "Mean absolute error", "MAELoss", "mae_loss", "MeanAbsoluteError",
         "mean_absolute_error", extras=("multioutput",),
         equals={"torch": "torch.nn.L1Loss", "keras": "keras.losses.MeanAbsoluteError",
                 "numpy": "sklearn.metrics.mean_absolute_error"}),
    _row("rmse", LossSpec(penalty="square", finalize="sqrt"), "Root mean squared error", "RMSELoss", "rmse_loss",
         "RootMeanSquaredError", "root_mean_squared_error", defaults=_MO_UNIFORM, extras=("multioutput",),
         equals={"numpy": "sklearn.metrics.root_mean_squared_error"},
         note="Pooled by default (the square root of the mean over every element, as torchmetrics and "
              "Keras' metric), in NumPy the mean of the per-output RMSEs (scikit-learn). For a metric over "
              "many batches use the streaming metric of the same name."),
    _row("huber", LossSpec(penalty="huber"), "Huber loss", "HuberLoss", "huber_loss", "Huber", "huber_loss",
         equals={"torch": "torch.nn.HuberLoss", "keras": "keras.losses.Huber",
                 "jax": "optax.huber_loss(p, t, delta).mean()"}),
    _row("smooth_l1", LossSpec(penalty="smooth_l1"), "Smooth L1 loss", "SmoothL1Loss", "smooth_l1_loss",
         "SmoothL1", "smooth_l1", equals={"torch": "torch.nn.SmoothL1Loss"}, note="Huber / beta."),
    _row("log_cosh", LossSpec(penalty="log_cosh"), "Log-cosh loss", "LogCoshLoss", "log_cosh_loss", "LogCosh",
         "log_cosh", equals={"keras": "keras.losses.LogCosh", "jax": "optax.log_cosh(p, t).mean()"},
         note="Computed as log1p(2 sinh(r/2)**2) from one expm1 (accurate near r = 0, where log(cosh(r)) "
              "cancels; |r| - log 2 for large |r|, where cosh overflows)."),
    _row("expectile", LossSpec(penalty="expectile"), "Expectile loss", "ExpectileLoss", "expectile_loss",
         "Expectile", "expectile",
         note="Its minimiser is the tau-expectile of the target; tau = 0.5 is half the squared error."),
    _row("pseudo_huber", LossSpec(penalty="pseudo_huber"), "Pseudo-Huber loss", "PseudoHuberLoss",
         "pseudo_huber_loss", "PseudoHuber", "pseudo_huber",
         note="Smooth everywhere (its second derivative is (1 + (r/delta)**2)**-1.5)."),
    _row("quantile", LossSpec(penalty="quantile"), "Quantile (pinball) loss", "QuantileLoss", "quantile_loss",
         "Quantile", "quantile", equals={"numpy": "sklearn.metrics.mean_pinball_loss(alpha=tau)"},
         note="Its minimiser is the tau-quantile of the target; the derivative is 0 at r = 0."),
    _row("barron", LossSpec(penalty="barron"), "Barron's general robust loss", "BarronLoss", "barron_loss",
         "Barron", "barron",
         note="One shape parameter moves it continuously through the L2 loss (alpha = 2, half the squared "
              "error), pseudo-Huber/Charbonnier (1), Cauchy/Lorentzian (0), Geman-McClure (-2) and Welsch "
              "(-inf); alpha and scale may be tensors, trained with the model (their derivatives are the "
              "table's)."),
    _row("cauchy", LossSpec(penalty="barron", alpha=0.0), "Cauchy (Lorentzian) loss", "CauchyLoss", "cauchy_loss",
         "Cauchy", "cauchy", fixed=("alpha",),
         note="Barron's loss with alpha = 0: scale**2 log(1 + (r / scale)**2 / 2)."),
    _row("geman_mcclure", LossSpec(penalty="barron", alpha=-2.0), "Geman-McClure loss", "GemanMcClureLoss",
         "geman_mcclure_loss", "GemanMcClure", "geman_mcclure", fixed=("alpha",),
         note="Barron's loss with alpha = -2: 2 scale**2 x**2 / (x**2 + 4), x = r / scale (bounded by 2 scale**2)."),
    _row("welsch", LossSpec(penalty="barron", alpha=-math.inf), "Welsch (Leclerc) loss", "WelschLoss", "welsch_loss",
         "Welsch", "welsch", fixed=("alpha",),
         note="Barron's loss with alpha = -inf: scale**2 (1 - exp(-(r / scale)**2 / 2)) (bounded by scale**2)."),
    _row("nmse", LossSpec(penalty="square", finalize="nmse", multioutput="uniform_average"),
         "Normalised mean squared error", "NMSELoss", "nmse_loss", "NormalizedMeanSquaredError",
         "normalized_mean_squared_error", matrices=False, note="NMSE = 1 - R^2.",
         extras=("multioutput", "force_finite"), reduces=False),
    _row("r2", LossSpec(penalty="square", finalize="r2", multioutput="uniform_average"),
         "Coefficient of determination", "R2Score", "r2_score", "R2Score", "r2_score", matrices=False,
         extras=("multioutput", "force_finite"), reduces=False,
         equals={"numpy": "sklearn.metrics.r2_score"},
         note="A score (higher is better): minimise the NMSE instead. Numerically stable in float32."),
)

_BY_NAME = {p.name: p for p in PRESET_TABLE}

#: The named losses, as specs with the contract's (torch/JAX) defaults.
PRESETS: dict[str, LossSpec] = {p.name: p.spec for p in PRESET_TABLE}


def row(name: str) -> Preset:
    """The preset table's row ``name``."""
    _check_choice("preset", name, tuple(_BY_NAME))
    return _BY_NAME[name]


def preset(name: str, **overrides: Any) -> LossSpec:
    """The preset ``name`` with some fields overridden (made once per distinct overrides: a
    functional form called in a loop builds and validates its spec once).

    >>> preset("huber", delta=2.0)
    LossSpec(penalty='huber', delta=2.0)
    """
    spec = row(name).spec
    if not overrides:
        return spec
    try:
        # (the types are part of the key: True == 1 and 1 == 1.0, but only a float is a delta)
        return _overridden(name, tuple(sorted((k, type(v), v) for k, v in overrides.items())))
    except TypeError:  # an unhashable value: validated (and refused) by the spec itself
        return spec.replace(**overrides)


@functools.lru_cache(maxsize=1024)
def _overridden(name: str, overrides: tuple[tuple[str, type, Any], ...]) -> LossSpec:
    return _BY_NAME[name].spec.replace(**{k: v for k, _, v in overrides})


F = TypeVar("F", bound=Callable[..., Any])


def documented(name: str, ecosystem: str, options: str) -> Callable[[F], F]:
    """A decorator giving a binding function its :func:`docstring` (its signature unchanged,
    for static tools too)."""

    def wrap(f: F) -> F:
        f.__doc__ = docstring(name, ecosystem, options)
        return f

    return wrap


def docstring(name: str, ecosystem: str, options: str) -> str:
    """The docstring of a preset's binding in ``ecosystem``: its title and formula, the
    built-in it equals there, its note, and ``options`` (the adapter's pointer to the options
    every loss shares)."""
    p = row(name)
    lines = [f"{p.title}: {p.formula}."]
    if ecosystem in p.equals:
        lines.append(f"With the default arguments it equals ``{p.equals[ecosystem]}``.")
    if p.note:
        lines.append(p.note)
    if p.matrices:
        lines.append("A ``covariance`` or ``scale_tril`` whitens the residual first (generalised least "
                     "squares); a ``precision`` goes with the squared error only.")
    return "\n\n".join([lines[0], " ".join(lines[1:]), options]).strip() + "\n"
