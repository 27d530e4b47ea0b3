"""The main demo: ``python -m mse_adapters.demo``.

For a few presets and options, prints the value and the gradient with respect to the
predictions from every installed backend, side by side with the float64 reference, and the
largest disagreement. Backends whose framework is missing are listed as skipped.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from . import numpy as reference
from ._presets import preset
from ._spec import LossSpec

Runner = Callable[[LossSpec, dict[str, Any]], tuple[float | np.ndarray, np.ndarray]]


def _numpy(spec: LossSpec, a: dict[str, Any]) -> tuple[Any, np.ndarray]:
    value = reference.compile(spec)(a["target"], a["pred"], weight=a["weight"],
                                    sample_weight=a["sample_weight"], mask=a["mask"])
    _, g = reference.value_and_grad(spec, a["target"], a["pred"], weight=a["weight"],
                                    sample_weight=a["sample_weight"], mask=a["mask"])
    return value, g["y_pred"]


def _torch(spec: LossSpec, a: dict[str, Any]) -> tuple[Any, np.ndarray]:
    import torch

    from . import torch as mt

    def t(x: Any) -> Any:
        return None if x is None else torch.as_tensor(x)

    pred = torch.tensor(a["pred"], dtype=torch.float32, requires_grad=True)
    out = mt.compile(spec)(pred, torch.tensor(a["target"], dtype=torch.float32),
                           weight=t(a["weight"]), sample_weight=t(a["sample_weight"]), mask=t(a["mask"]))
    (g,) = torch.autograd.grad(out.sum(), pred)
    return out.detach().double().numpy(), g.double().numpy()


def _jax(spec: LossSpec, a: dict[str, Any]) -> tuple[Any, np.ndarray]:
    from . import jax as mj  # first: it imports JAX with XLA's start-up logging filtered (_quiet.py)

    # isort: split
    import jax
    import jax.numpy as jnp

    fn = mj.compile(spec)

    def f(p: Any) -> Any:
        out = fn(p, jnp.asarray(a["target"], jnp.float32), weight=a["weight"],
                 sample_weight=a["sample_weight"], mask=a["mask"])
        return jnp.sum(out), out

    (_, out), g = jax.jit(jax.value_and_grad(f, has_aux=True))(jnp.asarray(a["pred"], jnp.float32))
    return np.asarray(out, np.float64), np.asarray(g, np.float64)


def _keras(spec: LossSpec, a: dict[str, Any]) -> tuple[Any, np.ndarray]:
    from . import keras as mk  # first: it imports Keras with TensorFlow's start-up logging filtered

    # isort: split
    import keras

    loss = mk.compile(spec)
    pred = keras.Variable(np.asarray(a["pred"], np.float32))
    kw = {k: a[k] for k in ("weight", "mask") if a[k] is not None}
    backend = keras.backend.backend()
    y = np.asarray(a["target"], np.float32)
    sw = a["sample_weight"]
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            out = loss(y, pred, sample_weight=sw, **kw)
            total = keras.ops.sum(out)
        g = tape.gradient(total, pred.value)
    elif backend == "jax":
        import jax

        def f(p: Any) -> Any:
            o = loss.call_with(y, p, sample_weight=sw, **kw) if hasattr(loss, "call_with") else loss(
                y, p, sample_weight=sw, **kw)
            return keras.ops.sum(o), o

        (_, out), g = jax.value_and_grad(f, has_aux=True)(pred.value)
    else:
        import torch

        p = pred.value.detach().clone().requires_grad_(True)
        out = loss(y, p, sample_weight=sw, **kw)
        (g,) = torch.autograd.grad(keras.ops.sum(out), p)
    return np.asarray(keras.ops.convert_to_numpy(out), np.float64), np.asarray(
        keras.ops.convert_to_numpy(g), np.float64)


RUNNERS: dict[str, tuple[str, Runner]] = {
    "numpy (reference)": ("numpy", _numpy),
    "torch": ("torch", _torch),
    "jax": ("jax", _jax),
    "keras": ("keras", _keras),
}


def _cases() -> list[tuple[str, LossSpec, dict[str, Any]]]:
    rng = np.random.default_rng(0)
    t = np.array([[3.0, -0.5], [2.0, 7.0]])
    p = np.array([[2.5, 0.0], [2.0, 8.0]])
    none = {"weight": None, "sample_weight": None, "mask": None}
    y = rng.normal(size=(4, 3))
    yhat = y + rng.normal(scale=0.8, size=(4, 3))
    holes = y.copy()
    holes[0, 1] = holes[2, 2] = np.nan
    return [
        ("MSE, the seed example", preset("mse"), {**none, "pred": p, "target": t}),
        ("MSE, NaN targets missing", preset("mse", missing="nan"), {**none, "pred": yhat, "target": holes}),
        ("Huber(0.5), per-output weights", preset("huber", delta=0.5),
         {**none, "pred": yhat, "target": y, "weight": np.array([1.0, 0.5, 2.0])}),
        ("MAE, sample weights, a zero residual", preset("mae"),
         {**none, "pred": np.where(np.eye(4, 3) > 0, y, yhat), "target": y,
          "sample_weight": np.array([1.0, 0.0, 2.0, 1.0])}),
        ("MSE, mask with NaN under it", preset("mse"),
         {**none, "pred": yhat, "target": np.where(np.isnan(holes), np.nan, y), "mask": ~np.isnan(holes)}),
        ("RMSE of a perfect fit (gradient 0)", preset("rmse"), {**none, "pred": y, "target": y}),
        ("R^2, variance-weighted", preset("r2", multioutput="variance_weighted"),
         {**none, "pred": yhat, "target": y}),
        ("Expectile(0.9), sum", preset("expectile", tau=0.9, reduction="sum"),
         {**none, "pred": yhat, "target": y}),
    ]


def _num(v: float, digits: int) -> str:
    """``v`` to ``digits`` decimals, with no sign on a zero (``-0.0``, or a tiny negative
    that rounds to zero, prints as NumPy's ``0.0`` does: the backends differ in the sign)."""
    return f"{round(float(v), digits) + 0.0: .{digits}f}"


def _fmt(x: Any, n: int = 4) -> str:
    a = np.asarray(x, dtype=np.float64).ravel()
    body = " ".join(_num(v, 5) for v in a[:n])
    return ("[" + body + (" ..." if a.size > n else "") + "]") if np.ndim(x) else _num(float(x), 7)


def main() -> None:
    available = {name: run for name, (mod, run) in RUNNERS.items()
                 if importlib.util.find_spec(mod) is not None}
    skipped = sorted(set(RUNNERS) - set(available))
    print("mse_adapters demo: value and d(loss)/d(prediction) in every installed backend")
    print(f"backends: {', '.join(available)}" + (f"  (skipped, not installed: {', '.join(skipped)})"
                                                  if skipped else ""))
    if "keras" in available:
        print(f"keras backend: {os.environ.get('KERAS_BACKEND', 'tensorflow')} "
              "(set KERAS_BACKEND=jax or torch before starting to choose another)")
    print("non-reference backends run in float32; disagreement is relative to the reference\n")
    worst: dict[str, float] = {}
    for title, spec, args in _cases():
        print(f"== {title}: {spec!r}")
        ref_v, ref_g = _numpy(spec, args)
        for name, run in available.items():
            try:
                v, g = run(spec, args)
            except Exception as exc:  # a demo reports, it does not hide
                print(f"   {name:18s} FAILED: {type(exc).__name__}: {exc}")
                worst[name] = float("inf")
                continue
            scale = max(1.0, float(np.max(np.abs(ref_v))), float(np.max(np.abs(ref_g), initial=0.0)))
            err = max(float(np.max(np.abs(np.asarray(v) - ref_v), initial=0.0)),
                      float(np.max(np.abs(g - ref_g), initial=0.0))) / scale
            worst[name] = max(worst.get(name, 0.0), err)
            print(f"   {name:18s} value {_fmt(v):>14s}  grad {_fmt(g)}  |diff| {err:.1e}")
        print()
    print("largest disagreement with the reference:")
    for name, err in worst.items():
        print(f"   {name:18s} {err:.2e}")


if __name__ == "__main__":
    main()
