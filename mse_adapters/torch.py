"""PyTorch adapter: ``torch.nn.Module`` losses and functional forms.

Argument order and defaults follow ``torch.nn``: ``loss(input, target)`` with
``reduction="mean"``. With no weight, mask or missing targets, each module equals its
``torch.nn`` counterpart (and dispatches to the same fused kernel). Beyond the built-ins:

- ``weight``: broadcastable to ``input`` by NumPy (trailing) rules: per element, per output
  (shape ``(d,)``), visibility maps;
- ``sample_weight``: aligned with the LEADING axes of ``input`` (``(B,)``, ``(B, T)``);
- ``mask``: boolean (or 0/1), broadcastable like ``weight``; masked elements contribute
  nothing to the value, the gradient or the normaliser, even where the target is NaN;
- ``missing="nan"``: NaN targets are masked;
- ``reduction="mean"`` is the weighted mean sum(w m l) / sum(w m), 0 when that is 0/0.

``input`` and ``target`` must have the same shape (a ValueError names both; no silent
broadcasting). float16/bfloat16 inputs are computed in float32 and the loss is float32;
integer inputs are promoted to the default dtype.

>>> import torch
>>> from mse_adapters.torch import MSELoss
>>> loss = MSELoss(missing="nan")
>>> loss(torch.tensor([2.5, 0.0, 2.0]), torch.tensor([3.0, float("nan"), 2.0]))
tensor(0.1250)

Saving and loading. A module's ``state_dict`` holds everything that makes the loss what it
is: its ``weight`` and ``mask`` buffers, its matrix (the float64 factor buffers of a
covariance, the ``precision`` buffer, or the trainable ``scale_tril`` parameter) and, as the
``_extra_state`` entry, its spec (``LossSpec.to_dict()``: ``delta``, ``reduction``,
``missing``, ...) with the names of the optional tensors it holds: plain dicts, strings,
numbers and tensors, so ``torch.load(path, weights_only=True)`` reads it.
``load_state_dict`` restores all of it into a module of the same class built with ANY
arguments (the defaults, say): the spec is replaced by the saved one, tensors the module
lacks are added (with the saved shape and dtype, on the device of the module's other
tensors), tensors the saved loss did not have are removed, and a strict load matches every
key. A trainable ``scale_tril`` Parameter of the saved shape is copied into in place (an
optimizer holding it keeps it); a new one is created where the module had none (build the
optimizer after loading then). What a class is cannot change: loading a ``HuberLoss``
state into an ``MSELoss`` (another penalty or finalizer; for the Gaussian NLLs also another
transform) is a ``RuntimeError`` naming both, and ``Loss`` loads any spec. A state without
the ``_extra_state`` entry (``torch.nn.MSELoss``'s, which is empty) loads as torch does,
leaving the spec as built. ``check_values`` is a setting of the module, not of the loss:
it is not saved. ``copy.deepcopy`` and ``pickle`` keep everything, ``check_values`` too.

>>> import io, torch
>>> buf = io.BytesIO()
>>> torch.save(HuberLoss(delta=0.3, weight=torch.tensor([1.0, 2.0])).state_dict(), buf)
>>> _ = buf.seek(0)
>>> f = HuberLoss()  # built with the defaults
>>> f.load_state_dict(torch.load(buf, weights_only=True))
<All keys matched successfully>
>>> f
HuberLoss(LossSpec(penalty='huber', delta=0.3))
>>> f.weight
tensor([1., 2.])
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from . import _core, _torch_fast
from . import _torch_whiten as _tw
from ._core import ArgNames, Ops
from ._spec import LossSpec, preset

__all__ = [
    "Loss",
    "MSELoss",
    "MAELoss",
    "RMSELoss",
    "HuberLoss",
    "SmoothL1Loss",
    "LogCoshLoss",
    "ExpectileLoss",
    "NMSELoss",
    "R2Score",
    "compile",
    "loss",
    "mse_loss",
    "mae_loss",
    "rmse_loss",
    "huber_loss",
    "smooth_l1_loss",
    "log_cosh_loss",
    "expectile_loss",
    "nmse_loss",
    "r2_score",
    "GaussianNLLLoss",
    "MultivariateGaussianNLLLoss",
    "gaussian_nll_loss",
    "multivariate_gaussian_nll_loss",
    "TorchOps",
]

NAMES = ArgNames(pred="input", target="target")
Multioutput = str | Sequence[float]
_HALF = (torch.float16, torch.bfloat16)


class TorchOps(Ops):
    name = "torch"

    def shape(self, x: Tensor) -> tuple[int, ...]:
        return tuple(x.shape)

    def is_tracing(self, x: Tensor) -> bool:
        return bool(torch.compiler.is_compiling() or torch.jit.is_tracing())

    def where(self, cond: Tensor, x: Any, y: Any) -> Tensor:
        return torch.where(cond, x, y)

    def abs(self, x: Tensor) -> Tensor:
        return torch.abs(x)  # its derivative is sign(x): 0 at 0

    def minimum(self, x: Tensor, c: float) -> Tensor:
        return torch.clamp(x, max=c)

    def softplus(self, x: Tensor) -> Tensor:
        # exact (F.softplus switches to the identity above its threshold)
        return torch.logaddexp(x, torch.zeros((), dtype=x.dtype, device=x.device))

    def sqrt(self, x: Tensor) -> Tensor:
        return torch.sqrt(x)

    def isnan(self, x: Tensor) -> Tensor:
        return torch.isnan(x)

    def isfinite(self, x: Tensor) -> Tensor:
        return torch.isfinite(x)

    def logical_and(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.logical_and(a, b)

    def logical_or(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.logical_or(a, b)

    def is_bool(self, x: Tensor) -> bool:
        return x.dtype == torch.bool

    def all(self, x: Tensor) -> bool:
        return bool(torch.all(x))

    def finite_and_nonnegative(self, x: Tensor) -> tuple[bool, bool]:
        # one pass (aminmax propagates NaN) and one host sync, no temporary array
        if x.numel() == 0:
            return True, True
        lo, hi = torch.stack(torch.aminmax(x.to(torch.uint8) if x.dtype == torch.bool else x)).tolist()
        return math.isfinite(lo) and math.isfinite(hi), lo >= 0

    def to_float(self, x: Tensor, like: Tensor) -> Tensor:
        return x.to(like.dtype)

    def reshape(self, x: Tensor, shape: tuple[int, ...]) -> Tensor:
        return torch.reshape(x, shape)

    def broadcast_to(self, x: Tensor, shape: tuple[int, ...]) -> Tensor:
        return torch.broadcast_to(x, shape)

    def sum(self, x: Tensor, axis: tuple[int, ...] | None = None) -> Tensor:
        if axis is None:
            return torch.sum(x)
        if not axis:
            return x
        return torch.sum(x, dim=axis)

    def constant(self, values: list[float], like: Tensor) -> Tensor:
        return torch.tensor(values, dtype=like.dtype, device=like.device)

    def eps(self, like: Tensor) -> float:
        return float(torch.finfo(like.dtype).eps)

    # -- the transform stage and the Gaussian likelihoods (DESIGN §4) --------------------

    def matvec(self, m: Tensor, x: Tensor) -> Tensor:
        if m.ndim == 2:  # one matrix: a single GEMM over every sample
            return x @ m.mT
        return torch.matmul(m, x.unsqueeze(-1)).squeeze(-1)

    def solve_tril(self, lower: Tensor, x: Tensor) -> Tensor:
        if lower.ndim == 2 and x.ndim >= 2:  # z L^T = x row by row: one TRSM, no transposes
            return torch.linalg.solve_triangular(lower.mT, x, upper=True, left=False)
        return torch.linalg.solve_triangular(lower, x.unsqueeze(-1), upper=False).squeeze(-1)

    def log(self, x: Tensor) -> Tensor:
        return torch.log(x)

    def diagonal(self, m: Tensor) -> Tensor:
        return torch.diagonal(m, dim1=-2, dim2=-1)

    def clamp_min_nograd(self, x: Tensor, lo: float) -> Tensor:
        x = x.clone()  # exactly torch.nn.GaussianNLLLoss: clamped in place, invisible to autograd
        with torch.no_grad():
            x.clamp_(min=lo)
        return x


_OPS = TorchOps()
#: The version of a module's extra state (``get_extra_state``); bumped when it changes.
_STATE_FORMAT = 1


def _compute_dtype(*xs: Tensor) -> torch.dtype:
    dt = xs[0].dtype
    for x in xs[1:]:
        dt = torch.promote_types(dt, x.dtype)
    if dt.is_complex:
        raise TypeError(f"complex inputs are not supported (got dtype {dt})")
    if not dt.is_floating_point:
        return torch.get_default_dtype()
    if dt in _HALF:
        return torch.float32
    return dt


def _tensor(name: str, x: Any, like: Tensor | None) -> Tensor:
    if isinstance(x, Tensor):
        if x.dtype.is_complex:
            raise _core.dtype_error(name, str(x.dtype))
        return x
    _core.check_not_foreign(name, x, "torch")
    if like is None:
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return torch.as_tensor(x, device=like.device)


def _prepare(
    input: Tensor,
    target: Tensor,
    weight: Any,
    sample_weight: Any,
    mask: Any,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None]:
    input = _tensor(NAMES.pred, input, None)
    target = _tensor(NAMES.target, target, input)
    dt = _compute_dtype(input, target)
    if input.dtype != dt:
        input = input.to(dt)
    if target.dtype != dt:
        target = target.to(dt)
    if weight is not None:
        weight = _tensor(NAMES.weight, weight, input)
        weight = weight.to(dt)
    if sample_weight is not None:
        sample_weight = _tensor(NAMES.sample_weight, sample_weight, input).to(dt)
    if mask is not None:
        mask = _tensor(NAMES.mask, mask, input)
    return input, target, weight, sample_weight, mask


def _combine(a: Tensor | None, b: Tensor | None, op: Any) -> Tensor | None:
    if a is None:
        return b
    if b is None:
        return a
    return op(a, b)


_FAST_DTYPES = frozenset((torch.float32, torch.float64))
#: Below this many elements the square path's autograd.Function costs more (its fixed cost,
#: some 50-100 µs a call on a 2-core CPU) than it saves, and the general pipeline runs: the
#: measured crossover is 1e4 (masks) to 3e4 (weights) elements, forward and backward, eager.
SQUARE_MIN_NUMEL = 1 << 14


def _plain_path(spec: LossSpec) -> Callable[[Any, Any], Tensor] | None:
    """``f(input, target)`` computing ``spec`` with no weights or masks by torch's fused
    kernel, where the semantics are identical (the spec is a penalty, its parameter and a
    reduction, nothing else), or None. Everything that does not depend on the input is
    decided here, once; per call: the type, dtype and shape checks and the empty-batch rule."""
    plain = LossSpec(penalty=spec.penalty, delta=spec.delta, beta=spec.beta, tau=spec.tau,
                     reduction=spec.reduction)
    if spec != plain:
        return None
    kernel = _torch_fast.plain_kernel(spec.penalty, spec.delta, spec.beta, spec.reduction)
    if kernel is None:
        return None
    averages = _torch_fast.REDUCTION_CODE[spec.reduction] == 1
    fast_dtypes = _FAST_DTYPES

    def plain_loss(input: Any, target: Any) -> Tensor:
        if not (isinstance(input, Tensor) and isinstance(target, Tensor)
                and input.dtype == target.dtype and input.dtype in fast_dtypes):
            input, target, _, _, _ = _prepare(input, target, None, None, None)
        if input.shape != target.shape:
            _core.check_same_shape(tuple(input.shape), tuple(target.shape), NAMES)
        if averages and input.numel() == 0:  # 0, not NaN, with a zero gradient
            return (input.sum() + target.sum()) * 0.0
        return kernel(input, target)

    return plain_loss


def _square_path(spec: LossSpec) -> bool:
    """Whether :class:`~mse_adapters._torch_fast.SquareLoss` computes ``spec`` (with any
    weight, sample weight, mask and missing targets)."""
    return (
        spec.reduction in ("sum", "mean", "sum_over_batch_size")
        and spec.finalize in ("identity", "sqrt")
        and spec == LossSpec(penalty="square", delta=spec.delta, beta=spec.beta, tau=spec.tau,
                             reduction=spec.reduction, finalize=spec.finalize, missing=spec.missing)
    )


def _transforming() -> bool:
    """Under TorchScript tracing or a torch.func transform the general pipeline runs: it is
    made of plain tensor operations, which those trace. (torch.compile traces the square
    path's autograd.Function, which has a functional form for it.)"""
    if torch.compiler.is_compiling():
        return False
    return bool(torch.jit.is_tracing() or torch._C._are_functorch_transforms_active())


class _FastPaths:
    """The fast paths that apply to one spec, chosen once (at construction)."""

    __slots__ = ("spec", "plain", "square", "general")

    def __init__(self, spec: LossSpec) -> None:
        self.spec = spec
        self.plain = _plain_path(spec)
        self.square = _square_path(spec)
        # For higher derivatives of the square path: the general pipeline on the same
        # arguments (missing targets are part of ``valid`` there already).
        general_spec = spec.replace(missing=None)

        def general(input: Tensor, target: Tensor, weight: Tensor | None, valid: Tensor | None) -> Tensor:
            return _core.evaluate(_OPS, general_spec, input, target, weight=weight, mask=valid, names=NAMES)

        self.general = general


@functools.lru_cache(maxsize=256)
def _fast_paths(spec: LossSpec) -> _FastPaths:
    return _FastPaths(spec)


def _check_missing(spec: LossSpec, target: Any) -> None:
    """missing="nan" needs targets that can hold NaN (DESIGN §3; same error in every backend)."""
    if spec.missing is not None and isinstance(target, Tensor) and not target.is_floating_point():
        _core.check_missing_dtype(spec, NAMES, False, str(target.dtype).removeprefix("torch."))


def _dispatch(
    fast: _FastPaths,
    input: Any,
    target: Any,
    weight: Any,
    sample_weight: Any,
    mask: Any,
    check_values: bool,
) -> Tensor:
    """``spec`` on the arguments by the fastest path that has its semantics."""
    spec = fast.spec
    _check_missing(spec, target)
    if fast.plain is not None and weight is None and sample_weight is None and mask is None:
        return fast.plain(input, target)
    small = (isinstance(input, Tensor) and input.numel() < SQUARE_MIN_NUMEL
             and not torch.compiler.is_compiling())  # compiled, it is traced once: no fixed cost
    if not fast.square or small or _transforming():
        return loss(spec, input, target, weight=weight, sample_weight=sample_weight, mask=mask,
                    check_values=check_values)
    input, target, weight, sample_weight, mask = _prepare(input, target, weight, sample_weight, mask)
    shape = _core.check_shapes(_OPS, spec, input, target, weight, mask, NAMES)
    if mask is not None:
        mask = _core.mask_to_bool(_OPS, NAMES.mask, mask, check_values)
    if check_values:
        if weight is not None:
            _core.check_weight_values(_OPS, NAMES.weight, weight)
        if sample_weight is not None:
            _core.check_weight_values(_OPS, NAMES.sample_weight, sample_weight)
    if sample_weight is not None:
        lead = _core.leading_shape(NAMES.sample_weight, tuple(sample_weight.shape), shape, NAMES.pred)
        sample_weight = sample_weight.reshape(lead)
        weight = sample_weight if weight is None else weight * sample_weight
    valid = mask
    if spec.missing == "nan":
        present = target == target
        valid = present if valid is None else torch.logical_and(present, valid)
    return _torch_fast.square_loss(input, target, weight, valid, spec.reduction,
                                   spec.finalize == "sqrt", fast.general)


def loss(
    spec: LossSpec,
    input: Tensor,
    target: Tensor,
    *,
    weight: Any = None,
    sample_weight: Any = None,
    mask: Any = None,
    check_values: bool = True,
    covariance: Any = None,
    scale_tril: Any = None,
    precision: Any = None,
    var: Any = None,
) -> Tensor:
    """Evaluate ``spec`` on torch tensors (the general pipeline, no fast path).

    ``covariance``, ``scale_tril`` or ``precision`` (one of them; it sets the spec's
    ``transform``) act on the last axis (DESIGN §4): a constant one is validated and factored
    on the host in float64 at each call (build a :class:`Loss` to factor it once); one that
    requires grad is factored in the compute dtype so that its gradient flows. ``var`` is the
    predicted variance of ``penalty="gaussian_nll"``."""
    _check_missing(spec, target)
    if (covariance is not None or scale_tril is not None or precision is not None or var is not None
            or _tw.needs_structured(spec)):
        return _tw.functional_loss(spec, input, target, weight, sample_weight, mask, check_values,
                                   covariance, scale_tril, precision, var)
    input, target, weight, sample_weight, mask = _prepare(input, target, weight, sample_weight, mask)
    return _core.run(_OPS, spec, input, target, weight=weight, sample_weight=sample_weight,
                     mask=mask, names=NAMES, check_values=check_values)


class Loss(nn.Module):
    """A loss compiled from a :class:`~mse_adapters.LossSpec`.

    ``weight`` and ``mask`` given here are stored as (persistent) buffers and combined with
    those given at call time (weights multiply, masks are AND-ed). ``check_values=False``
    skips the eager value checks of weights and masks (they sync with the device); they are
    always skipped under ``torch.compile``.

    ``covariance`` (SPD ``(d, d)`` or one per sample ``(..., d, d)``), ``scale_tril`` or
    ``precision`` (one of them; it sets the spec's ``transform``) act on the last axis
    (DESIGN §4). A covariance, or a constant ``scale_tril``, is validated and factored once,
    here, on the host in float64 (buffers ``inv_scale_tril``, ``log_scale_diag``) and applied
    per call in the input's dtype; an ``nn.Parameter`` ``scale_tril`` is trainable (solved
    against per call); a precision is the buffer ``precision``. ``forward`` takes ``var``,
    the predicted variance of ``penalty="gaussian_nll"``.

    >>> import torch
    >>> from mse_adapters import LossSpec
    >>> f = Loss(LossSpec(penalty="abs", reduction="sum"))
    >>> f(torch.tensor([1.0, 2.0]), torch.tensor([1.5, 0.0]))
    tensor(2.5000)
    """

    weight: Tensor | None
    mask: Tensor | None

    def __init__(
        self,
        spec: LossSpec,
        *,
        weight: Tensor | None = None,
        mask: Tensor | None = None,
        check_values: bool = True,
        covariance: Any = None,
        scale_tril: Any = None,
        precision: Any = None,
    ) -> None:
        super().__init__()
        if not isinstance(spec, LossSpec):
            raise TypeError(f"spec must be a LossSpec, got {type(spec).__name__}")
        spec = _tw.setup_module(self, spec, covariance, scale_tril, precision, check_values)
        self._structured = _tw.needs_structured(spec)
        self.spec = spec
        self.check_values = bool(check_values)
        if weight is not None:
            weight = torch.as_tensor(weight)
            if check_values:
                _core.check_weight_values(_OPS, NAMES.weight, weight)
        if mask is not None:
            mask = _core.mask_to_bool(_OPS, NAMES.mask, torch.as_tensor(mask), check_values)
        self.register_buffer("weight", weight)
        self.register_buffer("mask", mask)
        self._fast = _fast_paths(spec)

    @property
    def reduction(self) -> str:
        return self.spec.reduction

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_fast", None)  # closures; rebuilt from the spec
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._fast = _fast_paths(self.spec)

    # -- state_dict: the spec and the optional tensors travel with the state --------------

    #: The spec fields that make a class the loss it is: a state whose spec differs in one
    #: of them is an error to load (``Loss`` itself loads any spec).
    _identity_fields: tuple[str, ...] = ()

    def get_extra_state(self) -> dict[str, Any]:
        """The spec (``LossSpec.to_dict()``) and which optional tensors the module holds:
        plain dicts, strings, numbers and tensors, safe for ``torch.load(weights_only=True)``."""
        return {"format": _STATE_FORMAT, "spec": self.spec.to_dict(),
                "weight": self._buffers["weight"] is not None, "mask": self._buffers["mask"] is not None,
                **_tw.get_state(self)}

    def _saved_spec(self, extra: Any) -> LossSpec:
        """The spec of a saved extra state, checked against this class (ValueError)."""
        if not isinstance(extra, dict) or not isinstance(extra.get("spec"), dict):
            raise ValueError(f"{type(self).__name__}: the saved extra state is not one of mse_adapters' "
                             f"(a dict with a 'spec'), got {type(extra).__name__}")
        fmt = extra.get("format")
        if fmt != _STATE_FORMAT:
            raise ValueError(f"{type(self).__name__}: saved state format {fmt!r}; this version of "
                             f"mse_adapters reads format {_STATE_FORMAT}")
        spec = LossSpec.from_dict(extra["spec"])
        diff = [f for f in self._identity_fields if getattr(spec, f) != getattr(self.spec, f)]
        if diff:
            have = ", ".join(f"{f}={getattr(self.spec, f)!r}" for f in diff)
            raise ValueError(
                f"cannot load the state of {spec!r} into {type(self).__name__}, which has {have}: "
                "build the class that saved it, or a mse_adapters.torch.Loss (which loads any spec)"
            )
        _tw.check_state(self, extra, spec)
        return spec

    def set_extra_state(self, state: Any) -> None:
        """Restore the spec (``load_state_dict`` has already given the module the saved
        tensors' slots; called alone, the saved state must have the module's slots)."""
        spec = self._saved_spec(state)
        have = _tw.get_state(self)
        if (state.get("matrix"), state.get("factor")) != (have["matrix"], have["factor"]) or any(
                bool(state.get(k)) != (self._buffers[k] is not None) for k in ("weight", "mask")):
            raise ValueError(f"{type(self).__name__}.set_extra_state: the saved state has other tensors "
                             "than this module; restore it with load_state_dict")
        self._set_spec(spec)

    def _set_spec(self, spec: LossSpec) -> None:
        self.spec = spec
        self._structured = _tw.needs_structured(spec)
        self._fast = _fast_paths(spec)

    def _load_from_state_dict(self, state_dict: Any, prefix: str, local_metadata: Any, strict: bool,
                              missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
        key = prefix + "_extra_state"
        if key not in state_dict:
            # a state without ours (a torch.nn loss's, which is empty): the module keeps its spec
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                          unexpected_keys, error_msgs)
            if key in missing_keys:
                missing_keys.remove(key)
            return
        extra = state_dict[key]
        try:
            spec = self._saved_spec(extra)
        except ValueError as e:
            error_msgs.append(f"{prefix.rstrip('.') or 'the loss'}: {e}")
            return
        tensors = [t for t in (*self._parameters.values(), *self._buffers.values()) if t is not None]

        def place(current: Tensor | None) -> torch.device | None:
            t = current if current is not None else (tensors[0] if tensors else None)
            return None if t is None else t.device

        for name in ("weight", "mask"):
            saved = state_dict.get(prefix + name)
            cur = self._buffers[name]
            if not extra.get(name):
                self._buffers[name] = None
            elif isinstance(saved, Tensor) and (cur is None or cur.shape != saved.shape or cur.dtype != saved.dtype):
                self._buffers[name] = torch.empty_like(saved, device=place(cur))
        _tw.load_structure(self, extra, spec, state_dict, prefix, place)
        self._set_spec(spec)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def forward(
        self,
        input: Tensor,
        target: Tensor,
        *,
        weight: Tensor | None = None,
        sample_weight: Tensor | None = None,
        mask: Tensor | None = None,
        var: Any = None,
    ) -> Tensor:
        fast = self._fast
        if fast.plain is not None and weight is None and sample_weight is None and mask is None:
            buffers = self._buffers
            if buffers["weight"] is None and buffers["mask"] is None and var is None:
                return fast.plain(input, target)
        if self._structured or var is not None:
            return _tw.module_forward(self, input, target, weight, sample_weight, mask, var)
        weight = _combine(self.weight, weight, torch.mul)
        mask = _combine(self.mask, mask, torch.logical_and)
        return _dispatch(fast, input, target, weight, sample_weight, mask, self.check_values)

    def extra_repr(self) -> str:
        return repr(self.spec)


def compile(
    spec: LossSpec,
    *,
    weight: Tensor | None = None,
    mask: Tensor | None = None,
    check_values: bool = True,
    covariance: Any = None,
    scale_tril: Any = None,
    precision: Any = None,
) -> Loss:  # noqa: A001
    """Compile a spec into an ``nn.Module`` (a :class:`Loss`)."""
    return Loss(spec, weight=weight, mask=mask, check_values=check_values, covariance=covariance,
                scale_tril=scale_tril, precision=precision)


#: What a preset class is (its other fields are hyperparameters, restored by load_state_dict).
_PRESET_IDENTITY = ("penalty", "finalize")
_GAUSSIAN_IDENTITY = ("penalty", "finalize", "transform")


def _kw(weight: Any, mask: Any, check_values: bool, covariance: Any = None, scale_tril: Any = None,
        precision: Any = None) -> dict[str, Any]:
    """The keywords a preset passes on to :class:`Loss`."""
    return {"weight": weight, "mask": mask, "check_values": check_values, "covariance": covariance,
            "scale_tril": scale_tril, "precision": precision}


def _mo(multioutput: Multioutput) -> str | tuple[float, ...]:
    return multioutput if isinstance(multioutput, str) else tuple(float(v) for v in multioutput)


class MSELoss(Loss):
    """Mean squared error; defaults equal ``torch.nn.MSELoss``.

    With a ``covariance`` (or ``scale_tril``) it is the generalised least squares loss, the
    mean of the squared whitened residuals ``L^-1 r``; with a ``precision`` (cost) matrix P
    it is the quadratic form ``r^T P r`` per sample, divided like the plain MSE (the
    identity gives the plain MSE); ``unit_norm`` adds ``lambda * (|input|**2 - 1)**2``.

    >>> import torch
    >>> MSELoss()(torch.tensor([2.5, 0.0, 2.0, 8.0]), torch.tensor([3.0, -0.5, 2.0, 7.0]))
    tensor(0.3750)
    >>> MSELoss(covariance=torch.tensor([[4.0, 0.0], [0.0, 1.0]]))(torch.ones(1, 2), torch.zeros(1, 2))
    tensor(0.6250)
    """

    _identity_fields = _PRESET_IDENTITY

    def __init__(self, reduction: str = "mean", *, missing: str | None = None,
                 weight: Tensor | None = None, mask: Tensor | None = None,
                 check_values: bool = True, covariance: Any = None, scale_tril: Any = None,
                 precision: Any = None, unit_norm: float = 0.0) -> None:
        super().__init__(preset("mse", reduction=reduction, missing=missing, unit_norm=unit_norm),
                         **_kw(weight, mask, check_values, covariance, scale_tril, precision))


class MAELoss(Loss):
    """Mean absolute error; defaults equal ``torch.nn.L1Loss`` (d|r|/dr = 0 at r = 0).

    A ``covariance`` or ``scale_tril`` (an ``nn.Parameter`` is trainable) whitens the
    residual first, as in :class:`MSELoss`; a ``precision`` goes with the square penalty only
    (else a ValueError).
    """

    _identity_fields = _PRESET_IDENTITY

    def __init__(self, reduction: str = "mean", *, missing: str | None = None,
                 weight: Tensor | None = None, mask: Tensor | None = None,
                 check_values: bool = True, covariance: Any = None, scale_tril: Any = None,
                 precision: Any = None) -> None:
        super().__init__(preset("mae", reduction=reduction, missing=missing),
                         **_kw(weight, mask, check_values, covariance, scale_tril, precision))


class RMSELoss(Loss):
    """Root mean squared error. Default: pooled, sqrt of the weighted mean over every
    element (as torchmetrics); ``multioutput`` takes scikit-learn's choices. The gradient at
    a perfect fit is 0, not NaN.

    A ``covariance`` or ``scale_tril`` (an ``nn.Parameter`` is trainable) whitens the
    residual first; a ``precision`` P makes the mean square the quadratic form ``r^T P r``,
    as in :class:`MSELoss`.
    """

    _identity_fields = _PRESET_IDENTITY

    def __init__(self, reduction: str = "mean", *, multioutput: Multioutput = "pooled",
                 missing: str | None = None, weight: Tensor | None = None,
                 mask: Tensor | None = None, check_values: bool = True, covariance: Any = None,
                 scale_tril: Any = None, precision: Any = None) -> None:
        super().__init__(preset("rmse", reduction=reduction, multioutput=_mo(multioutput), missing=missing),
                         **_kw(weight, mask, check_values, covariance, scale_tril, precision))


class HuberLoss(Loss):
    """Huber loss (0.5 r**2 for |r| <= delta, else delta (|r| - delta/2)); defaults equal
    ``torch.nn.HuberLoss``.

    A ``covariance`` or ``scale_tril`` (an ``nn.Parameter`` is trainable) whitens the
    residual first, as in :class:`MSELoss`; a ``precision`` goes with the square penalty only
    (else a ValueError).
    """

    _identity_fields = _PRESET_IDENTITY

    def __init__(self, reduction: str = "mean", delta: float = 1.0, *, missing: str | None = None,
                 weight: Tensor | None = None, mask: Tensor | None = None,
                 check_values: bool = True, covariance: Any = None, scale_tril: Any = None,
                 precision: Any = None) -> None:
        super().__init__(preset("huber", reduction=reduction, delta=delta, missing=missing),
                         **_kw(weight, mask, check_values, covariance, scale_tril, precision))


class SmoothL1Loss(Loss):
    """Smooth L1 (0.5 r**2 / beta for |r| < beta, else |r| - beta/2); defaults equal
    ``torch.nn.SmoothL1Loss``.

    A ``covariance`` or ``scale_tril`` (an ``nn.Parameter`` is trainable) whitens the
    residual first, as in :class:`MSELoss`; a ``precision`` goes with the square penalty only
    (else a ValueError).
    """

    _identity_fields = _PRESET_IDENTITY

    def __init__(self, reduction: str = "mean", beta: float = 1.0, *, missing: str | None = None,
                 weight: Tensor | None = None, mask: Tensor | None = None,
                 check_values: bool = True, covariance: Any = None, scale_tril: Any = None,
                 precision: Any = None) -> None:
        super().__init__(preset("smooth_l1", reduction=reduction, beta=beta, missing=missing),
                         **_kw(weight, mask, check_values, covariance, scale_tril, precision))


class LogCoshLoss(Loss):
    """log(cosh(r)), computed stably.

    A ``covariance`` or ``scale_tril`` (an ``nn.Parameter`` is trainable) whitens the
    residual first, as in :class:`MSELoss`; a ``precision`` goes with the square penalty only
    (else a ValueError).
    """

    _identity_fields = _PRESET_IDENTITY

    def __init__(self, reduction: str = "mean", *, missing: str | None = None,
                 weight: Tensor | None = None, mask: Tensor | None = None,
                 check_values: bool = True, covariance: Any = None, scale_tril: Any = None,
                 precision: Any = None) -> None:
        super().__init__(preset("log_cosh", reduction=reduction, missing=missing),
                         **_kw(weight, mask, check_values, covariance, scale_tril, precision))


class ExpectileLoss(Loss):
    """Asymmetric squared error: ``tau * r**2`` where input < target (under-prediction),
    ``(1 - tau) * r**2`` where input > target. tau = 0.5 is half the MSE.

    A ``covariance`` or ``scale_tril`` (an ``nn.Parameter`` is trainable) whitens the
    residual first, as in :class:`MSELoss`; a ``precision`` goes with the square penalty only
    (else a ValueError).
    """

    _identity_fields = _PRESET_IDENTITY

    def __init__(self, reduction: str = "mean", tau: float = 0.5, *, missing: str | None = None,
                 weight: Tensor | None = None, mask: Tensor | None = None,
                 check_values: bool = True, covariance: Any = None, scale_tril: Any = None,
                 precision: Any = None) -> None:
        super().__init__(preset("expectile", reduction=reduction, tau=tau, missing=missing),
                         **_kw(weight, mask, check_values, covariance, scale_tril, precision))


class NMSELoss(Loss):
    """Normalised MSE per output (weighted SSE / weighted, centred SST), combined by
    ``multioutput`` (default ``"uniform_average"``). NMSE = 1 - R^2."""

    _identity_fields = _PRESET_IDENTITY

    def __init__(self, *, multioutput: Multioutput = "uniform_average", missing: str | None = None,
                 weight: Tensor | None = None, mask: Tensor | None = None,
                 check_values: bool = True) -> None:
        super().__init__(preset("nmse", multioutput=_mo(multioutput), missing=missing),
                         **_kw(weight, mask, check_values))


class R2Score(Loss):
    """Coefficient of determination (a score: higher is better; minimise ``-R2Score``).
    Equal to ``sklearn.metrics.r2_score`` and numerically stable in float32."""

    _identity_fields = _PRESET_IDENTITY

    def __init__(self, *, multioutput: Multioutput = "uniform_average", missing: str | None = None,
                 weight: Tensor | None = None, mask: Tensor | None = None,
                 check_values: bool = True) -> None:
        super().__init__(preset("r2", multioutput=_mo(multioutput), missing=missing),
                         **_kw(weight, mask, check_values))


# -- functional forms ---------------------------------------------------------------------


def _functional(name: str, input: Tensor, target: Tensor, weight: Any, sample_weight: Any,
                mask: Any, check_values: bool, **fields: Any) -> Tensor:
    return _dispatch(_fast_paths(preset(name, **fields)), input, target, weight, sample_weight, mask,
                     check_values)


def mse_loss(input: Tensor, target: Tensor, *, weight: Any = None, sample_weight: Any = None,
             mask: Any = None, missing: str | None = None, reduction: str = "mean",
             check_values: bool = True) -> Tensor:
    """Functional :class:`MSELoss`."""
    return _functional("mse", input, target, weight, sample_weight, mask, check_values,
                       missing=missing, reduction=reduction)


def mae_loss(input: Tensor, target: Tensor, *, weight: Any = None, sample_weight: Any = None,
             mask: Any = None, missing: str | None = None, reduction: str = "mean",
             check_values: bool = True) -> Tensor:
    """Functional :class:`MAELoss`."""
    return _functional("mae", input, target, weight, sample_weight, mask, check_values,
                       missing=missing, reduction=reduction)


def rmse_loss(input: Tensor, target: Tensor, *, weight: Any = None, sample_weight: Any = None,
              mask: Any = None, missing: str | None = None, reduction: str = "mean",
              multioutput: Multioutput = "pooled", check_values: bool = True) -> Tensor:
    """Functional :class:`RMSELoss`."""
    return _functional("rmse", input, target, weight, sample_weight, mask, check_values,
                       missing=missing, reduction=reduction, multioutput=_mo(multioutput))


def huber_loss(input: Tensor, target: Tensor, *, delta: float = 1.0, weight: Any = None,
               sample_weight: Any = None, mask: Any = None, missing: str | None = None,
               reduction: str = "mean", check_values: bool = True) -> Tensor:
    """Functional :class:`HuberLoss`."""
    return _functional("huber", input, target, weight, sample_weight, mask, check_values,
                       delta=delta, missing=missing, reduction=reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, *, beta: float = 1.0, weight: Any = None,
                   sample_weight: Any = None, mask: Any = None, missing: str | None = None,
                   reduction: str = "mean", check_values: bool = True) -> Tensor:
    """Functional :class:`SmoothL1Loss`."""
    return _functional("smooth_l1", input, target, weight, sample_weight, mask, check_values,
                       beta=beta, missing=missing, reduction=reduction)


def log_cosh_loss(input: Tensor, target: Tensor, *, weight: Any = None, sample_weight: Any = None,
                  mask: Any = None, missing: str | None = None, reduction: str = "mean",
                  check_values: bool = True) -> Tensor:
    """Functional :class:`LogCoshLoss`."""
    return _functional("log_cosh", input, target, weight, sample_weight, mask, check_values,
                       missing=missing, reduction=reduction)


def expectile_loss(input: Tensor, target: Tensor, *, tau: float = 0.5, weight: Any = None,
                   sample_weight: Any = None, mask: Any = None, missing: str | None = None,
                   reduction: str = "mean", check_values: bool = True) -> Tensor:
    """Functional :class:`ExpectileLoss`."""
    return _functional("expectile", input, target, weight, sample_weight, mask, check_values,
                       tau=tau, missing=missing, reduction=reduction)


def nmse_loss(input: Tensor, target: Tensor, *, weight: Any = None, sample_weight: Any = None,
              mask: Any = None, missing: str | None = None,
              multioutput: Multioutput = "uniform_average", check_values: bool = True) -> Tensor:
    """Functional :class:`NMSELoss`."""
    return _functional("nmse", input, target, weight, sample_weight, mask, check_values,
                       missing=missing, multioutput=_mo(multioutput))


def r2_score(input: Tensor, target: Tensor, *, weight: Any = None, sample_weight: Any = None,
             mask: Any = None, missing: str | None = None,
             multioutput: Multioutput = "uniform_average", check_values: bool = True) -> Tensor:
    """Functional :class:`R2Score` (argument order ``(input, target)``, as torch)."""
    return _functional("r2", input, target, weight, sample_weight, mask, check_values,
                       missing=missing, multioutput=_mo(multioutput))


# -- Gaussian likelihoods -----------------------------------------------------------------


class GaussianNLLLoss(Loss):
    """Heteroscedastic Gaussian negative log-likelihood with a predicted variance:
    ``0.5 * (log v + (input - target)**2 / v)`` with ``v = max(var, eps)`` (clamped as torch
    does, the gradient passing through the clamp), plus ``0.5 * log(2 pi)`` with ``full``.
    Equal to ``torch.nn.GaussianNLLLoss`` in value and gradient, with its variance shapes
    (``input``'s shape, ``input``'s shape without the last axis, or one axis of size 1) and
    its errors; adds weights, masks, missing targets and every reduction.

    >>> import torch
    >>> GaussianNLLLoss()(torch.tensor([1.0, 2.0]), torch.zeros(2), torch.tensor([1.0, 4.0]))
    tensor(0.8466)
    """

    _identity_fields = _GAUSSIAN_IDENTITY

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean",
                 missing: str | None = None, weight: Tensor | None = None,
                 mask: Tensor | None = None, check_values: bool = True) -> None:
        super().__init__(LossSpec(penalty="gaussian_nll", full=full, eps=eps, reduction=reduction,
                                  missing=missing), **_kw(weight, mask, check_values))

    def forward(self, input: Tensor, target: Tensor, var: Any = None, *,  # type: ignore[override]
                weight: Tensor | None = None, sample_weight: Tensor | None = None,
                mask: Tensor | None = None) -> Tensor:
        return super().forward(input, target, weight=weight, sample_weight=sample_weight, mask=mask,
                               var=var)


