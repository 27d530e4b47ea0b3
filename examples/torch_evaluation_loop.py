"""An evaluation loop in PyTorch with streaming metrics (mse_adapters.torch.metrics).

Evaluating batch by batch and averaging the per-batch values is wrong for RMSE and R^2
(the mean of square roots is not the square root of the mean; R^2 needs the variance of all
targets). The metrics keep sufficient statistics instead, so the epoch value equals the
one-shot value on the whole data, with masks for missing targets, and stays accurate for
targets far from zero (where torchmetrics' R2Score, accumulating sum(y) and sum(y**2) in
float32, cancels).
"""

from __future__ import annotations

import numpy as np
import torch
import torchmetrics
from sklearn.metrics import r2_score, root_mean_squared_error

from mse_adapters.torch import metrics

torch.manual_seed(0)
n, d, batch = 5_000, 3, 64
x = torch.randn(n, 8)
offset = torch.tensor([0.0, 1e3, 1e5])  # outputs far from zero
y = x @ torch.randn(8, d) + offset + 0.3 * torch.randn(n, d)
model = torch.nn.Linear(8, d)
with torch.no_grad():  # a fitted model, for the example
    sol = torch.linalg.lstsq(torch.cat([x, torch.ones(n, 1)], 1).double(), y.double()).solution
    model.weight.copy_(sol[:8].T.float())
    model.bias.copy_(sol[8].float())
observed = torch.rand(n, d) > 0.1  # 10% of the targets missing

ours = torchmetrics.MetricCollection({
    "rmse": metrics.RootMeanSquaredError(multioutput="raw_values"),
    "r2": metrics.R2Score(multioutput="raw_values"),
    "huber": metrics.HuberError(delta=0.5),
})
theirs = torchmetrics.R2Score(multioutput="raw_values")
batch_r2 = []
model.eval()
with torch.no_grad():
    for i in range(0, n, batch):
        pred = model(x[i:i + batch])
        ours.update(pred, y[i:i + batch], mask=observed[i:i + batch])
        theirs.update(pred, y[i:i + batch])
        batch_r2.append(float(metrics.R2Score()(pred, y[i:i + batch])))
result = ours.compute()

pred = model(x).detach().double().numpy()
yy, m = y.double().numpy(), observed.numpy()
sk_r2 = [r2_score(yy[m[:, j], j], pred[m[:, j], j]) for j in range(d)]
sk_rmse = [root_mean_squared_error(yy[m[:, j], j], pred[m[:, j], j]) for j in range(d)]
np.set_printoptions(precision=6, suppress=True)
print("per output, observed targets only (scikit-learn in float64 on the whole data):")
print("  RMSE  ours", result["rmse"].numpy(), " sklearn", np.array(sk_rmse))
print("  R^2   ours", result["r2"].numpy(), " sklearn", np.array(sk_r2))
theirs_all = theirs.compute().numpy()
print("  R^2   torchmetrics (all targets, float32 sums)", theirs_all,
      " sklearn (all targets)", np.array([r2_score(yy[:, j], pred[:, j]) for j in range(d)]))
print(f"  mean of per-batch R^2 (what averaging a loss gives): {np.mean(batch_r2):.6f}")
print(f"  Huber(0.5) over everything observed: {float(result['huber']):.6f}")
assert np.allclose(result["r2"].numpy(), sk_r2, atol=1e-5)
assert np.allclose(result["rmse"].numpy(), sk_rmse, rtol=1e-5)
