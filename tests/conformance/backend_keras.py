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
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mse_adapters import LossSpec

from .harness import Case, half_precision_sample

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
        fn: Callable[..., Any], inputs: dict[str, Any], wrt: Sequence[str], cotangent: Any = None,
        variables: dict[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """``fn(**inputs)`` and the gradient of ``sum(fn(**inputs) * cotangent)`` with respect to
        the inputs named in ``wrt``, by the active backend's autodiff. ``variables``: the
        ``keras.Variable`` s named in ``wrt`` that ``fn`` reads itself (a loss' trainable
        ``scale_tril``; not passed to ``fn``). Returns backend tensors (the value and the
        gradients, each in its own dtype)."""
        wrt = tuple(wrt)
        variables = variables or {}
        if BACKEND == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                for n in wrt:
                    tape.watch(variables[n].value if n in variables else inputs[n])
                out = fn(**inputs)
                total = out if cotangent is None else tf.reduce_sum(out * _ct(cotangent, out))
            grads = tape.gradient(total, [variables[n].value if n in variables else inputs[n] for n in wrt],
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return out, dict(zip(wrt, grads))
        if BACKEND == "jax":
            import jax
            import jax.numpy as jnp

            def f(*xs: Any) -> Any:
                given = dict(zip(wrt, xs))
                mapping = [(v, given[n]) for n, v in variables.items()]
                with keras.StatelessScope(state_mapping=mapping):
                    return fn(**{**inputs, **{n: x for n, x in given.items() if n not in variables}})

            out, pullback = jax.vjp(f, *(variables[n].value if n in variables else inputs[n] for n in wrt))
            ct = jnp.ones_like(out) if cotangent is None else jnp.asarray(_ct(cotangent, out))
            return out, dict(zip(wrt, pullback(ct)))
        if BACKEND == "torch":
            import torch

            leaves = {n: variables[n].value if n in variables else inputs[n].detach().clone().requires_grad_(True)
                      for n in wrt}
            out = fn(**{**inputs, **{n: x for n, x in leaves.items() if n not in variables}})
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

    FULL = os.environ.get("MSE_ADAPTERS_KERAS_FULL", "") not in ("", "0")
    #: The structured cases (docs/design.md, "Whitening") run one in ``STRUCTURED_STRIDE[dtype]`` (a stable hash
    #: of the case name picks them, so every kind of case is represented in every dtype), for
    #: CI time: the stage's arithmetic is the shared pipeline's, which the reference and the
    #: other backends run in full; what is Keras' own (its ops, the factor's cast, the variable,
    #: the variance's plumbing) is exercised by every kind of case. ``MSE_ADAPTERS_KERAS_FULL=1``
    #: runs them all.
    STRUCTURED_STRIDE = {"float32": 2, "float64": 4, "float16": 8, "bfloat16": 8}

    def selected(case: Case, dtype: str) -> bool:
        if FULL:
            return True
        if not case.needs:
            return half_precision_sample(case, dtype)
        return zlib.crc32(case.name.encode()) % STRUCTURED_STRIDE.get(dtype, 1) == 0

    #: ``MSE_ADAPTERS_KERAS_DTYPES`` (comma-separated) restricts the dtypes, for CI time.
    DTYPES = tuple(d for d in os.environ.get("MSE_ADAPTERS_KERAS_DTYPES", "").split(",") if d) or (
        "float64", "float32", "float16", "bfloat16")

    class KerasBackend:
        name = f"keras-{BACKEND}"
        dtypes = DTYPES
        features = ("whiten", "precision", "gaussian_nll", "unit_norm")

        def selected(self, case: Case, dtype: str) -> bool:
            """The structured cases are sampled (see ``STRUCTURED_STRIDE``); the others all run."""
            return selected(case, dtype)

        def value_and_grad(
            self, spec: LossSpec, case: Case, dtype: str, wrt: Sequence[str]
        ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
            with x64(dtype):
                # A covariance and a precision are host constants (float64, factored once by the
                # loss); a scale_tril is a trainable keras.Variable in the case's dtype when it is
                # differentiated, else a constant tensor in that dtype.
                structured: dict[str, Any] = {n: getattr(case, n) for n in ("covariance", "precision")
                                              if getattr(case, n) is not None}
                variables: dict[str, Any] = {}
                if case.scale_tril is not None:
                    if "scale_tril" in wrt:
                        variables["scale_tril"] = keras.Variable(case.scale_tril, dtype=dtype, trainable=True)
                        structured["scale_tril"] = variables["scale_tril"]
                    else:
                        structured["scale_tril"] = tensor(case.scale_tril, dtype)
                loss = mk.compile(spec, dtype="float64" if dtype == "float64" else None, **structured)
                inputs = {n: tensor(getattr(case, n), dtype) for n in (*ARGS, "var")}
                mask = tensor(case.mask)

                def fn(pred: Any, target: Any, weight: Any, sample_weight: Any, var: Any) -> Any:
                    return loss(target, pred, sample_weight, weight=weight, mask=mask, var=var)

                out, grads = value_and_grad(fn, inputs, wrt, case.cotangent, variables)
                expected = "float64" if dtype == "float64" else "float32"
                assert keras.backend.standardize_dtype(out.dtype) == expected, (out.dtype, dtype)
                for n in wrt:  # gradients come back in the inputs' dtype
                    assert keras.backend.standardize_dtype(grads[n].dtype) == dtype, (n, grads[n].dtype)
                return to_numpy(out), {n: to_numpy(grads[n]) for n in wrt}

    BACKENDS.append(KerasBackend())
