"""Per-sample contributions in every backend that has them: for every additive preset of the
preset table, the shares add up to the reference's loss, a sample's share under ``sum`` is
the reference's loss of that sample alone, and every backend's shares equal the reference's;
the top-k; the presets that do not split into shares raise."""

from __future__ import annotations

import numpy as np
import pytest

from mse_adapters import _messages as msg
from mse_adapters import numpy as mnp
from mse_adapters import preset
from mse_adapters._presets import PRESET_TABLE

from ..conformance.harness import assert_close
from ._backends import ALL, Backend

ADDITIVE = [p.name for p in PRESET_TABLE if p.spec.finalize == "identity" and p.spec.penalty != "gaussian_nll"]
NOT_ADDITIVE = [p.name for p in PRESET_TABLE if p.spec.finalize != "identity"]
REDUCTIONS = ("mean", "sum", "sum_over_batch_size")


def _problem(seed: int, masked: bool) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    p, t = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    kw = {"weight": rng.uniform(0.1, 2, size=(3,)), "sample_weight": rng.uniform(0.1, 2, size=(6,))}
    if masked:
        m = rng.uniform(size=(6, 3)) > 0.3
        m[2] = False  # a sample with nothing valid contributes 0
        p[~m] = np.nan
        kw["mask"] = m
    return p, t, kw


@pytest.mark.parametrize("name", ADDITIVE)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
def test_reference_shares_add_up(name: str, reduction: str, masked: bool) -> None:
    p, t, kw = _problem(1, masked)
    spec = preset(name, reduction=reduction)
    c = mnp.contributions(p, t, spec, **kw)
    ref = mnp.loss(spec, t, p, **kw)
    assert_close(c.loss, ref, "float64", f"{name} contributions' loss against the loss")
    assert_close(c.per_sample.sum(), ref, "float64", f"{name} shares' sum against the loss")
    if reduction == "sum":  # a share is the loss of that sample alone
        for s in range(6):
            one = {n: (v[s:s + 1] if v.shape[:1] == (6,) else v) for n, v in kw.items()}
            assert_close(c.per_sample[s], mnp.loss(spec, t[s:s + 1], p[s:s + 1], **one), "float64",
                         f"{name} share {s} against the loss of sample {s} alone")
    if masked:
        assert c.per_sample[2] == 0.0


@pytest.mark.parametrize("b", [b for b in ALL if b.name != "numpy"], ids=lambda b: b.id)
@pytest.mark.parametrize("name", ADDITIVE)
def test_backends_equal_the_reference(b: Backend, name: str) -> None:
    p, t, kw = _problem(2, masked=True)
    if b.dtype == "float32":
        p, t = p.astype(np.float32).astype(np.float64), t.astype(np.float32).astype(np.float64)
    for reduction in REDUCTIONS:
        ref = mnp.contributions(p, t, name, reduction=reduction, k=3, **kw)
        with b.ctx():
            got = b.module().contributions(b.array(p), b.array(t), name, reduction=reduction, k=3,
                                           **{n: b.array(v) for n, v in kw.items()})
            b.close(b.host(got.per_sample), ref.per_sample)
            b.close(b.host(got.loss), ref.loss)
        np.testing.assert_array_equal(got.top_indices, ref.top_indices)
        assert got.per_sample.shape == (6,)


def test_top_k_and_parameters() -> None:
    p = np.array([0.0, 3.0, 1.0, -2.0])
    t = np.zeros(4)
    c = mnp.contributions(p, t, "huber", delta=1.0, k=2, reduction="sum")
    assert c.top_indices.tolist() == [1, 3]
    np.testing.assert_allclose(c.top_values, [2.5, 1.5])
    assert mnp.contributions(p, t).top_indices is None
    empty = mnp.contributions(np.zeros((0, 2)), np.zeros((0, 2)))
    assert empty.per_sample.shape == (0,) and empty.loss == 0.0


@pytest.mark.parametrize("b", ALL, ids=lambda b: b.id)
def test_errors(b: Backend) -> None:
    mod = b.module()
    with b.ctx():
        p = b.array(np.zeros((3, 2)))
        for name in NOT_ADDITIVE:
            with pytest.raises(ValueError, match="weighted sum of its units"):
                mod.contributions(p, p, name)
        for reduction in ("none", "per_sample", "per_output"):
            with pytest.raises(ValueError) as e:
                mod.contributions(p, p, "mse", reduction=reduction)
            assert str(e.value) == msg.not_additive(f"reduction={reduction!r}")
        with pytest.raises(ValueError) as e:
            mod.contributions(b.array(np.zeros(())), b.array(np.zeros(())))
        assert str(e.value) == msg.contributions_scalar("predictions")
