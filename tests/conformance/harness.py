"""The conformance harness: one place that knows how to run a case through a backend and
compare it with the float64 reference.

A backend is a module ``backend_<name>.py`` in this folder that defines ``BACKENDS``: a list
of objects with

- ``name: str`` (e.g. ``"torch"``, ``"keras-jax"``),
- ``dtypes: tuple[str, ...]`` (the dtype names it supports, see ``TOLERANCE``),
- ``value_and_grad(spec, case, dtype, wrt) -> (value, {name: grad})``: evaluate the spec
  compiled for that backend on the case's arrays cast to ``dtype``, and return the value and
  the gradient of ``sum(value * case.cotangent)`` with respect to each name in ``wrt``
  (``"pred"``, ``"target"``, ``"weight"``, ``"sample_weight"``, and for the structured
  cases ``"scale_tril"``, ``"var"``), all as float64 NumPy,
- ``features`` (optional): the structured options it implements (``"whiten"``,
  ``"precision"``, ``"gaussian_nll"``, ``"unit_norm"``); a case needing one it lacks is
  skipped for it,
- ``selected(case, dtype) -> bool`` (optional): False skips the case in that dtype before the
  reference is computed (a backend that runs a sample of the cases, for CI time).

A backend module whose framework is not installed sets ``BACKENDS = []``. Adding a backend
is adding one such file: it is discovered by :func:`backends`.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pathlib
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from mse_adapters import LossSpec
from mse_adapters import numpy as reference

#: The one tolerance table (docs/design.md, "Conformance"): |got - ref| <= rtol * max(|ref|) + atol, per array.
TOLERANCE: dict[str, tuple[float, float]] = {
    "float64": (1e-12, 1e-300),
    "float32": (1e-5, 1e-30),
    "float16": (1e-2, 1e-6),
    "bfloat16": (1e-2, 1e-6),
}
# Named bounds for the tests' comparisons that are not a backend against the float64 reference
# (tests/core/test_tolerances.py keeps every test's tolerance in this table):
#: one float64 formula evaluated two ways (another library's, a regenerated file, a solve): summation order only
TOLERANCE["float64-exact"] = (1e-14, 1e-300)
#: the same float32 computation run again (traced, compiled, exported, checkpointed, reloaded): op order only
TOLERANCE["float32-rerun"] = (1e-6, 1e-30)
#: a float32 loss of a few elementwise ops and one reduction against float64 on the same inputs (a few ulps)
TOLERANCE["float32-pointwise"] = (2e-6, 1e-30)
#: float64 central differences with h = 1e-6: O(h^2) truncation and eps / h rounding
TOLERANCE["finite-difference"] = (1e-6, 1e-8)
#: log cosh against its exact value, per element, in float32 (a few ulps on the Taylor and the log1p branches)
TOLERANCE["log_cosh-float32"] = (3e-6, 1e-30)
#: a covariance learned by a few hundred optimiser steps against the sample covariance it converges to
TOLERANCE["learned-covariance"] = (0.05, 0.02)

#: a data-parallel step (shards, replicas, micro-batches) against one step on the global batch, float32:
#: issue 14's target (the summation order of the shards only)
TOLERANCE["data-parallel"] = (1e-6, 1e-30)
#: a float32 R^2 or NMSE against float64 or another library's float32: float32's rtol, an atol for values near 0
TOLERANCE["float32-ratio"] = (1e-5, 1e-6)
#: issue 13's target: a float32 stream's MSE, MAE or RMSE against scikit-learn in float64, 1e-6 relative
TOLERANCE["metric-accuracy"] = (1e-6, 1e-30)
#: issue 13's target: a float32 stream's R^2 or NMSE against scikit-learn in float64, 1e-6 absolute (ABSOLUTE_ONLY)
TOLERANCE["metric-accuracy-ratio"] = (1e-6, 1e-6)

#: Barron's loss and its four derivatives per element against mpmath (tests/core/test_barron.py),
#: and autodiff of its value against them: 8 ulps of the element's error scale (|g| (1 + the
#: exponent the evaluation takes exp of) + the condition numbers' terms |v dg/dv|, see
#: tests/oracles/barron.py; measured: <= 2.1 ulps float64, <= 2.1 float32), the smallest
#: normal number under it (results that underflow)
TOLERANCE["barron-float64"] = (8 * 2.0**-52, 2.0**-1022)
TOLERANCE["barron-float32"] = (8 * 2.0**-23, 2.0**-126)

#: ``rtol_scale`` that keeps only the entry's atol (an absolute bound, e.g. on a learned covariance)
ABSOLUTE_ONLY = 0.0

ML_DTYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16}


def round_to(x: np.ndarray, dtype: str) -> np.ndarray:
    """``x`` rounded to ``dtype`` and back to float64: the values a backend really sees."""
    if dtype == "bfloat16":
        import ml_dtypes  # shipped with jax and tensorflow; only needed for bfloat16 cases

        return np.asarray(x, dtype=ml_dtypes.bfloat16).astype(np.float64)
    return np.asarray(x, dtype=ML_DTYPES[dtype]).astype(np.float64)


@dataclasses.dataclass(frozen=True)
class Case:
    """Arrays in float64 (``mask`` boolean); None where unused."""

    name: str
    spec: LossSpec
    pred: np.ndarray
    target: np.ndarray
    weight: np.ndarray | None = None
    sample_weight: np.ndarray | None = None
    mask: np.ndarray | None = None
    wrt: tuple[str, ...] = ("pred", "target")
    cotangent: np.ndarray | None = None
    # The transform stage and the Gaussian likelihoods (docs/design.md, "Whitening"). A covariance and a
    # precision are host constants, given in float64; a scale_tril (trainable when in
    # ``wrt``) and a variance are inputs in the backend's dtype.
    covariance: np.ndarray | None = None
    scale_tril: np.ndarray | None = None
    precision: np.ndarray | None = None
    var: np.ndarray | None = None

    def rounded(self, dtype: str) -> Case:
        r = {k: (None if getattr(self, k) is None else round_to(getattr(self, k), dtype))
             for k in ("pred", "target", "weight", "sample_weight", "scale_tril", "var")}
        return dataclasses.replace(self, **r)

    @property
    def needs(self) -> frozenset[str]:
        """The structured features this case exercises (empty for the plain cases)."""
        f = set()
        if self.covariance is not None or self.scale_tril is not None:
            f.add("whiten")
        if self.precision is not None:
            f.add("precision")
        if self.spec.penalty == "gaussian_nll":
            f.add("gaussian_nll")
        if self.spec.unit_norm:
            f.add("unit_norm")
        return frozenset(f)

    @property
    def cond_scale(self) -> float:
        """Error amplification of the transform (1 without): the condition number of the
        factor L (sqrt of the covariance's), or of a precision on its range."""
        if self.covariance is not None:
            return float(np.sqrt(np.max(np.linalg.cond(self.covariance))))
        if self.scale_tril is not None:
            return float(np.max(np.linalg.cond(self.scale_tril)))
        if self.precision is not None:
            ev = np.abs(np.linalg.eigvalsh(self.precision))
            return float(np.max(ev) / np.min(ev[ev > 1e-12 * np.max(ev)]))
        return 1.0

    def structured_kwargs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("covariance", "scale_tril", "precision", "var")
                if getattr(self, k) is not None}

    def __repr__(self) -> str:  # short ids in pytest output
        return self.name


