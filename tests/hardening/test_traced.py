"""The catalogue where the call is traced: ``jax.jit`` (JAX, and Keras on JAX),
``tf.function`` (Keras on TensorFlow) and ``torch.compile`` (torch; Keras on torch is the
same mechanism).

What happens there (docs/design.md, "Validation"), and what these tests prove:

- Shape, dtype and parameter errors, and the checks of a constant covariance, scale_tril or
  precision, are raised while tracing, with the eager message.
- The eager value checks (negative or non-finite weights, masks that are not 0/1, a
  negative ``var``, a mask or NaN targets that split a whitened sample) cannot raise on
  traced arrays: they are skipped, and the loss is what ``check_values=False`` computes
  eagerly: a negative weight counts negatively, a NaN or inf weight makes the loss NaN or
  inf, a numeric mask keeps its non-zero entries.
- In JAX, ``check_values="checkify"`` turns them into ``jax.experimental.checkify`` checks
  that work under ``jax.jit``: the error that ``checkify.checkify`` returns carries the eager
  message.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conformance.harness import assert_close

from .catalogue import ENTRIES, Entry
from .runners import HAVE, TRACED, JaxRunner, KerasRunner, Runner, TorchRunner, selected
from .test_catalogue import assert_same_message, reference_message, skip_if_lacking

RAISING = [e for e in ENTRIES if not e.value_check and not e.foreign and not e.keras_aligns]
VALUE_CHECKS = [e for e in ENTRIES if e.value_check]


def test_partition():
    assert len(VALUE_CHECKS) >= 12 and len(RAISING) >= 50


@pytest.mark.parametrize("runner", TRACED, ids=repr)
@pytest.mark.parametrize("entry", RAISING, ids=lambda e: e.id)
def test_same_error_while_tracing(runner, entry):
    skip_if_lacking(runner, entry)
    with pytest.raises(entry.exc) as info:
        runner.run(entry)
    assert_same_message(runner, entry, runner.unwrap(str(info.value), entry.exc))


def _eager_twin(runner: Runner) -> Runner:
    twin = type(runner)()  # the same backend, eager
    return twin


def _same(a, b) -> None:
    assert_close(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), "float32-rerun", "traced vs eager")


@pytest.mark.parametrize("runner", TRACED, ids=repr)
@pytest.mark.parametrize("entry", VALUE_CHECKS, ids=lambda e: e.id)
def test_value_checks_are_skipped_while_tracing(runner, entry):
    """No error: the value of an eager call with ``check_values=False``."""
    skip_if_lacking(runner, entry)
    traced = runner.run(entry)
    _same(traced, _eager_twin(runner).run(entry, check_values=False))


# -- JAX: constants closed over ------------------------------------------------------------------

CONSTANTS: list[Runner] = []
if HAVE["jax"] and selected("jax"):
    CONSTANTS.append(JaxRunner(jit=True, closed=True))
if HAVE["keras"]:
    import keras

    if keras.backend.backend() == "jax" and selected("keras"):
        CONSTANTS.append(KerasRunner(traced=True, closed=True))


@pytest.mark.parametrize("runner", CONSTANTS, ids=repr)
@pytest.mark.parametrize("entry", [e for e in VALUE_CHECKS if not e.needs], ids=lambda e: e.id)
def test_constant_weights_and_masks_are_checked_under_jax_jit(runner, entry):
    """A weight, sample weight or mask closed over by a jitted function is a constant: JAX
    stages even its operations inside ``jax.jit``, so the checks run at trace time
    (``jax.ensure_compile_time_eval``) and raise the eager error. (They used to fail with
    JAX's TracerArrayConversionError, valid weights included.)"""
    with pytest.raises(entry.exc) as info:
        runner.run(entry)
    assert_same_message(runner, entry, str(info.value))


@pytest.mark.parametrize("runner", CONSTANTS, ids=repr)
def test_valid_constant_weights_and_masks_under_jax_jit(runner):
    entry = Entry("valid constants", ValueError, (), weight=np.array([1.0, 2.0, 0.0]),
                  sample_weight=np.arange(5.0), mask=np.array([1.0, 0.0, 1.0]))
    _same(runner.run(entry), _eager_twin(runner).run(entry))


# -- JAX: checkify --------------------------------------------------------------------------------

JAX = [r for r in TRACED if r.name == "jax-jit"]


@pytest.mark.parametrize("runner", JAX, ids=repr)
@pytest.mark.parametrize("entry", VALUE_CHECKS, ids=lambda e: e.id)
def test_checkify_under_jit_carries_the_eager_message(runner, entry):
    from jax.experimental import checkify

    skip_if_lacking(runner, entry)
    run = runner.run

    def checked(e: Entry):
        return checkify.checkify(lambda: run(e, check_values="checkify"))()

    err, _ = checked(entry)
    assert err.get() is not None, "checkify found nothing"
    assert reference_message(runner, entry) in err.get()
    with pytest.raises(checkify.JaxRuntimeError):
        err.throw()


# -- torch.compile ------------------------------------------------------------------------------


@pytest.mark.skipif(not HAVE["torch"] or not selected("torch"), reason="torch not installed or not selected")
@pytest.mark.parametrize("entry", [e for e in VALUE_CHECKS if e.id in (
    "negative weight", "NaN sample_weight", "mask of 0.5")], ids=lambda e: e.id)
def test_value_checks_are_skipped_under_torch_compile(entry):
    """Dynamo traces the check away (``torch.compiler.is_compiling()``); the compiled loss
    is the eager one with ``check_values=False``. (``backend="eager"``: Dynamo's tracing is
    what is tested, without Inductor's compile time.)"""
    import torch

    class Compiled(TorchRunner):
        def call(self, fn, a, kw):
            return torch.compile(lambda p, t, w, sw, m: fn(p, t, weight=w, sample_weight=sw, mask=m, **kw),
                                 backend="eager", fullgraph=True)(
                a["pred"], a["target"], a["weight"], a["sample_weight"], a["mask"])

    torch._dynamo.reset()
    _same(Compiled().run(entry), TorchRunner().run(entry, check_values=False))
