"""Keypoint heatmaps with occluded joints: visibility weights against plain MSE.

A pose model predicts one heatmap per joint (a Gaussian bump at the joint). Where a joint
is occluded the annotation has no position, and the common shortcut is an all-zero target
heatmap. Plain MSE then teaches the model that the joint is absent whenever it may be
occluded: for a joint hidden in 40 % of the images the predicted peak drops by about 40 %,
in every image (the model cannot tell from the input which images hide it). Visibility weights,
``MSELoss()(pred, target, weight=visible)`` with ``visible`` of shape ``(B, J, 1, 1)``
(broadcast over each heatmap), remove the occluded joints from the value, the gradient and
the normalizer: the peaks stay at 1.

PyTorch: a small MLP from (jittered) joint coordinates to 4 heatmaps of 16 x 16, Adam.

Run: ``python examples/keypoint_heatmaps.py`` (a few seconds on a CPU).
"""

from __future__ import annotations

import numpy as np
import torch
from _gallery import plt, save
from torch import nn

from mse_adapters.torch import MSELoss

J, H, SIGMA, BATCH, STEPS = 4, 16, 1.5, 64, 250
POSE = torch.tensor([[4.0, 4.0], [11.0, 5.0], [6.0, 11.0], [11.0, 12.0]])  # the mean pose (row, column)
OCCLUDED = torch.tensor([0.05, 0.1, 0.2, 0.4])  # how often each joint is hidden
NAMES = ("head", "shoulder", "elbow", "wrist")


def batch(gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Joint coordinates (n, J, 2), target heatmaps (n, J, H, H) (zero where occluded), visibility (n, J)."""
    joints = POSE + 0.7 * torch.randn(n, J, 2, generator=gen)
    rows = torch.arange(H, dtype=torch.float32)
    d2 = (rows[:, None] - joints[..., 0, None, None]) ** 2 + (rows[None, :] - joints[..., 1, None, None]) ** 2
    heat = torch.exp(-d2 / (2 * SIGMA**2))
    visible = (torch.rand(n, J, generator=gen) >= OCCLUDED).float()
    return joints, heat * visible[..., None, None], visible


def train(weighted: bool) -> nn.Module:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    net = nn.Sequential(nn.Flatten(), nn.Linear(2 * J, 128), nn.ReLU(), nn.Linear(128, J * H * H),
                        nn.Unflatten(1, (J, H, H)))
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    loss_fn = MSELoss()
    for _ in range(STEPS):
        joints, target, visible = batch(gen, BATCH)
        pred = net((joints - 8.0) / 4.0)
        loss = loss_fn(pred, target, weight=visible[..., None, None]) if weighted else loss_fn(pred, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


def main() -> None:
    torch.set_num_threads(1)  # a tiny model: one thread is the fastest (and the docs build runs two examples at once)
    nets = {"plain MSE": train(False), "visibility-weighted MSE": train(True)}
    joints, target, visible = batch(torch.Generator().manual_seed(7), 512)
    print(f"{J} joints hidden in {', '.join(f'{100 * p:.0f}%' for p in OCCLUDED.tolist())} of the images "
          "(target: an all-zero heatmap); predicted peak height (truth 1):")
    print(f"  {'':24s} " + " ".join(f"{n:>8s}" for n in NAMES))
    preds, peaks = {}, {}
    with torch.no_grad():
        for name, net in nets.items():
            preds[name] = net((joints - 8.0) / 4.0)
            peaks[name] = preds[name].amax(dim=(2, 3)).mean(0)
            print(f"  {name:24s} " + " ".join(f"{p:8.2f}" for p in peaks[name].tolist()))
    if not (peaks["plain MSE"][3] < 0.8 < peaks["visibility-weighted MSE"][3]):
        raise SystemExit("unexpected: plain MSE should flatten the often-hidden joint's peak, weights keep it")

    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4), gridspec_kw={"width_ratios": [1, 1, 1, 1.6]})
    i = int(torch.nonzero(visible[:, 3])[0])
    shown = [("target (wrist, visible)", target[i, 3])] + [(n, p[i, 3]) for n, p in preds.items()]
    for ax, (title, img) in zip(axes, shown):
        ax.imshow(img.numpy(), vmin=0, vmax=1, cmap="magma")
        ax.set_title(f"{title}\npeak {float(img.max()):.2f}", fontsize=9)
        ax.axis("off")
    x = np.arange(J)
    for k, (name, p) in enumerate(peaks.items()):
        axes[3].bar(x + 0.38 * (k - 0.5), p.numpy(), 0.38, label=name)
    axes[3].axhline(1.0, color="k", ls="--", lw=0.8)
    axes[3].set_xticks(x, [f"{n}\n{100 * p:.0f}% hidden" for n, p in zip(NAMES, OCCLUDED.tolist())], fontsize=8)
    axes[3].set_ylabel("mean predicted peak")
    axes[3].legend(fontsize=8)
    fig.tight_layout()
    save(fig, "keypoint_heatmaps")


if __name__ == "__main__":
    main()
