"""JAX on 4 host devices (a subprocess: XLA_FLAGS is read when JAX starts): ``axis_name``
under ``shard_map`` (differentiated from outside, or per device followed by ``pmean``),
``jax.jit`` with ``NamedSharding``-sharded global arrays, and a 4-micro-batch window with a
psum-ed ``normalizer``, against the single-device global batch, for the compiled cases of
the preset table (tests/distributed/_jax_worker.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("jax")

from tests.conformance.harness import TOLERANCE  # noqa: E402
from tests.distributed._cases import ROOT, compiled_cases  # noqa: E402

WORKER = os.path.join(os.path.dirname(__file__), "_jax_worker.py")
#: float32 gradients and values against the single-device global batch's, relative to their largest entry
RTOL = TOLERANCE["data-parallel"][0]


@pytest.fixture(scope="module")
def results() -> dict:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, WORKER], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name,reduction,accumulate", compiled_cases(), ids=lambda v: str(v))
def test_sharded_gradient_is_the_global_batch_gradient(results: dict, name: str, reduction: str | None,
                                                       accumulate: bool) -> None:
    key = f"{name}-{reduction}-{accumulate}"
    labels = ("window",) if accumulate else ("shard_map", "pmean", "jit")
    for label in labels:
        assert results[f"{key}-{label}"] < RTOL, (label, results[f"{key}-{label}"])
    assert results[f"{key}-value"] < RTOL


def test_axis_name_outside_a_mapped_context(results: dict) -> None:
    assert "axis_name='d' is not bound" in results["unbound"]
