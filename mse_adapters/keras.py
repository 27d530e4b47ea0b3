"""Keras 3 adapter: ``keras.losses.Loss`` classes for ``model.compile``, on every Keras backend.

Written once against ``keras.ops``, so it runs unchanged under ``KERAS_BACKEND=tensorflow``,
``jax`` and ``torch``. Argument order, names and defaults follow ``keras.losses``:
``loss(y_true, y_pred, sample_weight=None)``, ``reduction="sum_over_batch_size"``, the loss
``dtype`` decides the compute dtype, and each sample is first averaged over its last axis (the
per-sample stage, DESIGN §3 "What is a unit"). With default arguments
:class:`MeanSquaredError`, :class:`MeanAbsoluteError`, :class:`Huber` and :class:`LogCosh`
equal their ``keras.losses`` namesakes bit for bit, in value and gradient, for every Keras
reduction, with and without ``sample_weight``, with Keras masks (``_keras_mask``) and with
Keras' ``(B,)`` vs ``(B, 1)`` rank alignment: they call the same per-sample functions and
Keras' own reduction wherever Keras' semantics are the contract's. Everything else runs the
shared pipeline (``mse_adapters._core``), which the conformance suite checks against the
float64 reference.

Beyond the built-ins:

- ``weight`` (constructor or call keyword): broadcastable to ``y_pred`` by NumPy (trailing)
  rules: per element, per output (shape ``(d,)``), visibility maps;
- ``mask`` (constructor or call keyword): boolean (or 0/1), broadcast like ``weight``;
  a masked element contributes nothing to the value, the gradient or the normaliser, even
  where its target is NaN. A Keras mask (``y_pred._keras_mask``, the shape of the per-sample
  losses) is honoured and combined with it;
- ``missing="nan"``: NaN targets are masked (mark missing targets in ``y`` itself);
- ``sample_weight`` of ``y_pred``'s full shape with a last axis longer than 1 weights the
  elements inside the per-sample stage: per-output weights through
  ``model.fit(sample_weight=...)``;
- ``reduction="mean_with_sample_weight"`` is the weighted mean done right: the weights are
  broadcast to the per-sample losses before they are summed (Keras sums them un-broadcast);
- RMSE, smooth L1, expectile, NMSE and R^2 presets; ``compile(spec)`` for any
  :class:`~mse_adapters.LossSpec`;
- every hyperparameter is in ``get_config`` and the classes are registered with
  ``keras.saving.register_keras_serializable(package="mse_adapters")``: ``model.save`` and
  ``keras.models.load_model`` round-trip them without ``custom_objects`` (import
  ``mse_adapters.keras`` before loading, as for any registered object).

Structured outputs (DESIGN §4):

- ``covariance`` (SPD ``(d, d)``, or one per sample ``(..., d, d)``), ``scale_tril`` (its
  Cholesky factor) or ``precision`` (a PSD cost matrix, possibly singular): exactly one, at
  construction, on :class:`MeanSquaredError`, :class:`MeanAbsoluteError`,
  :class:`RootMeanSquaredError`, :class:`Huber`, :class:`SmoothL1`, :class:`LogCosh`,
  :class:`Expectile`, :class:`Loss` / :func:`compile` (any spec) and
  :class:`MultivariateGaussianNLL`. The residual is whitened along the last axis
  (``z = L^-1 r``, ``Sigma = L L^T``) before the penalty, so it composes with every penalty,
  weight, mask, ``missing="nan"``, Keras mask and reduction; a precision is the quadratic form
  ``r^T P r`` (square penalty only). The identity matrix gives exactly the plain loss. A
  concrete matrix is validated and factored once, here, on the host in float64, and applied
  per call in the loss' dtype as a product with the precomputed inverse factor. Masks and
  missing targets must drop whole samples when whitening (a partly observed sample is a
  ``ValueError`` in eager mode; under tracing it is dropped whole).
- A trainable ``scale_tril``: pass a trainable ``keras.Variable`` (referenced, not copied:
  e.g. a layer's or a model's weight), or ``trainable_scale_tril=True`` with a ``scale_tril``
  or ``covariance`` as its initial value (the loss then creates the variable:
  ``loss.scale_tril``, ``loss.trainable_variables``). It is solved against per call
  (``keras.ops.solve_triangular``), so its gradient flows (0 above the diagonal). A loss is not
  a layer: in a custom training step, differentiate with respect to
  ``model.trainable_variables + loss.trainable_variables``; for ``fit``, let the model track
  the variable (``model.noise_scale_tril = loss.scale_tril``) and, for a functional or
  sequential model, untrack it before ``model.save`` (``del model.noise_scale_tril``: Keras
  rebuilds such a model from its layers and would find one variable too many). Learn a noise
  covariance with :class:`MultivariateGaussianNLL` (its log-determinant keeps the factor
  bounded); a whitened squared error alone decreases as the factor grows.
- :class:`GaussianNLL` (a predicted variance, equal to ``torch.nn.GaussianNLLLoss``) takes the
  variance either concatenated to the mean along the last axis of ``y_pred`` (what
  ``model.compile``/``fit`` can pass: a model with ``2 d`` outputs) or as ``var=`` at call
  time. :class:`MultivariateGaussianNLL` is ``-MultivariateNormal.log_prob`` per sample.
- ``unit_norm`` (:class:`MeanSquaredError`, any spec): ``lambda * (|y_pred|**2 - 1)**2``.
- The matrices are in ``get_config`` as nested lists of float64 (exact through JSON); a
  trainable factor as its current value with ``trainable_scale_tril=True`` (a reloaded loss
  owns a new variable holding it). Errors (not symmetric, not positive (semi-)definite, not
  lower triangular, shapes, more than one matrix) are the reference's ``ValueError`` s.

Reductions use Keras' vocabulary: ``"sum_over_batch_size"`` (default) and ``"mean"`` (what
Keras' built-ins compute: sum(w l) / number of valid samples), ``"mean_with_sample_weight"``
(sum(w l) / sum(w)), ``"sum"``, ``"none"`` (or ``None``), and the spec's ``"per_sample"``
and ``"per_output"``. :func:`compile` and :class:`Loss` take a spec and honour it exactly,
in the spec's vocabulary.

Differences from ``keras.losses``, on purpose (DESIGN §3): an empty batch gives 0, not NaN
or an unreduced empty array; ``y_true`` and ``y_pred`` whose shapes differ other than by
Keras' trailing 1 are a ``ValueError`` (Keras broadcasts them silently); a 1-D ``y_pred`` with
a ``(B,)`` ``sample_weight`` weights its elements (Keras multiplies the one per-sample mean
by each weight); a ``(B, 1)`` ``sample_weight`` with ``reduction="none"`` gives shape
``(B,)``, the per-sample losses' shape (Keras gives ``(B, 1)``); d|x|/dx at 0 is 0 on every
backend (``keras.losses.MeanAbsoluteError`` on JAX gives 1); a NaN target under a Keras mask
contributes nothing (Keras: NaN); a float64 loss is float64-accurate on every backend (Keras'
torch and JAX backends average float64 in float32, and its ``log_cosh`` subtracts a float32
log 2: those cases take the shared pipeline); weights and masks are value-checked in eager
mode (``check_values=False`` turns that off; it is skipped under ``tf.function``, ``jax.jit``
and ``torch.compile``, where the loss is computed as with ``check_values=False``, but for
constants closed over under ``jax.jit``, checked while tracing); ``Huber``'s ``delta`` and the
loss dtype are kept in the config.

>>> import numpy as np
>>> from mse_adapters.keras import MeanSquaredError
>>> loss = MeanSquaredError(missing="nan")
>>> float(loss(np.array([[3.0, np.nan], [2.0, 7.0]]), np.array([[2.5, 0.0], [2.0, 8.0]])))
0.375
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops
from keras.src.backend.common.masking import get_keras_mask
from keras.src.losses.loss import (
    reduce_weighted_values,
    scale_loss_for_distribution,
    squeeze_or_expand_to_same_rank,
)

from . import _core
from . import _keras_whiten as _kw
from ._core import ArgNames, Ops
from ._spec import LossSpec, preset
from .numpy import NumpyOps

__all__ = [
    "Loss",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "RootMeanSquaredError",
    "Huber",
    "SmoothL1",
    "LogCosh",
    "Expectile",
    "NormalizedMeanSquaredError",
    "R2Score",
    "GaussianNLL",
    "MultivariateGaussianNLL",
    "compile",
    "KerasOps",
    "KERAS_REDUCTIONS",
]

PACKAGE = "mse_adapters"
NAMES = ArgNames(pred="y_pred", target="y_true")
Multioutput = str | Sequence[float]
Array = Any

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
_KERAS_NAME = {
    "sum_over_batch_size": "sum_over_batch_size",
    "mean": "mean_with_sample_weight",
    "sum": "sum",
    "none": "none",
    "per_sample": "per_sample",
    "per_output": "per_output",
}
_EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52}


def _dtype(x: Array) -> str:
    return str(keras.backend.standardize_dtype(x.dtype))


class KerasOps(Ops):
    """The pipeline's operations in ``keras.ops``: one implementation for every Keras backend.

    Shapes may hold ``None`` (a ``tf.function`` traced with an unknown batch size): counts,
    broadcasts and reshapes then use the run-time sizes, read from ``ref`` (the prediction)."""

    name = "keras"

    def __init__(self, ref: Array = None) -> None:
        self.ref = ref

    def shape(self, x: Array) -> tuple[int, ...]:
        return tuple(x.shape)

    def is_tracing(self, x: Array) -> bool:
        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            return not tf.executing_eagerly()
        if backend == "jax":
            import jax

            return isinstance(x, jax.core.Tracer)
        if backend == "torch":
            import torch

            return bool(torch.compiler.is_compiling())
        return False  # pragma: no cover - another backend: checks run, or fail loudly

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
        # (JAX's own abs has derivative 1 at 0).
        return ops.sign(x) * x

    def minimum(self, x: Array, c: float) -> Array:
        # (ops.minimum with a Python float returns float32 for float64 on torch)
        return ops.where(x < c, x, c)

    def softplus(self, x: Array) -> Array:
        # Exact in every dtype and backend (torch's softplus switches to the identity above
        # 20: an error of 2e-9, visible in float64), derivative 1/2 at 0.
        a = self.abs(x)
        return 0.5 * (x + a) + ops.log1p(ops.exp(-a))

    def sqrt(self, x: Array) -> Array:
        return ops.sqrt(x)

    def isnan(self, x: Array) -> Array:
        return ops.isnan(x)

    def isfinite(self, x: Array) -> Array:
        return ops.isfinite(x)

    def logical_and(self, a: Array, b: Array) -> Array:
        return ops.logical_and(a, b)

    def logical_or(self, a: Array, b: Array) -> Array:
        return ops.logical_or(a, b)

    def is_bool(self, x: Array) -> bool:
        return _dtype(x) == "bool"

    def all(self, x: Array) -> bool:
        return bool(ops.convert_to_numpy(ops.all(x)))

    def concrete(self) -> Any:
        if keras.backend.backend() == "jax":
            import jax

            return jax.ensure_compile_time_eval()  # a constant's checks run at trace time under jit
        return super().concrete()

    def finite_and_nonnegative(self, x: Array) -> tuple[bool, bool]:
        # both answers from one host sync
        both = ops.convert_to_numpy(ops.stack([ops.all(ops.isfinite(x)), ops.all(x >= 0)]))
        return bool(both[0]), bool(both[1])

    def to_float(self, x: Array, like: Array) -> Array:
        return ops.cast(x, _dtype(like))

    def _run_time(self, shape: tuple[Any, ...]) -> tuple[Any, ...]:
        """``shape`` (a prefix of the prediction's) with its unknown sizes read at run time."""
        ref_shape = tuple(self.ref.shape) if self.ref is not None else ()
        if tuple(shape) != ref_shape[: len(shape)]:
            raise ValueError(f"cannot resolve the unknown sizes of shape {shape}")  # pragma: no cover
        dynamic = ops.shape(self.ref)
        return tuple(dynamic[i] if s is None else s for i, s in enumerate(shape))

    def reshape(self, x: Array, shape: tuple[int, ...]) -> Array:
        if None not in shape:
            return ops.reshape(x, shape)
        # The pipeline only adds or removes trailing axes of size 1.
        while len(x.shape) < len(shape):
            x = ops.expand_dims(x, -1)
        while len(x.shape) > len(shape):
            x = ops.squeeze(x, -1)
        return x

    def broadcast_to(self, x: Array, shape: tuple[int, ...]) -> Array:
        if tuple(x.shape) == tuple(shape):
            return x
        if None in shape:
            return ops.broadcast_to(x, self._run_time(shape))
        return ops.broadcast_to(x, shape)

    def sum(self, x: Array, axis: tuple[int, ...] | None = None) -> Array:
        if axis is not None and not axis:
            return x
        return ops.sum(x, axis=axis)

    def count(self, x: Array, axes: tuple[int, ...] | None = None) -> Array | float:
        shape = tuple(x.shape)
        axes = tuple(range(len(shape))) if axes is None else axes
        if all(shape[a] is not None for a in axes):
            return float(math.prod(shape[a] for a in axes))
        dynamic = ops.shape(x)
        n: Any = 1
        for a in axes:
            n = n * dynamic[a]
        return ops.cast(n, _dtype(x))

    def eps(self, like: Array) -> float:
        return _EPS[_dtype(like)]

    def constant(self, values: list[float], like: Array) -> Array:
        return ops.convert_to_tensor(np.asarray(values), dtype=_dtype(like))

    # -- the transform stage and the Gaussian likelihoods (DESIGN §4) --------------------

    def matvec(self, m: Array, x: Array) -> Array:
        # einsum, not matmul: Keras 3.15's torch matmul returns float32 for float64 operands.
        if len(m.shape) == 2:  # one matrix: one product over every sample
            return ops.einsum("...j,ij->...i", x, m)
        return ops.einsum("...ij,...j->...i", m, x)  # one per sample, batch axes broadcast

    def solve_tril(self, lower: Array, x: Array) -> Array:
        d = lower.shape[-1]
        if len(lower.shape) == 2:  # one matrix: one solve, every sample a right-hand side
            z = ops.solve_triangular(lower, ops.transpose(ops.reshape(x, (-1, d))), lower=True)
            return ops.reshape(ops.transpose(z), ops.shape(x))
        # one matrix per sample: the factors broadcast to the samples' axes (checked)
        batch = tuple(x.shape[:-1])
        if None in batch:
            batch = tuple(ops.shape(x))[:-1]
        lower = ops.broadcast_to(lower, (*batch, d, d))
        return ops.squeeze(ops.solve_triangular(lower, ops.expand_dims(x, -1), lower=True), -1)

    def log(self, x: Array) -> Array:
        return ops.log(x)

    def diagonal(self, m: Array) -> Array:
        return ops.diagonal(m, axis1=-2, axis2=-1)

    def clamp_min_nograd(self, x: Array, lo: float) -> Array:
        # max(x, lo) in value, the identity's derivative everywhere, as torch.nn.GaussianNLLLoss'
        # in-place clamp under no_grad. A custom gradient, not x + stop_gradient(max(x, lo) - x):
        # TensorFlow's graph optimiser reassociates that sum ((lo + x) - x: 1% off at lo = 1e-6).
        @ops.custom_gradient
        def clamp(v: Array) -> Any:
            def grad(*args: Array, upstream: Array | None = None) -> Array:
                return args[0] if upstream is None else upstream  # (torch passes it as a keyword)

            # lo as a tensor of v's dtype: Keras' torch where() rounds a Python float to float32
            lo_t = ops.convert_to_tensor(np.asarray(lo), dtype=_dtype(v))
            return ops.where(v < lo_t, lo_t, v), grad

        return clamp(x)


_OPS = KerasOps()
_NUMPY_OPS = NumpyOps()  # checks of the constructor's weight and mask (NumPy arrays)


# ---------------------------------------------------------------------------------------
# The fast path: Keras' own per-sample functions and reduction, where they are the contract.
# ---------------------------------------------------------------------------------------


def _mean_absolute_error(y_true: Array, y_pred: Array) -> Array:
    """``keras.losses.mean_absolute_error`` with the contract's d|x|/dx = 0 at 0 on every
    backend: the same value bits, and the same gradient bits wherever the residual is not 0."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.convert_to_tensor(y_true, dtype=y_pred.dtype)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return ops.mean(_OPS.abs(y_true - y_pred), axis=-1)


def _log_cosh(y_true: Array, y_pred: Array) -> Array:
    """``keras.losses.log_cosh`` where |r| >= 0.3 (the same value bits, and the same gradient
    bits), and the shared pipeline's Taylor series below, where Keras' r + softplus(-2 r) - log 2
    cancels (1% off at |r| = 1e-3 in float32, the relative error growing as eps / r**2)."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.convert_to_tensor(y_true, dtype=y_pred.dtype)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    log2 = ops.convert_to_tensor(ops.log(2.0), dtype=y_pred.dtype)
    x = y_pred - y_true
    keras_value = x + ops.softplus(x * -2.0) - log2
    sq = x * x
    small = sq < _core._LOG_COSH_SMALL**2
    x2 = ops.where(small, sq, 0.0)  # the unused branch stays finite
    series: Array = _core._LOG_COSH_SERIES[-1]
    for c in reversed(_core._LOG_COSH_SERIES[:-1]):
        series = series * x2 + c
    return ops.mean(ops.where(small, series * x2, keras_value), axis=-1)


def _keras_per_sample_fn(spec: LossSpec, dtype: str) -> Callable[[Array, Array], Array] | None:
    """The Keras per-sample function with ``spec``'s semantics in ``dtype``, or None. Chosen
    once, at construction."""
    if spec.reduction not in ("none", "sum", "mean", "sum_over_batch_size") or not spec.per_sample:
        return None
    if spec != LossSpec(penalty=spec.penalty, delta=spec.delta, reduction=spec.reduction, per_sample=True):
        return None  # a finalizer, missing targets, a transform, a unit-norm term, ...
    if not _keras_computes_in(dtype):
        return None
    if spec.penalty == "square":
        return keras.losses.mean_squared_error
    if spec.penalty == "abs":
        return _mean_absolute_error
    if spec.penalty == "huber":
        return functools.partial(keras.losses.huber, delta=spec.delta)
    if spec.penalty == "log_cosh" and dtype != "float64":
        return _log_cosh  # (in float64 Keras subtracts a float32 log(2): 3e-9 off)
    return None


_COMPUTES_IN: dict[str, bool] = {}


def _keras_computes_in(dtype: str) -> bool:
    """Whether Keras' built-in losses really compute in ``dtype``. Keras 3.15's torch and JAX
    backends average float64 in float32 (``ops.mean`` and ``divide_no_nan`` promote through
    its 32-bit ``result_type``). Probed once per dtype (the Keras backend is fixed per
    process); a probe that cannot run (a loss built inside a graph) answers no, not cached."""
    if dtype != "float64":
        return True
    if dtype not in _COMPUTES_IN:
        try:
            x = ops.convert_to_tensor(np.array([1.0, 2.0**-40]), dtype=dtype)
            one = ops.ones((), dtype=dtype)
            _COMPUTES_IN[dtype] = (_dtype(ops.divide_no_nan(one, one)) == dtype
                                   and float(ops.convert_to_numpy(ops.mean(x))) == (1.0 + 2.0**-40) / 2)
        except Exception:  # noqa: BLE001 - symbolic tensors: take the general path this time
            return False
    return _COMPUTES_IN[dtype]


def _fast_path_applies(
    reduction: str, pshape: tuple[Any, ...], tshape: tuple[Any, ...], sw: Array | None, kmask: Array | None
) -> bool:
    """Whether Keras' built-in computation equals the contract for these (static) shapes."""
    if pshape != tshape or not pshape or any(s == 0 for s in pshape) or pshape[-1] is None:
        return False  # a shape error, an empty batch (Keras: NaN) or an unknown sample size
    units = pshape[:-1]
    if kmask is not None and tuple(kmask.shape) != units:
        return False
    if sw is None:
        return True
    if not units and reduction == "mean_with_sample_weight":
        return False  # Keras returns a scalar loss times the weight, not divided by it
    s = _squeezed_weight_shape(tuple(sw.shape), units)
    if s == units:
        return True
    if not (not s or (len(s) == len(units) and all(a in (1, b) for a, b in zip(s, units)))):
        return False  # a (B,) weight of a 1-D prediction (Keras misapplies it), a full shape
    # A broadcasting sample weight (a scalar, or (B, 1) per sequence): with a Keras mask,
    # Keras multiplies it by the mask, which broadcasts it before anything is summed (exact;
    # ``_keras`` broadcasts it first, as Keras' torch backend cannot do it in place). Without
    # a mask, Keras' "mean_with_sample_weight" sums it un-broadcast.
    return kmask is not None or reduction != "mean_with_sample_weight"


def _squeezed_weight_shape(s: tuple[Any, ...], units: tuple[Any, ...]) -> tuple[Any, ...]:
    """A sample weight's shape after Keras' squeeze of a trailing 1."""
    return s[:-1] if len(s) == len(units) + 1 and s[-1] == 1 else s


# ---------------------------------------------------------------------------------------
# The loss classes
# ---------------------------------------------------------------------------------------


def _as_array(name: str, x: Any, dtype: Any) -> np.ndarray | None:
    if x is None:
        return None
    _check_input(name, x)
    a = np.asarray(x if isinstance(x, (list, tuple, np.ndarray, float, int)) else ops.convert_to_numpy(x))
    if a.dtype.kind not in "biuf":
        raise _core.dtype_error(name, str(a.dtype))
    return a if dtype is None else a.astype(dtype)


_FRAMEWORK = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(keras.backend.backend(), "numpy")


def _input_dtype(x: Any) -> str:
    dtype = getattr(x, "dtype", None)
    return str(keras.backend.standardize_dtype(np.asarray(x).dtype if dtype is None else dtype))


def _check_input(name: str, x: Any) -> None:
    """No array of another framework (it would be copied, its gradient cut), no complex dtype."""
    _core.check_not_foreign(name, x, _FRAMEWORK)
    dtype = _input_dtype(x)
    if dtype.startswith("complex"):
        raise _core.dtype_error(name, dtype)


def _listed(a: np.ndarray | None) -> Any:
    return None if a is None else a.tolist()


def _mo(multioutput: Multioutput) -> str | tuple[float, ...]:
    return multioutput if isinstance(multioutput, str) else tuple(float(v) for v in multioutput)


class _SpecLoss(keras.losses.Loss):
    """The machinery shared by :class:`Loss` and the presets (not public)."""

    def __init__(
        self,
        spec: LossSpec,
        *,
        reduction: str | None,
        name: str | None,
        dtype: Any,
        weight: Any,
        mask: Any,
        check_values: bool,
        covariance: Any = None,
        scale_tril: Any = None,
        precision: Any = None,
        trainable_scale_tril: bool = False,
    ) -> None:
        super().__init__(name=name, reduction="none", dtype=dtype)
        self.reduction = reduction  # Keras' vocabulary; the spec holds the meaning
        spec, self._whiten = _kw.setup(spec, covariance, scale_tril, precision, trainable_scale_tril, self.dtype)
        self.spec = spec
        self.check_values = bool(check_values)
        self.weight = _as_array(NAMES.weight, weight, np.float64)
        if self.weight is not None and self.check_values:
            _core.check_weight_values(_NUMPY_OPS, NAMES.weight, self.weight)
        m = _as_array(NAMES.mask, mask, None)
        self.mask = None if m is None else _core.mask_to_bool(_NUMPY_OPS, NAMES.mask, m, self.check_values)
        self._keras_fn = (_keras_per_sample_fn(spec, self.dtype)
                          if self.weight is None and self.mask is None else None)
        self._keras_reduction = _KERAS_NAME[spec.reduction]

    # -- config ------------------------------------------------------------------------
    def _base_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self._dtype_policy.name,
            "weight": _listed(self.weight),
            "mask": _listed(self.mask),
            "check_values": self.check_values,
            **self._whiten.config(),  # the matrix given (nested lists, float64), if any
        }

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover - every public class defines it

    @property
    def trainable_variables(self) -> list[Any]:
        """The trainable ``scale_tril`` (a ``keras.Variable``), if the loss has one: a loss is
        not a layer, so ``fit`` trains it only where the model tracks it (see the module doc)."""
        return self._whiten.trainable_variables

    @property
    def scale_tril(self) -> Any:
        """The trainable ``scale_tril`` variable, or the constant factor L as float64 NumPy
        (None without a covariance or scale_tril)."""
        w = self._whiten
        if w.kind == "trainable":
            return w.variable
        return None if w.host is None else w.host.scale_tril

    # -- evaluation --------------------------------------------------------------------
    def __call__(
        self,
        y_true: Array,
        y_pred: Array,
        sample_weight: Array | None = None,
        *,
        weight: Array | None = None,
        mask: Array | None = None,
        var: Array | float | None = None,
    ) -> Array:
        """The loss. ``sample_weight`` as in Keras (weights samples; a full-shape weight with
        a last axis longer than 1 weights elements); ``weight`` and ``mask`` (keywords) as the
        constructor's, combined with them (weights multiply, masks are AND-ed). ``var``: the
        predicted variance of the Gaussian NLL (without it, ``y_pred`` is the mean and the
        variance concatenated along the last axis, see :class:`GaussianNLL`)."""
        kmask = get_keras_mask(y_pred)
        for name, x in ((NAMES.pred, y_pred), (NAMES.target, y_true), (NAMES.weight, weight),
                        (NAMES.sample_weight, sample_weight), (NAMES.mask, mask),
                        ("var", None if isinstance(var, (int, float)) else var)):
            if x is not None:
                _check_input(name, x)
        if self.spec.missing == "nan":
            target_dtype = _input_dtype(y_true)
            _core.check_missing_dtype(self.spec, NAMES, "float" in target_dtype, target_dtype)
        with keras.name_scope(self.name):
            dtype = self.dtype
            y_pred = ops.convert_to_tensor(y_pred, dtype=dtype)
            y_true = ops.convert_to_tensor(y_true, dtype=dtype)
            if var is None and self.spec.penalty == "gaussian_nll" and self.spec.transform is None:
                y_true, y_pred, var = _kw.split_mean_and_variance(y_true, y_pred)
            elif var is not None and not isinstance(var, (int, float)):
                var = ops.convert_to_tensor(var, dtype=dtype)
            y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
            if sample_weight is not None:
                sample_weight = ops.convert_to_tensor(sample_weight, dtype=dtype)
            fn = self._keras_fn
            if (
                fn is not None
                and weight is None
                and mask is None
                and var is None
                and _fast_path_applies(self._keras_reduction, tuple(y_pred.shape), tuple(y_true.shape),
                                       sample_weight, kmask)
            ):
                return self._keras(fn, y_true, y_pred, sample_weight, kmask)
            return self._general(y_true, y_pred, sample_weight, weight, mask, kmask, var)

    def call(self, y_true: Array, y_pred: Array) -> Array:
        """Keras' hook for the unreduced losses: the per-unit losses (a sample's, with the
        per-sample stage) without weights, as ``keras.losses``' built-ins return them; the
        constructor's ``weight`` and ``mask`` apply. A finalized loss (RMSE, NMSE, R^2) has no
        per-unit values: it returns the loss itself."""
        twin = copy.copy(self)
        if self.spec.finalize == "identity" and not self.spec.per_output_stats:
            twin.spec = self.spec.replace(reduction="none")
            twin._keras_reduction = "none"
            twin._keras_fn = None if self._keras_fn is None else _keras_per_sample_fn(twin.spec, self.dtype)
        return twin(y_true, y_pred)

    def _keras(self, fn: Callable[[Array, Array], Array], y_true: Array, y_pred: Array,
               sample_weight: Array | None, kmask: Array | None) -> Array:
        """Keras' own computation (``LossFunctionWrapper`` and ``reduce_weighted_values``)."""
        if sample_weight is not None and self.check_values:
            _core.check_weight_values(_OPS, NAMES.sample_weight, sample_weight)
        if kmask is not None:
            kmask = ops.cast(kmask, "bool")
            # A masked sample's target or prediction may be NaN or inf: both are replaced by 0
            # there (a residual of exactly 0 and no gradient through the select), so that
            # 0 * NaN never reaches the value or the gradient. Keras' own values are unchanged.
            keep = ops.expand_dims(kmask, -1)
            y_true = ops.where(keep, y_true, 0.0)
            y_pred = ops.where(keep, y_pred, 0.0)
            if sample_weight is not None:
                units = tuple(kmask.shape)
                if _squeezed_weight_shape(tuple(sample_weight.shape), units) != units:
                    # a scalar or per-sequence weight: Keras broadcasts it by its product with
                    # the mask (TensorFlow, JAX); its torch backend fails to do that in place.
                    # A product with ones is exact and broadcasts to a batch size known only
                    # at run time (a tf.function's None axis).
                    sample_weight = sample_weight * ops.ones_like(kmask, dtype=sample_weight.dtype)
                else:
                    sample_weight = ops.copy(sample_weight)  # Keras multiplies it in place on torch
        losses = fn(y_true, y_pred)
        out = reduce_weighted_values(losses, sample_weight=sample_weight, mask=kmask,
                                     reduction=self._keras_reduction, dtype=self.dtype)
        if len(out.shape) > len(losses.shape):  # a (B, 1) sample_weight with reduction "none"
            out = ops.squeeze(out, -1)
        return out

    def _general(self, y_true: Array, y_pred: Array, sample_weight: Array | None, weight: Array | None,
                 mask: Array | None, kmask: Array | None, var: Array | float | None = None) -> Array:
        """The shared pipeline, on tensors of the loss dtype."""
        dtype = self.dtype
        shape = tuple(y_pred.shape)
        _core.check_same_shape(shape, tuple(y_true.shape), NAMES)
        w = None
        for part in (self.weight, weight):
            if part is not None:
                part = ops.convert_to_tensor(part, dtype=dtype)
                _core.check_trailing(NAMES.weight, tuple(part.shape), shape, NAMES.pred)
                w = part if w is None else w * part
        m = None
        parts = [(NAMES.mask, self.mask), (NAMES.mask, mask)]
        if kmask is not None:
            kshape = tuple(kmask.shape)
            if shape and kshape == shape[:-1]:  # Keras' mask: one entry per sample
                kmask = ops.expand_dims(kmask, -1)
            parts.append(("the Keras mask of y_pred (_keras_mask)", kmask))
        for name, part in parts:
            if part is not None:
                part = ops.convert_to_tensor(part)
                _core.check_trailing(name, tuple(part.shape), shape, NAMES.pred)
                part = _core.mask_to_bool(_OPS, name, part, self.check_values)
                m = part if m is None else ops.logical_and(m, part)
        dynamic = any(s is None for s in shape)
        ops_ = KerasOps(y_pred) if dynamic else _OPS
        whitening = None
        if self._whiten.kind is not None:
            whitening = self._whiten.whitening(y_pred, eager=not ops_.is_tracing(y_pred))
        out = _core.run(ops_, self.spec, y_pred, y_true, weight=w, sample_weight=sample_weight, mask=m,
                        names=NAMES, check_values=self.check_values, whitening=whitening,
                        var=None if var is None else float(var) if isinstance(var, (int, float)) else var)
        if self.spec.reduction in ("mean", "sum_over_batch_size"):
            out = scale_loss_for_distribution(out)  # as Keras' averaging reductions
        return out


