"""Fast kernels of the torch adapter (DESIGN §6): the general pipeline's semantics at the
cost of the built-ins. :mod:`mse_adapters.torch` decides, once per spec, which of them
applies; the conformance suite (``tests/test_torch_fast.py``) proves each equal to the
general pipeline, value and gradient, for every option it covers.

- :func:`plain_kernel`: no weights, masks or missing targets and a penalty torch has a
  fused kernel for: that aten kernel, bound to its reduction code at construction.
- :class:`SquareLoss`: the squared error with any of ``weight``, ``sample_weight``,
  ``mask`` and ``missing="nan"``, reduced by ``sum``, ``mean`` or ``sum_over_batch_size``,
  optionally square-rooted (RMSE). A loss is memory-bound and, for large inputs on a CPU,
  every freshly allocated array costs about as much again in page faults as computing it.
  So the forward reads each input once and allocates two private arrays, like
  ``F.mse_loss`` forward+backward does; the backward writes the gradient into one of them
  (a private array, handed out exactly once).

Masks are applied by a select, never by multiplying by zero (0 * NaN = NaN): the residual's
bits are AND-ed with the mask widened to all-ones / all-zeros integers of the same width,
which gives exactly +0.0 where the mask is false, whatever the target holds there. (It is
the same select as ``torch.where(valid, r, 0)``, whose CPU kernel is several times slower
on a random mask: it branches per element.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["plain_kernel", "SquareLoss", "square_loss", "REDUCTION_CODE"]

#: aten's reduction codes. ``sum_over_batch_size`` without weights or masks is the mean.
REDUCTION_CODE = {"none": 0, "mean": 1, "sum_over_batch_size": 1, "sum": 2}

#: The integer type of each float type's width, for the bitwise select.
_BITS = {torch.float32: torch.int32, torch.float64: torch.int64}


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


def _select(x: Tensor, bits: Tensor | None) -> Tensor:
    """In place: x where the mask is true, exactly +0.0 elsewhere (``bits`` is -1 / 0)."""
    if bits is not None:
        x.view(bits.dtype).bitwise_and_(bits)
    return x


def _mask_bits(valid: Tensor, dtype: torch.dtype) -> Tensor:
    """The boolean ``valid`` as integers of ``dtype``'s width: -1 (all bits) or 0."""
    return torch.empty(valid.shape, dtype=_BITS[dtype], device=valid.device).copy_(valid).neg_()


