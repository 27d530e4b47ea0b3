"""The case grid: every preset x reduction x weighting option x per-sample stage, on a few
shapes, plus the named edge cases that break naive code."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from mse_adapters import LossSpec, preset

from .harness import Case

#: Presets with parameters chosen so that every branch of every penalty is exercised.
PRESET_SPECS: dict[str, LossSpec] = {
    "mse": preset("mse"),
    "mae": preset("mae"),
    "rmse": preset("rmse"),
    "huber": preset("huber", delta=0.7),
    "smooth_l1": preset("smooth_l1", beta=0.5),
    "smooth_l1_beta0": preset("smooth_l1", beta=0.0),
    "log_cosh": preset("log_cosh"),
    "expectile": preset("expectile", tau=0.8),
    "nmse": preset("nmse"),
    "r2": preset("r2"),
}

REDUCTIONS = ("none", "sum", "mean", "sum_over_batch_size", "per_sample", "per_output")

OPTIONS = (
    "plain",
    "weight_elem",
    "weight_output",
    "sample_weight",
    "sample_weight_col",
    "mask",
    "missing",
    "combined",
    "zero_weights",
    "all_masked",
)


def _base(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.normal(0.0, 2.0, shape)
    pred = target + rng.normal(0.0, 1.5, shape)
    flat_p, flat_t = pred.reshape(-1), target.reshape(-1)
    if flat_p.size:
        flat_p[0] = flat_t[0]  # one exact zero residual: the |x| at 0 convention
    return pred, target


def make_case(name: str, spec: LossSpec, option: str, shape: tuple[int, ...], seed: int = 0) -> Case:
    rng = np.random.default_rng(seed + 1)
    pred, target = _base(shape, seed)
    kw: dict[str, object] = {}
    lead = shape[:1]
    if option == "weight_elem":
        kw["weight"] = rng.uniform(0.5, 2.0, shape)
    elif option == "weight_output":
        kw["weight"] = rng.uniform(0.5, 2.0, shape[-1:])
    elif option == "sample_weight":
        kw["sample_weight"] = rng.uniform(0.5, 3.0, lead)
    elif option == "sample_weight_col":
        kw["sample_weight"] = rng.uniform(0.5, 3.0, lead + (1,) * (len(shape) - 1))
    elif option in ("mask", "combined"):
        mask = rng.uniform(size=shape) > 0.3
        target = np.where(mask, target, np.nan)  # NaN under the mask must not leak
        kw["mask"] = mask
        if option == "combined":
            kw["weight"] = rng.uniform(0.5, 2.0, shape[-1:])
            kw["sample_weight"] = rng.uniform(0.5, 3.0, lead)
            target = np.where(rng.uniform(size=shape) > 0.8, np.nan, target)
            spec = spec.replace(missing="nan")
    elif option == "missing":
        target = np.where(rng.uniform(size=shape) > 0.7, np.nan, target)
        spec = spec.replace(missing="nan")
    elif option == "zero_weights":
        kw["weight"] = np.zeros(shape)
    elif option == "all_masked":
        kw["mask"] = np.zeros(shape, dtype=bool)
        target = np.full(shape, np.nan)
    wrt = ("pred", "target") + tuple(k for k in ("weight", "sample_weight") if k in kw)
    return Case(name=name, spec=spec, pred=pred, target=target, wrt=wrt, **kw)  # type: ignore[arg-type]


def _spec_for(base: LossSpec, reduction: str, per_sample: bool) -> LossSpec | None:
    try:
        spec = base.replace(reduction=reduction, per_sample=per_sample)
    except ValueError:
        return None  # e.g. RMSE with reduction="sum": not a valid combination
    return spec


SHAPES = {"2d": (5, 3), "1d": (6,), "3d": (2, 3, 4), "empty": (0, 3)}


def grid() -> Iterator[Case]:
    """Every preset x reduction x option x per-sample stage on (5, 3); the plain, masked and
    combined options on the other shapes."""
    for (pname, base), red, per_sample in itertools.product(
        PRESET_SPECS.items(), REDUCTIONS, (False, True)
    ):
        spec = _spec_for(base, red, per_sample)
        if spec is None:
            continue
        for option in OPTIONS:
            for sname, shape in SHAPES.items():
                if sname != "2d" and option not in ("plain", "combined", "mask"):
                    continue
                if option == "combined" and len(shape) == 1 and per_sample:
                    continue  # a 1-D prediction is one sample: no leading axis to weight
                if sname == "empty" and option != "plain":
                    continue
                name = f"{pname}-{red}{'-ps' if per_sample else ''}-{option}-{sname}"
                try:
                    case = make_case(name, spec, option, shape)
                except ValueError:
                    continue
                yield case


def multioutput_cases() -> Iterator[Case]:
    """RMSE, NMSE, R^2 and MSE with every multioutput choice scikit-learn offers."""
    for pname in ("mse", "mae", "rmse", "nmse", "r2"):
        for mo in ("raw_values", "uniform_average", "variance_weighted", (0.2, 0.3, 0.5)):
            try:
                spec = PRESET_SPECS[pname].replace(multioutput=mo, reduction="mean")
            except ValueError:
                continue
            for option in ("plain", "sample_weight", "missing", "combined"):
                yield make_case(f"{pname}-mo={mo}-{option}", spec, option, (5, 3))


def edge_cases() -> Iterator[Case]:
    """The named cases that break naive code."""
    t = np.array([[1.0, np.nan], [2.0, 3.0]])
    p = np.array([[1.5, 0.0], [2.0, 1.0]])
    m = ~np.isnan(t)
    for pname in ("mse", "mae", "huber", "rmse", "log_cosh"):
        yield Case(f"nan-target-under-mask-{pname}", PRESET_SPECS[pname], p, t, mask=m)
        yield Case(f"nan-target-missing-{pname}", PRESET_SPECS[pname].replace(missing="nan"), p, t)
    z = np.zeros(4)
    for pname in ("mae", "huber", "smooth_l1", "smooth_l1_beta0", "rmse", "expectile"):
        yield Case(f"zero-residual-{pname}", PRESET_SPECS[pname], z + 1.0, z + 1.0)
    yield Case("rmse-perfect-fit", preset("rmse"), np.arange(6.0).reshape(2, 3), np.arange(6.0).reshape(2, 3))
    yield Case("rmse-perfect-fit-raw", preset("rmse", multioutput="raw_values"),
               np.arange(6.0).reshape(2, 3), np.arange(6.0).reshape(2, 3))
    yield Case("all-weights-zero", preset("mse"), p.copy(), np.nan_to_num(t), weight=np.zeros((2, 2)),
               wrt=("pred", "target", "weight"))
    yield Case("everything-masked", preset("mse"), p, t, mask=np.zeros((2, 2), bool))
    yield Case("empty-batch", preset("mse"), np.zeros((0, 3)), np.zeros((0, 3)))
    yield Case("empty-batch-sample-weight", preset("mse"), np.zeros((0, 3)), np.zeros((0, 3)),
               sample_weight=np.zeros((0,)))
    yield Case("r2-constant-target-imperfect", preset("r2"), np.array([1.0, 2.0, 3.0]), np.ones(3))
    yield Case("r2-constant-target-perfect", preset("r2"), np.ones(3), np.ones(3))
    yield Case("huber-at-delta", preset("huber", delta=0.5), np.array([0.5, -0.5, 0.25]), np.zeros(3))
    yield Case("seed-2d", preset("mse"), np.array([[2.5, 0.0], [2.0, 8.0]]),
               np.array([[3.0, -0.5], [2.0, 7.0]]))


def all_cases() -> list[Case]:
    return [*grid(), *multioutput_cases(), *edge_cases()]
