"""Keras: ``model.fit`` of a small dense regression with the adapter's losses against
``loss="mse"``, on the Keras backend of this process (``KERAS_BACKEND``; ``python -m
benchmarks`` runs one process per backend, with one thread).

A candidate is one epoch of ``model.fit`` (``SAMPLES / BATCH`` steps, no shuffling, no
validation, silent) of its own model; the models start from the same weights, and their
epochs alternate round by round. The ratio is of times per epoch, so steps per second
relative to the built-in are its inverse: the target "steps/s >= 0.97x" is "time ratio
<= 1 / 0.97".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from mse_adapters import keras as mk

from ._runner import Candidate, Row, Target, cell_rows, clock_name

SAMPLES = 65536
BATCH = 256
FEATURES = 32
OUTPUTS = 10
BACKEND = f"keras-{keras.backend.backend()}"
#: model.fit runs on the backend's threads (one intra-op thread each): the process' CPU time
CLOCK = clock_name("process")

TARGETS = [
    Target(f"{BACKEND} model.fit steps/s, MeanSquaredError() vs loss='mse' (time ratio <= 1/0.97)",
           BACKEND, "fit-mse", SAMPLES, "fit", "mse_adapters MeanSquaredError()", round(1 / 0.97, 4)),
]


def _data(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((SAMPLES, FEATURES), dtype=np.float32)
    w_true = rng.standard_normal((FEATURES, OUTPUTS), dtype=np.float32) / np.sqrt(FEATURES)
    y = np.tanh(x @ w_true) + 0.1 * rng.standard_normal((SAMPLES, OUTPUTS), dtype=np.float32)
    y_missing = np.where(rng.uniform(size=y.shape) > 0.3, y, np.float32(np.nan))
    return {"x": x, "y": y.astype(np.float32), "y_missing": y_missing.astype(np.float32),
            "sample_weight": (rng.uniform(size=SAMPLES) + 0.5).astype(np.float32)}


def _model(loss: Any, initial: list[np.ndarray] | None) -> keras.Model:
    model = keras.Sequential([
        keras.Input((FEATURES,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(OUTPUTS),
    ])
    if initial is not None:
        model.set_weights(initial)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=loss)
    return model


def _fit(model: keras.Model, x: np.ndarray, y: np.ndarray, sw: np.ndarray | None) -> Callable[[], Any]:
    def epoch() -> Any:
        return model.fit(x, y, sample_weight=sw, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)

    return epoch


def run(sizes: tuple[int, ...] = (), rounds: int = 9) -> list[Row]:
    """``sizes`` is ignored: the problem is the fixed regression above."""
    keras.utils.set_random_seed(0)
    d = _data()
    initial = _model("mse", None).get_weights()
    cases: dict[str, list[tuple[str, Any, np.ndarray, np.ndarray | None]]] = {
        "fit-mse": [("loss='mse'", "mse", d["y"], None),
                    ("mse_adapters MeanSquaredError()", mk.MeanSquaredError(), d["y"], None)],
        "fit-sample-weight": [("loss='mse'", "mse", d["y"], d["sample_weight"]),
                              ("mse_adapters MeanSquaredError()", mk.MeanSquaredError(), d["y"],
                               d["sample_weight"])],
        "fit-nan-missing": [("loss='mse' (targets without NaN)", "mse", d["y"], None),
                            ("mse_adapters MeanSquaredError(missing='nan')",
                             mk.MeanSquaredError(missing="nan"), d["y_missing"], None)],
    }
    rows: list[Row] = []
    for case, cands in cases.items():
        candidates = [Candidate(name, _fit(_model(loss, initial), d["x"], y, sw))
                      for name, loss, y, sw in cands]
        # the floor of one epoch: read the inputs and targets (and weights) once
        moved = SAMPLES * (FEATURES + OUTPUTS) * 4
        # a few epochs first: the train function is traced and compiled in the first ones
        rows += cell_rows(BACKEND, case, SAMPLES, "fit", candidates, moved, rounds=max(rounds, 15),
                          warmup=3, clock=CLOCK)
        print(f"  {BACKEND} {case:20s} " + "  ".join(f"{r.ratio:.3f}" for r in rows[-len(candidates) + 1:]),
              flush=True)
    return rows


def info() -> dict[str, Any]:
    return {"keras": keras.__version__, "backend": keras.backend.backend(),
            "backend_version": _backend_version(), "samples": SAMPLES, "batch": BATCH,
            "steps_per_epoch": SAMPLES // BATCH, "model": f"Dense(64, relu) -> Dense({OUTPUTS}), SGD",
            "clock": CLOCK}


def _backend_version() -> str:
    name = keras.backend.backend()
    module = __import__(name)
    return f"{name} {getattr(module, '__version__', '?')}"