if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    # Python logic on static shapes only: AutoGraph must leave it alone inside tf.function
    # (Keras' own modules are exempt by name; this one is not).
    setattr(_SpecLoss, "__call__", tf.autograph.experimental.do_not_convert(_SpecLoss.__call__))  # noqa: B010


def _matrices(covariance: Any, scale_tril: Any, precision: Any, trainable_scale_tril: bool) -> dict[str, Any]:
    return {"covariance": covariance, "scale_tril": scale_tril, "precision": precision,
            "trainable_scale_tril": trainable_scale_tril}


def _loss_reduction(reduction: str | None) -> str:
    if reduction not in KERAS_REDUCTIONS:
        raise ValueError(
            f"reduction={reduction!r} is not supported; allowed values: "
            + ", ".join(repr(k) for k in KERAS_REDUCTIONS)
        )
    return KERAS_REDUCTIONS[reduction]


@keras.saving.register_keras_serializable(package=PACKAGE)
class Loss(_SpecLoss):
    """A Keras loss compiled from a :class:`~mse_adapters.LossSpec`, honoured exactly (in the
    spec's vocabulary: ``per_sample`` as given, ``reduction="mean"`` is the weighted mean).

    >>> import numpy as np
    >>> from mse_adapters import LossSpec
    >>> f = Loss(LossSpec(penalty="abs", reduction="sum"))
    >>> float(f(np.array([1.0, 2.0]), np.array([1.5, 0.0])))
    2.5
    """

    def __init__(self, spec: LossSpec | dict[str, Any], *, weight: Any = None, mask: Any = None,
                 check_values: bool = True, name: str | None = None, dtype: Any = None,
                 covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 trainable_scale_tril: bool = False) -> None:
        if isinstance(spec, dict):
            spec = LossSpec.from_dict(spec)
        if not isinstance(spec, LossSpec):
            raise TypeError(f"spec must be a LossSpec, got {type(spec).__name__}")
        super().__init__(spec, reduction=_KERAS_NAME[spec.reduction], name=name, dtype=dtype,
                         weight=weight, mask=mask, check_values=check_values, covariance=covariance,
                         scale_tril=scale_tril, precision=precision, trainable_scale_tril=trainable_scale_tril)

    def get_config(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), **self._base_config()}


