"""JAX's derivatives of every penalty of the preset table against the float64 reference's
second-order forward mode: the gradient and the Hessian-vector product with respect to the
prediction, eagerly and under ``jax.jit``, with weights, masks (NaN under them) and the
reductions, at the non-smooth points included (r = 0, |r| = delta). With static parameters
JAX differentiates the table's rho' and rho'' (a custom JVP); with array parameters, the
value's formula: both must be the reference's."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402

import mse_adapters.jax as mj  # noqa: E402
import mse_adapters.numpy as mnp  # noqa: E402
from mse_adapters import preset  # noqa: E402
from mse_adapters._penalties import PENALTY_TABLE  # noqa: E402
from mse_adapters._presets import PRESET_TABLE  # noqa: E402
from tests.conformance.cases import branch_params  # noqa: E402
from tests.conformance.harness import assert_close  # noqa: E402

ROWS = [r for r in PRESET_TABLE if r.spec.finalize == "identity"]
OPTIONS = ("plain", "weight", "mask", "weight+mask")
REDUCTIONS = ("mean", "sum", "sum_over_batch_size", "none")


def _data(name: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    t = rng.normal(size=(6, 3))
    r = rng.normal(size=(6, 3))
    r[0] = 0.0  # the kinks: r = 0 and |r| at the penalty's parameter
    par = branch_params(name)
    if par:
        k = next(iter(par.values()))
        r[1, :2] = (k, -k)
    return {"t": t, "p": t + r, "w": rng.uniform(0.2, 2.0, (6, 3)), "m": rng.uniform(size=(6, 3)) > 0.3,
            "v": rng.normal(size=(6, 3))}


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):  # float64 in these tests only (not process-wide)
        yield


#: Array parameters take the formula path: every penalty and reduction, with both options.
GRID = [(n, o, red, "floats") for n in (r.name for r in ROWS) for o in OPTIONS for red in REDUCTIONS] + \
       [(r.name, "weight+mask", red, "arrays") for r in ROWS if PENALTY_TABLE[r.spec.penalty].params
        for red in REDUCTIONS]


@pytest.mark.parametrize("name,option,reduction,params_as", GRID)
def test_gradient_and_hvp_equal_the_reference(name, option, reduction, params_as):
    x = _data(name)
    par = branch_params(name)

    spec = preset(name, reduction=reduction, **par)
    kw_np = {"weight": x["w"] if "weight" in option else None, "mask": x["m"] if "mask" in option else None}
    t = np.where(x["m"], x["t"], np.nan) if "mask" in option else x["t"]  # NaN under the mask
    params = {k: jnp.asarray(v) for k, v in par.items()} if params_as == "arrays" else None
    ct = np.linspace(0.5, 1.5, 18).reshape(6, 3) if reduction == "none" else None

    def f(p):
        out = mj.loss(spec, p, jnp.asarray(t), weight=kw_np["weight"], mask=kw_np["mask"], params=params)
        return jnp.sum(out * ct) if ct is not None else out

    p, v = jnp.asarray(x["p"]), jnp.asarray(x["v"])
    _, g_ref, hv_ref = mnp.hessian_vector_product(spec, t, x["p"], x["v"], cotangent=ct, **kw_np)
    for how, grad in (("eager", jax.grad(f)), ("jit", jax.jit(jax.grad(f)))):
        g, hv = jax.jvp(grad, (p,), (v,))
        assert_close(np.asarray(g), g_ref, "float64", f"{name} {option} {reduction} {how} gradient", 1.0)
        assert_close(np.asarray(hv), hv_ref, "float64", f"{name} {option} {reduction} {how} HVP", 1.0)


@pytest.mark.parametrize("name", [r.name for r in ROWS if PENALTY_TABLE[r.spec.penalty].params])
def test_static_and_array_parameters_give_the_same_program_values(name):
    """The custom-JVP path (floats) and the formula path (arrays) agree bit for bit in value
    and to rounding in the gradient."""

    x = _data(name)
    par = branch_params(name)
    spec = preset(name, **par)
    arrays = {k: jnp.asarray(v) for k, v in par.items()}
    a = jax.value_and_grad(lambda p: mj.loss(spec, p, x["t"], weight=x["w"]))(jnp.asarray(x["p"]))
    b = jax.value_and_grad(lambda p: mj.loss(spec, p, x["t"], weight=x["w"], params=arrays))(jnp.asarray(x["p"]))
    assert_close(np.asarray(a[0]), np.asarray(b[0]), "float64", f"{name} value", 1.0)
    assert_close(np.asarray(a[1]), np.asarray(b[1]), "float64", f"{name} gradient", 1.0)
