"""torch.compile(fullgraph=True) of training steps using every torch loss (no graph breaks:
fullgraph raises on one), and torch.export of a module that calls a loss."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import mse_adapters.torch as mt  # noqa: E402

CLASSES = [mt.MSELoss, mt.MAELoss, mt.RMSELoss, mt.HuberLoss, mt.SmoothL1Loss, mt.LogCoshLoss,
           mt.ExpectileLoss, mt.NMSELoss, mt.R2Score]


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 4, generator=g)
    y = torch.randn(16, 3, generator=g)
    y[0, 1] = float("nan")
    y[3, 2] = float("nan")
    return x, y


def _grads(step, model, *args):
    model.zero_grad()
    out = step(*args)
    out.backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("options", ["weighted-masked-missing", "plain"])
def test_training_step_compiles_fullgraph_with_every_loss(options):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = _data()
    if options == "plain":
        y = torch.nan_to_num(y)
        losses = [cls() for cls in CLASSES]
        kwargs: dict = {}
    else:
        losses = [cls(missing="nan") for cls in CLASSES]
        kwargs = {"weight": torch.tensor([1.0, 0.5, 2.0]), "sample_weight": torch.rand(16) + 0.5,
                  "mask": torch.rand(16, 3) > 0.2}

    def step(x, y):
        pred = model(x)
        return sum(f(pred, y, **kwargs) for f in losses)

    compiled = torch.compile(step, fullgraph=True)  # raises on any graph break
    v1, g1 = _grads(compiled, model, x, y)
    v2, g2 = _grads(step, model, x, y)
    torch.testing.assert_close(v1, v2, rtol=1e-5, atol=1e-6)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_export_module_calling_the_loss():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)
            self.loss = mt.HuberLoss(delta=0.5, missing="nan", weight=torch.tensor([1.0, 2.0, 0.5]))

        def forward(self, x, y):
            return self.loss(self.lin(x), y)

    torch.manual_seed(0)
    m = Model()
    x, y = _data()
    exported = torch.export.export(m, (x, y))
    torch.testing.assert_close(exported.module()(x, y), m(x, y))