def compile(spec: LossSpec, *, weight: Any = None, mask: Any = None, check_values: bool = True,
            name: str | None = None, dtype: Any = None, covariance: Any = None, scale_tril: Any = None,
            precision: Any = None, trainable_scale_tril: bool = False) -> Loss:  # noqa: A001
    """Compile a spec into a ``keras.losses.Loss`` (a :class:`Loss`). ``covariance``,
    ``scale_tril``, ``precision`` and ``trainable_scale_tril``: the transform stage (see the
    module documentation, "Structured outputs")."""
    return Loss(spec, weight=weight, mask=mask, check_values=check_values, name=name, dtype=dtype,
                covariance=covariance, scale_tril=scale_tril, precision=precision,
                trainable_scale_tril=trainable_scale_tril)


class _Preset(_SpecLoss):
    """A named loss with Keras' conventions: the per-sample stage on, Keras' reductions."""

    _preset = ""

    def __init__(self, *, reduction: str | None, name: str | None, dtype: Any, weight: Any, mask: Any,
                 check_values: bool, matrices: dict[str, Any] | None = None, **fields: Any) -> None:
        self._fields = dict(fields)
        try:
            spec = self._make_spec(reduction=_loss_reduction(reduction), **fields)
        except ValueError as e:
            raise ValueError(
                f"{e} (reductions named as in the spec: Keras' 'mean_with_sample_weight' is the spec's "
                "'mean'; Keras' 'mean' and 'sum_over_batch_size' are the spec's 'sum_over_batch_size')"
            ) from None
        super().__init__(spec, reduction=reduction, name=name, dtype=dtype, weight=weight, mask=mask,
                         check_values=check_values, **(matrices or {}))

    def _make_spec(self, **fields: Any) -> LossSpec:
        return preset(self._preset, **fields)

    def get_config(self) -> dict[str, Any]:
        fields = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self._fields.items()}
        return {"reduction": self.reduction, **fields, **self._base_config()}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MeanSquaredError(_Preset):
    """Mean squared error; with default arguments equal to ``keras.losses.MeanSquaredError``
    bit for bit.

    ``per_sample=False`` makes every element a unit (``"sum"`` is then the sum of squared
    errors, not of per-sample means)."""

    _preset = "mse"

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str | None = "mean_squared_error",
                 dtype: Any = None, *, per_sample: bool = True, missing: str | None = None,
                 weight: Any = None, mask: Any = None, check_values: bool = True,
                 covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 trainable_scale_tril: bool = False, unit_norm: float = 0.0) -> None:
        super().__init__(reduction=reduction, name=name, dtype=dtype, weight=weight, mask=mask,
                         check_values=check_values,
                         matrices=_matrices(covariance, scale_tril, precision, trainable_scale_tril),
                         per_sample=per_sample, missing=missing, unit_norm=unit_norm)


