"""Distributed streaming: torch DDP (2 gloo processes), JAX over 4 host devices and Keras
under MirroredStrategy with 2 logical CPUs, each in a subprocess with a hard timeout; every
rank's / device's value equals the one-shot value of the global data."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mse_adapters import LossSpec
from mse_adapters import numpy as mnp
from tests.conformance.harness import TOLERANCE, assert_close

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_torch_ddp_two_processes(tmp_path: Path) -> None:
    pytest.importorskip("torchmetrics")
    sys.path.insert(0, str(HERE))
    try:
        import ddp_worker as w
    finally:
        sys.path.pop(0)
    proc = subprocess.run([sys.executable, str(HERE / "ddp_worker.py"), str(_free_port()), str(tmp_path)],
                          env=_env(OMP_NUM_THREADS="1"), timeout=120, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    d = w.data()
    y, p = d["y"].astype(np.float64), d["p"].astype(np.float64)
    ref = {
        "mse_masked": mnp.loss(LossSpec(), y, p, mask=d["mask"]),
        "r2_raw_masked": mnp.r2(y, p, mask=d["mask"], multioutput="raw_values"),
        "nmse_weighted": mnp.nmse(y, p, sample_weight=d["sw"]),
        "rmse_masked": mnp.loss(LossSpec(finalize="sqrt"), y, p, mask=d["mask"]),
        "mae_per_output_masked": mnp.mae(y, p, mask=d["mask"], reduction="per_output"),
    }
    rtol, atol = TOLERANCE["float32"]  # float32 streams over the ranks against float64 on the global data
    for rank in range(w.WORLD):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        for name, value in ref.items():
            np.testing.assert_allclose(got[name], value, rtol=rtol, atol=atol, err_msg=f"rank {rank} {name}")


JAX_SCRIPT = r"""
import json, sys
import numpy as np
import jax, jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P
from mse_adapters.jax import metrics
assert jax.device_count() == 4, jax.devices()
rng = np.random.default_rng(3)
y = (rng.normal(size=(4, 9, 2)) * 3 + 100).astype(np.float32)
p = (y + rng.normal(size=y.shape)).astype(np.float32)
mask = rng.uniform(size=y.shape) > 0.3
mask[3] = False  # one device with nothing valid
out = {}
mesh = Mesh(np.array(jax.devices()), ("d",))
for name in ("mse", "rmse", "r2", "nmse", "huber"):
    m = getattr(metrics, name)()
    def local(yb, pb, mb, m=m):
        s = m.update(m.init(yb[0]), pb[0], yb[0], mask=mb[0])
        return m.compute(s, axis_name="d")[None]
    f = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P("d"), P("d"), P("d")), out_specs=P("d")))
    per_device = np.asarray(f(jnp.asarray(y), jnp.asarray(p), jnp.asarray(mask)))
    states = [m.update(m.init(y[i]), jnp.asarray(p[i]), jnp.asarray(y[i]), mask=jnp.asarray(mask[i])) for i in range(4)]
    merged = m.merge(m.merge(states[2], states[0]), m.merge(states[3], states[1]))
    out[name] = {"devices": per_device.tolist(), "merged": float(m.compute(merged))}
json.dump(out, sys.stdout)
"""


def test_jax_four_host_devices() -> None:
    pytest.importorskip("jax")
    proc = subprocess.run([sys.executable, "-c", JAX_SCRIPT], timeout=120, capture_output=True, text=True,
                          env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    rng = np.random.default_rng(3)
    y = (rng.normal(size=(4, 9, 2)) * 3 + 100).astype(np.float32)
    p = (y + rng.normal(size=y.shape)).astype(np.float32)
    mask = rng.uniform(size=y.shape) > 0.3
    mask[3] = False
    y2, p2, mm = y.reshape(36, 2).astype(np.float64), p.reshape(36, 2).astype(np.float64), mask.reshape(36, 2)
    rtol, atol = TOLERANCE["float32"]  # float32 streams over the devices against float64 on the global data
    for name, g in got.items():
        ref = getattr(mnp, name)(y2, p2, mask=mm, **({"multioutput": "pooled"} if name == "rmse" else {}))
        np.testing.assert_allclose(g["devices"], [ref] * 4, rtol=rtol, atol=atol, err_msg=name)
        np.testing.assert_allclose(g["merged"], ref, rtol=rtol, atol=atol, err_msg=name)


MIRRORED_SCRIPT = r"""
import json, os, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from mse_adapters.keras import metrics as km
rng = np.random.default_rng(0)
x = rng.normal(size=(203, 4)).astype("float32")
y = (x @ rng.normal(size=(4, 2)) + rng.normal(size=(203, 2)) + [5.0, 300.0]).astype("float32")
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse", metrics=[km.MeanSquaredError(), km.RootMeanSquaredError(), km.MeanAbsoluteError(),
                                         km.R2Score(), km.R2Score(class_aggregation=None, name="r2raw"),
                                         km.NormalizedMeanSquaredError()])
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
res = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
pred = model.predict(x, verbose=0)
json.dump({"res": {k: np.asarray(v).tolist() for k, v in res.items()}, "pred": pred.tolist(), "y": y.tolist()},
          sys.stdout)
"""


def test_keras_mirrored_strategy_two_cpus() -> None:
    pytest.importorskip("tensorflow")
    proc = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], timeout=180, capture_output=True, text=True,
                          env=_env(KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    res, p, y = out["res"], np.asarray(out["pred"]), np.asarray(out["y"])
    assert_close(res["mean_squared_error"], np.mean((p - y) ** 2), "float32", "mse")
    assert_close(res["root_mean_squared_error"], np.sqrt(np.mean((p - y) ** 2)), "float32", "rmse")
    assert_close(res["mean_absolute_error"], np.mean(np.abs(p - y)), "float32", "mae")
    rtol, atol = TOLERANCE["float32-ratio"]
    np.testing.assert_allclose(res["r2_score"], mnp.r2(y, p), rtol=rtol, atol=atol)
    np.testing.assert_allclose(res["r2raw"], mnp.r2(y, p, multioutput="raw_values"), rtol=rtol, atol=atol)
    np.testing.assert_allclose(res["normalized_mean_squared_error"], mnp.nmse(y, p), rtol=rtol, atol=atol)
