"""Plans (docs/design.md, "Plans"): a call signature's plan is built once per loss object or
functional form, a call then runs its array work, and its value checks reach the host in one
transfer (none with check_values=False)."""

from __future__ import annotations

import numpy as np
import pytest

from mse_adapters import _prepare, preset
from mse_adapters._ops import Call, Context


@pytest.fixture
def builds(monkeypatch):
    """The specs of the plans built during the test."""
    built: list = []
    real = _prepare.build

    def counting(spec, call, ctx):
        built.append(spec)
        return real(spec, call, ctx)

    monkeypatch.setattr(_prepare, "build", counting)
    return built


def test_signature_depends_on_kinds_dtypes_and_shapes_not_values():
    from mse_adapters.numpy import NumpyOps

    ctx = Context(NumpyOps(), check_values=True, dtype="float64")
    spec = preset("mse")
    a = Call(np.zeros((4, 2)), np.ones((4, 2)), weight=np.ones(2))
    b = Call(np.full((4, 2), 3.0), np.zeros((4, 2)), weight=np.full(2, 7.0))
    assert _prepare.signature(spec, a, ctx) == _prepare.signature(spec, b, ctx)
    for other in (a._replace(weight=np.ones((4, 2))), a._replace(weight=None), a._replace(mask=np.ones(2, bool)),
                  a._replace(pred=np.zeros((4, 2), np.float32))):
        assert _prepare.signature(spec, other, ctx) != _prepare.signature(spec, a, ctx)
    assert _prepare.signature(preset("huber"), a, ctx) != _prepare.signature(spec, a, ctx)
    assert _prepare.signature(spec, a, ctx._replace(check_values=False)) != _prepare.signature(spec, a, ctx)


def test_numpy_functions_build_a_plan_once_per_signature(builds):
    import mse_adapters.numpy as mnp

    t, p, w = np.zeros((5, 3)), np.ones((5, 3)), np.full(3, 2.0)
    for _ in range(4):
        assert mnp.mse(t, p, weight=w) == 1.0
    assert len(builds) <= 1  # (none if an earlier test built this signature's plan)
    mnp.mse(t, p, weight=np.ones((5, 3)))
    mnp.mse(t[:2], p[:2], weight=w)
    assert len(builds) <= 3 and builds.count(preset("mse")) == len(builds)


def test_a_plan_still_raises_every_value_error_per_call():
    import mse_adapters.numpy as mnp

    t, p = np.zeros(3), np.ones(3)
    assert mnp.mse(t, p, weight=np.ones(3)) == 1.0
    with pytest.raises(ValueError, match="weight must be non-negative"):
        mnp.mse(t, p, weight=np.array([1.0, -1.0, 1.0]))  # the same signature: the checks run again
    with pytest.raises(ValueError, match="weight must be finite"):
        mnp.mse(t, p, weight=np.array([1.0, np.nan, 1.0]))


def test_torch_value_checks_one_transfer_and_none_without_checks(monkeypatch):
    torch = pytest.importorskip("torch")
    import mse_adapters.torch as mt

    transfers: list[int] = []
    real = mt.OPS.host_values

    def counting(stats):
        transfers.append(len(stats))
        return real(stats)

    monkeypatch.setattr(mt.OPS, "host_values", counting)
    p, t = torch.randn(6, 3, requires_grad=True), torch.randn(6, 3)
    w, m = torch.rand(6, 3), torch.tensor([0.0, 1.0, 1.0])
    tau = torch.tensor([0.2, 0.5, 0.8])
    mt.QuantileLoss(tau=tau)(p, t, weight=w, mask=m, sample_weight=torch.ones(6))
    assert transfers == [7]  # the extrema of the weight, sample weight and tau, the mask's count: one transfer
    transfers.clear()
    mt.QuantileLoss(tau=tau, check_values=False)(p, t, weight=w, mask=m)
    mt.mse_loss(p, t, weight=w, check_values=False)
    assert transfers == []


def test_a_torch_module_holds_its_plans(builds, monkeypatch):
    torch = pytest.importorskip("torch")
    import mse_adapters.torch as mt

    monkeypatch.setattr(mt, "build", _prepare.build)  # (the counting one)
    f = mt.HuberLoss(delta=0.5)
    p, t = torch.randn(4, 2), torch.randn(4, 2)
    for _ in range(3):
        f(p, t, mask=torch.ones(4, 2, dtype=torch.bool))
    assert len(f._plans) == 1 and len(builds) == 1
    clone = __import__("copy").deepcopy(f)
    assert len(clone._plans) == 0  # a cache, not state
    assert torch.equal(clone(p, t, mask=torch.ones(4, 2, dtype=torch.bool)), f(p, t, mask=torch.ones(4, 2,
                                                                                                 dtype=torch.bool)))


@pytest.mark.skipif("not __import__('importlib').util.find_spec('torch')")
def test_cuda_value_checks_synchronise_once_and_never_without_checks():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    import mse_adapters.torch as mt

    dev = torch.device("cuda")
    p = torch.randn(64, 8, device=dev, requires_grad=True)
    t, w = torch.randn(64, 8, device=dev), torch.rand(64, 8, device=dev)
    m = torch.rand(64, 8, device=dev) > 0.3
    f, g = mt.MSELoss(check_values=False), mt.MSELoss()
    f(p, t, weight=w, mask=m), g(p, t, weight=w, mask=m)  # the plans
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = f(p, t, weight=w, mask=m)
        torch.autograd.grad(out, p)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with pytest.warns(UserWarning) as record:
            g(p, t, weight=w, mask=m)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert sum("synchroniz" in str(r.message) for r in record) == 1


def test_a_keras_loss_holds_its_plans():
    pytest.importorskip("keras")
    import mse_adapters.keras as mk

    f = mk.Huber(missing="nan")
    y, p = np.array([[1.0, np.nan], [0.5, 2.0]]), np.array([[0.0, 1.0], [0.5, 1.0]])
    values = [float(f(y, p)) for _ in range(3)]
    assert len(f._plans) == 1 and values[0] == values[1] == values[2]
    f(y, p, sample_weight=np.array([1.0, 2.0]))
    assert len(f._plans) == 2
