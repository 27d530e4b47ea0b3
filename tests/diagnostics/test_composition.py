"""The diagnostics composed with the rest of the contract, as the gallery uses them: shares
of a loss with missing targets (NaN) and with all weights zero, every backend against the
reference; a derivative penalty through a loss module (torch) and with per-point sample
weights; bias_variance of members that are missing a target."""

from __future__ import annotations

import numpy as np
import pytest

from mse_adapters import numpy as mnp
from mse_adapters import preset

from ..conformance.harness import assert_close
from ._backends import ALL, DIFFERENTIABLE, Backend
from .test_derivatives import COEF, V, _coef, design, poly


def _missing(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p, t = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    t[rng.uniform(size=t.shape) < 0.3] = np.nan
    t[3] = np.nan  # a sample with no target at all
    return p, t


@pytest.mark.parametrize("b", ALL, ids=lambda b: b.id)
@pytest.mark.parametrize("reduction", ["mean", "sum", "sum_over_batch_size"])
def test_contributions_with_missing_targets(b: Backend, reduction: str) -> None:
    p, t = _missing(0)
    if b.dtype == "float32":
        p, t = p.astype(np.float32).astype(np.float64), t.astype(np.float32).astype(np.float64)
    ref = mnp.contributions(p, t, "huber", delta=0.5, missing="nan", reduction=reduction, k=2)
    spec = preset("huber", delta=0.5, missing="nan", reduction=reduction)
    assert_close(ref.loss, mnp.loss(spec, t, p), "float64", "contributions' loss against the loss")
    assert_close(ref.per_sample.sum(), ref.loss, "float64", "the shares' sum against the loss")
    assert ref.per_sample[3] == 0.0 and np.isfinite(ref.per_sample).all()
    with b.ctx():
        got = b.module().contributions(b.array(p), b.array(t), "huber", delta=0.5, missing="nan", reduction=reduction,
                                       k=2)
        b.close(b.host(got.per_sample), ref.per_sample)
        b.close(b.host(got.loss), ref.loss)
    np.testing.assert_array_equal(got.top_indices, ref.top_indices)


@pytest.mark.parametrize("b", ALL, ids=lambda b: b.id)
def test_contributions_all_weights_zero(b: Backend) -> None:
    rng = np.random.default_rng(1)
    p, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    with b.ctx():
        got = b.module().contributions(b.array(p), b.array(t), "mse", sample_weight=b.array(np.zeros(4)))
        np.testing.assert_array_equal(b.host(got.per_sample), np.zeros(4))
        assert float(b.host(got.loss)) == 0.0


@pytest.mark.parametrize("b", DIFFERENTIABLE, ids=lambda b: b.id)
def test_derivative_penalty_with_sample_weight(b: Backend) -> None:
    """dE/dV at every point against a target, each point weighted: the reference's weighted MSE
    of the exact derivatives, and its gradient w.r.t. the coefficients by the chain rule."""
    rng = np.random.default_rng(2)
    target = rng.normal(size=V.shape)
    sw = rng.uniform(0.0, 2.0, size=V.shape)
    sw[1] = 0.0
    a = design(V, 1)
    ref, g = mnp.value_and_grad(preset("mse"), target, a @ COEF, sample_weight=sw)
    mod = b.module()
    with b.ctx():
        def penalty(c: object) -> object:
            return mod.derivative_penalty(poly(b, c), b.array(V), b.array(target), sample_weight=b.array(sw))

        if b.name == "torch":
            import torch

            c = _coef(b)
            value = penalty(c)
            (grad,) = torch.autograd.grad(value, c)
        else:
            import jax

            value, grad = jax.value_and_grad(penalty)(b.array(COEF))
        b.close(b.host(value), ref)
        b.close(b.host(grad), a.T @ g["y_pred"], scale=10.0)


def test_torch_derivative_penalty_through_a_loss_module() -> None:
    """``loss=`` may be a module of the adapter (its constructor arguments and buffers apply)."""
    pytest.importorskip("torch")
    import torch

    from mse_adapters import torch as mt

    b = next(x for x in DIFFERENTIABLE if x.name == "torch" and x.dtype == "float64")
    weight = np.linspace(0.5, 1.5, len(V))
    target = np.full(len(V), 0.4)
    a = design(V, 2) * V[:, None]
    ref, g = mnp.value_and_grad(preset("huber", delta=0.3), target, a @ COEF, weight=weight)
    c = _coef(b)
    loss_fn = mt.HuberLoss(delta=0.3, weight=torch.tensor(weight))
    value = mt.derivative_penalty(poly(b, c), torch.tensor(V), torch.tensor(target), order=2, scale=torch.tensor(V),
                                  loss=loss_fn)
    (grad,) = torch.autograd.grad(value, c)
    b.close(value.detach().numpy(), ref)
    b.close(grad.numpy(), a.T @ g["y_pred"], scale=10.0)


@pytest.mark.parametrize("b", ALL, ids=lambda b: b.id)
def test_bias_variance_members_missing_a_target(b: Backend) -> None:
    """NaN targets with ``missing="nan"``: every member loses the same elements; the parts add
    up and equal the reference's MSEs of the mean and of each member."""
    rng = np.random.default_rng(3)
    p = rng.normal(size=(3, 5, 2))
    t = rng.normal(size=(5, 2))
    t[0, 1] = t[4] = np.nan
    with b.ctx():
        got = b.module().bias_variance(b.array(p), b.array(t), missing="nan")
        bias2 = mnp.mse(t, p.mean(0), missing="nan")
        expected = np.mean([mnp.mse(t, p[k], missing="nan") for k in range(3)])
        b.close(b.host(got.bias2), bias2)
        b.close(b.host(got.expected_mse), expected)
        b.close(b.host(got.variance), expected - bias2, scale=10.0)
