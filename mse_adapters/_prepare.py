"""The one path from a user's arguments to the pipeline's arrays (docs/design.md,
"Preparation"), written once for every backend:

1. every array is checked for its framework and dtype (another framework's tensor, a
   complex or non-numeric dtype: a TypeError naming the argument), and ``missing="nan"``
   for targets that can hold NaN;
2. the compute dtype: the backend's promotion of prediction and target, float32 for half
   precision, the default float for integers (or the dtype a Keras loss is built with);
3. the weights and masks a loss was built with are merged with the call's (weights
   multiply, masks are AND-ed); numeric masks become boolean;
4. the matrix of the transform stage is resolved: a constant one is validated and factored
   on the host in float64 (:class:`~mse_adapters._whiten.HostMatrix`, cached by content)
   and applied as the backend's policy says (``Ops.whiten_by``); a traced or trainable one
   is used in the compute dtype, by a triangular solve (a covariance through its Cholesky
   factor);
5. every shape, dtype and parameter check, and the value checks through the one hook,
   :meth:`Ops.check` (eager: raise; traced: skipped; JAX's checkify: emitted).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from . import _messages as msg
from ._core import (
    DEFAULT_NAMES,
    EPS,
    ArgNames,
    Ops,
    Prepared,
    Rule,
    Whitening,
    check_trailing,
    normalizer,
    normalizer_shape,
    var_shape,
)
from ._penalties import PENALTY_TABLE
from ._spec import LossSpec, param_range
from ._whiten import HostMatrix, check_matrix_shape, matrix_rules, pick_matrix, resolve_spec

__all__ = ["Fixed", "prepare", "split_params", "PARAM_NAMES", "check_input", "fixed_weight", "fixed_mask", "kind",
           "compute_dtype", "weight_rules", "normalizer_rules", "check_normalizer_spec",
           "batch_normalizer"]

Array = Any

_FRAMEWORK_OF_MODULE = {"torch": "torch", "jax": "jax", "jaxlib": "jax", "tensorflow": "tensorflow"}
_HOST_LIKE = (list, tuple, bool, int, float, np.ndarray, np.generic)


class Fixed(NamedTuple):
    """What a loss was built with: a weight and a mask (checked then), and a matrix: an object
    with ``name`` and ``whitening(ops, like) -> Whitening`` (a
    :class:`~mse_adapters._whiten.HostMatrix`, a trainable factor, a module's buffers)."""

    weight: Array | None = None
    mask: Array | None = None
    matrix: Any = None
    params: Mapping[str, Array] = {}  # penalty parameters held as arrays (a torch Parameter, a Keras variable)


def kind(dtype: str) -> str:
    """``"b"`` (bool), ``"i"``, ``"u"``, ``"f"``, ``"c"`` or ``"o"`` (anything else)."""
    if dtype == "bool":
        return "b"
    if dtype.startswith("uint"):
        return "u"
    if dtype.startswith("int"):
        return "i"
    if dtype.startswith(("float", "bfloat")):
        return "f"
    if dtype.startswith("complex"):
        return "c"
    return "o"


def _host_dtype(x: Any) -> str:
    return str(np.asarray(x).dtype)


def check_input(ops: Ops, name: str, x: Any) -> str:
    """A TypeError for another framework's array (converting it silently would copy it across
    devices and cut its gradient) or a dtype no loss takes; returns ``x``'s dtype name."""
    framework = _FRAMEWORK_OF_MODULE.get(type(x).__module__.split(".")[0])
    if framework is not None and framework != ops.framework:
        raise TypeError(msg.foreign(name, framework, type(x).__name__, ops.framework))
    dtype = _host_dtype(x) if isinstance(x, _HOST_LIKE) else ops.dtype(x)
    if dtype is None:  # not an array of the backend's framework
        raise TypeError(msg.not_an_array(name, ops.accepts, f"{type(x).__module__}.{type(x).__qualname__}"))
    if kind(dtype) not in "biuf":
        raise msg.dtype_error(name, dtype)
    return dtype


def compute_dtype(ops: Ops, *xs: Array) -> str:
    """The dtype the pipeline runs in: the promoted float of the arrays, float32 for half
    precision (no overflow of e**2; the loss is float32), the default float for integers."""
    dt = ops.float_dtype(*xs)
    return "float32" if dt in ("float16", "bfloat16") else dt


# ---------------------------------------------------------------------------------------
# Value rules (checked through Ops.check)
# ---------------------------------------------------------------------------------------


def weight_rules(ops: Ops, name: str) -> Any:
    """Weights are finite and non-negative (from their extrema: one pass)."""

    def build(w: Array) -> list[Rule]:
        if 0 in ops.shape(w):
            return []
        lo, hi = ops.extrema(w)
        return [((lo > -np.inf) & (hi < np.inf), msg.WEIGHT_NOT_FINITE.format(name=name), {}),
                (lo >= 0, msg.WEIGHT_NEGATIVE.format(name=name), {})]

    return build


def _mask_rule(name: str) -> Any:
    def build(m: Array) -> list[Rule]:
        return [((m == 0) | (m == 1), msg.MASK_NOT_BINARY.format(name=name), {})]

    return build


def _param_rule(ops: Ops, name: str) -> Any:
    """A penalty parameter given as an array: finite, inside its range (the penalty table's)."""
    row = next(p for pen in PENALTY_TABLE.values() for p in pen.params if p.name == name)

    def build(x: Array) -> list[Rule]:
        if 0 in ops.shape(x):
            return []
        lo, hi = ops.extrema(x)
        inside = (lo > row.low) if row.low_open else (lo >= row.low)
        if row.high is not None:
            inside = inside & (hi < row.high)
        return [((lo > -np.inf) & (hi < np.inf), msg.PARAM_NOT_FINITE.format(name=name), {}),
                (inside, msg.PARAM_OUT_OF_RANGE.format(range=param_range(name)), {"lo": lo, "hi": hi})]

    return build


#: The names of every penalty parameter (``delta``, ``beta``, ``tau``).
PARAM_NAMES = frozenset(p.name for pen in PENALTY_TABLE.values() for p in pen.params)


def split_params(fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A binding's spec fields split into (the fields for the spec, the penalty parameters
    given as arrays): a Python number is a static constant of the spec, anything else (an
    array, a tensor, a tracer, a variable) is an array parameter of the call."""
    arrays = {k: v for k, v in fields.items()
              if k in PARAM_NAMES and (isinstance(v, bool) or not isinstance(v, (int, float)))}
    return {k: v for k, v in fields.items() if k not in arrays}, arrays


def penalty_params(ops: Ops, spec: LossSpec, params: Mapping[str, Any], dtype: str, like: Array,
                   shape: tuple[int, ...], names: ArgNames, check_values: bool) -> dict[str, Array]:
    """Penalty parameters given as arrays (a scalar, or broadcastable like ``weight``: per
    output, per element), in the compute dtype, checked as the spec checks a float."""
    pen = PENALTY_TABLE.get(spec.penalty)
    allowed = () if pen is None else tuple(p.name for p in pen.params)
    out: dict[str, Array] = {}
    for name, value in params.items():
        if name not in allowed:
            raise ValueError(msg.not_a_param(name, spec.penalty, allowed))
        check_input(ops, name, value)
        a = ops.asarray(value, dtype=dtype, like=like)
        check_trailing(name, tuple(ops.shape(a)), shape, names.pred)
        if check_values:
            ops.check(_param_rule(ops, name), a)
        out[name] = a
    return out


def _var_rule(ops: Ops) -> Any:
    def build(v: Array) -> list[Rule]:
        if 0 in ops.shape(v):
            return []
        return [(~(ops.extrema(v)[0] < 0), msg.VAR_NEGATIVE, {})]  # NaN passes (it propagates)

    return build


def _matrix_rule(ops: Ops, name: str, eps: float) -> Any:
    def build(m: Array) -> list[Rule]:
        xp = ops.xp
        if xp is None:  # on the host, in float64
            return matrix_rules(np, name, np.asarray(ops.to_host(m), dtype=np.float64), eps)
        return matrix_rules(xp, name, m.astype(xp.promote_types(m.dtype, xp.float32)), eps)

    return build


def _whole_sample_rule(ops: Ops, names: ArgNames, nan: bool, has_mask: bool, shape: tuple[int, ...],
                       like: Array) -> Any:
    what = names.mask if not nan else (
        f"{names.mask} (and the NaN values of {names.target}, missing='nan')" if has_mask
        else f"the NaN values of {names.target} (missing='nan')")

    def build(valid: Array) -> list[Rule]:
        count = ops.sum(valid, (len(shape) - 1,), dtype=ops.dtype(like))
        return [((count == 0) | (count == float(shape[-1])), msg.partial_sample(what), {})]

    return build


# ---------------------------------------------------------------------------------------
# What a loss is built with
# ---------------------------------------------------------------------------------------


def fixed_weight(ops: Ops, name: str, w: Any, check_values: bool, dtype: str | None = None,
                 like: Array = None) -> Array | None:
    """A constructor's weight as an array (cast to ``dtype`` when given), value-checked."""
    if w is None:
        return None
    check_input(ops, name, w)
    a = ops.asarray(w, dtype=dtype, like=like)
    if check_values:
        ops.check(weight_rules(ops, name), a)
    return a


def fixed_mask(ops: Ops, name: str, m: Any, check_values: bool, like: Array = None) -> Array | None:
    """A constructor's (or a call's) mask as a boolean array; a numeric one must hold 0 and 1."""
    if m is None:
        return None
    dtype = check_input(ops, name, m)
    a = ops.asarray(m, like=like)
    if dtype == "bool":
        return a
    if check_values:
        ops.check(_mask_rule(name), a)
    return a != 0


def traced_matrix(ops: Ops, name: str, m: Array, dtype: str, check_values: bool) -> Whitening:
    """A traced or trainable matrix, in the compute dtype: a factor solved against (a
    covariance through its Cholesky factor, per call), a precision as is."""
    mdt = check_input(ops, name, m)
    check_matrix_shape(name, tuple(ops.shape(m)))
    if check_values:
        ops.check(_matrix_rule(ops, name, EPS.get(mdt, EPS["float64"])), m)
    mt = ops.asarray(m, dtype=dtype)
    if name == "precision":
        return Whitening("precision", mt, None, name)
    if name == "covariance":
        mt = ops.cholesky(mt)
    return Whitening("solve", mt, None, name)


# ---------------------------------------------------------------------------------------
# One call
# ---------------------------------------------------------------------------------------


def prepare(
    ops: Ops,
    spec: LossSpec,
    pred: Any,
    target: Any,
    *,
    weight: Any = None,
    sample_weight: Any = None,
    mask: Any = None,
    var: Any = None,
    covariance: Any = None,
    scale_tril: Any = None,
    precision: Any = None,
    fixed: Fixed | None = None,
    params: Mapping[str, Any] | None = None,
    extra_masks: tuple[tuple[str, Array], ...] = (),
    names: ArgNames = DEFAULT_NAMES,
    check_values: bool = True,
    dtype: str | None = None,
    normalizer: Any = None,
    allreduce: Any = None,
    replicas: str = "process_group",
) -> Prepared:
    """The user's arguments as a :class:`~mse_adapters._core.Prepared` call (see the module
    documentation). ``fixed``: what the loss was built with; ``params``: penalty parameters
    given as arrays (``{"delta": ...}``; Python floats are the spec's); ``extra_masks``: further
    (name, boolean mask) parts (Keras' ``_keras_mask``); ``dtype``: the compute dtype when the
    loss fixes it (Keras), else the promotion of ``pred`` and ``target``; ``normalizer``: the
    denominator to divide by instead of the batch's own (docs/design.md, "Scale-out"),
    checked here; ``allreduce``: the backend's sum across replicas (``replicas``: the name of
    the argument that asked for it, for the errors)."""
    if not isinstance(spec, LossSpec):
        raise TypeError(f"spec must be a LossSpec, got {type(spec).__name__}")
    check_input(ops, names.pred, pred)
    tdt = check_input(ops, names.target, target)
    if spec.missing == "nan" and kind(tdt) != "f":
        raise ValueError(msg.missing_dtype(names.target, tdt))
    p = ops.asarray(pred)
    t = ops.asarray(target, like=p)
    dt = dtype or compute_dtype(ops, p, t)
    p, t = ops.asarray(p, dtype=dt), ops.asarray(t, dtype=dt)
    shape = tuple(ops.shape(p))
    tshape = tuple(ops.shape(t))
    if shape != tshape:
        raise ValueError(msg.same_shape(names.pred, names.target, shape, tshape))
    if not shape and (spec.per_sample or spec.reduction in ("per_sample", "per_output") or spec.per_output_stats):
        raise ValueError(msg.scalar_needs_axis(names.pred, spec.reduction, spec.per_sample, spec.multioutput))
    if not shape and spec.unit_norm:
        raise ValueError(msg.scalar_unit_norm(names.pred))

    fixed = fixed or Fixed()
    # weights: the constructor's (checked then) times the call's (checked now)
    w = None
    for part, own in ((fixed.weight, False), (weight, True)):
        if part is None:
            continue
        if own:
            check_input(ops, names.weight, part)
        a = ops.asarray(part, dtype=dt, like=p)
        check_trailing(names.weight, tuple(ops.shape(a)), shape, names.pred)
        if own and check_values:
            ops.check(weight_rules(ops, names.weight), a)
        w = a if w is None else w * a
    sw = None
    if sample_weight is not None:
        check_input(ops, names.sample_weight, sample_weight)
        sw = ops.asarray(sample_weight, dtype=dt, like=p)
        if check_values:
            ops.check(weight_rules(ops, names.sample_weight), sw)
    # masks: AND-ed
    m = None
    for name, part, own in ((names.mask, fixed.mask, False), (names.mask, mask, True),
                            *((n, k, True) for n, k in extra_masks)):
        if part is None:
            continue
        a = fixed_mask(ops, name, part, check_values, like=p) if own else ops.asarray(part, like=p)
        check_trailing(name, tuple(ops.shape(a)), shape, names.pred)
        m = a if m is None else m & a

    # the transform stage
    mname, matrix = pick_matrix(covariance, scale_tril, precision)
    whitening = None
    if fixed.matrix is not None:
        if mname is not None:
            raise ValueError(msg.matrices_exclusive([f"{fixed.matrix.name} (when the loss was compiled)",
                                                     f"{mname} (at call time)"]))
        spec = resolve_spec(spec, fixed.matrix.name)
        whitening = fixed.matrix.whitening(ops, p)
    else:
        spec = resolve_spec(spec, mname)
        if mname is not None:
            if ops.is_traced(matrix):
                whitening = traced_matrix(ops, mname, matrix, dt, check_values)
            else:
                whitening = HostMatrix.of(ops, mname, matrix).whitening(ops, p)
    v = _prepare_var(ops, var, dt, p)
    if whitening is not None or v is not None or spec.transform is not None or spec.penalty == "gaussian_nll":
        _check_structured(ops, spec, shape, w, whitening, v, names)
    given = {**fixed.params, **(params or {})}
    arrays = penalty_params(ops, spec, given, dt, p, shape, names, check_values) if given else {}
    if allreduce is not None and spec.reduction in ("none", "per_sample"):
        raise ValueError(msg.replicas_reduction(replicas, spec.reduction))
    norm = None
    if normalizer is not None:
        norm = _prepare_normalizer(ops, spec, normalizer, dt, p, shape, check_values)
    prep = Prepared(spec, p, t, w, sw, m, whitening, v, shape, names, arrays, norm, allreduce)
    if check_values:
        _check_structured_values(ops, prep)
    return prep


def normalizer_rules(ops: Ops) -> Any:
    """A normalizer is finite and non-negative (from its extrema: one pass)."""

    def build(n: Array) -> list[Rule]:
        if 0 in ops.shape(n):
            return []
        lo, hi = ops.extrema(n)
        return [((lo > -np.inf) & (hi < np.inf), msg.NORMALIZER_NOT_FINITE, {}),
                (lo >= 0, msg.NORMALIZER_NEGATIVE, {"lo": lo})]

    return build


def check_normalizer_spec(spec: LossSpec, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape a normalizer of ``spec`` has (a ValueError where the loss has none that
    adds up over a batch's parts)."""
    if spec.finalize != "identity" or spec.multioutput == "variance_weighted":
        raise ValueError(msg.normalizer_nonlinear(spec.finalize, spec.multioutput))
    want = normalizer_shape(spec, shape)
    if want is None:
        raise ValueError(msg.normalizer_reduction(spec.reduction))
    return want


def _prepare_normalizer(ops: Ops, spec: LossSpec, n: Any, dtype: str, like: Array, shape: tuple[int, ...],
                        check_values: bool) -> Array:
    """The call's ``normalizer``: for a linear reduction, of the normalizer's shape, in the
    compute dtype, finite and non-negative."""
    want = check_normalizer_spec(spec, shape)
    check_input(ops, "normalizer", n)
    a = ops.asarray(n, dtype=dtype, like=like)
    got = tuple(ops.shape(a))
    if got != want:
        raise ValueError(msg.normalizer_shape(got, want, spec.reduction, spec.multioutput))
    if check_values:
        ops.check(normalizer_rules(ops), a)
    return a


def _prepare_var(ops: Ops, var: Any, dtype: str, like: Array) -> Array | float | None:
    """``var`` in the compute dtype (a Python number stays a number, as torch allows)."""
    if var is None:
        return None
    if isinstance(var, (int, float)) and not isinstance(var, bool):
        return float(var)
    check_input(ops, "var", var)
    return ops.asarray(var, dtype=dtype, like=like)


def _check_structured(ops: Ops, spec: LossSpec, shape: tuple[int, ...], weight: Array | None,
                      whitening: Whitening | None, var: Array | float | None, names: ArgNames) -> None:
    """The transform's and the variance's shape and consistency checks (pure Python)."""
    if whitening is not None:
        check_matrix_shape(whitening.name, tuple(ops.shape(whitening.matrix)), shape, names.pred)
        if weight is not None and (spec.transform == "precision" or spec.event_units):
            wshape = tuple(ops.shape(weight))
            if wshape and wshape[-1] != 1 and shape and shape[-1] != 1:
                raise ValueError(msg.weight_mixes(names.weight, wshape, spec.transform == "precision",
                                                  names.sample_weight))
    if spec.penalty == "gaussian_nll" and spec.transform is None:
        if var is None:
            raise ValueError(msg.GAUSSIAN_NEEDS_VAR)
        if not isinstance(var, float):
            var_shape(tuple(ops.shape(var)), shape, names)
        elif var < 0:
            raise ValueError(msg.VAR_NEGATIVE)
    elif var is not None:
        raise ValueError(msg.var_not_used(spec.penalty, spec.transform))


def _check_structured_values(ops: Ops, prep: Prepared) -> None:
    """Value checks of the structured options: a non-negative ``var``; whole samples masked
    when whitening."""
    spec, shape, names = prep.spec, prep.shape, prep.names
    if prep.var is not None and not isinstance(prep.var, float):
        ops.check(_var_rule(ops), prep.var)
    if spec.transform != "whiten" or not shape:
        return
    nan = spec.missing == "nan"
    mask = prep.mask
    if not nan and (mask is None or tuple(ops.shape(mask))[-1:] in ((), (1,))):
        return  # constant along the last axis by its shape
    valid = None if mask is None else ops.broadcast_to(mask, shape)
    if nan:
        present = prep.target == prep.target
        valid = present if valid is None else valid & present
    ops.check(_whole_sample_rule(ops, names, nan, mask is not None, shape, prep.pred), valid)


def batch_normalizer(ops: Ops, spec: LossSpec, target: Any, *, weight: Any = None, sample_weight: Any = None,
                     mask: Any = None, fixed: Fixed | None = None, extra_masks: tuple[tuple[str, Array], ...] = (),
                     names: ArgNames = DEFAULT_NAMES, check_values: bool = True, dtype: str | None = None) -> Array:
    """The normalizer of one batch (docs/design.md, "Scale-out"): what ``spec``'s reduction
    divides the batch's sum by, from the targets, weights and masks alone (the predictions
    play no part): sum(w m) for ``mean``, the valid units for ``sum_over_batch_size``, one
    per output for the per-output reductions. Every adapter's ``normalizer(...)``."""
    prep = prepare(ops, spec, target, target, weight=weight, sample_weight=sample_weight, mask=mask, fixed=fixed,
                   extra_masks=extra_masks, names=names._replace(pred=names.target), check_values=check_values,
                   dtype=dtype)
    if normalizer_shape(prep.spec, prep.shape) is None:
        raise ValueError(msg.normalizer_reduction(prep.spec.reduction))
    return normalizer(ops, prep)
