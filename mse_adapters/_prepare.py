"""The one path from a user's arguments to the pipeline's arrays, compiled once per call
signature (docs/design.md, "Plans"), written once for every backend.

A call's arguments (a :class:`Call`) and what the loss brings to every call (a
:class:`Context`: its backend, argument names, the weight, mask, matrix and parameters it
was built with) are turned into a :class:`~mse_adapters._ops.Prepared` call in two halves:

- :func:`build` decides everything that depends only on the call's *signature* (which
  arguments are given, their types, dtypes and shapes: :func:`signature`) and returns a
  :class:`Plan`: the resolved spec (its transform), the compute dtype, which weights and
  masks to merge, how the matrix is applied, and the value checks to run. Every shape, dtype
  and consistency error is raised here. Its named steps: the inputs, the weights, the masks,
  the transform, the penalty parameters, the normalizer.
- :func:`run` does a call's array work only: the casts, the product of the weights, the
  AND of the masks, the transform's arrays, and the value checks, all of them gathered
  into one transfer to the host (:meth:`~mse_adapters._ops.Ops.verify`; none with
  ``check_values=False``, none while tracing).

:func:`prepare` looks the plan up in a bounded cache (:class:`Plans`, held by a loss object
or a functional form) and runs it: a call with a signature seen before pays a dictionary
lookup, its arithmetic and its value checks.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import numpy as np

from . import _messages as msg
from ._core import normalizer, normalizer_shape
from ._ops import (
    EPS,
    NO_FIXED,
    ArgNames,
    Call,
    Check,
    Context,
    Fixed,
    Ops,
    Prepared,
    Rule,
    Whitening,
    check_input,
    check_trailing,
    compute_dtype,
    kind,
    var_shape,
)
from ._penalties import PENALTY_TABLE
from ._spec import LossSpec, param_range
from ._whiten import HostMatrix, check_matrix_shape, matrix_rules, pick_matrix, resolve_spec

__all__ = ["Fixed", "Call", "Context", "Plan", "Plans", "prepare", "build", "run", "signature", "split_params",
           "PARAM_NAMES", "fixed_weight", "fixed_mask", "weight_check", "check_normalizer_spec",
           "batch_normalizer", "check_input", "compute_dtype", "kind"]

Array = Any
Shape = tuple[int, ...]


class Plan(NamedTuple):
    """Everything about a call that its signature decides (see the module documentation).

    ``weights``: whether the loss' weight, the call's and a sample weight are given; ``masks``: the mask parts
    to AND, as (source, numeric) (``"fixed"``, ``"call"`` or an index into the call's
    ``extra_masks``); ``matrix``: ``"fixed"``, ``"traced"``, ``"host"`` or None, with its
    argument's name; ``checks``: (source, :class:`~mse_adapters._ops.Check`) in the order
    their errors are raised."""

    spec: LossSpec
    dtype: str
    shape: Shape
    weights: tuple[bool, bool, bool]
    masks: tuple[tuple[Any, bool], ...]
    matrix: str | None
    matrix_name: str | None
    checks: tuple[tuple[Any, Check], ...]


class Plans:
    """A bounded cache of plans by call signature, held by a loss object or a functional form
    (cleared when full: the signatures of a training loop are few)."""

    __slots__ = ("plans", "size")

    def __init__(self, size: int = 64) -> None:
        self.plans: dict[Hashable, Any] = {}
        self.size = size

    def __len__(self) -> int:
        return len(self.plans)

    def clear(self) -> None:
        self.plans.clear()

    def lookup(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The entry of ``key`` (a :func:`signature`, possibly extended by the backend), made by
        ``make()`` on first sight."""
        entry = self.plans.get(key)
        if entry is None:
            entry = make()
            if len(self.plans) >= self.size:
                self.plans.clear()
            self.plans[key] = entry
        return entry

    # a cache is not state: a pickled or copied loss starts with an empty one
    def __getstate__(self) -> dict[str, Any]:
        return {"size": self.size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.plans = {}
        self.size = state["size"]

    def __deepcopy__(self, memo: Any) -> Plans:
        return Plans(self.size)


def prepare(spec: LossSpec, call: Call, ctx: Context, plans: Plans | None = None) -> Prepared:
    """The call as a :class:`~mse_adapters._ops.Prepared` record: its plan (from ``plans``
    when given, else built now) run on its arrays."""
    if plans is None:
        return run(build(spec, call, ctx), call, ctx)
    return run(plans.lookup(signature(spec, call, ctx), lambda: build(spec, call, ctx)), call, ctx)


# ---------------------------------------------------------------------------------------
# The signature
# ---------------------------------------------------------------------------------------


def _matrix_key(m: Any) -> Hashable:
    return None if m is None else (m.name, tuple(m.shape))


def signature(spec: LossSpec, call: Call, ctx: Context) -> Hashable:
    """What a call's plan depends on: the spec, and per argument its kind, dtype and shape
    (:meth:`~mse_adapters._ops.Ops.describe`), with those of what the loss was built with."""
    d = ctx.ops.describe
    key: tuple[Any, ...] = (spec, d(call.pred), d(call.target), d(call.weight), d(call.sample_weight),
                            d(call.mask), d(call.var), d(call.normalizer), ctx.check_values, ctx.dtype,
                            ctx.allreduce is None)
    if call.covariance is not None or call.scale_tril is not None or call.precision is not None:
        key += (d(call.covariance), d(call.scale_tril), d(call.precision))
    if call.params:
        key += (tuple((k, d(v)) for k, v in call.params.items()),)
    if call.extra_masks:
        key += (tuple((n, d(m)) for n, m in call.extra_masks),)
    f = ctx.fixed
    if f is not NO_FIXED:
        key += (d(f.weight), d(f.mask), _matrix_key(f.matrix), tuple((k, d(v)) for k, v in f.params.items()))
    return key


# ---------------------------------------------------------------------------------------
# The value checks
# ---------------------------------------------------------------------------------------


def _extrema(ops: Ops, x: Array) -> tuple[Array, ...]:
    return tuple(ops.extrema(x))


def weight_check(name: str) -> Check:
    """Weights are finite and non-negative (from their extrema: one pass)."""

    finite, negative = msg.WEIGHT_NOT_FINITE.format(name=name), msg.WEIGHT_NEGATIVE.format(name=name)

    def rules(xp: Any, lo: Any, hi: Any) -> list[Rule]:
        return [((lo > -np.inf) & (hi < np.inf), finite, {}), (lo >= 0, negative, {})]

    return Check(_extrema, rules, _nonnegative_finite)


def _nonnegative_finite(lo: float, hi: float) -> bool:
    return bool(lo >= 0 and hi < np.inf)  # (NaN fails both)


def _mask_check(name: str) -> Check:
    """A numeric mask holds only 0 and 1."""

    def stats(ops: Ops, m: Array) -> tuple[Array, ...]:
        return (ops.sum((m != 0) & (m != 1), dtype="float32"),)

    text = msg.MASK_NOT_BINARY.format(name=name)

    def rules(xp: Any, n: Any) -> list[Rule]:
        return [(n == 0, text, {})]

    return Check(stats, rules, _zero)


def _zero(n: float) -> bool:
    return bool(n == 0)


def _param_check(name: str) -> Check:
    """A penalty parameter given as an array: finite (or -inf where its range admits it:
    Barron's alpha), inside its range (the penalty table's)."""
    row = next(p for pen in PENALTY_TABLE.values() for p in pen.params if p.name == name)
    finite = (msg.PARAM_NOT_REAL if row.infinite else msg.PARAM_NOT_FINITE).format(name=name)
    outside = msg.PARAM_OUT_OF_RANGE.format(range=param_range(name))

    def rules(xp: Any, lo: Any, hi: Any) -> list[Rule]:
        inside = (lo > row.low) if row.low_open else (lo >= row.low)
        if row.high is not None:
            inside = inside & (hi < row.high)
        # NaN fails every comparison (the extrema propagate it); -inf passes where admitted
        real = ((lo >= -np.inf) if row.infinite else (lo > -np.inf)) & (hi < np.inf)
        return [(real, finite, {}), (inside, outside, {"lo": lo, "hi": hi})]

    return Check(_extrema, rules)


def _normalizer_rules(xp: Any, lo: Any, hi: Any) -> list[Rule]:
    return [((lo > -np.inf) & (hi < np.inf), msg.NORMALIZER_NOT_FINITE, {}),
            (lo >= 0, msg.NORMALIZER_NEGATIVE, {"lo": lo})]


_NORMALIZER_CHECK = Check(_extrema, _normalizer_rules, _nonnegative_finite)


def _var_rules(xp: Any, lo: Any, hi: Any) -> list[Rule]:
    return [((lo >= 0) | (lo != lo), msg.VAR_NEGATIVE, {})]  # NaN passes (it propagates)


_VAR_CHECK = Check(_extrema, _var_rules)


def _matrix_check(name: str, eps: float) -> Check:
    """A traced or trainable matrix's checks (on the host in float64; traced under checkify)."""

    def stats(ops: Ops, m: Array) -> tuple[Array, ...]:
        return (m,)

    def rules(xp: Any, m: Any) -> list[Rule]:
        if xp is np:
            return matrix_rules(np, name, np.asarray(m, dtype=np.float64), eps)
        return matrix_rules(xp, name, m.astype(xp.promote_types(m.dtype, xp.float32)), eps)

    return Check(stats, rules)


def _samples_check(names: ArgNames, nan: bool, has_mask: bool, shape: Shape) -> Check:
    """When whitening, a sample is valid or masked as a whole."""
    what = names.mask if not nan else (
        f"{names.mask} (and the NaN values of {names.target}, missing='nan')" if has_mask
        else f"the NaN values of {names.target} (missing='nan')")

    def stats(ops: Ops, valid: Array) -> tuple[Array, ...]:
        count = ops.sum(valid, (len(shape) - 1,), dtype="float32")
        return (ops.sum((count != 0) & (count != float(shape[-1])), dtype="float32"),)

    def rules(xp: Any, partial: Any) -> list[Rule]:
        return [(partial == 0, msg.partial_sample(what), {})]

    return Check(stats, rules)


# ---------------------------------------------------------------------------------------
# Building a plan: the named steps
# ---------------------------------------------------------------------------------------


class _Draft:
    """A plan being built: the steps below fill it in."""

    def __init__(self, spec: LossSpec, ctx: Context) -> None:
        self.spec = spec
        self.ctx = ctx
        self.names = ctx.names
        self.checks: list[tuple[Any, Check]] = []
        self.dtype = ""
        self.shape: Shape = ()

    def shape_of(self, x: Any) -> Shape:
        ops = self.ctx.ops
        return tuple(ops.shape(ops.asarray(x)))

    def check(self, source: Any, check: Check, shape: Shape) -> None:
        """A value check to run on every call (not on an empty array; not without check_values)."""
        if self.ctx.check_values and 0 not in shape:
            self.checks.append((source, check))


def _step_inputs(draft: _Draft, call: Call) -> None:
    """The prediction and the target: their frameworks and dtypes, the compute dtype, the
    same shape."""
    ops, names, spec = draft.ctx.ops, draft.names, draft.spec
    check_input(ops, names.pred, call.pred)
    tdt = check_input(ops, names.target, call.target)
    if spec.missing == "nan" and kind(tdt) != "f":
        raise ValueError(msg.missing_dtype(names.target, tdt))
    p = ops.asarray(call.pred)
    t = ops.asarray(call.target, like=p)
    draft.dtype = draft.ctx.dtype or compute_dtype(ops, p, t)
    shape, tshape = tuple(ops.shape(p)), tuple(ops.shape(t))
    if shape != tshape:
        raise ValueError(msg.same_shape(names.pred, names.target, shape, tshape))
    if not shape and (spec.per_sample or spec.reduction in ("per_sample", "per_output") or spec.per_output_stats):
        raise ValueError(msg.scalar_needs_axis(names.pred, spec.reduction, spec.per_sample, spec.multioutput))
    if not shape and spec.unit_norm:
        raise ValueError(msg.scalar_unit_norm(names.pred))
    draft.shape = shape


def _step_weights(draft: _Draft, call: Call) -> tuple[bool, bool, bool]:
    """The loss' weight (checked when it was built) times the call's; the sample weight."""
    ops, names, fixed = draft.ctx.ops, draft.names, draft.ctx.fixed
    if fixed.weight is not None:
        check_trailing(names.weight, tuple(ops.shape(fixed.weight)), draft.shape, names.pred)
    if call.weight is not None:
        check_input(ops, names.weight, call.weight)
        wshape = draft.shape_of(call.weight)
        check_trailing(names.weight, wshape, draft.shape, names.pred)
        draft.check("weight", weight_check(names.weight), wshape)
    if call.sample_weight is not None:
        check_input(ops, names.sample_weight, call.sample_weight)
        draft.check("sample_weight", weight_check(names.sample_weight), draft.shape_of(call.sample_weight))
    return fixed.weight is not None, call.weight is not None, call.sample_weight is not None


def _step_masks(draft: _Draft, call: Call) -> tuple[tuple[Any, bool], ...]:
    """The masks to AND: the loss' (boolean already), the call's and the extra ones; a
    numeric one must hold 0 and 1."""
    ops, names = draft.ctx.ops, draft.names
    parts: list[tuple[Any, bool]] = []
    if draft.ctx.fixed.mask is not None:
        check_trailing(names.mask, tuple(ops.shape(draft.ctx.fixed.mask)), draft.shape, names.pred)
        parts.append(("fixed", False))
    given = [("call", names.mask, call.mask), *((i, n, m) for i, (n, m) in enumerate(call.extra_masks))]
    for source, name, m in given:
        if m is None:
            continue
        numeric = check_input(ops, name, m) != "bool"
        mshape = draft.shape_of(m)
        check_trailing(name, mshape, draft.shape, names.pred)
        if numeric:
            draft.check(source, _mask_check(name), mshape)
        parts.append((source, numeric))
    return tuple(parts)


def _step_transform(draft: _Draft, call: Call) -> tuple[str | None, str | None, Shape | None]:
    """Which matrix (the loss' or the call's), how it is applied (``"fixed"``, ``"traced"``:
    in the compute dtype, by a solve; ``"host"``: factored in float64, cached by content) and
    its shape; the spec's transform resolved."""
    ops, fixed = draft.ctx.ops, draft.ctx.fixed
    mname, m = pick_matrix(call.covariance, call.scale_tril, call.precision)
    if fixed.matrix is not None:
        if mname is not None:
            raise ValueError(msg.matrices_exclusive([f"{fixed.matrix.name} (when the loss was compiled)",
                                                     f"{mname} (at call time)"]))
        draft.spec = resolve_spec(draft.spec, fixed.matrix.name)
        return "fixed", fixed.matrix.name, tuple(fixed.matrix.shape)
    draft.spec = resolve_spec(draft.spec, mname)
    if mname is None:
        return None, None, None
    if not ops.is_traced(m):
        return "host", mname, draft.shape_of(m)
    mdt = check_input(ops, mname, m)
    mshape = tuple(ops.shape(m))
    check_matrix_shape(mname, mshape)
    draft.check("matrix", _matrix_check(mname, EPS.get(mdt, EPS["float64"])), mshape)
    return "traced", mname, mshape


def _step_structured(draft: _Draft, call: Call, wshape: Shape | None, matrix: tuple[str | None, Shape | None]
                     ) -> None:
    """The transform's and the variance's shapes and consistency (pure Python)."""
    spec, shape, names = draft.spec, draft.shape, draft.names
    mname, mshape = matrix
    var = call.var
    if mname is None and var is None and spec.transform is None and spec.penalty != "gaussian_nll":
        return
    if mname is not None:
        assert mshape is not None
        check_matrix_shape(mname, mshape, shape, names.pred)
        if wshape is not None and (spec.transform == "precision" or spec.event_units):
            if wshape and wshape[-1] != 1 and shape and shape[-1] != 1:
                raise ValueError(msg.weight_mixes(names.weight, wshape, spec.transform == "precision",
                                                  names.sample_weight))
    if spec.penalty == "gaussian_nll" and spec.transform is None:
        if var is None:
            raise ValueError(msg.GAUSSIAN_NEEDS_VAR)
        if isinstance(var, (int, float)) and not isinstance(var, bool):
            if var < 0:
                raise ValueError(msg.VAR_NEGATIVE)
            return
        check_input(draft.ctx.ops, "var", var)
        vshape = draft.shape_of(var)
        var_shape(vshape, shape, names)
        draft.check("var", _VAR_CHECK, vshape)
    elif var is not None:
        raise ValueError(msg.var_not_used(spec.penalty, spec.transform))


def _step_params(draft: _Draft, call: Call) -> None:
    """Penalty parameters given as arrays (the loss' and the call's): the penalty's own, of
    a shape that broadcasts like ``weight``, finite and inside their range."""
    ops, names, spec = draft.ctx.ops, draft.names, draft.spec
    pen = PENALTY_TABLE.get(spec.penalty)
    allowed = () if pen is None else tuple(p.name for p in pen.params)
    for name, value in {**draft.ctx.fixed.params, **call.params}.items():
        if name not in allowed:
            raise ValueError(msg.not_a_param(name, spec.penalty, allowed))
        check_input(ops, name, value)
        pshape = draft.shape_of(value)
        check_trailing(name, pshape, draft.shape, names.pred)
        draft.check(("param", name), _param_check(name), pshape)


def _step_normalizer(draft: _Draft, call: Call) -> None:
    """A given normalizer: for a linear reduction, of the normalizer's shape; the replicas'
    sum only with a reduction that sums over them."""
    spec = draft.spec
    if draft.ctx.allreduce is not None and spec.reduction in ("none", "per_sample"):
        raise ValueError(msg.replicas_reduction(draft.ctx.replicas, spec.reduction))
    if call.normalizer is None:
        return
    want = check_normalizer_spec(spec, draft.shape)
    check_input(draft.ctx.ops, "normalizer", call.normalizer)
    got = draft.shape_of(call.normalizer)
    if got != want:
        raise ValueError(msg.normalizer_shape(got, want, spec.reduction, spec.multioutput))
    draft.check("normalizer", _NORMALIZER_CHECK, got)


def _step_samples(draft: _Draft, masks: tuple[tuple[Any, bool], ...], call: Call) -> None:
    """When whitening, masks and missing targets act on whole samples: checked where a mask
    can vary along the last axis."""
    spec, shape = draft.spec, draft.shape
    if spec.transform != "whiten" or not shape:
        return
    nan = spec.missing == "nan"
    if not nan:
        ops = draft.ctx.ops
        arrays = [draft.ctx.fixed.mask if s == "fixed" else call.mask if s == "call" else call.extra_masks[s][1]
                  for s, _ in masks]
        if all(tuple(ops.shape(ops.asarray(m)))[-1:] in ((), (1,)) for m in arrays):
            return  # constant along the last axis by their shapes
    draft.check("samples", _samples_check(draft.names, nan, bool(masks), shape), shape)


def _broadcast(shapes: list[Shape]) -> Shape | None:
    return tuple(np.broadcast_shapes(*shapes)) if shapes else None


def build(spec: LossSpec, call: Call, ctx: Context) -> Plan:
    """The plan of a call (see the module documentation): every static check, once."""
    if not isinstance(spec, LossSpec):
        raise TypeError(f"spec must be a LossSpec, got {type(spec).__name__}")
    draft = _Draft(spec, ctx)
    _step_inputs(draft, call)
    weights = _step_weights(draft, call)
    masks = _step_masks(draft, call)
    how, mname, mshape = _step_transform(draft, call)
    wshapes = [tuple(ctx.ops.shape(w)) for w in (ctx.fixed.weight,) if w is not None]
    if call.weight is not None:
        wshapes.append(draft.shape_of(call.weight))
    _step_structured(draft, call, _broadcast(wshapes), (mname, mshape))
    _step_params(draft, call)
    _step_normalizer(draft, call)
    _step_samples(draft, masks, call)
    order = {"weight": 0, "sample_weight": 1, "matrix": 3, "normalizer": 5, "var": 6, "samples": 7}
    checks = sorted(draft.checks, key=lambda c: order.get(c[0], 4 if isinstance(c[0], tuple) else 2))
    return Plan(draft.spec, draft.dtype, draft.shape, weights, masks, how, mname, tuple(checks))


# ---------------------------------------------------------------------------------------
# Running a plan: a call's array work
# ---------------------------------------------------------------------------------------


def _mask_of(call: Call, ctx: Context, source: Any) -> Any:
    if source == "fixed":
        return ctx.fixed.mask
    return call.mask if source == "call" else call.extra_masks[source][1]


def _whitening(plan: Plan, call: Call, ctx: Context, like: Array) -> Whitening | None:
    ops = ctx.ops
    if plan.matrix is None:
        return None
    if plan.matrix == "fixed":
        w: Whitening = ctx.fixed.matrix.whitening(ops, like)
        return w
    name = plan.matrix_name
    assert name is not None
    m = getattr(call, name)
    if plan.matrix == "host":
        return HostMatrix.of(ops, name, m).whitening(ops, like)
    mt = ops.asarray(m, dtype=plan.dtype)
    if name == "precision":
        return Whitening("precision", mt, None, name)
    return Whitening("solve", ops.cholesky(mt) if name == "covariance" else mt, None, name)


def _arrays(plan: Plan, call: Call, ctx: Context) -> tuple[Prepared, dict[Any, Array]]:
    """The call's arrays in the compute dtype, and the arrays the value checks read."""
    ops, dt = ctx.ops, plan.dtype
    p = ops.asarray(call.pred, dtype=dt)
    t = ops.asarray(call.target, dtype=dt, like=p)
    seen: dict[Any, Array] = {}
    w = ops.asarray(ctx.fixed.weight, dtype=dt, like=p) if plan.weights[0] else None
    if plan.weights[1]:
        seen["weight"] = a = ops.asarray(call.weight, dtype=dt, like=p)
        w = a if w is None else w * a
    sw = None
    if call.sample_weight is not None:
        seen["sample_weight"] = sw = ops.asarray(call.sample_weight, dtype=dt, like=p)
    m = None
    for source, numeric in plan.masks:
        a = ops.asarray(_mask_of(call, ctx, source), like=p)
        if numeric:
            seen[source], a = a, a != 0
        m = a if m is None else m & a
    var = call.var
    if var is not None and not (isinstance(var, (int, float)) and not isinstance(var, bool)):
        seen["var"] = var = ops.asarray(var, dtype=dt, like=p)
    elif var is not None:
        var = float(var)
    params = {}
    for name, value in ({**ctx.fixed.params, **call.params} if ctx.fixed.params or call.params else {}).items():
        seen["param", name] = params[name] = ops.asarray(value, dtype=dt, like=p)
    norm = None
    if call.normalizer is not None:
        seen["normalizer"] = norm = ops.asarray(call.normalizer, dtype=dt, like=p)
    if plan.matrix == "traced":
        seen["matrix"] = getattr(call, plan.matrix_name or "")
    prep = Prepared(plan.spec, p, t, w, sw, m, _whitening(plan, call, ctx, p), var, plan.shape, ctx.names,
                    params, norm, ctx.allreduce)
    return prep, seen


def run(plan: Plan, call: Call, ctx: Context) -> Prepared:
    """A call's array work (see the module documentation)."""
    prep, seen = _arrays(plan, call, ctx)
    if plan.checks:
        if plan.checks[-1][0] == "samples":
            valid = None if prep.mask is None else ctx.ops.broadcast_to(prep.mask, plan.shape)
            if plan.spec.missing == "nan":
                present = prep.target == prep.target
                valid = present if valid is None else valid & present
            seen["samples"] = valid
        ctx.ops.verify([(check, seen[source]) for source, check in plan.checks])
    return prep


# ---------------------------------------------------------------------------------------
# What a loss is built with; the normalizer of a batch
# ---------------------------------------------------------------------------------------


#: The names of every penalty parameter (``delta``, ``beta``, ``tau``).
PARAM_NAMES = frozenset(p.name for pen in PENALTY_TABLE.values() for p in pen.params)


def split_params(fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A binding's spec fields split into (the fields for the spec, the penalty parameters
    given as arrays): a Python number is a static constant of the spec, anything else (an
    array, a tensor, a tracer, a variable) is an array parameter of the call."""
    arrays = {k: v for k, v in fields.items()
              if k in PARAM_NAMES and (isinstance(v, bool) or not isinstance(v, (int, float)))}
    for k, v in arrays.items():
        check_param_type(k, v)
    return {k: v for k, v in fields.items() if k not in arrays}, arrays


def check_param_type(name: str, value: Any) -> None:
    """A penalty parameter that is neither a real number nor an array of real numbers (a
    str, a complex, a bool, None, a list of str): a TypeError naming it, the same in every
    backend, before any framework converts it (torch's own error names no argument, and
    torch would take a complex number). A framework's tensor is checked with the call's
    arrays (:func:`~mse_adapters._ops.check_input`)."""
    if value is None or isinstance(value, (str, bytes, complex, bool)):
        raise TypeError(msg.param_type(name, repr(value)))
    if isinstance(value, (list, tuple, np.ndarray, np.generic)):
        try:
            dtype = str(np.asarray(value).dtype)
        except ValueError:  # a ragged sequence
            dtype = "object"
        if kind(dtype) not in "iuf":
            raise TypeError(msg.param_type(name, f"{type(value).__name__} with dtype {dtype}"))


def fixed_weight(ops: Ops, name: str, w: Any, check_values: bool, dtype: str | None = None,
                 like: Array = None) -> Array | None:
    """A constructor's weight as an array (cast to ``dtype`` when given), value-checked."""
    if w is None:
        return None
    check_input(ops, name, w)
    a = ops.asarray(w, dtype=dtype, like=like)
    if check_values and 0 not in tuple(ops.shape(a)):
        ops.verify([(weight_check(name), a)])
    return a


def fixed_mask(ops: Ops, name: str, m: Any, check_values: bool, like: Array = None) -> Array | None:
    """A constructor's mask as a boolean array; a numeric one must hold 0 and 1."""
    if m is None:
        return None
    dtype = check_input(ops, name, m)
    a = ops.asarray(m, like=like)
    if dtype == "bool":
        return a
    if check_values and 0 not in tuple(ops.shape(a)):
        ops.verify([(_mask_check(name), a)])
    return a != 0


def check_normalizer_spec(spec: LossSpec, shape: Shape) -> Shape:
    """The shape a normalizer of ``spec`` has (a ValueError where the loss has none that
    adds up over a batch's parts)."""
    if spec.finalize != "identity" or spec.multioutput == "variance_weighted":
        raise ValueError(msg.normalizer_nonlinear(spec.finalize, spec.multioutput))
    want = normalizer_shape(spec, shape)
    if want is None:
        raise ValueError(msg.normalizer_reduction(spec.reduction))
    return want


def batch_normalizer(spec: LossSpec, call: Call, ctx: Context) -> Array:
    """The normalizer of one batch (docs/design.md, "Scale-out"): what ``spec``'s reduction
    divides the batch's sum by, from the targets, weights and masks alone (``call.pred`` is
    ignored: the predictions play no part): sum(w m) for ``mean``, the valid units for
    ``sum_over_batch_size``, one per output for the per-output reductions. Every adapter's
    ``normalizer(...)``."""
    names = ctx.names
    prep = prepare(spec, call._replace(pred=call.target), ctx._replace(names=names._replace(pred=names.target)))
    if normalizer_shape(prep.spec, prep.shape) is None:
        raise ValueError(msg.normalizer_reduction(prep.spec.reduction))
    return normalizer(ctx.ops, prep)
