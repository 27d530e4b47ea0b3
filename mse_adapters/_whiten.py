"""The transform stage's matrices (docs/design.md, "Whitening"), framework-free.

- :func:`pick_matrix` / :func:`resolve_spec`: exactly one of ``covariance``,
  ``scale_tril``, ``precision``, consistent with the spec's ``transform``;
- :func:`check_matrix_shape`: ``(d, d)`` or ``(..., d, d)`` matching the prediction;
- :func:`matrix_rules`: the value checks of a matrix, written once against a NumPy-API
  namespace: NumPy on the host (a concrete matrix), ``jax.numpy`` under checkify (a traced one);
- :func:`host_factor`: a concrete matrix validated and factored on the host in float64
  (Cholesky; the inverse factor ``L^-1`` by forward substitution, never an explicit inverse
  of the covariance);
- :class:`HostMatrix`: a host factor with its content key (hashable: a static argument of
  ``jax.jit``), cached by content, and its casts to each compute dtype.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from . import _messages as msg
from ._linalg import tril_solve
from ._ops import EPS, Ops, Rule, Whitening, broadcasts_to, check_input
from ._spec import LossSpec

__all__ = ["MATRIX_ARGS", "HostFactor", "HostMatrix", "pick_matrix", "resolve_spec", "check_matrix_shape",
           "host_factor", "matrix_rules"]

Array = Any
Shape = tuple[int, ...]

MATRIX_ARGS = ("covariance", "scale_tril", "precision")
#: Symmetry tolerance, in units of the matrix dtype's epsilon times its largest entry.
SYM_ULPS = 64.0


class HostFactor(NamedTuple):
    """A concrete matrix validated and factored on the host, in float64."""

    name: str  # the argument it came from
    scale_tril: np.ndarray | None  # L, lower (covariance, scale_tril)
    inv_scale_tril: np.ndarray | None  # L^-1, lower
    log_diag: np.ndarray | None  # log diag L
    precision: np.ndarray | None  # P, symmetrised (precision)


# ---------------------------------------------------------------------------------------
# Arguments and shapes (pure Python)
# ---------------------------------------------------------------------------------------


def pick_matrix(covariance: Any = None, scale_tril: Any = None, precision: Any = None) -> tuple[str | None, Any]:
    """(name, matrix) of the one matrix given, (None, None) without; more than one is an error."""
    given = [(n, m) for n, m in zip(MATRIX_ARGS, (covariance, scale_tril, precision)) if m is not None]
    if len(given) > 1:
        raise ValueError(msg.matrices_exclusive([n for n, _ in given]))
    return given[0] if given else (None, None)


def transform_of(name: str) -> str:
    return "precision" if name == "precision" else "whiten"


def resolve_spec(spec: LossSpec, name: str | None) -> LossSpec:
    """The spec with its ``transform`` set from the matrix argument given (when the spec has
    none), or a ValueError when the spec and the arguments disagree."""
    if name is None:
        if spec.transform == "whiten":
            raise ValueError(msg.WHITEN_NEEDS_MATRIX)
        if spec.transform == "precision":
            raise ValueError(msg.PRECISION_NEEDS_MATRIX)
        return spec
    want = transform_of(name)
    if spec.transform is None:
        return spec.replace(transform=want)
    if spec.transform != want:
        raise ValueError(msg.matrix_not_used(name, spec.transform, want))
    return spec


def check_matrix_shape(name: str, mshape: Shape, pred_shape: Shape | None = None, pred_name: str = "y_pred") -> None:
    """``(d, d)`` or ``(..., d, d)``; with ``pred_shape``, d is its last axis and the batch
    axes broadcast to its leading axes (trailing-aligned, as NumPy's matmul)."""
    mshape = tuple(mshape)
    if len(mshape) < 2 or mshape[-1] != mshape[-2]:
        raise ValueError(msg.not_square(name, mshape))
    if pred_shape is None:
        return
    pred_shape = tuple(pred_shape)
    if not pred_shape:
        raise ValueError(msg.matrix_of_scalar(name, pred_name))
    d = pred_shape[-1]
    if mshape[-1] != d:
        raise ValueError(msg.matrix_outputs(name, mshape[-2:], pred_name, pred_shape, d))
    if not broadcasts_to(mshape[:-2], pred_shape[:-1]):
        raise ValueError(msg.matrix_batch(name, mshape, mshape[:-2], pred_shape[:-1], pred_name))


# ---------------------------------------------------------------------------------------
# Value checks, once: NumPy on the host, jax.numpy under checkify
# ---------------------------------------------------------------------------------------


def _argmin_index(xp: Any, values: Array) -> dict[str, Any]:
    if not values.ndim:
        return {}
    idx = xp.unravel_index(xp.argmin(values), values.shape)
    return {f"i{k}": i for k, i in enumerate(idx)}


def _numpy_cholesky_ok(sym: np.ndarray) -> np.ndarray:
    """Whether each matrix of a batch has a Cholesky factor (NumPy raises for the batch)."""
    try:
        np.linalg.cholesky(sym)
        return np.ones(sym.shape[:-2], bool)
    except np.linalg.LinAlgError:
        flat = sym.reshape((-1,) + sym.shape[-2:])
        ok = []
        for m in flat:
            try:
                np.linalg.cholesky(m)
                ok.append(True)
            except np.linalg.LinAlgError:
                ok.append(False)
        return np.asarray(ok).reshape(sym.shape[:-2])


def matrix_rules(xp: Any, name: str, m: Array, eps: float,
                 cholesky_ok: Callable[[Array], Array] | None = None) -> list[Rule]:
    """The checks of a matrix argument: finite; ``scale_tril`` lower triangular with a
    positive diagonal; ``covariance`` symmetric positive definite; ``precision`` symmetric
    positive semi-definite. Each rule is (condition, message, format arguments), the
    arguments possibly zero-argument callables (computed only for a message). ``xp`` is NumPy
    (the host, float64) or ``jax.numpy`` (a traced matrix under checkify)."""
    if cholesky_ok is None:
        cholesky_ok = _numpy_cholesky_ok if xp is np else (
            lambda s: xp.all(xp.isfinite(xp.linalg.cholesky(s)), axis=(-2, -1)))
    finite = xp.all(xp.isfinite(m))
    rules: list[Rule] = [(finite, msg.MATRIX_NOT_FINITE.format(name=name), {})]
    d = m.shape[-1]
    if not d:
        return rules
    x = xp.where(finite, m, 0.0)  # the other checks see a finite matrix
    where = msg.at_batch(x.ndim - 2)
    if name == "scale_tril":
        low = xp.min(xp.diagonal(x, axis1=-2, axis2=-1), axis=-1)
        rules.append((xp.all(xp.triu(x, 1) == 0), msg.NOT_LOWER.format(name=name), {}))
        rules.append((xp.all(low > 0), msg.DIAGONAL.format(name=name) + where,
                      {"s": xp.min(low), **_argmin_index(xp, low)}))
        return rules
    scale = xp.max(xp.abs(x))
    asym = xp.max(xp.abs(x - xp.swapaxes(x, -1, -2)))
    rules.append((asym <= SYM_ULPS * eps * scale, msg.ASYMMETRIC.format(name=name),
                  {"a": asym, "r": asym / xp.where(scale > 0, scale, 1.0)}))
    sym = 0.5 * (x + xp.swapaxes(x, -1, -2))
    if name == "precision":
        ev = xp.linalg.eigvalsh(sym)
        lows = ev[..., 0]
        tol = SYM_ULPS * d * eps * xp.max(xp.abs(ev), axis=-1)
        worst = xp.argmin((lows + tol).reshape(-1))
        rules.append((xp.all(lows >= -tol), msg.NOT_PSD.format(name=name) + where,
                      {"s": lows.reshape(-1)[worst], **_argmin_index(xp, lows + tol)}))
        return rules

    def smallest() -> dict[str, Any]:
        low = xp.linalg.eigvalsh(sym)[..., 0]
        return {"s": xp.min(low), **_argmin_index(xp, low)}

    rules.append((xp.all(cholesky_ok(sym)), msg.NOT_PD.format(name=name, where=where), _LazyArgs(smallest)))
    return rules


class _LazyArgs(Mapping[str, Any]):
    """Format arguments computed when first read (an eigendecomposition only for a message)."""

    def __init__(self, make: Callable[[], dict[str, Any]]) -> None:
        self._make = make
        self._args: dict[str, Any] | None = None

    def _get(self) -> dict[str, Any]:
        if self._args is None:
            self._args = self._make()
        return self._args

    def __getitem__(self, k: str) -> Any:
        return self._get()[k]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def raise_failed(rules: list[Rule]) -> None:
    """Raise the first failed rule evaluated on the host (NumPy)."""
    for cond, text, kw in rules:
        if not bool(np.all(cond)):
            args = {k: (np.asarray(v).item() if np.ndim(v) == 0 else v) for k, v in kw.items()}
            raise ValueError(text.format(**args))


# ---------------------------------------------------------------------------------------
# Host-side factoring, float64
# ---------------------------------------------------------------------------------------


def host_factor(name: str, matrix: Any, eps: float, inverse: bool = True) -> HostFactor:
    """Validate and factor a concrete matrix in float64. ``eps``: the machine epsilon of the
    dtype the matrix was given in (it sets the symmetry tolerance). ``inverse=False`` skips
    the inverse factor: validation only."""
    m = np.asarray(matrix, dtype=np.float64)
    check_matrix_shape(name, m.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        raise_failed(matrix_rules(np, name, m, eps))
    d = m.shape[-1]
    if name == "scale_tril":
        lower: np.ndarray = m
    else:
        m = 0.5 * (m + np.swapaxes(m, -1, -2))
        if name == "precision":
            return HostFactor(name, None, None, None, m)
        lower = np.asarray(np.linalg.cholesky(m) if d else m, dtype=np.float64)
    inv = np.tril(tril_solve(lower, np.broadcast_to(np.eye(d), lower.shape))) if inverse else None
    with np.errstate(divide="ignore"):
        log_diag = np.log(np.diagonal(lower, axis1=-2, axis2=-1))
    return HostFactor(name, np.ascontiguousarray(lower), inv, log_diag, None)


def host_array(ops: Ops, name: str, m: Any) -> tuple[np.ndarray, float]:
    """A concrete matrix as float64 NumPy, and the epsilon of the dtype it was given in."""
    dtype = check_input(ops, name, m)
    a = np.asarray(m if isinstance(m, (list, tuple, np.ndarray, int, float)) else ops.to_host(m))
    return a.astype(np.float64), EPS.get(dtype, EPS["float64"])


#: Host factors by content (most recent last): the functional forms factor a matrix once.
_CACHE: OrderedDict[tuple[Any, ...], HostMatrix] = OrderedDict()
_CACHE_SIZE = 16


class HostMatrix:
    """A concrete matrix, validated and factored once on the host in float64, applied as
    ``by`` says (``"inverse"``: a product with L^-1; ``"solve"``: a triangular solve).

    Equal and hashed by its argument name, its content and ``by``, so that a compiled loss
    holding one is a valid static argument of ``jax.jit``. Its casts to a backend's compute
    dtype are cached (constants of a traced program); pickling keeps the float64 factor."""

    __slots__ = ("name", "factor", "key", "_cast")

    def __init__(self, name: str, a: np.ndarray, eps: float, by: str) -> None:
        digest = hashlib.blake2b(np.ascontiguousarray(a).tobytes(), digest_size=16).hexdigest()
        self._setup(name, host_factor(name, a, eps, inverse=by == "inverse"), (name, a.shape, eps, digest, by))

    def _setup(self, name: str, factor: HostFactor, key: tuple[Any, ...]) -> None:
        self.name = name
        self.factor = factor
        self.key = key
        self._cast: dict[Any, Whitening] = {}

    @classmethod
    def of(cls, ops: Ops, name: str, matrix: Any) -> HostMatrix:
        """The host matrix of ``matrix``, from a cache by content (an eager loop, or a jitted
        function retraced for new shapes, factors it once)."""
        if isinstance(matrix, HostMatrix):
            return matrix
        a, eps = host_array(ops, name, matrix)
        digest = hashlib.blake2b(np.ascontiguousarray(a).tobytes(), digest_size=16).hexdigest()
        key = (name, a.shape, eps, digest, ops.whiten_by)
        hm = _CACHE.get(key)
        if hm is None:
            hm = cls.__new__(cls)
            hm._setup(name, host_factor(name, a, eps, inverse=ops.whiten_by == "inverse"), key)
            _CACHE[key] = hm
            if len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        else:
            _CACHE.move_to_end(key)
        return hm

    @property
    def by(self) -> str:
        by: str = self.key[4]
        return by

    @property
    def shape(self) -> Shape:
        shape: Shape = self.key[1]
        return shape

    def whitening(self, ops: Ops, like: Array) -> Whitening:
        """The transform for the pipeline in ``like``'s dtype (cast once per backend and
        dtype)."""
        if ops.is_abstract(like):  # a traced program holds its own constants (a graph's belong to it)
            return whitening_of(ops, self.factor, self.by, like)
        key = (ops.name, ops.dtype(like), str(getattr(like, "device", "")))
        w = self._cast.get(key)
        if w is None:
            w = whitening_of(ops, self.factor, self.by, like)
            self._cast[key] = w
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


def whitening_of(ops: Ops, f: HostFactor, by: str, like: Array) -> Whitening:
    """The :class:`Whitening` of a host factor, its arrays as ``like``'s dtype and device."""

    def arr(a: np.ndarray | None) -> Array:
        return None if a is None else ops.constant(a, like)

    if f.precision is not None:
        return Whitening("precision", arr(f.precision), None, f.name)
    if by == "inverse":
        return Whitening("inverse", arr(f.inv_scale_tril), arr(f.log_diag), f.name)
    return Whitening("solve", arr(f.scale_tril), arr(f.log_diag), f.name)
