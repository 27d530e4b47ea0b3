"""JAX side of the transform stage and the Gaussian likelihoods (DESIGN §4).

Kept out of :mod:`mse_adapters.jax` so that the plain losses' code is unchanged: a call with
no matrix, no ``var`` and a spec without a transform never comes here.

- A CONCRETE matrix (a NumPy array, a list, a JAX array outside any transformation, or one
  closed over by a jitted function) is validated and factored on the host in float64
  (:func:`mse_adapters._whiten.host_factor`), once: :func:`mse_adapters.jax.compile` keeps
  the factor in the compiled :class:`~mse_adapters.jax.Loss`, and the functional forms
  cache it by the matrix's bytes (so an eager loop factors it once, and a jitted function
  that closes over it factors it once, at trace time). It is applied in the compute dtype
  as whichever measured faster on XLA's CPU backend (:data:`WHITEN_BY`, :func:`whiten_by`):
  a product with the inverse Cholesky factor ``L^-1`` formed in float64 (XLA's CPU
  triangular solve is up to 3.7x slower than the product at d = 8 to 256, and never
  faster); ``WHITEN_BY = "solve"`` selects a triangular solve against the float64 factor
  L cast to the compute dtype instead. Either keeps the float64 factor's accuracy (relative error
  ~3e-8 in float32 at cond 1e6, where a float32 inverse gives ~1e-4).
- A TRACED matrix (an argument of a jitted function, or a pytree leaf differentiated by
  ``jax.grad``) is used in the compute dtype: a ``scale_tril`` is solved against
  (``lax.linalg.triangular_solve``), so its gradient flows; a covariance is factored by
  ``jnp.linalg.cholesky`` first (per call); a precision is used as is. Its values are
  validated on the host where they are concrete (an eager ``jax.grad``), with the same
  errors as a constant matrix; under ``jax.jit`` they cannot be (a non-positive-definite
  traced covariance gives NaN) unless ``check_values="checkify"``, which emits the same
  checks as :func:`jax.experimental.checkify.check` calls.
"""

from __future__ import annotations

import functools
import hashlib
from collections import OrderedDict
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import checkify as _checkify

from . import _core, _whiten
from ._core import ArgNames
from ._spec import LossSpec
from ._whiten import HostFactor, Whitening

#: How a constant factor is applied: ``"inverse"`` (a product with L^-1, precomputed in
#: float64), ``"solve"`` (a triangular solve against L) or ``"auto"`` (the faster measured
#: on XLA's CPU backend, :func:`whiten_by`). Read when a matrix is factored.
WHITEN_BY = "auto"
#: With ``"auto"``, one ``(d, d)`` factor is solved against from this d up (None: never).
#: Measured (B = 4096, float32, jit, one thread, jaxlib 0.10.2, XLA:CPU, a quiet machine;
#: medians of interleaved calls): the solve's time / the product's, forward and forward +
#: backward, is 1.5 and 1.4 at d = 8, 3.7 and 2.2 at d = 64, 2.6 and 1.5 at d = 128, 1.6 and
#: 1.0 at d = 256 (a batch of matrices: the product too, 3-10x faster at d <= 128). Set it
#: for an accelerator where TRSM wins.
SOLVE_FROM_D: int | None = None


def whiten_by(shape: tuple[int, ...]) -> str:
    """``"inverse"`` or ``"solve"`` for a covariance / ``scale_tril`` of ``shape``."""
    if WHITEN_BY != "auto":
        return WHITEN_BY
    solve = SOLVE_FROM_D is not None and len(shape) == 2 and shape[-1] >= SOLVE_FROM_D
    return "solve" if solve else "inverse"

#: Host factors of the functional forms' concrete matrices, by content (most recent last).
_CACHE: OrderedDict[tuple[Any, ...], HostMatrix] = OrderedDict()
_CACHE_SIZE = 16


# ---------------------------------------------------------------------------------------
# Ops
# ---------------------------------------------------------------------------------------


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def clamp_min_nograd(x: jax.Array, lo: float) -> jax.Array:
    """max(x, lo) with the derivative of the identity (``torch.nn.GaussianNLLLoss`` clamps
    its variance in place under ``no_grad``: the gradient passes through the clamp)."""
    return jnp.maximum(x, lo)


@clamp_min_nograd.defjvp
def _clamp_min_nograd_jvp(lo: float, primals: tuple[jax.Array], tangents: tuple[jax.Array]) -> tuple[Any, Any]:
    (x,), (tx,) = primals, tangents
    return clamp_min_nograd(x, lo), tx


