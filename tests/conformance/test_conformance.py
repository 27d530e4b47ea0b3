"""Every backend x every case x every dtype the backend supports: value and gradients
against the float64 reference.

A backend that runs a sample of the grid (for CI time: ``selected`` in its module) and a
case that needs a feature the backend lacks are filtered here, at collection: every test
collected runs, and a skip means an optional framework is missing."""

from __future__ import annotations

import pytest

from .cases import all_cases
from .harness import backends, check, runs

BACKENDS = backends()
CASES = all_cases()


def _params():
    for b in BACKENDS:
        for dtype in b.dtypes:
            for case in CASES:
                if runs(b, case, dtype):
                    yield pytest.param(b, dtype, case, id=f"{case.name}-{b.name}-{dtype}")


@pytest.mark.parametrize("backend,dtype,case", list(_params()))
def test_case(backend, dtype, case):
    check(backend, case, dtype)
