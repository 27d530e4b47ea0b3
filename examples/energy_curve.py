"""A physics-informed fit of an energy curve E(V) from a few points, with derivative penalties.

The energy of a crystal as a function of its volume follows an equation of state (here the
Birch-Murnaghan one, V0 = 16 A^3, bulk modulus B0 = 0.6 eV/A^3 ~ 96 GPa, B0' = 4). Five
noisy energies, none near the minimum, are fitted by a quartic in V. Without more
information the quartic interpolates the noise and puts the minimum, and the curvature
there, in the wrong place. What is known besides the points is physics: the equilibrium
volume V0 is where dE/dV = 0, and the bulk modulus is B = V0 d^2E/dV^2 (V0) (from an
experiment or another calculation). Both enter the loss as penalties on the model's
derivatives with respect to its input, composed with the data term:

    mse(E(V_i), E_i) + mjax.derivative_penalty(E, V0)                       # dE/dV(V0) = 0
                     + mjax.derivative_penalty(E, V0, B, order=2, scale=V0)  # V0 E''(V0) = B

``derivative_penalty`` differentiates the model with respect to its input by nested
``jax.jvp`` and applies a loss of the backend (MSE by default, with its weights). The loss
is quadratic in the quartic's coefficients, so one Newton step (``jax.hessian``, through
the derivatives) is its minimiser.

Run: ``python examples/energy_curve.py`` (a few seconds on a CPU).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from _gallery import plt, save

from mse_adapters import jax as mjax

V0, B0, BP, E0 = 16.0, 0.6, 4.0, -5.0  # A^3, eV/A^3, 1, eV
VOLUMES = np.array([13.0, 13.8, 14.6, 18.2, 19.4])  # A^3: the points, none near V0
NOISE = 0.01  # eV


def birch_murnaghan(v: np.ndarray) -> np.ndarray:
    eta = (V0 / v) ** (2.0 / 3.0)
    return E0 + 9.0 * V0 * B0 / 16.0 * ((eta - 1.0) ** 3 * BP + (eta - 1.0) ** 2 * (6.0 - 4.0 * eta))


def quartic(coef: jax.Array):  # noqa: ANN201 - a model: volumes (n,) -> energies (n,)
    return lambda v: jnp.polyval(coef, (v - V0) / V0)


def fit(v: jax.Array, e: jax.Array, physics: bool) -> jax.Array:
    def loss(coef: jax.Array) -> jax.Array:
        data = mjax.mse(quartic(coef)(v), e)
        if not physics:
            return data + 1e-8 * jnp.sum(coef**2)  # a whisper of ridge: the 5x5 system is just determined
        v0 = jnp.array([V0])
        slope = mjax.derivative_penalty(quartic(coef), v0)  # (dE/dV(V0) - 0)^2
        modulus = mjax.derivative_penalty(quartic(coef), v0, jnp.array([B0]), order=2, scale=V0)
        return data + slope + modulus

    coef = jnp.zeros(5)
    return coef - jnp.linalg.solve(jax.jit(jax.hessian(loss))(coef), jax.jit(jax.grad(loss))(coef))


def report(name: str, coef: jax.Array) -> tuple[float, float]:
    grid = np.linspace(12.5, 20.0, 3001)
    e = np.asarray(quartic(coef)(jnp.asarray(grid)))
    vmin = grid[np.argmin(e)]
    b = float(V0 * mjax.derivative(quartic(coef), jnp.array([V0]), order=2)[0])
    rms = float(np.sqrt(np.mean((e - birch_murnaghan(grid)) ** 2)))
    print(f"  {name:31s} minimum at V = {vmin:6.2f} A^3   V0 E''(V0) = {b:.3f} eV/A^3   "
          f"rms error on [12.5, 20] {1000 * rms:6.1f} meV")
    return vmin, rms


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(3)
    e = birch_murnaghan(VOLUMES) + NOISE * rng.normal(size=VOLUMES.size)
    v, e_ = jnp.asarray(VOLUMES), jnp.asarray(e)
    print(f"truth: minimum at V0 = {V0} A^3, B0 = {B0} eV/A^3; {VOLUMES.size} points with {NOISE * 1000:.0f} meV noise")
    fits = {"quartic, data only": fit(v, e_, False), "quartic + derivative penalties": fit(v, e_, True)}
    results = {name: report(name, coef) for name, coef in fits.items()}
    (vmin_free, rms_free), (vmin_phys, rms_phys) = results.values()
    if not (abs(vmin_phys - V0) < abs(vmin_free - V0) and rms_phys < rms_free):
        raise SystemExit("unexpected: the derivative penalties should bring the fit closer to the truth")

    grid = np.linspace(12.5, 20.0, 400)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(grid, birch_murnaghan(grid), "k--", label="truth (Birch-Murnaghan)")
    for (name, coef), color in zip(fits.items(), ("tab:orange", "tab:blue")):
        ax.plot(grid, np.asarray(quartic(coef)(jnp.asarray(grid))), color=color, label=name)
    ax.scatter(VOLUMES, e, c="k", zorder=3, label="data")
    ax.axvline(V0, color="gray", lw=0.8, ls=":")
    ax.set_ylim(E0 - 0.1, E0 + 0.45)
    ax.set_xlabel("volume V (A^3)")
    ax.set_ylabel("energy E (eV)")
    ax.legend(fontsize=8)
    save(fig, "energy_curve")


if __name__ == "__main__":
    main()
