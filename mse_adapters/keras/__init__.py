"""Keras 3 adapter: ``keras.losses.Loss`` classes for ``model.compile``, on every Keras backend.

Written once against ``keras.ops`` (public API only), so it runs unchanged under
``KERAS_BACKEND=tensorflow``, ``jax`` and ``torch``. Argument order, names and defaults follow
``keras.losses``: ``loss(y_true, y_pred, sample_weight=None)``,
``reduction="sum_over_batch_size"``, the loss ``dtype`` decides the compute dtype, and each
sample is first averaged over its last axis (the per-sample stage: a unit is a sample).
With default arguments :class:`MeanSquaredError`, :class:`MeanAbsoluteError`, :class:`Huber`
and :class:`LogCosh` equal their ``keras.losses`` namesakes bit for bit, in value and
gradient, for every Keras reduction, with and without ``sample_weight``, with Keras masks
and with Keras' ``(B,)`` vs ``(B, 1)`` rank alignment: they call the same per-sample
functions and Keras' reduction. Everything else runs the shared pipeline.

Beyond the built-ins (docs/design.md, "Semantics"): ``weight`` and ``mask`` (constructor or
call keywords, combined with Keras' ``_keras_mask``); ``missing="nan"``; a ``sample_weight``
of ``y_pred``'s full shape with a last axis longer than 1 weights elements inside the
per-sample stage (per-output weights through ``model.fit(sample_weight=...)``);
``reduction="mean_with_sample_weight"`` is the weighted mean done right (the weights
broadcast before they are summed); ``covariance`` / ``scale_tril`` / ``precision`` at
construction ("Whitening"; a trainable ``keras.Variable`` ``scale_tril``, or
``trainable_scale_tril=True``, is learned: ``loss.trainable_variables``); every
hyperparameter and matrix is in ``get_config``, and the classes are registered
(``model.save`` / ``keras.models.load_model`` round-trip them).

``missing="nan"`` and ``mask`` act inside the per-sample stage: a sample's loss is the mean
over its valid outputs, then the samples are averaged. That weights every valid sample
equally (other backends weight every valid element equally): ``per_sample=False`` gives the
other backends' value.

Reductions use Keras' vocabulary: ``"sum_over_batch_size"`` (default) and ``"mean"`` (what
Keras' built-ins compute: sum(w l) / number of valid samples), ``"mean_with_sample_weight"``
(sum(w l) / sum(w)), ``"sum"``, ``"none"`` (or ``None``), and the spec's ``"per_sample"``
and ``"per_output"``. :class:`Loss` / :func:`compile` honour a spec exactly, in its vocabulary.

Differences from ``keras.losses``, on purpose: an empty batch gives 0, not NaN; ``y_true``
and ``y_pred`` whose shapes differ other than by Keras' trailing 1 are a ValueError;
d|x|/dx at 0 is 0 on every backend; a NaN target under a Keras mask counts for nothing; a
float64 loss is float64-accurate on every backend; weights and masks are value-checked in
eager mode; ``Huber``'s ``delta`` and the loss dtype are kept in the config.

>>> import numpy as np
>>> from mse_adapters.keras import MeanSquaredError
>>> float(MeanSquaredError(missing="nan")(np.array([[3.0, np.nan], [2.0, 7.0]]), np.array([[2.5, 0.0], [2.0, 8.0]])))
0.375
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _core
from .. import _messages as msg
from .._host import HOST
from .._ops import Ops, Whitening, check_input
from .._penalties import log_cosh_small
from .._prepare import (
    NO_FIXED,
    Call,
    Context,
    Fixed,
    Plans,
    batch_normalizer,
    fixed_mask,
    fixed_weight,
    prepare,
    split_params,
    weight_check,
)
from .._presets import PRESET_TABLE, docstring, preset
from .._spec import LossSpec
from .._whiten import HostMatrix, host_array, host_factor, pick_matrix, resolve_spec
from ._ops import (
    _BACKEND,
    _KERAS_NAME,
    _OPS,
    KERAS_REDUCTIONS,
    NAMES,
    PACKAGE,
    Array,
    KerasOps,
    Multioutput,
    _dtype,
    _keras_mask,
    _same_rank,
    keras,
    ops,
)

__all__ = [
    "Loss", "GaussianNLL", "MultivariateGaussianNLL", "KerasOps", "KERAS_REDUCTIONS",
    *(name for r in PRESET_TABLE if r.binds for name in r.names("keras")),  # the table's bindings
]



# ---------------------------------------------------------------------------------------
# Keras' own conventions, in public keras.ops (the built-in-compatible path)
# ---------------------------------------------------------------------------------------


def _scale_for_distribution(value: Array) -> Array:
    """Divided by the number of replicas under a ``tf.distribute`` strategy, as Keras'
    averaging reductions (TensorFlow only)."""
    if _BACKEND == "tensorflow":
        import tensorflow as tf

        n = tf.distribute.get_strategy().num_replicas_in_sync
        if n > 1:
            value = ops.multiply(value, ops.cast(1.0 / n, value.dtype))
    return value


def _replica_sum() -> Callable[[tuple[Array, ...]], tuple[Array, ...]] | None:
    """Inside a ``tf.distribute`` replica with more than one replica in sync (TensorFlow
    only): the sums across the replicas, in one all-reduce, whose backward is the cotangent
    times the number of replicas (every replica's loss is the same global value, so that is
    the exact backward, without a second collective); None elsewhere (docs/design.md,
    "Scale-out")."""
    if _BACKEND != "tensorflow":
        return None
    import tensorflow as tf

    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return None
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync <= 1:
        return None
    n = float(ctx.num_replicas_in_sync)

    def allreduce(xs: tuple[Array, ...]) -> tuple[Array, ...]:
        dt = xs[0].dtype
        sizes = [int(math.prod(x.shape)) for x in xs]
        shapes = [tuple(x.shape) for x in xs]

        @tf.custom_gradient
        def total(*parts: Array) -> Any:
            flat = tf.concat([tf.reshape(tf.cast(x, dt), [-1]) for x in parts], 0)
            s = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(flat))
            outs = [tf.reshape(o, sh) for o, sh in zip(tf.split(s, sizes), shapes)]

            def grad(*gs: Array) -> list[Array]:
                return [g * n for g in gs]

            return outs, grad

        return tuple(total(*xs))

    return allreduce


def _keras_reduce(values: Array, sample_weight: Array | None, mask: Array | None, reduction: str) -> Array:
    """Keras 3's reduction of per-sample losses (``Loss.__call__``'s: the mask merged into the
    sample weight, ``total / valid`` for the averaging reductions), op for op."""
    dtype = _dtype(values)
    if mask is not None:
        if reduction in ("mean", "sum_over_batch_size"):
            total = ops.cast(ops.prod(ops.convert_to_tensor(ops.shape(mask), dtype="int32")), dtype)
            valid = ops.sum(ops.cast(mask, dtype=dtype))
            float_mask = ops.where(ops.cast(mask, "bool"), ops.divide_no_nan(total, valid), 0)
        else:
            float_mask = ops.cast(mask, dtype=dtype)
        if sample_weight is not None:
            float_mask, sample_weight = _same_rank(float_mask, ops.cast(sample_weight, dtype))
            sample_weight = sample_weight * float_mask
        else:
            sample_weight = float_mask
    if sample_weight is not None:
        values, sample_weight = _same_rank(values, ops.cast(sample_weight, dtype))
        values = values * sample_weight
    if reduction in (None, "none") or tuple(values.shape) in ((), (0,)):
        return values
    loss = ops.sum(values)
    if reduction == "sum":
        return loss
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        divisor = ops.cast(ops.sum(sample_weight), dtype)
    else:
        divisor = ops.cast(ops.prod(ops.convert_to_tensor(ops.shape(values), dtype="int32")), dtype)
    return _scale_for_distribution(ops.divide_no_nan(loss, divisor))


def _mean_absolute_error(y_true: Array, y_pred: Array) -> Array:
    """``keras.losses.mean_absolute_error`` with d|x|/dx = 0 at 0 on every backend."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true, y_pred = _same_rank(ops.convert_to_tensor(y_true, dtype=y_pred.dtype), y_pred)
    return ops.mean(_OPS.abs(y_true - y_pred), axis=-1)


