"""How each backend runs a catalogue entry: build the loss, convert the arrays, call it.

Adding a backend is adding a runner to ``RUNNERS`` (a Keras runner is added per Keras
backend: the backend is fixed per process)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from mse_adapters import preset

from .catalogue import Entry

HAVE = {m: importlib.util.find_spec(m) is not None for m in ("torch", "jax", "tensorflow", "keras")}


def foreign_array(x: np.ndarray, own: str) -> Any:
    """``x`` as an array of a framework other than ``own``."""
    if own != "torch" and HAVE["torch"]:
        import torch

        return torch.as_tensor(x)
    if own != "jax" and HAVE["jax"]:
        import jax.numpy as jnp

        return jnp.asarray(x)
    raise RuntimeError("needs a second framework")  # pragma: no cover


class Runner:
    name: str
    own: str  # the framework whose arrays this backend takes
    pred_name: str
    target_name: str

    def build(self, entry: Entry) -> Callable[..., Any]:
        raise NotImplementedError

    def convert(self, name: str, x: Any) -> Any:
        raise NotImplementedError

    def run(self, entry: Entry) -> Any:
        fn = self.build(entry)
        a = entry.arrays()
        args = {k: (None if v is None else self.convert(k, np.asarray(v))) for k, v in a.items()}
        if entry.foreign:
            args[entry.foreign] = foreign_array(np.asarray(a[entry.foreign]), self.own)
        return self.call(fn, args)

    def call(self, fn: Callable[..., Any], a: dict[str, Any]) -> Any:
        raise NotImplementedError

    def words(self, entry: Entry) -> list[str]:
        return [w.format(pred=self.pred_name, target=self.target_name) for w in entry.words]


class NumpyRunner(Runner):
    name, own, pred_name, target_name = "numpy", "numpy", "y_pred", "y_true"

    def build(self, entry: Entry) -> Callable[..., Any]:
        from mse_adapters import numpy as mnp

        return mnp.compile(preset(entry.spec[0], **entry.spec[1]))

    def convert(self, name: str, x: Any) -> Any:
        return x

    def call(self, fn: Callable[..., Any], a: dict[str, Any]) -> Any:
        return fn(a["target"], a["pred"], weight=a["weight"], sample_weight=a["sample_weight"], mask=a["mask"])


class TorchRunner(Runner):
    name, own, pred_name, target_name = "torch", "torch", "input", "target"

    def build(self, entry: Entry) -> Callable[..., Any]:
        import mse_adapters.torch as mt

        return mt.compile(preset(entry.spec[0], **entry.spec[1]))

    def convert(self, name: str, x: Any) -> Any:
        import torch

        return torch.as_tensor(x)

    def call(self, fn: Callable[..., Any], a: dict[str, Any]) -> Any:
        return fn(a["pred"], a["target"], weight=a["weight"], sample_weight=a["sample_weight"], mask=a["mask"])


RUNNERS: list[Runner] = [NumpyRunner()]
if HAVE["torch"]:
    RUNNERS.append(TorchRunner())
