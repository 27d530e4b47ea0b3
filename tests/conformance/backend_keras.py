"""The Keras backend, ``keras-<backend>``: ``mse_adapters.keras.compile(spec)`` under the Keras
backend of this process (``KERAS_BACKEND``), gradients by that backend's own autodiff
(``tf.GradientTape``, ``jax.vjp``, torch autograd).

Inputs are cast to the case's dtype; the loss computes in its own ``dtype`` as in Keras:
float32 by default (so float16/bfloat16 inputs are computed in float32 and the loss is
float32), and ``dtype="float64"`` for the float64 cases. On the JAX backend those run inside
``jax.enable_x64(True)`` (a context manager), so the rest of the process keeps JAX's default
float32.

:func:`value_and_grad` is also the tests' one way to differentiate any Keras loss.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mse_adapters import LossSpec

from .harness import Case

BACKENDS: list[Any] = []

ARGS = ("pred", "target", "weight", "sample_weight")

if importlib.util.find_spec("keras") is not None:
    import keras
    from keras import ops

    import mse_adapters.keras as mk

    BACKEND = keras.backend.backend()

    def tensor(x: Any, dtype: str | None = None) -> Any:
        """A tensor of the active backend (``dtype`` None: keep x's)."""
        if x is None:
            return None
        if BACKEND == "torch":
            import torch

            t = torch.as_tensor(np.asarray(x))
            if dtype is not None:
                t = t.to(getattr(torch, dtype))
            return t
        return ops.convert_to_tensor(np.asarray(x), dtype=dtype)

    def to_numpy(x: Any) -> np.ndarray:
        return np.asarray(ops.convert_to_numpy(ops.cast(x, "float32") if _is_bf16(x) else x),
                          dtype=np.float64)

    def _is_bf16(x: Any) -> bool:
        return keras.backend.standardize_dtype(x.dtype) == "bfloat16"

    def _ct(cotangent: Any, out: Any) -> np.ndarray:
        """The cotangent in ``out``'s shape (same size; Keras' (B, 1) vs our (B,)) and dtype."""
        ct = np.reshape(np.asarray(cotangent, dtype=np.float64), tuple(out.shape))
        return ct.astype(keras.backend.standardize_dtype(out.dtype).replace("bfloat16", "float32"))

    def value_and_grad(
        fn: Callable[..., Any], inputs: dict[str, Any], wrt: Sequence[str], cotangent: Any = None
    ) -> tuple[Any, dict[str, Any]]:
        """``fn(**inputs)`` and the gradient of ``sum(fn(**inputs) * cotangent)`` with respect to
        the inputs named in ``wrt``, by the active backend's autodiff. Returns backend tensors
        (the value and the gradients, each in its own dtype)."""
        wrt = tuple(wrt)
        if BACKEND == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                for n in wrt:
                    tape.watch(inputs[n])
                out = fn(**inputs)
                total = out if cotangent is None else tf.reduce_sum(out * _ct(cotangent, out))
            grads = tape.gradient(total, [inputs[n] for n in wrt],
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return out, dict(zip(wrt, grads))
        if BACKEND == "jax":
            import jax
            import jax.numpy as jnp

            def f(*xs: Any) -> Any:
                return fn(**{**inputs, **dict(zip(wrt, xs))})

            out, pullback = jax.vjp(f, *(inputs[n] for n in wrt))
            ct = jnp.ones_like(out) if cotangent is None else jnp.asarray(_ct(cotangent, out))
            return out, dict(zip(wrt, pullback(ct)))
        if BACKEND == "torch":
            import torch

            leaves = {n: inputs[n].detach().clone().requires_grad_(True) for n in wrt}
            out = fn(**{**inputs, **leaves})
            total = out.sum() if cotangent is None else (out * torch.as_tensor(_ct(cotangent, out))).sum()
            grads = torch.autograd.grad(total, [leaves[n] for n in wrt], allow_unused=True) if wrt else ()
            return out.detach(), {n: torch.zeros_like(leaves[n]) if g is None else g
                                  for n, g in zip(wrt, grads)}
        raise NotImplementedError(BACKEND)  # pragma: no cover

    def x64(dtype: str) -> contextlib.AbstractContextManager[Any]:
        if BACKEND == "jax" and dtype == "float64":
            import jax

            return jax.enable_x64(True)
        return contextlib.nullcontext()

    #: ``MSE_ADAPTERS_KERAS_DTYPES`` (comma-separated) restricts the dtypes, for CI time.
    DTYPES = tuple(d for d in os.environ.get("MSE_ADAPTERS_KERAS_DTYPES", "").split(",") if d) or (
        "float64", "float32", "float16", "bfloat16")

    class KerasBackend:
        name = f"keras-{BACKEND}"
        dtypes = DTYPES
        features = ("unit_norm",)  # the whitening stage and the Gaussian NLLs are not in Keras yet

        def value_and_grad(
            self, spec: LossSpec, case: Case, dtype: str, wrt: Sequence[str]
        ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
            with x64(dtype):
                loss = mk.compile(spec, dtype="float64" if dtype == "float64" else None)
                inputs = {n: tensor(getattr(case, n), dtype) for n in ARGS}
                mask = tensor(case.mask)

                def fn(pred: Any, target: Any, weight: Any, sample_weight: Any) -> Any:
                    return loss(target, pred, sample_weight, weight=weight, mask=mask)

                out, grads = value_and_grad(fn, inputs, wrt, case.cotangent)
                expected = "float64" if dtype == "float64" else "float32"
                assert keras.backend.standardize_dtype(out.dtype) == expected, (out.dtype, dtype)
                for n in wrt:  # gradients come back in the inputs' dtype
                    assert keras.backend.standardize_dtype(grads[n].dtype) == dtype, (n, grads[n].dtype)
                return to_numpy(out), {n: to_numpy(grads[n]) for n in wrt}

    BACKENDS.append(KerasBackend())