#: Below this |r| Keras' log-cosh formula cancels (its relative error grows as eps / r**2:
#: 1% at |r| = 1e-3 in float32); there the accurate form is used.
_KERAS_LOG_COSH_CANCELS = 0.3


def _log_cosh(y_true: Array, y_pred: Array) -> Array:
    """``keras.losses.log_cosh`` where |r| >= 0.3 (the same bits, value and gradient), and
    log1p(2 sinh^2(r/2)) below, where Keras' r + softplus(-2 r) - log 2 cancels."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true, y_pred = _same_rank(ops.convert_to_tensor(y_true, dtype=y_pred.dtype), y_pred)
    log2 = ops.convert_to_tensor(ops.log(2.0), dtype=y_pred.dtype)
    x = y_pred - y_true
    keras_value = x + ops.softplus(x * -2.0) - log2
    small = ops.abs(x) < _KERAS_LOG_COSH_CANCELS
    accurate = log_cosh_small(_OPS, ops.where(small, x, 0.0))  # (finite in the unused branch)
    return ops.mean(ops.where(small, accurate, keras_value), axis=-1)


def _keras_per_sample_fn(spec: LossSpec, dtype: str) -> Callable[[Array, Array], Array] | None:
    """The Keras per-sample function with ``spec``'s semantics in ``dtype``, or None."""
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
    """Whether Keras' built-in losses really compute in ``dtype`` (Keras 3.15's torch and JAX
    backends average float64 in float32). Probed once per dtype; a probe that cannot run (a
    loss built inside a graph) answers no, not cached."""
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


def _squeezed(s: tuple[Any, ...], units: tuple[Any, ...]) -> tuple[Any, ...]:
    """A sample weight's shape after Keras' squeeze of a trailing 1."""
    return s[:-1] if len(s) == len(units) + 1 and s[-1] == 1 else s


