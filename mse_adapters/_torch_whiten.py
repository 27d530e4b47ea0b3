"""PyTorch side of the transform stage and the Gaussian likelihoods (DESIGN §4).

Kept out of :mod:`mse_adapters.torch` so that the plain losses' code is unchanged: a module
whose spec has no transform and no Gaussian likelihood never comes here.

- A CONSTANT matrix (a covariance, a ``scale_tril`` that does not require grad, a
  precision) is validated and factored once on the host in float64 (at construction for a
  module, per call for the functional form) and applied per call in the input's dtype: a
  covariance as a product with the precomputed inverse Cholesky factor, which measured
  faster than a triangular solve on this backend (see :data:`WHITEN_BY` and the README's
  benchmark) and is at least as accurate (the inverse is formed in float64).
- A TRAINABLE ``scale_tril`` (an ``nn.Parameter``, or any tensor that requires grad) is
  solved against per call (``torch.linalg.solve_triangular``), so its gradient flows; a
  covariance that requires grad is factored per call in its own dtype
  (``torch.linalg.cholesky``), as DESIGN §4 says for traced matrices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from . import _core, _whiten
from ._spec import LossSpec
from ._whiten import Whitening

if TYPE_CHECKING:  # pragma: no cover
    from .torch import Loss

#: How a constant factor is applied: "inverse" (a product with L^-1, precomputed in float64)
#: or "solve" (a triangular solve against L). Measured by benchmarks/bench_whitening.py.
WHITEN_BY = "inverse"


class _State:
    """A module's transform state (kept in its ``__dict__``: plain Python, not a buffer)."""

    __slots__ = ("kind", "name", "tensor", "cache", "fast")

    def __init__(self, name: str | None, fast: bool) -> None:
        self.kind: str | None = None  # None | "inverse" | "solve" | "trainable" | "precision"
        self.name = name
        self.tensor: Tensor | None = None  # a trainable scale_tril that is not a Parameter
        self.cache: tuple[Any, tuple[Tensor, Tensor]] | None = None  # the factor cast to the input
        self.fast = fast  # the whitened MSE fast path applies

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if k != "cache"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self.cache = None


def _state(module: Loss) -> _State:
    st: _State = module.__dict__["_whiten_state"]
    return st


def needs_structured(spec: LossSpec) -> bool:
    """Whether a module with ``spec`` takes the structured path (a transform, or a Gaussian
    likelihood whose variance or factor the plain paths do not know)."""
    return spec.transform is not None or spec.penalty == "gaussian_nll"


def _eps_of(dtype: torch.dtype) -> float:
    return float(torch.finfo(dtype).eps) if dtype.is_floating_point else float(np.finfo(np.float64).eps)


def _host(name: str, m: Any) -> tuple[np.ndarray, float]:
    """A float64 NumPy copy of a concrete matrix, and the epsilon of the dtype it came in."""
    if isinstance(m, Tensor):
        if m.dtype.is_complex or not (m.dtype.is_floating_point or m.dtype in _INT_DTYPES):
            raise _core.dtype_error(name, str(m.dtype))
        return m.detach().to("cpu", torch.float64).numpy(), _eps_of(m.dtype)
    a = np.asarray(m)
    if a.dtype.kind not in "biuf":
        raise _core.dtype_error(name, str(a.dtype))
    eps = float(np.finfo(a.dtype).eps) if a.dtype.kind == "f" else float(np.finfo(np.float64).eps)
    return a.astype(np.float64), eps


_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)


def _tracing() -> bool:
    return bool(torch.compiler.is_compiling() or torch.jit.is_tracing())


def _const(a: np.ndarray | None, like: Tensor) -> Tensor | None:
    return None if a is None else torch.as_tensor(a, dtype=like.dtype, device=like.device)


def functional_whitening(
    spec: LossSpec,
    like: Tensor,
    covariance: Any,
    scale_tril: Any,
    precision: Any,
    check_values: bool,
) -> tuple[LossSpec, Whitening | None]:
    """The functional form's transform: the spec resolved, the matrix prepared for ``like``
    (the prediction, already in the compute dtype)."""
    name, m = _whiten.pick_matrix(covariance, scale_tril, precision)
    spec = _whiten.resolve_spec(spec, name)
    if name is None:
        return spec, None
    if isinstance(m, Tensor) and m.requires_grad:  # differentiable: in its own (compute) dtype
        _whiten.check_matrix_shape(name, tuple(m.shape))
        if check_values and not _tracing():
            _whiten.host_factor(name, *_host(name, m))  # the same errors as a constant
        mt = m.to(like.dtype)
        if name == "precision":
            return spec, Whitening("precision", mt, None, name)
        if name == "covariance":
            mt = torch.linalg.cholesky(mt)
        return spec, Whitening("solve", mt, None, name)
    f = _whiten.host_factor(name, *_host(name, m))
    if name == "precision":
        return spec, Whitening("precision", _const(f.precision, like), None, name)
    if WHITEN_BY == "inverse":
        return spec, Whitening("inverse", _const(f.inv_scale_tril, like), _const(f.log_diag, like), name)
    return spec, Whitening("solve", _const(f.scale_tril, like), _const(f.log_diag, like), name)


