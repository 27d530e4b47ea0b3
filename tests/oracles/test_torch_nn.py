"""External oracle: torch.nn. With no weights or masks each module equals its torch.nn
counterpart in value and gradient, for every reduction they share; the general pipeline
agrees with it too."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import mse_adapters.torch as mt  # noqa: E402
from mse_adapters import preset  # noqa: E402
from tests.conformance.harness import assert_close  # noqa: E402

PAIRS = [
    ("mse", lambda r: mt.MSELoss(r), lambda r: nn.MSELoss(reduction=r)),
    ("mae", lambda r: mt.MAELoss(r), lambda r: nn.L1Loss(reduction=r)),
    ("huber", lambda r: mt.HuberLoss(r), lambda r: nn.HuberLoss(reduction=r)),
    ("huber-0.3", lambda r: mt.HuberLoss(r, delta=0.3), lambda r: nn.HuberLoss(reduction=r, delta=0.3)),
    ("smooth_l1", lambda r: mt.SmoothL1Loss(r), lambda r: nn.SmoothL1Loss(reduction=r)),
    ("smooth_l1-0.4", lambda r: mt.SmoothL1Loss(r, beta=0.4), lambda r: nn.SmoothL1Loss(reduction=r, beta=0.4)),
    ("smooth_l1-0", lambda r: mt.SmoothL1Loss(r, beta=0.0), lambda r: nn.SmoothL1Loss(reduction=r, beta=0.0)),
]


def _inputs(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    p = t + torch.randn(shape, generator=g, dtype=torch.float64)
    if p.numel():
        p.view(-1)[0] = t.view(-1)[0]  # an exact zero residual
    return p.to(dtype), t.to(dtype)


def _value_and_grads(module, p, t):
    p = p.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)
    out = module(p, t)
    ct = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)
    gp, gt = torch.autograd.grad((out * ct).sum(), (p, t))
    return out.detach(), gp, gt


@pytest.mark.parametrize("name,ours,theirs", PAIRS, ids=[p[0] for p in PAIRS])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(7,), (5, 3), (2, 3, 4)])
def test_module_equals_torch_nn(name, ours, theirs, reduction, dtype, shape):
    p, t = _inputs(shape, dtype)
    v1, gp1, gt1 = _value_and_grads(ours(reduction), p, t)
    v2, gp2, gt2 = _value_and_grads(theirs(reduction), p, t)
    assert v1.dtype == v2.dtype and v1.shape == v2.shape
    # the fast path is the same fused kernel: bit-for-bit
    assert torch.equal(v1, v2) and torch.equal(gp1, gp2) and torch.equal(gt1, gt2)


@pytest.mark.parametrize("name,ours,theirs", PAIRS, ids=[p[0] for p in PAIRS])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_general_pipeline_equals_torch_nn(name, ours, theirs, reduction):
    p, t = _inputs((6, 4), torch.float64, seed=3)
    spec = ours(reduction).spec
    general = lambda a, b: mt.loss(spec, a, b)  # noqa: E731 - the composed path, no fast path
    v1, gp1, gt1 = _value_and_grads(general, p, t)
    v2, gp2, gt2 = _value_and_grads(theirs(reduction), p, t)
    for a, b in ((v1, v2), (gp1, gp2), (gt1, gt2)):
        assert a.dtype == b.dtype
        assert_close(a.detach(), b.detach(), "float64", f"general {name} against torch.nn")


@pytest.mark.parametrize("fn,ours", [(F.mse_loss, mt.mse_loss), (F.l1_loss, mt.mae_loss)])
def test_functional_weight_matches_torch_weighted_mean(fn, ours):
    # torch's F.mse_loss / F.l1_loss weight= is sum(w l) / sum(w): the contract's `mean`
    p, t = _inputs((4, 3), torch.float64)
    w = torch.rand(4, 3, dtype=torch.float64) + 0.1
    got, want = ours(p, t, weight=w), fn(p, t, weight=w)
    assert got.dtype == want.dtype
    assert_close(got, want, "float64", "weighted mean against torch")


def test_huber_weighted_mean_differs_from_torch_on_purpose():
    # F.huber_loss(weight=) divides by N, not by sum(w) (pytorch PR #132049); we divide by
    # sum(w), the weighted mean, the same rule for every penalty.
    p, t = _inputs((8,), torch.float64)
    w = torch.arange(8, dtype=torch.float64)
    ours = mt.huber_loss(p, t, weight=w)
    torch.testing.assert_close(ours, F.huber_loss(p, t, weight=w, reduction="sum") / w.sum())
    torch.testing.assert_close(F.huber_loss(p, t, weight=w), F.huber_loss(p, t, weight=w, reduction="sum") / 8)


def test_half_precision_does_not_overflow():
    p = torch.zeros(8, dtype=torch.float16, requires_grad=True)
    t = torch.full((8,), 1000.0, dtype=torch.float16)
    assert torch.isinf(F.mse_loss(p, t))  # the built-in overflows: 1e6 > 65504
    out = mt.MSELoss()(p, t)
    assert out.dtype == torch.float32 and out.item() == 1e6
    out.backward()
    assert p.grad.dtype == torch.float16 and torch.isfinite(p.grad).all()


def test_empty_batch_is_zero_not_nan():
    p = torch.zeros(0, 3, requires_grad=True)
    assert torch.isnan(F.mse_loss(p, torch.zeros(0, 3)))
    out = mt.MSELoss()(p, torch.zeros(0, 3))
    out.backward()
    assert out.item() == 0.0 and p.grad.shape == (0, 3)


def test_r2_float32_large_offset_matches_sklearn():
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = (1e4 + rng.normal(0, 1, 1000)).astype(np.float32)
    p = (y + rng.normal(0, 0.5, 1000)).astype(np.float32)
    ours = mt.R2Score()(torch.from_numpy(p), torch.from_numpy(y)).item()
    assert ours == pytest.approx(skm.r2_score(y.astype(np.float64), p.astype(np.float64)), rel=1e-5)


def test_integer_inputs_are_promoted():
    out = mt.MSELoss()(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 5]))
    assert out.dtype == torch.get_default_dtype() and out.item() == pytest.approx(4 / 3)


def test_constructor_weight_and_mask_are_buffers_and_combine():
    w = torch.tensor([1.0, 2.0, 0.5])
    m = torch.tensor([True, True, False])
    loss = mt.MSELoss(weight=w, mask=m)
    assert set(loss.state_dict()) == {"weight", "mask", "_extra_state"}
    p, t = _inputs((4, 3), torch.float64)
    expect = mt.mse_loss(p, t, weight=w * torch.tensor([1.0, 3.0, 1.0]), mask=m)
    torch.testing.assert_close(loss(p, t, weight=torch.tensor([1.0, 3.0, 1.0])), expect)
    assert "penalty='square'" in repr(loss)
    assert preset("mse") == loss.spec
