"""The loss specification: small, immutable, hashable, JSON-safe data.

A :class:`LossSpec` is one choice at each stage of the pipeline (docs/design.md)::

    residual -> penalty -> weighting -> [per-sample stage] -> reduction -> finalize

Every backend compiles the same spec into its native form. The spec holds no arrays, so it
can be a static argument under ``jax.jit``, a Keras config and a torch module attribute.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from . import _messages as msg
from ._penalties import PENALTY_TABLE

__all__ = [
    "PENALTIES",
    "REDUCTIONS",
    "FINALIZERS",
    "MULTIOUTPUT",
    "MISSING",
    "TRANSFORMS",
    "LossSpec",
]

#: Elementwise penalties rho(r) of the residual r = pred - target (the penalty table's rows),
#: and the Gaussian likelihood (which also reads a variance or a covariance).
PENALTIES = (*PENALTY_TABLE, "gaussian_nll")
#: Reductions over units (elements, or samples with the per-sample stage on).
REDUCTIONS = ("none", "sum", "mean", "sum_over_batch_size", "per_sample", "per_output")
#: Finalizers applied to the reduced value.
FINALIZERS = ("identity", "sqrt", "nmse", "r2")
#: How per-output values are combined by ``reduction="mean"``.
MULTIOUTPUT = ("pooled", "raw_values", "uniform_average", "variance_weighted")
#: Policies for missing targets.
MISSING = (None, "nan")
#: The optional transform stage along the last axis (docs/design.md, "Whitening"): whitening
#: by a covariance (or its Cholesky factor ``scale_tril``), or the quadratic form of a
#: ``precision`` matrix.
TRANSFORMS = (None, "whiten", "precision")

#: The parameter fields of each penalty (shown by ``repr`` only for that penalty).
_PARAMS_OF: dict[str, tuple[str, ...]] = {
    **{name: tuple(p.name for p in row.params) for name, row in PENALTY_TABLE.items()},
    "gaussian_nll": ("full", "eps"),
}
_PARAM_FIELDS = frozenset(f for fs in _PARAMS_OF.values() for f in fs) | {"force_finite"}
#: Each penalty parameter's range, and the penalties that read it (for the messages).
_RANGES = {p.name: p for row in PENALTY_TABLE.values() for p in row.params}
_USERS = {n: tuple(k for k, row in PENALTY_TABLE.items() if n in (p.name for p in row.params)) for n in _RANGES}


def _choices(values: tuple[Any, ...]) -> str:
    return ", ".join(repr(v) for v in values)


def _check_choice(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; allowed values: {_choices(allowed)}")


def _check_number(name: str, value: Any, infinite: bool = False) -> float:
    """``value`` as a float: a real number, finite unless ``infinite`` (then its range decides)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not (infinite or value - value == 0.0):  # NaN or inf (arithmetic: torch.compile traces it)
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def param_range(name: str) -> str:
    """The start of the error message of a penalty parameter out of its range."""
    p = _RANGES[name]
    return msg.param_range(name, p.low, p.low_open, p.high, ", ".join(_USERS[name]))


def in_range(name: str, value: float) -> bool:
    return _RANGES[name].admits(value)


def _check_param(name: str, value: Any) -> float:
    """A penalty parameter: a real number inside its range (the penalty table's; infinite
    only where the range admits it: Barron's alpha = -inf)."""
    value = _check_number(name, value, infinite=_RANGES[name].infinite)
    if not in_range(name, value):
        raise ValueError(f"{param_range(name)}, got {value!r}")
    return value


