"""The case grid: every preset x reduction x weighting option x per-sample stage, on a few
shapes, plus the named edge cases that break naive code."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Iterator

import numpy as np

from mse_adapters import LossSpec, preset
from mse_adapters._presets import PRESET_TABLE, row

from .harness import Case

#: Per penalty, parameters away from the defaults and small enough that the grid's residuals
#: fall on both sides of every kink (|r| < delta and > delta, r < 0 and > 0).
BRANCH_PARAMS: dict[str, dict[str, float]] = {
    "huber": {"delta": 0.7}, "smooth_l1": {"beta": 0.5}, "expectile": {"tau": 0.8},
    "pseudo_huber": {"delta": 0.6}, "quantile": {"tau": 0.3},
}


def branch_params(name: str) -> dict[str, float]:
    """The BRANCH_PARAMS of the preset ``name``'s penalty (empty for one without parameters)."""
    return dict(BRANCH_PARAMS.get(row(name).spec.penalty, {}))


#: Every row of the preset table (a new row joins the grid without an edit), plus Smooth L1's
#: beta = 0 (the L1 limit).
PRESET_SPECS: dict[str, LossSpec] = {
    **{r.name: preset(r.name, **branch_params(r.name)) for r in PRESET_TABLE},
    "smooth_l1_beta0": preset("smooth_l1", beta=0.0),
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
    for pname in PRESET_SPECS:
        yield Case(f"nan-target-under-mask-{pname}", PRESET_SPECS[pname], p, t, mask=m)
        yield Case(f"nan-target-missing-{pname}", PRESET_SPECS[pname].replace(missing="nan"), p, t)
    z = np.zeros(4)
    for pname in PRESET_SPECS:  # every non-smooth point at r = 0 (|r|, sqrt, kinks)
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


# ---------------------------------------------------------------------------------------
# The transform stage, the Gaussian likelihoods and the unit-norm penalty (docs/design.md, "Whitening")
# ---------------------------------------------------------------------------------------


def spd(d: int, cond: float, rng: np.random.Generator) -> np.ndarray:
    """A random symmetric positive definite matrix with condition number ``cond``."""
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q * np.logspace(0.0, np.log10(cond), d)) @ q.T


#: The presets that take a matrix (the table's ``matrices`` column).
WHITEN_PENALTIES = tuple(r.name for r in PRESET_TABLE if r.matrices)
#: Options for whitened cases: masks and missing targets drop whole samples (a partly
#: observed sample is an error there, tested in tests/numpy/test_whitening.py).
WHITEN_OPTIONS = ("plain", "weight_elem", "weight_output", "sample_weight", "mask_rows",
                  "missing_rows", "combined_rows", "zero_weights")


def _structured_case(name: str, spec: LossSpec, option: str, shape: tuple[int, ...], seed: int,
                     **structured: object) -> Case:
    rng = np.random.default_rng(seed + 7)
    if option in ("mask_rows", "missing_rows", "combined_rows"):
        case = make_case(name, spec, "plain", shape, seed)
        rows = rng.uniform(size=shape[:-1] + (1,)) > 0.3
        rows.reshape(-1)[0] = True
        target = np.where(rows, case.target, np.nan)
        kw: dict[str, object] = {}
        if option == "missing_rows":
            spec = spec.replace(missing="nan")
        else:
            kw["mask"] = np.broadcast_to(rows, shape).copy()
        if option == "combined_rows":
            kw["sample_weight"] = rng.uniform(0.5, 3.0, shape[:1])
            kw["weight"] = rng.uniform(0.5, 2.0, shape[:-1] + (1,)) if spec.event_units or \
                spec.transform == "precision" else rng.uniform(0.5, 2.0, shape[-1:])
            gone = rng.uniform(size=shape[:-1] + (1,)) > 0.7
            target = np.where(gone, np.nan, target)
            spec = spec.replace(missing="nan")
        wrt = ("pred", "target") + tuple(k for k in ("weight", "sample_weight") if k in kw)
        case = dataclasses.replace(case, spec=spec, target=target, wrt=wrt, **kw)  # type: ignore[arg-type]
    else:
        case = make_case(name, spec, option, shape, seed)
    grads = tuple(k for k in ("scale_tril", "var") if structured.pop(f"{k}_grad", False))
    return dataclasses.replace(case, wrt=case.wrt + grads, **structured)  # type: ignore[arg-type]