def prepare_var(var: Any, like: Tensor) -> Tensor | float | None:
    """``var`` as the compute dtype (a Python number stays a number, as torch allows)."""
    if var is None:
        return None
    if isinstance(var, (int, float)) and not isinstance(var, bool):
        return float(var)
    if not isinstance(var, Tensor):
        var = torch.as_tensor(var, device=like.device)
    if var.dtype.is_complex:
        raise _core.dtype_error("var", str(var.dtype))
    return var.to(like.dtype)


# ---------------------------------------------------------------------------------------
# Modules: the matrix is registered at construction
# ---------------------------------------------------------------------------------------


def setup_module(module: Loss, spec: LossSpec, covariance: Any, scale_tril: Any, precision: Any,
                 check_values: bool) -> LossSpec:
    """Validate and factor the module's matrix once, register it (buffers in float64, or the
    trainable ``scale_tril`` parameter) and return the spec with its transform resolved."""
    name, m = _whiten.pick_matrix(covariance, scale_tril, precision)
    spec = _whiten.resolve_spec(spec, name)
    st = _State(name, spec.transform == "whiten" and _plain_whitened(spec) and name is not None
                and len(tuple(np.shape(m))) == 2)
    module.__dict__["_whiten_state"] = st
    if name is None:
        return spec
    trainable = isinstance(m, Tensor) and (m.requires_grad or isinstance(m, nn.Parameter))
    if trainable and name != "scale_tril":
        raise ValueError(
            f"a trainable {name} is not supported by the module: pass a trainable scale_tril "
            "(the Cholesky factor) instead, or use the functional form"
        )
    f = _whiten.host_factor(name, *_host(name, m))
    if trainable:
        if isinstance(m, nn.Parameter):
            module.register_parameter("scale_tril", m)
        else:  # a tensor that requires grad: keep it, so that its gradient flows to it
            st.tensor = m
        st.kind = "trainable"
        return spec
    if name == "precision":
        module.register_buffer("precision", torch.as_tensor(f.precision))
        st.kind = "precision"
        return spec
    if WHITEN_BY == "inverse":
        module.register_buffer("inv_scale_tril", torch.as_tensor(f.inv_scale_tril))
    else:
        module.register_buffer("scale_tril", torch.as_tensor(f.scale_tril))
    module.register_buffer("log_scale_diag", torch.as_tensor(f.log_diag))
    st.kind = WHITEN_BY
    return spec


#: The buffers that hold a constant matrix, by how it is applied (``_State.kind``).
_FACTOR_BUFFERS: dict[str | None, tuple[str, ...]] = {
    None: (), "inverse": ("inv_scale_tril", "log_scale_diag"), "solve": ("scale_tril", "log_scale_diag"),
    "precision": ("precision",), "trainable": (),
}
_MATRIX_NAMES = (None, "covariance", "scale_tril", "precision")


def get_state(module: Loss) -> dict[str, Any]:
    """The matrix part of the module's extra state: which matrix it was given and how it is
    applied (the tensors themselves are buffers or the ``scale_tril`` parameter, except a
    trainable ``scale_tril`` that is not a Parameter, which is kept here)."""
    st = _state(module)
    out: dict[str, Any] = {"matrix": st.name, "factor": st.kind}
    if st.tensor is not None:
        out["scale_tril_tensor"] = st.tensor.detach()
    return out


def check_state(module: Loss, extra: dict[str, Any], spec: LossSpec) -> None:
    """A ValueError where the matrix part of a saved state is not one this code wrote."""
    name, kind = extra.get("matrix"), extra.get("factor")
    if name not in _MATRIX_NAMES or kind not in _FACTOR_BUFFERS:
        raise ValueError(f"unknown matrix {name!r} / factor {kind!r} in the saved state of {type(module).__name__}")
    if (name is None) != (spec.transform is None) or (name is None) != (kind is None):
        raise ValueError(f"the saved state's matrix ({name!r}, {kind!r}) does not match its spec's "
                         f"transform={spec.transform!r}")
    t = extra.get("scale_tril_tensor")
    if t is not None and not (kind == "trainable" and isinstance(t, Tensor)):
        raise ValueError(f"a scale_tril_tensor in the saved state of {type(module).__name__} with factor {kind!r}")


