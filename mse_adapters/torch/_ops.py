"""The torch adapter's array primitives (:class:`TorchOps`): the pipeline's interface in
torch, shared by the module, the fused kernels and the metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._ops import Ops

__all__ = ["TorchOps", "OPS"]


def _fake(x: Tensor) -> bool:
    """Whether ``x`` is a fake tensor (torch.compile's tracing, torch.export): a plain tensor
    or parameter never is (a subclass is asked)."""
    if type(x) is Tensor or type(x) is torch.nn.Parameter:
        return False
    try:
        from torch._subclasses.fake_tensor import is_fake
    except ImportError:  # pragma: no cover - older torch
        return False
    return bool(is_fake(x))


class _TablePenalty(torch.autograd.Function):
    """rho(r) with penalty parameters given as tensors whose derivatives the table gives (d rho
    / d param, and rho'): exact where autograd of the formula's branches is not (Barron's
    alpha = 2). The backward is written in differentiable operations (a double backward
    differentiates rho' and d rho / d param)."""

    @staticmethod
    def forward(ctx: Any, r: Tensor, job: Any, *values: Tensor) -> Tensor:  # type: ignore[override]
        row, params, names = job
        ctx.save_for_backward(r, *values)
        ctx.job = job
        return row.value(OPS, r, params.replace(**dict(zip(names, values))))  # type: ignore[no-any-return]

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        r, *values = ctx.saved_tensors
        row, params, names = ctx.job
        p = params.replace(**dict(zip(names, values)))
        gr = g * row.grad(OPS, r, p) if ctx.needs_input_grad[0] else None
        gp = [(g * row.param_grads[n](OPS, r, p)).sum_to_size(v.shape) if need else None
              for n, v, need in zip(names, values, ctx.needs_input_grad[2:])]
        return (gr, None, *gp)


class TorchOps(Ops):
    """The pipeline's primitives in torch."""

    name = "torch"
    framework = "torch"
    accepts = "a torch.Tensor or an array-like"
    #: A constant covariance is applied as a product with the float64-formed L^-1: faster
    #: than a triangular solve on CPU (benchmarks/bench_whitening.py) and as accurate.
    whiten_by = "inverse"

    def asarray(self, x: Any, dtype: str | None = None, like: Any = None) -> Tensor:
        if not isinstance(x, Tensor):
            x = torch.as_tensor(x, device=None if like is None else like.device)
        if dtype is not None and str(x.dtype)[6:] != dtype:
            x = x.to(getattr(torch, dtype))
        return x

    def dtype(self, x: Any) -> str | None:
        return str(x.dtype).removeprefix("torch.") if isinstance(x, Tensor) else None

    def float_dtype(self, *xs: Tensor) -> str:
        dt = xs[0].dtype
        for x in xs[1:]:
            dt = torch.promote_types(dt, x.dtype)
        return self.dtype_name(dt if dt.is_floating_point else torch.get_default_dtype())

    @staticmethod
    def dtype_name(dt: torch.dtype) -> str:
        return str(dt).removeprefix("torch.")

    def constant(self, values: Any, like: Tensor) -> Tensor:
        return torch.as_tensor(np.asarray(values), dtype=like.dtype, device=like.device)

    def to_host(self, x: Any) -> np.ndarray:
        if not isinstance(x, Tensor):
            return np.asarray(x)
        x = x.detach().cpu()
        return (x.double() if x.dtype in (torch.float16, torch.bfloat16) else x).numpy()

    def is_abstract(self, x: Any) -> bool:
        if torch.compiler.is_compiling() or torch.jit.is_tracing() or torch._C._are_functorch_transforms_active():
            return True
        return isinstance(x, Tensor) and (x.device.type == "meta" or _fake(x))

    def is_traced(self, x: Any) -> bool:
        return isinstance(x, Tensor) and (x.requires_grad or self.is_abstract(x))

    def penalty(self, row: Any, r: Tensor, params: Any) -> Tensor:
        arrays = getattr(params, "arrays", None)
        if (arrays and row.param_grads and all(n in row.param_grads for n in arrays)
                and any(isinstance(v, Tensor) and v.requires_grad for v in arrays.values())
                and not torch._C._are_functorch_transforms_active()):
            names = tuple(arrays)  # a parameter differentiated: the table's derivatives (Barron's)
            return _TablePenalty.apply(r, (row, params, names), *(arrays[n] for n in names))  # type: ignore[no-any-return]
        return row.value(self, r, params)  # type: ignore[no-any-return]

    def where(self, cond: Tensor, x: Any, y: Any) -> Tensor:
        return torch.where(cond, x, y)

    def abs(self, x: Tensor) -> Tensor:
        return torch.abs(x)  # its derivative is sgn(x): 0 at 0

    def sign(self, x: Tensor) -> Tensor:
        return torch.sign(x)

    def sqrt(self, x: Tensor) -> Tensor:
        return torch.sqrt(x)

    def expm1(self, x: Tensor) -> Tensor:
        return torch.expm1(x)

    def log(self, x: Tensor) -> Tensor:
        return torch.log(x)

    def log1p(self, x: Tensor) -> Tensor:
        return torch.log1p(x)

    def clamp_min_nograd(self, x: Tensor, lo: float) -> Tensor:
        x = x.clone()  # exactly torch.nn.GaussianNLLLoss: clamped in place, invisible to autograd
        with torch.no_grad():
            x.clamp_(min=lo)
        return x

    def shape(self, x: Tensor) -> tuple[int, ...]:
        return tuple(x.shape)

    def reshape(self, x: Tensor, shape: tuple[int, ...]) -> Tensor:
        return torch.reshape(x, shape)

    def broadcast_to(self, x: Tensor, shape: tuple[int, ...]) -> Tensor:
        return x if x.shape == shape else torch.broadcast_to(x, shape)

    def sum(self, x: Tensor, axis: tuple[int, ...] | None = None, dtype: str | None = None) -> Tensor:
        dt = None if dtype is None else getattr(torch, dtype)
        if axis is None:
            if x.dtype == torch.bool and dt is not None:  # a count: no float copy of the mask (3x faster)
                return torch.count_nonzero(x).to(dt)
            return torch.sum(x, dtype=dt)
        if not axis:
            return x if dt is None else x.to(dt)
        return torch.sum(x, dim=axis, dtype=dt)

    def extrema(self, x: Tensor) -> tuple[Tensor, Tensor]:
        lo, hi = torch.aminmax(x.to(torch.uint8) if x.dtype == torch.bool else x)  # one pass, NaN-propagating
        return lo, hi

    def matvec(self, m: Tensor, x: Tensor) -> Tensor:
        if m.ndim == 2:  # one matrix: a single GEMM over every sample
            return x @ m.mT
        return torch.matmul(m, x.unsqueeze(-1)).squeeze(-1)

    def solve_tril(self, lower: Tensor, x: Tensor) -> Tensor:
        if lower.ndim == 2 and x.ndim >= 2:  # z L^T = x row by row: one TRSM, no transposes
            return torch.linalg.solve_triangular(lower.mT, x, upper=True, left=False)
        return torch.linalg.solve_triangular(lower, x.unsqueeze(-1), upper=False).squeeze(-1)

    def cholesky(self, m: Tensor) -> Tensor:
        return torch.linalg.cholesky(m)

    def describe(self, x: Any) -> Any:
        if isinstance(x, Tensor):
            return (x.dtype, x.shape, x.device, x.requires_grad)
        return super().describe(x)

    def host_values(self, stats: Sequence[Any]) -> list[Any]:
        # every statistic of every check of a call in one transfer (one host sync); on the
        # CPU reading a scalar is no synchronisation, and stacking would cost an operation
        if not all(isinstance(s, Tensor) and s.ndim == 0 for s in stats):
            return [self.to_host(s) for s in stats]
        if all(s.is_cpu for s in stats):
            return [s.item() for s in stats]
        if any(s.dtype != stats[0].dtype for s in stats):
            stats = [s.to(torch.float64) for s in stats]
        return torch.stack(list(stats)).tolist()  # type: ignore[no-any-return]

    def verify(self, checks: Sequence[tuple[Any, Any]]) -> None:
        # the tracing state once for the call, then each array's kind (meta, fake)
        if torch.compiler.is_compiling() or torch.jit.is_tracing() or torch._C._are_functorch_transforms_active():
            return
        for _, x in checks:
            if isinstance(x, Tensor) and (x.is_meta or _fake(x)):
                return
        self._verify(checks)


OPS = TorchOps()
