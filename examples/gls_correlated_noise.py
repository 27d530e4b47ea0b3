"""Correlated two-output noise: the whitened (GLS) loss recovers the parameters better than MSE.

A weather station predicts temperature and humidity from the same three drivers (sun, wind,
rain) through one shared set of response coefficients theta, each output seeing the drivers
through its own instrument geometry:

    temperature = x_t . theta,      humidity = x_h . theta,

and the two instruments' errors are strongly correlated (rho = -0.9) with different scales
(0.5 degC, 2 %RH). Plain MSE weighs both outputs equally and ignores the correlation; the
whitened loss ``MSELoss(covariance=Sigma)`` (generalised least squares: the mean of the squared
whitened residuals L^-1 r, Sigma = L L^T) is the Gaussian maximum-likelihood fit. Over
repeated draws of the data, its parameter error is smaller. (With a separate parameter set
per output and the same inputs for both, GLS and OLS coincide: Zellner's SUR result; shared
parameters are where the covariance matters.)

The figure shows the estimates of the first two coefficients over the draws: the whitened
fits cluster tighter around the truth.

Run: ``python examples/gls_correlated_noise.py`` (a few seconds on a CPU); the figure goes to
``$MSE_ADAPTERS_FIGURES`` (default: a directory in the system's temporary directory).
"""

from __future__ import annotations

import numpy as np
import torch
from _gallery import plt, save

from mse_adapters.torch import MSELoss

THETA = np.array([1.5, -0.8, 0.4])  # the true responses to sun, wind, rain
SIGMA = np.array([[0.5**2, -0.9 * 0.5 * 2.0],
                  [-0.9 * 0.5 * 2.0, 2.0**2]])  # instrument error covariance (temperature, humidity)
N, DRAWS = 60, 40


def draw(rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x_t = rng.normal(size=(N, 3))
    x_h = rng.normal(size=(N, 3))
    clean = np.stack([x_t @ THETA, x_h @ THETA], axis=1)
    noise = rng.multivariate_normal(np.zeros(2), SIGMA, size=N)
    return torch.tensor(x_t), torch.tensor(x_h), torch.tensor(clean + noise)


def fit(loss_fn: torch.nn.Module, x_t: torch.Tensor, x_h: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    theta = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=100, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        pred = torch.stack([x_t @ theta, x_h @ theta], dim=1)
        loss = loss_fn(pred, y)
        loss.backward()
        return loss

    opt.step(closure)
    return theta.detach().numpy()


def main() -> None:
    rng = np.random.default_rng(0)
    plain = MSELoss()
    whitened = MSELoss(covariance=torch.tensor(SIGMA))  # factored once, in float64
    est_plain, est_gls = [], []
    for _ in range(DRAWS):
        x_t, x_h, y = draw(rng)
        est_plain.append(fit(plain, x_t, x_h, y))
        est_gls.append(fit(whitened, x_t, x_h, y))
    err_plain = np.sum((np.array(est_plain) - THETA) ** 2, axis=1)
    err_gls = np.sum((np.array(est_gls) - THETA) ** 2, axis=1)
    mp, mg = float(np.mean(err_plain)), float(np.mean(err_gls))
    wins = float(np.mean(err_gls < err_plain))
    print(f"{DRAWS} draws of {N} samples, noise correlation -0.9, scales 0.5 and 2.0")
    print(f"mean squared parameter error, plain MSE:        {mp:.5f}")
    print(f"mean squared parameter error, whitened (GLS):   {mg:.5f}   ({mp / mg:.1f}x smaller)")
    print(f"draws where the whitened fit is closer:         {wins:.0%}")
    if not mg < mp:
        raise SystemExit("unexpected: the whitened loss did not beat plain MSE")

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    for est, name, color in ((est_plain, "plain MSE", "tab:orange"), (est_gls, "whitened (GLS)", "tab:blue")):
        e = np.array(est)
        ax.scatter(e[:, 0], e[:, 1], s=10, alpha=0.6, c=color, label=name)
    ax.plot(*THETA[:2], "k+", ms=14, mew=2, label="truth")
    ax.set_xlabel("theta_sun")
    ax.set_ylabel("theta_wind")
    ax.set_title(f"estimates over {DRAWS} draws")
    ax.legend(fontsize=8)
    bins = np.linspace(0, max(err_plain.max(), err_gls.max()), 30)
    bx.hist(err_plain, bins, alpha=0.6, color="tab:orange", label=f"plain MSE (mean {mp:.4f})")
    bx.hist(err_gls, bins, alpha=0.6, color="tab:blue", label=f"whitened (mean {mg:.4f})")
    bx.set_xlabel("squared parameter error |theta_hat - theta|^2")
    bx.set_ylabel("draws")
    bx.legend(fontsize=8)
    save(fig, "gls_correlated_noise")


if __name__ == "__main__":
    main()