@keras.saving.register_keras_serializable(package=PACKAGE)
class MeanAbsoluteError(_Preset):
    """Mean absolute error; with default arguments equal to ``keras.losses.MeanAbsoluteError``
    (d|r|/dr = 0 at r = 0 on every backend)."""

    _preset = "mae"

    def __init__(self, reduction: str | None = "sum_over_batch_size",
                 name: str | None = "mean_absolute_error", dtype: Any = None, *, per_sample: bool = True,
                 missing: str | None = None, weight: Any = None, mask: Any = None,
                 check_values: bool = True, covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 trainable_scale_tril: bool = False) -> None:
        super().__init__(reduction=reduction, name=name, dtype=dtype, weight=weight, mask=mask,
                         check_values=check_values,
                         matrices=_matrices(covariance, scale_tril, precision, trainable_scale_tril),
                         per_sample=per_sample, missing=missing)


@keras.saving.register_keras_serializable(package=PACKAGE)
class RootMeanSquaredError(_Preset):
    """Root mean squared error: the square root of the (averaging) reduction, pooled over every
    sample (as ``keras.metrics.RootMeanSquaredError`` with ``"mean_with_sample_weight"``).
    The gradient at a perfect fit is 0, not NaN. ``multioutput`` (scikit-learn's choices)
    needs ``per_sample=False`` and ``reduction="mean_with_sample_weight"``."""

    _preset = "rmse"

    def __init__(self, reduction: str | None = "sum_over_batch_size",
                 name: str | None = "root_mean_squared_error", dtype: Any = None, *,
                 per_sample: bool = True, multioutput: Multioutput = "pooled", missing: str | None = None,
                 weight: Any = None, mask: Any = None, check_values: bool = True,
                 covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 trainable_scale_tril: bool = False) -> None:
        super().__init__(reduction=reduction, name=name, dtype=dtype, weight=weight, mask=mask,
                         check_values=check_values,
                         matrices=_matrices(covariance, scale_tril, precision, trainable_scale_tril),
                         per_sample=per_sample, multioutput=_mo(multioutput),
                         missing=missing)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Huber(_Preset):
    """Huber loss (0.5 r**2 for |r| <= delta, else delta (|r| - delta/2)); with default
    arguments equal to ``keras.losses.Huber``. ``delta`` survives ``get_config`` (Keras 3.15
    drops it)."""

    _preset = "huber"

    def __init__(self, delta: float = 1.0, reduction: str | None = "sum_over_batch_size",
                 name: str | None = "huber_loss", dtype: Any = None, *, per_sample: bool = True,
                 missing: str | None = None, weight: Any = None, mask: Any = None,
                 check_values: bool = True, covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 trainable_scale_tril: bool = False) -> None:
        super().__init__(reduction=reduction, name=name, dtype=dtype, weight=weight, mask=mask,
                         check_values=check_values,
                         matrices=_matrices(covariance, scale_tril, precision, trainable_scale_tril),
                         delta=delta, per_sample=per_sample, missing=missing)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SmoothL1(_Preset):
    """Smooth L1 (0.5 r**2 / beta for |r| < beta, else |r| - beta/2; = Huber / beta)."""

    _preset = "smooth_l1"

    def __init__(self, beta: float = 1.0, reduction: str | None = "sum_over_batch_size",
                 name: str | None = "smooth_l1", dtype: Any = None, *, per_sample: bool = True,
                 missing: str | None = None, weight: Any = None, mask: Any = None,
                 check_values: bool = True, covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 trainable_scale_tril: bool = False) -> None:
        super().__init__(reduction=reduction, name=name, dtype=dtype, weight=weight, mask=mask,
                         check_values=check_values,
                         matrices=_matrices(covariance, scale_tril, precision, trainable_scale_tril),
                         beta=beta, per_sample=per_sample, missing=missing)


