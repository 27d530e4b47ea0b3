"""JAX / Optax adapter: pure, jit-able loss functions in Optax's style.

Argument order follows Optax, ``loss(predictions, targets)``, and ``targets=None`` means
zeros, as in Optax. Unlike Optax's regression losses, these reduce (default
``reduction="mean"``, so ``mse(p, t)`` equals ``optax.squared_error(p, t).mean()``), and
take weights, masks and missing targets:

- ``weight``: broadcastable to ``predictions`` by NumPy (trailing) rules: per element, per
  output (shape ``(d,)``), visibility maps;
- ``sample_weight``: aligned with the LEADING axes of ``predictions`` (``(B,)``, ``(B, T)``);
- ``mask``: boolean (or 0/1), broadcastable like ``weight``; a masked element contributes
  nothing to the value, the gradient or the normaliser, even where its target is NaN
  (optax#902 asks Optax for this);
- ``missing="nan"``: NaN targets are masked;
- ``reduction``: ``"none"`` (elementwise values, as Optax returns them; masked elements are
  exactly 0), ``"sum"``, ``"mean"`` (the weighted mean sum(w m l) / sum(w m)),
  ``"sum_over_batch_size"``, ``"per_sample"`` (shape ``(B,)``), ``"per_output"`` (shape
  ``(d,)``). A zero normaliser (all weights zero, everything masked, an empty batch) gives
  0 with a zero gradient, never NaN.

Everything is a pure function of arrays: it works under ``jax.jit``, ``jax.grad`` /
``jax.value_and_grad``, ``jax.vmap`` (per-example losses) and ``jax.checkpoint``. The loss
specification, ``reduction``, ``missing``, ``multioutput`` and the penalty parameters
(``delta``, ``beta``, ``tau``) are static Python values (a :class:`~mse_adapters.LossSpec`
is hashable, so ``jax.jit(loss, static_argnums=0)`` works); ``weight``,
``sample_weight`` and ``mask`` may be traced arrays. Nothing branches on array values, so a
jitted function traces once per input shape and dtype.

Validation. Shape, dtype and parameter checks always run (at trace time, they cost
nothing). Value checks of weights and masks (negative or non-finite weights, masks that are
not 0/1) run on concrete arrays, i.e. eagerly (also under an eager ``jax.grad``), and on
constants closed over by a jitted function (checked while tracing); where the arrays are
abstract (arguments inside ``jax.jit``, ``jax.vmap``, ``jax.checkpoint``, ``lax.scan``)
they cannot raise and are skipped: the loss is computed as with ``check_values=False``.
``check_values=False`` turns them off eagerly too (each one is a host sync).
``check_values="checkify"`` emits them as
:func:`jax.experimental.checkify.check` calls instead, which work under ``jax.jit`` when the
function is wrapped in :func:`jax.experimental.checkify.checkify` (the error is then
returned, and raised by ``err.throw()``, with the same message as the eager ``ValueError``).

Dtypes. Integer (and boolean) inputs are promoted to JAX's default float (float32, or
float64 with ``jax_enable_x64``); float16 and bfloat16 are computed and accumulated in
float32 and the loss is returned in float32 (Optax returns them in half precision, where
e**2 overflows); gradients come back in the inputs' dtype; float64 stays float64.

Inputs are JAX arrays or array-likes (``jax.typing.ArrayLike``: NumPy arrays and scalars,
Python scalars; also lists). A torch or TensorFlow tensor is a ``TypeError`` naming the
argument: convert it explicitly (``mse_adapters.torch`` is the torch adapter).

Structured outputs (DESIGN §4). ``covariance`` (SPD, ``(d, d)`` or one per sample
``(..., d, d)``), ``scale_tril`` (its Cholesky factor) or ``precision`` (a PSD cost matrix,
possibly singular) act on the last axis; give at most one, to :func:`compile` (factored
once) or at call time. A covariance whitens the residual, ``z = L^-1 r`` with
``Sigma = L L^T``, before any penalty (generalised least squares; a Huber on ``z`` is a
robust GLS); a precision is the quadratic form ``r^T P r`` (square penalty only). The
identity gives exactly the plain loss. A CONCRETE matrix (NumPy, a list, a JAX array, or
one closed over by a jitted function) is validated and factored on the host in float64 and
applied in the compute dtype, as a product with the float64-formed ``L^-1`` (measured
1.0-3.7x faster than a triangular solve on XLA:CPU at d = 8 to 256; ``_jax_whiten.WHITEN_BY``
selects the solve); both keep float64's accuracy at cond(Sigma) = 1e6 in float32
(the float32 inverse loses three digits). ``compile(spec, covariance=S)`` factors it once,
the functional forms cache the factor by content. A TRACED matrix (an argument of a jitted
function, or a pytree leaf differentiated by ``jax.grad``: a trainable ``scale_tril``) is
used in the compute dtype: ``scale_tril`` by a triangular solve, so that its gradient
flows; a covariance is factored by ``jnp.linalg.cholesky`` per call. Its values are checked where they are concrete
(eagerly, with the errors of a constant matrix); inside ``jax.jit`` they cannot be (a
non-positive-definite traced covariance gives NaN), except as checkify checks
(``check_values="checkify"``). A mask (or NaN targets) must keep or drop whole samples
when whitening: a partly observed sample is a ValueError eagerly, a checkify error with
``"checkify"``, and is dropped whole under ``jax.jit``. :func:`gaussian_nll` (a predicted
variance ``var``, as ``torch.nn.GaussianNLLLoss``) and :func:`multivariate_gaussian_nll`
(``-jax.scipy.stats.multivariate_normal.logpdf``) are the Gaussian likelihoods;
``unit_norm=lambda`` (a spec field, and an argument of :func:`mse`) adds
``lambda * (|predictions|**2 - 1)**2`` over the last axis.

Differences from Optax, on purpose: ``predictions`` and ``targets`` must have the same
shape for every loss (Optax's ``huber_loss`` and ``log_cosh`` broadcast ``(B, 1)`` against
``(B,)`` silently); the mean of an empty batch is 0, not NaN; integer predictions are
promoted instead of rejected.

>>> import jax.numpy as jnp
>>> from mse_adapters import jax as mjax
>>> p, t = jnp.array([2.5, 0.0, 2.0, 8.0]), jnp.array([3.0, -0.5, 2.0, 7.0])
>>> float(mjax.mse(p, t))
0.375
>>> round(float(mjax.mse(p, t, mask=jnp.array([True, True, True, False]))), 6)
0.166667
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify as _checkify
from jax.typing import ArrayLike

from . import _core, _whiten
from . import _jax_whiten as _jw
from ._core import ArgNames, Ops
from ._spec import LossSpec, preset

__all__ = [
    "mse",
    "mae",
    "rmse",
    "huber",
    "smooth_l1",
    "log_cosh",
    "expectile",
    "nmse",
    "r2",
    "squared_error",
    "absolute_error",
    "l2_loss",
    "huber_loss",
    "gaussian_nll",
    "multivariate_gaussian_nll",
    "Loss",
    "compile",
    "loss",
    "JaxOps",
]

NAMES = ArgNames(pred="predictions", target="targets")
Multioutput = str | Sequence[float]
CheckValues = bool | Literal["checkify"]
OptArray = ArrayLike | None


class JaxOps(Ops):
    """The pipeline's operations in ``jax.numpy``."""

    name = "jax"

    def shape(self, x: Any) -> tuple[int, ...]:
        return tuple(jnp.shape(x))

    def is_tracing(self, x: Any) -> bool:
        # A tracer with a concrete value (an eager jax.grad) can still be checked; one
        # without (jit, vmap, checkpoint, scan) cannot.
        if not isinstance(x, jax.core.Tracer):
            return False
        try:
            return x.to_concrete_value() is None
        except Exception:  # pragma: no cover - a tracer type without the method
            return True

    def where(self, cond: Any, x: Any, y: Any) -> Any:
        return jnp.where(cond, x, y)

    def abs(self, x: Any) -> Any:
        return _abs(x)

    def minimum(self, x: Any, c: float) -> Any:
        return jnp.minimum(x, c)  # derivative 1/2 at a tie, as the reference

    def softplus(self, x: Any) -> Any:
        return jnp.logaddexp(x, 0.0)  # exact for every x, a stable derivative

    def sqrt(self, x: Any) -> Any:
        return jnp.sqrt(x)

    def isnan(self, x: Any) -> Any:
        return jnp.isnan(x)

    def isfinite(self, x: Any) -> Any:
        return jnp.isfinite(x)

    def logical_and(self, a: Any, b: Any) -> Any:
        return jnp.logical_and(a, b)

    def logical_or(self, a: Any, b: Any) -> Any:
        return jnp.logical_or(a, b)

    def is_bool(self, x: Any) -> bool:
        return bool(jnp.result_type(x) == jnp.bool_)

    def all(self, x: Any) -> bool:
        return bool(jnp.all(_concrete(x)))

    def concrete(self) -> Any:
        return jax.ensure_compile_time_eval()  # a constant's checks run at trace time under jit

    def finite_and_nonnegative(self, x: Any) -> tuple[bool, bool]:
        # one fused kernel and one host sync, on the value (not through an eager grad trace)
        finite, nonnegative = np.asarray(_finite_and_nonnegative(_concrete(x)))
        return bool(finite), bool(nonnegative)

    def to_float(self, x: Any, like: Any) -> Any:
        return jnp.asarray(x).astype(jnp.result_type(like))

    def count_true(self, x: Any, like: Any, axis: tuple[int, ...] | None = None) -> Any:
        # Through bfloat16 (exact for 0 and 1; summed in like's dtype): XLA:CPU does not fuse
        # the conversion of a boolean into a reduction and materialises it, and a 2-byte
        # array costs half the memory traffic of a 4-byte one (measured at 1e7 elements,
        # one thread: 3 ms against 20 ms, where a 40 MB buffer is fresh pages every call).
        if axis is not None and not axis:
            return self.to_float(x, like)
        return jnp.sum(jnp.asarray(x).astype(jnp.bfloat16), axis=axis, dtype=jnp.result_type(like))

    def reshape(self, x: Any, shape: tuple[int, ...]) -> Any:
        return jnp.reshape(x, shape)

    def broadcast_to(self, x: Any, shape: tuple[int, ...]) -> Any:
        return jnp.broadcast_to(x, shape)

    def sum(self, x: Any, axis: tuple[int, ...] | None = None) -> Any:
        if axis is not None and not axis:
            return x
        return jnp.sum(x, axis=axis)  # XLA's reduction: pairwise-accurate on CPU

    def eps(self, like: Any) -> float:
        return float(jnp.finfo(jnp.result_type(like)).eps)

    def constant(self, values: list[float], like: Any) -> Any:
        return jnp.asarray(values, dtype=jnp.result_type(like))

    # -- the transform stage and the Gaussian likelihoods (DESIGN §4) --------------------

    def matvec(self, m: Any, x: Any) -> Any:
        return _jw.matvec(m, x)

    def solve_tril(self, lower: Any, x: Any) -> Any:
        return _jw.solve_tril(lower, x)

    def log(self, x: Any) -> Any:
        return jnp.log(x)

    def diagonal(self, m: Any) -> Any:
        return jnp.diagonal(m, axis1=-2, axis2=-1)

    def clamp_min_nograd(self, x: Any, lo: float) -> Any:
        return _jw.clamp_min_nograd(x, lo)


