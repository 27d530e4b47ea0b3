"""Precision in every backend (torch, JAX eager and jitted, Keras under this process's Keras
backend): half inputs never overflow or underflow in the loss (|residual| beyond the
float16 maximum: the loss is finite, float32, and within 1e-2 of the float64 reference);
1e7 float32 elements stay within 1e-5 of the float64 reference; torch autocast; Keras'
``mixed_float16`` policy in ``model.fit``.

Measured (2-core CPU, 1e7 float32 elements, weighted): every backend's float32 sum is
accurate to ~1e-8 relative (torch's and TensorFlow's CPU reductions and XLA's CPU reduce
all sum in blocks/trees, not sequentially), and every loss here stays within 1e-7.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from mse_adapters import PRESETS, preset
from mse_adapters import numpy as mnp

from .runners import HAVE, selected

HALF_PRESETS = ["mse", "mae", "rmse", "huber", "smooth_l1", "log_cosh", "expectile", "nmse", "r2"]


# -- one way per backend to evaluate a spec: (value as float64 NumPy, value dtype, gradient
#    dtype w.r.t. the prediction) ------------------------------------------------------------

Evaluate = Callable[[Any, np.ndarray, np.ndarray, np.ndarray | None, str], tuple[np.ndarray, str, str]]


def _torch(spec, pred, target, weight, dtype):
    import torch

    import mse_adapters.torch as mt

    tdt = getattr(torch, dtype)
    p = torch.tensor(pred).to(tdt).requires_grad_(True)
    t = torch.tensor(target).to(tdt)
    w = None if weight is None else torch.tensor(weight).to(tdt)
    out = mt.compile(spec)(p, t, weight=w)
    out.sum().backward()
    return out.detach().double().numpy(), str(out.dtype).removeprefix("torch."), str(p.grad.dtype).removeprefix(
        "torch.")


def _jax(jit: bool) -> Evaluate:
    def run(spec, pred, target, weight, dtype):
        import jax
        import jax.numpy as jnp

        import mse_adapters.jax as mj

        fn = mj.compile(spec)
        jdt = getattr(jnp, dtype)
        w = None if weight is None else jnp.asarray(weight, jdt)

        def f(p, t):
            return fn(p, t, weight=w)

        vg = jax.value_and_grad(f)  # (the losses here are scalars)
        out, g = (jax.jit(vg) if jit else vg)(jnp.asarray(pred, jdt), jnp.asarray(target, jdt))
        return np.asarray(out, np.float64), str(out.dtype), str(g.dtype)

    return run


def _keras(spec, pred, target, weight, dtype):
    import keras

    import mse_adapters.keras as mk
    from tests.conformance.backend_keras import tensor, to_numpy, value_and_grad

    loss = mk.compile(spec)
    w = None if weight is None else tensor(weight, dtype)
    inputs = {"y_true": tensor(target, dtype), "y_pred": tensor(pred, dtype)}
    out, grads = value_and_grad(lambda y_true, y_pred: loss(y_true, y_pred, None, weight=w), inputs, ("y_pred",))
    std = keras.backend.standardize_dtype
    return to_numpy(out), std(out.dtype), std(grads["y_pred"].dtype)


BACKENDS: dict[str, Evaluate] = {}
if HAVE["torch"]:
    BACKENDS["torch"] = _torch
if HAVE["jax"]:
    BACKENDS["jax"] = _jax(jit=False)
    BACKENDS["jax-jit"] = _jax(jit=True)
if HAVE["keras"]:
    import keras as _keras_module

    BACKENDS[f"keras-{_keras_module.backend.backend()}"] = _keras
BACKENDS = {k: v for k, v in BACKENDS.items() if selected(k)}


# -- half inputs ---------------------------------------------------------------------------------


def _half_case(seed: int = 0):
    rng = np.random.default_rng(seed)
    target = rng.uniform(-6e4, 6e4, (64, 4))
    pred = rng.uniform(-6e4, 6e4, (64, 4))  # |residual| up to ~1.2e5, squares ~1e10
    pred[0, 0], target[0, 0] = 6e4, -6e4  # |residual| beyond the float16 maximum 65504
    return pred, target


def _rounded(x: np.ndarray, dtype: str) -> np.ndarray:
    from tests.conformance.harness import round_to

    return round_to(x, dtype)


def _half_params():
    for backend in sorted(BACKENDS):
        # jitted: one XLA program per case (~0.3 s each), so float16 only (the cast to float32
        # on entry is the same code for bfloat16, which the eager backend covers)
        for dtype in ["float16"] if backend == "jax-jit" else ["float16", "bfloat16"]:
            for name in HALF_PRESETS:
                for reduction in ["mean", "sum"]:
                    try:
                        spec = PRESETS[name].replace(reduction=reduction)
                    except ValueError:
                        continue  # RMSE, NMSE and R^2 finalize a mean
                    yield pytest.param(backend, spec, dtype, id=f"{backend}-{dtype}-{name}-{reduction}")


@pytest.mark.parametrize("backend,spec,dtype", list(_half_params()))
def test_half_inputs_do_not_overflow(backend, spec, dtype):
    pred, target = _half_case()
    weight = np.array([1.0, 2.0, 0.5, 1.0])
    value, out_dtype, grad_dtype = BACKENDS[backend](spec, pred, target, weight, dtype)
    ref = mnp.compile(spec)(_rounded(target, dtype), _rounded(pred, dtype), weight=weight)
    assert out_dtype == "float32"  # the loss is returned in float32 (3.6e9 does not fit in float16)
    assert grad_dtype == dtype  # gradients come back in the inputs' dtype
    assert np.isfinite(value)
    assert float(value) == pytest.approx(ref, rel=1e-2, abs=1e-6)


def _tiny_params():
    for backend in sorted(BACKENDS):
        for dtype in ["float16"] if backend == "jax-jit" else ["float16", "bfloat16"]:
            for name in ("mse", "rmse", "huber", "log_cosh", "expectile"):
                yield pytest.param(backend, PRESETS[name], dtype, id=f"{backend}-{dtype}-{name}")


@pytest.mark.parametrize("backend,spec,dtype", list(_tiny_params()))
def test_half_inputs_do_not_underflow(backend, spec, dtype):
    """|residual| ~1e-4 (squares ~1e-8, below float16's smallest subnormal 6e-8): the loss
    is computed in float32, so it is within 1e-2 of the reference, not 0 (the tolerance
    table's half atol of 1e-6 would accept a 0 here, so the bound is relative)."""
    rng = np.random.default_rng(1)
    target = rng.uniform(-1e-3, 1e-3, (64, 4))  # small enough that 1e-4 steps are representable
    pred = target + rng.choice([-1.0, 1.0], target.shape) * rng.uniform(0.5e-4, 2e-4, target.shape)
    value, out_dtype, _ = BACKENDS[backend](spec, pred, target, None, dtype)
    ref = float(mnp.compile(spec)(_rounded(target, dtype), _rounded(pred, dtype)))
    assert out_dtype == "float32"
    assert 1e-10 < (ref * ref if spec.finalize == "sqrt" else ref) < 1e-7  # rounded residuals still ~1e-4
    assert abs(float(value) - ref) <= 1e-2 * ref, (float(value), ref)


# -- 1e7 float32 elements ------------------------------------------------------------------------

BIG_PRESETS = {"torch": ["mse", "mae", "huber", "rmse", "r2"]}  # elsewhere: mse and r2 (time)


@functools.lru_cache(maxsize=1)
def _big_case():
    rng = np.random.default_rng(0)
    n = 10**7
    t = rng.standard_normal(n, dtype=np.float32) * 3 + 100  # an offset: naive E[y^2]-E[y]^2 would lose it
    p = t + rng.standard_normal(n, dtype=np.float32)
    w = rng.random(n, dtype=np.float32)
    return p, t, w


@functools.cache
def _big_reference(name: str) -> float:
    p, t, w = _big_case()
    return float(mnp.compile(PRESETS[name])(t.astype(np.float64), p.astype(np.float64), weight=w.astype(np.float64)))


def _big_params():
    for b in sorted(BACKENDS):
        for name in BIG_PRESETS.get(b, ["mse", "r2"]):
            yield pytest.param(b, name, id=f"{b}-{name}")


@pytest.mark.parametrize("backend,name", list(_big_params()))
def test_float32_1e7_elements_within_1e_5(backend, name):
    p, t, w = _big_case()
    if backend == "torch":
        import torch

        import mse_adapters.torch as mt

        ours = mt.compile(PRESETS[name])(torch.from_numpy(p), torch.from_numpy(t), weight=torch.from_numpy(w)).item()
    elif backend.startswith("jax"):
        import jax
        import jax.numpy as jnp

        import mse_adapters.jax as mj

        fn = mj.compile(PRESETS[name])
        fn = jax.jit(fn) if backend == "jax-jit" else fn
        ours = float(fn(jnp.asarray(p), jnp.asarray(t), weight=jnp.asarray(w)))
    else:
        import mse_adapters.keras as mk
        from tests.conformance.backend_keras import tensor, to_numpy

        ours = float(to_numpy(mk.compile(PRESETS[name])(tensor(t), tensor(p), None, weight=tensor(w))))
    ref = _big_reference(name)
    assert abs(ours - ref) <= 1e-5 * abs(ref)


# -- torch autocast --------------------------------------------------------------------------------


@pytest.mark.skipif(not HAVE["torch"] or not selected("torch"), reason="torch not installed or not selected")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_torch_autocast(dtype):
    import torch

    import mse_adapters.torch as mt

    torch.manual_seed(0)
    model = torch.nn.Linear(8, 2)
    x = torch.randn(32, 8)
    y = torch.randn(32, 2) * 3e3  # squared errors ~1e7 > 65504, the float16 maximum
    with torch.autocast("cpu", dtype=getattr(torch, dtype)):
        pred = model(x)
        assert pred.dtype == getattr(torch, dtype)
        out = mt.MSELoss()(pred, y, weight=torch.tensor([1.0, 2.0]))
        naive = ((pred - y.to(pred.dtype)) ** 2).mean()
    assert out.dtype == torch.float32 and torch.isfinite(out)
    ref = mnp.mse(y.numpy().astype(np.float64), pred.detach().double().numpy(), weight=[1.0, 2.0])
    assert out.item() == pytest.approx(ref, rel=1e-2)
    if dtype == "float16":
        assert torch.isinf(naive)  # what a hand-written loss does under fp16 autocast
    out.backward()
    assert all(torch.isfinite(q.grad).all() for q in model.parameters())


# -- Keras mixed precision -----------------------------------------------------------------------


@pytest.mark.skipif(not HAVE["keras"] or not selected("keras"), reason="keras not installed or not selected")
@pytest.mark.parametrize("loss_name", ["MeanSquaredError", "Huber", "R2Score"])
def test_keras_mixed_float16_fit(loss_name):
    """Under the ``mixed_float16`` policy the model's outputs are float16 and its squared
    errors (~1e7) exceed the float16 maximum: ``model.fit`` with our loss reports a finite
    loss equal to the float64 reference on the same (float16) predictions, and trains."""
    import keras

    import mse_adapters.keras as mk

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
        rng = np.random.default_rng(0)
        x = rng.normal(size=(32, 8)).astype("float32")
        y = (rng.normal(size=(32, 2)) * 3e3).astype("float32")
        loss = getattr(mk, loss_name)()
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss=loss)
        pred = model.predict(x, verbose=0)
        assert pred.dtype == np.float16  # half outputs ...
        with np.errstate(over="ignore"):
            naive = np.mean((pred - y.astype(np.float16)) ** 2, dtype=np.float16)
        assert np.isinf(naive)  # ... whose squared errors overflow in float16
        history = model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # lr 0: the weights stay
        got = history.history["loss"][0]
        want = mnp.loss(loss.spec, y.astype(np.float64), pred.astype(np.float64))
        assert np.isfinite(got)
        assert got == pytest.approx(float(want), rel=1e-2)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-9), loss=loss)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        assert all(np.all(np.isfinite(keras.ops.convert_to_numpy(v))) for v in model.trainable_variables)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def test_reference_is_float64():
    out = mnp.compile(preset("mse", reduction="none"))(np.zeros(3, np.float16), np.ones(3, np.float16))
    assert out.dtype == np.float64
