"""JAX / Optax adapter: pure, jit-able loss functions in Optax's style.

Argument order follows Optax, ``loss(predictions, targets)``, and ``targets=None`` means
zeros. Unlike Optax's regression losses these reduce (default ``reduction="mean"``, so
``mse(p, t)`` equals ``optax.squared_error(p, t).mean()``) and take the options every loss
shares (docs/design.md, "Semantics"): ``weight``, ``sample_weight``, ``mask`` (a masked
element counts for nothing, even where its target is NaN; optax#902 asks Optax for this),
``missing="nan"``, the reductions (``"none"`` gives Optax's elementwise values, exactly 0
where masked), ``multioutput``, and ``covariance`` / ``scale_tril`` / ``precision``
("Whitening").

Everything is a pure function of arrays: ``jax.jit``, ``jax.grad``, ``jax.vmap``,
``jax.checkpoint`` and ``lax.scan`` work. The spec, ``reduction``, ``missing``,
``multioutput`` and the penalty parameters are static Python values (a
:class:`~mse_adapters.LossSpec` is hashable: ``jax.jit(loss, static_argnums=0)`` works);
weights, masks and a traced matrix may be traced arrays.

Validation. Shape, dtype and parameter checks always run (at trace time: free). Value
checks of weights, masks, ``var`` and matrices run on concrete arrays (eagerly, an eager
``jax.grad``, and constants closed over by a jitted function, checked while tracing); on
abstract ones (inside ``jit``, ``vmap``, ``scan``) they are skipped. ``check_values=False``
turns them off; ``check_values="checkify"`` emits them as
:func:`jax.experimental.checkify.check` calls, with the eager messages.

Dtypes: integers are promoted to JAX's default float; float16 and bfloat16 are computed in
float32 and the loss is float32 (Optax returns half precision, where e**2 overflows).

A concrete matrix (NumPy, a list, a JAX array, or one closed over by a jitted function) is
validated and factored on the host in float64 (cached by content; ``compile`` holds it) and
applied in the compute dtype as a product with the float64-formed ``L^-1``
(``JaxOps.whiten_by``: measured 1.0-3.7x faster than a triangular solve on XLA:CPU at d = 8
to 256); a traced one (a jit argument, a pytree leaf differentiated by ``jax.grad``) is used
in the compute dtype by a triangular solve, so that its gradient flows.

Differences from Optax, on purpose: ``predictions`` and ``targets`` must have the same shape
for every loss (Optax's ``huber_loss`` and ``log_cosh`` broadcast ``(B, 1)`` against
``(B,)``); the mean of an empty batch is 0, not NaN; integer predictions are promoted.

>>> import jax.numpy as jnp
>>> from mse_adapters import jax as mjax
>>> p, t = jnp.array([2.5, 0.0, 2.0, 8.0]), jnp.array([3.0, -0.5, 2.0, 7.0])
>>> float(mjax.mse(p, t))
0.375
>>> round(float(mjax.mse(p, t, mask=jnp.array([True, True, True, False]))), 6)
0.166667
>>> float(mjax.mse(jnp.ones((1, 2)), jnp.zeros((1, 2)), covariance=jnp.array([[4.0, 0.0], [0.0, 1.0]])))
0.625
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from .. import _core
from .. import _messages as msg
from .._ops import ArgNames, Check, Ops, check_input
from .._penalties import PENALTY_TABLE
from .._prepare import NO_FIXED, Call, Context, Fixed, batch_normalizer, prepare, split_params
from .._presets import PRESET_TABLE, F, documented, preset
from .._quiet import framework_import
from .._spec import LossSpec
from .._whiten import HostMatrix, pick_matrix, resolve_spec

with framework_import():  # XLA's start-up logging kept out of the user's output (_quiet.py)
    import jax
    import jax.numpy as jnp
    from jax import lax
    from jax.experimental import checkify as _checkify
    from jax.typing import ArrayLike

__all__ = [
    "squared_error", "absolute_error", "l2_loss", "huber_loss", "gaussian_nll", "multivariate_gaussian_nll",
    "Loss", "JaxOps", "normalizer", *(name for r in PRESET_TABLE if r.binds for name in r.names("jax")),
]

NAMES = ArgNames(pred="predictions", target="targets")
Multioutput = str | Sequence[float]
CheckValues = bool | Literal["checkify"]
OptArray = ArrayLike | None

_HOST_LIKE = (bool, int, float, np.ndarray, np.generic, list, tuple)


def _concrete(x: Any) -> Any:
    """The value of an array, or of a tracer that has one (an eager ``jax.grad``); None for
    an abstract tracer (``jit``, ``vmap``, ``scan``)."""
    if not isinstance(x, jax.core.Tracer):
        return x
    try:
        return x.to_concrete_value()
    except Exception:  # pragma: no cover - a tracer type without the method
        return None


@jax.custom_jvp
def _abs(x: Any) -> Any:
    """|x| with derivative sign(x): 0 at 0 (``lax.abs``' rule gives 1 there). A custom rule
    costs what ``jnp.abs`` costs (x * sign(x) took 1.5x in a jitted value_and_grad at 1e7)."""
    return jnp.abs(x)


@_abs.defjvp
def _abs_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> tuple[Any, Any]:
    (x,), (dx,) = primals, tangents
    return jnp.abs(x), jnp.sign(x) * dx  # sign is differentiable (derivative 0): grad of grad works


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _table_penalty(name: str, spec: LossSpec, r: jax.Array) -> jax.Array:
    """rho(r) with the penalty table's rho' as its derivative (and rho'' as that one's): XLA
    then fuses the forward into the reduction and the backward into one elementwise pass,
    where its autodiff of a formula's intermediates materialised them (log-cosh, 1e7, one
    thread: 6 arrays)."""
    return PENALTY_TABLE[name].value(_OPS, r, spec)


@_table_penalty.defjvp
def _table_penalty_jvp(name: str, spec: LossSpec, primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    (r,), (dr,) = primals, tangents
    return _table_penalty(name, spec, r), _table_grad(name, spec, r) * dr


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _table_grad(name: str, spec: LossSpec, r: jax.Array) -> jax.Array:
    return PENALTY_TABLE[name].grad(_OPS, r, spec)


@_table_grad.defjvp
def _table_grad_jvp(name: str, spec: LossSpec, primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    (r,), (dr,) = primals, tangents
    return _table_grad(name, spec, r), PENALTY_TABLE[name].hess(_OPS, r, spec) * dr


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def _param_penalty(name: str, spec: LossSpec, names: tuple[str, ...], r: jax.Array, *values: jax.Array) -> jax.Array:
    """rho(r) with array parameters whose derivatives the table gives (d rho / d param, and
    rho'): exact where an autodiff of the formula's branches is not (Barron's alpha = 2)."""
    return PENALTY_TABLE[name].value(_OPS, r, _core.Params(spec, dict(zip(names, values))))


@_param_penalty.defjvp
def _param_penalty_jvp(name: str, spec: LossSpec, names: tuple[str, ...], primals: tuple[Any, ...],
                       tangents: tuple[Any, ...]) -> Any:
    (r, *values), (dr, *dvalues) = primals, tangents
    row, p = PENALTY_TABLE[name], _core.Params(spec, dict(zip(names, values)))
    out = _param_penalty(name, spec, names, r, *values)
    slope = row.grad(_OPS, r, p) * dr  # (its own derivative: an autodiff of rho')
    for n, dv in zip(names, dvalues):
        slope = slope + row.param_grads[n](_OPS, r, p) * dv
    return out, slope


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _clamp_min_nograd(x: jax.Array, lo: float) -> jax.Array:
    return jnp.maximum(x, lo)


@_clamp_min_nograd.defjvp
def _clamp_jvp(lo: float, primals: tuple[jax.Array], tangents: tuple[jax.Array]) -> tuple[Any, Any]:
    (x,), (tx,) = primals, tangents
    return _clamp_min_nograd(x, lo), tx


class JaxOps(Ops):
    """The pipeline's primitives in ``jax.numpy``. ``checkify``: the value checks are
    emitted as ``checkify.check`` calls (``check_values="checkify"``)."""

    name = "jax"
    framework = "jax"
    accepts = "a JAX array or an array-like (NumPy array, Python scalar or list)"
    #: A constant covariance is applied as a product with the float64-formed L^-1 (XLA:CPU's
    #: triangular solve is 1.0-3.7x slower at d = 8..256, never faster).
    whiten_by = "inverse"
    xp = jnp

    def __init__(self, checkify: bool = False) -> None:
        self.checkify = checkify

    def asarray(self, x: Any, dtype: str | None = None, like: Any = None) -> Any:
        if not isinstance(x, jax.Array):
            x = jnp.asarray(x) if isinstance(x, (bool, int, float)) or hasattr(x, "__jax_array__") \
                else jnp.asarray(np.asarray(x))
        if dtype is not None and x.dtype != dtype:
            x = x.astype(dtype)
        return x

    def dtype(self, x: Any) -> str | None:
        if isinstance(x, jax.Array) or hasattr(x, "__jax_array__"):
            return str(np.dtype(jnp.asarray(x).dtype if not isinstance(x, jax.Array) else x.dtype).name)
        return None

    def float_dtype(self, *xs: Any) -> str:
        dt = jnp.result_type(*xs)
        if not jnp.issubdtype(dt, jnp.floating):
            return str(jax.dtypes.canonicalize_dtype(jnp.float64))  # float32, float64 with x64
        return str(np.dtype(dt).name)

    def constant(self, values: Any, like: Any) -> Any:
        with jax.ensure_compile_time_eval():  # a concrete constant, also while tracing
            return jnp.asarray(values, dtype=jnp.result_type(like))

    def to_host(self, x: Any) -> np.ndarray:
        return np.asarray(_concrete(x))

    def is_abstract(self, x: Any) -> bool:
        return isinstance(x, jax.core.Tracer) and _concrete(x) is None

    def is_traced(self, x: Any) -> bool:
        return isinstance(x, jax.core.Tracer)

    def penalty(self, row: Any, r: Any, params: Any) -> Any:
        if isinstance(params, LossSpec):  # static parameters: the table's derivatives
            return _table_penalty(row.name, params, r)
        if row.param_grads and all(n in row.param_grads for n in params.arrays):
            names = tuple(params.arrays)  # array parameters with the table's derivatives (Barron's)
            return _param_penalty(row.name, params.spec, names, r, *(params.arrays[n] for n in names))
        return row.value(self, r, params)  # array parameters: differentiated w.r.t. them too

    def where(self, cond: Any, x: Any, y: Any) -> Any:
        return jnp.where(cond, x, y)

    def abs(self, x: Any) -> Any:
        return _abs(x)

    def sign(self, x: Any) -> Any:
        return jnp.sign(x)

    def sqrt(self, x: Any) -> Any:
        return jnp.sqrt(x)

    def expm1(self, x: Any) -> Any:
        return jnp.expm1(x)

    def log(self, x: Any) -> Any:
        return jnp.log(x)

    def log1p(self, x: Any) -> Any:
        return jnp.log1p(x)

    def clamp_min_nograd(self, x: Any, lo: float) -> Any:
        return _clamp_min_nograd(x, lo)

    def shape(self, x: Any) -> tuple[int, ...]:
        return tuple(jnp.shape(x))

    def reshape(self, x: Any, shape: tuple[int, ...]) -> Any:
        return jnp.reshape(x, shape)

    def broadcast_to(self, x: Any, shape: tuple[int, ...]) -> Any:
        return jnp.broadcast_to(x, shape)

    def sum(self, x: Any, axis: tuple[int, ...] | None = None, dtype: str | None = None) -> Any:
        if axis is not None and not axis:
            return x if dtype is None else x.astype(dtype)
        if dtype is not None and jnp.result_type(x) == jnp.bool_:
            # Counted as uint8 converted to ``dtype`` inside the reduction: XLA:CPU's
            # vectorised (YNNPACK) reduction fuses that conversion, not a boolean's, whose
            # reduction runs in the scalar emitter (1e7 elements, one thread: 7 ms against
            # 28 ms for bool -> float32 and 33 ms for bool -> bfloat16).
            return jnp.sum(x.astype(jnp.uint8).astype(dtype), axis=axis)
        return jnp.sum(x, axis=axis, dtype=dtype)  # XLA's reduction: pairwise-accurate on CPU

    def extrema(self, x: Any) -> tuple[Any, Any]:
        return jnp.min(x), jnp.max(x)

    def matvec(self, m: Any, x: Any) -> Any:
        if jnp.ndim(m) == 2:  # one matrix: a single GEMM over every sample
            return x @ jnp.swapaxes(m, -1, -2)
        return jnp.einsum("...ij,...j->...i", m, x)

    def solve_tril(self, lower: Any, x: Any) -> Any:
        lower = jnp.asarray(lower)
        d = x.shape[-1]
        if lower.ndim == 2 and x.ndim >= 2:  # z L^T = x row by row: one TRSM, no transposes
            z = lax.linalg.triangular_solve(lower, x.reshape(-1, d), left_side=False, lower=True, transpose_a=True)
            return z.reshape(x.shape)
        batch = jnp.broadcast_shapes(lower.shape[:-2], x.shape[:-1])
        lb = jnp.broadcast_to(lower, batch + (d, d))
        xb = jnp.broadcast_to(x, batch + (d,))
        return lax.linalg.triangular_solve(lb, xb[..., None], left_side=True, lower=True)[..., 0]

    def cholesky(self, m: Any) -> Any:
        return jnp.linalg.cholesky(m)

    def host_values(self, stats: Sequence[Any]) -> list[Any]:
        if all(jnp.ndim(x) == 0 for x in stats):
            return list(np.asarray(jnp.stack([jnp.asarray(x) for x in stats])))  # one transfer
        return [self.to_host(x) for x in stats]

    def verify(self, checks: Sequence[tuple[Check, Any]]) -> None:
        if self.checkify:  # the rules as checkify checks (their messages as format strings)
            for c, x in checks:
                for cond, text, kw in c.rules(jnp, *c.stats(self, x)):
                    _checkify.check(jnp.all(cond), text, **dict(kw))
            return
        concrete = [(c, _concrete(x)) for c, x in checks]
        if any(x is None for _, x in concrete):
            return  # abstract: nothing can be raised
        with jax.ensure_compile_time_eval():  # a constant's checks run at trace time under jit
            try:
                super().verify(concrete)
            except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
                return  # a constant inside a mapped context (shard_map): abstract there


_OPS = JaxOps()
_CHECKIFY_OPS = JaxOps(checkify=True)


def _check_flag(check_values: Any) -> None:
    if check_values not in (True, False, "checkify"):
        raise ValueError(msg.check_values_flag(check_values, "True, False or 'checkify'"))


def _evaluate(spec: Any, fixed: HostMatrix | None, predictions: Any, targets: Any, check_values: Any,
              axis_name: Any = None, **kw: Any) -> jax.Array:
    _check_flag(check_values)
    ops = _CHECKIFY_OPS if check_values == "checkify" else _OPS
    if targets is None:  # Optax: zeros
        check_input(ops, NAMES.pred, predictions)
        p = ops.asarray(predictions)
        targets = jnp.zeros(jnp.shape(p), p.dtype if jnp.issubdtype(p.dtype, jnp.floating) else jnp.float32)
    kw["params"] = kw.get("params") or {}
    ctx = Context(ops, NAMES, NO_FIXED if fixed is None else Fixed(matrix=fixed), bool(check_values), None,
                  _psum_of(axis_name), "axis_name")
    return _core.evaluate(ops, prepare(spec, Call(predictions, targets, **kw), ctx))


def _psum_of(axis_name: Any) -> Callable[[tuple[Any, ...]], tuple[Any, ...]] | None:
    """The sum across the devices of a mapped axis (``shard_map``, ``pmap``), or None; a
    ValueError naming ``axis_name`` outside such a context."""
    if axis_name is None:
        return None
    try:
        lax.axis_index(axis_name)
    except NameError:
        raise ValueError(msg.axis_name_unbound(axis_name)) from None

    def psum(xs: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(lax.psum(tuple(xs), axis_name))  # one collective for the tuple

    return psum


def normalizer(spec: LossSpec | str, targets: ArrayLike, *, weight: OptArray = None, sample_weight: OptArray = None,
               mask: OptArray = None, axis_name: Any = None, check_values: CheckValues = True,
               **fields: Any) -> jax.Array:
    """The normalizer of a batch for ``spec`` (a :class:`~mse_adapters.LossSpec` or a preset
    name, with spec ``fields`` such as ``reduction=``): what its reduction divides the sum by
    (sum(w m) for ``mean``, the valid units for ``sum_over_batch_size``, one per output for
    the per-output reductions); summed over the devices of ``axis_name`` when given. Sum it
    over an accumulation window's micro-batches and pass it as ``normalizer=``: the
    micro-batch losses (and their gradients) then add up to the window's.

    >>> import jax.numpy as jnp
    >>> t, m = jnp.array([1.0, 2.0, 3.0, 4.0]), jnp.array([True, False, True, True])
    >>> n = normalizer("mse", t[:2], mask=m[:2]) + normalizer("mse", t[2:], mask=m[2:])
    >>> p = jnp.array([2.0, 0.0, 3.0, 6.0])
    >>> parts = mse(p[:2], t[:2], mask=m[:2], normalizer=n) + mse(p[2:], t[2:], mask=m[2:], normalizer=n)
    >>> round(float(parts), 6), round(float(mse(p, t, mask=m)), 6)
    (1.666667, 1.666667)
    """
    _check_flag(check_values)
    spec = preset(spec, **fields) if isinstance(spec, str) else (spec.replace(**fields) if fields else spec)
    n = batch_normalizer(spec, Call(targets, targets, weight, sample_weight, mask),
                         Context(_OPS, NAMES, NO_FIXED, check_values is True))
    psum = _psum_of(axis_name)
    return lax.stop_gradient(n if psum is None else psum((n,))[0])


def loss(spec: LossSpec, predictions: ArrayLike, targets: OptArray = None, *, weight: OptArray = None,
         sample_weight: OptArray = None, mask: OptArray = None, check_values: CheckValues = True,
         covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
         var: ArrayLike | float | None = None, params: dict[str, ArrayLike] | None = None,
         normalizer: OptArray = None, axis_name: Any = None) -> jax.Array:
    """Evaluate any spec: a pure function, jit-able with the spec static
    (``jax.jit(loss, static_argnums=0)``). ``params``: penalty parameters as arrays
    (``{"delta": d}``: traced, vmapped, differentiated) in place of the spec's floats.
    ``normalizer``: the denominator to divide by instead of the batch's own; ``axis_name``:
    inside ``shard_map`` / ``pmap``, the loss of the whole mapped batch (docs/design.md,
    "Scale-out").

    >>> import jax.numpy as jnp
    >>> from mse_adapters import LossSpec
    >>> float(loss(LossSpec(penalty="abs", reduction="sum"), jnp.array([1.0, 2.0]), jnp.array([1.5, 0.0])))
    2.5
    """
    return _evaluate(spec, None, predictions, targets, check_values, weight=weight, sample_weight=sample_weight,
                     mask=mask, covariance=covariance, scale_tril=scale_tril, precision=precision, var=var,
                     params=params, normalizer=normalizer, axis_name=axis_name)


@dataclasses.dataclass(frozen=True, init=False)
class Loss:
    """A spec compiled into a pure JAX function ``f(predictions, targets=None, *,
    weight=None, sample_weight=None, mask=None, var=None)``.

    Immutable and hashable (equal when the specs and the matrices are), so it can be a static
    argument of a jitted function. A ``covariance``, ``scale_tril`` or ``precision`` given
    here must be concrete: it is validated and factored once, on the host in float64
    (``matrix``, which pickles with the loss), and applied per call as a constant of the
    program. A trainable ``scale_tril`` (a pytree leaf) is passed at call time instead.

    >>> import jax.numpy as jnp
    >>> from mse_adapters import preset
    >>> f = Loss(preset("mse"), covariance=jnp.array([[4.0, 0.0], [0.0, 1.0]]))
    >>> f.spec
    LossSpec(penalty='square', transform='whiten')
    >>> float(f(jnp.ones((1, 2)), jnp.zeros((1, 2))))
    0.625
    """

    spec: LossSpec
    check_values: CheckValues = True
    matrix: HostMatrix | None = None

    def __init__(self, spec: LossSpec, check_values: CheckValues = True, *, covariance: OptArray = None,
                 scale_tril: OptArray = None, precision: OptArray = None) -> None:
        if not isinstance(spec, LossSpec):
            raise TypeError(f"spec must be a LossSpec, got {type(spec).__name__}")
        _check_flag(check_values)
        name, m = pick_matrix(covariance, scale_tril, precision)
        matrix = None
        if name is not None:  # (without one, a spec with a transform takes its matrix at call time)
            spec = resolve_spec(spec, name)
            if isinstance(m, jax.core.Tracer):
                raise TypeError(msg.TRACED_AT_COMPILE.format(name=name))
            matrix = HostMatrix.of(_OPS, name, m)
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "check_values", check_values)
        object.__setattr__(self, "matrix", matrix)

    @property
    def reduction(self) -> str:
        return self.spec.reduction

    def __call__(self, predictions: ArrayLike, targets: OptArray = None, *, weight: OptArray = None,
                 sample_weight: OptArray = None, mask: OptArray = None, var: ArrayLike | float | None = None,
                 covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
                 normalizer: OptArray = None, axis_name: Any = None) -> jax.Array:
        return _evaluate(self.spec, self.matrix, predictions, targets, self.check_values, weight=weight,
                         sample_weight=sample_weight, mask=mask, var=var, covariance=covariance,
                         scale_tril=scale_tril, precision=precision, normalizer=normalizer, axis_name=axis_name)

    def normalizer(self, targets: ArrayLike, *, weight: OptArray = None, sample_weight: OptArray = None,
                   mask: OptArray = None, axis_name: Any = None) -> jax.Array:
        """The batch's normalizer for this loss (see :func:`normalizer`)."""
        return normalizer(self.spec, targets, weight=weight, sample_weight=sample_weight, mask=mask,
                          axis_name=axis_name, check_values=self.check_values)


def compile(spec: LossSpec, *, check_values: CheckValues = True, covariance: OptArray = None,  # noqa: A001
            scale_tril: OptArray = None, precision: OptArray = None) -> Loss:
    """Compile a spec into a pure, jit-able function (a hashable :class:`Loss`).

    >>> import jax, jax.numpy as jnp
    >>> from mse_adapters import preset
    >>> f = jax.jit(compile(preset("huber", delta=0.5)))
    >>> float(f(jnp.array([2.5, 0.0, 2.0, 8.0]), jnp.array([3.0, -0.5, 2.0, 7.0])))
    0.15625
    """
    return Loss(spec, check_values, covariance=covariance, scale_tril=scale_tril, precision=precision)


# ---------------------------------------------------------------------------------------
# The presets: bindings of the preset table's rows (Optax's argument order)
# ---------------------------------------------------------------------------------------

_OPTIONS = ("Options every loss shares (``weight``, ``sample_weight``, ``mask``, ``missing``, ``reduction``, "
            "``check_values``, the matrices): see :mod:`mse_adapters.jax`.")
_CALL = ("predictions", "targets", "weight", "sample_weight", "mask", "check_values", "covariance", "scale_tril",
         "precision", "normalizer", "axis_name")


def _bind(name: str, args: dict[str, Any]) -> jax.Array:
    fields, params = split_params({k: v for k, v in args.items() if k not in _CALL})
    if not isinstance(fields.get("multioutput", ""), str):
        fields["multioutput"] = tuple(float(v) for v in fields["multioutput"])
    return _evaluate(preset(name, **fields), None, args["predictions"], args["targets"], args["check_values"],
                     params=params, **{k: args.get(k) for k in _CALL[2:] if k != "check_values"})


def _doc(name: str) -> Callable[[F], F]:
    return documented(name, "jax", _OPTIONS)


# <generated: the preset table's bindings; `python -m mse_adapters._bindings` rewrites this region>


@_doc("mse")
def mse(predictions: ArrayLike, targets: OptArray = None, *, reduction: str = "mean",
        multioutput: Multioutput = "pooled", unit_norm: float = 0.0, missing: str | None = None,
        weight: OptArray = None, sample_weight: OptArray = None, mask: OptArray = None,
        check_values: CheckValues = True, covariance: OptArray = None, scale_tril: OptArray = None,
        precision: OptArray = None, normalizer: OptArray = None, axis_name: Any = None) -> jax.Array:
    return _bind("mse", locals())


@_doc("mae")
def mae(predictions: ArrayLike, targets: OptArray = None, *, reduction: str = "mean",
        multioutput: Multioutput = "pooled", missing: str | None = None, weight: OptArray = None,
        sample_weight: OptArray = None, mask: OptArray = None, check_values: CheckValues = True,
        covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
        normalizer: OptArray = None, axis_name: Any = None) -> jax.Array:
    return _bind("mae", locals())


@_doc("rmse")
def rmse(predictions: ArrayLike, targets: OptArray = None, *, reduction: str = "mean",
         multioutput: Multioutput = "pooled", missing: str | None = None, weight: OptArray = None,
         sample_weight: OptArray = None, mask: OptArray = None, check_values: CheckValues = True,
         covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
         normalizer: OptArray = None, axis_name: Any = None) -> jax.Array:
    return _bind("rmse", locals())


@_doc("huber")
def huber(predictions: ArrayLike, targets: OptArray = None, *, reduction: str = "mean", delta: float | ArrayLike = 1.0,
          missing: str | None = None, weight: OptArray = None, sample_weight: OptArray = None, mask: OptArray = None,
          check_values: CheckValues = True, covariance: OptArray = None, scale_tril: OptArray = None,
          precision: OptArray = None, normalizer: OptArray = None, axis_name: Any = None) -> jax.Array:
    return _bind("huber", locals())


@_doc("smooth_l1")
def smooth_l1(predictions: ArrayLike, targets: OptArray = None, *, reduction: str = "mean",
              beta: float | ArrayLike = 1.0, missing: str | None = None, weight: OptArray = None,
              sample_weight: OptArray = None, mask: OptArray = None, check_values: CheckValues = True,
              covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
              normalizer: OptArray = None, axis_name: Any = None) -> jax.Array:
    return _bind("smooth_l1", locals())


@_doc("log_cosh")
def log_cosh(predictions: ArrayLike, targets: OptArray = None, *, reduction: str = "mean", missing: str | None = None,
             weight: OptArray = None, sample_weight: OptArray = None, mask: OptArray = None,
             check_values: CheckValues = True, covariance: OptArray = None, scale_tril: OptArray = None,
             precision: OptArray = None, normalizer: OptArray = None, axis_name: Any = None) -> jax.Array:
    return _bind("log_cosh", locals())


@_doc("expectile")
def expectile(predictions: ArrayLike, targets: OptArray = None, *, reduction: str = "mean",
              tau: float | ArrayLike = 0.5, missing: str | None = None, weight: OptArray = None,
              sample_weight: OptArray = None, mask: OptArray = None, check_values: CheckValues = True,
              covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
              normalizer: OptArray = None, axis_name: Any = None) -> jax.Array:
    return _bind("expectile", locals())


@_doc("pseudo_huber")
def pseudo_huber(predictions: ArrayLike, targets: OptArray = None, *, reduction: str = "mean",
                 delta: float | ArrayLike = 1.0, missing: str | None = None, weight: OptArray = None,
                 sample_weight: OptArray = None, mask: OptArray = None, check_values: CheckValues = True,
                 covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
                 normalizer: OptArray = None, axis_name: Any = None) -> jax.Array:
    return _bind("pseudo_huber", locals())


@_doc("quantile")
def quantile(predictions: ArrayLike, targets: OptArray = None, *, reduction: str = "mean", tau: float | ArrayLike = 0.5,
             missing: str | None = None, weight: OptArray = None, sample_weight: OptArray = None, mask: OptArray = None,
             check_values: CheckValues = True, covariance: OptArray = None, scale_tril: OptArray = None,
             precision: OptArray = None, normalizer: OptArray = None, axis_name: Any = None) -> jax.Array:
    return _bind("quantile", locals())


@_doc("barron")
def barron(predictions: ArrayLike, targets: OptArray = None, *, reduction: str = "mean", alpha: float | ArrayLike = 1.0,
           scale: float | ArrayLike = 1.0, missing: str | None = None, weight: OptArray = None,
           sample_weight: OptArray = None, mask: OptArray = None, check_values: CheckValues = True,
           covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
           normalizer: OptArray = None, axis_name: Any = None) -> jax.Array:
    return _bind("barron", locals())


@_doc("cauchy")
def cauchy(predictions: ArrayLike, targets: OptArray = None, *, reduction: str = "mean", scale: float | ArrayLike = 1.0,
           missing: str | None = None, weight: OptArray = None, sample_weight: OptArray = None, mask: OptArray = None,
           check_values: CheckValues = True, covariance: OptArray = None, scale_tril: OptArray = None,
           precision: OptArray = None, normalizer: OptArray = None, axis_name: Any = None) -> jax.Array:
    return _bind("cauchy", locals())


@_doc("geman_mcclure")
def geman_mcclure(predictions: ArrayLike, targets: OptArray = None, *, reduction: str = "mean",
                  scale: float | ArrayLike = 1.0, missing: str | None = None, weight: OptArray = None,
                  sample_weight: OptArray = None, mask: OptArray = None, check_values: CheckValues = True,
                  covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None,
                  normalizer: OptArray = None, axis_name: Any = None) -> jax.Array:
    return _bind("geman_mcclure", locals())


@_doc("welsch")
def welsch(predictions: ArrayLike, targets: OptArray = None, *, reduction: str = "mean", scale: float | ArrayLike = 1.0,
           missing: str | None = None, weight: OptArray = None, sample_weight: OptArray = None, mask: OptArray = None,
           check_values: CheckValues = True, covariance: OptArray = None, scale_tril: OptArray = None,
           precision: OptArray = None, normalizer: OptArray = None, axis_name: Any = None) -> jax.Array:
    return _bind("welsch", locals())


@_doc("nmse")
def nmse(predictions: ArrayLike, targets: OptArray = None, *, multioutput: Multioutput = "uniform_average",
         force_finite: bool = True, missing: str | None = None, weight: OptArray = None, sample_weight: OptArray = None,
         mask: OptArray = None, check_values: CheckValues = True, normalizer: OptArray = None,
         axis_name: Any = None) -> jax.Array:
    return _bind("nmse", locals())


@_doc("r2")
def r2(predictions: ArrayLike, targets: OptArray = None, *, multioutput: Multioutput = "uniform_average",
       force_finite: bool = True, missing: str | None = None, weight: OptArray = None, sample_weight: OptArray = None,
       mask: OptArray = None, check_values: CheckValues = True, normalizer: OptArray = None,
       axis_name: Any = None) -> jax.Array:
    return _bind("r2", locals())


# </generated>


# -- elementwise helpers named as Optax's (reduction "none"), with weights and masks -------


def squared_error(predictions: ArrayLike, targets: OptArray = None, *, weight: OptArray = None,
                  sample_weight: OptArray = None, mask: OptArray = None, missing: str | None = None,
                  check_values: CheckValues = True) -> jax.Array:
    """Elementwise (predictions - targets)**2, as ``optax.squared_error``; weighted, and
    exactly 0 where masked or missing. Half-precision inputs give float32."""
    return mse(predictions, targets, weight=weight, sample_weight=sample_weight, mask=mask, missing=missing,
               reduction="none", check_values=check_values)


def absolute_error(predictions: ArrayLike, targets: OptArray = None, *, weight: OptArray = None,
                   sample_weight: OptArray = None, mask: OptArray = None, missing: str | None = None,
                   check_values: CheckValues = True) -> jax.Array:
    """Elementwise |predictions - targets| (gradient 0 at 0); weighted, 0 where masked."""
    return mae(predictions, targets, weight=weight, sample_weight=sample_weight, mask=mask, missing=missing,
               reduction="none", check_values=check_values)


def l2_loss(predictions: ArrayLike, targets: OptArray = None, *, weight: OptArray = None,
            sample_weight: OptArray = None, mask: OptArray = None, missing: str | None = None,
            check_values: CheckValues = True) -> jax.Array:
    """Elementwise 0.5 (predictions - targets)**2, as ``optax.l2_loss``."""
    return 0.5 * squared_error(predictions, targets, weight=weight, sample_weight=sample_weight, mask=mask,
                               missing=missing, check_values=check_values)


def huber_loss(predictions: ArrayLike, targets: OptArray = None, *, delta: float = 1.0, weight: OptArray = None,
               sample_weight: OptArray = None, mask: OptArray = None, missing: str | None = None,
               check_values: CheckValues = True) -> jax.Array:
    """Elementwise Huber loss, as ``optax.huber_loss`` (but no silent broadcasting)."""
    return huber(predictions, targets, delta=delta, weight=weight, sample_weight=sample_weight, mask=mask,
                 missing=missing, reduction="none", check_values=check_values)


# -- Gaussian likelihoods -----------------------------------------------------------------


def gaussian_nll(predictions: ArrayLike, targets: OptArray, var: ArrayLike | float, *, full: bool = False,
                 eps: float = 1e-6, reduction: str = "mean", weight: OptArray = None, sample_weight: OptArray = None,
                 mask: OptArray = None, missing: str | None = None, check_values: CheckValues = True,
                 normalizer: OptArray = None, axis_name: Any = None) -> jax.Array:
    """Heteroscedastic Gaussian negative log-likelihood with a predicted variance ``var``:
    ``0.5 * (log v + (predictions - targets)**2 / v)`` with ``v = max(var, eps)``, plus
    ``0.5 * log(2 pi)`` with ``full``; equal to ``torch.nn.GaussianNLLLoss`` in value and
    gradient (the clamp passes the gradient through as the identity), with its variance
    shapes and errors. ``var`` may be traced (a network's output) or a Python float.

    >>> import jax, jax.numpy as jnp
    >>> p, t, v = jnp.array([1.0, 2.0]), jnp.zeros(2), jnp.array([2.0, 4.0])
    >>> round(float(gaussian_nll(p, t, v)), 5)
    0.89486
    >>> [round(float(g), 5) for g in jax.grad(gaussian_nll, argnums=2)(p, t, v)]
    [0.0625, 0.0]
    """
    spec = LossSpec(penalty="gaussian_nll", full=full, eps=eps, reduction=reduction, missing=missing)
    return _evaluate(spec, None, predictions, targets, check_values, weight=weight, sample_weight=sample_weight,
                     mask=mask, var=var, normalizer=normalizer, axis_name=axis_name)


def multivariate_gaussian_nll(predictions: ArrayLike, targets: OptArray = None, *, covariance: OptArray = None,
                              scale_tril: OptArray = None, full: bool = True, reduction: str = "mean",
                              weight: OptArray = None, sample_weight: OptArray = None, mask: OptArray = None,
                              missing: str | None = None, check_values: CheckValues = True,
                              normalizer: OptArray = None, axis_name: Any = None) -> jax.Array:
    """Full-covariance Gaussian negative log-likelihood, one value per sample (the last axis
    is the event): ``0.5 * |L^-1 r|**2 + sum(log diag L) + d/2 log(2 pi)``, i.e.
    ``-jax.scipy.stats.multivariate_normal.logpdf(targets, predictions, covariance)``, then
    reduced over samples. A traced ``scale_tril`` (a pytree leaf, or a network's per-sample
    ``(B, d, d)`` output) gets its gradient. ``full=False`` drops the constant.

    >>> import jax.numpy as jnp
    >>> from jax.scipy.stats import multivariate_normal
    >>> p, t, cov = jnp.array([[1.0, 0.0]]), jnp.zeros((1, 2)), jnp.array([[2.0, 0.0], [0.0, 1.0]])
    >>> round(float(multivariate_gaussian_nll(p, t, covariance=cov)), 5)
    2.43445
    >>> round(float(-multivariate_normal.logpdf(t, p, cov)[0]), 5)
    2.43445
    """
    spec = LossSpec(penalty="gaussian_nll", transform="whiten", full=full, reduction=reduction, missing=missing)
    return _evaluate(spec, None, predictions, targets, check_values, weight=weight, sample_weight=sample_weight,
                     mask=mask, covariance=covariance, scale_tril=scale_tril, normalizer=normalizer,
                     axis_name=axis_name)


# Diagnostics and derivative penalties (written once in mse_adapters/_diagnostics.py).
from .._diagnostics import bind as _bind_diagnostics  # noqa: E402

bias_variance, contributions, derivative, derivative_penalty = _bind_diagnostics(
    _OPS, prepare, jvp=lambda f, x, v: jax.jvp(f, (x,), (v,)), loss=mse)
__all__ += ["bias_variance", "contributions", "derivative", "derivative_penalty"]
