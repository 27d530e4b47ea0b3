"""mse_adapters: one definition of every squared-error-family loss, compiled into the
native form of each framework.

``import mse_adapters`` imports no framework. The backends are submodules, imported on
demand:

- :mod:`mse_adapters.numpy`: the float64 reference (scikit-learn argument order);
- :mod:`mse_adapters.torch`: ``torch.nn.Module`` losses and functional forms;
- :mod:`mse_adapters.keras`: ``keras.losses.Loss`` classes for any Keras 3 backend;
- :mod:`mse_adapters.jax`: pure, jit-able functions in Optax style.

>>> import mse_adapters as ma
>>> ma.preset("huber", delta=0.5)
LossSpec(penalty='huber', delta=0.5)
"""

from __future__ import annotations

import importlib
from typing import Any

from ._messages import UndefinedMetricWarning
from ._presets import PRESET_TABLE, PRESETS, preset
from ._spec import FINALIZERS, MISSING, MULTIOUTPUT, PENALTIES, REDUCTIONS, LossSpec

__version__ = "0.1.0"

__all__ = [
    "LossSpec",
    "preset",
    "PRESETS",
    "PRESET_TABLE",
    "PENALTIES",
    "REDUCTIONS",
    "FINALIZERS",
    "MULTIOUTPUT",
    "MISSING",
    "UndefinedMetricWarning",
    "available_backends",
    "__version__",
]

_BACKENDS = {"numpy": "numpy", "torch": "torch", "keras": "keras", "jax": "jax"}


def available_backends() -> list[str]:
    """The backends whose framework is installed (found without importing it)."""
    import importlib.util

    return [name for name, mod in _BACKENDS.items() if importlib.util.find_spec(mod) is not None]


def __getattr__(name: str) -> Any:
    # ``mse_adapters.torch`` etc. resolve lazily, so that importing the package stays free.
    if name in _BACKENDS:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
