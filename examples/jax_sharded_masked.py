"""Exact masked losses across JAX devices (4 host CPU devices).

A masked regression batch is split over 4 devices holding 0, 4, 7 and 12 valid targets.
Inside ``shard_map``, averaging the per-device masked means (``pmean``) is not the global
masked mean; ``mse(..., axis_name="d")`` sums the numerator and the normalizer with one
``psum``, so the value and the gradient (per device, then ``pmean`` as in a usual
data-parallel step) are those of the global batch. Under ``jax.jit`` with the arrays
sharded over a mesh (``NamedSharding``) the loss is the global one with no argument at all.

Run: ``python examples/jax_sharded_masked.py`` (it sets XLA_FLAGS itself, before JAX starts).
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from mse_adapters import jax as mjax  # noqa: E402

VALID = (0, 4, 7, 12)  # valid targets per device (of 8 x 2 each)


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    y = (x @ np.array([[1.0, -1.0], [0.5, 2.0], [0.0, 1.0]]) + 0.1 * rng.normal(size=(32, 2))).astype(np.float32)
    mask = np.zeros((4, 16), bool)
    for d, k in enumerate(VALID):
        mask[d, rng.permutation(16)[:k]] = True
    mask = mask.reshape(32, 2)
    w = jnp.asarray(rng.normal(size=(3, 2)).astype(np.float32))

    mesh = jax.make_mesh((4,), ("d",), axis_types=(jax.sharding.AxisType.Auto,))
    sharded = NamedSharding(mesh, P("d"))
    xs, ys, ms = (jax.device_put(a, sharded) for a in (x, y, mask))
    specs = (P(), P("d"), P("d"), P("d"))

    def global_loss(w: jax.Array, x: jax.Array, y: jax.Array, m: jax.Array) -> jax.Array:
        return mjax.mse(x @ w, y, mask=m)

    def naive(w: jax.Array, x: jax.Array, y: jax.Array, m: jax.Array) -> jax.Array:
        return mjax.mse(x @ w, y, mask=m)  # this device's masked mean

    def exact(w: jax.Array, x: jax.Array, y: jax.Array, m: jax.Array) -> jax.Array:
        return mjax.mse(x @ w, y, mask=m, axis_name="d")  # the global masked mean

    def step(loss):  # noqa: ANN001, ANN202 - a data-parallel step: value and pmean-ed gradient
        def per_device(w: jax.Array, x: jax.Array, y: jax.Array, m: jax.Array) -> tuple[jax.Array, jax.Array]:
            v, g = jax.value_and_grad(loss)(w, x, y, m)
            return jax.lax.pmean(v, "d"), jax.lax.pmean(g, "d")

        return jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=specs, out_specs=(P(), P())))

    v0, g0 = jax.value_and_grad(global_loss)(w, x, y, mask)
    vn, gn = step(naive)(w, xs, ys, ms)
    ve, ge = step(exact)(w, xs, ys, ms)
    vj, gj = jax.jit(jax.value_and_grad(global_loss))(w, xs, ys, ms)
    print(f"valid targets per device {VALID}")
    print(f"{'':34} {'loss':>9} {'max |grad - global grad|':>25}")
    print(f"{'single device, global batch':34} {float(v0):9.4f} {0.0:25.3e}")
    print(f"{'shard_map, pmean of local means':34} {float(vn):9.4f} {float(jnp.abs(gn - g0).max()):25.3e}")
    print(f"{'shard_map, axis_name=d':34} {float(ve):9.4f} {float(jnp.abs(ge - g0).max()):25.3e}")
    print(f"{'jit on NamedSharding arrays':34} {float(vj):9.4f} {float(jnp.abs(gj - g0).max()):25.3e}")


if __name__ == "__main__":
    main()
