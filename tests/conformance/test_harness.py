"""The harness itself: the error it reports (the session summary's number) is relative to
the reference's scale with the tolerance's absolute floor under it."""

from __future__ import annotations

import numpy as np
import pytest

from .harness import TOLERANCE, assert_close


def test_a_reference_that_underflows_reports_a_tiny_error():
    # 6e-72 is 0 in float32: |got - ref| = 6e-72, far below atol; relative to 6e-72 alone it
    # would read 1.00e+00 in the summary
    assert assert_close(np.float32(6e-72), 6e-72, "float32", "tiny") < 1e-40


@pytest.mark.parametrize("dtype", sorted(TOLERANCE))
def test_reported_error_is_at_most_rtol_when_the_check_passes(dtype):
    rtol, atol = TOLERANCE[dtype]
    for ref in (1.0, 1e-3, 1e-30, 0.0):
        got = ref + 0.9 * (rtol * ref + atol)  # just inside the tolerance
        assert assert_close(got, ref, dtype, "inside") <= rtol
    with pytest.raises(AssertionError, match="relative error"):
        assert_close(1.0 + 2 * rtol, 1.0, dtype, "outside")


@pytest.mark.parametrize("got,ref", [
    (np.nan, 1.0),  # a NaN where the reference is finite
    (1.0, np.nan),
    ([np.inf, 1.0], [np.inf, 5.0]),  # matching infs must not hide the finite entries' error
    ([np.nan, 1.0], [np.nan, 5.0]),
    ([np.inf, 1.0], [-np.inf, 1.0]),  # an inf of the other sign
    ([np.nan, 1.0], [np.inf, 1.0]),
])
def test_non_finite_entries_never_hide_an_error(got, ref):
    with pytest.raises(AssertionError, match="relative error"):
        assert_close(np.array(got), np.array(ref), "float32", "non-finite")


def test_non_finite_entries_in_the_same_places_compare_equal():
    assert assert_close(np.array([np.nan, -np.inf, 2.0]), np.array([np.nan, -np.inf, 2.0]), "float64", "same") == 0.0