@jax.custom_jvp
def _abs(x: Any) -> Any:
    """|x| with derivative sign(x): 0 at 0. jnp.abs has derivative 1 there (lax.abs' rule is
    select(x >= 0, t, -t)); the contract needs 0. A custom rule costs what jnp.abs costs
    (x * sign(x), also exact, took 1.5x jnp.abs' time in a jitted value_and_grad at 1e7)."""
    return jnp.abs(x)


@_abs.defjvp
def _abs_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> tuple[Any, Any]:
    (x,), (dx,) = primals, tangents
    return jnp.abs(x), jnp.sign(x) * dx  # sign is differentiable (derivative 0): grad of grad works


_OPS = JaxOps()

# ---------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------

_ARRAY_LIKES = (bool, int, float, np.ndarray, np.generic, list, tuple)


def _concrete(x: Any) -> Any:
    """The value of an array, or of a tracer that has one (eager ``jax.grad``)."""
    return x.to_concrete_value() if isinstance(x, jax.core.Tracer) else x


@jax.jit
def _finite_and_nonnegative(x: jax.Array) -> jax.Array:
    return jnp.stack([jnp.all(jnp.isfinite(x)), jnp.all(x >= 0)])


def _check_dtype(name: str, dt: Any) -> None:
    dt = np.dtype(dt)
    if dt.kind not in "biuf" and not jnp.issubdtype(dt, jnp.floating):  # bfloat16 is kind "V"
        raise _core.dtype_error(name, str(dt))


