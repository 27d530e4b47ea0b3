"""The bias-variance decomposition over bootstrap refits of models of growing capacity.

Thirty noisy samples of f(x) = sin(pi x) + x / 2, fitted by polynomials of degree 0 to 10
(least squares on a Legendre basis). For each degree, 200 bootstrap resamples of the
training set give 200 refits, whose predictions on a test grid are stacked on a leading
axis, ``(K, T)``, and decomposed by ``mnp.bias_variance(predictions, f(grid))``:

- bias^2: the squared error of the mean refit, (mean_k p_k - f)^2: large for a model too
  simple to follow f (bootstrap refits all see the one training set, so their mean also
  follows the part of its noise that the model can fit: bias^2 grows again at high degree);
- variance: the spread of the refits around their mean, mean_k (p_k - mean_k p_k)^2: large
  for a model flexible enough to follow the noise of each resample;
- their sum, the expected squared error of one refit (``expected_mse``), is U-shaped in the
  capacity.

The decomposition is exact (``expected_mse == bias2 + variance``) and equals the mean of the
refits' own MSEs to rounding (checked below). Weights, masks and the reductions are those of
the losses: the second line weights the test points by the density of the inputs.

Run: ``python examples/bias_variance.py`` (about a second on a CPU).
"""

from __future__ import annotations

import numpy as np
from _gallery import plt, save

from mse_adapters import numpy as mnp

N, K, NOISE, DEGREES = 30, 200, 0.3, range(11)


def f(x: np.ndarray) -> np.ndarray:
    return np.sin(np.pi * x) + 0.5 * x


def refit(x: np.ndarray, y: np.ndarray, degree: int, grid: np.ndarray) -> np.ndarray:
    basis = np.polynomial.legendre.legvander
    coef, *_ = np.linalg.lstsq(basis(x, degree), y, rcond=None)
    return basis(grid, degree) @ coef


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, N)
    y = f(x) + NOISE * rng.normal(size=N)
    grid = np.linspace(-0.95, 0.95, 200)
    density = np.exp(-0.5 * (grid / 0.6) ** 2)  # a non-uniform test distribution, as weights
    rows, stacks = [], {}
    print(f"{N} training points, {K} bootstrap refits per degree; on a test grid, against f:")
    print(f"  {'degree':>6s} {'bias^2':>9s} {'variance':>9s} {'expected':>9s}   {'weighted expected':>17s}")
    for degree in DEGREES:
        boot = rng.integers(0, N, size=(K, N))
        preds = np.stack([refit(x[b], y[b], degree, grid) for b in boot])
        bv = mnp.bias_variance(preds, f(grid))
        weighted = mnp.bias_variance(preds, f(grid), weight=density)
        members = np.mean([mnp.mse(f(grid), p) for p in preds])
        if not (bv.expected_mse == bv.bias2 + bv.variance and np.isclose(bv.expected_mse, members, rtol=1e-10)):
            raise SystemExit("unexpected: the decomposition does not add up")
        rows.append((bv.bias2, bv.variance, bv.expected_mse))
        stacks[degree] = preds
        print(f"  {degree:6d} {bv.bias2:9.4f} {bv.variance:9.4f} {bv.expected_mse:9.4f}"
              f"   {weighted.expected_mse:17.4f}")
    bias2, variance, expected = map(np.array, zip(*rows))
    best = int(np.argmin(expected))
    print(f"lowest expected error at degree {best}; degree 0 is all bias, degree 10 mostly variance")
    if not (bias2[0] > 10 * bias2[best] and variance[-1] > 3 * variance[best] and 0 < best < 10):
        raise SystemExit("unexpected: no U shape")

    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), gridspec_kw={"width_ratios": [1.3, 1, 1, 1]})
    ax = axes[0]
    ax.plot(list(DEGREES), bias2, "o-", label="bias^2")
    ax.plot(list(DEGREES), variance, "o-", label="variance")
    ax.plot(list(DEGREES), expected, "ko-", label="expected MSE = bias^2 + variance")
    ax.set_yscale("log")
    ax.set_xlabel("polynomial degree (capacity)")
    ax.legend(fontsize=8)
    for bx, degree in zip(axes[1:], (1, best, 10)):
        for p in stacks[degree][:30]:
            bx.plot(grid, p, color="tab:blue", alpha=0.15, lw=0.8)
        bx.plot(grid, stacks[degree].mean(0), "tab:red", lw=2, label="mean refit")
        bx.plot(grid, f(grid), "k--", label="f")
        bx.scatter(x, y, s=8, c="k")
        bx.set_ylim(-2, 2)
        bx.set_title(f"degree {degree}: 30 of {K} refits", fontsize=9)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    save(fig, "bias_variance")


if __name__ == "__main__":
    main()
