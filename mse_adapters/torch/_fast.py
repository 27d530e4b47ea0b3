"""Fast kernels of the torch adapter (docs/design.md, "Performance"): the general pipeline's
semantics at the cost of the built-ins. :mod:`mse_adapters.torch` decides, once per spec,
which of them applies; tests/torch/test_fused.py proves each equal to the general pipeline,
value, gradient and second derivative, for every option it covers.

- :func:`plain_kernel`: no weights, masks or missing targets and a penalty torch has a
  fused kernel for: that aten kernel, bound to its reduction code.
- :class:`FusedLoss`: every elementwise penalty with any weight, sample weight, mask and
  missing targets, reduced by any reduction, optionally square-rooted (RMSE). A loss is
  memory-bound, and on a CPU a freshly allocated large array costs about as much in page
  faults as the arithmetic done in it. So the forward walks the inputs in blocks of rows
  (:data:`BLOCK` elements, cache-sized): per block it forms the residual, selects the
  valid units, evaluates the penalty, weights and reduces it, and turns the residual into
  the gradient's block w m rho'(r); the temporaries are per-thread buffers of one block
  (:func:`scratch`), and the one full-size array allocated is the gradient, which the
  backward scales by the cotangent in place (one pass). Under ``torch.compile`` the same
  computation in functional form, for the compiler to fuse.
- :func:`whitened_square`: the GLS loss with one constant factor (one GEMM each way).

Masks are applied by a select, never by multiplying by zero (0 * NaN = NaN): the residual's
bits are AND-ed with the mask widened to all-ones / all-zeros integers of the same width,
which gives exactly +0.0 where the mask is false, whatever the target holds there (the
same select as ``torch.where(valid, r, 0)``, whose CPU kernel branches per element).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from .. import _core
from .._penalties import LOG_COSH_BIG, PENALTY_TABLE
from ._ops import OPS

__all__ = ["plain_kernel", "FusedLoss", "Job", "fused_loss", "whitened_square", "REDUCTION_CODE", "Plan", "Kernel",
           "kernel", "KERNELS", "BLOCK", "scratch", "clear_scratch"]

#: A reduction's denominator: an array, a count (a Python number) or none.
Den = Tensor | float | None
#: aten's reduction codes. ``sum_over_batch_size`` without weights or masks is the mean.
REDUCTION_CODE = {"none": 0, "mean": 1, "sum_over_batch_size": 1, "sum": 2}

#: The integer type of each float type's width, for the bitwise select.
_BITS = {torch.float32: torch.int32, torch.float64: torch.int64}
#: Up to this many elements the fused forward runs as whole-array operations
#: (:func:`_forward_direct`); above, block by block (:func:`_forward_blocks`).
DIRECT = 1 << 16
#: Elements per block of the fused forward (about 1 MB of float32: a few arrays of it stay
#: in the caches while every step of a block runs).
BLOCK = 1 << 18


def plain_kernel(penalty: str, delta: float, beta: float, reduction: str) -> Callable[[Tensor, Tensor], Tensor] | None:
    """The fused aten kernel computing ``penalty`` reduced by ``reduction`` on two tensors of
    the same shape and dtype, with everything but the tensors bound now; None if torch has
    none. (``F.mse_loss`` and friends cost more than the kernel itself on a small input:
    they check for overrides in Python and broadcast, which equal shapes make pointless;
    ``torch._C._nn`` still dispatches ``__torch_function__`` overrides and modes.)"""
    code: Any = REDUCTION_CODE.get(reduction)  # an int (torch's stubs say str, wrongly)
    if code is None:
        return None
    nn_ = torch._C._nn
    if penalty == "square":
        mse = nn_.mse_loss
        return lambda i, t: mse(i, t, code)
    if penalty == "abs" or (penalty == "smooth_l1" and beta == 0.0):
        l1 = nn_.l1_loss
        return lambda i, t: l1(i, t, code)
    if penalty == "huber":
        huber = nn_.huber_loss
        return lambda i, t: huber(i, t, code, delta)
    if penalty == "smooth_l1":
        smooth = nn_.smooth_l1_loss
        return lambda i, t: smooth(i, t, code, beta)
    return None


_LOCAL = threading.local()


def scratch(like: Tensor, slot: str, dtype: torch.dtype | None = None) -> Tensor:
    """A private temporary shaped like ``like``, reused by the next call (per thread, one
    buffer per ``slot``, grown to the largest block seen). What the fused path returns or
    saves is always freshly allocated; on another device than the CPU, or traced, a new
    tensor."""
    dtype = like.dtype if dtype is None else dtype
    if like.device.type != "cpu" or torch.compiler.is_compiling():
        return torch.empty(like.shape, dtype=dtype, device=like.device)
    cache: dict[str, Tensor] | None = getattr(_LOCAL, "buffers", None)
    if cache is None:
        cache = _LOCAL.buffers = {}
    n = like.numel()
    t = cache.get(slot)
    if t is None or t.numel() < n or t.dtype != dtype:
        cache.pop(slot, None)
        t = cache[slot] = torch.empty(max(n, 1), dtype=dtype, device=like.device)
    return t[:n].view(like.shape)


def clear_scratch() -> None:
    """Release the fused path's per-thread temporaries."""
    _LOCAL.buffers = {}


