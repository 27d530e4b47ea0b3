"""torchmetrics' machinery with our metrics: ``MetricCollection``'s compute groups (on by
default) share a state only among metrics whose updates are the same computation, with
parameter variants of every preset; every class scripts with ``torch.jit.script`` as
torchmetrics' own; ``is_differentiable`` is truthful (``forward``'s batch value carries the
loss' gradient); ``MetricTracker``, ``ClasswiseWrapper``, ``MultioutputWrapper`` and
Lightning's ``self.log(metric)`` work."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
torchmetrics = pytest.importorskip("torchmetrics")

from torchmetrics.wrappers import ClasswiseWrapper, MetricTracker, MultioutputWrapper  # noqa: E402

import mse_adapters.torch as mt  # noqa: E402
from mse_adapters import LossSpec  # noqa: E402
from mse_adapters import numpy as mnp  # noqa: E402
from mse_adapters._metrics import metric_class_name, update_key  # noqa: E402
from mse_adapters._presets import PRESET_TABLE  # noqa: E402
from mse_adapters.torch import metrics as tm  # noqa: E402
from tests.conformance.harness import assert_close  # noqa: E402

#: Two values of each penalty parameter: the first batch's residuals (|r| < 1) are in every
#: quadratic zone, where Huber(2), Huber(5) and the expectile at 0.5 all give r^2 / 2.
PARAM_VALUES = {"delta": (2.0, 5.0), "beta": (2.0, 5.0), "tau": (0.5, 0.8), "alpha": (0.5, 1.5), "scale": (2.0, 5.0)}
CLASSES = [getattr(tm, metric_class_name(row)) for row in PRESET_TABLE]


def _variants() -> dict[str, torchmetrics.Metric]:
    """Every preset twice: two values of its parameter, or with and without missing='nan'."""
    out: dict[str, torchmetrics.Metric] = {}
    for row, cls in zip(PRESET_TABLE, CLASSES):
        if row.params:
            p = row.params[0]
            for v in PARAM_VALUES[p]:
                out[f"{row.name}_{p}_{v:g}".replace(".", "_")] = cls(**{p: v})
        else:
            out[row.name] = cls()
            out[f"{row.name}_missing"] = cls(missing="nan")
    return out


def _batches(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A first batch of small residuals and no NaN, then large residuals and NaN targets."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, scale in enumerate((0.3, 6.0, 3.0)):
        y = torch.randn(20, generator=g)
        p = y + scale * torch.randn(20, generator=g)
        if i == 2:
            y[3] = float("nan")
        out.append((p, y))
    return out


def test_compute_groups_share_only_equal_updates() -> None:
    grouped = torchmetrics.MetricCollection(_variants())
    separate = torchmetrics.MetricCollection(_variants(), compute_groups=False)
    batches = _batches()
    for p, y in batches:
        grouped.update(p, y)
        separate.update(p, y)
    got, alone = grouped.compute(), separate.compute()
    y = torch.cat([b[1] for b in batches]).double().numpy()
    p = torch.cat([b[0] for b in batches]).double().numpy()
    for name, metric in grouped.items(keep_base=True):
        want = mnp.loss(metric.spec, y, p)
        assert_close(got[name].double().numpy(), want, "float32", name, floor=1e-3)
        assert_close(got[name].double().numpy(), alone[name].double().numpy(), "float32-rerun", name)
    groups = list(grouped.compute_groups.values())
    for members in groups:  # a group is one update: the same key, whatever the finalizer
        assert len({update_key(grouped[m].spec) for m in members}) == 1, members
    assert ["mse", "rmse"] in groups  # the squares' sum is shared by MSE and RMSE (torchmetrics' own grouping)
    keys = {update_key(grouped[m].spec) for m in ("huber_delta_2", "huber_delta_5", "expectile_tau_0_5")}
    assert len(keys) == 3


# torch 2.13 deprecates TorchScript, which torchmetrics' harness still requires (and scripts
# its own classes with); scripting a torchmetrics Metric reads its deprecated property
# `_update_called` (torchmetrics' own warning, on its own classes too). Both are expected here.
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:This property will be removed in 2.0.0:DeprecationWarning")
@pytest.mark.parametrize("cls", [*CLASSES, tm.Metric], ids=lambda c: c.__name__)
def test_every_class_scripts(cls: type) -> None:
    metric = cls(LossSpec(reduction="per_output")) if cls is tm.Metric else cls()
    metric.update(torch.randn(6, 2), torch.randn(6, 2))
    scripted = torch.jit.script(metric)
    assert isinstance(scripted, torch.jit.ScriptModule)
    theirs = torch.jit.script(torchmetrics.MeanSquaredError())  # what torchmetrics' own classes do
    assert isinstance(theirs, torch.jit.ScriptModule)


@pytest.mark.parametrize("kwargs", [{}, {"num_outputs": 3}], ids=["pooled", "per_output"])
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_is_differentiable_is_truthful(cls: type, kwargs: dict) -> None:
    """torchmetrics' harness check (the value of ``forward`` requires grad exactly when the
    class says it is differentiable), and the gradient is the loss' on the batch."""
    if cls is tm.R2Score and kwargs:
        kwargs = {"multioutput": "raw_values"}
    g = torch.Generator().manual_seed(1)
    y = torch.randn(16, 3, generator=g)
    p = (y + torch.randn(16, 3, generator=g)).requires_grad_(True)
    metric = cls(**kwargs)
    value = metric(p, y)
    assert metric.is_differentiable and value.requires_grad
    (grad,) = torch.autograd.grad(value.sum(), p)
    q = p.detach().clone().requires_grad_(True)
    loss = mt.loss(metric.spec, q, y)
    (want,) = torch.autograd.grad(loss.sum(), q)
    assert_close(value.detach().numpy(), loss.detach().numpy(), "float32", f"{cls.__name__} value")
    assert_close(grad.numpy(), want.numpy(), "float32", f"{cls.__name__} gradient")
    assert not metric.stats.requires_grad  # the accumulated state keeps no graph
    namesake = getattr(torchmetrics, cls.__name__, None)
    if namesake is not None:
        assert cls.is_differentiable == namesake.is_differentiable