def _any_rank(evaluate: Callable[[Array], Array], sample_weight: Array, y_pred: Array) -> Array:
    """``evaluate(sample_weight)`` for a sample weight of unknown rank. (TensorFlow alone:
    one compiled ``model.fit`` step called with ``(B,)`` and then ``(B, d)`` sample weights,
    or the reverse, is retraced with the weight relaxed to an unknown rank.) A sample
    weight is leading-aligned, so it has the shape of a leading prefix of ``y_pred``'s: the
    prefix of the weight's size is chosen at run time (``tf.cond``). Prefixes of the same
    size differ by 1s only, which the alignment pads: either gives the same loss."""
    import tensorflow as tf

    dynamic, static = tf.shape(y_pred), tuple(y_pred.shape)
    size = tf.size(sample_weight)

    def prefix(k: int) -> Callable[[], Array]:
        shape = [dynamic[i] if static[i] is None else static[i] for i in range(k)]
        return lambda: evaluate(tf.reshape(sample_weight, shape))

    out = prefix(len(static))  # the full shape: a weight of another size fails in its reshape
    for k in range(len(static) - 1, -1, -1):
        out = functools.partial(tf.cond, tf.equal(size, tf.reduce_prod(dynamic[:k])), prefix(k), out)
    return out()


def _fast_path_applies(reduction: str, pshape: tuple[Any, ...], tshape: tuple[Any, ...], sw: Array | None,
                       kmask: Array | None) -> bool:
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
    s = _squeezed(tuple(sw.shape), units)
    if s == units:
        return True
    if not (not s or (len(s) == len(units) and all(a in (1, b) for a, b in zip(s, units)))):
        return False  # a (B,) weight of a 1-D prediction (Keras misapplies it), a full shape
    # A broadcasting sample weight (a scalar, or (B, 1) per sequence): with a Keras mask it is
    # broadcast by the product with the mask before anything is summed (exact); without one,
    # Keras' "mean_with_sample_weight" sums it un-broadcast.
    return kmask is not None or reduction != "mean_with_sample_weight"


# ---------------------------------------------------------------------------------------
# The loss classes
# ---------------------------------------------------------------------------------------


class _Variable:
    """A trainable ``scale_tril`` (a ``keras.Variable``): the :class:`~mse_adapters._prepare.Fixed`
    matrix protocol, solved against per call so that its gradient flows."""

    name = "scale_tril"

    def __init__(self, variable: Any, owned: bool) -> None:
        self.variable = variable
        self.owned = owned

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.variable.shape)

    def whitening(self, ops_: Ops, like: Array) -> Whitening:
        value = self.variable.value
        if _BACKEND == "tensorflow":
            import tensorflow as tf

            value = tf.convert_to_tensor(value)  # a read the tape records
        return Whitening("solve", ops.cast(value, _dtype(like)), None, "scale_tril")


def _matrix(spec: LossSpec, covariance: Any, scale_tril: Any, precision: Any, trainable_scale_tril: bool,
            dtype: str) -> tuple[LossSpec, Any, np.ndarray | None]:
    """(the spec with its transform resolved, the matrix for :class:`Fixed` — a
    :class:`HostMatrix` or a :class:`_Variable` — and the constant as given, for the config)."""
    name, m = pick_matrix(covariance, scale_tril, precision)
    spec = resolve_spec(spec, name)
    if not isinstance(trainable_scale_tril, bool):
        raise ValueError(f"trainable_scale_tril must be a bool, got {trainable_scale_tril!r}")
    if name is None:
        if trainable_scale_tril:
            raise ValueError("trainable_scale_tril=True needs the initial factor: a scale_tril, or a covariance "
                             "(whose Cholesky factor it starts from)")
        return spec, None, None
    trainable = isinstance(m, keras.Variable) and bool(m.trainable)
    if (trainable and name != "scale_tril") or (trainable_scale_tril and name == "precision"):
        alternative = ", or trainable_scale_tril=True with the covariance as its initial value" \
            if name == "covariance" else ""
        raise ValueError(msg.TRAINABLE_MATRIX.format(name=name, alternative=alternative))
    a, eps = host_array(_OPS, name, m)
    if trainable:  # the user's variable, referenced (its owner decides how it is trained)
        host_factor(name, a, eps, inverse=False)
        return spec, _Variable(m, owned=False), None
    if trainable_scale_tril:  # the loss' own variable, from the float64 factor
        f = host_factor(name, a, eps, inverse=False)
        vdtype = "float32" if dtype in ("float16", "bfloat16") else dtype
        return spec, _Variable(keras.Variable(f.scale_tril, dtype=vdtype, trainable=True, name="scale_tril"),
                               owned=True), None
    return spec, HostMatrix.of(_OPS, name, a), a


def _split_mean_and_variance(y_true: Array, y_pred: Array) -> tuple[Array, Array, Array]:
    """``y_pred = concatenate([mean, variance], axis=-1)`` (the Gaussian NLL without ``var``, as
    ``model.fit`` passes it): (y_true, mean, variance)."""
    tshape, pshape = tuple(y_true.shape), tuple(y_pred.shape)
    if len(tshape) == len(pshape) - 1 and pshape[-1:] == (2,):
        y_true = ops.expand_dims(y_true, -1)
        tshape = tshape + (1,)
    if not (pshape and len(tshape) == len(pshape) and tshape[-1] is not None and pshape[-1] == 2 * tshape[-1]):
        raise ValueError(
            f"{msg.GAUSSIAN_NEEDS_VAR}: pass var=..., or y_pred = concatenate([mean, variance], axis=-1), whose "
            f"last axis is twice y_true's (got y_pred shape {pshape} and y_true shape {tshape})")
    mean, var = ops.split(y_pred, 2, axis=-1)
    return y_true, mean, var


