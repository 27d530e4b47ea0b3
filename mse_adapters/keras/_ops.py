"""The Keras adapter's primitives (:class:`KerasOps`, written once in ``keras.ops`` for every
Keras backend), its vocabulary (argument names, reductions) and Keras' own conventions the
losses and the metrics share (the rank alignment, the Keras mask): imported by the losses
(:mod:`mse_adapters.keras`) and the metrics (:mod:`mse_adapters.keras.metrics`) alike."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._ops import ArgNames, Check, Ops
from .._quiet import framework_import, tensorflow_on_the_side

with framework_import():  # TensorFlow's start-up logging kept out of the user's output (_quiet.py)
    import keras
    from keras import ops
if keras.backend.backend() != "tensorflow":
    tensorflow_on_the_side()


PACKAGE = "mse_adapters"
NAMES = ArgNames(pred="y_pred", target="y_true")
Multioutput = str | Sequence[float]
Array = Any
_BACKEND = keras.backend.backend()

#: Keras' reduction names (and the spec's extra ones) -> the spec's reduction.
KERAS_REDUCTIONS: dict[str | None, str] = {
    "sum_over_batch_size": "sum_over_batch_size",
    "mean": "sum_over_batch_size",  # Keras' "mean" is its built-ins' sum_over_batch_size
    "mean_with_sample_weight": "mean",  # the contract's weighted mean
    "sum": "sum",
    "none": "none",
    None: "none",
    "per_sample": "per_sample",
    "per_output": "per_output",
}
#: The spec's reduction -> Keras' name for it.
_KERAS_NAME = {"sum_over_batch_size": "sum_over_batch_size", "mean": "mean_with_sample_weight", "sum": "sum",
               "none": "none", "per_sample": "per_sample", "per_output": "per_output"}


def _dtype(x: Array) -> str:
    return str(keras.backend.standardize_dtype(x.dtype))


class KerasOps(Ops):
    """The pipeline's primitives in ``keras.ops``: one implementation for every Keras backend.

    Shapes may hold ``None`` (a ``tf.function`` traced with an unknown batch size): counts,
    broadcasts and reshapes then use the run-time sizes, read from ``ref`` (the prediction)."""

    name = "keras"
    framework = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(_BACKEND, "numpy")
    accepts = "a tensor of the Keras backend or an array-like"
    #: A constant covariance: a product with the float64-formed L^-1 on every Keras backend
    #: (TensorFlow's triangular solve is 1.07-1.16x slower fwd+bwd at d = 8..256; the JAX and
    #: torch backends run the kernels their adapters measured).
    whiten_by = "inverse"

    def __init__(self, ref: Array = None) -> None:
        self.ref = ref

    def asarray(self, x: Any, dtype: str | None = None, like: Any = None) -> Array:
        if isinstance(x, keras.Variable):
            x = x.value
        if dtype is not None and not isinstance(x, (list, tuple, np.ndarray, int, float, bool)) \
                and _dtype(x) == dtype:
            return x
        return ops.convert_to_tensor(x, dtype=dtype)

    def dtype(self, x: Any) -> str | None:
        try:
            return _dtype(x)
        except Exception:  # noqa: BLE001 - not an array
            return None

    def constant(self, values: Any, like: Array) -> Array:
        return ops.convert_to_tensor(np.asarray(values), dtype=_dtype(like))

    def to_host(self, x: Any) -> np.ndarray:
        return np.asarray(ops.convert_to_numpy(x))

    def is_abstract(self, x: Any) -> bool:
        if _BACKEND == "tensorflow":
            import tensorflow as tf

            return not tf.executing_eagerly()
        if _BACKEND == "jax":
            import jax

            return isinstance(x, jax.core.Tracer)
        if _BACKEND == "torch":
            import torch

            return bool(torch.compiler.is_compiling())
        return False  # pragma: no cover - another backend: checks run, or fail loudly

    def is_traced(self, x: Any) -> bool:
        return isinstance(x, keras.Variable) or self.is_abstract(x)

    def where(self, cond: Array, x: Array | float, y: Array | float) -> Array:
        # A Python number next to a 0-d tensor takes the tensor's dtype (Keras' torch backend
        # would make where(c, 1.0, a 0-d float16 tensor) float32).
        if isinstance(x, (int, float)) and not isinstance(y, (int, float)) and not y.shape:
            x = ops.convert_to_tensor(x, dtype=_dtype(y))
        elif isinstance(y, (int, float)) and not isinstance(x, (int, float)) and not x.shape:
            y = ops.convert_to_tensor(y, dtype=_dtype(x))
        return ops.where(cond, x, y)

    def abs(self, x: Array) -> Array:
        # sign(x) * x is |x| exactly, with derivative sign(x): 0 at 0 on every backend
        return ops.sign(x) * x

    def sign(self, x: Array) -> Array:
        return ops.sign(x)

    def sqrt(self, x: Array) -> Array:
        return ops.sqrt(x)

    def expm1(self, x: Array) -> Array:
        return ops.expm1(x)

    def log(self, x: Array) -> Array:
        return ops.log(x)

    def log1p(self, x: Array) -> Array:
        return ops.log1p(x)

    def penalty(self, row: Any, r: Array, params: Any) -> Array:
        arrays = getattr(params, "arrays", None)
        if not (arrays and row.param_grads and all(n in row.param_grads for n in arrays)):
            return row.value(self, r, params)
        # array parameters whose derivatives the table gives (Barron's): those, not an
        # autodiff of the formula's branches (exact at alpha = 2)
        names = tuple(arrays)

        @ops.custom_gradient
        def rho(x: Array, *values: Array) -> Any:
            p = params.replace(**dict(zip(names, values)))

            def grad(*args: Array, upstream: Array | None = None) -> Any:
                g = args[0] if upstream is None else upstream  # (torch passes it as a keyword)
                return (g * row.grad(self, x, p),
                        *(_sum_to(g * row.param_grads[n](self, x, p), tuple(v.shape)) for n, v in zip(names, values)))

            return row.value(self, x, p), grad

        return rho(r, *(arrays[n] for n in names))

    def clamp_min_nograd(self, x: Array, lo: float) -> Array:
        # A custom gradient, not x + stop_gradient(max(x, lo) - x): TensorFlow's graph
        # optimiser reassociates that sum ((lo + x) - x: 1% off at lo = 1e-6).
        @ops.custom_gradient
        def clamp(v: Array) -> Any:
            def grad(*args: Array, upstream: Array | None = None) -> Array:
                return args[0] if upstream is None else upstream  # (torch passes it as a keyword)

            lo_t = ops.convert_to_tensor(np.asarray(lo), dtype=_dtype(v))
            return ops.where(v < lo_t, lo_t, v), grad

        return clamp(x)

    def shape(self, x: Array) -> tuple[int, ...]:
        return tuple(x.shape)

    def _run_time(self, shape: tuple[Any, ...]) -> tuple[Any, ...]:
        """``shape`` (a prefix of the prediction's) with its unknown sizes read at run time."""
        dynamic = ops.shape(self.ref)
        return tuple(dynamic[i] if s is None else s for i, s in enumerate(shape))

    def reshape(self, x: Array, shape: tuple[int, ...]) -> Array:
        if None not in shape:
            return ops.reshape(x, shape)
        while len(x.shape) < len(shape):  # the pipeline only adds or removes trailing 1s
            x = ops.expand_dims(x, -1)
        while len(x.shape) > len(shape):
            x = ops.squeeze(x, -1)
        return x

    def broadcast_to(self, x: Array, shape: tuple[int, ...]) -> Array:
        if tuple(x.shape) == tuple(shape):
            return x
        return ops.broadcast_to(x, self._run_time(shape) if None in shape else shape)

    def sum(self, x: Array, axis: tuple[int, ...] | None = None, dtype: str | None = None) -> Array:
        if dtype is not None and _dtype(x) == "bool":
            x = ops.cast(x, dtype)
        if axis is not None and not axis:
            return x
        return ops.sum(x, axis=axis)

    def count(self, x: Array, axes: tuple[int, ...] | None = None) -> Array | float:
        shape = tuple(x.shape)
        axes = tuple(range(len(shape))) if axes is None else axes
        if all(shape[a] is not None for a in axes):
            return float(math.prod([shape[a] for a in axes]))  # (a list: a generator breaks torch.compile's graph)
        dynamic = ops.shape(x)
        n: Any = 1
        for a in axes:
            n = n * dynamic[a]
        return ops.cast(n, _dtype(x))

    def extrema(self, x: Array) -> tuple[Array, Array]:
        if _dtype(x) == "bool":
            x = ops.cast(x, "uint8")
        return ops.min(x), ops.max(x)

    def matvec(self, m: Array, x: Array) -> Array:
        # einsum, not matmul: Keras 3.15's torch matmul returns float32 for float64 operands.
        if len(m.shape) == 2:
            return ops.einsum("...j,ij->...i", x, m)
        return ops.einsum("...ij,...j->...i", m, x)

    def solve_tril(self, lower: Array, x: Array) -> Array:
        d = lower.shape[-1]
        if len(lower.shape) == 2:  # one matrix: one solve, every sample a right-hand side
            z = ops.solve_triangular(lower, ops.transpose(ops.reshape(x, (-1, d))), lower=True)
            return ops.reshape(ops.transpose(z), ops.shape(x))
        batch = tuple(x.shape[:-1])
        if None in batch:
            batch = tuple(ops.shape(x))[:-1]
        lower = ops.broadcast_to(lower, (*batch, d, d))
        return ops.squeeze(ops.solve_triangular(lower, ops.expand_dims(x, -1), lower=True), -1)

    def cholesky(self, m: Array) -> Array:
        return ops.cholesky(m)

    def host_values(self, stats: Sequence[Array]) -> list[Any]:
        if all(len(x.shape) == 0 for x in stats):  # one transfer, in the widest dtype of the statistics
            dtype = keras.backend.result_type(*(_dtype(x) for x in stats))
            return list(ops.convert_to_numpy(ops.stack([ops.cast(x, dtype) for x in stats])))
        return [self.to_host(x) for x in stats]

    def verify(self, checks: Sequence[tuple[Check, Array]]) -> None:
        with _compile_time_eval():  # JAX: a constant's checks run at trace time under jit
            try:
                super().verify(checks)
            except _tracer_errors():
                return  # JAX: a constant inside a mapped context is abstract there


def _sum_to(x: Array, shape: tuple[Any, ...]) -> Array:
    """``x`` summed over the axes that ``shape`` broadcasts (a cotangent to its operand)."""
    lead = len(x.shape) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and x.shape[lead + i] != 1)
    return ops.reshape(ops.sum(x, axis=axes), shape) if axes else x


