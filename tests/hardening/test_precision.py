"""Precision: half inputs never overflow or underflow in the loss; 1e7 float32 elements stay
within 1e-5 of the float64 reference; torch autocast. (The JAX and Keras adapters are
covered by the same tests where installed.)"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mse_adapters import PRESETS, preset
from mse_adapters import numpy as mnp

HAVE_TORCH = importlib.util.find_spec("torch") is not None
HALF_PRESETS = ["mse", "mae", "rmse", "huber", "smooth_l1", "log_cosh", "expectile", "nmse", "r2"]


def _half_case(seed: int = 0):
    rng = np.random.default_rng(seed)
    target = rng.uniform(-6e4, 6e4, (64, 4))
    pred = rng.uniform(-6e4, 6e4, (64, 4))  # |residual| up to ~1.2e5, squares ~1e10
    pred[0, 0], target[0, 0] = 6e4, -6e4  # |residual| beyond the float16 maximum 65504
    return pred, target


@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
@pytest.mark.parametrize("name", HALF_PRESETS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_torch_half_inputs_do_not_overflow(name, dtype, reduction):
    import torch

    import mse_adapters.torch as mt

    try:
        spec = PRESETS[name].replace(reduction=reduction)
    except ValueError:
        pytest.skip("not a valid combination")
    tdt = getattr(torch, dtype)
    pred, target = _half_case()
    p = torch.tensor(pred).to(tdt).requires_grad_(True)
    t = torch.tensor(target).to(tdt)
    out = mt.compile(spec)(p, t)
    ref = mnp.compile(spec)(t.double().numpy(), p.detach().double().numpy())
    assert out.dtype == torch.float32
    assert np.isfinite(out.item())
    assert out.item() == pytest.approx(ref, rel=1e-2, abs=1e-6)
    out.backward()
    assert p.grad.dtype == tdt


@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
@pytest.mark.parametrize("name", ["mse", "mae", "huber", "rmse", "r2"])
def test_torch_float32_1e7_elements_within_1e_5(name):
    import torch

    import mse_adapters.torch as mt

    g = torch.Generator().manual_seed(0)
    n = 10**7
    t = torch.randn(n, generator=g) * 3 + 100.0  # an offset: naive E[y^2]-E[y]^2 would lose it
    p = t + torch.randn(n, generator=g)
    w = torch.rand(n, generator=g)
    spec = PRESETS[name]
    ours = mt.compile(spec)(p, t, weight=w).item()
    ref = mnp.compile(spec)(t.double().numpy(), p.double().numpy(), weight=w.double().numpy())
    assert abs(ours - ref) <= 1e-5 * abs(ref)


@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_torch_autocast(dtype):
    import torch

    import mse_adapters.torch as mt

    torch.manual_seed(0)
    model = torch.nn.Linear(8, 2)
    x = torch.randn(32, 8)
    y = torch.randn(32, 2) * 3e3  # squared errors ~1e7 > 65504, the float16 maximum
    with torch.autocast("cpu", dtype=getattr(torch, dtype)):
        pred = model(x)
        assert pred.dtype == getattr(torch, dtype)
        out = mt.MSELoss()(pred, y, weight=torch.tensor([1.0, 2.0]))
        naive = ((pred - y.to(pred.dtype)) ** 2).mean()
    assert out.dtype == torch.float32 and torch.isfinite(out)
    ref = mnp.mse(y.numpy().astype(np.float64), pred.detach().double().numpy(), weight=[1.0, 2.0])
    assert out.item() == pytest.approx(ref, rel=1e-2)
    if dtype == "float16":
        assert torch.isinf(naive)  # what a hand-written loss does under fp16 autocast
    out.backward()
    assert all(torch.isfinite(q.grad).all() for q in model.parameters())


def test_reference_is_float64():
    out = mnp.compile(preset("mse", reduction="none"))(np.zeros(3, np.float16), np.ones(3, np.float16))
    assert out.dtype == np.float64
