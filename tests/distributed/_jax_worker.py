"""The JAX data-parallel checks on 4 host devices (run by test_jax_sharded.py in a fresh
process: XLA_FLAGS must be set before JAX starts). For every case of the preset table,
the largest relative gradient difference against the single-device global batch of:
``shard_map`` with ``axis_name`` differentiated from outside, the usual per-device
gradient followed by ``pmean``, ``jax.jit`` on ``NamedSharding``-sharded global arrays
(no axis_name), and (linear presets) a 4-micro-batch window with a psum-ed ``normalizer``.
Prints one JSON object."""

from __future__ import annotations

import json
import os

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from mse_adapters import jax as mjax  # noqa: E402
from mse_adapters._presets import preset  # noqa: E402
from tests.distributed._cases import MICRO, OUTPUT_WEIGHT, compiled_cases, model_init, shard  # noqa: E402

DEV = 4
PAD = 10  # rows per device and micro-batch (the shards' valid rows are uneven: the rest is masked)


def padded(rank: int, micro: int) -> dict[str, np.ndarray]:
    s = shard(DEV, rank, micro)
    n = s["x"].shape[0]
    out = {}
    for k, v in s.items():
        pad = np.zeros((PAD - n,) + v.shape[1:], v.dtype)
        if k == "sample_weight":
            pad += 1
        out[k] = np.concatenate([v, pad])
    return out


def batch(micro: int) -> dict[str, np.ndarray]:
    parts = [padded(r, micro) for r in range(DEV)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def rel(a: object, b: object) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def run_case(name: str, reduction: str | None, accumulate: bool, mesh: jax.sharding.Mesh, out: dict) -> None:
    sharded = NamedSharding(mesh, P("d"))
    w0, b0 = model_init()
    params = (jnp.asarray(w0.T), jnp.asarray(b0))
    ow = jnp.asarray(OUTPUT_WEIGHT)
    specs = (P(), P("d"), P("d"), P("d"), P("d"))
    spec = preset(name) if reduction is None else preset(name, reduction=reduction)
    f = mjax.compile(spec)
    key = f"{name}-{reduction}-{accumulate}"
    micros = [batch(m) for m in range(MICRO if accumulate else 1)]

    def global_loss(p: tuple, micros: list = micros) -> jax.Array:
        g = {k: jnp.concatenate([m[k] for m in micros]) for k in micros[0]}
        return f(g["x"] @ p[0] + p[1], g["target"], weight=ow, sample_weight=g["sample_weight"], mask=g["mask"])

    want = jax.jit(jax.grad(global_loss))(params)
    if not accumulate:
        d = {k: jax.device_put(v, sharded) for k, v in micros[0].items()}

        def local(p: tuple, x: jax.Array, t: jax.Array, sw: jax.Array, m: jax.Array) -> jax.Array:
            return f(x @ p[0] + p[1], t, weight=ow, sample_weight=sw, mask=m, axis_name="d")

        args = (params, d["x"], d["target"], d["sample_weight"], d["mask"])
        value, outer = jax.jit(jax.value_and_grad(jax.shard_map(local, mesh=mesh, in_specs=specs,
                                                                 out_specs=P())))(*args)

        def step(*a: jax.Array) -> tuple:
            return jax.lax.pmean(jax.grad(local)(*a), "d")

        inner = jax.jit(jax.shard_map(step, mesh=mesh, in_specs=specs, out_specs=P()))(*args)

        def plain(p: tuple, x: jax.Array, t: jax.Array, sw: jax.Array, m: jax.Array) -> jax.Array:
            return f(x @ p[0] + p[1], t, weight=ow, sample_weight=sw, mask=m)

        jitted = jax.jit(jax.grad(plain))(*args)
        out[key + "-value"] = rel(value, jax.jit(global_loss)(params))
        for label, got in (("shard_map", outer), ("pmean", inner), ("jit", jitted)):
            out[f"{key}-{label}"] = max(rel(a, b) for a, b in zip(got, want))
    else:
        ds = [{k: jax.device_put(v, sharded) for k, v in m.items()} for m in micros]

        def window(p: tuple, *flat: jax.Array) -> jax.Array:
            mbs = [flat[4 * i:4 * i + 4] for i in range(MICRO)]
            n = sum(f.normalizer(t, weight=ow, sample_weight=sw, mask=m, axis_name="d") for _, t, sw, m in mbs)
            return sum(f(x @ p[0] + p[1], t, weight=ow, sample_weight=sw, mask=m, normalizer=n, axis_name="d")
                       for x, t, sw, m in mbs)

        flat = [d[k] for d in ds for k in ("x", "target", "sample_weight", "mask")]
        sm = jax.shard_map(window, mesh=mesh, in_specs=(P(),) + (P("d"),) * len(flat), out_specs=P())
        value, got = jax.jit(jax.value_and_grad(sm))(params, *flat)
        out[key + "-window"] = max(rel(a, b) for a, b in zip(got, want))
        out[key + "-value"] = rel(value, jax.jit(global_loss)(params))


def main() -> None:
    mesh = jax.make_mesh((DEV,), ("d",), axis_types=(jax.sharding.AxisType.Auto,))
    out: dict[str, float] = {}
    for name, reduction, accumulate in compiled_cases():
        run_case(name, reduction, accumulate, mesh, out)
    try:
        mjax.mse(jnp.zeros(3), jnp.zeros(3), axis_name="d")
    except ValueError as e:
        out["unbound"] = str(e)  # type: ignore[assignment]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