def _compile_time_eval() -> Any:
    """On the JAX backend, ``jax.ensure_compile_time_eval()``: operations on constants run
    eagerly while a function is traced (a weight closed over by a jitted step is checked
    then); elsewhere nothing."""
    if _BACKEND != "jax":
        return contextlib.nullcontext()
    import jax

    return jax.ensure_compile_time_eval()


def _tracer_errors() -> tuple[type[BaseException], ...]:
    if _BACKEND != "jax":
        return ()
    import jax

    return (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError)


_OPS = KerasOps()


def _same_rank(x1: Array, x2: Array) -> tuple[Array, Array]:
    """Keras' rank alignment: squeeze (or expand a rank-1 tensor) when the ranks differ by
    exactly one and the extra last axis is 1."""
    r1, r2 = len(x1.shape), len(x2.shape)
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        return (x1, ops.expand_dims(x2, -1)) if r2 == 1 else (ops.squeeze(x1, -1), x2)
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        return (ops.expand_dims(x1, -1), x2) if r1 == 1 else (x1, ops.squeeze(x2, -1))
    return x1, x2


class _KerasMask(keras.losses.Loss):
    """Reads ``y_pred``'s Keras mask (``_keras_mask``, set by ``Masking``, ``Embedding(mask_zero
    =True)``, ...) through ``keras.losses.Loss.__call__``, the public entry point that honours
    it: its ``call`` returns a scalar 1, which Keras' reduction ``"none"`` returns as is
    without a mask, and multiplies by the (0/1) mask otherwise."""

    def __init__(self, dtype: str) -> None:
        super().__init__(name="keras_mask", reduction="none", dtype=dtype)

    def call(self, y_true: Array, y_pred: Array) -> Array:
        return ops.ones((), dtype=self.dtype)


@functools.lru_cache(maxsize=8)
def _mask_reader(dtype: str) -> _KerasMask:
    return _KerasMask(dtype)


def _keras_mask(y_pred: Array, dtype: str) -> Array | None:
    """The boolean Keras mask of ``y_pred`` (None without one)."""
    m = _mask_reader(dtype)(y_pred, y_pred)
    return None if len(m.shape) == 0 else ops.cast(m, "bool")


