"""An energy-based model trained with MSE targets on its energies, sampled by Langevin dynamics.

The data are points on a ring of 8 clusters. An MLP E(x) is the energy; samples of the
model are drawn by Langevin dynamics, x <- x - a dE/dx + s eps, from a persistent buffer of
chains. Instead of the contrastive-divergence difference E(real) - E(generated), the
energies are regressed on targets with the MSE, real low (-1) and generated high (+1):

    MSELoss()(E(real), -1) + MSELoss()(E(generated), +1)

(the least-squares form of the contrast: bounded energies, and a gradient that fades as a
sample's energy reaches its target). As training goes the energy carves a valley along the
ring and chains started from uniform noise fall into it (in a few hundred steps the valley is
still nearly flat along the ring: the eight clusters separate with longer training). Once
the samples look like the data, both sets of energies settle between the targets, near 0.

PyTorch: the Langevin gradient is ``torch.autograd.grad`` of the energy with respect to the
samples.

Run: ``python examples/energy_based_model.py`` (a few seconds on a CPU).
"""

from __future__ import annotations

import math

import torch
from _gallery import plt, save
from torch import nn

from mse_adapters.torch import MSELoss

RADIUS, SPREAD, BATCH, STEPS, LANGEVIN = 2.0, 0.15, 128, 300, 10
ALPHA, NOISE = 0.1, 0.03  # Langevin step and noise


def data(gen: torch.Generator, n: int) -> torch.Tensor:
    k = torch.randint(0, 8, (n,), generator=gen).float()
    centres = RADIUS * torch.stack([torch.cos(k * math.pi / 4), torch.sin(k * math.pi / 4)], dim=1)
    return centres + SPREAD * torch.randn(n, 2, generator=gen)


def langevin(energy: nn.Module, x: torch.Tensor, steps: int, gen: torch.Generator) -> torch.Tensor:
    for _ in range(steps):
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(x).sum(), x)
        x = (x - ALPHA * grad + NOISE * torch.randn(x.shape, generator=gen)).clamp(-3.5, 3.5)
    return x.detach()


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    energy = nn.Sequential(nn.Linear(2, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 1), nn.Flatten(0))
    opt = torch.optim.Adam(energy.parameters(), lr=2e-3)
    mse = MSELoss()
    buffer = 7 * torch.rand(1024, 2, generator=gen) - 3.5
    low, high = torch.full((BATCH,), -1.0), torch.full((BATCH,), 1.0)
    for _ in range(STEPS):
        idx = torch.randint(0, len(buffer), (BATCH,), generator=gen)
        start = buffer[idx]
        fresh = torch.rand(BATCH, generator=gen) < 0.05  # a few chains restart from noise
        start[fresh] = 7 * torch.rand(int(fresh.sum()), 2, generator=gen) - 3.5
        fake = langevin(energy, start, LANGEVIN, gen)
        buffer[idx] = fake
        loss = mse(energy(data(gen, BATCH)), low) + mse(energy(fake), high)
        opt.zero_grad()
        loss.backward()
        opt.step()

    samples = langevin(energy, 7 * torch.rand(1000, 2, generator=gen) - 3.5, 200, gen)
    radius = samples.norm(dim=1)
    on_ring = float(((radius - RADIUS).abs() < 0.4).float().mean())
    angle = torch.remainder(torch.atan2(samples[:, 1], samples[:, 0]) + math.pi / 8, 2 * math.pi)
    modes = torch.bincount((angle // (math.pi / 4)).long().clamp(max=7)[(radius - RADIUS).abs() < 0.4], minlength=8)
    with torch.no_grad():
        e_data = float(energy(data(gen, 1000)).mean())
        e_noise = float(energy(7 * torch.rand(1000, 2, generator=gen) - 3.5).mean())
    print(f"after {STEPS} steps: mean energy on data {e_data:+.2f} (target -1), on uniform noise {e_noise:+.2f}")
    print(f"1000 Langevin chains from noise, 200 steps: {100 * on_ring:.0f}% end on the ring; "
          f"per cluster: {modes.tolist()}")
    if not (on_ring > 0.6 and int((modes > 20).sum()) >= 6 and e_data < e_noise):
        raise SystemExit("unexpected: the chains should fall onto the ring's clusters")

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4.4))
    g = torch.linspace(-3.5, 3.5, 141)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    with torch.no_grad():
        e = energy(torch.stack([xx.flatten(), yy.flatten()], dim=1)).reshape(xx.shape)
    cs = ax.contourf(xx, yy, e, levels=30, cmap="viridis")
    fig.colorbar(cs, ax=ax, label="E(x)")
    ax.set_title("learned energy")
    real = data(gen, 1000)
    bx.scatter(real[:, 0], real[:, 1], s=3, c="gray", alpha=0.5, label="data")
    bx.scatter(samples[:, 0], samples[:, 1], s=3, c="tab:red", alpha=0.6, label="Langevin samples")
    bx.set_title("samples from noise")
    bx.legend(fontsize=8, loc="upper right")
    for a in (ax, bx):
        a.set_aspect("equal")
        a.set_xlim(-3.5, 3.5)
        a.set_ylim(-3.5, 3.5)
    save(fig, "energy_based_model")


if __name__ == "__main__":
    main()