def _data(seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(30, 3, generator=g)
    return y + 0.7 * torch.randn(30, 3, generator=g), y


def test_metric_tracker() -> None:
    p, y = _data()
    tracker = MetricTracker(torchmetrics.MetricCollection({"mse": tm.MeanSquaredError(), "r2": tm.R2Score()}),
                            maximize=[False, True])
    epochs = []
    for epoch in range(3):
        tracker.increment()
        pe = p * (1.0 - 0.3 * epoch) + y * (0.3 * epoch)  # better each epoch
        for i in range(0, 30, 10):
            tracker.update(pe[i:i + 10], y[i:i + 10])
        epochs.append(pe.double().numpy())
    every = tracker.compute_all()
    yn = y.double().numpy()
    assert_close(every["mse"].numpy(), [mnp.mse(yn, e) for e in epochs], "float32", "tracked MSE")
    assert_close(every["r2"].numpy(), [mnp.r2(yn, e) for e in epochs], "float32", "tracked R^2")
    best, step = tracker.best_metric(return_step=True)
    assert step == {"mse": 2, "r2": 2}
    assert_close(best["r2"], mnp.r2(yn, epochs[2]), "float32", "best R^2")


def test_classwise_and_multioutput_wrappers() -> None:
    p, y = _data(3)
    yn, pn = y.double().numpy(), p.double().numpy()
    labels = ["a", "b", "c"]
    r2 = ClasswiseWrapper(tm.R2Score(multioutput="raw_values"), labels=labels)
    mse = ClasswiseWrapper(tm.MeanSquaredError(num_outputs=3), labels=labels, prefix="mse_")
    for i in range(0, 30, 10):
        r2.update(p[i:i + 10], y[i:i + 10])
        mse.update(p[i:i + 10], y[i:i + 10])
    got = r2.compute()
    assert list(got) == [f"r2score_{a}" for a in labels]
    assert_close([float(v) for v in got.values()], mnp.r2(yn, pn, multioutput="raw_values"), "float32", "classwise")
    assert_close([float(v) for v in mse.compute().values()], mnp.mse(yn, pn, multioutput="raw_values"), "float32",
                 "classwise MSE")
    huber = MultioutputWrapper(tm.HuberError(delta=0.5), num_outputs=3)
    huber.update(p, y)
    want = [mnp.huber(yn[:, j], pn[:, j], delta=0.5) for j in range(3)]
    assert_close(huber.compute().numpy(), want, "float32", "multioutput wrapper")


# Lightning 2.6's own use of torch's pytree API (LeafSpec), deprecated by torch 2.13: not ours.
@pytest.mark.filterwarnings("ignore:`isinstance.treespec, LeafSpec.` is deprecated:FutureWarning")
def test_lightning_logs_the_metrics() -> None:
    """``self.log(name, metric)`` in a LightningModule: the epoch value is ``compute()`` over
    the whole epoch (the step value ``forward``'s), and Lightning resets the metric."""
    pl = pytest.importorskip("pytorch_lightning")
    g = torch.Generator().manual_seed(4)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.randn(4, 2, generator=g) + 0.3 * torch.randn(64, 2, generator=g)

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(4, 2)
            self.train_r2, self.val_r2, self.val_rmse = tm.R2Score(), tm.R2Score(), tm.RootMeanSquaredError()
            self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

        def training_step(self, batch, i):  # noqa: ANN001, ANN202
            xb, yb = batch
            pred = self.net(xb)
            self.train_r2(pred, yb)
            self.log("train_r2", self.train_r2, on_step=True, on_epoch=True)
            self.seen.append((pred.detach().clone(), yb))
            return torch.nn.functional.mse_loss(pred, yb)

        def validation_step(self, batch, i):  # noqa: ANN001, ANN202
            xb, yb = batch
            pred = self.net(xb)
            self.val_r2.update(pred, yb)
            self.val_rmse.update(pred, yb)
            self.log("val_r2", self.val_r2)
            self.log("val_rmse", self.val_rmse)

        def configure_optimizers(self):  # noqa: ANN202
            return torch.optim.SGD(self.parameters(), lr=0.05)

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=10)
    module = Module()
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader, loader)
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    with torch.no_grad():
        final = module.net(x).double().numpy()
    yn = y.double().numpy()
    assert_close(logged["val_r2"], mnp.r2(yn, final), "float32", "val R^2 over the epoch")
    assert_close(logged["val_rmse"], mnp.rmse(yn, final, multioutput="pooled"), "float32", "val RMSE")
    trained = torch.cat([s[0] for s in module.seen]).double().numpy()
    assert_close(logged["train_r2_epoch"], mnp.r2(yn, trained), "float32", "train R^2 over the epoch")
    last_p, last_y = module.seen[-1]
    assert_close(logged["train_r2_step"], mnp.r2(last_y.double().numpy(), last_p.double().numpy()), "float32",
                 "train R^2 of the last step")
    assert float(module.val_r2.stats.abs().sum()) == 0.0 and module.val_r2._update_count == 0  # reset by Lightning