class MultivariateGaussianNLLLoss(Loss):
    """Full-covariance Gaussian negative log-likelihood, one value per sample (the last axis
    is the event): ``0.5 * |L^-1 r|**2 + sum(log diag L) + d/2 log(2 pi)`` with
    ``covariance = L L^T``, i.e. ``-MultivariateNormal(input, scale_tril=L).log_prob(target)``,
    then reduced over samples (default: the mean). Give a ``covariance`` (factored once, in
    float64) or a ``scale_tril`` (an ``nn.Parameter`` is learned). ``full=False`` drops the
    constant.

    >>> import torch
    >>> f = MultivariateGaussianNLLLoss(covariance=torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
    >>> f(torch.tensor([[1.0, 0.0]]), torch.zeros(1, 2))
    tensor(2.4345)
    """

    _identity_fields = _GAUSSIAN_IDENTITY

    def __init__(self, *, covariance: Any = None, scale_tril: Any = None, full: bool = True,
                 reduction: str = "mean", missing: str | None = None,
                 weight: Tensor | None = None, mask: Tensor | None = None,
                 check_values: bool = True) -> None:
        super().__init__(LossSpec(penalty="gaussian_nll", transform="whiten", full=full,
                                  reduction=reduction, missing=missing),
                         **_kw(weight, mask, check_values, covariance, scale_tril))