def load_structure(module: Loss, extra: dict[str, Any], spec: LossSpec, state_dict: Any, prefix: str,
                   place: Any) -> None:
    """Give ``module`` the matrix slots of a saved state (checked by :func:`check_state`),
    before torch copies the tensors into them: stale buffers (or the trainable parameter)
    are removed, absent ones are registered with the saved shape and dtype (on the device
    ``place(current)`` names), so that a module built with other (or no) matrix arguments
    loads strictly. A trainable ``scale_tril`` Parameter of the same shape is kept (copied
    into in place, so that an optimizer holding it keeps training it)."""
    name, kind = extra.get("matrix"), extra.get("factor")
    keep = _FACTOR_BUFFERS[kind]
    for b in ("inv_scale_tril", "log_scale_diag", "precision", "scale_tril"):
        if b in module._buffers and b not in keep:
            del module._buffers[b]
    tensor = extra.get("scale_tril_tensor")
    param = kind == "trainable" and tensor is None
    if not param and "scale_tril" in module._parameters:
        del module._parameters["scale_tril"]
    factor = None
    for b in keep:
        t = state_dict.get(prefix + b)
        if not isinstance(t, Tensor):
            continue  # torch reports the missing key, or we do
        cur = module._buffers.get(b)
        if cur is None or cur.shape != t.shape or cur.dtype != t.dtype:
            module.register_buffer(b, torch.empty_like(t, device=place(cur)))
        if b != "log_scale_diag":
            factor = t
    if param:
        t = state_dict.get(prefix + "scale_tril")
        if isinstance(t, Tensor):
            factor = t
            if module._parameters.get("scale_tril") is None:
                module.register_parameter("scale_tril", nn.Parameter(torch.empty_like(t, device=place(None))))
    st = _state(module)
    if tensor is not None:
        factor = tensor
        if st.tensor is not None and st.tensor.shape == tensor.shape:
            with torch.no_grad():
                st.tensor.copy_(tensor)
        else:
            st.tensor = tensor.detach().clone().to(place(st.tensor)).requires_grad_(True)
    else:
        st.tensor = None
    st.name, st.kind, st.cache = name, kind, None
    st.fast = (spec.transform == "whiten" and _plain_whitened(spec) and factor is not None
               and factor.ndim == 2)


def _plain_whitened(spec: LossSpec) -> bool:
    """The GLS loss with nothing else: square penalty, a plain reduction, no finalizer."""
    return spec == LossSpec(penalty="square", reduction=spec.reduction, transform=spec.transform) and (
        spec.reduction in ("none", "sum", "mean", "sum_over_batch_size"))


def _cast(module: Loss, name: str, like: Tensor) -> Tensor:
    """A constant buffer in ``like``'s dtype and device, cast once and cached (the cache
    follows the buffer: moving or loading it invalidates the copy)."""
    return _cast_pair(module, name, like)[0]


def _cast_pair(module: Loss, name: str, like: Tensor) -> tuple[Tensor, Tensor]:
    """The cast buffer and its transpose, contiguous, cached together."""
    buf = module._buffers[name]
    assert buf is not None
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        # traced: the cast is part of the graph; a cache keyed on the data pointer would
        # break it (Dynamo cannot compare data pointers; export's fake tensors have none)
        t = buf.to(like.device, like.dtype)
        return t, t.mT
    st = _state(module)
    key = (name, like.dtype, like.device, buf.data_ptr(), buf._version)
    cache = st.cache
    if cache is not None and cache[0] == key:
        return cache[1]
    t = buf.to(like.device, like.dtype)
    pair = (t, t.mT.contiguous())
    st.cache = (key, pair)
    return pair


def _buffer(module: Loss, name: str) -> Tensor:
    t = module._buffers[name]
    assert t is not None
    return t


def _trainable(module: Loss) -> Tensor:
    t = _state(module).tensor
    if t is None:
        t = module._parameters["scale_tril"]
    assert t is not None
    return t