def _select(x: Tensor, bits: Tensor | None) -> Tensor:
    """In place: x where the mask is true, exactly +0.0 elsewhere (``bits`` is -1 / 0)."""
    if bits is not None:
        x.view(bits.dtype).bitwise_and_(bits)
    return x


class Kernel:
    """A penalty's eager torch implementation for the fused path: ``value(r, out)`` writes
    rho(r) into ``out`` (a new tensor when ``out`` is None); ``grad_(r)`` writes rho'(r) into
    ``r`` (the fused path's private residual, a block of it). The default is the penalty
    table's ``value`` and ``grad`` (written once, against the Ops primitives): every row of
    the table has a fused path. A penalty torch has a fused aten kernel for (or a cheaper
    in-place composition) may substitute it here (:data:`KERNELS`), and
    tests/torch/test_fused.py proves each equal to the general pipeline."""

    def __init__(self, name: str, params: Any, ops: Any) -> None:
        self.row = PENALTY_TABLE[name]
        self.params = params
        self.ops = ops

    @classmethod
    def applies(cls, params: Any) -> bool:
        """Whether this implementation computes the penalty at these (Python-float)
        parameters; where not, the table's row runs."""
        return True

    def value(self, r: Tensor, out: Tensor | None) -> Tensor:
        q = self.row.value(self.ops, r, self.params)
        return q if out is None else out.copy_(q)

    def grad_(self, r: Tensor) -> Tensor:
        return r.copy_(self.row.grad(self.ops, r, self.params))


def _zero_like(r: Tensor) -> Tensor:
    return torch.zeros((), dtype=r.dtype, device=r.device).expand(r.shape)


class _Square(Kernel):
    def value(self, r: Tensor, out: Tensor | None) -> Tensor:
        return torch.mul(r, r, out=out)

    def grad_(self, r: Tensor) -> Tensor:
        return r.mul_(2.0)


class _Abs(Kernel):
    def value(self, r: Tensor, out: Tensor | None) -> Tensor:
        return torch.abs(r, out=out)

    def grad_(self, r: Tensor) -> Tensor:
        return r.sign_()


class _Huber(Kernel):
    def value(self, r: Tensor, out: Tensor | None) -> Tensor:
        return torch._C._nn.huber_loss(r, _zero_like(r), 0, self.params.delta, out=out)  # type: ignore[call-arg,arg-type]

    def grad_(self, r: Tensor) -> Tensor:
        d = self.params.delta
        return r.clamp_(-d, d)


class _SmoothL1(Kernel):
    def value(self, r: Tensor, out: Tensor | None) -> Tensor:
        return torch._C._nn.smooth_l1_loss(r, _zero_like(r), 0, self.params.beta, out=out)  # type: ignore[call-arg,arg-type]

    def grad_(self, r: Tensor) -> Tensor:
        b = self.params.beta
        return r.clamp_(-b, b).mul_(1.0 / b)


