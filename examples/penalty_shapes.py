"""Every penalty of the table and its derivative, drawn by the NumPy reference.

For each row of ``PENALTY_TABLE`` (square, abs, Huber, Smooth L1, log-cosh, expectile,
pseudo-Huber, quantile, Barron's) the value rho(r) is the reference loss with ``reduction="none"`` and
the derivative rho'(r) its exact gradient (``value_and_grad``, reverse mode in float64), on
a grid of residuals r = pred - target; the parameters are shown at two values. Nothing is
drawn from a formula written here: the figure is what every backend computes (the
conformance suite proves the backends equal this reference).

Run: ``python examples/penalty_shapes.py`` (about a second on a CPU).
"""

from __future__ import annotations

import numpy as np
from _gallery import plt, save

from mse_adapters import LossSpec
from mse_adapters import numpy as mnp
from mse_adapters._penalties import PENALTY_TABLE

R = np.linspace(-3.0, 3.0, 601)
#: Two values of a penalty's first parameter: its default, and another (half the default
#: unless given here).
PARAMS = {"tau": (0.5, 0.8)}


def values(param: str) -> tuple[float, float]:
    default = getattr(LossSpec(), param)
    return PARAMS.get(param, (default, 0.5 * default or 0.5))


def curves(penalty: str, **params: float) -> tuple[np.ndarray, np.ndarray]:
    """rho(r) and rho'(r) on the grid, from the reference."""
    spec = LossSpec(penalty=penalty, reduction="none", **params)
    value, grads = mnp.value_and_grad(spec, np.zeros_like(R), R)
    return np.asarray(value), grads["y_pred"]


def main() -> None:
    names = list(PENALTY_TABLE)
    cols = 4
    rows = 2 * -(-len(names) // cols)  # a value row and a derivative row per line of penalties
    fig, grid = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), sharex=True)
    print("penalty         rho(2)  rho'(2)   (first parameter value)")
    for j, name in enumerate(names):
        axes = grid[2 * (j // cols): 2 * (j // cols) + 2]
        j %= cols
        row = PENALTY_TABLE[name]
        settings = [{}] if not row.params else [{row.params[0].name: v} for v in values(row.params[0].name)]
        for k, params in enumerate(settings):
            value, grad = curves(name, **params)
            label = ", ".join(f"{p}={v:g}" for p, v in params.items()) or None
            style = "-" if k == 0 else "--"
            axes[0, j].plot(R, value, style, label=label)
            axes[1, j].plot(R, grad, style, label=label)
            if k == 0:
                i = int(np.argmin(np.abs(R - 2.0)))
                print(f"{name:13s} {value[i]:8.4f} {grad[i]:8.4f}   {label or ''}")
        axes[0, j].set_title(name)
        if row.params:
            axes[0, j].legend(fontsize=7)
        axes[1, j].set_xlabel("r = pred - target")
        axes[1, j].axhline(0, color="gray", lw=0.5)
    for j in range(len(names), (rows // 2) * cols):  # the empty panels of the last line
        grid[2 * (j // cols), j % cols].set_visible(False)
        grid[2 * (j // cols) + 1, j % cols].set_visible(False)
    for i in range(0, rows, 2):
        grid[i, 0].set_ylabel("rho(r)")
        grid[i + 1, 0].set_ylabel("rho'(r)")
    fig.tight_layout()
    save(fig, "penalty_shapes")


if __name__ == "__main__":
    main()