def _array(name: str, x: Any) -> jax.Array:
    """``x`` as a JAX array; array-likes are converted, other frameworks' tensors refused.
    Dtype errors name the dtype the caller passed (before JAX canonicalises it)."""
    if isinstance(x, jax.Array):  # also a tracer
        _check_dtype(name, x.dtype)
        return x
    _core.check_not_foreign(name, x, "jax")
    if hasattr(x, "__jax_array__"):
        a = jnp.asarray(x)
        _check_dtype(name, a.dtype)
        return a
    if not isinstance(x, _ARRAY_LIKES):
        raise TypeError(
            f"{name} must be a JAX array or an array-like (NumPy array, Python scalar or list), "
            f"got {type(x).__module__}.{type(x).__qualname__}"
        )
    if isinstance(x, (bool, int, float)):
        return jnp.asarray(x)  # weakly typed, as JAX treats Python scalars
    n = np.asarray(x)
    _check_dtype(name, n.dtype)
    return jnp.asarray(n)


def _compute_dtype(pred: jax.Array, target: jax.Array) -> Any:
    """The dtype the pipeline runs in (DESIGN §3): the promoted float of pred and target,
    float32 for half types, the default float for integers and booleans."""
    dt = jnp.result_type(pred, target)
    if not jnp.issubdtype(dt, jnp.floating):
        return jax.dtypes.canonicalize_dtype(jnp.float64)  # float32, float64 with x64
    if jnp.finfo(dt).bits < 32:
        return jnp.dtype(jnp.float32)
    return dt


def _cast(x: jax.Array, dt: Any) -> jax.Array:
    return x if x.dtype == dt else x.astype(dt)


