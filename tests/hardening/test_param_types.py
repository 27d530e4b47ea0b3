"""A penalty parameter of a type no loss takes (a str, a complex number, a bool, None, a list
of str) raises the same TypeError, naming the parameter, in every backend's bindings (the
NumPy and JAX functions, the torch modules and functional forms, the Keras classes under
this process' Keras backend), for every parameter of the penalty table; a complex array of
the backend's own framework is refused too, naming the parameter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from mse_adapters import PRESET_TABLE
from mse_adapters._penalties import PENALTY_TABLE

from .runners import HAVE, selected

#: Every (preset, parameter) of the tables: each penalty parameter, in every preset that takes it.
PARAMS = [(row, p) for row in PRESET_TABLE for p in row.params]
#: Values of a type no penalty parameter takes.
BAD: dict[str, Any] = {"str": "1", "complex": 1 + 0j, "bool": True, "None": None, "list of str": ["0.5"]}

Call = Callable[[Any, str, Any], Any]  # (preset row, parameter, value) -> the binding's result


def _numpy(row: Any, name: str, value: Any) -> Any:
    from mse_adapters import numpy as mnp

    return getattr(mnp, row.name)(np.ones((2, 3)), np.zeros((2, 3)), **{name: value})


def _torch_module(row: Any, name: str, value: Any) -> Any:
    import torch

    import mse_adapters.torch as mt

    return getattr(mt, row.torch)(**{name: value})(torch.zeros(2, 3), torch.ones(2, 3))


def _torch_functional(row: Any, name: str, value: Any) -> Any:
    import torch

    import mse_adapters.torch as mt

    return getattr(mt, row.torch_fn)(torch.zeros(2, 3), torch.ones(2, 3), **{name: value})


def _jax(row: Any, name: str, value: Any) -> Any:
    import jax.numpy as jnp

    import mse_adapters.jax as mj

    return getattr(mj, row.name)(jnp.zeros((2, 3)), jnp.ones((2, 3)), **{name: value})


def _keras(row: Any, name: str, value: Any) -> Any:
    import mse_adapters.keras as mk

    return getattr(mk, row.keras)(**{name: value})(np.ones((2, 3)), np.zeros((2, 3)))


def _own_complex(backend: str) -> Any:
    """A complex scalar array of ``backend``'s framework."""
    value = np.array(0.5 + 0.5j, np.complex64)
    if backend.startswith("torch"):
        import torch

        return torch.as_tensor(value)
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(value)
    if backend.startswith("keras"):
        import keras

        return keras.ops.convert_to_tensor(value)
    return value


def _callers() -> dict[str, Call]:
    out: dict[str, Call] = {"numpy": _numpy}
    if HAVE["torch"]:
        out |= {"torch": _torch_module, "torch-functional": _torch_functional}
    if HAVE["jax"]:
        out["jax"] = _jax
    if HAVE["keras"]:
        import keras

        out[f"keras-{keras.backend.backend()}"] = _keras
    return {k: v for k, v in out.items() if k == "numpy" or selected(k)}


CALLERS = _callers()


def test_every_penalty_parameter_is_covered() -> None:
    assert {p for _, p in PARAMS} == {p.name for pen in PENALTY_TABLE.values() for p in pen.params}


@pytest.mark.parametrize("kind", sorted(BAD))
@pytest.mark.parametrize("row,name", PARAMS, ids=[f"{r.name}-{p}" for r, p in PARAMS])
def test_a_parameter_of_a_wrong_type_is_named_in_every_backend(row: Any, name: str, kind: str) -> None:
    messages = {}
    for backend, call in CALLERS.items():
        with pytest.raises(TypeError) as info:
            call(row, name, BAD[kind])
        messages[backend] = str(info.value)
        assert str(info.value).startswith(f"{name} must be a real number"), (backend, str(info.value))
    assert len(set(messages.values())) == 1, messages


@pytest.mark.parametrize("backend", sorted(CALLERS))
@pytest.mark.parametrize("row,name", PARAMS, ids=[f"{r.name}-{p}" for r, p in PARAMS])
def test_a_complex_array_of_the_framework_is_refused(backend: str, row: Any, name: str) -> None:
    with pytest.raises(TypeError, match=rf"^{name} .*complex"):
        CALLERS[backend](row, name, _own_complex(backend))
