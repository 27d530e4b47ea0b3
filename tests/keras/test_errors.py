"""Keras-only error behaviour. (The catalogue of bad inputs runs through the Keras adapter with
every other backend in tests/hardening/test_catalogue.py.) The two ``(B,)`` vs ``(B, 1)``
catalogue entries are not errors in Keras: its rank alignment applies there, and the loss
equals the reference on the aligned arrays."""

from __future__ import annotations

import numpy as np
import pytest

from mse_adapters import preset
from tests.conformance.harness import assert_close
from tests.hardening.catalogue import ENTRIES  # noqa: I001

from .common import KCase, keras_run, mk, reference


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.keras_aligns], ids=lambda e: e.id)
def test_rank_alignment_instead_of_an_error(entry):
    a = entry.arrays()
    rng = np.random.default_rng(0)
    case = KCase(entry.id, rng.normal(size=np.shape(a["target"])), rng.normal(size=np.shape(a["pred"])))
    for loss in (mk.compile(preset("mse")), mk.MeanSquaredError()):
        got, _ = keras_run(loss, case)
        want, _ = reference(loss.spec, case, wrt=())
        assert_close(got, want, "float32-rerun", entry.id)


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
