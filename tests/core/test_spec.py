"""LossSpec: validation, immutability, hashing, repr and serialisation."""

from __future__ import annotations

import dataclasses
import json
import pickle

import pytest

from mse_adapters import PRESETS, LossSpec, preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name):
    spec = PRESETS[name]
    again = LossSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and hash(again) == hash(spec)
    assert pickle.loads(pickle.dumps(spec)) == spec


def test_tuple_multioutput_round_trips_and_hashes():
    spec = preset("r2", multioutput=[0.2, 0.8])
    assert spec.multioutput == (0.2, 0.8)
    d = spec.to_dict()
    assert d["multioutput"] == [0.2, 0.8]
    assert LossSpec.from_dict(json.loads(json.dumps(d))) == spec
    assert len({spec, preset("r2", multioutput=(0.2, 0.8))}) == 1


def test_immutable():
    spec = preset("mse")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.reduction = "sum"  # type: ignore[misc]


def test_repr_is_readable_and_shows_only_what_matters():
    assert repr(preset("mse")) == "LossSpec(penalty='square')"
    assert repr(preset("huber", delta=0.5, reduction="sum")) == (
        "LossSpec(penalty='huber', delta=0.5, reduction='sum')"
    )
    # parameters of other penalties are not shown
    assert "tau" not in repr(preset("huber")) and "delta" not in repr(preset("expectile", tau=0.9))


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"penalty": "quartic"}, ["penalty", "'quartic'", "'square'", "'expectile'"]),
        ({"penalty": "huber", "delta": -1.0}, ["delta", "> 0"]),
        ({"penalty": "huber", "delta": 0.0}, ["delta", "> 0"]),
        ({"delta": float("nan")}, ["delta", "finite"]),
        ({"beta": -0.5}, ["beta", ">= 0"]),
        ({"tau": 0.0}, ["tau", "(0, 1)"]),
        ({"tau": 1.0}, ["tau", "(0, 1)"]),
        ({"tau": "half"}, ["tau", "real number"]),
        ({"reduction": "batchmean"}, ["reduction", "'batchmean'", "'sum_over_batch_size'"]),
        ({"finalize": "log"}, ["finalize", "'sqrt'"]),
        ({"missing": "drop"}, ["missing", "'nan'"]),
        ({"multioutput": "average"}, ["multioutput", "'raw_values'"]),
        ({"multioutput": (0.5, -1.0)}, ["multioutput", "non-negative"]),
        ({"finalize": "sqrt", "reduction": "sum"}, ["finalize='sqrt'", "reduction='sum'"]),
        ({"finalize": "r2", "penalty": "abs", "multioutput": "uniform_average"}, ["penalty='square'"]),
        ({"finalize": "r2"}, ["multioutput", "'pooled'"]),
        ({"multioutput": "variance_weighted"}, ["variance_weighted", "nmse"]),
        ({"multioutput": "raw_values", "reduction": "sum"}, ["multioutput", "reduction='sum'"]),
        ({"per_sample": True, "reduction": "per_output"}, ["per_sample", "per_output"]),
        ({"per_sample": "yes"}, ["per_sample", "bool"]),
    ],
)
def test_invalid_specs_name_the_field(kwargs, words):
    with pytest.raises(ValueError) as info:
        LossSpec(**kwargs)
    for w in words:
        assert w in str(info.value)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown LossSpec field"):
        LossSpec.from_dict({"penalty": "square", "dleta": 1.0})


def test_preset_overrides_and_unknown_preset():
    assert preset("smooth_l1", beta=0.0).beta == 0.0
    with pytest.raises(ValueError, match="preset"):
        preset("msle")


def test_r2_per_output_means_raw_values():
    assert preset("r2", reduction="per_output").multioutput == "raw_values"


def test_expectile_half_is_half_the_mse():
    from mse_adapters import numpy as mnp

    y, p = [0.0, 1.0, -2.0, 3.5], [1.0, 0.5, 0.0, 3.0]
    assert mnp.expectile(y, p, tau=0.5) == pytest.approx(0.5 * mnp.mse(y, p), rel=1e-15)
    # sign convention: under-prediction (y_pred < y_true) is weighted by tau
    assert mnp.expectile([1.0], [0.0], tau=0.9) == pytest.approx(0.9)
    assert mnp.expectile([0.0], [1.0], tau=0.9) == pytest.approx(0.1)
