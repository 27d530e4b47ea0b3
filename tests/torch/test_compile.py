"""torch.compile(fullgraph=True) of training steps using every torch loss (no graph breaks:
fullgraph raises on one), and torch.export of a module that calls each loss.

A whole step (forward, backward, an SGD update) is one graph with
``torch._dynamo.config.trace_autograd_ops`` (Dynamo traces ``torch.autograd.grad``; it
cannot trace ``Tensor.backward()``, and ``torch.optim`` optimizers break the graph on
purpose, pytorch/pytorch#104053, so the update is written out). The per-class steps use
``backend="aot_eager"`` (graph breaks are Dynamo's, the backend does not matter; AOTAutograd
still traces the backward); one test compiles with inductor."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import mse_adapters.torch as mt  # noqa: E402
from mse_adapters import LossSpec, preset  # noqa: E402
from mse_adapters._presets import PRESET_TABLE  # noqa: E402
from tests.conformance.harness import assert_close, nondefault_params  # noqa: E402

#: Every named loss of the preset table (a new row is compiled here without an edit).
CLASSES = [getattr(mt, row.torch) for row in PRESET_TABLE]
#: Non-default parameters per penalty, so that the compiled graph sees them.
_PARAMS = {"huber": {"delta": 0.3}, "smooth_l1": {"beta": 0.2}, "expectile": {"tau": 0.8},
           "pseudo_huber": {"delta": 0.7}, "quantile": {"tau": 0.3}}
B, D = 16, 3


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, 4, generator=g)
    y = torch.randn(B, D, generator=g)
    y[0, 1] = float("nan")
    y[3, 2] = float("nan")
    return x, y


def _spd(seed: int = 0) -> Any:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(D, D, generator=g, dtype=torch.float64)
    return a @ a.T + D * torch.eye(D, dtype=torch.float64)


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

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager" if options == "plain" else "inductor")
    v1, g1 = _grads(compiled, model, x, y)
    v2, g2 = _grads(step, model, x, y)
    assert v1.dtype == v2.dtype
    assert_close(v1, v2, "float32", "compiled value")
    for a, b in zip(g1, g2):
        assert a.dtype == b.dtype
        assert_close(a, b, "float32", "compiled gradient")


# -- every class, whitened and Gaussian included: forward, backward and update in one graph --

CASES: dict[str, Callable[[], Any]] = {
    "MSELoss": lambda: mt.MSELoss("sum", missing="nan", weight=torch.tensor([1.0, 0.5, 2.0])),
    "MSELoss-covariance": lambda: mt.MSELoss(covariance=_spd(), unit_norm=0.1),
    "MSELoss-scale_tril-param": lambda: mt.MSELoss(
        scale_tril=torch.nn.Parameter(torch.linalg.cholesky(_spd()).float())),
    "MSELoss-precision": lambda: mt.MSELoss("sum_over_batch_size", precision=_spd(), mask=torch.tensor([1, 0, 1])),
    "MAELoss": lambda: mt.MAELoss(missing="nan"),
    "RMSELoss": lambda: mt.RMSELoss(multioutput="raw_values", missing="nan"),
    "NMSELoss": lambda: mt.NMSELoss(multioutput="variance_weighted", missing="nan"),
    "R2Score": lambda: mt.R2Score(missing="nan"),
    **{row.torch: (lambda row=row: getattr(mt, row.torch)("sum", missing="nan", **_PARAMS.get(
        row.name, nondefault_params(row)))) for row in PRESET_TABLE if row.params},
    "LogCoshLoss": lambda: mt.LogCoshLoss(missing="nan"),
    "GaussianNLLLoss": lambda: mt.GaussianNLLLoss(full=True, eps=1e-3, missing="nan"),
    "MultivariateGaussianNLLLoss-covariance": lambda: mt.MultivariateGaussianNLLLoss(covariance=_spd()),
    "MultivariateGaussianNLLLoss-param": lambda: mt.MultivariateGaussianNLLLoss(
        scale_tril=torch.nn.Parameter(torch.eye(D) + 0.1 * torch.ones(D, D).tril()), reduction="sum"),
    "Loss-huber-per-sample-covariance": lambda: mt.Loss(preset("huber", delta=0.5, reduction="per_sample"),
                                                        covariance=torch.stack([_spd(s) for s in range(B)])),
    "compile-expectile-per_sample": lambda: mt.compile(
        LossSpec(penalty="expectile", tau=0.3, per_sample=True, reduction="sum_over_batch_size", missing="nan")),
}


def _needs_whole_samples(loss: Any) -> bool:
    return loss.spec.transform is not None  # a matrix mixes a sample's outputs: no NaN inside


def _call(loss: Any, out: Any, y: Any) -> Any:
    if isinstance(loss, mt.GaussianNLLLoss):
        return loss(out[:, :D], y, torch.nn.functional.softplus(out[:, D:]) + 0.05)
    value = loss(out[:, :D], y)
    return value.sum() if value.ndim else value


def _train(loss: Any, compile_backend: str | None, steps: int = 2) -> tuple[list[Any], list[Any]]:
    """Two SGD steps on a small linear model (and the loss's own trainable factor): the
    values, then the trained parameters."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2 * D)
    params = list(model.parameters()) + list(loss.parameters())
    x, y = _data()
    if _needs_whole_samples(loss):
        y = torch.nan_to_num(y)

    def step(x: Any, y: Any) -> Any:
        value = _call(loss, model(x), y)
        grads = torch.autograd.grad(value, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(0.05 * g)
        return value.detach()

    if compile_backend is not None:
        step = torch.compile(step, fullgraph=True, backend=compile_backend)
    values = [step(x, y) for _ in range(steps)]
    return values, [p.detach().clone() for p in params]


@pytest.mark.parametrize("name", sorted(CASES))
def test_whole_training_step_compiles_fullgraph(name):
    torch._dynamo.reset()
    loss = CASES[name]()
    eager = _train(copy.deepcopy(loss), None)
    with torch._dynamo.config.patch(trace_autograd_ops=True):
        compiled = _train(loss, "aot_eager")  # raises on any graph break
    for a, b in zip(compiled[0] + compiled[1], eager[0] + eager[1]):
        assert a.dtype == b.dtype
        assert_close(a.detach(), b.detach(), "float32", f"{name} trained compiled")


def test_every_class_is_compiled():
    built = {type(make()).__name__ for make in CASES.values()}
    classes = {n for n in mt.__all__
               if isinstance(getattr(mt, n), type) and issubclass(getattr(mt, n), torch.nn.Module)}
    assert classes <= built, classes - built


# -- torch.export -----------------------------------------------------------------------------


class _Model(torch.nn.Module):
    def __init__(self, loss: Any) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 2 * D)
        self.loss = loss

    def forward(self, x: Any, y: Any) -> Any:
        return _call(self.loss, self.lin(x), y)


@pytest.mark.parametrize("name", sorted(CASES))
def test_export_module_calling_the_loss(name):
    torch.manual_seed(0)
    m = _Model(CASES[name]())
    x, y = _data()
    if _needs_whole_samples(m.loss):
        y = torch.nan_to_num(y)
    exported = torch.export.export(m, (x, y))
    got, want = exported.module()(x, y), m(x, y)
    assert got.dtype == want.dtype
    assert_close(got.detach(), want.detach(), "float32-rerun", f"{name} exported")
    x2, y2 = x.flip(0), y.flip(0)  # other values, the same shapes: not a constant
    assert_close(exported.module()(x2, y2).detach(), m(x2, y2).detach(), "float32-rerun",
                 f"{name} exported, new values")
