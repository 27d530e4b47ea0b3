"""What the metric tests share: the specs (read from the preset table), batches of data, and
one streaming runner per backend (update every part, merge the parts in a given order,
compute), against the one-shot NumPy float64 reference on the concatenated data."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mse_adapters import LossSpec
from mse_adapters import numpy as mnp
from mse_adapters._presets import PRESET_TABLE
from mse_adapters.numpy import metrics as npm

#: Outputs of the multi-output data.
D = 3
_MULTIOUTPUT = ("raw_values", "uniform_average", "variance_weighted", (1.0, 2.0, 0.5))


def _specs() -> list[LossSpec]:
    """Every preset with every reduction and multioutput a metric takes, and missing='nan'."""
    out: list[LossSpec] = []
    for row in PRESET_TABLE:
        base = row.spec
        for reduction in ("mean", "sum_over_batch_size", "sum", "per_output"):
            for mo in ("pooled", *_MULTIOUTPUT):
                for missing in (None, "nan"):
                    try:
                        s = base.replace(reduction=reduction, multioutput=mo, missing=missing)
                    except ValueError:
                        continue
                    if s not in out:
                        out.append(s)
    return out


SPECS = _specs()
#: One spec per preset row, the row's own (for the per-backend smoke of every preset).
ROW_SPECS = [row.spec for row in PRESET_TABLE]


@dataclasses.dataclass
class Data:
    """A data set of ``n`` samples: targets, predictions and the options, as float64 NumPy."""

    y_true: np.ndarray
    y_pred: np.ndarray
    weight: np.ndarray | None = None  # per element (n, D)
    sample_weight: np.ndarray | None = None  # (n,)
    mask: np.ndarray | None = None  # (n, D) boolean

    @property
    def n(self) -> int:
        return int(self.y_true.shape[0])

    def part(self, lo: int, hi: int) -> Data:
        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[lo:hi]

        return Data(self.y_true[lo:hi], self.y_pred[lo:hi], cut(self.weight), cut(self.sample_weight),
                    cut(self.mask))

    def kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in (("weight", self.weight), ("sample_weight", self.sample_weight),
                                  ("mask", self.mask)) if v is not None}


def make_data(rng: np.random.Generator, n: int, options: Sequence[str] = (), mu: float = 1.0,
              nan_targets: bool = False) -> Data:
    y = rng.normal(size=(n, D)) * np.array([1.0, 2.0, 0.5]) + mu
    p = y + rng.normal(size=(n, D)) * 0.7
    data = Data(y, p)
    if "weight" in options:
        data.weight = rng.uniform(0.0, 2.0, size=(n, D))
    if "sample_weight" in options:
        data.sample_weight = rng.uniform(0.0, 2.0, size=n)
    if "mask" in options:
        data.mask = rng.uniform(size=(n, D)) > 0.3
    if nan_targets:
        y = y.copy()
        y[rng.uniform(size=(n, D)) < 0.2] = np.nan
        data.y_true = y
    return data


def reference(spec: LossSpec, data: Data) -> Any:
    """The one-shot float64 loss on the whole data."""
    return mnp.loss(spec, data.y_true, data.y_pred, **data.kwargs())


def splits(n: int, cuts: Sequence[int]) -> list[tuple[int, int]]:
    """The parts [lo, hi) of range(n) cut at ``cuts`` (repeated cuts: empty parts)."""
    points = [0, *sorted(min(max(c, 0), n) for c in cuts), n]
    return list(zip(points[:-1], points[1:]))


def merge_in_order(parts: list[Any], order: Sequence[int], merge: Callable[[Any, Any], Any]) -> Any:
    """Merge ``parts``: repeatedly merge the pair at position ``order[i] % (len - 1)`` (any
    tree of merges, in any order of the parts' neighbours), until one is left."""
    parts = list(parts)
    i = 0
    while len(parts) > 1:
        j = order[i % len(order)] % (len(parts) - 1) if order else 0
        parts[j: j + 2] = [merge(parts[j], parts[j + 1])]
        i += 1
    return parts[0]


# ---------------------------------------------------------------------------------------
# Runners: (spec, data, parts, order, dtype) -> the streamed value as float64 NumPy
# ---------------------------------------------------------------------------------------


def run_numpy(spec: LossSpec, data: Data, parts: list[tuple[int, int]], order: Sequence[int],
              dtype: str = "float64") -> np.ndarray:
    ms = [npm.metric(spec).update(d.y_true, d.y_pred, **d.kwargs()) for d in (data.part(*p) for p in parts)]
    return np.asarray(merge_in_order(ms, order, lambda a, b: a.merge(b)).compute())


def run_torch(spec: LossSpec, data: Data, parts: list[tuple[int, int]], order: Sequence[int],
              dtype: str = "float32") -> np.ndarray:
    import torch

    from mse_adapters.torch.metrics import Metric

    tdt = getattr(torch, dtype)

    def t(a: np.ndarray | None) -> Any:
        return None if a is None else torch.as_tensor(a, dtype=torch.bool if a.dtype == bool else tdt)

    ms = []
    for p in parts:
        d = data.part(*p)
        m = Metric(spec, num_outputs=D if spec.per_output_stats else None)
        m.update(t(d.y_pred), t(d.y_true), **{k: t(v) for k, v in d.kwargs().items()})
        ms.append(m)

    def merge(a: Any, b: Any) -> Any:
        a.merge_state(b)
        return a

    return merge_in_order(ms, order, merge).compute().double().numpy()


def run_jax(spec: LossSpec, data: Data, parts: list[tuple[int, int]], order: Sequence[int],
            dtype: str = "float32") -> np.ndarray:
    import jax.numpy as jnp

    from mse_adapters.jax.metrics import metric

    m = metric(spec)

    def j(a: np.ndarray | None) -> Any:
        return None if a is None else jnp.asarray(a if a.dtype == bool else a.astype(dtype))

    states = []
    for p in parts:
        d = data.part(*p)
        states.append(m.update(m.init(d.y_true), j(d.y_pred), j(d.y_true), **{k: j(v) for k, v in d.kwargs().items()}))
    return np.asarray(m.compute(merge_in_order(states, order, m.merge)), dtype=np.float64)


def run_keras(spec: LossSpec, data: Data, parts: list[tuple[int, int]], order: Sequence[int],
              dtype: str = "float32") -> np.ndarray:
    """Keras metrics have no merge: the parts are streamed in ``order``'s permutation."""
    import keras

    from mse_adapters.keras.metrics import Metric

    m = Metric(spec, dtype=dtype)
    perm = sorted(range(len(parts)), key=lambda i: (order[i % len(order)] if order else 0, i))
    for i in perm:
        d = data.part(*parts[i])
        kw = {k: (v if v.dtype == bool else v.astype(dtype)) for k, v in d.kwargs().items()}
        m.update_state(d.y_true.astype(dtype), d.y_pred.astype(dtype), **kw)
    return np.asarray(keras.ops.convert_to_numpy(m.result()), dtype=np.float64)


def fresh(backend: str, spec: LossSpec, dtype: str = "float32") -> np.ndarray:
    """The value of a metric of ``spec`` that has seen no batch (of ``D`` outputs where the
    backend is told the number up front)."""
    if backend == "numpy":
        return np.asarray(npm.metric(spec).compute())
    if backend == "torch":
        from mse_adapters.torch.metrics import Metric as TorchMetric

        return TorchMetric(spec, num_outputs=D if spec.per_output_stats else None).compute().double().numpy()
    if backend == "jax":
        from mse_adapters.jax.metrics import metric

        m = metric(spec)
        return np.asarray(m.compute(m.init((1, D))), dtype=np.float64)
    import keras

    from mse_adapters.keras.metrics import Metric as KerasMetric

    return np.asarray(keras.ops.convert_to_numpy(KerasMetric(spec, dtype=dtype).result()), dtype=np.float64)


def available() -> dict[str, Callable[..., np.ndarray]]:
    """The runners of the installed backends (``MSE_ADAPTERS_TEST_BACKENDS`` restricts them,
    as in the conformance suite)."""
    out: dict[str, Callable[..., np.ndarray]] = {"numpy": run_numpy}
    if importlib.util.find_spec("torch") and importlib.util.find_spec("torchmetrics"):
        out["torch"] = run_torch
    if importlib.util.find_spec("jax"):
        out["jax"] = run_jax
    if importlib.util.find_spec("keras"):
        out["keras"] = run_keras
    wanted = [w for w in os.environ.get("MSE_ADAPTERS_TEST_BACKENDS", "").split(",") if w]
    return {k: v for k, v in out.items() if not wanted or any(k.startswith(w) for w in wanted)}


RUNNERS = available()
