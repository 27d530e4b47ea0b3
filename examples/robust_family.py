"""Barron's general robust loss: one shape parameter alpha, learned with the model.

rho(r) = c**2 f(r / c, alpha), f(x, alpha) = |alpha - 2| / alpha ((x**2 / |alpha - 2| + 1)**(alpha / 2) - 1)
(J. T. Barron, CVPR 2019) moves continuously through Welsch (alpha = -inf), Geman-McClure (-2),
Cauchy (0), pseudo-Huber / Charbonnier (1) and half the square (2). The left panels draw
rho and its influence rho' (scale 1): the influence grows without bound for alpha > 1, is
bounded at alpha = 1 and falls back to 0 (redescends) below.

The third panel fits a line under heavy-tailed, one-sided noise (Gaussian, sd 0.5, plus 25% of
gross errors of +5 to +25) with MSE, Huber (delta = 1) and Barron's adaptive loss: the
negative log-likelihood of his distribution,
rho(r; alpha, c) / c**2 + log c + log Z(alpha), with the line, alpha in (0, 2) and the scale
c learned together by Adam (Z(alpha), the integral of exp(-f(x, alpha)), is tabulated by
quadrature and interpolated; it diverges for alpha < 0). Huber's influence is bounded but
never falls back: the gross errors still pull its line up; the adaptive loss learns alpha
near 0 (Cauchy), whose influence redescends, and recovers the line. The fourth panel
compares the learned density with the Barron fit's residuals. The loss is
``mse_adapters.torch.barron_loss`` with ``alpha`` and ``scale`` tensors that require grad
(their derivatives are the penalty table's, exact across alpha = 0 and 2); the curves are
the NumPy reference's ``barron`` and its ``value_and_grad``.

Run: ``python examples/robust_family.py`` (a few seconds on a CPU).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from _gallery import plt, save

import mse_adapters.numpy as mnp
from mse_adapters import preset
from mse_adapters.torch import HuberLoss, MSELoss, barron_loss

N, SD, OUTLIERS, INTERCEPT, SLOPE, STEPS = 400, 0.5, 0.25, 1.0, 2.0, 500
#: alpha: label (the named cases)
FAMILY = {-math.inf: "-inf (Welsch)", -2.0: "-2 (Geman-McClure)", 0.0: "0 (Cauchy)", 0.5: "0.5",
          1.0: "1 (pseudo-Huber)", 2.0: "2 (half the square)"}
#: log Z(alpha) on [0, 2] (Barron's adaptive loss keeps alpha inside, where Z is finite)
ALPHA_GRID = np.linspace(0.0, 2.0, 201)


def log_partition() -> np.ndarray:
    """log Z(alpha) = log of the integral of exp(-f(x, alpha)) over the line, on ALPHA_GRID:
    Gauss-Legendre in s, x = s / (1 - s) (the Cauchy tail 1 / x**2 is a bounded integrand)."""
    s, w = np.polynomial.legendre.leggauss(400)
    s, w = (s + 1) / 2, w / 2
    x = s / (1 - s)
    f = rho(np.broadcast_to(x, (len(ALPHA_GRID), len(x))), ALPHA_GRID[:, None])
    z = 2 * np.sum(w * np.exp(-f) / (1 - s) ** 2, axis=1)
    assert abs(z[0] - math.pi * math.sqrt(2)) < 1e-6 and abs(z[-1] - math.sqrt(2 * math.pi)) < 1e-6
    return np.log(z)


def rho(r: np.ndarray, alpha: float | np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Barron's rho, elementwise (the reference's, reduction "none")."""
    return np.asarray(mnp.barron(np.zeros_like(r), r, alpha=alpha, scale=scale, reduction="none"))


def influence(r: np.ndarray, alpha: float) -> np.ndarray:
    """rho'(r): the reference's exact gradient of the elementwise loss."""
    _, grads = mnp.value_and_grad(preset("barron", alpha=alpha, reduction="none"), np.zeros_like(r), r)
    return grads["y_pred"]