def _host(name: str, x: Any) -> Any:
    """A constructor's array on the host (a tensor of the Keras backend is converted)."""
    if x is None or isinstance(x, (list, tuple, np.ndarray, int, float, bool)):
        return x
    check_input(_OPS, name, x)
    return np.asarray(ops.convert_to_numpy(x))


class _SpecLoss(keras.losses.Loss):
    """The machinery shared by :class:`Loss` and the presets (not public)."""

    def __init__(self, spec: LossSpec, *, reduction: str | None, name: str | None, dtype: Any, weight: Any,
                 mask: Any, check_values: bool, covariance: Any = None, scale_tril: Any = None,
                 precision: Any = None, trainable_scale_tril: bool = False,
                 params: dict[str, Any] | None = None) -> None:
        super().__init__(name=name, reduction="none", dtype=dtype)
        #: Penalty parameters given as arrays or ``keras.Variable`` s (read at every call).
        self._array_params = dict(params or {})
        self.reduction = reduction  # Keras' vocabulary; the spec holds the meaning
        self.check_values = bool(check_values)
        spec, self._fixed_matrix, self._source = _matrix(spec, covariance, scale_tril, precision,
                                                         trainable_scale_tril, self.dtype)
        self.spec = spec
        # kept as float64 NumPy (exact in the config), checked on the host
        self.weight = fixed_weight(HOST, NAMES.weight, _host(NAMES.weight, weight), self.check_values, "float64")
        self.mask = fixed_mask(HOST, NAMES.mask, _host(NAMES.mask, mask), self.check_values)
        self._keras_fn = (_keras_per_sample_fn(spec, self.dtype)
                          if weight is None and mask is None and not self._array_params else None)
        self._keras_reduction = _KERAS_NAME[spec.reduction]
        #: the plans of this loss' call signatures (docs/design.md, "Plans")
        self._plans = Plans()

    def _fixed(self) -> Fixed:
        """What the loss was built with, for the preparation."""
        if self.weight is None and self.mask is None and self._fixed_matrix is None and not self._array_params:
            return NO_FIXED
        return Fixed(self.weight, self.mask, self._fixed_matrix, self._array_params)

    # -- config --------------------------------------------------------------------------
    def _base_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "dtype": self._dtype_policy.name,
            "weight": None if self.weight is None else self.weight.tolist(),
            "mask": None if self.mask is None else self.mask.tolist(),
            "check_values": self.check_values,
        }
        fm = self._fixed_matrix
        if isinstance(fm, _Variable):
            value = np.asarray(ops.convert_to_numpy(fm.variable.value), dtype=np.float64)
            out.update(scale_tril=value.tolist(), trainable_scale_tril=True)
        elif fm is not None:
            assert self._source is not None
            out[fm.name] = self._source.tolist()
        return out

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover - every public class defines it

    @property
    def trainable_variables(self) -> list[Any]:
        """The trainable ``scale_tril`` (a ``keras.Variable``), if the loss has one: a loss is
        not a layer, so ``fit`` trains it only where the model tracks it."""
        fm = self._fixed_matrix
        return [fm.variable] if isinstance(fm, _Variable) else []

    @property
    def scale_tril(self) -> Any:
        """The trainable ``scale_tril`` variable, or the constant factor L as float64 NumPy
        (None without a covariance or scale_tril)."""
        fm = self._fixed_matrix
        if isinstance(fm, _Variable):
            return fm.variable
        return None if fm is None else fm.factor.scale_tril

    # -- evaluation ----------------------------------------------------------------------
    def __call__(self, y_true: Array, y_pred: Array, sample_weight: Array | None = None, *,
                 weight: Array | None = None, mask: Array | None = None, var: Array | float | None = None,
                 normalizer: Array | None = None) -> Array:
        """The loss. ``sample_weight`` as in Keras (weights samples; a full-shape weight with
        a last axis longer than 1 weights elements); ``weight`` and ``mask`` (keywords) as the
        constructor's, combined with them. ``var``: the predicted variance of the Gaussian
        NLL (without it, ``y_pred`` is the mean and the variance concatenated).
        ``normalizer``: the denominator to divide by instead of the batch's own (the window's,
        :meth:`normalizer` summed over its micro-batches). Under a ``tf.distribute``
        strategy the averaging reductions and the finalizers use the global batch's totals
        (one all-reduce), so that the replicas' summed gradients are the global batch's."""
        dtype = self.dtype
        for name, x in ((NAMES.pred, y_pred), (NAMES.target, y_true)):
            check_input(_OPS, name, x)
        if self.spec.missing == "nan":
            tdt = check_input(_OPS, NAMES.target, y_true)
            if "float" not in tdt:
                raise ValueError(msg.missing_dtype(NAMES.target, tdt))
        with keras.name_scope(self.name):
            kmask = _keras_mask(y_pred, dtype)
            y_pred = ops.convert_to_tensor(y_pred, dtype=dtype)
            y_true = ops.convert_to_tensor(y_true, dtype=dtype)
            if var is None and self.spec.penalty == "gaussian_nll" and self.spec.transform is None:
                y_true, y_pred, var = _split_mean_and_variance(y_true, y_pred)
            y_true, y_pred = _same_rank(y_true, y_pred)
            if sample_weight is not None:
                check_input(_OPS, NAMES.sample_weight, sample_weight)
                sample_weight = ops.convert_to_tensor(sample_weight, dtype=dtype)

            def evaluate(sw: Array | None) -> Array:
                fn = self._keras_fn
                replicas = _replica_sum() if self.spec.reduction in ("mean", "sum_over_batch_size") else None
                if (fn is not None and weight is None and mask is None and var is None and normalizer is None
                        and replicas is None
                        and _fast_path_applies(self._keras_reduction, tuple(y_pred.shape), tuple(y_true.shape),
                                               sw, kmask)):
                    return self._keras(fn, y_true, y_pred, sw, kmask)
                return self._general(y_true, y_pred, sw, weight, mask, kmask, var, normalizer, replicas)

            if sample_weight is not None and getattr(sample_weight.shape, "rank", 0) is None:  # TensorFlow
                return _any_rank(evaluate, sample_weight, y_pred)
            return evaluate(sample_weight)

    def normalizer(self, y_true: Array, sample_weight: Array | None = None, *, weight: Array | None = None,
                   mask: Array | None = None) -> Array:
        """The batch's normalizer: what the reduction divides the batch's sum by (sum(w m) for
        ``mean_with_sample_weight``, the valid units, samples with the per-sample stage, for
        ``sum_over_batch_size``, one per output for ``per_output``), from the targets, weights
        and masks (combined with the constructor's; a Keras mask lives on ``y_pred``: pass it
        as ``mask``); summed over the replicas under a ``tf.distribute`` strategy. Sum it over
        an accumulation window and pass it to each micro-batch's call as ``normalizer=``."""
        y_true = ops.convert_to_tensor(y_true, dtype=self.dtype)
        if sample_weight is not None:
            check_input(_OPS, NAMES.sample_weight, sample_weight)
            sample_weight = ops.convert_to_tensor(sample_weight, dtype=self.dtype)
        ops_ = KerasOps(y_true) if any(s is None for s in y_true.shape) else _OPS
        n = batch_normalizer(self.spec, Call(y_true, y_true, weight, sample_weight, mask),
                             Context(ops_, NAMES, self._fixed(), self.check_values, self.dtype))
        total = _replica_sum()
        if total is not None:
            (n,) = total((n,))
        return ops.stop_gradient(n)

    def call(self, y_true: Array, y_pred: Array) -> Array:
        """Keras' hook for the unreduced losses: the per-unit losses (a sample's, with the
        per-sample stage) without weights, as the built-ins return them; the constructor's
        ``weight`` and ``mask`` apply. A finalized loss (RMSE, NMSE, R^2) returns itself."""
        twin = copy.copy(self)
        if self.spec.finalize == "identity" and not self.spec.per_output_stats:
            twin.spec = self.spec.replace(reduction="none")
            twin._keras_reduction = "none"
            twin._keras_fn = None if self._keras_fn is None else _keras_per_sample_fn(twin.spec, self.dtype)
        return twin(y_true, y_pred)

    def _keras(self, fn: Callable[[Array, Array], Array], y_true: Array, y_pred: Array,
               sample_weight: Array | None, kmask: Array | None) -> Array:
        """Keras' own computation: its per-sample function and its reduction."""
        if sample_weight is not None and self.check_values:
            _OPS.verify([(weight_check(NAMES.sample_weight), sample_weight)])
        if kmask is not None:
            # A masked sample's target or prediction may be NaN or inf: both are replaced by 0
            # there (a residual of exactly 0 and no gradient through the select), so that
            # 0 * NaN never reaches the value or the gradient. Keras' own values are unchanged.
            keep = ops.expand_dims(kmask, -1)
            y_true = ops.where(keep, y_true, 0.0)
            y_pred = ops.where(keep, y_pred, 0.0)
            if sample_weight is not None and _squeezed(tuple(sample_weight.shape), tuple(kmask.shape)) != tuple(
                    kmask.shape):
                # a scalar or per-sequence weight, broadcast by a product with ones (exact, and
                # a batch size known only at run time works)
                sample_weight = sample_weight * ops.ones_like(kmask, dtype=_dtype(sample_weight))
        losses = fn(y_true, y_pred)
        out = _keras_reduce(losses, sample_weight, kmask, self._keras_reduction)
        if len(out.shape) > len(losses.shape):  # a (B, 1) sample_weight with reduction "none"
            out = ops.squeeze(out, -1)
        return out

    def _general(self, y_true: Array, y_pred: Array, sample_weight: Array | None, weight: Array | None,
                 mask: Array | None, kmask: Array | None, var: Array | float | None = None,
                 normalizer: Array | None = None, replicas: Any = None) -> Array:
        """The shared pipeline, on tensors of the loss dtype."""
        shape = tuple(y_pred.shape)
        extra: tuple[tuple[str, Array], ...] = ()
        if kmask is not None:
            if shape and tuple(kmask.shape) == shape[:-1]:  # Keras' mask: one entry per sample
                kmask = ops.expand_dims(kmask, -1)
            extra = (("the Keras mask of y_pred (_keras_mask)", kmask),)
        ops_ = KerasOps(y_pred) if any(s is None for s in shape) else _OPS
        call = Call(y_pred, y_true, weight, sample_weight, mask, var, normalizer=normalizer, extra_masks=extra)
        ctx = Context(ops_, NAMES, self._fixed(), self.check_values, self.dtype, replicas,
                      "a tf.distribute strategy")
        out = _core.evaluate(ops_, prepare(self.spec, call, ctx, self._plans))
        if self.spec.reduction in ("mean", "sum_over_batch_size"):
            out = _scale_for_distribution(out)  # as Keras' averaging reductions
        return out