def matvec(m: Any, x: jax.Array) -> jax.Array:
    """``m @ x`` along the last axis of ``x``; batch axes broadcast."""
    if jnp.ndim(m) == 2:  # one matrix: a single GEMM over every sample
        return x @ jnp.swapaxes(m, -1, -2)
    return jnp.einsum("...ij,...j->...i", m, x)


def solve_tril(lower: Any, x: jax.Array) -> jax.Array:
    """z with ``tril(lower) @ z = x`` along the last axis of ``x`` (the strict upper triangle
    of ``lower`` is ignored, and gets a zero gradient); differentiable in both."""
    lower = jnp.asarray(lower)
    if lower.ndim == 2 and x.ndim >= 2:  # z L^T = x row by row: one TRSM, no transposes
        d = x.shape[-1]
        flat = x.reshape(-1, d)
        z = lax.linalg.triangular_solve(lower, flat, left_side=False, lower=True, transpose_a=True)
        return z.reshape(x.shape)
    batch = jnp.broadcast_shapes(lower.shape[:-2], x.shape[:-1])
    d = x.shape[-1]
    lb = jnp.broadcast_to(lower, batch + (d, d))
    xb = jnp.broadcast_to(x, batch + (d,))
    return lax.linalg.triangular_solve(lb, xb[..., None], left_side=True, lower=True)[..., 0]


# ---------------------------------------------------------------------------------------
# Concrete matrices: validated and factored on the host, in float64
# ---------------------------------------------------------------------------------------


def _is_traced(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def _concrete_value(x: Any) -> Any:
    """The value of a tracer that has one (an eager ``jax.grad``), else None."""
    try:
        return x.to_concrete_value()
    except Exception:  # pragma: no cover - a tracer type without the method
        return None


def _eps(dtype: Any) -> float:
    dt = np.dtype(dtype)
    return float(jnp.finfo(dt).eps) if jnp.issubdtype(dt, jnp.floating) else float(np.finfo(np.float64).eps)


def _check_dtype(name: str, dt: Any) -> None:
    dt = np.dtype(dt)
    if dt.kind not in "biuf" and not jnp.issubdtype(dt, jnp.floating):  # bfloat16 is kind "V"
        raise _core.dtype_error(name, str(dt))


def _host_array(name: str, m: Any) -> tuple[np.ndarray, float]:
    """A float64 NumPy copy of a concrete matrix, and the epsilon of the dtype it came in."""
    _core.check_not_foreign(name, m, "jax")
    a = m if isinstance(m, np.ndarray) else np.asarray(m)
    _check_dtype(name, a.dtype)
    return a.astype(np.float64), _eps(a.dtype)


def _content_key(name: str, a: np.ndarray, eps: float) -> tuple[Any, ...]:
    """(name, shape, eps, digest of the content, how the factor is applied)."""
    digest = hashlib.blake2b(np.ascontiguousarray(a).tobytes(), digest_size=16).hexdigest()
    return (name, a.shape, eps, digest, whiten_by(a.shape))


class HostMatrix:
    """A concrete matrix, validated and factored once on the host in float64.

    Equal (and hashed) by its argument name, its content and how it is applied
    (:func:`whiten_by` when it is built), so that a compiled :class:`~mse_adapters.jax.Loss` holding one stays a valid
    static argument of ``jax.jit``. The factor is cast to each compute dtype once and kept
    as a constant device array (a constant of the program under ``jax.jit``); pickling
    keeps the float64 factor only."""

    __slots__ = ("name", "factor", "key", "_cast")

    def __init__(self, name: str, matrix: Any) -> None:
        a, eps = _host_array(name, matrix)
        self._setup(name, _whiten.host_factor(name, a, eps), _content_key(name, a, eps))

    def _setup(self, name: str, factor: HostFactor, key: tuple[Any, ...]) -> None:
        self.name = name
        self.factor = factor
        self.key = key
        self._cast: dict[Any, Whitening] = {}

    @classmethod
    def of(cls, name: str, matrix: Any) -> HostMatrix:
        """``HostMatrix(name, matrix)``, from a cache by content (the functional forms: an
        eager loop, or a jitted function retraced for new shapes, factors it once)."""
        if isinstance(matrix, HostMatrix):
            return matrix
        a, eps = _host_array(name, matrix)
        key = _content_key(name, a, eps)
        hm = _CACHE.get(key)
        if hm is None:
            hm = cls.__new__(cls)
            hm._setup(name, _whiten.host_factor(name, a, eps), key)
            _CACHE[key] = hm
            if len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        else:
            _CACHE.move_to_end(key)
        return hm

    @property
    def by(self) -> str:
        """How the factor is applied (:func:`whiten_by` when it was built)."""
        by: str = self.key[4]
        return by

    @property
    def shape(self) -> tuple[int, ...]:
        shape: tuple[int, ...] = self.key[1]
        return shape

    def whitening(self, dtype: Any) -> Whitening:
        """The transform for the pipeline, in ``dtype`` (concrete arrays, cast once)."""
        dt = np.dtype(dtype)
        w = self._cast.get(dt)
        if w is None:
            f, name = self.factor, self.name
            with jax.ensure_compile_time_eval():  # a concrete array even while tracing

                def arr(a: np.ndarray | None) -> jax.Array | None:
                    return None if a is None else jnp.asarray(a, dtype=dt)

                if name == "precision":
                    w = Whitening("precision", arr(f.precision), None, name)
                elif self.by == "inverse":
                    w = Whitening("inverse", arr(f.inv_scale_tril), arr(f.log_diag), name)
                else:
                    w = Whitening("solve", arr(f.scale_tril), arr(f.log_diag), name)
            self._cast[dt] = w
        return w

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HostMatrix) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"<{self.name} of shape {self.shape}, factored in float64>"

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "factor": self.factor, "key": self.key}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._setup(state["name"], state["factor"], state["key"])


