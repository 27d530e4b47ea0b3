"""Keras on the JAX backend under ``keras.distribution.DataParallel`` over 4 host devices,
in a fresh process (tests/distributed/_keras_jax_worker.py): one ``model.fit`` step with
missing targets and sample weights, sharded over the devices, leaves the same weights as one
step on one device (the loss sees the global batch: nothing to all-reduce by hand)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("jax")
pytest.importorskip("keras")

from tests.conformance.harness import TOLERANCE  # noqa: E402
from tests.distributed._cases import ROOT, step_errors  # noqa: E402

WORKER = os.path.join(os.path.dirname(__file__), "_keras_jax_worker.py")


@pytest.fixture(scope="module")
def results() -> dict:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "KERAS_BACKEND": "jax", "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, WORKER], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