if _BACKEND == "tensorflow":
    import tensorflow as tf

    # Python logic on static shapes only: AutoGraph must leave it alone inside tf.function.
    setattr(_SpecLoss, "__call__", tf.autograph.experimental.do_not_convert(_SpecLoss.__call__))  # noqa: B010


def _loss_reduction(reduction: str | None) -> str:
    if reduction not in KERAS_REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not supported; allowed values: "
                         + ", ".join(repr(k) for k in KERAS_REDUCTIONS))
    return KERAS_REDUCTIONS[reduction]


@keras.saving.register_keras_serializable(package=PACKAGE)
class Loss(_SpecLoss):
    """A Keras loss compiled from a :class:`~mse_adapters.LossSpec`, honoured exactly (in the
    spec's vocabulary: ``per_sample`` as given, ``reduction="mean"`` is the weighted mean).

    >>> import numpy as np
    >>> from mse_adapters import LossSpec
    >>> float(Loss(LossSpec(penalty="abs", reduction="sum"))(np.array([1.0, 2.0]), np.array([1.5, 0.0])))
    2.5
    """

    def __init__(self, spec: LossSpec | dict[str, Any], *, weight: Any = None, mask: Any = None,
                 check_values: bool = True, name: str | None = None, dtype: Any = None, covariance: Any = None,
                 scale_tril: Any = None, precision: Any = None, trainable_scale_tril: bool = False) -> None:
        if isinstance(spec, dict):
            spec = LossSpec.from_dict(spec)
        if not isinstance(spec, LossSpec):
            raise TypeError(f"spec must be a LossSpec, got {type(spec).__name__}")
        super().__init__(spec, reduction=_KERAS_NAME[spec.reduction], name=name, dtype=dtype, weight=weight,
                         mask=mask, check_values=check_values, covariance=covariance, scale_tril=scale_tril,
                         precision=precision, trainable_scale_tril=trainable_scale_tril)

    def get_config(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), **self._base_config()}


