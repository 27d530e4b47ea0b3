"""Weighted, masked regression in JAX with Optax.

Two targets are linear in four features. A quarter of the target entries were not observed
(NaN in ``y``, ``False`` in the mask), and the samples come from two instruments: a precise
one (noise 0.05) and a poor one (noise 2.0). The loss is our MSE with the mask (masked
entries count nowhere: not in the value, the gradient or the normalizer, NaN or not) and
per-sample weights 1 / noise**2 (weighted least squares), inside a jitted Optax train step
on minibatches: one trace for the whole run. Optax's own ``squared_error`` has no mask or
weights: with the NaN targets it is NaN from the first step.

Run: ``python examples/jax_optax_training.py``
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mse_adapters import jax as mjax


def make_data(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, d_in, d_out = 4000, 4, 2
    true_w = rng.normal(size=(d_in, d_out)).astype(np.float32)
    true_b = np.array([0.5, -1.0], np.float32)
    x = rng.normal(size=(n, d_in)).astype(np.float32)
    noise = np.where(rng.uniform(size=n) < 0.5, 0.05, 2.0).astype(np.float32)
    y = x @ true_w + true_b + noise[:, None] * rng.normal(size=(n, d_out)).astype(np.float32)
    observed = rng.uniform(size=(n, d_out)) > 0.25
    y = np.where(observed, y, np.nan).astype(np.float32)
    return {"x": x, "y": y, "observed": observed, "sample_weight": 1.0 / noise**2,
            "true_w": true_w, "true_b": true_b}


def fit(data: dict[str, np.ndarray], weighted: bool, epochs: int = 40, batch: int = 250) -> tuple[dict, int]:
    n, d_in = data["x"].shape
    d_out = data["y"].shape[1]
    steps = epochs * (n // batch)
    opt = optax.adam(optax.cosine_decay_schedule(0.05, steps))
    params = {"w": jnp.zeros((d_in, d_out)), "b": jnp.zeros(d_out)}
    state = opt.init(params)
    traces = []

    @jax.jit
    def train_step(params, state, x, y, observed, sw):
        traces.append(1)  # Python side effect: runs only while tracing

        def loss_fn(p):
            pred = x @ p["w"] + p["b"]
            return mjax.mse(pred, y, mask=observed, sample_weight=sw)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    rng = np.random.default_rng(1)
    sw_all = data["sample_weight"] if weighted else np.ones(n, np.float32)
    for _ in range(epochs):
        order = rng.permutation(n)
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            params, state, loss = train_step(params, state, data["x"][idx], data["y"][idx],
                                             data["observed"][idx], sw_all[idx])
    return params, len(traces)


def main() -> None:
    data = make_data()
    print(f"{int((~data['observed']).sum())} of {data['observed'].size} targets are missing (NaN)")
    naive = optax.squared_error(jnp.zeros_like(data["y"]), data["y"]).mean()
    print(f"optax.squared_error(...).mean() on these targets: {float(naive)}")

    results = {}
    for weighted in (True, False):
        params, traces = fit(data, weighted)
        err_w = float(jnp.max(jnp.abs(params["w"] - data["true_w"])))
        err_b = float(jnp.max(jnp.abs(params["b"] - data["true_b"])))
        results[weighted] = max(err_w, err_b)
        label = "mask + sample weights 1/noise^2" if weighted else "mask only (unweighted)"
        print(f"\n{label}: traced {traces} time(s)")
        print("  true   w:", np.round(data["true_w"].ravel(), 3), " b:", np.round(data["true_b"], 3))
        print("  fitted w:", np.round(np.asarray(params["w"]).ravel(), 3),
              " b:", np.round(np.asarray(params["b"]), 3))
        print(f"  largest parameter error {results[weighted]:.4f}")
        if traces != 1:
            raise SystemExit(f"the train step was traced {traces} times, expected once")

    if not (results[True] < 0.01 and results[True] < results[False]):
        raise SystemExit("the weighted, masked fit did not recover the parameters")
    print(f"\nweighting by 1/noise^2 cut the largest error {results[False] / results[True]:.0f}-fold")


if __name__ == "__main__":
    main()