def interpolate(table: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear log Z(alpha), differentiable in alpha."""
    pos = alpha / (ALPHA_GRID[1] - ALPHA_GRID[0])
    i = pos.detach().floor().clamp(0, len(ALPHA_GRID) - 2).long()
    w = pos - i
    return table[i] * (1 - w) + table[i + 1] * w


def fit(x: torch.Tensor, y: torch.Tensor, loss: str, log_z: torch.Tensor) -> dict[str, float]:
    torch.manual_seed(0)
    line = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    shape = torch.zeros(2, dtype=torch.float64, requires_grad=True)  # alpha = 2 sigmoid, c = softplus
    opt = torch.optim.Adam([line, shape] if loss == "Barron" else [line], lr=0.05)
    mse, huber = MSELoss(), HuberLoss(delta=1.0)
    for _ in range(STEPS):
        opt.zero_grad()
        pred = line[0] + line[1] * x
        if loss == "Barron":
            alpha, c = 2 * torch.sigmoid(shape[0]), torch.nn.functional.softplus(shape[1] + 0.5413) + 1e-3
            per_point = barron_loss(pred, y, alpha=alpha, scale=c, reduction="none")
            value = (per_point / (c * c)).mean() + torch.log(c) + interpolate(log_z, alpha)
        else:
            value = (mse if loss == "MSE" else huber)(pred, y)
        value.backward()
        opt.step()
    line, shape = line.detach(), shape.detach()
    out = {"intercept": float(line[0]), "slope": float(line[1])}
    if loss == "Barron":
        out.update(alpha=float(2 * torch.sigmoid(shape[0])),
                   scale=float(torch.nn.functional.softplus(shape[1] + 0.5413) + 1e-3))
    return out


def draw_family(ax: plt.Axes, bx: plt.Axes) -> None:
    r = np.linspace(-6, 6, 601)
    for alpha, label in FAMILY.items():
        ax.plot(r, rho(r, alpha), label=f"alpha = {label}")
        bx.plot(r, influence(r, alpha), label=f"alpha = {label}")
    ax.set_ylim(0, 6)
    ax.set_title("rho(x), scale 1")
    bx.set_ylim(-2.5, 2.5)
    bx.set_title("influence rho'(x)")
    for a in (ax, bx):
        a.set_xlabel("x = r / scale")
    ax.legend(fontsize=7)


def main() -> None:
    rng = np.random.default_rng(0)
    x_np = rng.uniform(-2, 2, size=N)
    noise = SD * rng.standard_normal(N) + (rng.random(N) < OUTLIERS) * rng.uniform(5, 25, N)
    x, y = torch.tensor(x_np), torch.tensor(INTERCEPT + SLOPE * x_np + noise)
    log_z = torch.tensor(log_partition())
    print(f"y = {INTERCEPT} + {SLOPE} x + N(0, {SD}**2) noise and {OUTLIERS:.0%} gross errors of +5 to +25, "
          f"{N} points")
    fits, err = {}, {}
    for name in ("MSE", "Huber", "Barron"):
        fits[name] = fit(x, y, name, log_z)
        err[name] = math.hypot(fits[name]["intercept"] - INTERCEPT, fits[name]["slope"] - SLOPE)
        b = fits[name]
        extra = f"  learned alpha {b['alpha']:.3f}, scale {b['scale']:.3f}" if name == "Barron" else ""
        print(f"  {name:7s} intercept {fits[name]['intercept']:+.3f}  slope {fits[name]['slope']:+.3f}"
              f"   distance to the truth {err[name]:.3f}{extra}")
    if not err["Barron"] < err["Huber"] < err["MSE"]:
        raise SystemExit("unexpected: the adaptive loss should beat Huber, Huber MSE, here")

    fig, (ax, bx, cx, dx) = plt.subplots(1, 4, figsize=(19, 4))
    draw_family(ax, bx)
    cx.scatter(x_np, y.numpy(), s=6, c="gray", alpha=0.6, label="data")
    grid = np.linspace(-2, 2, 2)
    cx.plot(grid, INTERCEPT + SLOPE * grid, "k--", label="truth")
    for name, f in fits.items():
        cx.plot(grid, f["intercept"] + f["slope"] * grid, label=f"{name} (error {err[name]:.2f})")
    cx.set_title("fits")
    cx.legend(fontsize=8)
    b = fits["Barron"]
    res = y.numpy() - b["intercept"] - b["slope"] * x_np
    edges = np.linspace(-5, 30, 71)
    dx.hist(res, bins=edges, density=True, color="lightgray", label="residuals of the Barron fit")
    t = np.linspace(-5, 30, 701)
    k = int(round(b["alpha"] / (ALPHA_GRID[1] - ALPHA_GRID[0])))
    density = np.exp(-rho(t / b["scale"], b["alpha"]) - log_z.numpy()[k]) / b["scale"]
    dx.plot(t, density, label=f"learned: alpha {b['alpha']:.2f}, scale {b['scale']:.2f}")
    dx.plot(t, np.exp(-t**2 / 2 / res.var()) / math.sqrt(2 * math.pi * res.var()), "--",
            label="Gaussian of the same variance (MSE's)")
    dx.set_yscale("log")
    dx.set_ylim(1e-4, 1)
    dx.set_title("Barron's distribution, fitted")
    dx.legend(fontsize=7)
    fig.tight_layout()
    save(fig, "robust_family")


if __name__ == "__main__":
    main()
