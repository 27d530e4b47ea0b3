"""Masked MSE under missing targets: missing completely at random vs missing because of the target.

A linear model y = 1 + 2 x + noise, with 40 % of the targets lost in two ways:

- MCAR (missing completely at random): each target is lost with probability 0.4, whatever
  its value. The complete cases are a random subsample: the masked fit is unbiased.
- Informative (missing not at random): a target is lost more often the larger it is (a
  sensor that saturates, a survey that the well-off skip). The complete cases are no longer
  representative: the masked fit is biased (the slope flattens), however many samples.

The loss is the NumPy reference's ``mse(..., missing="nan")``: NaN targets count for nothing,
and the fit is the exact minimiser found from its exact gradients (``value_and_grad``). A mask does
what it is told, and only the missingness mechanism decides whether that is right.

Run: ``python examples/missing_data.py`` (about a second on a CPU).
"""

from __future__ import annotations

import numpy as np
from _gallery import plt, save

from mse_adapters import numpy as mnp
from mse_adapters import preset

N, DRAWS, INTERCEPT, SLOPE = 400, 40, 1.0, 2.0
SPEC = preset("mse", missing="nan")


def fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(intercept, slope) minimising the masked MSE. The loss is quadratic in theta, so its
    gradient is affine, g(theta) = H theta + g(0): the exact gradients (``value_and_grad``)
    at theta = 0, e1 and e2 give H and g(0), and one Newton step is the minimiser."""
    design = np.stack([np.ones_like(x), x], axis=1)

    def grad(theta: np.ndarray) -> np.ndarray:
        _, g = mnp.value_and_grad(SPEC, y, design @ theta)
        return design.T @ g["y_pred"]

    g0 = grad(np.zeros(2))
    hess = np.stack([grad(e) - g0 for e in np.eye(2)], axis=1)
    return np.linalg.solve(hess, -g0)


def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x = rng.normal(size=N)
    y = INTERCEPT + SLOPE * x + rng.normal(size=N)
    mcar = y.copy()
    mcar[rng.uniform(size=N) < 0.4] = np.nan
    informative = y.copy()
    lost = rng.uniform(size=N) < 1.0 / (1.0 + np.exp(-1.5 * (y - 1.5)))  # larger y: lost more often
    informative[lost] = np.nan
    return x, y, mcar, informative


def main() -> None:
    rng = np.random.default_rng(0)
    fits: dict[str, list[np.ndarray]] = {"complete data": [], "MCAR": [], "informative": []}
    for _ in range(DRAWS):
        x, y, mcar, informative = draw(rng)
        for name, target in zip(fits, (y, mcar, informative)):
            fits[name].append(fit(x, target))
    print(f"true intercept {INTERCEPT}, slope {SLOPE}; {DRAWS} draws of {N} samples, masked MSE fits:")
    means = {}
    for name, thetas in fits.items():
        t = np.array(thetas)
        means[name] = t.mean(0)
        print(f"  {name:14s} intercept {t[:, 0].mean():+.3f} (sd {t[:, 0].std():.3f})   "
              f"slope {t[:, 1].mean():+.3f} (sd {t[:, 1].std():.3f})")
    if not (abs(means["MCAR"][1] - SLOPE) < 0.05 < abs(means["informative"][1] - SLOPE)):
        raise SystemExit("unexpected: MCAR should be unbiased and informative missingness biased")

    x, y, mcar, informative = draw(np.random.default_rng(1))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    grid = np.linspace(-3, 3, 2)
    for ax, (name, target) in zip(axes, (("MCAR", mcar), ("informative", informative))):
        seen = ~np.isnan(target)
        ax.scatter(x[~seen], y[~seen], s=8, c="lightgray", label="missing (not seen by the loss)")
        ax.scatter(x[seen], y[seen], s=8, c="tab:blue", label="observed")
        ax.plot(grid, INTERCEPT + SLOPE * grid, "k--", label="truth")
        a, b = fit(x, target)
        ax.plot(grid, a + b * grid, "tab:red", lw=2, label=f"masked-MSE fit (slope {b:.2f})")
        ax.set_title(f"{name}: {100 * (~seen).mean():.0f}% missing")
        ax.set_xlabel("x")
        ax.legend(fontsize=8, loc="upper left")
    axes[0].set_ylabel("y")
    save(fig, "missing_data")


if __name__ == "__main__":
    main()
