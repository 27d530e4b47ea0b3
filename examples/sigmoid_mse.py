"""Sigmoid + MSE: the vanishing gradient of a confidently wrong prediction, against cross-entropy.

A binary classifier outputs p = sigmoid(z). With the squared error (p - y)^2 the gradient
with respect to the logit is 2 (p - y) p (1 - p): when the prediction is confidently wrong
(y = 1, z = -8, p = 0.0003) the factor p (1 - p) kills it, and gradient descent barely
moves. The cross-entropy -log p has gradient p - y with respect to z: largest exactly
where the prediction is most wrong.

NumPy: the squared error and its exact gradient with respect to p are the reference's
(``value_and_grad(preset("mse"), ...)``), chained through the sigmoid by hand; the
cross-entropy is written out (it is not a squared-error-family loss). A logistic regression
started confidently wrong is trained with each.

Run: ``python examples/sigmoid_mse.py`` (about a second on a CPU).
"""

from __future__ import annotations

import numpy as np
from _gallery import plt, save

from mse_adapters import numpy as mnp
from mse_adapters import preset

SPEC = preset("mse", reduction="sum")  # per-example terms, summed: its gradient is per element


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def mse_and_dlogit(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    p = sigmoid(z)
    value, g = mnp.value_and_grad(SPEC, y, p)
    return float(value), g["y_pred"] * p * (1.0 - p)


def xent_and_dlogit(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    p = sigmoid(z)
    value = -np.sum(y * np.log(p) + (1 - y) * np.log1p(-p))
    return float(value), p - y


def train(loss: str, x: np.ndarray, y: np.ndarray, steps: int = 200, lr: float = 0.5) -> list[float]:
    """A logistic regression z = w x + b, started at w = -4 (confidently wrong); the error rate per step."""
    w, b = -4.0, 0.0
    errors = []
    grad_fn = mse_and_dlogit if loss == "mse" else xent_and_dlogit
    for _ in range(steps):
        z = w * x + b
        errors.append(float(np.mean((z > 0) != (y > 0.5))))
        _, dz = grad_fn(z, y)
        w -= lr * float(np.mean(dz * x))
        b -= lr * float(np.mean(dz))
    return errors


def main() -> None:
    z = np.linspace(-10, 10, 401)
    ones = np.ones_like(z)
    _, g_mse = mse_and_dlogit(z, ones)
    _, g_xent = xent_and_dlogit(z, ones)
    i = int(np.argmin(np.abs(z + 8)))
    print(f"target 1, logit -8 (p = {sigmoid(z[i]):.4f}): d/dz of (p - 1)^2 = {g_mse[i]:.2e}, "
          f"of -log p = {g_xent[i]:.3f} ({abs(g_xent[i] / g_mse[i]):.0f}x larger)")

    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    y = (x + 0.3 * rng.normal(size=400) > 0).astype(float)
    curves = {"sigmoid + MSE": train("mse", x, y), "cross-entropy": train("xent", x, y)}
    for name, err in curves.items():
        below = next((k for k, e in enumerate(err) if e < 0.2), None)
        print(f"  {name:14s} error rate: start {err[0]:.2f}, after 200 steps {err[-1]:.2f}; "
              f"below 20% after {below if below is not None else '>200'} steps")
    if not curves["cross-entropy"][-1] < 0.2 < curves["sigmoid + MSE"][50]:
        raise SystemExit("unexpected: cross-entropy should recover fast and sigmoid + MSE stall")

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    ax.semilogy(z, np.abs(g_mse), label="|d/dz (sigmoid(z) - 1)^2|")
    ax.semilogy(z, np.abs(g_xent), label="|d/dz -log sigmoid(z)|")
    ax.axvline(-8, color="gray", ls=":", lw=1)
    ax.set_xlabel("logit z (target 1: negative z is wrong)")
    ax.set_ylabel("gradient magnitude")
    ax.legend(fontsize=8)
    for name, err in curves.items():
        bx.plot(err, label=name)
    bx.set_xlabel("gradient step")
    bx.set_ylabel("training error rate")
    bx.set_title("logistic regression started confidently wrong")
    bx.legend(fontsize=8)
    save(fig, "sigmoid_mse")


if __name__ == "__main__":
    main()
