"""Keras on the JAX backend under ``keras.distribution.DataParallel`` over 4 host devices
(run by test_keras_data_parallel.py in a fresh process: the device count is fixed before
JAX initialises). For each case of the MirroredStrategy worker, one ``model.fit`` step on
the batch sharded over the 4 devices (whole samples missing on the first device's quarter)
against one step on one device (tests/distributed/_keras_cases.py: the relative differences
from the exact float64 step of the sharded and of the one-device float32 steps), and
whether the step really ran sharded. Prints one JSON object."""

from __future__ import annotations

import json
import os

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from tests.distributed._keras_cases import B, Batch, cases, data, model, reference, relative  # noqa: E402


def update(m: keras.Model, batch: Batch) -> list[np.ndarray]:
    x, y, sw = batch
    w0 = [np.asarray(w.numpy()) for w in m.weights]
    m.fit(x, y, sample_weight=sw, batch_size=B, epochs=1, verbose=0, shuffle=False)
    return [np.asarray(w.numpy()) - a for w, a in zip(m.weights, w0)]


def main() -> None:
    devices = keras.distribution.list_devices("cpu")
    out: dict[str, float] = {"devices": len(devices)}
    refs = {case: reference(*case, update) for case in cases()}  # one device: no distribution set
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    sharded = []
    for case, (ref32, ref64) in refs.items():
        m = model(*case)
        got = update(m, data())
        sharded.append(len(m.weights[0].value.sharding.device_set))
        key = "-".join(map(str, case))
        out[key + "-single"] = relative(ref32, ref64)
        out[key + "-fit"] = relative(got, ref64)
    out["variable_devices"] = min(sharded)
    out["jax_devices"] = jax.device_count()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
