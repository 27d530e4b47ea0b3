"""Property-based conformance: hypothesis draws shapes (empty and size-1 axes included),
dtypes, weights (zeros included), masks (all-false included), NaN and inf targets under the
mask, and magnitudes; every backend must agree with the reference, and the reference must
keep the contract's invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mse_adapters import numpy as mnp
from mse_adapters import preset

from .harness import Case, backends, check

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                    derandomize=True)

penalties = st.sampled_from([
    preset("mse"), preset("mae"), preset("huber", delta=0.8), preset("smooth_l1", beta=0.4),
    preset("log_cosh"), preset("expectile", tau=0.3),
])
reductions = st.sampled_from(["none", "sum", "mean", "sum_over_batch_size", "per_sample", "per_output"])


MAGNITUDES = st.sampled_from([1e-3, 1.0, 30.0])


@st.composite
def cases(draw, magnitude=MAGNITUDES):
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=3)))
    base = draw(penalties)
    red = draw(reductions)
    per_sample = draw(st.booleans()) and len(shape) >= 1
    try:
        spec = base.replace(reduction=red, per_sample=per_sample)
    except ValueError:
        spec = base.replace(reduction=red)
    scale = draw(magnitude)
    elems = st.floats(-1.0, 1.0, allow_nan=False, width=32)
    pred = draw(hnp.arrays(np.float64, shape, elements=elems)) * scale
    target = draw(hnp.arrays(np.float64, shape, elements=elems)) * scale
    kw = {}
    if draw(st.booleans()):
        kw["weight"] = draw(hnp.arrays(np.float64, shape[-1:], elements=st.sampled_from([0.0, 0.5, 1.0, 2.0])))
    if draw(st.booleans()):
        kw["sample_weight"] = draw(hnp.arrays(np.float64, shape[:1], elements=st.sampled_from([0.0, 1.0, 3.0])))
    if draw(st.booleans()):
        mask = draw(hnp.arrays(np.bool_, shape))
        bad = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        target = np.where(mask, target, bad)  # non-finite targets hide under the mask
        kw["mask"] = mask
    elif draw(st.booleans()):
        spec = spec.replace(missing="nan")
        holes = draw(hnp.arrays(np.bool_, shape))
        target = np.where(holes, np.nan, target)
    wrt = ("pred", "target") + tuple(k for k in ("weight", "sample_weight") if k in kw)
    return Case(f"hyp-{spec!r}-{shape}", spec, pred, target, wrt=wrt, **kw)


BACKENDS = backends()


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@SETTINGS
@given(case=cases(), data=st.data())
def test_backend_agrees_with_reference(backend, case, data):
    dtype = data.draw(st.sampled_from(backend.dtypes))
    check(backend, case, dtype)


# -- invariants of the reference (and therefore of every backend that agrees with it) -------


@SETTINGS
@given(case=cases(magnitude=st.just(1.0)))
def test_masking_equals_dropping(case):
    if case.mask is None or case.spec.reduction != "sum" or case.spec.per_sample:
        case = Case(case.name, case.spec.replace(reduction="sum", per_sample=False, missing=None),
                    case.pred, np.nan_to_num(case.target, posinf=0.0, neginf=0.0),
                    mask=np.isfinite(case.target) & (np.arange(case.pred.size).reshape(case.pred.shape) % 2 == 0))
    kept = case.mask
    full = mnp.loss(case.spec, case.target, case.pred, mask=kept)
    dropped = mnp.loss(case.spec, case.target[kept], case.pred[kept])
    assert full == pytest.approx(dropped, rel=1e-12, abs=1e-300)


@SETTINGS
@given(n=st.integers(1, 6), k=st.integers(0, 4), spec=penalties, data=st.data())
def test_integer_weight_equals_repetition(n, k, spec, data):
    y = data.draw(hnp.arrays(np.float64, (n,), elements=st.floats(-5, 5)))
    p = data.draw(hnp.arrays(np.float64, (n,), elements=st.floats(-5, 5)))
    w = np.ones(n)
    w[0] = k
    rep = np.r_[np.repeat(y[:1], k), y[1:]], np.r_[np.repeat(p[:1], k), p[1:]]
    for red in ("sum", "mean"):
        s = spec.replace(reduction=red)
        assert mnp.loss(s, y, p, weight=w) == pytest.approx(mnp.loss(s, *rep), rel=1e-12, abs=1e-300)


@SETTINGS
@given(case=cases(magnitude=st.just(1.0)), factor=st.sampled_from([0.25, 3.0, 1e3]))
def test_sum_is_mean_times_normaliser_and_mean_is_scale_invariant(case, factor):
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
    normaliser = np.sum(np.broadcast_to(w * sw, case.pred.shape) * valid)
    assert total == pytest.approx(mean * normaliser, rel=1e-9, abs=1e-12)
    scaled = mnp.loss(base.replace(reduction="mean"), case.target, case.pred,
                      weight=w * factor, sample_weight=case.sample_weight, mask=case.mask)
    assert scaled == pytest.approx(mean, rel=1e-12, abs=1e-300)
