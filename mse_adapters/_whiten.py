"""The transform stage (DESIGN §4): whitening by a covariance, and precision quadratic forms.

Shared by every backend:

- :func:`pick_matrix` / :func:`resolve_spec`: exactly one of ``covariance``,
  ``scale_tril``, ``precision``, consistent with the spec's ``transform``;
- :func:`check_matrix_shape`: ``(d, d)`` or ``(..., d, d)`` matching the prediction;
- :func:`host_factor`: a CONCRETE matrix is validated and factored on the host, in float64
  (NumPy; numpy is the package's one dependency): a covariance by Cholesky, never inverted
  explicitly; the inverse factor ``L^-1`` is computed by forward substitution in float64;
- :class:`Whitening`: what a backend hands to the pipeline (already in the compute dtype);
- :func:`whiten` / :func:`log_scale_diag`: the stage itself, written against ``Ops`` (the
  pipeline in ``_core`` calls them).

Every error message is produced here, so it is the same in every backend.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ._spec import LossSpec

__all__ = [
    "MATRIX_ARGS",
    "HostFactor",
    "Whitening",
    "pick_matrix",
    "resolve_spec",
    "check_matrix_shape",
    "host_factor",
    "tril_solve",
    "whiten",
    "log_scale_diag",
    "LOG_2PI_HALF",
]

Array = Any
Shape = tuple[int, ...]

MATRIX_ARGS = ("covariance", "scale_tril", "precision")
LOG_2PI_HALF = 0.5 * math.log(2.0 * math.pi)

#: Symmetry tolerance, in units of the matrix dtype's epsilon times its largest entry.
_SYM_ULPS = 64.0


class Whitening(NamedTuple):
    """The transform as the pipeline applies it, in the compute dtype.

    ``kind``: ``"solve"`` (``matrix`` is the lower Cholesky factor L: z = L^-1 r by a
    triangular solve; a trainable ``scale_tril`` always takes this path so that its gradient
    flows), ``"inverse"`` (``matrix`` is the precomputed inverse factor L^-1, lower: z = L^-1 r
    by a product) or ``"precision"`` (``matrix`` is P: the terms r_j (P r)_j, whose sum over
    the last axis is r^T P r). ``log_diag``: log L_jj, shape ``(..., d)``, for the
    multivariate Gaussian NLL (None: derived from ``matrix``). ``name``: the argument the
    matrix came from (``covariance``, ``scale_tril`` or ``precision``)."""

    kind: str
    matrix: Array
    log_diag: Array | None = None
    name: str = "covariance"  # the user's argument, for error messages


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
        raise ValueError(
            "covariance, scale_tril and precision are mutually exclusive: give exactly one, got "
            + " and ".join(n for n, _ in given)
        )
    return given[0] if given else (None, None)


def transform_of(name: str) -> str:
    return "precision" if name == "precision" else "whiten"


def resolve_spec(spec: LossSpec, name: str | None) -> LossSpec:
    """The spec with its ``transform`` set from the matrix argument given (when the spec has
    none), or a ValueError when the spec and the arguments disagree."""
    if name is None:
        if spec.transform == "whiten":
            raise ValueError("transform='whiten' needs a covariance or a scale_tril; neither was given")
        if spec.transform == "precision":
            raise ValueError("transform='precision' needs a precision matrix; none was given")
        return spec
    want = transform_of(name)
    if spec.transform is None:
        return spec.replace(transform=want)
    if spec.transform != want:
        raise ValueError(
            f"{name} was given but the spec has transform={spec.transform!r} "
            f"({name} means transform={want!r})"
        )
    return spec


def _broadcasts_to(small: Shape, big: Shape) -> bool:
    if len(small) > len(big):
        return False
    return all(s in (1, b) for s, b in zip(reversed(small), reversed(big)))


def check_matrix_shape(name: str, mshape: Shape, pred_shape: Shape | None = None,
                       pred_name: str = "y_pred") -> None:
    """``(d, d)`` or ``(..., d, d)``; with ``pred_shape``, d is its last axis and the batch
    axes broadcast to its leading axes (trailing-aligned, as NumPy's matmul)."""
    mshape = tuple(mshape)
    if len(mshape) < 2 or mshape[-1] != mshape[-2]:
        raise ValueError(
            f"{name} must be a square matrix (d, d) or a batch of them (..., d, d), got shape {mshape}"
        )
    if pred_shape is None:
        return
    pred_shape = tuple(pred_shape)
    if not pred_shape:
        raise ValueError(f"{name} acts on the last axis of {pred_name}, but {pred_name} is a scalar")
    d = pred_shape[-1]
    if mshape[-1] != d:
        raise ValueError(
            f"{name} has trailing shape {mshape[-2:]} but {pred_name} of shape {pred_shape} has "
            f"{d} outputs on its last axis: expected trailing shape ({d}, {d})"
        )
    if not _broadcasts_to(mshape[:-2], pred_shape[:-1]):
        raise ValueError(
            f"{name} of shape {mshape} has batch shape {mshape[:-2]}, which does not broadcast to "
            f"the leading axes {pred_shape[:-1]} of {pred_name} (one matrix per sample; batch "
            "axes are aligned from the right, as in NumPy's matmul)"
        )


# ---------------------------------------------------------------------------------------
# Host-side validation and factoring, float64
# ---------------------------------------------------------------------------------------


def tril_solve(lower: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """X with ``tril(lower) @ X = rhs`` by forward substitution (float64, batched; only the
    lower triangle of ``lower`` is read). ``rhs`` is ``(..., d, k)``; batch axes broadcast."""
    d = lower.shape[-1]
    batch = np.broadcast_shapes(lower.shape[:-2], rhs.shape[:-2])
    out = np.zeros(batch + rhs.shape[-2:], dtype=np.result_type(lower, rhs, np.float64))
    for i in range(d):
        acc = rhs[..., i, :]
        if i:
            acc = acc - np.matmul(lower[..., i : i + 1, :i], out[..., :i, :])[..., 0, :]
        out[..., i, :] = acc / lower[..., i, i, None]
    return out


def _where(batch_index: tuple[int, ...]) -> str:
    return f" (at batch index {batch_index})" if batch_index else ""


def _worst(values: np.ndarray) -> tuple[tuple[int, ...], float]:
    idx = np.unravel_index(int(np.argmin(values)), values.shape) if values.ndim else ()
    return tuple(int(i) for i in idx), float(values[idx] if values.ndim else values)


def host_factor(name: str, matrix: Any, eps: float, inverse: bool = True) -> HostFactor:
    """Validate and factor a concrete matrix in float64. ``eps``: the machine epsilon of the
    dtype the matrix was given in (it sets the symmetry tolerance). ``inverse=False`` skips
    the inverse factor (``inv_scale_tril`` is None): validation only.

    ``covariance``: symmetric positive definite, factored by Cholesky. ``scale_tril``: lower
    triangular with a positive diagonal. ``precision``: symmetric positive SEMI-definite (may
    be singular). Each violation is a ValueError naming the argument and what is wrong."""
    m = np.asarray(matrix, dtype=np.float64)
    check_matrix_shape(name, m.shape)
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} must be finite; it contains NaN or inf")
    d = m.shape[-1]
    if name == "scale_tril":
        if np.any(np.triu(m, 1) != 0):
            raise ValueError(f"{name} must be lower triangular; it has non-zero entries above the diagonal")
        diag = np.diagonal(m, axis1=-2, axis2=-1)
        if d and not np.all(diag > 0):
            idx, smallest = _worst(np.min(diag, axis=-1))
            raise ValueError(
                f"{name} must have a positive diagonal (a Cholesky factor); its smallest diagonal "
                f"entry is {smallest:.6g}{_where(idx)}"
            )
        lower: np.ndarray = m
    else:
        scale = float(np.max(np.abs(m), initial=0.0))
        asym = float(np.max(np.abs(m - np.swapaxes(m, -1, -2)), initial=0.0))
        if asym > _SYM_ULPS * eps * scale:
            raise ValueError(
                f"{name} must be symmetric; max |{name} - {name}^T| is {asym:.3g} "
                f"({asym / scale:.3g} of its largest entry)"
            )
        m = 0.5 * (m + np.swapaxes(m, -1, -2))
        if name == "precision":
            if d:
                ev = np.linalg.eigvalsh(m)
                lows = ev[..., 0]
                tol = _SYM_ULPS * d * eps * np.max(np.abs(ev), axis=-1)
                if np.any(lows < -tol):
                    idx, _ = _worst(lows + tol)
                    raise ValueError(
                        f"{name} must be positive semi-definite; its smallest eigenvalue is "
                        f"{float(lows[idx]):.6g}{_where(idx)}"
                    )
            return HostFactor(name, None, None, None, m)
        try:
            lower = np.linalg.cholesky(m) if d else m
        except np.linalg.LinAlgError:
            idx, smallest = _worst(np.linalg.eigvalsh(m)[..., 0])
            raise ValueError(
                f"{name} must be positive definite; its Cholesky factorisation failed{_where(idx)}: "
                f"smallest eigenvalue {smallest:.6g}"
            ) from None
    inv = np.tril(tril_solve(lower, np.broadcast_to(np.eye(d), lower.shape))) if inverse else None
    with np.errstate(divide="ignore"):
        log_diag = np.log(np.diagonal(lower, axis1=-2, axis2=-1))
    return HostFactor(name, np.ascontiguousarray(lower), inv, log_diag, None)


# ---------------------------------------------------------------------------------------
# The stage, against Ops
# ---------------------------------------------------------------------------------------


def whiten(ops: Any, w: Whitening, r: Array) -> Array:
    """z = L^-1 r along the last axis."""
    if w.kind == "solve":
        return ops.solve_tril(w.matrix, r)
    if w.kind == "inverse":
        return ops.matvec(w.matrix, r)
    raise AssertionError(w.kind)  # pragma: no cover


def log_scale_diag(ops: Any, w: Whitening) -> Array:
    """log L_jj, ``(..., d)``: given, or read off the factor (L, or L^-1 whose diagonal is 1/L_jj)."""
    if w.log_diag is not None:
        return w.log_diag
    diag = ops.log(ops.diagonal(w.matrix))
    return diag if w.kind == "solve" else -diag