class Backend(Protocol):
    name: str
    dtypes: tuple[str, ...]

    def value_and_grad(
        self, spec: LossSpec, case: Case, dtype: str, wrt: Sequence[str]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]: ...


_REF_NAMES = {"pred": "y_pred", "target": "y_true", "weight": "weight", "sample_weight": "sample_weight",
              "scale_tril": "scale_tril", "var": "var"}


def reference_value_and_grad(case: Case, wrt: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The float64 reference on the case's arrays."""
    value, grads = reference.value_and_grad(
        case.spec, case.target, case.pred, sample_weight=case.sample_weight, weight=case.weight,
        mask=case.mask, wrt=tuple(_REF_NAMES[n] for n in wrt), cotangent=case.cotangent,
        **case.structured_kwargs(),
    )
    return np.asarray(value, dtype=np.float64), {n: grads[_REF_NAMES[n]] for n in wrt}


def selected(name: str) -> bool:
    """Whether ``MSE_ADAPTERS_TEST_BACKENDS`` (unset: every backend) selects the backend
    ``name``: for the tests that run backends outside the grid (the reference alone, JAX
    against torch), which CI's per-Keras-backend reruns would only repeat."""
    wanted = [w for w in os.environ.get("MSE_ADAPTERS_TEST_BACKENDS", "").split(",") if w]
    return not wanted or any(name.startswith(w) for w in wanted)


def backends() -> list[Backend]:
    """Every installed backend, discovered from the ``backend_*.py`` files here.

    ``MSE_ADAPTERS_TEST_BACKENDS`` (comma-separated name prefixes, e.g. ``keras``) restricts
    the run: Keras' backend is fixed per process, so the Keras backends run in processes of
    their own."""
    wanted = [w for w in os.environ.get("MSE_ADAPTERS_TEST_BACKENDS", "").split(",") if w]
    found: list[Backend] = []
    for path in sorted(pathlib.Path(__file__).parent.glob("backend_*.py")):
        if wanted and not any(path.stem[len("backend_"):].startswith(w.split("-")[0]) for w in wanted):
            continue
        mod = importlib.import_module(f"{__package__}.{path.stem}")
        found.extend(b for b in mod.BACKENDS if not wanted or any(b.name.startswith(w) for w in wanted))
    return found


def _finite_scale(ref: np.ndarray) -> float:
    """The largest |ref| over its finite entries (0 when there are none)."""
    fin = ref[np.isfinite(ref)]
    return float(np.max(np.abs(fin))) if fin.size else 0.0


def max_error(got: np.ndarray, ref: np.ndarray) -> float:
    """The largest |got - ref| over the finite entries relative to the largest finite |ref|
    (absolute when that is 0); inf when the two are not non-finite in the same places with
    the same values (NaN where NaN, inf of the same sign), so that a NaN never hides an error
    (nan - nan is NaN, which compares False with every tolerance)."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        raise AssertionError(f"shape {got.shape} != reference shape {ref.shape}")
    fin = np.isfinite(ref)
    if not np.array_equal(np.isfinite(got), fin) or not np.array_equal(got[~fin], ref[~fin], equal_nan=True):
        return float("inf")
    if not fin.any():
        return 0.0
    scale = _finite_scale(ref)
    return float(np.max(np.abs(got[fin] - ref[fin]))) / (scale if scale > 0 else 1.0)


def assert_close(got: Any, ref: Any, dtype: str, what: str, floor: float = 0.0,
                 rtol_scale: float = 1.0) -> float:
    """|got - ref| <= rtol * max(max|ref|, floor) + atol elementwise. ``floor`` is the
    problem's scale for arrays that are analytically ~0 (a gradient that cancels exactly in
    theory carries rounding noise of the loss's own size). Returns the error relative to
    that scale, floored by atol / rtol (the number the summary reports). ``rtol_scale``
    widens the tolerance by the problem's condition number (whitened cases)."""
    rtol, atol = TOLERANCE[dtype]
    rtol *= rtol_scale
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    rel = max_error(got, ref)
    scale = _finite_scale(ref)
    abs_err = rel * (scale if scale > 0 else 1.0)
    bound_scale = max(scale, floor)
    # The error relative to the scale, with the tolerance's absolute floor (atol / rtol) under
    # it: a reference that underflows in the dtype (6e-72 is 0 in float32) reports ~0, not 1;
    # the number is <= rtol exactly when the check passes (rtol_scale aside).
    relative = abs_err / (bound_scale + atol / TOLERANCE[dtype][0])
    if abs_err > rtol * bound_scale + atol:
        raise AssertionError(
            f"{what}: relative error {relative:.3g} > {rtol:g} ({dtype})\n got={got!r}\n ref={ref!r}"
        )
    return relative


#: Largest disagreement seen per (backend, dtype), for the session summary.
WORST: dict[tuple[str, str], float] = {}
COUNTS: dict[str, int] = {}


def runs(backend: Backend, case: Case, dtype: str) -> bool:
    """Whether ``backend`` runs ``case`` in ``dtype``: it implements the case's structured
    features and, for a backend that samples the grid (``selected``, CI time), picks it.
    Parametrizations filter with this at collection, so that no collected test is skipped."""
    if case.needs - frozenset(getattr(backend, "features", ())):
        return False
    selected = getattr(backend, "selected", None)
    return selected is None or bool(selected(case, dtype))


def check(backend: Backend, case: Case, dtype: str) -> None:
    """Run ``case`` through ``backend`` in ``dtype`` and compare value and gradients with
    the float64 reference evaluated on the same (rounded) inputs."""
    if not runs(backend, case, dtype):
        import pytest

        pytest.skip(f"{backend.name} does not run {case.name} in {dtype} (collect with harness.runs)")
    rc = case.rounded(dtype)
    wrt = tuple(n for n in case.wrt if getattr(rc, n) is not None)
    if rc.cotangent is None:
        shape = np.shape(reference.loss(rc.spec, rc.target, rc.pred, sample_weight=rc.sample_weight,
                                        weight=rc.weight, mask=rc.mask, **rc.structured_kwargs()))
        if shape:  # a non-scalar loss: a non-uniform cotangent tests every entry's gradient
            ct = 1.0 + 0.25 * np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) % 3
            rc = dataclasses.replace(rc, cotangent=ct)
    ref_v, ref_g = reference_value_and_grad(rc, wrt)
    # Every case is one the contract defines: a finite loss and finite gradients (a NaN target
    # under a mask, all weights zero, an empty batch...). A non-finite reference is a bug of
    # the shared pipeline, which the reference and every backend would otherwise share.
    for what, arr in (("value", ref_v), *((f"d/d{n}", ref_g[n]) for n in wrt)):
        assert np.all(np.isfinite(arr)), f"reference {case.name} {what} is not finite: {arr!r}"
    got_v, got_g = backend.value_and_grad(case.spec, rc, dtype, wrt)
    cs = rc.cond_scale
    errs = [assert_close(got_v, ref_v, dtype, f"{backend.name} {case.name} value", rtol_scale=cs)]
    floor = 0.1 * max(1.0, float(np.max(np.abs(ref_v), initial=0.0)))
    for n in wrt:
        errs.append(assert_close(got_g[n], ref_g[n], dtype, f"{backend.name} {case.name} d/d{n}",
                                 floor, rtol_scale=cs))
    name = backend.name + (" +structured" if case.needs else "")  # reported on a line of its own
    key = (name, dtype)
    WORST[key] = max(WORST.get(key, 0.0), *errs)
    COUNTS[name] = COUNTS.get(name, 0) + 1


