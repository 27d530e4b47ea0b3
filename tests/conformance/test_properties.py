"""Property-based conformance across every backend (numpy, torch, JAX eager and jitted, Keras
under this process's Keras backend).

hypothesis draws shapes (empty and size-1 axes included), the backend's dtypes, weights
(zeros included), masks (all-false included), NaN and inf targets under the mask or marked
missing, and magnitudes from tiny to huge for the dtype. Every backend must

- agree with the float64 reference, value and gradients (``test_backend_agrees_with_reference``),
- keep the contract's invariants in its own arithmetic (``test_backend_keeps_the_invariants``):
  masking equals dropping the masked elements, an integer weight k equals repeating the
  element k times, ``sum == mean * normalizer``, and scaling every weight leaves ``mean``
  unchanged.

The reference keeps them too, with more examples (the ``test_reference_*`` tests).
Examples per run: the session summary counts them (tests/conftest.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mse_adapters import LossSpec, preset
from mse_adapters import numpy as mnp

from .harness import TOLERANCE, Backend, Case, backends, check

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                    derandomize=True)

penalties = st.sampled_from([
    preset("mse"), preset("mae"), preset("huber", delta=0.8), preset("smooth_l1", beta=0.4),
    preset("log_cosh"), preset("expectile", tau=0.3),
])
reductions = st.sampled_from(["none", "sum", "mean", "sum_over_batch_size", "per_sample", "per_output"])

#: Magnitudes of pred and target per dtype: tiny to huge, as far as the loss AND its gradients
#: stay finite in that dtype (gradients come back in the inputs' dtype: in float16 the
#: gradient w.r.t. a weight is the residual's square, so |r| stays below 256 there; the
#: precision tests cover half inputs up to 6e4 for the value).
MAGNITUDES: dict[str, tuple[float, ...]] = {
    "float64": (1.0, 1e-150, 30.0, 1e150, 1e-3),
    "float32": (1.0, 1e-15, 30.0, 1e15, 1e-3),
    "float16": (1.0, 1e-3, 30.0, 100.0),
    "bfloat16": (1.0, 1e-3, 30.0, 1e6),
}


@st.composite
def cases(draw):
    """A case with pred and target in [-1, 1] (:func:`scaled` sets the magnitude)."""
    # (hypothesis favours the first of sampled_from's values, and the smallest integers: the
    # orders below keep empty axes and all-false masks in the mix without dominating it)
    shape = tuple(draw(st.lists(st.sampled_from([3, 1, 4, 2, 3, 1, 4, 2, 0]), min_size=1, max_size=3)))
    base = draw(penalties)
    red = draw(reductions)
    per_sample = draw(st.booleans()) and len(shape) >= 1
    try:
        spec = base.replace(reduction=red, per_sample=per_sample)
    except ValueError:
        spec = base.replace(reduction=red)
    elems = st.floats(-1.0, 1.0, allow_nan=False, width=32)
    pred = draw(hnp.arrays(np.float64, shape, elements=elems))
    target = draw(hnp.arrays(np.float64, shape, elements=elems))
    kw = {}
    if draw(st.booleans()):
        kw["weight"] = draw(hnp.arrays(np.float64, shape[-1:], elements=st.sampled_from([0.0, 0.5, 1.0, 2.0])))
    if draw(st.booleans()):
        kw["sample_weight"] = draw(hnp.arrays(np.float64, shape[:1], elements=st.sampled_from([0.0, 1.0, 3.0])))
    if draw(st.booleans()):
        mask = draw(hnp.arrays(np.bool_, shape, elements=st.sampled_from([True, False])))
        bad = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        target = np.where(mask, target, bad)  # non-finite targets hide under the mask
        kw["mask"] = mask
    elif draw(st.booleans()):
        spec = spec.replace(missing="nan")
        holes = draw(hnp.arrays(np.bool_, shape, elements=st.sampled_from([False, True])))
        target = np.where(holes, np.nan, target)
    wrt = ("pred", "target") + tuple(k for k in ("weight", "sample_weight") if k in kw)
    return Case(f"hyp-{spec!r}-{shape}", spec, pred, target, wrt=wrt, **kw)


def scaled(case: Case, factor: float) -> Case:
    return dataclasses.replace(case, pred=case.pred * factor, target=case.target * factor)


BACKENDS = backends()
#: Examples of the invariants per backend (each example is ~7 evaluations; an eager JAX
#: evaluation of new shapes compiles its kernels, ~0.1 s each on 2 cores).
INVARIANT_EXAMPLES = {"numpy": 40, "torch": 40, "jax": 12}
INVARIANT_EXAMPLES_DEFAULT = 25  # keras-*
#: The jitted JAX program is the eager one traced; it agrees with the reference above.
NO_INVARIANTS = {"jax-jit"}


#: Examples per (backend, dtype) of the agreement with the reference.
AGREEMENT_EXAMPLES = {"float64": 20, "float32": 30, "float16": 12, "bfloat16": 12}


def _agreement_params():
    for b in BACKENDS:
        for dtype in b.dtypes:
            yield pytest.param(b, dtype, AGREEMENT_EXAMPLES[dtype], id=f"{b.name}-{dtype}")


@pytest.mark.parametrize("backend,dtype,examples", list(_agreement_params()))
def test_backend_agrees_with_reference(backend, dtype, examples):
    @settings(SETTINGS, max_examples=examples)
    @given(case=cases(), data=st.data())
    def agrees(case, data):
        check(backend, scaled(case, data.draw(st.sampled_from(MAGNITUDES[dtype]), label="magnitude")), dtype)

    agrees()


# -- invariants in each backend's own arithmetic -------------------------------------------------


def _value(backend: Backend, spec: LossSpec, dtype: str, pred: np.ndarray, target: np.ndarray,
           **kw: Any) -> float:
    case = Case("hyp-invariant", spec, pred, target, wrt=(), **kw)  # "hyp-": never sampled away
    value, _ = backend.value_and_grad(spec, case.rounded(dtype), dtype, ())
    return float(value)


def _close(a: float, b: float, dtype: str, what: str, terms: int = 1) -> None:
    rtol, atol = TOLERANCE[dtype]
    rtol *= 4 * max(1, terms) ** 0.5  # two sums of the same terms in different orders
    assert abs(a - b) <= rtol * max(abs(a), abs(b)) + atol, f"{what}: {a!r} != {b!r} ({dtype})"


def _full(x: np.ndarray | None, shape: tuple[int, ...], leading: bool = False) -> np.ndarray:
    if x is None:
        return np.ones(shape)
    if leading:
        x = x.reshape(x.shape + (1,) * (len(shape) - x.ndim))
    return np.broadcast_to(x, shape)


def _invariant_params():
    for b in BACKENDS:
        if b.name not in NO_INVARIANTS:
            n = INVARIANT_EXAMPLES.get(b.name, INVARIANT_EXAMPLES_DEFAULT)
            yield pytest.param(b, n, id=b.name)


@pytest.mark.parametrize("backend,examples", list(_invariant_params()))
def test_backend_keeps_the_invariants(backend, examples):
    @settings(SETTINGS, max_examples=examples)
    @given(case=cases(), data=st.data())
    def invariants(case, data):
        dtype = "float64" if "float64" in backend.dtypes else "float32"
        case = scaled(case, data.draw(st.sampled_from(MAGNITUDES[dtype]), label="magnitude"))
        shape = case.pred.shape
        base = case.spec.replace(per_sample=False, missing=None)
        w = _full(case.weight, shape) * _full(case.sample_weight, shape, leading=True)
        valid = np.ones(shape, bool) if case.mask is None else case.mask.copy()
        if case.spec.missing == "nan":
            valid &= ~np.isnan(case.target)
        kw = dict(weight=case.weight, sample_weight=case.sample_weight, mask=case.mask)
        full_spec = base.replace(missing=case.spec.missing)
        n = int(np.prod(shape))

        # masking (or marking missing) equals dropping the masked elements
        red = data.draw(st.sampled_from(["sum", "mean", "sum_over_batch_size"]), label="reduction")
        masked = _value(backend, full_spec.replace(reduction=red), dtype, case.pred, case.target, **kw)
        kept = valid
        dropped = _value(backend, base.replace(reduction=red), dtype, case.pred[kept], case.target[kept],
                         weight=w[kept])
        _close(masked, dropped, dtype, f"masked {red} vs dropped", n)

        # sum == mean * normalizer, and scaling every weight leaves mean unchanged
        total = _value(backend, full_spec.replace(reduction="sum"), dtype, case.pred, case.target, **kw)
        mean = _value(backend, full_spec.replace(reduction="mean"), dtype, case.pred, case.target, **kw)
        normalizer = float(np.sum(w * valid))
        _close(total, mean * normalizer, dtype, "sum vs mean * normalizer", n)
        factor = data.draw(st.sampled_from([0.25, 3.0, 1e3]), label="factor")
        rescaled = _value(backend, full_spec.replace(reduction="mean"), dtype, case.pred, case.target,
                          weight=_full(case.weight, shape[-1:]) * factor, sample_weight=case.sample_weight,
                          mask=case.mask)
        _close(rescaled, mean, dtype, f"mean with weights * {factor}", n)

        # an integer weight k equals repeating the element k times
        p, t = case.pred[kept], case.target[kept]
        k = data.draw(hnp.arrays(np.int64, p.shape, elements=st.integers(0, 3)), label="k")
        red = data.draw(st.sampled_from(["sum", "mean"]), label="reduction")
        weighted = _value(backend, base.replace(reduction=red), dtype, p, t, weight=k.astype(np.float64))
        repeated = _value(backend, base.replace(reduction=red), dtype, np.repeat(p, k), np.repeat(t, k))
        _close(weighted, repeated, dtype, f"integer weights vs repetition ({red})", int(k.sum()))

    invariants()


# -- the same invariants of the reference, with more examples -----------------------------------

#: The reference tests use NumPy only: they run where the numpy backend is selected (always,
#: unless MSE_ADAPTERS_TEST_BACKENDS restricts the run, as CI's per-Keras-backend reruns do,
#: where they would repeat the same derandomized examples).
reference_only = pytest.mark.skipif(
    not any(b.name == "numpy" for b in BACKENDS),
    reason="MSE_ADAPTERS_TEST_BACKENDS does not select the numpy backend (the reference runs there)")


@reference_only
@SETTINGS
@given(case=cases())
def test_reference_masking_equals_dropping(case):
    if case.mask is None or case.spec.reduction != "sum" or case.spec.per_sample:
        case = Case(case.name, case.spec.replace(reduction="sum", per_sample=False, missing=None),
                    case.pred, np.nan_to_num(case.target, posinf=0.0, neginf=0.0),
                    mask=np.isfinite(case.target) & (np.arange(case.pred.size).reshape(case.pred.shape) % 2 == 0))
    kept = case.mask
    full = mnp.loss(case.spec, case.target, case.pred, mask=kept)
    dropped = mnp.loss(case.spec, case.target[kept], case.pred[kept])
    assert full == pytest.approx(dropped, rel=1e-12, abs=1e-300)


@reference_only
@SETTINGS
@given(n=st.integers(1, 6), k=st.integers(0, 4), spec=penalties, data=st.data())
def test_reference_integer_weight_equals_repetition(n, k, spec, data):
    y = data.draw(hnp.arrays(np.float64, (n,), elements=st.floats(-5, 5)))
    p = data.draw(hnp.arrays(np.float64, (n,), elements=st.floats(-5, 5)))
    w = np.ones(n)
    w[0] = k
    rep = np.r_[np.repeat(y[:1], k), y[1:]], np.r_[np.repeat(p[:1], k), p[1:]]
    for red in ("sum", "mean"):
        s = spec.replace(reduction=red)
        assert mnp.loss(s, y, p, weight=w) == pytest.approx(mnp.loss(s, *rep), rel=1e-12, abs=1e-300)


@reference_only
@SETTINGS
@given(case=cases(), factor=st.sampled_from([0.25, 3.0, 1e3]))
def test_reference_sum_is_mean_times_normalizer_and_mean_is_scale_invariant(case, factor):
    base = case.spec.replace(per_sample=False)
    w = np.ones(case.pred.shape[-1:]) if case.weight is None else case.weight
    args = dict(weight=w, sample_weight=case.sample_weight, mask=case.mask)
    total = mnp.loss(base.replace(reduction="sum"), case.target, case.pred, **args)
    mean = mnp.loss(base.replace(reduction="mean"), case.target, case.pred, **args)
    valid = np.ones(case.pred.shape, bool) if case.mask is None else case.mask.copy()
    if base.missing == "nan":
        valid &= ~np.isnan(case.target)
    sw = 1.0 if case.sample_weight is None else case.sample_weight.reshape(
        case.sample_weight.shape + (1,) * (case.pred.ndim - 1))
    normalizer = np.sum(np.broadcast_to(w * sw, case.pred.shape) * valid)
    assert total == pytest.approx(mean * normalizer, rel=1e-9, abs=1e-12)
    scaled_mean = mnp.loss(base.replace(reduction="mean"), case.target, case.pred,
                           weight=w * factor, sample_weight=case.sample_weight, mask=case.mask)
    assert scaled_mean == pytest.approx(mean, rel=1e-12, abs=1e-300)