class _LogCosh(Kernel):
    # Above LOG_COSH_BIG, log cosh r = |r| - log 2 to within e^-2|r| (below float64's
    # rounding); below it, log1p(2 sinh^2(r/2)), accurate for small r (where
    # |r| + softplus(-2|r|) - log 2 cancels) and free of overflow.
    def value(self, r: Tensor, out: Tensor | None) -> Tensor:
        excess = torch.abs(r, out=scratch(r, "log_cosh")).sub_(LOG_COSH_BIG).clamp_(min=0.0)
        h = torch.abs(r, out=out).clamp_(max=LOG_COSH_BIG).mul_(0.5).sinh_()
        return h.mul_(h).mul_(2.0).log1p_().add_(excess)

    def grad_(self, r: Tensor) -> Tensor:
        return r.tanh_()


class _Expectile(Kernel):
    def value(self, r: Tensor, out: Tensor | None) -> Tensor:
        tau = self.params.tau  # (tau r + (1 - 2 tau) relu(r)) r = asym(r) r^2
        pos = torch.clamp(r, min=0.0, out=scratch(r, "asym"))
        return torch.mul(r, tau, out=out).add_(pos, alpha=1.0 - 2.0 * tau).mul_(r)

    def grad_(self, r: Tensor) -> Tensor:
        tau = self.params.tau
        pos = torch.clamp(r, min=0.0, out=scratch(r, "asym"))
        return r.mul_(2.0 * tau).add_(pos, alpha=2.0 * (1.0 - 2.0 * tau))


class _PseudoHuber(Kernel):
    def value(self, r: Tensor, out: Tensor | None) -> Tensor:
        s = torch.mul(r, r, out=scratch(r, "pseudo_huber"))  # r^2 / (sqrt(1 + (r/delta)^2) + 1)
        den = torch.mul(s, 1.0 / self.params.delta**2, out=out).add_(1.0).sqrt_().add_(1.0)
        return torch.div(s, den, out=den)

    def grad_(self, r: Tensor) -> Tensor:
        s = torch.mul(r, r, out=scratch(r, "pseudo_huber"))
        return r.div_(s.mul_(1.0 / self.params.delta**2).add_(1.0).sqrt_())


class _Quantile(Kernel):
    def value(self, r: Tensor, out: Tensor | None) -> Tensor:
        tau = self.params.tau  # tau |r| + (1 - 2 tau) relu(r)
        pos = torch.clamp(r, min=0.0, out=scratch(r, "asym"))
        return torch.abs(r, out=out).mul_(tau).add_(pos, alpha=1.0 - 2.0 * tau)

    def grad_(self, r: Tensor) -> Tensor:
        tau = self.params.tau  # tau sign(r) + (1 - 2 tau) [r > 0]
        pos = torch.gt(r, 0.0, out=scratch(r, "positive", torch.bool))
        return r.sign_().mul_(tau).add_(pos, alpha=1.0 - 2.0 * tau)


class _Barron(Kernel):
    """Barron's loss with Python-float alpha and scale, in place: each named case's closed form
    (alpha = 2, 0, -inf), else scale**2 (b / a) expm1((a / 2) log1p(x**2 / b)), b = |a - 2|,
    x = r / scale, and rho' = r (1 + x**2 / b)**(a / 2 - 1) (accurate to a few ulps times
    log(x**2 / b), which the table's form avoids near alpha = 2: within :data:`NEAR_TWO` of it
    the table's row runs)."""

    NEAR_TWO = 1e-3

    @classmethod
    def applies(cls, params: Any) -> bool:
        a = params.alpha
        return a == 2.0 or abs(a - 2.0) >= cls.NEAR_TWO

    def value(self, r: Tensor, out: Tensor | None) -> Tensor:
        a, c2 = self.params.alpha, self.params.scale ** 2
        q = torch.mul(r, r, out=out)
        if a == 2.0:
            return q.mul_(0.5)
        if a == 0.0:
            return q.mul_(0.5 / c2).log1p_().mul_(c2)
        if a == -math.inf:
            return q.mul_(-0.5 / c2).expm1_().mul_(-c2)
        b = abs(a - 2.0)
        return q.mul_(1.0 / (c2 * b)).log1p_().mul_(0.5 * a).expm1_().mul_(c2 * b / a)

    def grad_(self, r: Tensor) -> Tensor:
        a, c2 = self.params.alpha, self.params.scale ** 2
        if a == 2.0:
            return r
        s = torch.mul(r, r, out=scratch(r, "barron"))
        if a == -math.inf:
            return r.mul_(s.mul_(-0.5 / c2).exp_())
        if a == 0.0:
            return r.div_(s.mul_(0.5 / c2).add_(1.0))
        b = abs(a - 2.0)
        return r.mul_(s.mul_(1.0 / (c2 * b)).log1p_().mul_(0.5 * a - 1.0).exp_())