# ---------------------------------------------------------------------------------------
# The transform of one call
# ---------------------------------------------------------------------------------------


def is_structured(spec: LossSpec, *args: Any) -> bool:
    """Whether a call takes the structured path: a matrix or ``var`` given, or a spec with a
    transform or the Gaussian NLL (which then need one)."""
    return spec.transform is not None or spec.penalty == "gaussian_nll" or any(a is not None for a in args)


def prepare(spec: LossSpec, like: jax.Array, fixed: HostMatrix | None, covariance: Any, scale_tril: Any,
            precision: Any, check_values: bool | str) -> tuple[LossSpec, Whitening | None]:
    """The spec with its transform resolved and the matrix ready for the pipeline in the
    dtype of ``like`` (the predictions in the compute dtype). ``fixed``: the matrix the
    compiled loss was built with (then none may be given at call time)."""
    name, m = _whiten.pick_matrix(covariance, scale_tril, precision)
    if fixed is not None:
        if name is not None:
            raise ValueError(
                "covariance, scale_tril and precision are mutually exclusive: give exactly one, got "
                f"{fixed.name} (when the loss was compiled) and {name} (at call time)"
            )
        return _whiten.resolve_spec(spec, fixed.name), fixed.whitening(like.dtype)
    spec = _whiten.resolve_spec(spec, name)
    if name is None:
        return spec, None
    if not _is_traced(m):
        return spec, HostMatrix.of(name, m).whitening(like.dtype)
    # A traced matrix: in the compute dtype, differentiable.
    _check_dtype(name, m.dtype)
    _whiten.check_matrix_shape(name, tuple(m.shape))
    if check_values == "checkify":
        checkify_matrix(name, m)
    elif check_values:
        value = _concrete_value(m)
        if value is not None:  # an eager jax.grad: the same errors as a constant matrix
            a, eps = _host_array(name, value)
            _whiten.host_factor(name, a, eps, inverse=False)
    mt = m if m.dtype == like.dtype else m.astype(like.dtype)
    if name == "precision":
        return spec, Whitening("precision", mt, None, name)
    if name == "covariance":
        mt = jnp.linalg.cholesky(mt)
    return spec, Whitening("solve", mt, None, name)


def prepare_var(var: Any, like: jax.Array, array: Any) -> Any:
    """``var`` in the compute dtype (a Python number stays a number, as torch allows it);
    ``array`` converts an array-like as the adapter converts every input."""
    if var is None:
        return None
    if isinstance(var, (int, float)) and not isinstance(var, bool):
        return float(var)
    v = array("var", var)
    return v if v.dtype == like.dtype else v.astype(like.dtype)


# ---------------------------------------------------------------------------------------
# check_values="checkify": the value checks as checkify checks, with the eager messages
# ---------------------------------------------------------------------------------------


