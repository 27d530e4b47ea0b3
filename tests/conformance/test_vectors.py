"""The committed vectors: current with their generator, and met by every backend."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mse_adapters import LossSpec

from . import generate_vectors as gen
from .harness import Case, assert_close, backends

COMMITTED = gen.decode(json.loads(gen.PATH.read_text()))


def _flat(x):
    return np.asarray(x, dtype=np.float64).ravel()


def test_vectors_file_is_current():
    fresh = gen.decode(json.loads(gen.render()))
    assert [c["name"] for c in fresh] == [c["name"] for c in COMMITTED]
    for new, old in zip(fresh, COMMITTED):
        for key in ("value", "grad_pred", "grad_target"):
            assert_close(_flat(new[key]), _flat(old[key]), "float64-exact",
                         f"{new['name']} {key}: rerun generate_vectors.py")


def _case(v) -> Case:
    arr = lambda k: None if v.get(k) is None else np.asarray(v[k], dtype=np.float64)  # noqa: E731
    return Case(
        name=v["name"], spec=LossSpec.from_dict(v["spec"]), pred=arr("pred"), target=arr("target"),
        weight=arr("weight"), sample_weight=arr("sample_weight"),
        mask=None if v.get("mask") is None else np.asarray(v["mask"], dtype=bool),
        cotangent=arr("cotangent"),
    )


def _params():
    for b in backends():
        dtype = "float64" if "float64" in b.dtypes else "float32"
        for v in COMMITTED:
            yield pytest.param(b, dtype, v, id=f"{b.name}-{v['name']}")


@pytest.mark.parametrize("backend,dtype,vector", list(_params()))
def test_backend_meets_vector(backend, dtype, vector):
    case = _case(vector)
    if dtype != "float64":
        rounded = case.rounded(dtype)
        assert np.allclose(rounded.pred, case.pred) and np.allclose(
            np.nan_to_num(rounded.target), np.nan_to_num(case.target)), "vectors are exact in float32"
    value, grads = backend.value_and_grad(case.spec, case, dtype, ("pred", "target"))
    assert_close(value, vector["value"], dtype, f"{backend.name} {case.name} value")
    floor = 0.1 * max(1.0, float(np.max(np.abs(np.asarray(vector["value"])))))
    assert_close(grads["pred"], vector["grad_pred"], dtype, f"{case.name} d/dpred", floor)
    assert_close(grads["target"], vector["grad_target"], dtype, f"{case.name} d/dtarget", floor)