#: The eager kernels with Python-float parameters (a tensor parameter takes the table's).
KERNELS: dict[str, type[Kernel]] = {"square": _Square, "abs": _Abs, "huber": _Huber, "smooth_l1": _SmoothL1,
                                    "log_cosh": _LogCosh, "expectile": _Expectile,
                                    "pseudo_huber": _PseudoHuber, "quantile": _Quantile, "barron": _Barron}


def kernel(name: str, params: Any, ops: Any, tensor_params: bool) -> Kernel:
    """The eager kernel of penalty ``name`` (the table's when a parameter is a tensor, or for
    Smooth L1 with beta = 0, which is |r|)."""
    if tensor_params:
        return Kernel(name, params, ops)
    if name == "smooth_l1" and params.beta == 0.0:
        return _Abs(name, params, ops)
    cls = KERNELS.get(name, Kernel)
    return (cls if cls.applies(params) else Kernel)(name, params, ops)


class Plan:
    """What a fused call reduces to (static, from the spec and which options are given).

    ``kind``: ``"none"``, ``"sum"`` (to a scalar), ``"per_sample"`` (over the non-batch
    axes) or ``"per_output"`` (over all axes but the last); ``norm``: ``None``, ``"weights"``
    (sum(w m)), ``"valid"`` (the number of valid units) or ``"count"``; ``sqrt``: RMSE."""

    __slots__ = ("kind", "norm", "sqrt")

    def __init__(self, kind: str, norm: str | None, sqrt: bool) -> None:
        self.kind, self.norm, self.sqrt = kind, norm, sqrt

    def reduce(self, q: Tensor) -> Tensor:
        """The block's (or the whole input's) contribution, in the reduced shape (an integer
        ``q``, the mask bits, is summed in its own type: no widening copy)."""
        if self.kind == "none":
            return q
        dt = q.dtype if not q.dtype.is_floating_point else None
        if self.kind == "sum":
            return q.sum(dtype=dt)
        if q.ndim == 0:
            return q.reshape(1)
        if self.kind == "per_sample":
            return q.sum(dim=tuple(range(1, q.ndim)), dtype=dt) if q.ndim > 1 else q
        return q.sum(dim=tuple(range(q.ndim - 1)), dtype=dt) if q.ndim > 1 else q.sum(dtype=dt).reshape(1)

    def combine(self, parts: list[Tensor]) -> Tensor:
        """The blocks' contributions together (the blocks are row ranges)."""
        if len(parts) == 1:
            return parts[0]
        if self.kind == "per_sample":
            return torch.cat(parts)
        return torch.stack(parts).sum(dim=0)

    def expand(self, c: Tensor, shape: torch.Size) -> Tensor:
        """The cotangent of the reduced value, aligned with the units."""
        if self.kind == "per_sample" and len(shape) > 1:
            return c.reshape(c.shape + (1,) * (len(shape) - 1))
        return c


def _denominator(den: Den) -> Den:
    """A reduction's denominator with its zeros made 1 (:func:`mse_adapters._core.nonzero`):
    where it is 0, so is the numerator (every unit's w m is 0 there, and rho(0) = 0; a NaN
    stays NaN), so dividing by it is the core's ``safe_div``, in two operations."""
    if den is None or isinstance(den, Tensor):
        return den if den is None else _core.nonzero(OPS, den)
    return den or 1.0


def _divide(num: Tensor, den: Den) -> Tensor:
    return num if den is None else num / den


def _rows(x: Tensor | None, i: int, j: int, ndim: int, rows: int) -> Tensor | None:
    """The block [i, j) of the rows of an operand broadcast against the input."""
    if x is None or x.ndim < ndim or x.shape[0] == 1 or ndim == 0:
        return x
    return x[i:j] if x.shape[0] == rows else x