def compile(spec: LossSpec, *, weight: Any = None, mask: Any = None, check_values: bool = True,  # noqa: A001
            name: str | None = None, dtype: Any = None, covariance: Any = None, scale_tril: Any = None,
            precision: Any = None, trainable_scale_tril: bool = False) -> Loss:
    """Compile a spec into a ``keras.losses.Loss`` (a :class:`Loss`)."""
    return Loss(spec, weight=weight, mask=mask, check_values=check_values, name=name, dtype=dtype,
                covariance=covariance, scale_tril=scale_tril, precision=precision,
                trainable_scale_tril=trainable_scale_tril)


_OPTIONS = ("Options every loss shares (``per_sample``, ``missing``, ``weight``, ``mask``, ``check_values``, the "
            "matrices; Keras' ``sample_weight`` and masks): see :mod:`mse_adapters.keras`.")
#: The loss' own arguments (the rest of a binding's are spec fields).
_LOSS_ARGS = ("reduction", "name", "dtype", "weight", "mask", "check_values", "covariance", "scale_tril",
              "precision", "trainable_scale_tril")


#: Losses whose value over a data set is not the mean of their per-batch values.
_NOT_A_BATCH_MEAN = ("rmse", "nmse", "r2")
_NOT_A_BATCH_MEAN_DOC = (
    "\nAs a metric, ``compile(metrics=[...])`` averages a loss' per-batch values, which is not this "
    "value on the data: use the streaming metric :class:`mse_adapters.keras.metrics.{name}` (exact over "
    "the epoch, registered, saved with the model).\n")


class _Preset(_SpecLoss):
    """A named loss with Keras' conventions (the per-sample stage on, Keras' reductions): a
    binding of one row of the preset table, registered for ``model.save``."""

    _preset = ""

    def __init_subclass__(cls, preset: str = "", **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if preset:
            cls._preset = preset
            cls.__doc__ = docstring(preset, "keras", _OPTIONS)
            if preset in _NOT_A_BATCH_MEAN:
                cls.__doc__ += _NOT_A_BATCH_MEAN_DOC.format(name=cls.__name__)
        keras.saving.register_keras_serializable(package=PACKAGE)(cls)

    def _bind(self, args: dict[str, Any]) -> None:
        fields, params = split_params({k: v for k, v in args.items()
                                       if k not in _LOSS_ARGS and k != "self" and not k.startswith("__")})
        if not isinstance(fields.get("multioutput", ""), str):
            fields["multioutput"] = tuple(float(v) for v in fields["multioutput"])
        self._fields = dict(fields)
        reduction = args["reduction"]
        spec_reduction = _loss_reduction(reduction)
        try:
            spec = self._spec_of({"reduction": spec_reduction, **fields})
        except ValueError as e:
            if "reduction" not in str(e):
                raise
            raise ValueError(
                f"{e} (reductions named as in the spec: Keras' 'mean_with_sample_weight' is the spec's "
                "'mean'; Keras' 'mean' and 'sum_over_batch_size' are the spec's 'sum_over_batch_size')") from None
        _SpecLoss.__init__(self, spec, params=params, **{k: args[k] for k in _LOSS_ARGS if k in args})

    def _spec_of(self, fields: dict[str, Any]) -> LossSpec:
        return preset(self._preset, **fields)

    def get_config(self) -> dict[str, Any]:
        fields = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self._fields.items()}
        for k, v in self._array_params.items():  # an array or a variable: its value now
            value = np.asarray(ops.convert_to_numpy(v.value if isinstance(v, keras.Variable) else v), np.float64)
            fields[k] = value.tolist()
        return {"reduction": self.reduction, **fields, **self._base_config()}


