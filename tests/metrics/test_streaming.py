"""Streaming = one-shot: for any split of the data into batches and any order of merging the
partial states, every backend's metric equals the float64 reference loss on the
concatenated data (values, to the dtype tolerance), for every preset x reduction x
multioutput x weighting option; empty and fully masked batches are no-ops; NaN propagates
unless masked. (A stream with no data at all, or an output with none: test_undefined.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mse_adapters import LossSpec
from tests.conformance.harness import assert_close
from tests.metrics.common import ROW_SPECS, RUNNERS, SPECS, make_data, reference, splits

DTYPE = {"numpy": "float64", "torch": "float32", "jax": "float32", "keras": "float32"}
OPTIONS = ((), ("sample_weight",), ("weight",), ("mask",), ("weight", "sample_weight", "mask"))


def _check(backend: str, spec: LossSpec, data, parts, order, dtype: str | None = None) -> None:  # noqa: ANN001
    dtype = dtype or DTYPE[backend]
    got = RUNNERS[backend](spec, data, parts, order, dtype)
    ref = np.asarray(reference(spec, data), dtype=np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    # float32 inputs: the reference on the float32-rounded data (R^2 and NMSE near 0 with the
    # table's absolute bound for ratios: 1 - SSE/SST keeps float32's absolute, not relative, error)
    tol = "float32-ratio" if dtype == "float32" and spec.finalize in ("nmse", "r2") else dtype
    assert_close(got, ref, tol, f"{backend} {spec!r}", floor=1e-3 if dtype != "float64" else 0.0)


def _rounded(data, dtype: str):  # noqa: ANN001, ANN202
    if dtype == "float64":
        return data
    for name in ("y_true", "y_pred", "weight", "sample_weight"):
        a = getattr(data, name)
        if a is not None:
            setattr(data, name, a.astype(dtype).astype(np.float64))
    return data


@pytest.mark.parametrize("backend", sorted(RUNNERS))
@pytest.mark.parametrize("spec", ROW_SPECS, ids=repr)
def test_every_preset_streams(backend: str, spec: LossSpec) -> None:
    rng = np.random.default_rng(0)
    data = _rounded(make_data(rng, 37, ("weight", "sample_weight", "mask")), DTYPE[backend])
    _check(backend, spec, data, splits(data.n, [0, 5, 5, 19, 30]), [2, 0, 1, 0])


@pytest.mark.parametrize("backend", sorted(RUNNERS))
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=st.sampled_from(SPECS), options=st.sampled_from(OPTIONS),
       cuts=st.lists(st.integers(0, 24), max_size=4), order=st.lists(st.integers(0, 5), max_size=4),
       seed=st.integers(0, 2**16))
def test_any_split_any_merge_order(backend: str, spec: LossSpec, options: tuple[str, ...], cuts: list[int],
                                   order: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = _rounded(make_data(rng, 24, options, nan_targets=spec.missing == "nan"), DTYPE[backend])
    _check(backend, spec, data, splits(data.n, cuts), order)


@pytest.mark.parametrize("backend", [b for b in ("numpy", "torch") if b in RUNNERS])
@pytest.mark.parametrize("spec", [s for s in SPECS if s.missing is None and s.multioutput in ("pooled", "raw_values")],
                         ids=repr)
def test_float64(backend: str, spec: LossSpec) -> None:
    rng = np.random.default_rng(1)
    data = make_data(rng, 30, ("weight", "sample_weight", "mask"))
    _check(backend, spec, data, splits(data.n, [3, 3, 17]), [1, 0], dtype="float64")


@pytest.mark.parametrize("backend", sorted(RUNNERS))
def test_empty_and_fully_masked_batches_are_no_ops(backend: str) -> None:
    rng = np.random.default_rng(2)
    for spec in (LossSpec(), LossSpec(finalize="r2", multioutput="raw_values"),
                 LossSpec(penalty="abs", reduction="sum_over_batch_size")):
        data = make_data(rng, 12, ("mask",))
        data.mask[4:8] = False  # a fully masked batch
        data.y_true[4:8] = np.nan  # under the mask: counts for nothing
        with_noop = RUNNERS[backend](spec, data, [(0, 4), (4, 4), (4, 8), (8, 12)], [0, 0, 0])
        without = RUNNERS[backend](spec, data.part(0, 4), [(0, 4)], [])
        other = RUNNERS[backend](spec, data.part(8, 12), [(0, 4)], [])
        assert np.all(np.isfinite(with_noop))
        ref = np.asarray(reference(spec, data))
        assert_close(with_noop, ref, DTYPE[backend], f"{backend} no-op {spec!r}",
                     floor=1e-3 if backend != "numpy" else 0.0)
        assert not np.array_equal(without, other)  # the data matter (the test can fail)


@pytest.mark.parametrize("backend", sorted(RUNNERS))
def test_nan_propagates_unless_masked(backend: str) -> None:
    rng = np.random.default_rng(3)
    for spec in (LossSpec(), LossSpec(finalize="nmse", multioutput="uniform_average"),
                 LossSpec(penalty="huber", reduction="per_output")):
        data = make_data(rng, 10, ())
        data.y_pred[7, 1] = np.nan
        got = RUNNERS[backend](spec, data, [(0, 5), (5, 10)], [0])
        assert np.isnan(got).any(), (backend, spec, got)
        if spec.per_output_stats and spec.reduction == "per_output":
            assert np.isfinite(got[0]) and np.isfinite(got[2])  # only the NaN's output
        data.mask = np.ones((10, 3), dtype=bool)
        data.mask[7, 1] = False
        got = RUNNERS[backend](spec, data, [(0, 5), (5, 10)], [0])
        assert np.all(np.isfinite(got))
        assert_close(got, np.asarray(reference(spec, data)), DTYPE[backend], f"{backend} masked NaN",
                     floor=1e-3 if backend != "numpy" else 0.0)