class Job:
    """What a fused call computes besides its tensors: the penalty's eager kernel (``kern``)
    and its table form (``table``: the traced form and the weight's gradient), the reduction
    (``plan``), the general pipeline (``general(input, target, weight, valid)``, for a double
    backward) and a given normalizer (``norm``: a constant, divided by instead of the batch's
    own). One argument of :class:`FusedLoss` (an autograd.Function's cost grows with its
    arguments)."""

    __slots__ = ("kern", "table", "plan", "general", "norm", "wrt")

    def __init__(self, kern: Kernel, table: Kernel, plan: Plan, general: Callable[..., Tensor],
                 norm: Tensor | None, wrt: tuple[str, ...] = ()) -> None:
        self.kern, self.table, self.plan, self.general, self.norm = kern, table, plan, general, norm
        #: the penalty parameters differentiated (tensors that require grad), by name: the
        #: last arguments of :class:`FusedLoss`
        self.wrt = wrt


class FusedLoss(torch.autograd.Function):
    """sum(w m rho(r)) reduced and finalized (``job.plan``), r = input - target, for any
    penalty, weight (broadcast), validity (mask and present targets: a masked unit counts for
    nothing, whatever its target is) and reduction (see the module documentation and
    :class:`Job`)."""

    @staticmethod
    def forward(ctx: Any, input: Tensor, target: Tensor, weight: Tensor | None,  # type: ignore[override]
                valid: Tensor | None, job: Job, *params: Tensor) -> Tensor:
        plan = job.plan
        traced = torch.compiler.is_compiling() or input.device.type != "cpu"
        need = ctx.needs_input_grad
        need_grad = need[0] or need[1]
        if traced:
            num, den, h, out = _forward_functional(input, target, weight, valid, job.table, plan)
        elif input.numel() <= DIRECT:
            num, den, h, out = _forward_direct(input, target, weight, valid, job.kern, plan, need_grad)
        else:
            num, den, h, out = _forward_blocks(input, target, weight, valid, job.kern, plan, need_grad)
        if job.norm is not None:
            den = job.norm.expand(num.shape)
        # where the denominator is 0 the value is 0 with a zero gradient, also the weight's
        zero = den == 0 if need[2] and isinstance(den, Tensor) else None
        den = _denominator(den)
        value = out if plan.kind == "none" else _divide(num, den)
        mean = value
        if plan.sqrt:
            value = _core.safe_sqrt(OPS, value)
        # saved: the inputs (a double backward differentiates the general pipeline on them),
        # and what the first backward reads: a tensor denominator, the mean and the zero
        # denominators (the weight's gradient), the square root (RMSE)
        extra = (den if isinstance(den, Tensor) else None, mean if need[2] else None, zero,
                 value if plan.sqrt else None)
        ctx.save_for_backward(input, target, weight, valid, *extra)
        ctx.den = den if extra[0] is None else None  # a count (a Python number), or None
        ctx.h = h  # private: w m rho'(r), which the first backward turns into the gradient
        ctx.job = job
        return value

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        input, target, weight, valid, den, mean, zero, value = ctx.saved_tensors
        if den is None:
            den = ctx.den
        need_i, need_t, need_w = ctx.needs_input_grad[:3]
        job = ctx.job
        if torch.is_grad_enabled():
            # create_graph=True: differentiate the general pipeline (higher derivatives)
            return (*_general_grads(job, (input, target, weight, valid), grad, ctx.needs_input_grad), )
        plan = job.plan
        g = grad
        if plan.sqrt:  # d sqrt(m)/dm = 1 / (2 sqrt(m)), taken as 0 at m = 0
            pos = value > 0
            g = torch.where(pos, g * 0.5 / torch.where(pos, value, 1.0), 0.0)
        c = plan.expand(_divide(g, den), input.shape)
        gi = gt = gw = None
        if need_i or need_t:
            gi = _input_grad(ctx, input, target, weight, valid, c)
            if need_t:
                gt = torch.neg(gi)
            if not need_i:
                gi = None
        if need_w:
            table = job.table
            lv = table.row.value(table.ops, _residual(input, target, valid), table.params)
            if plan.norm == "weights" and job.norm is None:  # d(num/den)/dw = (l - mean) / den
                lv = lv - plan.expand(mean, input.shape)
            if valid is not None:
                lv = torch.where(valid, lv, 0.0)
            cw = c if zero is None else torch.where(plan.expand(zero, input.shape), 0.0, c)
            gw = (lv * cw).sum_to_size(weight.shape)
        return gi, gt, gw, None, None, *_param_grads(job, (input, target, weight, valid), c, ctx.needs_input_grad[5:])