# <generated: the preset table's bindings; `python -m mse_adapters._bindings` rewrites this region>


class MeanSquaredError(_Preset, preset="mse"):
    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str | None = "mean_squared_error",
                 dtype: Any = None, *, per_sample: bool = True, multioutput: Multioutput = "pooled",
                 unit_norm: float = 0.0, missing: str | None = None, weight: Any = None, mask: Any = None,
                 check_values: bool = True, covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 trainable_scale_tril: bool = False) -> None:
        self._bind(locals())


class MeanAbsoluteError(_Preset, preset="mae"):
    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str | None = "mean_absolute_error",
                 dtype: Any = None, *, per_sample: bool = True, multioutput: Multioutput = "pooled",
                 missing: str | None = None, weight: Any = None, mask: Any = None, check_values: bool = True,
                 covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 trainable_scale_tril: bool = False) -> None:
        self._bind(locals())


class RootMeanSquaredError(_Preset, preset="rmse"):
    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str | None = "root_mean_squared_error",
                 dtype: Any = None, *, per_sample: bool = True, multioutput: Multioutput = "pooled",
                 missing: str | None = None, weight: Any = None, mask: Any = None, check_values: bool = True,
                 covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 trainable_scale_tril: bool = False) -> None:
        self._bind(locals())


class Huber(_Preset, preset="huber"):
    def __init__(self, delta: Any = 1.0, reduction: str | None = "sum_over_batch_size", name: str | None = "huber_loss",
                 dtype: Any = None, *, per_sample: bool = True, missing: str | None = None, weight: Any = None,
                 mask: Any = None, check_values: bool = True, covariance: Any = None, scale_tril: Any = None,
                 precision: Any = None, trainable_scale_tril: bool = False) -> None:
        self._bind(locals())


class SmoothL1(_Preset, preset="smooth_l1"):
    def __init__(self, beta: Any = 1.0, reduction: str | None = "sum_over_batch_size", name: str | None = "smooth_l1",
                 dtype: Any = None, *, per_sample: bool = True, missing: str | None = None, weight: Any = None,
                 mask: Any = None, check_values: bool = True, covariance: Any = None, scale_tril: Any = None,
                 precision: Any = None, trainable_scale_tril: bool = False) -> None:
        self._bind(locals())


class LogCosh(_Preset, preset="log_cosh"):
    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str | None = "log_cosh", dtype: Any = None,
                 *, per_sample: bool = True, missing: str | None = None, weight: Any = None, mask: Any = None,
                 check_values: bool = True, covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 trainable_scale_tril: bool = False) -> None:
        self._bind(locals())


class Expectile(_Preset, preset="expectile"):
    def __init__(self, tau: Any = 0.5, reduction: str | None = "sum_over_batch_size", name: str | None = "expectile",
                 dtype: Any = None, *, per_sample: bool = True, missing: str | None = None, weight: Any = None,
                 mask: Any = None, check_values: bool = True, covariance: Any = None, scale_tril: Any = None,
                 precision: Any = None, trainable_scale_tril: bool = False) -> None:
        self._bind(locals())


class PseudoHuber(_Preset, preset="pseudo_huber"):
    def __init__(self, delta: Any = 1.0, reduction: str | None = "sum_over_batch_size",
                 name: str | None = "pseudo_huber", dtype: Any = None, *, per_sample: bool = True,
                 missing: str | None = None, weight: Any = None, mask: Any = None, check_values: bool = True,
                 covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 trainable_scale_tril: bool = False) -> None:
        self._bind(locals())


class Quantile(_Preset, preset="quantile"):
    def __init__(self, tau: Any = 0.5, reduction: str | None = "sum_over_batch_size", name: str | None = "quantile",
                 dtype: Any = None, *, per_sample: bool = True, missing: str | None = None, weight: Any = None,
                 mask: Any = None, check_values: bool = True, covariance: Any = None, scale_tril: Any = None,
                 precision: Any = None, trainable_scale_tril: bool = False) -> None:
        self._bind(locals())


class Barron(_Preset, preset="barron"):
    def __init__(self, alpha: Any = 1.0, scale: Any = 1.0, reduction: str | None = "sum_over_batch_size",
                 name: str | None = "barron", dtype: Any = None, *, per_sample: bool = True, missing: str | None = None,
                 weight: Any = None, mask: Any = None, check_values: bool = True, covariance: Any = None,
                 scale_tril: Any = None, precision: Any = None, trainable_scale_tril: bool = False) -> None:
        self._bind(locals())