def nondefault_params(row: Any) -> dict[str, float]:
    """A preset row's penalty parameters (those its bindings take) at half their defaults
    (0.5 where the default is 0): every test that enumerates the table passes them, so that a
    new row is exercised away from its defaults without a test edit."""
    return {p: 0.5 * getattr(row.spec, p) or 0.5 for p in row.params}


#: Half precision runs one grid case in ``HALF_STRIDE`` (a stable hash of the name picks them,
#: so every kind of case is represented) in the backends that run the whole grid in float64
#: and float32: a half-precision input is cast to float32 and computed there (docs/design.md,
#: "Dtypes"), so what half precision adds is the cast and the rounding of the inputs, which a
#: sample exercises. The named edge cases and the hypothesis cases always run.
#: ``MSE_ADAPTERS_FULL_GRID=1`` runs every case.
HALF_STRIDE = 4
FULL_GRID = os.environ.get("MSE_ADAPTERS_FULL_GRID", "") not in ("", "0")


def half_precision_sample(case: Case, dtype: str) -> bool:
    """Whether a backend that samples half precision runs ``case`` in ``dtype``."""
    if FULL_GRID or dtype not in ("float16", "bfloat16"):
        return True
    from .cases import grid_names

    if case.name not in grid_names():
        return True
    import zlib

    return zlib.crc32(case.name.encode()) % HALF_STRIDE == 0