def _param_grads(job: Job, inputs: tuple[Tensor, Tensor, Tensor | None, Tensor | None], c: Tensor,
                 needs: tuple[bool, ...]) -> tuple[Tensor | None, ...]:
    """The gradients of the differentiated penalty parameters: the cotangent times w m
    d rho / d param (autograd of the table's value with respect to the parameter)."""
    if not any(needs):
        return tuple(None for _ in needs)
    input, target, weight, valid = inputs
    table = job.table
    row, r = table.row, _residual(input, target, valid)
    coef = c.expand(input.shape) if weight is None else c * weight
    if valid is not None:
        coef = torch.where(valid, coef, 0.0)
    if all(n in row.param_grads for n in job.wrt):  # the table's derivatives (Barron's)
        return tuple((coef * row.param_grads[n](table.ops, r, table.params)).sum_to_size(getattr(table.params, n).shape)
                     if need else None for n, need in zip(job.wrt, needs))
    with torch.enable_grad():  # else autograd of the table's value with respect to them
        leaves = {n: getattr(table.params, n).detach().requires_grad_(True) for n in job.wrt}
        q = row.value(table.ops, r, table.params.replace(**leaves))
        got = torch.autograd.grad(q, list(leaves.values()), coef.expand(q.shape), allow_unused=True)
    return tuple(g if need else None for g, need in zip(got, needs))


def _input_grad(ctx: Any, input: Tensor, target: Tensor, weight: Tensor | None, valid: Tensor | None,
                c: Tensor) -> Tensor:
    """w m rho'(r) times the cotangent: the forward's, scaled in place (a second backward,
    retain_graph=True, rebuilds it)."""
    h = ctx.h
    ctx.h = None
    if h is not None:
        return h.mul_(c)  # type: ignore[no-any-return]
    table = ctx.job.table
    r = _residual(input, target, valid)
    h = table.row.grad(table.ops, r, table.params)
    if weight is not None:
        h = h * weight
    if valid is not None:
        h = torch.where(valid, h, 0.0)
    return h * c  # type: ignore[no-any-return]


def _residual(input: Tensor, target: Tensor, valid: Tensor | None) -> Tensor:
    r = input - target
    return r if valid is None else torch.where(valid, r, 0.0)


def _forward_functional(input: Tensor, target: Tensor, weight: Tensor | None, valid: Tensor | None,
                        table: Kernel, plan: Plan) -> tuple[Tensor, Den, Tensor | None, Tensor]:
    """The fused forward in functional form (traced by torch.compile, or off the CPU)."""
    r = _residual(input, target, valid)
    q = table.row.value(table.ops, r, table.params)
    h = table.row.grad(table.ops, r, table.params)
    if weight is not None:
        q, h = q * weight, h * weight
        if valid is not None:  # a non-finite weight under the mask must not leak
            q, h = torch.where(valid, q, 0.0), torch.where(valid, h, 0.0)
    num = plan.reduce(q)
    den: Tensor | None = None
    if plan.norm == "weights":
        assert weight is not None
        wb = weight.expand(input.shape)
        den = plan.reduce(wb if valid is None else torch.where(valid, wb, 0.0))
    elif plan.norm == "valid":
        assert valid is not None
        den = plan.reduce(valid.expand(input.shape).to(input.dtype))
    elif plan.norm == "count":
        den = plan.reduce(torch.ones_like(input))
    return num, den, h, q


def _count(plan: Plan, shape: torch.Size) -> float:
    """The number of units each reduced value averages (``norm="count"``)."""
    if plan.kind == "sum" or (plan.kind == "per_output" and len(shape) <= 1):  # 1-D: one output column
        return float(math.prod(shape))
    return float(math.prod(shape[1:])) if plan.kind == "per_sample" else float(math.prod(shape[:-1]))