@keras.saving.register_keras_serializable(package=PACKAGE)
class LogCosh(_Preset):
    """log(cosh(r)), computed stably. With default arguments equal to ``keras.losses.LogCosh``
    bit for bit wherever every residual has |r| >= 0.3; below that, Keras' r + softplus(-2 r) -
    log 2 cancels (an absolute error of about eps * log 2 per element: 1% relative at
    r = 1e-3 in float32) and the Taylor series of the shared pipeline is used instead, so the
    two differ there by Keras' rounding error."""

    _preset = "log_cosh"

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str | None = "log_cosh",
                 dtype: Any = None, *, per_sample: bool = True, missing: str | None = None,
                 weight: Any = None, mask: Any = None, check_values: bool = True,
                 covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 trainable_scale_tril: bool = False) -> None:
        super().__init__(reduction=reduction, name=name, dtype=dtype, weight=weight, mask=mask,
                         check_values=check_values,
                         matrices=_matrices(covariance, scale_tril, precision, trainable_scale_tril),
                         per_sample=per_sample, missing=missing)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Expectile(_Preset):
    """Asymmetric squared error: ``tau * r**2`` where y_pred < y_true (under-prediction),
    ``(1 - tau) * r**2`` where y_pred > y_true. tau = 0.5 is half the MSE."""

    _preset = "expectile"

    def __init__(self, tau: float = 0.5, reduction: str | None = "sum_over_batch_size",
                 name: str | None = "expectile", dtype: Any = None, *, per_sample: bool = True,
                 missing: str | None = None, weight: Any = None, mask: Any = None,
                 check_values: bool = True, covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 trainable_scale_tril: bool = False) -> None:
        super().__init__(reduction=reduction, name=name, dtype=dtype, weight=weight, mask=mask,
                         check_values=check_values,
                         matrices=_matrices(covariance, scale_tril, precision, trainable_scale_tril),
                         tau=tau, per_sample=per_sample, missing=missing)