def _prepare(
    spec: LossSpec,
    predictions: Any,
    targets: Any,
    weight: Any,
    sample_weight: Any,
    mask: Any,
) -> tuple[jax.Array, jax.Array, jax.Array | None, jax.Array | None, jax.Array | None]:
    pred = _array(NAMES.pred, predictions)
    target = jnp.zeros_like(pred) if targets is None else _array(NAMES.target, targets)
    if spec.missing is not None and targets is not None:  # (None: zeros, nothing missing)
        tdt = np.dtype(targets.dtype if hasattr(targets, "dtype") else np.asarray(targets).dtype)
        _core.check_missing_dtype(spec, NAMES, jnp.issubdtype(tdt, jnp.floating), str(tdt))
    dt = _compute_dtype(pred, target)
    pred = _cast(pred, dt)
    target = _cast(target, dt)
    w = None if weight is None else _cast(_array(NAMES.weight, weight), dt)
    sw = None if sample_weight is None else _cast(_array(NAMES.sample_weight, sample_weight), dt)
    m = None if mask is None else _array(NAMES.mask, mask)
    return pred, target, w, sw, m


def _checkify_values(w: jax.Array | None, sw: jax.Array | None, m: jax.Array | None) -> None:
    """The eager value checks as checkify checks (same messages as _core's ValueErrors)."""
    for name, x in ((NAMES.weight, w), (NAMES.sample_weight, sw)):
        if x is not None:
            _checkify.check(jnp.all(jnp.isfinite(x)), f"{name} must be finite; it contains NaN or inf")
            _checkify.check(jnp.all(x >= 0), f"{name} must be non-negative; it contains negative values")
    if m is not None and not _OPS.is_bool(m):
        _checkify.check(
            jnp.all((m == 0) | (m == 1)),
            f"{NAMES.mask} must be boolean, or numeric with only 0 and 1; it contains other values",
        )


def _check_flag(check_values: Any) -> None:
    if check_values not in (True, False, "checkify"):
        raise ValueError(f"check_values must be True, False or 'checkify', got {check_values!r}")


def _evaluate(
    spec: Any,
    fixed: _jw.HostMatrix | None,
    predictions: Any,
    targets: Any,
    weight: Any,
    sample_weight: Any,
    mask: Any,
    check_values: Any,
    covariance: Any = None,
    scale_tril: Any = None,
    precision: Any = None,
    var: Any = None,
) -> jax.Array:
    if not isinstance(spec, LossSpec):
        raise TypeError(f"spec must be a LossSpec, got {type(spec).__name__}")
    _check_flag(check_values)
    pred, target, w, sw, m = _prepare(spec, predictions, targets, weight, sample_weight, mask)
    if check_values == "checkify":
        _checkify_values(w, sw, m)
    if fixed is None and not _jw.is_structured(spec, covariance, scale_tril, precision, var):
        return _core.run(_OPS, spec, pred, target, weight=w, sample_weight=sw, mask=m, names=NAMES,
                         check_values=check_values is True)
    spec, whitening = _jw.prepare(spec, pred, fixed, covariance, scale_tril, precision, check_values)
    v = _jw.prepare_var(var, pred, _array)
    out = _core.run(_OPS, spec, pred, target, weight=w, sample_weight=sw, mask=m, names=NAMES,
                    check_values=check_values is True, whitening=whitening, var=v)
    if check_values == "checkify":
        mb = None if m is None else m if _OPS.is_bool(m) else m != 0
        _jw.checkify_structured(spec, NAMES, target, mb, v, tuple(pred.shape))
    return out


def loss(
    spec: LossSpec,
    predictions: ArrayLike,
    targets: OptArray = None,
    *,
    weight: OptArray = None,
    sample_weight: OptArray = None,
    mask: OptArray = None,
    check_values: CheckValues = True,
    covariance: OptArray = None,
    scale_tril: OptArray = None,
    precision: OptArray = None,
    var: ArrayLike | float | None = None,
) -> jax.Array:
    """Evaluate any spec: a pure function, jit-able with the spec static
    (``jax.jit(loss, static_argnums=0)``).

    ``covariance``, ``scale_tril`` or ``precision`` (at most one; it sets the spec's
    ``transform``) act on the last axis: a concrete one is validated and factored on the host
    in float64 (cached by content), a traced one (a jit argument, or a trainable
    ``scale_tril`` differentiated by ``jax.grad``) is used in the compute dtype. ``var`` is
    the predicted variance of ``penalty="gaussian_nll"``.

    >>> import jax.numpy as jnp
    >>> from mse_adapters import LossSpec
    >>> float(loss(LossSpec(penalty="abs", reduction="sum"), jnp.array([1.0, 2.0]),
    ...            jnp.array([1.5, 0.0])))
    2.5
    >>> float(loss(LossSpec(penalty="huber"), jnp.array([[4.0, 0.0]]), jnp.zeros((1, 2)),
    ...            covariance=jnp.array([[4.0, 0.0], [0.0, 1.0]])))  # a Huber on L^-1 r = (2, 0)
    0.75
    """
    return _evaluate(spec, None, predictions, targets, weight, sample_weight, mask, check_values,
                     covariance, scale_tril, precision, var)


