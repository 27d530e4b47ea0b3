"""The Keras data-parallel tests' data, cases, model and reference (shared by the
MirroredStrategy and the DataParallel workers; imports Keras, whose backend the worker has
chosen). The reference is one step on the global batch on one device, in float32 (what
the replicas compute) and in float64 from the same initial weights (the exact step): a
replicated float32 step must be as close to the exact one as the one-device float32 step,
within TOLERANCE["data-parallel"]."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from mse_adapters import PRESET_TABLE
from mse_adapters import keras as mk
from mse_adapters._presets import row

B = 16


Batch = tuple[np.ndarray, np.ndarray, np.ndarray]


def data(dtype: str = "float32") -> Batch:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, 4)).astype(dtype)
    y = rng.normal(size=(B, 3)).astype(dtype)
    sw = rng.uniform(0.2, 2.0, size=B).astype(dtype)
    y[:5] = np.nan  # the first replica's half: 5 of its 8 samples missing
    y[5:7, :2] = np.nan
    y[11, 0] = np.nan
    sw[5] = 0.0
    return x, y, sw


def cases() -> list[tuple[str, str | None]]:
    """The first linear preset of the table with Keras' two averaging reductions, and every
    finalized preset with its own."""
    first = next(r.name for r in PRESET_TABLE if r.spec.finalize == "identity")
    return [(first, "sum_over_batch_size"), (first, "mean_with_sample_weight")] + [
        (r.name, None) for r in PRESET_TABLE if r.spec.finalize != "identity"]


def build(name: str, reduction: str | None) -> keras.losses.Loss:
    kw = {} if reduction is None else {"reduction": reduction}
    return getattr(mk, row(name).keras)(missing="nan", **kw)


def model(name: str, reduction: str | None) -> keras.Model:
    keras.utils.set_random_seed(1)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    m.compile(optimizer=keras.optimizers.SGD(0.1), loss=build(name, reduction))
    return m


def reference(name: str, reduction: str | None,
              update: Callable[[keras.Model, Batch], list[np.ndarray]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The weight updates of one step on the global batch on one device: (float32, float64)."""
    m32 = model(name, reduction)
    w0 = [np.asarray(w.numpy()) for w in m32.weights]
    ref32 = update(m32, data())
    keras.config.set_floatx("float64")
    try:
        m64 = model(name, reduction)
        m64.set_weights([w.astype("float64") for w in w0])
        ref64 = update(m64, data("float64"))
    finally:
        keras.config.set_floatx("float32")
    return ref32, ref64


def relative(got: list[np.ndarray], ref: list[np.ndarray]) -> float:
    """The largest difference of two weight updates, relative to each array's largest entry."""
    return max(float(np.abs(np.asarray(g, np.float64) - r).max() / np.abs(r).max()) for g, r in zip(got, ref))