class _WhitenedSquareSum(torch.autograd.Function):
    """``sum((r @ m^T)**2) / n`` for a constant factor ``m``: one GEMM forward and one
    GEMM backward, with no elementwise gradient passes (autograd of ``(z * z).mean()`` makes
    three). The sum is torch's cascade sum of ``z * z``, as the general path's. Twice
    differentiable: under ``create_graph`` the backward recomputes z from the saved inputs
    with differentiable operations."""

    @staticmethod
    def forward(ctx: Any, r: Tensor, m: Tensor, m_t: Tensor, n: float) -> Tensor:
        # m_t: m^T, contiguous (MKL's GEMM is faster on it than on the transposed view)
        z = r @ m_t
        ctx.save_for_backward(r, m, z)
        ctx.n = n
        return (z * z).sum() / n

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, None, None, None]:
        r, m, z = ctx.saved_tensors
        if torch.is_grad_enabled():  # a graph of the gradient is being built
            z = r @ m.mT
        grad_r = z @ (m * (g * (2.0 / ctx.n))) if ctx.needs_input_grad[0] else None
        return grad_r, None, None, None


def _fast_forward(module: Loss, input: Any, target: Any) -> Tensor | None:
    """The whitened MSE with one (d, d) factor and no weights, masks or variance: the
    residual, one GEMM (or TRSM), the square and the reduction; None where it does not apply."""
    if not (isinstance(input, Tensor) and isinstance(target, Tensor) and input.dtype == target.dtype
            and input.dtype in (torch.float32, torch.float64) and input.shape == target.shape
            and input.ndim >= 1) or torch.compiler.is_compiling():
        return None
    kind = _state(module).kind
    red = module.spec.reduction
    r = input - target
    if kind == "inverse":
        m, m_t = _cast_pair(module, "inv_scale_tril", input)
        if m.shape[-1] != r.shape[-1]:
            return None  # the general path raises the shape error
        if red != "none" and r.numel():
            n = 1.0 if red == "sum" else float(r.numel())
            if r.requires_grad and torch.is_grad_enabled():
                return _WhitenedSquareSum.apply(r, m, m_t, n)
            z = r @ m_t
            return (z * z).sum() / n
        z = r @ m_t
    else:
        lower = _trainable(module) if kind == "trainable" else _cast(module, "scale_tril", input)
        lower = lower.to(input.dtype)
        if lower.shape[-1] != r.shape[-1] or r.ndim < 2:
            return None
        z = torch.linalg.solve_triangular(lower.mT, r, upper=True, left=False)
    sq = z * z
    if red == "none":
        return sq
    if red == "sum":
        return sq.sum()
    if sq.numel() == 0:
        return sq.sum() * 0.0
    return sq.mean()


def module_whitening(module: Loss, like: Tensor) -> Whitening | None:
    st = _state(module)
    kind, name = st.kind, st.name or "covariance"
    if kind is None:
        return None
    dt, dev = like.dtype, like.device
    if kind == "trainable":
        return Whitening("solve", _trainable(module).to(dt), None, name)
    if kind == "precision":
        return Whitening("precision", _buffer(module, "precision").to(dev, dt), None, name)
    matrix = _cast(module, "inv_scale_tril" if kind == "inverse" else "scale_tril", like)
    return Whitening(kind, matrix, _buffer(module, "log_scale_diag").to(dev, dt), name)


def module_forward(module: Loss, input: Any, target: Any, weight: Any, sample_weight: Any,
                   mask: Any, var: Any) -> Tensor:
    from . import torch as mt

    if _state(module).fast and weight is None and sample_weight is None and mask is None and var is None \
            and module._buffers["weight"] is None and module._buffers["mask"] is None:
        out = _fast_forward(module, input, target)
        if out is not None:
            return out
    mw, mm = module._buffers["weight"], module._buffers["mask"]
    if mw is not None:
        weight = mw if weight is None else mw * weight
    if mm is not None:
        mask = mm if mask is None else torch.logical_and(mm, mask)
    input, target, weight, sample_weight, mask = mt._prepare(input, target, weight, sample_weight, mask)
    return _core.run(mt._OPS, module.spec, input, target, weight=weight, sample_weight=sample_weight,
                     mask=mask, names=mt.NAMES, check_values=module.check_values,
                     whitening=module_whitening(module, input), var=prepare_var(var, input))


def functional_loss(spec: LossSpec, input: Any, target: Any, weight: Any, sample_weight: Any,
                    mask: Any, check_values: bool, covariance: Any, scale_tril: Any, precision: Any,
                    var: Any) -> Tensor:
    from . import torch as mt

    input, target, weight, sample_weight, mask = mt._prepare(input, target, weight, sample_weight, mask)
    spec, whitening = functional_whitening(spec, input, covariance, scale_tril, precision, check_values)
    return _core.run(mt._OPS, spec, input, target, weight=weight, sample_weight=sample_weight,
                     mask=mask, names=mt.NAMES, check_values=check_values, whitening=whitening,
                     var=prepare_var(var, input))