class Cauchy(_Preset, preset="cauchy"):
    def __init__(self, scale: Any = 1.0, reduction: str | None = "sum_over_batch_size", name: str | None = "cauchy",
                 dtype: Any = None, *, per_sample: bool = True, missing: str | None = None, weight: Any = None,
                 mask: Any = None, check_values: bool = True, covariance: Any = None, scale_tril: Any = None,
                 precision: Any = None, trainable_scale_tril: bool = False) -> None:
        self._bind(locals())


class GemanMcClure(_Preset, preset="geman_mcclure"):
    def __init__(self, scale: Any = 1.0, reduction: str | None = "sum_over_batch_size",
                 name: str | None = "geman_mcclure", dtype: Any = None, *, per_sample: bool = True,
                 missing: str | None = None, weight: Any = None, mask: Any = None, check_values: bool = True,
                 covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 trainable_scale_tril: bool = False) -> None:
        self._bind(locals())


class Welsch(_Preset, preset="welsch"):
    def __init__(self, scale: Any = 1.0, reduction: str | None = "sum_over_batch_size", name: str | None = "welsch",
                 dtype: Any = None, *, per_sample: bool = True, missing: str | None = None, weight: Any = None,
                 mask: Any = None, check_values: bool = True, covariance: Any = None, scale_tril: Any = None,
                 precision: Any = None, trainable_scale_tril: bool = False) -> None:
        self._bind(locals())


class NormalizedMeanSquaredError(_Preset, preset="nmse"):
    def __init__(self, multioutput: Multioutput = "uniform_average", reduction: str | None = "mean_with_sample_weight",
                 name: str | None = "normalized_mean_squared_error", dtype: Any = None, *, force_finite: bool = True,
                 missing: str | None = None, weight: Any = None, mask: Any = None, check_values: bool = True) -> None:
        self._bind(locals())


class R2Score(_Preset, preset="r2"):
    def __init__(self, multioutput: Multioutput = "uniform_average", reduction: str | None = "mean_with_sample_weight",
                 name: str | None = "r2_score", dtype: Any = None, *, force_finite: bool = True,
                 missing: str | None = None, weight: Any = None, mask: Any = None, check_values: bool = True) -> None:
        self._bind(locals())


# </generated>


# -- Gaussian likelihoods -----------------------------------------------------------------


class GaussianNLL(_Preset):
    """Heteroscedastic Gaussian negative log-likelihood with a predicted variance:
    ``0.5 * (log v + (mean - y_true)**2 / v)`` with ``v = max(variance, eps)`` (clamped as
    ``torch.nn.GaussianNLLLoss``, the gradient passing through the clamp), plus
    ``0.5 * log(2 pi)`` with ``full``; equal to ``torch.nn.GaussianNLLLoss``.

    ``model.fit`` passes ``(y_true, y_pred, sample_weight)`` only, so by default ``y_pred`` is
    the mean and the variance concatenated along the last axis (a model with ``2 d`` outputs);
    called directly, ``loss(y_true, y_pred, var=v)`` takes the variance as a tensor or number.

    >>> import numpy as np
    >>> round(float(GaussianNLL()(np.zeros(2), np.array([[1.0, 1.0], [2.0, 4.0]]))), 4)
    0.8466
    """

    def __init__(self, full: bool = False, eps: float = 1e-6, reduction: str | None = "sum_over_batch_size",
                 name: str | None = "gaussian_nll", dtype: Any = None, *, per_sample: bool = True,
                 missing: str | None = None, weight: Any = None, mask: Any = None, check_values: bool = True) -> None:
        self._bind(locals())

    def _spec_of(self, fields: dict[str, Any]) -> LossSpec:
        return LossSpec(penalty="gaussian_nll", **fields)


class MultivariateGaussianNLL(_Preset):
    """Full-covariance Gaussian negative log-likelihood, one value per sample (the last axis
    is the event): ``0.5 * |L^-1 (y_pred - y_true)|**2 + sum(log diag L) + d/2 log(2 pi)``
    with ``covariance = L L^T``, then reduced over samples. A trainable ``keras.Variable``
    ``scale_tril``, or ``trainable_scale_tril=True``, is learned. ``full=False`` drops the constant.

    >>> import numpy as np
    >>> f = MultivariateGaussianNLL(covariance=[[2.0, 0.0], [0.0, 1.0]])
    >>> round(float(f(np.zeros((1, 2)), np.array([[1.0, 0.0]]))), 4)
    2.4345
    """

    def __init__(self, full: bool = True, reduction: str | None = "sum_over_batch_size",
                 name: str | None = "multivariate_gaussian_nll", dtype: Any = None, *, covariance: Any = None,
                 scale_tril: Any = None, trainable_scale_tril: bool = False, missing: str | None = None,
                 weight: Any = None, mask: Any = None, check_values: bool = True) -> None:
        self._bind(locals())

    def _spec_of(self, fields: dict[str, Any]) -> LossSpec:
        return LossSpec(penalty="gaussian_nll", transform="whiten", **fields)


# The streaming metrics register their classes (``mse_adapters.metrics>Name``) on import:
# after ``import mse_adapters.keras`` alone, keras.saving.load_model finds every loss and
# metric class (docs/metrics.md).
from . import metrics  # noqa: E402, F401