def _forward_direct(input: Tensor, target: Tensor, weight: Tensor | None, valid: Tensor | None, kern: Kernel,
                    plan: Plan, need_grad: bool) -> tuple[Tensor, Den, Tensor | None, Tensor]:
    """The fused forward in a few whole-array operations, eagerly on the CPU, for inputs small
    enough to stay in the caches (:data:`DIRECT`): there a call's cost is the number of
    operations, not the bytes."""
    r = torch.sub(input, target)
    if valid is not None:
        r = torch.where(valid, r, 0.0)
        if weight is not None:  # w m: a non-finite weight under the mask never leaks
            weight = torch.where(valid, weight, 0.0)
    q = kern.value(r, None)
    if weight is not None:
        q = q.mul_(weight) if weight.shape == q.shape else q * weight
    h = None
    if need_grad:
        h = kern.grad_(r)
        if weight is not None:
            h = h.mul_(weight) if weight.shape == h.shape else h * weight
    if plan.kind == "none":
        return q, None, h, q
    den: Den = None
    if plan.norm == "weights":
        assert weight is not None
        den = plan.reduce(weight if weight.shape == input.shape else weight.expand(input.shape))
    elif plan.norm == "valid":
        assert valid is not None
        den = torch.count_nonzero(valid) if plan.kind == "sum" else plan.reduce(valid.to(input.dtype))
    elif plan.norm == "count":
        den = _count(plan, input.shape)
    num = plan.reduce(q)
    return num, den, h, num


def _forward_blocks(input: Tensor, target: Tensor, weight: Tensor | None, valid: Tensor | None, kern: Kernel,
                    plan: Plan, need_grad: bool) -> tuple[Tensor, Den, Tensor | None, Tensor]:
    """The fused forward, eagerly on the CPU, block by block of rows (see the module doc)."""
    input, target = input.contiguous(), target.contiguous()
    ndim = input.ndim
    rows = input.shape[0] if ndim else 1
    per_row = input.numel() // rows if rows else 0
    step = max(1, BLOCK // per_row) if per_row else max(rows, 1)
    h = torch.empty_like(input) if need_grad else None  # the gradient: the one fresh array
    out = torch.empty_like(input) if plan.kind == "none" else None
    nums: list[Tensor] = []
    dens: list[Tensor] = []
    for i in range(0, max(rows, 1), step):
        j = min(i + step, rows)
        pi, ti = (input, target) if ndim == 0 else (input[i:j], target[i:j])
        ri = torch.sub(pi, ti, out=h[i:j] if h is not None and ndim else h if h is not None
                       else scratch(pi, "residual"))
        vi = _rows(valid, i, j, ndim, rows)
        wi = _rows(weight, i, j, ndim, rows)
        bits = None
        if vi is not None:
            bits = scratch(ri, "bits", _BITS[ri.dtype]).copy_(vi).neg_()
            _select(ri, bits)
        qi = kern.value(ri, out[i:j] if out is not None and ndim else out if out is not None
                        else scratch(ri, "loss"))
        if wi is not None:
            _select(qi.mul_(wi), bits)  # a non-finite weight under the mask must not leak
        if out is None:
            nums.append(plan.reduce(qi))
            if plan.norm == "weights":
                assert wi is not None
                dens.append(plan.reduce(_select(scratch(ri, "weights").copy_(wi.expand(ri.shape)), bits)))
            elif plan.norm == "valid":
                assert bits is not None
                dens.append(plan.reduce(bits).neg_().to(input.dtype))
        if h is not None:
            kern.grad_(ri)
            if wi is not None:
                _select(ri.mul_(wi), bits)
    if out is not None:
        return out, None, h, out
    num = plan.combine(nums)
    den: Tensor | None = plan.combine(dens) if dens else None
    return num, _count(plan, input.shape) if plan.norm == "count" else den, h, num


def _general_grads(job: Job, inputs: tuple[Tensor, Tensor, Tensor | None, Tensor | None], grad: Tensor,
                   needs: tuple[bool, ...]) -> tuple[Tensor | None, ...]:
    """The gradients of the general pipeline with respect to every input of
    :class:`FusedLoss`, with a graph (for double backward)."""
    input, target, weight, valid = inputs
    params = [getattr(job.table.params, n) for n in job.wrt]
    with torch.enable_grad():
        out = job.general(input, target, weight, valid)
        every = (input, target, weight, None, None, *params)
        wrt = [x for x, need in zip(every, needs) if need and x is not None]
        got = iter(torch.autograd.grad(out, wrt, grad, create_graph=True, allow_unused=True))
    return tuple(next(got) if need and x is not None else None for x, need in zip(every, needs))


def fused_loss(input: Tensor, target: Tensor, weight: Tensor | None, valid: Tensor | None, kern: Kernel,
               table: Kernel, plan: Plan, general: Callable[..., Tensor], norm: Tensor | None = None,
               params: Mapping[str, Tensor] | None = None) -> Tensor:
    """:class:`FusedLoss` applied (see there); ``params``: the penalty parameters given as
    tensors (those that require grad are differentiated)."""
    wrt = tuple(n for n, p in params.items() if p.requires_grad) if params else ()
    job = Job(kern, table, plan, general, norm, wrt)
    args = (input, target, weight, valid, job, *(params[n] for n in wrt)) if params else \
        (input, target, weight, valid, job)
    if _APPLY is None or torch.compiler.is_compiling():
        return FusedLoss.apply(*args)  # type: ignore[no-any-return]
    return _APPLY(*args)  # type: ignore[no-any-return]


#: ``FusedLoss.apply`` without ``torch.autograd.Function.apply``'s Python preamble (a pytree
#: pass over the arguments for torch.func's dead wrappers: 5-10 µs a call, which this path
#: never meets: under a torch.func transform the general pipeline runs). torch.compile gets
#: the public ``apply``. None where torch's class layout differs.
_APPLY: Callable[..., Any] | None = None
if getattr(torch.autograd.function, "_SingleLevelFunction", None) in FusedLoss.__mro__:
    _APPLY = super(torch.autograd.function._SingleLevelFunction, FusedLoss).apply


class _WhitenedSquareSum(torch.autograd.Function):
    """``sum((r @ m^T)**2) / n`` for a constant factor ``m``: one GEMM forward and one GEMM
    backward, with no elementwise gradient passes (autograd of ``(z * z).mean()`` makes
    three). Twice differentiable: under ``create_graph`` the backward recomputes z from the
    saved inputs with differentiable operations."""

    @staticmethod
    def forward(ctx: Any, r: Tensor, m: Tensor, m_t: Tensor, n: float) -> Tensor:  # type: ignore[override]
        # m_t: m^T, contiguous (MKL's GEMM is faster on it than on the transposed view)
        z = r @ m_t
        ctx.save_for_backward(r, m, z)
        ctx.n = n
        return (z * z).sum() / n

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, None, None, None]:  # type: ignore[override]
        r, m, z = ctx.saved_tensors
        if torch.is_grad_enabled():  # a graph of the gradient is being built
            z = r @ m.mT
        grad_r = z @ (m * (g * (2.0 / ctx.n))) if ctx.needs_input_grad[0] else None
        return grad_r, None, None, None