@dataclasses.dataclass(frozen=True, init=False)
class Loss:
    """A spec compiled into a pure JAX function ``f(predictions, targets=None, *,
    weight=None, sample_weight=None, mask=None, var=None)``.

    It is immutable and hashable (equal when the specs, and the matrices, are equal), so it
    can be a static argument of a jitted function, and ``jax.jit(f)`` traces once per input
    shape.

    ``covariance`` (SPD, ``(d, d)`` or one per sample ``(..., d, d)``), ``scale_tril`` or
    ``precision`` (at most one; it sets the spec's ``transform``) must be concrete: each is
    validated and factored here, once, on the host in float64 (``matrix``, which pickles
    with the loss), and applied per call in the compute dtype, as a constant of the program
    under ``jax.jit``. A trainable ``scale_tril`` (a pytree leaf of the parameters) is
    passed at call time instead, ``f(p, t, scale_tril=L)`` (then the loss was compiled
    without a matrix), and differentiated by ``jax.grad``.

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
    matrix: _jw.HostMatrix | None = None

    def __init__(self, spec: LossSpec, check_values: CheckValues = True, *, covariance: OptArray = None,
                 scale_tril: OptArray = None, precision: OptArray = None) -> None:
        if not isinstance(spec, LossSpec):
            raise TypeError(f"spec must be a LossSpec, got {type(spec).__name__}")
        _check_flag(check_values)
        name, m = _whiten.pick_matrix(covariance, scale_tril, precision)
        matrix = None
        if name is not None:  # (without one, a spec with a transform takes its matrix at call time)
            spec = _whiten.resolve_spec(spec, name)
            if isinstance(m, jax.core.Tracer):
                raise TypeError(
                    f"{name} given to compile() is traced (inside jax.jit or jax.grad); the compiled "
                    f"loss factors its matrix once, on the host: pass a traced {name} at call time, "
                    f"f(predictions, targets, {name}=...)"
                )
            matrix = _jw.HostMatrix(name, m)
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "check_values", check_values)
        object.__setattr__(self, "matrix", matrix)

    @property
    def reduction(self) -> str:
        return self.spec.reduction

    def __call__(
        self,
        predictions: ArrayLike,
        targets: OptArray = None,
        *,
        weight: OptArray = None,
        sample_weight: OptArray = None,
        mask: OptArray = None,
        var: ArrayLike | float | None = None,
        covariance: OptArray = None,
        scale_tril: OptArray = None,
        precision: OptArray = None,
    ) -> jax.Array:
        return _evaluate(self.spec, self.matrix, predictions, targets, weight, sample_weight, mask,
                         self.check_values, covariance, scale_tril, precision, var)


def compile(spec: LossSpec, *, check_values: CheckValues = True, covariance: OptArray = None,  # noqa: A001
            scale_tril: OptArray = None, precision: OptArray = None) -> Loss:
    """Compile a spec into a pure, jit-able function (a hashable :class:`Loss`); a concrete
    ``covariance``, ``scale_tril`` or ``precision`` is validated and factored here, once, in
    float64.

    >>> import jax, jax.numpy as jnp
    >>> from mse_adapters import preset
    >>> f = jax.jit(compile(preset("huber", delta=0.5)))
    >>> float(f(jnp.array([2.5, 0.0, 2.0, 8.0]), jnp.array([3.0, -0.5, 2.0, 7.0])))
    0.15625
    """
    return Loss(spec, check_values, covariance=covariance, scale_tril=scale_tril, precision=precision)


# ---------------------------------------------------------------------------------------
# One function per preset, Optax's argument order.
# ---------------------------------------------------------------------------------------


def _mo(multioutput: Multioutput) -> str | tuple[float, ...]:
    return multioutput if isinstance(multioutput, str) else tuple(float(v) for v in multioutput)


def _call(name: str, predictions: Any, targets: Any, weight: Any, sample_weight: Any, mask: Any,
          check_values: CheckValues, covariance: Any = None, scale_tril: Any = None, precision: Any = None,
          **fields: Any) -> jax.Array:
    return loss(preset(name, **fields), predictions, targets, weight=weight,
                sample_weight=sample_weight, mask=mask, check_values=check_values,
                covariance=covariance, scale_tril=scale_tril, precision=precision)


def mse(predictions: ArrayLike, targets: OptArray = None, *, weight: OptArray = None, sample_weight: OptArray = None,
        mask: OptArray = None, missing: str | None = None, reduction: str = "mean",
        multioutput: Multioutput = "pooled", check_values: CheckValues = True, covariance: OptArray = None,
        scale_tril: OptArray = None, precision: OptArray = None, unit_norm: float = 0.0) -> jax.Array:
    """Mean squared error; the default equals ``optax.squared_error(p, t).mean()`` (and
    ``2 * optax.l2_loss(p, t).mean()``).

    With a ``covariance`` (or its Cholesky factor ``scale_tril``) it is the generalised least
    squares loss, the mean of the squared whitened residuals ``L^-1 r``; with a
    ``precision`` (cost) matrix P it is the quadratic form ``r^T P r`` per sample, divided
    like the plain MSE (the identity gives the plain MSE); ``unit_norm`` adds
    ``lambda * (|predictions|**2 - 1)**2`` over the last axis.

    >>> import jax.numpy as jnp
    >>> float(mse(jnp.array([1.0, 2.0, 3.0]), jnp.array([1.0, 0.0, 0.0]),
    ...           weight=jnp.array([1.0, 1.0, 0.0])))
    2.0
    >>> float(mse(jnp.ones((1, 2)), jnp.zeros((1, 2)), covariance=jnp.array([[4.0, 0.0], [0.0, 1.0]])))
    0.625
    >>> float(mse(jnp.ones((1, 2)), jnp.zeros((1, 2)), precision=jnp.array([[1.0, 1.0], [1.0, 1.0]])))
    2.0
    """
    spec = preset("mse", missing=missing, reduction=reduction, multioutput=_mo(multioutput), unit_norm=unit_norm)
    return _evaluate(spec, None, predictions, targets, weight, sample_weight, mask, check_values,
                     covariance, scale_tril, precision)


def mae(predictions: ArrayLike, targets: OptArray = None, *, weight: OptArray = None, sample_weight: OptArray = None,
        mask: OptArray = None, missing: str | None = None, reduction: str = "mean",
        multioutput: Multioutput = "pooled", check_values: CheckValues = True,
        covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None) -> jax.Array:
    """Mean absolute error (d|r|/dr = 0 at r = 0, although ``jnp.abs`` gives 1 there).

    A ``covariance`` or ``scale_tril`` whitens the residual first (the penalty acts on
    ``L^-1 r``, as in :func:`mse`); a ``precision`` goes with the square penalty only (else a
    ValueError).
    """
    return _call("mae", predictions, targets, weight, sample_weight, mask, check_values,
                 covariance, scale_tril, precision,
                 missing=missing, reduction=reduction, multioutput=_mo(multioutput))


def rmse(predictions: ArrayLike, targets: OptArray = None, *, weight: OptArray = None, sample_weight: OptArray = None,
         mask: OptArray = None, missing: str | None = None, reduction: str = "mean",
         multioutput: Multioutput = "pooled", check_values: CheckValues = True,
         covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None) -> jax.Array:
    """Root mean squared error. Default: pooled, the square root of the weighted mean over
    every element (as torchmetrics and Keras' metric); ``multioutput`` takes scikit-learn's
    ``"raw_values"``, ``"uniform_average"`` or a weight vector. The gradient at a perfect
    fit is 0, not NaN.

    A ``covariance`` or ``scale_tril`` whitens the residual first; a ``precision`` P makes the
    mean square the quadratic form ``r^T P r``, as in :func:`mse`.
    """
    return _call("rmse", predictions, targets, weight, sample_weight, mask, check_values,
                 covariance, scale_tril, precision,
                 missing=missing, reduction=reduction, multioutput=_mo(multioutput))


def huber(predictions: ArrayLike, targets: OptArray = None, *, delta: float = 1.0, weight: OptArray = None,
          sample_weight: OptArray = None, mask: OptArray = None, missing: str | None = None,
          reduction: str = "mean", check_values: CheckValues = True,
          covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None) -> jax.Array:
    """Huber loss, 0.5 r**2 for |r| <= delta, else delta (|r| - delta / 2); the default
    equals ``optax.huber_loss(p, t, delta=delta).mean()``.

    A ``covariance`` or ``scale_tril`` whitens the residual first (the penalty acts on
    ``L^-1 r``, as in :func:`mse`); a ``precision`` goes with the square penalty only (else a
    ValueError).
    """
    return _call("huber", predictions, targets, weight, sample_weight, mask, check_values,
                 covariance, scale_tril, precision,
                 delta=delta, missing=missing, reduction=reduction)


def smooth_l1(predictions: ArrayLike, targets: OptArray = None, *, beta: float = 1.0, weight: OptArray = None,
              sample_weight: OptArray = None, mask: OptArray = None, missing: str | None = None,
              reduction: str = "mean", check_values: CheckValues = True,
              covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None) -> jax.Array:
    """Smooth L1, 0.5 r**2 / beta for |r| < beta, else |r| - beta / 2 (torch's
    ``SmoothL1Loss``; huber / beta).

    A ``covariance`` or ``scale_tril`` whitens the residual first (the penalty acts on
    ``L^-1 r``, as in :func:`mse`); a ``precision`` goes with the square penalty only (else a
    ValueError).
    """
    return _call("smooth_l1", predictions, targets, weight, sample_weight, mask, check_values,
                 covariance, scale_tril, precision,
                 beta=beta, missing=missing, reduction=reduction)


def log_cosh(predictions: ArrayLike, targets: OptArray = None, *, weight: OptArray = None,
             sample_weight: OptArray = None, mask: OptArray = None, missing: str | None = None,
             reduction: str = "mean", check_values: CheckValues = True,
             covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None) -> jax.Array:
    """log(cosh(r)), computed stably; the default equals ``optax.log_cosh(p, t).mean()``
    and ``reduction="none"`` equals ``optax.log_cosh(p, t)``, to Optax's rounding: below
    |r| = 0.3 the Taylor series is used, where Optax's ``logaddexp(r, -r) - log 2`` cancels
    (all digits lost below |r| ~ 1e-4 in float32); elsewhere the two differ by an ulp.

    A ``covariance`` or ``scale_tril`` whitens the residual first (the penalty acts on
    ``L^-1 r``, as in :func:`mse`); a ``precision`` goes with the square penalty only (else a
    ValueError).
    """
    return _call("log_cosh", predictions, targets, weight, sample_weight, mask, check_values,
                 covariance, scale_tril, precision,
                 missing=missing, reduction=reduction)


def expectile(predictions: ArrayLike, targets: OptArray = None, *, tau: float = 0.5, weight: OptArray = None,
              sample_weight: OptArray = None, mask: OptArray = None, missing: str | None = None,
              reduction: str = "mean", check_values: CheckValues = True,
              covariance: OptArray = None, scale_tril: OptArray = None, precision: OptArray = None) -> jax.Array:
    """Asymmetric squared error: ``tau * r**2`` where predictions < targets
    (under-prediction), ``(1 - tau) * r**2`` where predictions > targets. tau = 0.5 is
    ``optax.l2_loss``; tau > 0.5 fits an upper expectile.

    A ``covariance`` or ``scale_tril`` whitens the residual first (the penalty acts on
    ``L^-1 r``, as in :func:`mse`); a ``precision`` goes with the square penalty only (else a
    ValueError).
    """
    return _call("expectile", predictions, targets, weight, sample_weight, mask, check_values,
                 covariance, scale_tril, precision,
                 tau=tau, missing=missing, reduction=reduction)


def nmse(predictions: ArrayLike, targets: OptArray = None, *, weight: OptArray = None, sample_weight: OptArray = None,
         mask: OptArray = None, missing: str | None = None, multioutput: Multioutput = "uniform_average",
         check_values: CheckValues = True) -> jax.Array:
    """Normalised MSE per output (weighted SSE / weighted, centred SST), combined by
    ``multioutput``. NMSE = 1 - R^2."""
    return _call("nmse", predictions, targets, weight, sample_weight, mask, check_values,
                 missing=missing, multioutput=_mo(multioutput))


def r2(predictions: ArrayLike, targets: OptArray = None, *, weight: OptArray = None, sample_weight: OptArray = None,
       mask: OptArray = None, missing: str | None = None, multioutput: Multioutput = "uniform_average",
       check_values: CheckValues = True) -> jax.Array:
    """Coefficient of determination, as ``sklearn.metrics.r2_score`` (``force_finite``), in
    Optax's argument order ``(predictions, targets)``. A score: minimise ``-r2``."""
    return _call("r2", predictions, targets, weight, sample_weight, mask, check_values,
                 missing=missing, multioutput=_mo(multioutput))


# ---------------------------------------------------------------------------------------
# Elementwise helpers named as Optax's (reduction "none"), with weights and masks.
# ---------------------------------------------------------------------------------------


def squared_error(predictions: ArrayLike, targets: OptArray = None, *, weight: OptArray = None,
                  sample_weight: OptArray = None, mask: OptArray = None, missing: str | None = None,
                  check_values: CheckValues = True) -> jax.Array:
    """Elementwise (predictions - targets)**2, as ``optax.squared_error``; weighted, and
    exactly 0 where masked or missing. Half-precision inputs give float32."""
    return mse(predictions, targets, weight=weight, sample_weight=sample_weight, mask=mask,
               missing=missing, reduction="none", check_values=check_values)


def absolute_error(predictions: ArrayLike, targets: OptArray = None, *, weight: OptArray = None,
                   sample_weight: OptArray = None, mask: OptArray = None, missing: str | None = None,
                   check_values: CheckValues = True) -> jax.Array:
    """Elementwise |predictions - targets| (gradient 0 at 0); weighted, 0 where masked."""
    return mae(predictions, targets, weight=weight, sample_weight=sample_weight, mask=mask,
               missing=missing, reduction="none", check_values=check_values)


def l2_loss(predictions: ArrayLike, targets: OptArray = None, *, weight: OptArray = None,
            sample_weight: OptArray = None, mask: OptArray = None, missing: str | None = None,
            check_values: CheckValues = True) -> jax.Array:
    """Elementwise 0.5 (predictions - targets)**2, as ``optax.l2_loss``."""
    return 0.5 * squared_error(predictions, targets, weight=weight, sample_weight=sample_weight,
                               mask=mask, missing=missing, check_values=check_values)


def huber_loss(predictions: ArrayLike, targets: OptArray = None, *, delta: float = 1.0, weight: OptArray = None,
               sample_weight: OptArray = None, mask: OptArray = None, missing: str | None = None,
               check_values: CheckValues = True) -> jax.Array:
    """Elementwise Huber loss, as ``optax.huber_loss`` (but no silent broadcasting)."""
    return huber(predictions, targets, delta=delta, weight=weight, sample_weight=sample_weight,
                 mask=mask, missing=missing, reduction="none", check_values=check_values)


# ---------------------------------------------------------------------------------------
# Gaussian likelihoods
# ---------------------------------------------------------------------------------------


def gaussian_nll(predictions: ArrayLike, targets: OptArray, var: ArrayLike | float, *, full: bool = False,
                 eps: float = 1e-6, reduction: str = "mean", weight: OptArray = None,
                 sample_weight: OptArray = None, mask: OptArray = None, missing: str | None = None,
                 check_values: CheckValues = True) -> jax.Array:
    """Heteroscedastic Gaussian negative log-likelihood with a predicted variance ``var``:
    ``0.5 * (log v + (predictions - targets)**2 / v)`` with ``v = max(var, eps)``, plus
    ``0.5 * log(2 pi)`` with ``full``. Equal to ``torch.nn.GaussianNLLLoss`` (and
    ``torch.nn.functional.gaussian_nll_loss(predictions, targets, var)``) in value and
    gradient: the eps clamp passes the gradient through as the identity (as torch's
    in-place clamp), and ``var`` may have the predictions' shape, their shape without the
    last axis (one variance per sample), or their shape with exactly one axis of size 1;
    a negative ``var`` is a ValueError (eagerly; a checkify check with
    ``check_values="checkify"``). Adds weights, masks, missing targets and every reduction.
    ``var`` may be a traced array (a network's output) and a Python float.

    >>> import jax, jax.numpy as jnp
    >>> p, t, v = jnp.array([1.0, 2.0]), jnp.zeros(2), jnp.array([2.0, 4.0])
    >>> round(float(gaussian_nll(p, t, v)), 5)  # torch.nn.GaussianNLLLoss()(p, t, v): 0.89486
    0.89486
    >>> [round(float(g), 5) for g in jax.grad(gaussian_nll, argnums=2)(p, t, v)]
    [0.0625, 0.0]
    """
    spec = LossSpec(penalty="gaussian_nll", full=full, eps=eps, reduction=reduction, missing=missing)
    return _evaluate(spec, None, predictions, targets, weight, sample_weight, mask, check_values, var=var)


def multivariate_gaussian_nll(predictions: ArrayLike, targets: OptArray = None, *, covariance: OptArray = None,
                              scale_tril: OptArray = None, full: bool = True, reduction: str = "mean",
                              weight: OptArray = None, sample_weight: OptArray = None, mask: OptArray = None,
                              missing: str | None = None, check_values: CheckValues = True) -> jax.Array:
    """Full-covariance Gaussian negative log-likelihood, one value per sample (the last axis
    is the event): ``0.5 * |L^-1 r|**2 + sum(log diag L) + d/2 log(2 pi)`` with
    ``covariance = L L^T``, i.e.
    ``-jax.scipy.stats.multivariate_normal.logpdf(targets, predictions, covariance)`` (and
    ``-torch.distributions.MultivariateNormal(predictions, scale_tril=L).log_prob(targets)``),
    then reduced over samples (default: the mean; ``reduction="none"`` gives one value per
    sample). Give a ``covariance`` (a concrete one is factored on the host in float64; a
    traced one by ``jnp.linalg.cholesky``) or a ``scale_tril`` (a traced one, e.g. a pytree
    leaf or a network's per-sample output ``(B, d, d)``, gets its gradient, through the
    triangular solve and the log-determinant). ``full=False`` drops the constant. Masks and
    weights act on whole samples.

    >>> import jax.numpy as jnp
    >>> from jax.scipy.stats import multivariate_normal
    >>> p, t, cov = jnp.array([[1.0, 0.0]]), jnp.zeros((1, 2)), jnp.array([[2.0, 0.0], [0.0, 1.0]])
    >>> round(float(multivariate_gaussian_nll(p, t, covariance=cov)), 5)
    2.43445
    >>> round(float(-multivariate_normal.logpdf(t, p, cov)[0]), 5)
    2.43445
    """
    spec = LossSpec(penalty="gaussian_nll", transform="whiten", full=full, reduction=reduction, missing=missing)
    return _evaluate(spec, None, predictions, targets, weight, sample_weight, mask, check_values,
                     covariance, scale_tril)