@keras.saving.register_keras_serializable(package=PACKAGE)
class NormalizedMeanSquaredError(_Preset):
    """Normalised MSE per output (weighted SSE / weighted, centred SST), combined by
    ``multioutput`` (default ``"uniform_average"``). NMSE = 1 - R^2. It works output by output,
    so it has no per-sample stage; ``reduction`` is ``"mean_with_sample_weight"`` (the
    weighted mean) or ``"per_output"`` (one value per output)."""

    _preset = "nmse"

    def __init__(self, multioutput: Multioutput = "uniform_average",
                 reduction: str | None = "mean_with_sample_weight",
                 name: str | None = "normalized_mean_squared_error", dtype: Any = None, *,
                 missing: str | None = None, weight: Any = None, mask: Any = None,
                 check_values: bool = True) -> None:
        super().__init__(reduction=reduction, name=name, dtype=dtype, weight=weight, mask=mask,
                         check_values=check_values, multioutput=_mo(multioutput), missing=missing)


@keras.saving.register_keras_serializable(package=PACKAGE)
class R2Score(_Preset):
    """Coefficient of determination (a score: higher is better; minimise ``1 - R2`` with
    :class:`NormalizedMeanSquaredError`). Equal to ``sklearn.metrics.r2_score`` and stable in
    float32. ``reduction`` as in :class:`NormalizedMeanSquaredError`."""

    _preset = "r2"

    def __init__(self, multioutput: Multioutput = "uniform_average",
                 reduction: str | None = "mean_with_sample_weight", name: str | None = "r2_score",
                 dtype: Any = None, *, missing: str | None = None, weight: Any = None, mask: Any = None,
                 check_values: bool = True) -> None:
        super().__init__(reduction=reduction, name=name, dtype=dtype, weight=weight, mask=mask,
                         check_values=check_values, multioutput=_mo(multioutput), missing=missing)


