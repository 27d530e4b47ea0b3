"""Signal alignment: gradient descent on a time shift, minimising the MSE between two signals.

A reference signal s(t) (a few smooth pulses) and a noisy recording of it delayed by an
unknown tau. The delay is a single parameter, and the MSE between the recording and the
reference shifted by tau, ``MSELoss()(s(t - tau), recording)``, is differentiable in tau
(the reference is evaluated at shifted times, not resampled): torch's autograd gives
dMSE/dtau and Adam walks it down. The landscape is not convex: away from the true delay
the pulses no longer overlap and the gradient vanishes or points to another pulse, so the
search starts from a coarse estimate (here, the best of a few trial shifts, all evaluated
with the same loss in one batched call with ``reduction="per_sample"``).

Run: ``python examples/signal_alignment.py`` (a few seconds on a CPU).
"""

from __future__ import annotations

import torch
from _gallery import plt, save

from mse_adapters.torch import MSELoss

TAU, NOISE = 1.37, 0.15
CENTRES = torch.tensor([1.0, 2.2, 4.0, 5.1])
HEIGHTS = torch.tensor([1.0, -0.7, 0.8, 0.5])


def reference(t: torch.Tensor) -> torch.Tensor:
    """The reference signal at times ``t`` (any shape): a sum of Gaussian pulses."""
    return (HEIGHTS * torch.exp(-((t[..., None] - CENTRES) ** 2) / (2 * 0.15**2))).sum(-1)


def main() -> None:
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    t = torch.linspace(0.0, 8.0, 800, dtype=torch.float64)
    recording = reference(t - TAU) + NOISE * torch.randn(t.shape, generator=gen, dtype=torch.float64)
    mse = MSELoss()

    trials = torch.linspace(0.0, 3.0, 7, dtype=torch.float64)  # a coarse grid, 0.5 apart
    per_trial = MSELoss(reduction="per_sample")(reference(t - trials[:, None]), recording.expand(len(trials), -1))
    start = float(trials[per_trial.argmin()])

    tau = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([tau], lr=0.05)
    path = [start]
    for _ in range(150):
        loss = mse(reference(t - tau), recording)
        opt.zero_grad()
        loss.backward()
        opt.step()
        path.append(tau.item())
    with torch.no_grad():
        final = float(mse(reference(t - tau), recording))
    print(f"true delay {TAU}; coarse start {start:.2f} (best of {len(trials)} trial shifts); "
          f"gradient descent: {tau.item():.4f} after 150 Adam steps, MSE {final:.4f} (noise variance {NOISE**2:.4f})")
    if not abs(tau.item() - TAU) < 0.01:
        raise SystemExit("unexpected: gradient descent did not find the delay")

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 3.8))
    with torch.no_grad():
        ax.plot(t, recording, color="lightgray", label="recording (delayed, noisy)")
        ax.plot(t, reference(t), "tab:orange", label="reference")
        ax.plot(t, reference(t - tau), "tab:blue", label=f"reference shifted by {tau.item():.3f}")
        grid = torch.linspace(-0.5, 3.5, 801, dtype=torch.float64)
        landscape = MSELoss(reduction="per_sample")(reference(t - grid[:, None]), recording.expand(len(grid), -1))
        bx.plot(grid, landscape, "k", lw=1, label="MSE(s(t - tau), recording)")
        path_t = torch.tensor(path, dtype=torch.float64)
        along = MSELoss(reduction="per_sample")(reference(t - path_t[:, None]), recording.expand(len(path), -1))
        bx.plot(path_t, along, "o-", color="tab:blue", ms=3, label="gradient descent")
        bx.scatter(trials, per_trial, c="tab:orange", zorder=3, label="coarse trials")
    ax.set_xlabel("t")
    ax.legend(fontsize=8)
    bx.axvline(TAU, color="gray", ls=":", lw=1)
    bx.set_xlabel("tau")
    bx.set_ylabel("MSE")
    bx.legend(fontsize=8)
    save(fig, "signal_alignment")


if __name__ == "__main__":
    main()
