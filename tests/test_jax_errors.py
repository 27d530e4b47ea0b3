"""The hardening catalogue of bad inputs through the JAX adapter: the same exception type,
the same words and (names of the prediction and target aside) the same message as the NumPy
reference; eagerly, and under jax.jit where the error is raised while tracing (shapes,
dtypes, parameters: everything but the value checks, which cannot run on traced arrays)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import mse_adapters.jax as mj  # noqa: E402
from mse_adapters import preset  # noqa: E402
from tests.hardening.catalogue import ENTRIES, Entry  # noqa: E402
from tests.hardening.runners import NumpyRunner, Runner  # noqa: E402

VALUE_CHECKS = ("negative", "finite", "0 and 1")


class JaxRunner(Runner):
    name, own, pred_name, target_name = "jax", "jax", "predictions", "targets"

    def __init__(self, jit: bool = False) -> None:
        self.jit = jit

    def build(self, entry: Entry) -> Callable[..., Any]:
        return mj.compile(preset(entry.spec[0], **entry.spec[1]))

    def convert(self, name: str, x: Any) -> Any:
        a = np.asarray(x)
        if a.dtype.kind in "ic" and jnp.asarray(a).dtype != a.dtype:
            return a  # a NumPy array (also ArrayLike), so that its dtype is not narrowed
        return jnp.asarray(a)

    def call(self, fn: Callable[..., Any], a: dict[str, Any]) -> Any:
        def f(pred: Any, target: Any, weight: Any, sample_weight: Any, mask: Any) -> Any:
            return fn(pred, target, weight=weight, sample_weight=sample_weight, mask=mask)

        args = (a["pred"], a["target"], a["weight"], a["sample_weight"], a["mask"])
        return jax.jit(f)(*args) if self.jit else f(*args)


JAX, NUMPY = JaxRunner(), NumpyRunner()


def _message(runner: Runner, entry: Entry) -> str:
    with pytest.raises(entry.exc) as info:
        runner.run(entry)
    return str(info.value)


def _reference_message(entry: Entry) -> str:
    """The NumPy reference's message with its argument names replaced by JAX's (the other
    way round would also rename the words "predictions" and "targets" in the text)."""
    msg = re.sub(rf"\b{NUMPY.pred_name}\b", JAX.pred_name, _message(NUMPY, entry))
    return re.sub(rf"\b{NUMPY.target_name}\b", JAX.target_name, msg)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.id)
def test_entry_raises(entry):
    with pytest.raises(entry.exc) as info:
        JAX.run(entry)
    for w in JAX.words(entry):
        assert w in str(info.value), f"{w!r} not in {str(info.value)!r}"


@pytest.mark.parametrize("entry", [e for e in ENTRIES if not e.foreign], ids=lambda e: e.id)
def test_same_message_as_the_reference(entry):
    assert _message(JAX, entry) == _reference_message(entry)


JIT_ENTRIES = [e for e in ENTRIES if not e.foreign and e.when == "call"
               and not any(w in VALUE_CHECKS for w in e.words) and "complex" not in e.words]


@pytest.mark.parametrize("entry", JIT_ENTRIES, ids=lambda e: e.id)
def test_same_error_while_tracing_under_jit(entry):
    assert _message(JaxRunner(jit=True), entry) == _reference_message(entry)


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.when == "call"
                                   and any(w in VALUE_CHECKS for w in e.words)], ids=lambda e: e.id)
def test_value_checks_do_not_raise_under_jit(entry):
    out = JaxRunner(jit=True).run(entry)
    assert np.shape(out) == ()