def _count(x: Tensor, n: int) -> Tensor:
    """The number of true elements of ``x`` broadcast to ``n`` elements (an int64 tensor)."""
    c = torch.count_nonzero(x)
    if x.numel() != n:
        c = c * (n // x.numel()) if x.numel() else c
    return c


def _float_count(valid: Tensor, like: Tensor) -> Tensor:
    """The number of true elements of ``valid`` broadcast to ``like``, as a sum of floats."""
    return valid.expand(like.shape).to(like.dtype).sum()


class SquareLoss(torch.autograd.Function):
    """sum(w m r**2) reduced and finalized, with r = input - target, w the (broadcast)
    weight, m the validity (mask and present targets; masked units contribute nothing to
    the value, the gradient or the normaliser, whatever their target is).

    ``forward(input, target, weight, valid, reduction, sqrt, general)``: ``input`` and
    ``target`` have the same shape and floating dtype; ``weight`` (same dtype) and
    ``valid`` (bool) broadcast to it by trailing rules, or are None; ``reduction`` is
    ``"sum"``, ``"mean"`` or ``"sum_over_batch_size"``; ``sqrt`` takes the square root
    (RMSE); ``general(input, target, weight, valid)`` is the general pipeline, used for
    double backward (``create_graph=True``), so that higher derivatives are the general
    pipeline's.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        input: Tensor,
        target: Tensor,
        weight: Tensor | None,
        valid: Tensor | None,
        reduction: str,
        sqrt: bool,
        general: Callable[..., Tensor],
    ) -> Tensor:
        # Under torch.compile the same computation in functional form: the compiler fuses
        # it (one pass forward, one backward, the mask read once) and owns the buffers.
        traced = torch.compiler.is_compiling()
        weight_sum = weight is not None and reduction == "mean"
        terms = _terms_traced if traced else _terms_eager
        s, q, wsum = terms(input, target, weight, valid, weight_sum)
        den: Tensor | None
        if reduction == "sum":
            den = None
        elif weight_sum:
            den = wsum
        elif valid is not None:
            # the number of valid elements (compiled: a float sum, which fuses cheaply)
            den = _count(valid, input.numel()).to(input.dtype) if not traced else _float_count(valid, input)
        else:
            den = input.new_full((), float(input.numel()))

        value = s
        if den is not None:
            zero = den == 0
            value = torch.where(zero, 0.0, s / torch.where(zero, 1.0, den))
        mean = value
        if sqrt:
            value = value.sqrt()

        if traced:
            ctx.save_for_backward(input, target, weight, valid, den, mean, value, q)
        else:
            ctx.save_for_backward(input, target, weight, valid, den, mean, value)
            ctx.scratch = q  # private: becomes the gradient of the first backward
            ctx.general = general
        ctx.traced = traced
        ctx.reduction = reduction
        ctx.sqrt = sqrt
        return value

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        input, target, weight, valid, den, mean, value, *saved_q = ctx.saved_tensors
        need_i, need_t, need_w = ctx.needs_input_grad[:3]
        if not ctx.traced and torch.is_grad_enabled():
            # create_graph=True: differentiate the general pipeline (higher derivatives)
            return (*_general_grads(ctx.general, input, target, weight, valid, grad,
                                    (need_i, need_t, need_w)), None, None, None, None)

        g = grad
        if ctx.sqrt:  # d sqrt(m)/dm = 1 / (2 sqrt(m)), taken as 0 at m = 0
            pos = value > 0
            g = torch.where(pos, g * 0.5 / torch.where(pos, value, 1.0), 0.0)
        c = g if den is None else torch.where(den == 0, 0.0, g / torch.where(den == 0, 1.0, den))

        gi = gt = gw = None
        if need_i or need_t:
            if ctx.traced:
                gi = saved_q[0] * (2.0 * c)
            else:
                q = ctx.scratch
                ctx.scratch = None
                if q is None:  # a second backward (retain_graph=True): rebuild w m r
                    _, q, _ = _terms_eager(input, target, weight, valid, False)
                gi = q.mul_(2.0 * c)
            if need_t:
                gt = torch.neg(gi)
            if not need_i:
                gi = None
        if need_w:
            r = input - target
            l_minus = r * r if ctx.reduction != "mean" else r * r - mean
            if valid is not None:
                l_minus = torch.where(valid, l_minus, 0.0)
            gw = (l_minus * c).sum_to_size(weight.shape)
        return gi, gt, gw, None, None, None, None


def _terms_eager(
    input: Tensor, target: Tensor, weight: Tensor | None, valid: Tensor | None, weight_sum: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    """(sum(w m r**2), w m r, sum(w m) if ``weight_sum``) in two fresh arrays, the second
    of which (w m r) is returned: the first backward turns it into the gradient."""
    bits = None if valid is None else _mask_bits(valid, input.dtype)
    r = _select(torch.sub(input, target), bits)
    if weight is None:
        if bits is not None and bits.shape == r.shape:
            # r*r into the mask's integer array (no longer needed): no new allocation
            return torch.mul(r, r, out=bits.view(r.dtype)).sum(), r, None
        return (r * r).sum(), r, None
    q = _select(torch.mul(r, weight), bits)  # a non-finite weight under the mask must not leak
    s = r.mul_(q).sum()  # r's array holds w m r**2 now
    wsum = None
    if weight_sum:
        if valid is None:
            n, k = input.numel(), weight.numel()
            wsum = weight.sum() * (n // k) if k else weight.sum()
        else:  # sum(w m), in r's array (r is not needed any more)
            wsum = _select(r.copy_(weight.expand(input.shape)), bits).sum()
    return s, q, wsum


def _terms_traced(
    input: Tensor, target: Tensor, weight: Tensor | None, valid: Tensor | None, weight_sum: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    """:func:`_terms_eager` in functional form, for a compiler to fuse."""
    r = input - target
    if valid is not None:
        r = torch.where(valid, r, 0.0)
    if weight is None:
        return (r * r).sum(), r, None
    q = r * weight
    if valid is not None:
        q = torch.where(valid, q, 0.0)
    wsum = None
    if weight_sum:
        wb = weight.expand(input.shape)
        wsum = (wb if valid is None else torch.where(valid, wb, 0.0)).sum()
    return (q * r).sum(), q, wsum


def _general_grads(
    general: Callable[..., Tensor],
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    valid: Tensor | None,
    grad: Tensor,
    needs: tuple[bool, bool, bool],
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """The gradients of the general pipeline, with a graph (for double backward)."""
    with torch.enable_grad():
        out = general(input, target, weight, valid)
        wrt = [x for x, need in zip((input, target, weight), needs) if need and x is not None]
        got = iter(torch.autograd.grad(out, wrt, grad, create_graph=True, allow_unused=True))
    return tuple(next(got) if need else None for need in needs)  # type: ignore[return-value]


def square_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    valid: Tensor | None,
    reduction: str,
    sqrt: bool,
    general: Callable[..., Tensor],
) -> Tensor:
    """:class:`SquareLoss` applied (see there)."""
    return SquareLoss.apply(input, target, weight, valid, reduction, sqrt, general)  # type: ignore[no-any-return]
