"""Every backend x every case x every dtype the backend supports: value and gradients
against the float64 reference."""

from __future__ import annotations

import pytest

from .cases import all_cases
from .harness import backends, check

BACKENDS = backends()
CASES = all_cases()


def _params():
    for b in BACKENDS:
        for dtype in b.dtypes:
            yield pytest.param(b, dtype, id=f"{b.name}-{dtype}")


@pytest.mark.parametrize("backend,dtype", list(_params()))
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_case(backend, dtype, case):
    check(backend, case, dtype)