# -- Gaussian likelihoods -----------------------------------------------------------------


@keras.saving.register_keras_serializable(package=PACKAGE)
class GaussianNLL(_Preset):
    """Heteroscedastic Gaussian negative log-likelihood with a predicted variance:
    ``0.5 * (log v + (mean - y_true)**2 / v)`` with ``v = max(variance, eps)`` (clamped as
    ``torch.nn.GaussianNLLLoss`` clamps, the gradient passing through the clamp), plus
    ``0.5 * log(2 pi)`` with ``full``; equal to ``torch.nn.GaussianNLLLoss`` in value and
    gradient (``reduction="sum_over_batch_size"``, the default, is its ``"mean"``;
    ``per_sample=False`` with ``"sum"`` or ``"none"`` its ``"sum"`` and ``"none"``).

    How the variance comes in. ``model.compile``/``fit`` pass ``(y_true, y_pred,
    sample_weight)`` only, so by default ``y_pred`` is the mean and the variance concatenated
    along the last axis: a model with ``2 d`` outputs for ``d`` targets (``y_true`` of shape
    ``(N,)`` goes with ``y_pred`` of shape ``(N, 2)``); keep the variance positive (e.g. a
    ``softplus`` activation on its half). Called directly, ``loss(y_true, y_pred, var=v)``
    takes the variance as a separate tensor (or number), with ``torch.nn.GaussianNLLLoss``'
    variance shapes: ``y_pred``'s, ``y_pred``'s without its last axis, or one axis of size 1.

    >>> import numpy as np
    >>> y_pred = np.array([[1.0, 1.0], [2.0, 4.0]])  # [mean, variance] per sample
    >>> round(float(GaussianNLL()(np.zeros(2), y_pred)), 4)
    0.8466
    """

    def __init__(self, full: bool = False, eps: float = 1e-6, reduction: str | None = "sum_over_batch_size",
                 name: str | None = "gaussian_nll", dtype: Any = None, *, per_sample: bool = True,
                 missing: str | None = None, weight: Any = None, mask: Any = None,
                 check_values: bool = True) -> None:
        super().__init__(reduction=reduction, name=name, dtype=dtype, weight=weight, mask=mask,
                         check_values=check_values, full=full, eps=eps, per_sample=per_sample, missing=missing)

    def _make_spec(self, **fields: Any) -> LossSpec:
        return LossSpec(penalty="gaussian_nll", **fields)


