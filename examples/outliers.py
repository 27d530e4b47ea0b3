"""Outliers: MSE vs MAE vs Huber vs pseudo-Huber under heavy-tailed (Student-t) noise.

A line y = 1 + 2 x observed with Student-t noise of 1.5 degrees of freedom (finite mean,
infinite variance: a few points land far away). Each loss is a Keras loss given to
``model.compile`` and fitted with ``model.fit``: the same data, the same model (one Dense
unit), the same optimiser. The squared error lets the far points pull the line (its
influence rho'(r) = 2 r grows without bound); the absolute error, Huber and pseudo-Huber
bound the influence of a large residual and recover the line. The right panel draws each
influence function with the NumPy reference.

Keras 3 on any backend: ``KERAS_BACKEND=tensorflow|jax|torch python examples/outliers.py``
(JAX unless set).

Run: ``python examples/outliers.py`` (a few seconds on a CPU).
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

# first: mse_adapters.keras imports Keras with TensorFlow's start-up logging filtered
from mse_adapters.keras import Huber, MeanAbsoluteError, MeanSquaredError, PseudoHuber  # noqa: E402

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402
from _gallery import plt, save  # noqa: E402

from mse_adapters import numpy as mnp  # noqa: E402
from mse_adapters import preset  # noqa: E402

N, DF, INTERCEPT, SLOPE, STEPS = 300, 1.5, 1.0, 2.0, 300
#: name: (the Keras loss, the preset of the same penalty for the influence panel)
LOSSES = {"MSE": (MeanSquaredError(), preset("mse")), "MAE": (MeanAbsoluteError(), preset("mae")),
          "Huber (delta=1)": (Huber(delta=1.0), preset("huber", delta=1.0)),
          "pseudo-Huber (delta=1)": (PseudoHuber(delta=1.0), preset("pseudo_huber", delta=1.0))}


def fit(loss: keras.losses.Loss, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    # full-batch steps with a decaying step size: each fit converges to its loss' minimizer,
    # the same on every backend (the data repeated, in order, as one epoch of STEPS batches)
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(0.2, STEPS)), loss=loss)
    model.fit(np.tile(x, (STEPS, 1)), np.tile(y, (STEPS, 1)), batch_size=N, shuffle=False, verbose=0)
    kernel, bias = (keras.ops.convert_to_numpy(v) for v in model.layers[-1].weights)
    return float(bias[0]), float(kernel[0, 0])


#: Each fit's line style: the three robust fits lie close together, so each has its own dash.
STYLES = {"MSE": "-", "MAE": ":", "Huber (delta=1)": "--", "pseudo-Huber (delta=1)": "-."}


def plot_fits(ax: plt.Axes, x: np.ndarray, y: np.ndarray, fits: dict[str, tuple[float, float]]) -> None:
    """The data, the true line and the fitted ones, with the right end magnified in an inset
    (the fits part there: at x = 2 the MSE line is ~0.4 above the truth, the others within
    ~0.15)."""
    grid = np.linspace(-2, 2, 2)
    zoom = ax.inset_axes([0.04, 0.56, 0.42, 0.4])
    for a in (ax, zoom):
        a.scatter(x, y, s=6, c="gray", alpha=0.5, label="data")
        for i, (name, (b0, b1)) in enumerate(fits.items()):
            a.plot(grid, b0 + b1 * grid, STYLES[name], color=f"C{i}", lw=2.2, label=name)
        a.plot(grid, INTERCEPT + SLOPE * grid, "k", lw=1, label="truth")
    x0, x1 = 1.7, 2.0
    zoom.set_xlim(x0, x1)
    zoom.set_ylim(INTERCEPT + SLOPE * x0 - 0.3, INTERCEPT + SLOPE * x1 + 0.45)
    zoom.tick_params(labelsize=7)
    ax.indicate_inset_zoom(zoom, edgecolor="0.3")
    lo, hi = np.percentile(y, [2, 98])
    ax.set_ylim(lo - 2, hi + 2)
    ax.set_title("the fits (inset: the right end, magnified)")
    ax.set_xlabel("x")
    ax.legend(fontsize=8, loc="lower right")


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(N, 1)).astype("float32")
    y = (INTERCEPT + SLOPE * x + rng.standard_t(DF, size=(N, 1))).astype("float32")
    print(f"backend {keras.backend.backend()}; y = {INTERCEPT} + {SLOPE} x + Student-t({DF}) noise, {N} points, "
          f"largest |noise| {np.abs(y - INTERCEPT - SLOPE * x).max():.0f}")
    fits, err = {}, {}
    for name, (loss, _) in LOSSES.items():
        a, b = fits[name] = fit(loss, x, y)
        err[name] = float(np.hypot(a - INTERCEPT, b - SLOPE))
        print(f"  {name:24s} intercept {a:+.3f}  slope {b:+.3f}   distance to the truth {err[name]:.3f}")
    if not all(err[k] < err["MSE"] for k in err if k != "MSE"):
        raise SystemExit("unexpected: every robust loss should beat MSE here")

    fig, (ax, cx, bx) = plt.subplots(1, 3, figsize=(16, 4.6), gridspec_kw={"width_ratios": [1.3, 0.8, 1]})
    plot_fits(ax, x[:, 0], y[:, 0], fits)
    colors = [f"C{i}" for i in range(len(err))]
    bars = cx.barh(range(len(err)), list(err.values()), color=colors)
    cx.bar_label(bars, fmt="%.3f", padding=3, fontsize=8)
    cx.set_yticks(range(len(err)), list(err), fontsize=8)
    cx.invert_yaxis()
    cx.set_xlim(0, 1.25 * max(err.values()))
    cx.set_title("how far each fit is from the truth")
    cx.set_xlabel("distance of (intercept, slope) to (1, 2)")
    r = np.linspace(-4, 4, 401)
    for name, (_, spec) in LOSSES.items():
        _, g = mnp.value_and_grad(spec.replace(reduction="none"), np.zeros_like(r), r)
        bx.plot(r, g["y_pred"], label=name)
    bx.set_title("influence of a residual: rho'(r)")
    bx.set_xlabel("r = pred - target")
    bx.legend(fontsize=8)
    fig.tight_layout()
    save(fig, "outliers")


if __name__ == "__main__":
    main()