def structured_cases() -> Iterator[Case]:
    """Whitening (covariance, batched covariance, trainable scale_tril) with every penalty,
    reduction and weighting option; precision cost matrices (singular ones, partial masks);
    the heteroscedastic and multivariate Gaussian NLLs; the unit-norm penalty."""
    rng = np.random.default_rng(42)
    d = 3
    cov = spd(d, 1e2, rng)
    cov_b = np.stack([spd(d, 10.0 ** (1 + i % 3), rng) for i in range(5)])  # one per sample
    tril = np.linalg.cholesky(spd(d, 30.0, rng))
    prec = spd(d, 10.0, rng)
    a = rng.normal(size=(d, 2))
    prec_singular = a @ a.T  # rank 2: PSD, singular (an LQR R with a free direction)

    # 1. GLS: every penalty x reduction x per-sample stage x option, covariance (d, d).
    for pname in WHITEN_PENALTIES:
        for red, per_sample in itertools.product(REDUCTIONS, (False, True)):
            spec = _spec_for(PRESET_SPECS[pname].replace(transform="whiten"), red, per_sample)
            if spec is None:
                continue
            for option in WHITEN_OPTIONS:
                name = f"whiten-{pname}-{red}{'-ps' if per_sample else ''}-{option}"
                yield _structured_case(name, spec, option, (5, d), 0, covariance=cov)
            # trainable scale_tril: gradients with respect to the factor
            name = f"scale_tril-{pname}-{red}{'-ps' if per_sample else ''}"
            yield _structured_case(name, spec, "sample_weight", (5, d), 1, scale_tril=tril,
                                   scale_tril_grad=True)
    for pname in ("mse", "huber"):
        spec = PRESET_SPECS[pname].replace(transform="whiten")
        for option in ("plain", "combined_rows"):
            yield _structured_case(f"whiten-batched-{pname}-{option}", spec, option, (5, d), 2, covariance=cov_b)
            yield _structured_case(f"scale_tril-batched-{pname}-{option}", spec, option, (5, d), 2,
                                   scale_tril=np.linalg.cholesky(cov_b), scale_tril_grad=True)
        yield _structured_case(f"whiten-3d-{pname}", spec.replace(reduction="per_sample"), "plain",
                               (2, 5, d), 3, covariance=cov_b)
        yield _structured_case(f"whiten-3d-shared-{pname}", spec, "mask_rows", (2, 4, d), 3, covariance=cov)
        yield _structured_case(f"whiten-1d-{pname}", spec, "plain", (d,), 4, covariance=cov)
        yield _structured_case(f"whiten-empty-{pname}", spec, "plain", (0, d), 4, covariance=cov)
        yield _structured_case(f"scale_tril-const-{pname}", spec, "plain", (5, d), 5, scale_tril=tril)

    # 2. Precision cost matrices (the quadratic form, square penalty only); masks may be
    # partial: the cost of the observed outputs.
    for pname in ("mse", "rmse"):
        for red in REDUCTIONS:
            spec = _spec_for(PRESET_SPECS[pname].replace(transform="precision"), red, False)
            if spec is None:
                continue
            for option in ("plain", "sample_weight", "sample_weight_col", "mask", "missing", "mask_rows",
                           "combined_rows", "all_masked"):
                for pn, p in (("spd", prec), ("singular", prec_singular)):
                    yield _structured_case(f"precision-{pn}-{pname}-{red}-{option}", spec, option, (5, d), 6,
                                           precision=p)
    yield _structured_case("precision-batched", PRESET_SPECS["mse"].replace(transform="precision"),
                           "mask", (5, d), 6, precision=np.stack([prec, prec_singular] * 2 + [prec]))

    # 3. Heteroscedastic Gaussian NLL (torch.nn.GaussianNLLLoss): variance shapes, the eps clamp.
    gnll = LossSpec(penalty="gaussian_nll", eps=0.05)  # large enough for half-precision gradients
    for full, red in itertools.product((False, True), REDUCTIONS):
        spec = gnll.replace(full=full, reduction=red)
        for vname, vshape in (("elem", (5, d)), ("sample", (5,)), ("col", (5, 1)), ("row", (1, d))):
            var = np.random.default_rng(9).uniform(0.2, 3.0, vshape)
            var.reshape(-1)[-1] = 0.01  # below eps: clamped, the gradient passing through
            for option in ("plain", "weight_output", "sample_weight", "mask", "missing", "combined"):
                if vname != "elem" and option not in ("plain", "mask"):
                    continue
                yield _structured_case(f"gaussian_nll-{'full-' if full else ''}{red}-{vname}-{option}", spec,
                                       option, (5, d), 8, var=var, var_grad=True)
        for ps in (True,):
            spec_ps = _spec_for(gnll.replace(full=full), red, ps)
            if spec_ps is not None:
                yield _structured_case(f"gaussian_nll-{red}-ps", spec_ps, "mask", (5, d), 8,
                                       var=np.full((5, d), 0.7), var_grad=True)

    # 4. Multivariate Gaussian NLL (-MultivariateNormal.log_prob per sample).
    mvn = LossSpec(penalty="gaussian_nll", transform="whiten")
    for full, red in itertools.product((False, True), ("none", "sum", "mean", "sum_over_batch_size",
                                                        "per_sample")):
        spec = mvn.replace(full=full, reduction=red)
        for option in ("plain", "sample_weight", "mask_rows", "missing_rows", "combined_rows"):
            yield _structured_case(f"mvn-{'full-' if full else ''}{red}-{option}", spec, option, (5, d), 10,
                                   covariance=cov)
            yield _structured_case(f"mvn-scale_tril-{'full-' if full else ''}{red}-{option}", spec, option,
                                   (5, d), 11, scale_tril=tril, scale_tril_grad=True)
        yield _structured_case(f"mvn-batched-{red}", spec, "plain", (5, d), 12,
                               scale_tril=np.linalg.cholesky(cov_b), scale_tril_grad=True)

    # 5. The unit-norm penalty, alone and with the transforms.
    for pname in ("mse", "mae", "huber", "log_cosh"):
        for red, per_sample in itertools.product(REDUCTIONS, (False, True)):
            spec = _spec_for(PRESET_SPECS[pname].replace(unit_norm=0.3), red, per_sample)
            if spec is None:
                continue
            for option in ("plain", "weight_output", "sample_weight", "mask", "combined"):
                yield _structured_case(f"unit_norm-{pname}-{red}{'-ps' if per_sample else ''}-{option}", spec,
                                       option, (5, d), 13)
    yield _structured_case("unit_norm-3d", PRESET_SPECS["mse"].replace(unit_norm=1.5), "mask", (2, 3, d), 14)
    yield _structured_case("unit_norm-whiten", PRESET_SPECS["mse"].replace(unit_norm=0.5, transform="whiten"),
                           "combined_rows", (5, d), 15, covariance=cov)
    yield _structured_case("unit_norm-mvn", mvn.replace(unit_norm=0.5, full=True), "sample_weight", (5, d), 15,
                           scale_tril=tril, scale_tril_grad=True)
    yield _structured_case("unit_norm-precision", PRESET_SPECS["mse"].replace(unit_norm=0.5, transform="precision"),
                           "mask", (5, d), 15, precision=prec_singular)


def all_cases() -> list[Case]:
    return [*grid(), *multioutput_cases(), *edge_cases(), *structured_cases()]


@functools.lru_cache(maxsize=1)
def grid_names() -> frozenset[str]:
    """The names of the grid's cases (every preset x reduction x option), for the samples."""
    return frozenset(c.name for c in (*grid(), *multioutput_cases(), *structured_cases()))
