"""JAX against torch directly (docs/design.md, "Conformance": backends agree with the reference AND with each
other): a stratified sample of the conformance grid (every edge case, and one case of every
second spec group, rotating through the options and shapes) in float32, and the edge cases
in float64; values and gradients w.r.t. the predictions, targets and weights, eagerly, on
the same inputs rounded to the dtype. The largest disagreement is reported in the
session summary as ``jax-vs-torch``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("torch")
from tests.conformance import harness  # noqa: E402

if not (harness.selected("jax") and harness.selected("torch")):  # (CI's Keras reruns: nothing new here)
    pytest.skip("MSE_ADAPTERS_TEST_BACKENDS does not select both JAX and torch", allow_module_level=True)

from mse_adapters import numpy as reference  # noqa: E402
from tests.conformance.backend_jax import run, stratified, value_and_vjp  # noqa: E402
from tests.conformance.backend_torch import BACKENDS as TORCH_BACKENDS  # noqa: E402
from tests.conformance.cases import all_cases, edge_cases  # noqa: E402

TORCH = next(b for b in TORCH_BACKENDS if b.name == "torch")
ALL = [c for c in all_cases() if not c.needs]
EDGE = list(edge_cases())
CHOSEN = stratified(ALL, EDGE, k=1, offset=1, stride=2)
SAMPLE = [c for c in ALL if c.name in CHOSEN]
# float32: the sample; float64: the edge cases (eager JAX compiles every primitive afresh
# per shape and dtype, ~0.4 s a case on a cold cache; float32 is warm after the grid).
PARAMS = [pytest.param(c, "float32", id=f"{c.name}-float32") for c in SAMPLE] + \
    [pytest.param(c, "float64", id=f"{c.name}-float64") for c in ALL if c.name in {e.name for e in EDGE}]


def _prepared(case, dtype):
    """The case as the harness hands it to a backend: rounded, with a cotangent for a
    non-scalar loss."""
    rc = case.rounded(dtype)
    shape = np.shape(reference.loss(rc.spec, rc.target, rc.pred, sample_weight=rc.sample_weight,
                                    weight=rc.weight, mask=rc.mask))
    if shape:
        ct = 1.0 + 0.25 * np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) % 3
        rc = dataclasses.replace(rc, cotangent=ct)
    return rc, tuple(n for n in case.wrt if getattr(rc, n) is not None)


def test_the_sample_covers_every_preset_reduction_and_option():
    def features(cases):
        return ({c.spec.penalty for c in cases}, {c.spec.reduction for c in cases},
                {c.spec.finalize for c in cases}, {c.name.split("-")[-2] for c in cases if "-2d" in c.name},
                {c.name.split("-")[-1] for c in cases})

    assert features(SAMPLE) == features(ALL)


@pytest.mark.parametrize("case,dtype", PARAMS)
def test_jax_equals_torch(case, dtype):
    rc, wrt = _prepared(case, dtype)
    jv, jg = run(value_and_vjp, case.spec, rc, dtype, wrt)  # the eager JAX backend, unsampled
    tv, tg = TORCH.value_and_grad(case.spec, rc, dtype, wrt)
    errs = [harness.assert_close(jv, tv, dtype, f"jax vs torch {case.name} value")]
    floor = 0.1 * max(1.0, float(np.max(np.abs(tv), initial=0.0)))
    for n in wrt:
        errs.append(harness.assert_close(jg[n], tg[n], dtype, f"jax vs torch {case.name} d/d{n}", floor))
    key = ("jax-vs-torch", dtype)
    harness.WORST[key] = max(harness.WORST.get(key, 0.0), *errs)
    harness.COUNTS["jax-vs-torch"] = harness.COUNTS.get("jax-vs-torch", 0) + 1