def _where_fmt(batch_ndim: int) -> str:
    """The ``(at batch index (i, j))`` suffix of the host errors, as a checkify format."""
    if not batch_ndim:
        return ""
    inner = ", ".join(f"{{i{k}}}" for k in range(batch_ndim)) + ("," if batch_ndim == 1 else "")
    return f" (at batch index ({inner}))"


def _argmin_index(values: jax.Array) -> dict[str, Any]:
    if not values.ndim:
        return {}
    idx = jnp.unravel_index(jnp.argmin(values), values.shape)
    return {f"i{k}": i for k, i in enumerate(idx)}


def checkify_matrix(name: str, m: jax.Array) -> None:
    """:func:`mse_adapters._whiten.host_factor`'s checks of a traced matrix, in its dtype,
    as checkify checks with the same messages (the values they print are computed in the
    matrix's dtype, not in float64)."""
    d = m.shape[-1]
    x = m.astype(jnp.promote_types(m.dtype, jnp.float32))  # half and integer types in float32
    eps = _eps(m.dtype)
    finite = jnp.all(jnp.isfinite(x))
    _checkify.check(finite, f"{name} must be finite; it contains NaN or inf")
    if not d:
        return
    x = jnp.where(finite, x, 0.0)  # the other checks see a finite matrix
    bnd = x.ndim - 2
    if name == "scale_tril":
        _checkify.check(jnp.all(jnp.triu(x, 1) == 0),
                        f"{name} must be lower triangular; it has non-zero entries above the diagonal")
        low = jnp.min(jnp.diagonal(x, axis1=-2, axis2=-1), axis=-1)
        _checkify.check(jnp.all(low > 0), f"{name} must have a positive diagonal (a Cholesky factor); its "
                        "smallest diagonal entry is {s:.6g}" + _where_fmt(bnd),
                        s=jnp.min(low), **_argmin_index(low))
        return
    scale = jnp.max(jnp.abs(x))
    asym = jnp.max(jnp.abs(x - jnp.swapaxes(x, -1, -2)))
    _checkify.check(asym <= _whiten._SYM_ULPS * eps * scale,
                    f"{name} must be symmetric; max |{name} - {name}^T| is {{a:.3g}} ({{r:.3g}} of its "
                    "largest entry)", a=asym, r=asym / jnp.where(scale > 0, scale, 1.0))
    sym = 0.5 * (x + jnp.swapaxes(x, -1, -2))
    ev = jnp.linalg.eigvalsh(sym)
    lows = ev[..., 0]
    if name == "precision":
        tol = _whiten._SYM_ULPS * d * eps * jnp.max(jnp.abs(ev), axis=-1)
        worst = jnp.argmin((lows + tol).reshape(-1))
        _checkify.check(jnp.all(lows >= -tol), f"{name} must be positive semi-definite; its smallest "
                        "eigenvalue is {s:.6g}" + _where_fmt(bnd),
                        s=lows.reshape(-1)[worst], **_argmin_index(lows + tol))
        return
    ok = jnp.all(jnp.isfinite(jnp.linalg.cholesky(sym)), axis=(-2, -1))
    _checkify.check(jnp.all(ok), f"{name} must be positive definite; its Cholesky factorisation failed"
                    + _where_fmt(bnd) + ": smallest eigenvalue {s:.6g}",
                    s=jnp.min(lows), **_argmin_index(lows))


def checkify_structured(spec: LossSpec, names: ArgNames, target: jax.Array, mask: jax.Array | None,
                        var: Any, shape: tuple[int, ...]) -> None:
    """_core.check_structured_values as checkify checks: a non-negative ``var``; whole
    samples masked when whitening. ``mask``: boolean (or None)."""
    if var is not None and not isinstance(var, (int, float)):
        _checkify.check(jnp.all(~(var < 0)), _core.VAR_NEGATIVE)
    if spec.transform != "whiten" or not shape:
        return
    nan = spec.missing == "nan"
    if not nan and (mask is None or tuple(jnp.shape(mask))[-1:] in ((), (1,))):
        return
    valid = None if mask is None else jnp.broadcast_to(mask, shape)
    if nan:
        present = ~jnp.isnan(target)
        valid = present if valid is None else valid & present
    assert valid is not None
    count = jnp.sum(valid, axis=-1)
    _checkify.check(jnp.all((count == 0) | (count == shape[-1])),
                    _core.partial_sample_message(names, nan, mask is not None))