def gaussian_nll_loss(input: Tensor, target: Tensor, var: Any, *, full: bool = False, eps: float = 1e-6,
                      reduction: str = "mean", weight: Any = None, sample_weight: Any = None,
                      mask: Any = None, missing: str | None = None, check_values: bool = True) -> Tensor:
    """Functional :class:`GaussianNLLLoss` (``torch.nn.functional.gaussian_nll_loss``'s order)."""
    spec = LossSpec(penalty="gaussian_nll", full=full, eps=eps, reduction=reduction, missing=missing)
    return loss(spec, input, target, weight=weight, sample_weight=sample_weight, mask=mask,
                check_values=check_values, var=var)


def multivariate_gaussian_nll_loss(input: Tensor, target: Tensor, *, covariance: Any = None,
                                   scale_tril: Any = None, full: bool = True, reduction: str = "mean",
                                   weight: Any = None, sample_weight: Any = None, mask: Any = None,
                                   missing: str | None = None, check_values: bool = True) -> Tensor:
    """Functional :class:`MultivariateGaussianNLLLoss`. A ``scale_tril`` or ``covariance``
    that requires grad (e.g. predicted per sample, ``(B, d, d)``) gets its gradient."""
    spec = LossSpec(penalty="gaussian_nll", transform="whiten", full=full, reduction=reduction,
                    missing=missing)
    return loss(spec, input, target, weight=weight, sample_weight=sample_weight, mask=mask,
                check_values=check_values, covariance=covariance, scale_tril=scale_tril)
