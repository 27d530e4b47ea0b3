"""Keras on the JAX backend under ``keras.distribution.DataParallel`` over 4 host devices,
in a fresh process (tests/distributed/_keras_jax_worker.py): one ``model.fit`` step with
missing targets and sample weights, sharded over the devices, leaves the same weights as one
step on one device (the loss sees the global batch: nothing to all-reduce by hand)."""

from __future__ import annotations

import pytest

pytest.importorskip("jax")
pytest.importorskip("keras")

from tests.conformance.harness import TOLERANCE  # noqa: E402
from tests.distributed._cases import run_keras_worker, step_errors  # noqa: E402


@pytest.fixture(scope="module")
def results() -> dict:
    return run_keras_worker("_keras_jax_worker.py", "jax")


def test_four_devices_hold_the_variables(results: dict) -> None:
    assert results["jax_devices"] == 4
    assert results["devices"] == 4
    assert results["variable_devices"] == 4  # the model really ran under the distribution


def test_sharded_step_is_the_global_batch_step(results: dict) -> None:
    # as exact as one device: within the one-device float32 step's own rounding, plus the target
    tol = TOLERANCE["data-parallel"][0]
    errors = step_errors(results)
    assert len(errors) >= 5
    bad = {k: e for k, e in errors.items() if not e[0] <= e[1] + tol}
    assert not bad, bad
