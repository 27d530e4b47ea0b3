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
            raise TypeError(f"{name} has dtype {str(m.dtype).removeprefix('torch.')}; expected a real matrix")
        return m.detach().to("cpu", torch.float64).numpy(), _eps_of(m.dtype)
    a = np.asarray(m)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} has dtype {a.dtype}; expected a real matrix")
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
        raise TypeError("var has a complex dtype; only real inputs are supported")
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
    module._whiten_kind = None
    module._whiten_name = name
    module._scale_tril_tensor = None
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
            module._scale_tril_tensor = m
        module._whiten_kind = "trainable"
        return spec
    if name == "precision":
        module.register_buffer("precision", torch.as_tensor(f.precision))
        module._whiten_kind = "precision"
        return spec
    if WHITEN_BY == "inverse":
        module.register_buffer("inv_scale_tril", torch.as_tensor(f.inv_scale_tril))
    else:
        module.register_buffer("scale_tril", torch.as_tensor(f.scale_tril))
    module.register_buffer("log_scale_diag", torch.as_tensor(f.log_diag))
    module._whiten_kind = WHITEN_BY
    return spec


def module_whitening(module: Loss, like: Tensor) -> Whitening | None:
    kind, name = module._whiten_kind, module._whiten_name
    if kind is None:
        return None
    dt, dev = like.dtype, like.device
    if kind == "trainable":
        lower = module._scale_tril_tensor
        if lower is None:
            lower = module.scale_tril
        return Whitening("solve", lower.to(dt), None, name)
    if kind == "precision":
        return Whitening("precision", module.precision.to(dev, dt), None, name)
    matrix = module.inv_scale_tril if kind == "inverse" else module.scale_tril
    return Whitening(kind, matrix.to(dev, dt), module.log_scale_diag.to(dev, dt), name)


def module_forward(module: Loss, input: Any, target: Any, weight: Any, sample_weight: Any,
                   mask: Any, var: Any) -> Tensor:
    from . import torch as mt

    if module.weight is not None:
        weight = module.weight if weight is None else module.weight * weight
    if module.mask is not None:
        mask = module.mask if mask is None else torch.logical_and(module.mask, mask)
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
