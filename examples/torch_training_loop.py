"""Multi-output regression in PyTorch with missing targets.

Three targets are linear in five features; 30% of the target entries are missing (NaN), as
in multi-task data where not every property is measured for every sample. A hand-written
MSE would be NaN from the first step; ``MSELoss(missing="nan")`` ignores the missing
entries in the value, the gradient and the normalizer, and the fit recovers the true
weights.

Run: ``python examples/torch_training_loop.py``
"""

from __future__ import annotations

import torch

from mse_adapters.torch import MSELoss


def main() -> None:
    torch.manual_seed(0)
    n, d_in, d_out = 2000, 5, 3
    true_w = torch.randn(d_in, d_out)
    true_b = torch.tensor([0.5, -1.0, 2.0])
    x = torch.randn(n, d_in)
    y = x @ true_w + true_b + 0.05 * torch.randn(n, d_out)
    missing = torch.rand(n, d_out) < 0.3
    y = y.masked_fill(missing, float("nan"))
    print(f"{int(missing.sum())} of {missing.numel()} targets are missing (NaN)")

    model = torch.nn.Linear(d_in, d_out)
    loss_fn = MSELoss(missing="nan")
    naive = torch.nn.MSELoss()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for step in range(300):
        opt.zero_grad()
        pred = model(x)
        loss = loss_fn(pred, y)
        loss.backward()
        opt.step()
        if step in (0, 299):
            print(f"step {step:3d}: our loss {loss.item():.5f}   torch.nn.MSELoss {naive(pred, y).item()}")

    with torch.no_grad():
        err_w = (model.weight.T - true_w).abs().max().item()
        err_b = (model.bias - true_b).abs().max().item()
    print("true weights:\n", true_w.numpy().round(3))
    print("fitted weights:\n", model.weight.T.detach().numpy().round(3))
    print(f"largest weight error {err_w:.4f}, bias error {err_b:.4f}")
    if not (err_w < 0.02 and err_b < 0.02):
        raise SystemExit("the fit did not recover the true weights")
    print("recovered the true weights despite the missing targets")


if __name__ == "__main__":
    main()
