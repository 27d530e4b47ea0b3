"""The data of the data-parallel tests, generated the same way in the workers and in the
test process (NumPy, seeded): uneven shards, per-output weights, per-sample weights and
masks, and rank 0 with no valid element."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

import numpy as np

from mse_adapters import PRESET_TABLE

#: Rows per rank and micro-batch (uneven); rank 0's are all masked.
ROWS = (5, 3, 8, 6)
MICRO = 4  # micro-batches in an accumulation window
#: Rows times this in the large cases: every rank's shard above the torch fused kernels'
#: threshold (2^14 elements), so those run with the process group too.
LARGE = 1200
D_IN, D_OUT = 4, 3
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cases() -> list[tuple[str, str | None, bool]]:
    """(preset, reduction or None for the preset's own, accumulate) from the preset table:
    every linear preset with ``mean`` and ``sum_over_batch_size``, with and without an
    accumulation window; the finalized ones (RMSE, NMSE, R^2) with their own reduction."""
    out: list[tuple[str, str | None, bool]] = []
    for row in PRESET_TABLE:
        if row.spec.finalize == "identity":
            out += [(row.name, red, acc) for red in ("mean", "sum_over_batch_size") for acc in (False, True)]
        else:
            out.append((row.name, None, False))
    return out


def large_cases() -> list[tuple[str, str | None, bool]]:
    """The cases whose reductions run on torch's fused kernels (every linear preset with
    ``mean`` and ``sum_over_batch_size``, with and without a window), at ``LARGE`` scale."""
    return [c for c in cases() if c[1] is not None]


def compiled_cases() -> list[tuple[str, str | None, bool]]:
    """The cases where every one costs compilations (JAX): the first linear preset of the
    table with both reductions, with and without a window, and every finalized preset (the
    unit tests cover every preset's normalizer= in every backend)."""
    first = next(r.name for r in PRESET_TABLE if r.spec.finalize == "identity")
    return [c for c in cases() if c[0] == first or c[1] is None]


def shard(world: int, rank: int, micro: int, dtype: Any = np.float32, scale: int = 1) -> dict[str, np.ndarray]:
    """One rank's micro-batch: inputs, targets, sample weights, a mask (``scale`` times the rows)."""
    rng = np.random.default_rng(1000 * world + 10 * rank + micro)
    n = (ROWS[rank % len(ROWS)] + micro % 2) * scale
    mask = rng.random((n, D_OUT)) > 0.35
    if rank == 0:
        mask[:] = False  # a rank with nothing valid
    target = rng.normal(size=(n, D_OUT))
    target[~mask] = np.nan  # never seen: masked
    return {"x": rng.normal(size=(n, D_IN)).astype(dtype), "target": target.astype(dtype),
            "sample_weight": rng.uniform(0.2, 2.0, size=n).astype(dtype), "mask": mask}


def global_batch(world: int, micros: int, dtype: Any = np.float32, scale: int = 1) -> dict[str, np.ndarray]:
    parts = [shard(world, r, m, dtype, scale) for m in range(micros) for r in range(world)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


#: Per-output weights of every loss (the module's ``weight``).
OUTPUT_WEIGHT = np.array([0.5, 1.0, 2.0], dtype=np.float32)


def model_init(dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.normal(size=(D_OUT, D_IN)).astype(dtype), rng.normal(size=D_OUT).astype(dtype)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(script: str, world: int, args: list[str], timeout: float = 120.0) -> list[str]:
    """Start ``world`` processes of ``script`` (rank, world, port, *args) on 127.0.0.1 and wait
    for all of them (each bounded by ``timeout``); returns their outputs, raising with them
    on a failure."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, script, str(r), str(world), str(port), *args], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(world)]
    outs, failed = [], False
    for p in procs:
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            out, _ = p.communicate()
            failed = True
        outs.append(out)
        failed = failed or p.returncode != 0
    if failed:
        raise RuntimeError("a worker failed:\n" + "\n----\n".join(outs))
    return outs


def run_keras_worker(name: str, backend: str, timeout: float = 300.0) -> dict[str, float]:
    """Run ``tests/distributed/<name>`` in a fresh process with Keras on ``backend`` (the
    devices are configured before the framework starts) and return the JSON it prints last."""
    import json

    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"}
    env.pop("NAIVE", None)  # the workers' per-replica (wrong) mode, for the notes only
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    proc = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def step_errors(results: dict[str, float]) -> dict[str, tuple[float, float]]:
    """A Keras worker's results (tests/distributed/_keras_cases.py) as {step: (its error, the
    one-device float32 step's error)}, both relative to the exact float64 step."""
    single = {k[: -len("-single")]: v for k, v in results.items() if k.endswith("-single")}
    return {k: (v, single[k.rsplit("-", 1)[0]]) for k, v in results.items()
            if "-" in k and not k.endswith("-single")}
