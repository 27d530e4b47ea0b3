"""derivative and derivative_penalty (torch via torch.func.jvp, JAX via jax.jvp) against
the NumPy float64 reference: a polynomial model's derivatives are known exactly, the penalty
is then the reference's loss of them (weights, masks, a scale, another loss), and its
gradient with respect to the coefficients follows from the reference's exact gradient by
the chain rule (the derivatives are linear in the coefficients)."""

from __future__ import annotations

from math import factorial

import numpy as np
import pytest

from mse_adapters import _messages as msg
from mse_adapters import numpy as mnp
from mse_adapters import preset

from ..conformance.harness import assert_close
from ._backends import DIFFERENTIABLE, Backend

COEF = np.array([0.3, -1.2, 0.8, 0.5, -0.25])
V = np.linspace(0.5, 2.0, 7)


def design(v: np.ndarray, order: int) -> np.ndarray:
    """A[i, j] = d^order/dv^order v^j at v_i, so that the derivative of the model is A @ c."""
    a = np.zeros((len(v), len(COEF)))
    for j in range(order, len(COEF)):
        a[:, j] = factorial(j) / factorial(j - order) * v ** (j - order)
    return a


def poly(b: Backend, c: object) -> object:
    def model(v: object) -> object:
        return sum(c[j] * v**j for j in range(len(COEF)))  # type: ignore[index,operator]

    return model


def _coef(b: Backend) -> object:
    if b.name == "torch":
        import torch

        return torch.tensor(COEF.astype(b.dtype), requires_grad=True)
    return b.array(COEF)


@pytest.mark.parametrize("b", DIFFERENTIABLE, ids=lambda b: b.id)
@pytest.mark.parametrize("order", [1, 2, 3])
def test_derivatives_are_exact(b: Backend, order: int) -> None:
    with b.ctx():
        got = b.module().derivative(poly(b, _coef(b)), b.array(V), order=order)
        b.close(b.host(got), design(V, order) @ COEF)


@pytest.mark.parametrize("b", DIFFERENTIABLE, ids=lambda b: b.id)
@pytest.mark.parametrize("loss", ["mse", "huber"])
@pytest.mark.parametrize("order", [1, 2])
def test_penalty_value_and_gradient(b: Backend, loss: str, order: int) -> None:
    rng = np.random.default_rng(order)
    target = rng.normal(size=V.shape)
    weight = rng.uniform(0.1, 2, size=V.shape)
    mask = rng.uniform(size=V.shape) > 0.2
    a = design(V, order) * V[:, None]  # scale = V: the penalty is on V d^n E / dV^n
    spec = preset(loss, delta=0.5) if loss == "huber" else preset(loss)
    kw = {"weight": weight, "mask": mask}
    ref, g = mnp.value_and_grad(spec, target, a @ COEF, **kw)
    ref_grad = a.T @ g["y_pred"]
    mod = b.module()
    fn = {"mse": mod.mse_loss if b.name == "torch" else mod.mse,
          "huber": mod.huber_loss if b.name == "torch" else mod.huber}[loss]
    extra = {"delta": 0.5} if loss == "huber" else {}

    def penalty(c: object) -> object:
        return mod.derivative_penalty(poly(b, c), b.array(V), b.array(target), order=order, scale=b.array(V),
                                      loss=fn, weight=b.array(weight), mask=b.array(mask), **extra)

    with b.ctx():
        if b.name == "torch":
            import torch

            c = _coef(b)
            value = penalty(c)
            (grad,) = torch.autograd.grad(value, c)
        else:
            import jax

            value, grad = jax.value_and_grad(penalty)(b.array(COEF))
            jv, jg = jax.jit(jax.value_and_grad(penalty))(b.array(COEF))
            b.close(b.host(jv), ref)
            b.close(b.host(jg), ref_grad, scale=10.0)
        b.close(b.host(value), ref)
        b.close(b.host(grad), ref_grad, scale=10.0)


@pytest.mark.parametrize("b", DIFFERENTIABLE, ids=lambda b: b.id)
def test_default_target_and_loss(b: Backend) -> None:
    """The default: the MSE of the derivative against zeros (the derivative should vanish)."""
    with b.ctx():
        got = b.module().derivative_penalty(poly(b, _coef(b)), b.array(V))
        b.close(b.host(got), mnp.mse(np.zeros_like(V), design(V, 1) @ COEF))


@pytest.mark.parametrize("b", DIFFERENTIABLE, ids=lambda b: b.id)
def test_directions_of_vector_inputs(b: Backend) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 2))
    a = np.array([1.5, -0.5])
    v = rng.normal(size=(5, 2))
    mod = b.module()
    with b.ctx():
        aa = b.array(a)

        def f(y: object) -> object:
            return (aa * y * y).sum(-1)  # type: ignore[operator,union-attr]

        first = mod.derivative(f, b.array(x), direction=b.array(v))
        second = mod.derivative(f, b.array(x), order=2, direction=b.array(v[0]))
        b.close(b.host(first), 2 * (a * x * v).sum(-1))
        b.close(b.host(second), np.full(5, 2 * (a * v[0] ** 2).sum()))
        with pytest.raises(ValueError) as e:
            mod.derivative(f, b.array(x))
        assert str(e.value) == msg.derivative_direction((5, 2))
        for order in (0, 1.5, True):
            with pytest.raises(ValueError) as e:
                mod.derivative(f, b.array(x), order=order, direction=b.array(v))
            assert str(e.value) == msg.derivative_order(order)


def test_torch_module_matches_double_backward() -> None:
    torch = pytest.importorskip("torch")
    from mse_adapters import torch as mt

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    x = torch.linspace(-1, 1, 6, dtype=torch.float64)[:, None].requires_grad_(True)
    (g,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x)
    d2 = mt.derivative(net, x.detach(), order=2)
    assert d2.dtype == h.dtype and d2.shape == h.shape
    assert_close(d2.detach(), h, "float64", "derivative against double backward", floor=1.0)
    mt.derivative_penalty(net, x.detach(), order=2).backward()  # trains through the derivative
    assert net[0].weight.grad is not None and torch.isfinite(net[0].weight.grad).all()