def whitened_square(r: Tensor, m: Tensor | None, m_t: Tensor | None, lower: Tensor | None,
                    reduction: str) -> Tensor | None:
    """The whitened squared error of the residual ``r`` with one ``(d, d)`` factor: a product
    with ``m`` = L^-1 (``m_t`` its contiguous transpose) or a triangular solve against
    ``lower``; reduced by ``none``, ``sum``, ``mean`` or ``sum_over_batch_size``. None where
    the shapes do not fit (the general path raises the error)."""
    if m is not None:
        assert m_t is not None
        if m.shape[-1] != r.shape[-1]:
            return None
        if reduction != "none" and r.numel():
            n = 1.0 if reduction == "sum" else float(r.numel())
            if r.requires_grad and torch.is_grad_enabled():
                return _WhitenedSquareSum.apply(r, m, m_t, n)  # type: ignore[no-any-return]
            z = r @ m_t
            return (z * z).sum() / n
        z = r @ m_t
    else:
        assert lower is not None
        if lower.shape[-1] != r.shape[-1] or r.ndim < 2:
            return None
        z = torch.linalg.solve_triangular(lower.mT, r, upper=True, left=False)
    sq = z * z
    if reduction == "none":
        return sq
    if reduction == "sum":
        return sq.sum()
    if sq.numel() == 0:
        return sq.sum() * 0.0
    return sq.mean()