@keras.saving.register_keras_serializable(package=PACKAGE)
class MultivariateGaussianNLL(_Preset):
    """Full-covariance Gaussian negative log-likelihood, one value per sample (the last axis
    is the event): ``0.5 * |L^-1 (y_pred - y_true)|**2 + sum(log diag L) + d/2 log(2 pi)``
    with ``covariance = L L^T``, i.e. ``-MultivariateNormal(y_pred, scale_tril=L).log_prob(y_true)``,
    then reduced over samples (default ``"sum_over_batch_size"``: the mean). Give a
    ``covariance`` (factored once, in float64) or a ``scale_tril``; a trainable ``keras.Variable``
    ``scale_tril``, or ``trainable_scale_tril=True``, is learned (see the module documentation).
    ``full=False`` drops the constant.

    >>> import numpy as np
    >>> f = MultivariateGaussianNLL(covariance=[[2.0, 0.0], [0.0, 1.0]])
    >>> round(float(f(np.zeros((1, 2)), np.array([[1.0, 0.0]]))), 4)
    2.4345
    """

    def __init__(self, full: bool = True, reduction: str | None = "sum_over_batch_size",
                 name: str | None = "multivariate_gaussian_nll", dtype: Any = None, *,
                 covariance: Any = None, scale_tril: Any = None, trainable_scale_tril: bool = False,
                 missing: str | None = None, weight: Any = None, mask: Any = None,
                 check_values: bool = True) -> None:
        super().__init__(reduction=reduction, name=name, dtype=dtype, weight=weight, mask=mask,
                         check_values=check_values,
                         matrices=_matrices(covariance, scale_tril, None, trainable_scale_tril),
                         full=full, missing=missing)

    def _make_spec(self, **fields: Any) -> LossSpec:
        return LossSpec(penalty="gaussian_nll", transform="whiten", **fields)
