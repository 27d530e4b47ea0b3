"""The catalogue of bad inputs (tests/hardening/catalogue.py) through the Keras adapter under
this process's Keras backend: the same exception type and, Keras' argument names aside (they
are the reference's, ``y_true``/``y_pred``), the same message as the NumPy reference. The two
``(B,)`` vs ``(B, 1)`` entries are not errors in Keras: its rank alignment applies there."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mse_adapters import preset
from tests.conformance.backend_keras import tensor  # noqa: I001
from tests.hardening.catalogue import ENTRIES, Entry
from tests.hardening.runners import NumpyRunner, Runner

from .common import BACKEND, KCase, keras_run, mk, reference

FRAMEWORK = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[BACKEND]
ALIGNED = {"pred (4,1) vs target (4,)", "pred (4,) vs target (4,1)"}


class KerasRunner(Runner):
    name, own, pred_name, target_name = f"keras-{BACKEND}", FRAMEWORK, "y_pred", "y_true"

    def build(self, entry: Entry) -> Any:
        return mk.compile(preset(entry.spec[0], **entry.spec[1]))

    def convert(self, name: str, x: Any) -> Any:
        return tensor(x)

    def call(self, fn: Any, a: dict[str, Any]) -> Any:
        return fn(a["target"], a["pred"], a["sample_weight"], weight=a["weight"], mask=a["mask"])


RUNNER = KerasRunner()
ERRORS = [e for e in ENTRIES if e.id not in ALIGNED]


@pytest.mark.parametrize("entry", ERRORS, ids=lambda e: e.id)
def test_entry_raises_the_reference_error(entry):
    with pytest.raises(entry.exc) as info:
        RUNNER.run(entry)
    msg = str(info.value)
    for w in RUNNER.words(entry):
        assert w in msg, f"{w!r} not in {msg!r}"
    if not entry.foreign:
        with pytest.raises(entry.exc) as ref:
            NumpyRunner().run(entry)
        assert msg == str(ref.value)


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.id in ALIGNED], ids=lambda e: e.id)
def test_rank_alignment_instead_of_an_error(entry):
    a = entry.arrays()
    rng = np.random.default_rng(0)
    case = KCase(entry.id, rng.normal(size=np.shape(a["target"])), rng.normal(size=np.shape(a["pred"])))
    for loss in (mk.compile(preset("mse")), mk.MeanSquaredError()):
        got, _ = keras_run(loss, case)
        want, _ = reference(loss.spec, case, wrt=())
        assert np.isclose(got, want, rtol=1e-6)


def test_value_checks_run_eagerly_and_can_be_turned_off():
    y, p = np.zeros((4, 3), "float32"), np.ones((4, 3), "float32")
    bad = -np.ones(4, "float32")
    for loss in (mk.MeanSquaredError(), mk.MeanSquaredError(missing="nan")):  # both paths
        with pytest.raises(ValueError, match="sample_weight must be non-negative"):
            loss(y, p, bad)
    for loss in (mk.MeanSquaredError(check_values=False), mk.MeanSquaredError(missing="nan", check_values=False)):
        assert np.isclose(float(np.asarray(loss(y, p, bad))), -1.0)
    with pytest.raises(ValueError, match="weight must be finite"):
        mk.Huber(weight=[1.0, np.nan, 1.0])
    with pytest.raises(ValueError, match="0 and 1"):
        mk.Huber(mask=[1.0, 0.5, 1.0])


def test_keras_reduction_names():
    assert mk.MeanSquaredError(reduction="mean").spec.reduction == "sum_over_batch_size"
    assert mk.MeanSquaredError(reduction="mean_with_sample_weight").spec.reduction == "mean"
    assert mk.MeanSquaredError(reduction=None).spec.reduction == "none"
    with pytest.raises(ValueError, match="reduction='batchmean' is not supported"):
        mk.MeanSquaredError(reduction="batchmean")
    with pytest.raises(ValueError, match="mean_with_sample_weight"):
        mk.RootMeanSquaredError(reduction="sum")  # the message explains the two vocabularies
    with pytest.raises(TypeError, match="LossSpec"):
        mk.Loss("mse")
