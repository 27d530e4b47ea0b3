"""Keras (TensorFlow backend) under tf.distribute.MirroredStrategy on 2 logical CPU devices,
in a fresh process (tests/distributed/_keras_worker.py): one ``model.fit`` step and one
custom-loop step with missing targets (whole samples missing on one replica) and sample
weights leave the same weights as one step on the global batch on one device."""

from __future__ import annotations

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

from tests.conformance.harness import TOLERANCE  # noqa: E402
from tests.distributed._cases import run_keras_worker, step_errors  # noqa: E402


@pytest.fixture(scope="module")
def results() -> dict:
    return run_keras_worker("_keras_worker.py", "tensorflow")


def test_two_replicas(results: dict) -> None:
    assert results["replicas"] == 2


def test_replicated_step_is_the_global_batch_step(results: dict) -> None:
    # as exact as one device: within the one-device float32 step's own rounding, plus the target
    tol = TOLERANCE["data-parallel"][0]
    errors = step_errors(results)
    assert len(errors) >= 10
    bad = {k: e for k, e in errors.items() if not e[0] <= e[1] + tol}
    assert not bad, bad