@dataclass(frozen=True)
class LossSpec:
    """One squared-error-family loss, as pure data.

    Parameters
    ----------
    penalty:
        Elementwise penalty of the residual ``r = pred - target``: ``"square"`` (r**2),
        ``"abs"`` (|r|, gradient 0 at r = 0), ``"huber"`` (0.5 r**2 for |r| <= delta, else
        delta (|r| - delta / 2), as ``torch.nn.HuberLoss``), ``"smooth_l1"`` (0.5 r**2 / beta
        for |r| < beta, else |r| - beta / 2; beta = 0 is |r|), ``"log_cosh"``, or
        ``"expectile"`` (asymmetric square: ``tau * r**2`` where the prediction is below the
        target, ``(1 - tau) * r**2`` where it is above; its minimiser is the tau-expectile
        of the target, and tau = 0.5 gives ``0.5 * r**2``), ``"pseudo_huber"``
        (``delta**2 (sqrt(1 + (r/delta)**2) - 1)``, smooth everywhere), ``"quantile"``
        (the pinball loss: ``tau |r|`` below the target, ``(1 - tau) |r|`` above) or
        ``"barron"`` (Barron's general robust loss: ``scale**2 f(r / scale, alpha)``, one
        shape parameter through L2 (alpha = 2), pseudo-Huber (1), Cauchy (0),
        Geman-McClure (-2) and Welsch (-inf)).
    delta, beta, tau, alpha, scale:
        Parameters of ``huber`` and ``pseudo_huber`` (> 0), ``smooth_l1`` (>= 0),
        ``expectile`` and ``quantile`` (in (0, 1)), ``barron`` (``alpha`` any real number or
        ``-inf``, ``scale`` > 0).
    reduction:
        ``"none"``, ``"sum"``, ``"mean"`` (weighted mean: sum(w m l) / sum(w m)),
        ``"sum_over_batch_size"`` (sum(w m l) / sum(m), Keras' default), ``"per_sample"``
        (weighted mean over all non-batch axes, shape ``(B,)``) or ``"per_output"`` (weighted
        mean over all axes but the last, shape ``(d,)``).
    per_sample:
        Keras' convention: average each sample over its last axis first, so that a unit is a
        sample: ``l_s = sum_j(w_sj m_sj l_sj) / sum_j(m_sj)``.
    finalize:
        ``"identity"``, ``"sqrt"`` (RMSE), ``"nmse"`` (weighted SSE / weighted SST, per output)
        or ``"r2"`` (1 - NMSE).
    multioutput:
        With ``reduction="mean"``: ``"pooled"`` (one weighted mean over every element, then
        the finalizer), or scikit-learn's ``"raw_values"``, ``"uniform_average"``,
        ``"variance_weighted"`` (NMSE and R^2 only) or a tuple of per-output weights (the
        finalizer is applied per output, then the outputs are combined).
    missing:
        ``None`` or ``"nan"``: NaN targets are treated as masked.
    transform:
        ``None``, ``"whiten"`` (the residual is whitened along the last axis, ``z = L^-1 r``
        with ``Sigma = L L^T``, before the penalty: generalised least squares; the matrix,
        ``covariance`` or ``scale_tril``, is an argument of the compiled loss) or
        ``"precision"`` (the quadratic form ``r^T P r`` of a PSD ``precision`` / cost
        matrix, with ``penalty="square"`` only). The identity matrix gives the plain loss.
    unit_norm:
        lambda >= 0 of the additive unit-norm penalty ``lambda * (|pred|**2 - 1)**2`` on the
        last axis, added to the loss of every unit of the sample (then weighted, masked and
        reduced with it: with ``reduction="mean"`` the result is the mean loss plus lambda
        times the mean penalty).

    force_finite:
        ``nmse`` and ``r2`` only, scikit-learn's meaning: a constant target scores R^2 = 1 if
        predicted exactly, else 0 (``True``, the default); ``False`` gives the raw ratio
        (``-inf`` or ``nan``).

    Examples
    --------
    >>> LossSpec(penalty="huber", delta=0.5)
    LossSpec(penalty='huber', delta=0.5)
    >>> LossSpec.from_dict(LossSpec(reduction="sum").to_dict()) == LossSpec(reduction="sum")
    True
    """

    penalty: str = "square"
    delta: float = 1.0
    beta: float = 1.0
    tau: float = 0.5
    alpha: float = 1.0
    scale: float = 1.0
    reduction: str = "mean"
    per_sample: bool = False
    finalize: str = "identity"
    multioutput: str | tuple[float, ...] = "pooled"
    missing: str | None = None
    full: bool = False
    eps: float = 1e-6
    transform: str | None = None
    unit_norm: float = 0.0
    force_finite: bool = True

    def __post_init__(self) -> None:
        _check_choice("penalty", self.penalty, PENALTIES)
        for name in _RANGES:
            object.__setattr__(self, name, _check_param(name, getattr(self, name)))
        _check_choice("reduction", self.reduction, REDUCTIONS)
        if not isinstance(self.per_sample, bool):
            raise ValueError(f"per_sample must be a bool, got {self.per_sample!r}")
        _check_choice("finalize", self.finalize, FINALIZERS)
        _check_choice("missing", self.missing, MISSING)
        if not isinstance(self.force_finite, bool):
            raise ValueError(f"force_finite must be a bool (nmse, r2), got {self.force_finite!r}")
        if not isinstance(self.full, bool):
            raise ValueError(f"full must be a bool (gaussian_nll), got {self.full!r}")
        object.__setattr__(self, "eps", _check_number("eps", self.eps))
        if self.eps <= 0:
            raise ValueError(f"eps must be > 0 (gaussian_nll variance clamp), got {self.eps!r}")
        _check_choice("transform", self.transform, TRANSFORMS)
        object.__setattr__(self, "unit_norm", _check_number("unit_norm", self.unit_norm))
        if self.unit_norm < 0:
            raise ValueError(f"unit_norm must be >= 0 (the penalty's lambda), got {self.unit_norm!r}")
        mo = self.multioutput
        if isinstance(mo, str):
            _check_choice("multioutput", mo, MULTIOUTPUT)
        else:
            try:
                mo = tuple(_check_number("multioutput weight", v) for v in mo)
            except TypeError:
                raise ValueError(
                    f"multioutput must be one of {_choices(MULTIOUTPUT)} or a sequence of "
                    f"per-output weights, got {mo!r}"
                ) from None
            if not mo or any(v < 0 for v in mo) or sum(mo) <= 0:
                raise ValueError(
                    "multioutput weights must be non-negative with a positive sum, got "
                    f"{mo!r}"
                )
            object.__setattr__(self, "multioutput", mo)
        self._check_combination()

    def _check_combination(self) -> None:
        f, r = self.finalize, self.reduction
        if f in ("nmse", "r2"):
            if self.penalty != "square":
                raise ValueError(f"finalize={f!r} needs penalty='square', got penalty={self.penalty!r}")
            if r not in ("mean", "per_output"):
                raise ValueError(
                    f"finalize={f!r} needs reduction 'mean' or 'per_output', got reduction={r!r}"
                )
            if r == "per_output":  # per-output values are scikit-learn's raw_values
                object.__setattr__(self, "multioutput", "raw_values")
            elif self.multioutput == "pooled":
                raise ValueError(
                    f"finalize={f!r} takes multioutput 'raw_values', 'uniform_average', "
                    "'variance_weighted' or a weight tuple, not 'pooled'"
                )
        elif f == "sqrt" and r not in ("mean", "sum_over_batch_size", "per_sample", "per_output"):
            raise ValueError(
                "finalize='sqrt' needs a mean-type reduction ('mean', 'sum_over_batch_size', "
                f"'per_sample', 'per_output'), got reduction={r!r}"
            )
        mo = self.multioutput
        if mo == "variance_weighted" and f not in ("nmse", "r2"):
            raise ValueError(
                "multioutput='variance_weighted' is defined for finalize 'nmse' and 'r2' only, "
                f"got finalize={f!r}"
            )
        if mo != "pooled":
            if r not in ("mean", "per_output") or (r == "per_output" and mo != "raw_values"):
                raise ValueError(
                    f"multioutput={mo!r} applies to reduction='mean' only, got reduction={r!r}"
                )
        if self.per_sample and (mo != "pooled" or r == "per_output"):
            what = "reduction='per_output'" if r == "per_output" else f"multioutput={mo!r}"
            raise ValueError(
                f"per_sample=True averages the outputs away: it cannot be combined with {what} "
                "(per_sample=False keeps the outputs)"
            )
        self._check_structured()

    def _check_structured(self) -> None:
        """The transform stage, the Gaussian likelihoods and the unit-norm penalty."""
        t, p, f = self.transform, self.penalty, self.finalize
        if t == "precision" and p != "square":
            raise ValueError(
                "transform='precision' is the quadratic form r^T P r and goes with "
                f"penalty='square' only, got penalty={p!r} (whiten with a covariance or "
                "scale_tril to use another penalty)"
            )
        if t is not None and f in ("nmse", "r2"):
            raise ValueError(
                f"finalize={f!r} divides by the variance of the raw targets and cannot be "
                f"combined with transform={t!r}"
            )
        if p == "gaussian_nll" and f != "identity":
            raise ValueError(f"penalty='gaussian_nll' needs finalize='identity', got finalize={f!r}")
        if self.event_units:
            if self.per_sample:
                raise ValueError(
                    "the multivariate Gaussian NLL (penalty='gaussian_nll' with "
                    "transform='whiten') is per sample already (the last axis is the event, "
                    "summed): per_sample must be False"
                )
            if self.per_output_stats:
                raise ValueError(
                    "the multivariate Gaussian NLL (penalty='gaussian_nll' with "
                    "transform='whiten') has one value per sample, no per-output values: "
                    f"reduction={self.reduction!r} with multioutput={self.multioutput!r} is not "
                    "defined for it"
                )
        if self.unit_norm and f != "identity":
            raise ValueError(
                f"unit_norm is an additive penalty and needs finalize='identity', got finalize={f!r}"
            )

    # -- derived, read-only properties ---------------------------------------------------
    @property
    def per_output_stats(self) -> bool:
        """Whether the reduction works output by output (then combines the outputs)."""
        return self.reduction == "per_output" or (
            self.reduction == "mean" and self.multioutput != "pooled"
        )

    @property
    def event_units(self) -> bool:
        """Whether a unit is a whole sample, the last axis being one event (the multivariate
        Gaussian NLL: ``penalty="gaussian_nll"`` with ``transform="whiten"``)."""
        return self.penalty == "gaussian_nll" and self.transform == "whiten"

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of every field (tuples become lists; an infinite parameter, Barron's
        alpha = -inf, the string ``"-inf"``, which :meth:`from_dict` reads back)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name.startswith("_"):
                continue
            v = getattr(self, f.name)
            if isinstance(v, float) and v in (math.inf, -math.inf):
                v = repr(v)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LossSpec:
        """Rebuild a spec from :meth:`to_dict` output; unknown keys are a ValueError."""
        known = {f.name for f in fields(cls) if not f.name.startswith("_")}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown LossSpec field(s) {unknown}; known fields: {sorted(known)}")
        kw = dict(data)
        for name in _RANGES:  # an infinite parameter, written as a string by to_dict
            if kw.get(name) in ("inf", "-inf"):
                kw[name] = float(kw[name])
        if isinstance(kw.get("multioutput"), list):
            kw["multioutput"] = tuple(kw["multioutput"])
        return cls(**kw)

    def replace(self, **changes: Any) -> LossSpec:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            if f.name.startswith("_"):
                continue
            v = getattr(self, f.name)
            if v == f.default and f.name != "penalty":
                continue
            if f.name in _PARAM_FIELDS and f.name not in _PARAMS_OF.get(self.penalty, ()) and not (
                    f.name == "force_finite" and self.finalize in ("nmse", "r2")):
                continue
            parts.append(f"{f.name}={v!r}")
        return f"LossSpec({', '.join(parts)})"
