"""PyTorch adapter: ``torch.nn.Module`` losses and functional forms.

Argument order and defaults follow ``torch.nn``: ``loss(input, target)`` with
``reduction="mean"``; with no weight, mask or missing targets a module equals its
``torch.nn`` namesake and runs the same fused kernel. The options every loss shares
(docs/design.md, "Semantics"): ``weight`` (trailing-broadcast: per element, per output),
``sample_weight`` (aligned with the leading axes), ``mask`` (boolean or 0/1: a masked element
counts for nothing, even where its target is NaN), ``missing="nan"``, the reductions
(``"mean"`` is the weighted mean sum(w m l) / sum(w m), 0 when that is 0/0), and a
``covariance`` / ``scale_tril`` / ``precision`` ("Whitening": a constant matrix is factored
once, in float64, into buffers; an ``nn.Parameter`` ``scale_tril`` is trained). A module's
``weight`` and ``mask`` are buffers, combined with the call's (weights multiply, masks are
AND-ed); ``check_values=False`` skips the eager value checks (a host sync each), which are
skipped anyway under ``torch.compile``, ``torch.func`` transforms and on meta or fake tensors.

``input`` and ``target`` must have the same shape (a ValueError names both). float16 and
bfloat16 are computed in float32 and the loss is float32; integers are promoted.

>>> import torch
>>> from mse_adapters.torch import MSELoss
>>> MSELoss(missing="nan")(torch.tensor([2.5, 0.0, 2.0]), torch.tensor([3.0, float("nan"), 2.0]))
tensor(0.1250)

Saving and loading. A module's ``state_dict`` holds what makes the loss what it is: its
``weight`` and ``mask`` buffers, its matrix (float64 factor buffers, the ``precision``
buffer, or the trainable ``scale_tril`` parameter) and, as ``_extra_state``, its spec with
the names of the optional tensors (plain data: ``torch.load(weights_only=True)`` reads it).
A module built with its class' defaults adds nothing to a ``state_dict`` (as ``torch.nn``'s
losses), so checkpoints interchange with models that use ``torch.nn.MSELoss``; a state
without ``_extra_state`` leaves the spec as built. ``load_state_dict`` restores a saved
state into a module of the same class built with any arguments (tensors the module lacks
are added, those the saved loss did not have removed; a ``scale_tril`` Parameter of the
saved shape is copied into in place). Another penalty or finalizer is a ``RuntimeError``;
``Loss`` loads any spec.

>>> import io
>>> buf = io.BytesIO()
>>> torch.save(HuberLoss(delta=0.3, weight=torch.tensor([1.0, 2.0])).state_dict(), buf)
>>> _ = buf.seek(0)
>>> f = HuberLoss()
>>> f.load_state_dict(torch.load(buf, weights_only=True))
<All keys matched successfully>
>>> f
HuberLoss(LossSpec(penalty='huber', delta=0.3))
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .. import _core
from .. import _messages as msg
from .._ops import ArgNames, Ops, Whitening, check_input
from .._penalties import PENALTY_TABLE
from .._prepare import (
    NO_FIXED,
    PARAM_NAMES,
    Call,
    Context,
    Fixed,
    Plan,
    Plans,
    batch_normalizer,
    build,
    fixed_mask,
    fixed_weight,
    prepare,
    run,
    signature,
    split_params,
)
from .._presets import PRESET_TABLE, docstring, preset
from .._spec import LossSpec
from .._whiten import host_array, host_factor, pick_matrix, resolve_spec
from . import _fast as _torch_fast
from ._ops import OPS, TorchOps

__all__ = [
    "Loss", "GaussianNLLLoss", "MultivariateGaussianNLLLoss", "gaussian_nll_loss", "multivariate_gaussian_nll_loss",
    "TorchOps", *(name for r in PRESET_TABLE if r.binds for name in r.names("torch")),  # the table's bindings
]

NAMES = ArgNames(pred="input", target="target")
Multioutput = str | Sequence[float]


#: The version of a module's extra state (``get_extra_state``); bumped when it changes.
_STATE_FORMAT = 1


def _input(x: Any) -> Tensor:
    """The prediction must be a tensor (array-likes are converted only for the others)."""
    if not isinstance(x, Tensor):
        check_input(OPS, NAMES.pred, x)
        raise TypeError(msg.not_an_array(NAMES.pred, "a torch.Tensor", type(x).__name__))
    return x


# ---------------------------------------------------------------------------------------
# The call path: a plan per call signature, and the path it runs
# ---------------------------------------------------------------------------------------

_FAST_DTYPES = frozenset((torch.float32, torch.float64))
#: The fields a spec computed by torch's own kernels has at their defaults (all but the
#: penalty, its parameters and the reduction).
_PLAIN_FIELDS = tuple((f, getattr(LossSpec(), f)) for f in ("per_sample", "finalize", "multioutput", "missing",
                                                           "full", "eps", "transform", "unit_norm", "force_finite"))


def _plain_path(spec: LossSpec) -> Callable[[Any, Any], Tensor | None] | None:
    """``f(input, target)`` computing ``spec`` with no weights or masks by torch's fused
    kernel, where the semantics are identical (None when the spec has none); ``f`` answers
    None for inputs it does not take as they are (another dtype, another shape: the planned
    path casts them, or raises the error)."""
    if any(getattr(spec, f) != v for f, v in _PLAIN_FIELDS):  # (no spec is built: torch.compile traces this)
        return None
    kernel = _torch_fast.plain_kernel(spec.penalty, spec.delta, spec.beta, spec.reduction)
    if kernel is None:
        return None
    averages = _torch_fast.REDUCTION_CODE[spec.reduction] == 1

    def plain_loss(input: Any, target: Any) -> Tensor | None:
        if not (isinstance(input, Tensor) and isinstance(target, Tensor) and input.dtype == target.dtype
                and input.dtype in _FAST_DTYPES and input.shape == target.shape):
            return None
        if averages and input.numel() == 0:  # 0, not NaN, with a zero gradient
            return (input.sum() + target.sum()) * 0.0
        return kernel(input, target)

    return plain_loss


def _transforming() -> bool:
    """Under TorchScript tracing or a torch.func transform the general pipeline runs (plain
    tensor operations, which those trace); torch.compile traces the fused path."""
    if torch.compiler.is_compiling():
        return False
    return bool(torch.jit.is_tracing() or torch._C._are_functorch_transforms_active())


def _fused_path(spec: LossSpec) -> bool:
    """Whether :class:`~mse_adapters.torch._fast.FusedLoss` computes ``spec``: an elementwise
    penalty with any weight, sample weight, mask and missing targets, any reduction, the
    identity or the square root (no transform, per-sample stage, unit norm or other
    finalizer)."""
    return (spec.penalty in PENALTY_TABLE and spec.transform is None and not spec.unit_norm
            and not spec.per_sample and spec.finalize in ("identity", "sqrt")
            and (spec.multioutput == "pooled" or spec.reduction == "per_output"))


def _linear(spec: LossSpec) -> bool:
    """A reduction that is a sum over a normalizer (its parts add up across ranks)."""
    return spec.finalize == "identity" and spec.reduction in ("mean", "sum_over_batch_size")


def _differentiated(x: Any) -> bool:
    return isinstance(x, Tensor) and x.requires_grad


class _Entry:
    """A call signature's plan and the torch path chosen for it (docs/design.md, "Plans"):
    ``"plain"`` (torch's own kernel), ``"fused"`` (:class:`~mse_adapters.torch._fast.FusedLoss`),
    ``"across"`` (the fused kernel's sum and the normalizer in one all-reduce) or
    ``"general"`` (the pipeline, differentiated by autograd)."""

    __slots__ = ("plan", "path", "plain", "reduce", "kernels")
    kernels: tuple[_torch_fast.Kernel, _torch_fast.Kernel] | None

    def __init__(self, plan: Plan, path: str) -> None:
        self.plan, self.path = plan, path
        spec = plan.spec
        self.plain = _plain_path(spec) if path == "plain" else None
        weighted = any(plan.weights)
        masked = bool(plan.masks) or spec.missing == "nan"
        self.reduce = _reduce_plan(spec, weighted, masked)
        #: the kernels of Python-float parameters, made once (tensor parameters: per call)
        self.kernels = None if path not in ("fused", "across") else _kernels(spec, {})


def _reduce_plan(spec: LossSpec, weighted: bool, masked: bool, reduction: str | None = None) -> _torch_fast.Plan:
    """What the fused kernel reduces to (the core's choice of normalizer); ``reduction``: in
    place of the spec's."""
    reduction = reduction or spec.reduction
    kind = {"none": "none", "per_sample": "per_sample", "per_output": "per_output"}.get(reduction, "sum")
    return _torch_fast.Plan(kind, _core.reduction_normalizer(reduction, weighted, masked), spec.finalize == "sqrt")


def _kernels(spec: LossSpec, params: Any) -> tuple[_torch_fast.Kernel, _torch_fast.Kernel]:
    pv = _core.Params(spec, params) if params else spec
    return _torch_fast.kernel(spec.penalty, pv, OPS, bool(params)), _torch_fast.Kernel(spec.penalty, pv, OPS)


def _entry(spec: LossSpec, call: Call, ctx: Context, transforming: bool) -> _Entry:
    """Build a call signature's plan and choose its path, once."""
    plan = build(spec, call, ctx)
    spec = plan.spec
    params = (*ctx.fixed.params.values(), *call.params.values())
    if (transforming or not _fused_path(spec) or plan.dtype not in ("float32", "float64")
            or _differentiated(call.normalizer)):
        return _Entry(plan, "general")
    if ctx.allreduce is not None:
        return _Entry(plan, "across" if _linear(spec) else "general")
    bare = not any(plan.weights) and not plan.masks and len(params) == 0 and call.normalizer is None
    return _Entry(plan, "plain" if bare and _plain_path(spec) is not None else "fused")


def _general_of(spec: LossSpec, params: Any, normalizer: Tensor | None = None,
                reduction: str | None = None) -> Callable[..., Tensor]:
    """The general pipeline on the fused path's arguments (its double backward; the spec is
    made when it runs)."""

    def general(input: Tensor, target: Tensor, weight: Tensor | None, valid: Tensor | None) -> Tensor:
        s = spec.replace(missing=None, reduction=reduction or spec.reduction)
        return _core.evaluate(OPS, _core.Prepared(s, input, target, weight, None, valid, None, None,
                                                  tuple(input.shape), NAMES, dict(params), normalizer))

    return general


def _pipeline(prep: _core.Prepared) -> Tensor:
    """The general pipeline on a prepared call (autograd differentiates it)."""
    return _core.evaluate(OPS, prep)


def _execute(entry: _Entry, call: Call, ctx: Context) -> Tensor:
    """A call on its plan's path: the plan's array work and value checks, then the kernel."""
    prep = run(entry.plan, call, ctx)
    path = entry.path
    if path == "general":
        return _pipeline(prep)
    if path == "plain":
        assert entry.plain is not None
        out = entry.plain(prep.pred, prep.target)
        assert out is not None
        return out
    w, valid = _core.element_weight(OPS, prep), _core.validity(OPS, prep)
    kern, table = entry.kernels if entry.kernels is not None and not prep.params else \
        _kernels(prep.spec, prep.params)
    if path == "across":
        return _fused_across(prep, w, valid, kern, table)
    return _torch_fast.fused_loss(prep.pred, prep.target, w, valid, kern, table, entry.reduce,
                                  _general_of(prep.spec, prep.params, prep.normalizer), prep.normalizer, prep.params)


#: The plans of the functional forms (every spec's: the spec is part of the signature), and
#: those of :func:`loss` (the general pipeline's).
_PLANS = Plans(256)
_GENERAL_PLANS = Plans(256)


def _call(plans: Plans | None, spec: LossSpec, call: Call, ctx: Context) -> Tensor:
    """``spec`` on a call, by its signature's plan (built once; under torch.compile, built at
    trace time and not cached: the compiled graph is the cache)."""
    _input(call.pred)
    transforming = _transforming()
    if plans is None or torch.compiler.is_compiling():
        return _execute(_entry(spec, call, ctx, transforming), call, ctx)
    key = (signature(spec, call, ctx), transforming)
    return _execute(plans.lookup(key, lambda: _entry(spec, call, ctx, transforming)), call, ctx)


def _fused_across(prep: _core.Prepared, w: Tensor | None, valid: Tensor | None,
                  kern: _torch_fast.Kernel, table: _torch_fast.Kernel) -> Tensor:
    """A linear reduction across a group's ranks on the fused kernel: this rank's sum (the
    kernel with reduction ``sum``) and its normalizer summed in one all-reduce, then divided
    (docs/design.md, "Scale-out"); a given ``normalizer`` is already the global one."""
    num = _torch_fast.fused_loss(prep.pred, prep.target, w, valid, kern, table,
                                 _reduce_plan(prep.spec, w is not None, valid is not None, "sum"),
                                 _general_of(prep.spec, prep.params, None, "sum"), None, prep.params)
    allreduce = prep.allreduce
    assert allreduce is not None
    if prep.normalizer is not None:
        (num,) = allreduce((num,))
        return _core.safe_div(OPS, num, prep.normalizer)
    num, den = allreduce((num, _core.as_array(OPS, _core.normalizer(OPS, prep), num).to(num.dtype)))
    return _core.safe_div(OPS, num, den)


def _context(check_values: bool, fixed: Fixed = NO_FIXED, process_group: Any = None) -> Context:
    return Context(OPS, NAMES, fixed, check_values, None, _allreduce_of(process_group), "process_group")


def loss(spec: LossSpec, input: Tensor, target: Tensor, *, weight: Any = None, sample_weight: Any = None,
         mask: Any = None, check_values: bool = True, covariance: Any = None, scale_tril: Any = None,
         precision: Any = None, var: Any = None, params: dict[str, Any] | None = None,
         normalizer: Any = None, process_group: Any = None) -> Tensor:
    """Evaluate any spec on torch tensors by the general pipeline (no fast path; the modules
    and the functional forms choose theirs), autograd differentiating it.

    ``covariance``, ``scale_tril`` or ``precision`` (one of them; it sets the spec's
    ``transform``): a constant one is validated and factored on the host in float64 (cached
    by content; build a :class:`Loss` to hold it); one that requires grad is used in the
    compute dtype, so that its gradient flows. ``var``: the Gaussian NLL's variance.
    ``params``: penalty parameters as tensors (``{"tau": t}``), in place of the spec's floats.
    ``normalizer``: the denominator to divide by instead of the batch's own; ``process_group``:
    reduce across its ranks (docs/design.md, "Scale-out")."""
    call = Call(_input(input), target, weight, sample_weight, mask, var, covariance, scale_tril, precision,
                params or {}, normalizer)
    plans = None if torch.compiler.is_compiling() else _GENERAL_PLANS
    return _core.evaluate(OPS, prepare(spec, call, _context(check_values, process_group=process_group), plans))


# ---------------------------------------------------------------------------------------
# Data parallelism (docs/design.md, "Scale-out")
# ---------------------------------------------------------------------------------------


def _check_group(group: Any) -> Any:
    """``group`` (a ``torch.distributed`` ProcessGroup) when one is initialised, else a
    ValueError naming ``process_group``."""
    if group is None:
        return None
    import torch.distributed as dist

    if not dist.is_available():
        raise ValueError(msg.no_process_group("this torch build has no torch.distributed"))
    if not dist.is_initialized():
        raise ValueError(msg.no_process_group("none is initialised in this process"))
    if not isinstance(group, dist.ProcessGroup):
        raise ValueError(msg.no_process_group(f"got a {type(group).__name__}, not a ProcessGroup "
                                              "(e.g. torch.distributed.group.WORLD)"))
    return group


class _AllReduceSum(torch.autograd.Function):
    """The sums of tensors across a group's ranks, in one collective (packed). Its backward is
    the cotangent times the group's size, with no communication: the loss built from the
    sums is the same on every rank, so every rank's cotangent is the same, and the exact
    backward (the sum of the ranks' cotangents) is that. DDP and FSDP2 then average the
    ranks' gradients, which gives the single-process gradient of the global batch."""

    @staticmethod
    def forward(ctx: Any, group: Any, *xs: Tensor) -> tuple[Tensor, ...]:  # type: ignore[override]
        import torch.distributed as dist

        dt = xs[0].dtype
        flat = torch.cat([x.detach().reshape(-1).to(dt) for x in xs])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
        ctx.world = float(dist.get_world_size(group))
        ctx.dtypes = [x.dtype for x in xs]
        out, i = [], 0
        for x in xs:
            n = x.numel()
            out.append(flat[i:i + n].reshape(x.shape).to(x.dtype))
            i += n
        return tuple(out)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        return (None, *(None if g is None else g * ctx.world for g in grads))


def _allreduce_of(group: Any) -> Callable[[tuple[Tensor, ...]], tuple[Tensor, ...]] | None:
    if group is None:
        return None
    _check_group(group)

    def allreduce(xs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return _AllReduceSum.apply(group, *xs)  # type: ignore[no-any-return]

    return allreduce


def _normalizer_sum(group: Any, n: Tensor) -> Tensor:
    """A normalizer summed over a group's ranks (no gradient flows through it)."""
    if group is None:
        return n
    import torch.distributed as dist

    n = n.detach().clone()
    dist.all_reduce(n, op=dist.ReduceOp.SUM, group=group)
    return n


# ---------------------------------------------------------------------------------------
# A module's matrix
# ---------------------------------------------------------------------------------------

#: The buffers that hold a constant matrix, by how it is applied (``_Matrix.kind``).
_FACTOR_BUFFERS: dict[str | None, tuple[str, ...]] = {
    None: (), "inverse": ("inv_scale_tril", "log_scale_diag"), "solve": ("scale_tril", "log_scale_diag"),
    "precision": ("precision",), "trainable": (),
}
_MATRIX_NAMES = (None, "covariance", "scale_tril", "precision")


class _Matrix:
    """A module's matrix: which argument it came from, how it is held (``kind``: None,
    ``"inverse"``/``"solve"``/``"precision"`` buffers, or ``"trainable"``), a trainable
    tensor that is not a Parameter, and the buffers' casts (a cache, not state)."""

    __slots__ = ("module", "kind", "name", "tensor", "cache")

    def __init__(self, module: Loss) -> None:
        self.module = module
        self.kind: str | None = None
        self.name: str | None = None
        self.tensor: Tensor | None = None
        self.cache: tuple[Any, tuple[Tensor, Tensor]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if k != "cache"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self.cache = None

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the matrix as held (its factor's or its precision's)."""
        buffers = _FACTOR_BUFFERS[self.kind]
        m = self.trainable() if self.kind == "trainable" else self.module._buffers[buffers[0]]
        assert m is not None
        return tuple(m.shape)

    def trainable(self) -> Tensor:
        t = self.tensor if self.tensor is not None else self.module._parameters["scale_tril"]
        assert t is not None
        return t

    def cast_pair(self, buffer: str, like: Tensor) -> tuple[Tensor, Tensor]:
        """A constant buffer in ``like``'s dtype and device and its contiguous transpose, cast
        once and cached (the cache follows the buffer: moving or loading it invalidates it)."""
        buf = self.module._buffers[buffer]
        assert buf is not None
        if torch.compiler.is_compiling() or torch.compiler.is_exporting() or OPS.is_abstract(like):
            t = buf.to(like.device, like.dtype)  # traced: the cast is part of the graph
            return t, t.mT
        key = (buffer, like.dtype, like.device, buf.data_ptr(), buf._version)
        if self.cache is not None and self.cache[0] == key:
            return self.cache[1]
        t = buf.to(like.device, like.dtype)
        pair = (t, t.mT.contiguous())
        self.cache = (key, pair)
        return pair

    def whitening(self, ops: Ops, like: Tensor) -> Whitening:
        """The transform for the pipeline (the :class:`~mse_adapters._prepare.Fixed` protocol)."""
        kind, name = self.kind, self.name or "covariance"
        buffers = self.module._buffers
        if kind == "trainable":
            return Whitening("solve", self.trainable().to(like.dtype), None, name)
        if kind == "precision":
            p = buffers["precision"]
            assert p is not None
            return Whitening("precision", p.to(like.device, like.dtype), None, name)
        log_diag = buffers["log_scale_diag"]
        assert log_diag is not None and kind is not None
        matrix = self.cast_pair("inv_scale_tril" if kind == "inverse" else "scale_tril", like)[0]
        return Whitening(kind, matrix, log_diag.to(like.device, like.dtype), name)


# ---------------------------------------------------------------------------------------
# The module
# ---------------------------------------------------------------------------------------


class Loss(nn.Module):
    """A loss compiled from a :class:`~mse_adapters.LossSpec` (the options are those of the
    module documentation).

    >>> import torch
    >>> from mse_adapters import LossSpec
    >>> Loss(LossSpec(penalty="abs", reduction="sum"))(torch.tensor([1.0, 2.0]), torch.tensor([1.5, 0.0]))
    tensor(2.5000)
    """

    weight: Tensor | None
    mask: Tensor | None
    _matrix: _Matrix
    _param_names: tuple[str, ...]
    #: The spec fields that make a class the loss it is: a state whose spec differs in one
    #: of them is an error to load (``Loss`` itself loads any spec).
    _identity_fields: tuple[str, ...] = ()

    def __init__(self, spec: LossSpec, *, weight: Tensor | None = None, mask: Tensor | None = None,
                 check_values: bool = True, covariance: Any = None, scale_tril: Any = None,
                 precision: Any = None, params: dict[str, Any] | None = None, process_group: Any = None) -> None:
        super().__init__()
        if not isinstance(spec, LossSpec):
            raise TypeError(f"spec must be a LossSpec, got {type(spec).__name__}")
        self.check_values = bool(check_values)
        #: A ``torch.distributed`` ProcessGroup: the loss is reduced across its ranks
        #: (docs/design.md, "Scale-out"); not part of the state.
        self.process_group = _check_group(process_group)
        self.__dict__["_matrix"] = _Matrix(self)
        spec = self._setup_matrix(spec, covariance, scale_tril, precision)
        self.register_buffer("weight", fixed_weight(OPS, NAMES.weight, weight, self.check_values))
        self.register_buffer("mask", fixed_mask(OPS, NAMES.mask, mask, self.check_values))
        #: Penalty parameters held as tensors: an ``nn.Parameter`` is learned, another tensor
        #: is a buffer (checked at every call, as the call's arrays are).
        self.__dict__["_param_names"] = ()
        for name, value in (params or {}).items():
            if isinstance(value, nn.Parameter):
                self.register_parameter(name, value)
            else:
                self.register_buffer(name, torch.as_tensor(value))
            self.__dict__["_param_names"] = (*self._param_names, name)
        self._set_spec(spec)

    def _setup_matrix(self, spec: LossSpec, covariance: Any, scale_tril: Any, precision: Any) -> LossSpec:
        """Validate and factor the module's matrix once, on the host in float64, and register
        it (float64 buffers, or the trainable ``scale_tril``)."""
        name, m = pick_matrix(covariance, scale_tril, precision)
        spec = resolve_spec(spec, name)
        st = self._matrix
        st.name = name
        if name is None:
            return spec
        trainable = isinstance(m, Tensor) and (m.requires_grad or isinstance(m, nn.Parameter))
        if trainable and name != "scale_tril":
            raise ValueError(msg.TRAINABLE_MATRIX.format(name=name, alternative=", or use the functional form"))
        f = host_factor(name, *host_array(OPS, name, m), inverse=OPS.whiten_by == "inverse")
        if trainable:
            if isinstance(m, nn.Parameter):
                self.register_parameter("scale_tril", m)
            else:  # a tensor that requires grad: kept, so that its gradient flows to it
                st.tensor = m
            st.kind = "trainable"
        elif name == "precision":
            self.register_buffer("precision", torch.as_tensor(f.precision))
            st.kind = "precision"
        else:
            if OPS.whiten_by == "inverse":
                self.register_buffer("inv_scale_tril", torch.as_tensor(f.inv_scale_tril))
            else:
                self.register_buffer("scale_tril", torch.as_tensor(f.scale_tril))
            self.register_buffer("log_scale_diag", torch.as_tensor(f.log_diag))
            st.kind = OPS.whiten_by
        return spec

    def _set_spec(self, spec: LossSpec) -> None:
        self.spec = spec
        #: the plans of this loss' call signatures (docs/design.md, "Plans")
        self._plans = Plans()
        self._plain = _plain_path(spec)
        st = self._matrix
        factor = None if st.kind in (None, "precision") else (
            st.trainable() if st.kind == "trainable" else self._buffers[_FACTOR_BUFFERS[st.kind][0]])
        self._gls = (factor is not None and factor.ndim == 2 and spec.transform == "whiten"
                     and spec == LossSpec(penalty="square", reduction=spec.reduction, transform="whiten")
                     and spec.reduction in ("none", "sum", "mean", "sum_over_batch_size"))

    @property
    def reduction(self) -> str:
        return self.spec.reduction

    @reduction.setter
    def reduction(self, value: str) -> None:  # as torch.nn allows: loss_fn.reduction = "sum"
        self._set_spec(self.spec.replace(reduction=value))

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_plain", None)  # a closure; rebuilt from the spec
        state["process_group"] = None  # a live communicator does not pickle
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._matrix.module = self
        self._plain = _plain_path(self.spec)

    def _penalty_params(self) -> dict[str, Tensor]:
        return {n: getattr(self, n) for n in self._param_names}

    def _fixed(self) -> Fixed | None:
        buffers = self._buffers
        if buffers["weight"] is None and buffers["mask"] is None and self._matrix.kind is None \
                and not self._param_names:
            return None
        return Fixed(buffers["weight"], buffers["mask"], self._matrix if self._matrix.kind else None,
                     self._penalty_params())

    # -- evaluation ----------------------------------------------------------------------
    def forward(self, input: Tensor, target: Tensor, *, weight: Tensor | None = None,
                sample_weight: Tensor | None = None, mask: Tensor | None = None, var: Any = None,
                normalizer: Tensor | None = None) -> Tensor:
        """The loss. ``normalizer``: the denominator to divide by instead of the batch's own
        (the window's, :meth:`normalizer` summed over its micro-batches): the micro-batch
        losses then add up to the window's, value and gradient. With a ``process_group`` the
        loss is the global batch's on every rank, scaled so that DDP's (or FSDP2's) averaging
        of the ranks' gradients gives the single-process gradient."""
        fixed = self._fixed()
        bare = (weight is None and sample_weight is None and mask is None and var is None and normalizer is None
                and self.process_group is None)
        if bare and fixed is None and self._plain is not None:
            out = self._plain(input, target)
            if out is not None:
                return out
        if bare and self._gls and fixed is not None and fixed.weight is None and fixed.mask is None:
            out = self._gls_forward(input, target)
            if out is not None:
                return out
        call = Call(input, target, weight, sample_weight, mask, var, normalizer=normalizer)
        return _call(self._plans, self.spec, call, _context(self.check_values, fixed or NO_FIXED, self.process_group))

    def normalizer(self, target: Tensor, *, weight: Tensor | None = None, sample_weight: Tensor | None = None,
                   mask: Tensor | None = None) -> Tensor:
        """The batch's normalizer: what the reduction divides the batch's sum by (sum(w m) for
        ``mean``, the valid units for ``sum_over_batch_size``, one per output for the
        per-output reductions), from the targets, weights and masks (the module's combined
        with these). Summed over the ranks of the module's ``process_group``, when it has one.
        Sum it over an accumulation window and pass it to each micro-batch's call as
        ``normalizer=``."""
        n = batch_normalizer(self.spec, Call(target, target, weight, sample_weight, mask),
                             _context(self.check_values, self._fixed() or NO_FIXED))
        return _normalizer_sum(self.process_group, n.detach())

    def _gls_forward(self, input: Any, target: Any) -> Tensor | None:
        """The whitened MSE with one (d, d) factor and nothing else: one GEMM (or TRSM) and
        the reduction; None where it does not apply (the general path raises the errors)."""
        if not (isinstance(input, Tensor) and isinstance(target, Tensor) and input.dtype == target.dtype
                and input.dtype in _FAST_DTYPES and input.shape == target.shape and input.ndim >= 1) \
                or torch.compiler.is_compiling():
            return None
        st = self._matrix
        if st.kind == "inverse":
            m, m_t = st.cast_pair("inv_scale_tril", input)
            return _torch_fast.whitened_square(input - target, m, m_t, None, self.spec.reduction)
        lower = st.trainable().to(input.dtype) if st.kind == "trainable" else st.cast_pair("scale_tril", input)[0]
        return _torch_fast.whitened_square(input - target, None, None, lower, self.spec.reduction)

    def extra_repr(self) -> str:
        return repr(self.spec)

    # -- state_dict: the spec and the optional tensors travel with the state --------------
    def _default_spec(self) -> LossSpec | None:
        """The spec of the class built with its defaults (None: no such thing)."""
        return None

    def _save_to_state_dict(self, destination: Any, prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.spec == self._default_spec() and self._fixed() is None:
            destination.pop(prefix + "_extra_state", None)  # as torch.nn's losses: nothing

    def get_extra_state(self) -> dict[str, Any]:
        """The spec (``LossSpec.to_dict()``) and which optional tensors the module holds:
        plain dicts, strings, numbers and tensors, safe for ``torch.load(weights_only=True)``."""
        st = self._matrix
        out = {"format": _STATE_FORMAT, "spec": self.spec.to_dict(),
               "weight": self._buffers["weight"] is not None, "mask": self._buffers["mask"] is not None,
               "matrix": st.name, "factor": st.kind,
               "params": {n: "parameter" if n in self._parameters else "buffer" for n in self._param_names}}
        if st.tensor is not None:
            out["scale_tril_tensor"] = st.tensor.detach()
        return out

    def _saved_spec(self, extra: Any) -> LossSpec:
        """The spec of a saved extra state, checked against this class (ValueError)."""
        cls = type(self).__name__
        if not isinstance(extra, dict) or not isinstance(extra.get("spec"), dict):
            raise ValueError(f"{cls}: the saved extra state is not one of mse_adapters' (a dict with a 'spec'), "
                             f"got {type(extra).__name__}")
        fmt = extra.get("format")
        if fmt != _STATE_FORMAT:
            raise ValueError(f"{cls}: saved state format {fmt!r}; this version of mse_adapters reads format "
                             f"{_STATE_FORMAT}")
        spec = LossSpec.from_dict(extra["spec"])
        diff = [f for f in self._identity_fields if getattr(spec, f) != getattr(self.spec, f)]
        if diff:
            have = ", ".join(f"{f}={getattr(self.spec, f)!r}" for f in diff)
            raise ValueError(f"cannot load the state of {spec!r} into {cls}, which has {have}: build the class "
                             "that saved it, or a mse_adapters.torch.Loss (which loads any spec)")
        name, kind = extra.get("matrix"), extra.get("factor")
        if name not in _MATRIX_NAMES or kind not in _FACTOR_BUFFERS:
            raise ValueError(f"unknown matrix {name!r} / factor {kind!r} in the saved state of {cls}")
        if (name is None) != (spec.transform is None) or (name is None) != (kind is None):
            raise ValueError(f"the saved state's matrix ({name!r}, {kind!r}) does not match its spec's "
                             f"transform={spec.transform!r}")
        t = extra.get("scale_tril_tensor")
        if t is not None and not (kind == "trainable" and isinstance(t, Tensor)):
            raise ValueError(f"a scale_tril_tensor in the saved state of {cls} with factor {kind!r}")
        return spec

    def set_extra_state(self, state: Any) -> None:
        """Restore the spec (``load_state_dict`` has already given the module the saved
        tensors' slots; called alone, the saved state must have the module's slots)."""
        spec = self._saved_spec(state)
        st = self._matrix
        if (state.get("matrix"), state.get("factor")) != (st.name, st.kind) or any(
                bool(state.get(k)) != (self._buffers[k] is not None) for k in ("weight", "mask")) or \
                tuple(state.get("params", {})) != self._param_names:
            raise ValueError(f"{type(self).__name__}.set_extra_state: the saved state has other tensors than "
                             "this module; restore it with load_state_dict")
        self._set_spec(spec)

    def _load_from_state_dict(self, state_dict: Any, prefix: str, local_metadata: Any, strict: bool,
                              missing_keys: list[str], unexpected_keys: list[str], error_msgs: list[str]) -> None:
        key = prefix + "_extra_state"
        if key not in state_dict:
            # a state without ours (a default module's, or torch.nn's: empty): the spec as built
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
            saved, cur = state_dict.get(prefix + name), self._buffers[name]
            if not extra.get(name):
                self._buffers[name] = None
            elif isinstance(saved, Tensor) and (cur is None or cur.shape != saved.shape or cur.dtype != saved.dtype):
                self._buffers[name] = torch.empty_like(saved, device=place(cur))
        self._load_params(extra.get("params", {}), state_dict, prefix, place)
        self._load_matrix(extra, state_dict, prefix, place)
        self._set_spec(spec)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def _load_params(self, saved: dict[str, str], state_dict: Any, prefix: str, place: Any) -> None:
        """The penalty-parameter slots of a saved state (a Parameter of the same shape is kept,
        so that an optimizer holding it keeps training it)."""
        for name in self._param_names:
            if name not in saved:
                self._parameters.pop(name, None)
                self._buffers.pop(name, None)
        for name, kind in saved.items():
            t = state_dict.get(prefix + name)
            cur = self._parameters.get(name, self._buffers.get(name))
            if not isinstance(t, Tensor) or (cur is not None and cur.shape == t.shape and cur.dtype == t.dtype
                                             and (kind == "parameter") == (name in self._parameters)):
                continue
            self._parameters.pop(name, None)
            self._buffers.pop(name, None)
            if kind == "parameter":
                self.register_parameter(name, nn.Parameter(torch.empty_like(t, device=place(cur))))
            else:
                self.register_buffer(name, torch.empty_like(t, device=place(cur)))
        self.__dict__["_param_names"] = tuple(saved)

    def _load_matrix(self, extra: dict[str, Any], state_dict: Any, prefix: str, place: Any) -> None:
        """Give the module the matrix slots of a saved state before torch copies the tensors
        into them: stale buffers (or the trainable parameter) are removed, absent ones are
        registered with the saved shape and dtype; a trainable ``scale_tril`` Parameter of the
        same shape is kept (copied into in place: an optimizer holding it keeps training it)."""
        name, kind = extra.get("matrix"), extra.get("factor")
        keep = _FACTOR_BUFFERS[kind]
        for b in ("inv_scale_tril", "log_scale_diag", "precision", "scale_tril"):
            if b in self._buffers and b not in keep:
                del self._buffers[b]
        tensor = extra.get("scale_tril_tensor")
        param = kind == "trainable" and tensor is None
        if not param and "scale_tril" in self._parameters:
            del self._parameters["scale_tril"]
        for b in keep:
            t = state_dict.get(prefix + b)
            if isinstance(t, Tensor):
                cur = self._buffers.get(b)
                if cur is None or cur.shape != t.shape or cur.dtype != t.dtype:
                    self.register_buffer(b, torch.empty_like(t, device=place(cur)))
        if param:
            t = state_dict.get(prefix + "scale_tril")
            if isinstance(t, Tensor) and self._parameters.get("scale_tril") is None:
                self.register_parameter("scale_tril", nn.Parameter(torch.empty_like(t, device=place(None))))
        st = self._matrix
        if tensor is not None:
            if st.tensor is not None and st.tensor.shape == tensor.shape:
                with torch.no_grad():
                    st.tensor.copy_(tensor)
            else:
                st.tensor = tensor.detach().clone().to(place(st.tensor)).requires_grad_(True)
        else:
            st.tensor = None
        st.name, st.kind, st.cache = name, kind, None


def compile(spec: LossSpec, *, weight: Tensor | None = None, mask: Tensor | None = None,  # noqa: A001
            check_values: bool = True, covariance: Any = None, scale_tril: Any = None,
            precision: Any = None, process_group: Any = None) -> Loss:
    """Compile a spec into an ``nn.Module`` (a :class:`Loss`)."""
    return Loss(spec, weight=weight, mask=mask, check_values=check_values, covariance=covariance,
                scale_tril=scale_tril, precision=precision, process_group=process_group)


# ---------------------------------------------------------------------------------------
# The presets: bindings of the preset table's rows
# ---------------------------------------------------------------------------------------

_OPTIONS = ("Options every loss shares (``weight``, ``mask``, ``missing``, ``reduction``, ``check_values``, "
            "the matrices; ``sample_weight`` at call time): see :mod:`mse_adapters.torch`.")
#: The module's own arguments (the rest of a binding's are spec fields).
_MODULE_ARGS = ("weight", "mask", "check_values", "covariance", "scale_tril", "precision", "process_group")


class _Preset(Loss):
    """A named loss: a binding of one row of the preset table."""

    _preset = ""
    _identity_fields: tuple[str, ...] = ("penalty", "finalize")

    def __init_subclass__(cls, preset: str = "", **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if preset:
            cls._preset = preset
            cls.__doc__ = docstring(preset, "torch", _OPTIONS)

    def _bind(self, args: dict[str, Any]) -> None:
        """``__init__``'s arguments (its ``locals()``): spec fields (a tensor penalty parameter:
        held by the module) and the module's own."""
        fields, params = split_params({k: v for k, v in args.items()
                                       if k not in _MODULE_ARGS and not k.startswith("__") and k != "self"})
        if not isinstance(fields.get("multioutput", ""), str):
            fields["multioutput"] = tuple(float(v) for v in fields["multioutput"])
        Loss.__init__(self, self._spec_of(fields), params=params,
                      **{k: args[k] for k in _MODULE_ARGS if k in args})

    def _spec_of(self, fields: dict[str, Any]) -> LossSpec:
        return preset(self._preset, **fields)

    def _default_spec(self) -> LossSpec | None:
        defaults = {k: p.default for k, p in inspect.signature(type(self).__init__).parameters.items()
                    if k not in _MODULE_ARGS and k != "self" and p.default is not inspect.Parameter.empty}
        try:
            return self._spec_of(dict(defaults))
        except ValueError:  # pragma: no cover - a class without a default spec
            return None


def _functional_call(name: str, input: Any, target: Any, fields: dict[str, Any], weight: Any, sample_weight: Any,
                     mask: Any, check_values: bool, normalizer: Any, process_group: Any) -> Tensor:
    """A functional form's call: the preset's spec (made once per distinct fields), its
    tensor parameters, by the plan of the call's signature."""
    fields, params = split_params(fields)
    if not isinstance(fields.get("multioutput", ""), str):
        fields["multioutput"] = tuple(float(v) for v in fields["multioutput"])
    if torch.compiler.is_compiling():  # a float may be symbolic there: an input of the graph, not of the spec
        params.update({k: torch.as_tensor(fields.pop(k)) for k in list(fields) if k in PARAM_NAMES})
    call = Call(input, target, weight, sample_weight, mask, params=params, normalizer=normalizer)
    return _call(_PLANS, preset(name, **fields), call, _context(check_values, NO_FIXED, process_group))


# <generated: the preset table's bindings; `python -m mse_adapters._bindings` rewrites this region>


class MSELoss(_Preset, preset="mse"):
    def __init__(self, reduction: str = "mean", *, multioutput: Multioutput = "pooled", unit_norm: float = 0.0,
                 missing: str | None = None, weight: Tensor | None = None, mask: Tensor | None = None,
                 check_values: bool = True, covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 process_group: Any = None) -> None:
        self._bind(locals())


def mse_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", multioutput: Multioutput = "pooled",
             unit_norm: float = 0.0, missing: str | None = None, weight: Tensor | None = None,
             mask: Tensor | None = None, sample_weight: Tensor | None = None, check_values: bool = True,
             normalizer: Tensor | None = None, process_group: Any = None) -> Tensor:
    """Functional :class:`MSELoss` (its arguments, and ``sample_weight``,
    ``normalizer``, ``process_group``)."""
    fields = {"reduction": reduction, "multioutput": multioutput, "unit_norm": unit_norm, "missing": missing}
    return _functional_call("mse", input, target, fields, weight, sample_weight, mask, check_values,
                            normalizer, process_group)


class MAELoss(_Preset, preset="mae"):
    def __init__(self, reduction: str = "mean", *, multioutput: Multioutput = "pooled", missing: str | None = None,
                 weight: Tensor | None = None, mask: Tensor | None = None, check_values: bool = True,
                 covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 process_group: Any = None) -> None:
        self._bind(locals())


def mae_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", multioutput: Multioutput = "pooled",
             missing: str | None = None, weight: Tensor | None = None, mask: Tensor | None = None,
             sample_weight: Tensor | None = None, check_values: bool = True, normalizer: Tensor | None = None,
             process_group: Any = None) -> Tensor:
    """Functional :class:`MAELoss` (its arguments, and ``sample_weight``,
    ``normalizer``, ``process_group``)."""
    fields = {"reduction": reduction, "multioutput": multioutput, "missing": missing}
    return _functional_call("mae", input, target, fields, weight, sample_weight, mask, check_values,
                            normalizer, process_group)


class RMSELoss(_Preset, preset="rmse"):
    def __init__(self, reduction: str = "mean", *, multioutput: Multioutput = "pooled", missing: str | None = None,
                 weight: Tensor | None = None, mask: Tensor | None = None, check_values: bool = True,
                 covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 process_group: Any = None) -> None:
        self._bind(locals())


def rmse_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", multioutput: Multioutput = "pooled",
              missing: str | None = None, weight: Tensor | None = None, mask: Tensor | None = None,
              sample_weight: Tensor | None = None, check_values: bool = True, normalizer: Tensor | None = None,
              process_group: Any = None) -> Tensor:
    """Functional :class:`RMSELoss` (its arguments, and ``sample_weight``,
    ``normalizer``, ``process_group``)."""
    fields = {"reduction": reduction, "multioutput": multioutput, "missing": missing}
    return _functional_call("rmse", input, target, fields, weight, sample_weight, mask, check_values,
                            normalizer, process_group)


class HuberLoss(_Preset, preset="huber"):
    def __init__(self, reduction: str = "mean", delta: float | Tensor = 1.0, *, missing: str | None = None,
                 weight: Tensor | None = None, mask: Tensor | None = None, check_values: bool = True,
                 covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 process_group: Any = None) -> None:
        self._bind(locals())


def huber_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", delta: float | Tensor = 1.0,
               missing: str | None = None, weight: Tensor | None = None, mask: Tensor | None = None,
               sample_weight: Tensor | None = None, check_values: bool = True, normalizer: Tensor | None = None,
               process_group: Any = None) -> Tensor:
    """Functional :class:`HuberLoss` (its arguments, and ``sample_weight``,
    ``normalizer``, ``process_group``)."""
    fields = {"reduction": reduction, "delta": delta, "missing": missing}
    return _functional_call("huber", input, target, fields, weight, sample_weight, mask, check_values,
                            normalizer, process_group)


class SmoothL1Loss(_Preset, preset="smooth_l1"):
    def __init__(self, reduction: str = "mean", beta: float | Tensor = 1.0, *, missing: str | None = None,
                 weight: Tensor | None = None, mask: Tensor | None = None, check_values: bool = True,
                 covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 process_group: Any = None) -> None:
        self._bind(locals())


def smooth_l1_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", beta: float | Tensor = 1.0,
                   missing: str | None = None, weight: Tensor | None = None, mask: Tensor | None = None,
                   sample_weight: Tensor | None = None, check_values: bool = True, normalizer: Tensor | None = None,
                   process_group: Any = None) -> Tensor:
    """Functional :class:`SmoothL1Loss` (its arguments, and ``sample_weight``,
    ``normalizer``, ``process_group``)."""
    fields = {"reduction": reduction, "beta": beta, "missing": missing}
    return _functional_call("smooth_l1", input, target, fields, weight, sample_weight, mask, check_values,
                            normalizer, process_group)


class LogCoshLoss(_Preset, preset="log_cosh"):
    def __init__(self, reduction: str = "mean", *, missing: str | None = None, weight: Tensor | None = None,
                 mask: Tensor | None = None, check_values: bool = True, covariance: Any = None, scale_tril: Any = None,
                 precision: Any = None, process_group: Any = None) -> None:
        self._bind(locals())


def log_cosh_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", missing: str | None = None,
                  weight: Tensor | None = None, mask: Tensor | None = None, sample_weight: Tensor | None = None,
                  check_values: bool = True, normalizer: Tensor | None = None, process_group: Any = None) -> Tensor:
    """Functional :class:`LogCoshLoss` (its arguments, and ``sample_weight``,
    ``normalizer``, ``process_group``)."""
    fields = {"reduction": reduction, "missing": missing}
    return _functional_call("log_cosh", input, target, fields, weight, sample_weight, mask, check_values,
                            normalizer, process_group)


class ExpectileLoss(_Preset, preset="expectile"):
    def __init__(self, reduction: str = "mean", tau: float | Tensor = 0.5, *, missing: str | None = None,
                 weight: Tensor | None = None, mask: Tensor | None = None, check_values: bool = True,
                 covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 process_group: Any = None) -> None:
        self._bind(locals())


def expectile_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", tau: float | Tensor = 0.5,
                   missing: str | None = None, weight: Tensor | None = None, mask: Tensor | None = None,
                   sample_weight: Tensor | None = None, check_values: bool = True, normalizer: Tensor | None = None,
                   process_group: Any = None) -> Tensor:
    """Functional :class:`ExpectileLoss` (its arguments, and ``sample_weight``,
    ``normalizer``, ``process_group``)."""
    fields = {"reduction": reduction, "tau": tau, "missing": missing}
    return _functional_call("expectile", input, target, fields, weight, sample_weight, mask, check_values,
                            normalizer, process_group)


class PseudoHuberLoss(_Preset, preset="pseudo_huber"):
    def __init__(self, reduction: str = "mean", delta: float | Tensor = 1.0, *, missing: str | None = None,
                 weight: Tensor | None = None, mask: Tensor | None = None, check_values: bool = True,
                 covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 process_group: Any = None) -> None:
        self._bind(locals())


def pseudo_huber_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", delta: float | Tensor = 1.0,
                      missing: str | None = None, weight: Tensor | None = None, mask: Tensor | None = None,
                      sample_weight: Tensor | None = None, check_values: bool = True, normalizer: Tensor | None = None,
                      process_group: Any = None) -> Tensor:
    """Functional :class:`PseudoHuberLoss` (its arguments, and ``sample_weight``,
    ``normalizer``, ``process_group``)."""
    fields = {"reduction": reduction, "delta": delta, "missing": missing}
    return _functional_call("pseudo_huber", input, target, fields, weight, sample_weight, mask, check_values,
                            normalizer, process_group)


class QuantileLoss(_Preset, preset="quantile"):
    def __init__(self, reduction: str = "mean", tau: float | Tensor = 0.5, *, missing: str | None = None,
                 weight: Tensor | None = None, mask: Tensor | None = None, check_values: bool = True,
                 covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 process_group: Any = None) -> None:
        self._bind(locals())


def quantile_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", tau: float | Tensor = 0.5,
                  missing: str | None = None, weight: Tensor | None = None, mask: Tensor | None = None,
                  sample_weight: Tensor | None = None, check_values: bool = True, normalizer: Tensor | None = None,
                  process_group: Any = None) -> Tensor:
    """Functional :class:`QuantileLoss` (its arguments, and ``sample_weight``,
    ``normalizer``, ``process_group``)."""
    fields = {"reduction": reduction, "tau": tau, "missing": missing}
    return _functional_call("quantile", input, target, fields, weight, sample_weight, mask, check_values,
                            normalizer, process_group)


class BarronLoss(_Preset, preset="barron"):
    def __init__(self, reduction: str = "mean", alpha: float | Tensor = 1.0, scale: float | Tensor = 1.0, *,
                 missing: str | None = None, weight: Tensor | None = None, mask: Tensor | None = None,
                 check_values: bool = True, covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 process_group: Any = None) -> None:
        self._bind(locals())


def barron_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", alpha: float | Tensor = 1.0,
                scale: float | Tensor = 1.0, missing: str | None = None, weight: Tensor | None = None,
                mask: Tensor | None = None, sample_weight: Tensor | None = None, check_values: bool = True,
                normalizer: Tensor | None = None, process_group: Any = None) -> Tensor:
    """Functional :class:`BarronLoss` (its arguments, and ``sample_weight``,
    ``normalizer``, ``process_group``)."""
    fields = {"reduction": reduction, "alpha": alpha, "scale": scale, "missing": missing}
    return _functional_call("barron", input, target, fields, weight, sample_weight, mask, check_values,
                            normalizer, process_group)


class CauchyLoss(_Preset, preset="cauchy"):
    def __init__(self, reduction: str = "mean", scale: float | Tensor = 1.0, *, missing: str | None = None,
                 weight: Tensor | None = None, mask: Tensor | None = None, check_values: bool = True,
                 covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 process_group: Any = None) -> None:
        self._bind(locals())


def cauchy_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", scale: float | Tensor = 1.0,
                missing: str | None = None, weight: Tensor | None = None, mask: Tensor | None = None,
                sample_weight: Tensor | None = None, check_values: bool = True, normalizer: Tensor | None = None,
                process_group: Any = None) -> Tensor:
    """Functional :class:`CauchyLoss` (its arguments, and ``sample_weight``,
    ``normalizer``, ``process_group``)."""
    fields = {"reduction": reduction, "scale": scale, "missing": missing}
    return _functional_call("cauchy", input, target, fields, weight, sample_weight, mask, check_values,
                            normalizer, process_group)


class GemanMcClureLoss(_Preset, preset="geman_mcclure"):
    def __init__(self, reduction: str = "mean", scale: float | Tensor = 1.0, *, missing: str | None = None,
                 weight: Tensor | None = None, mask: Tensor | None = None, check_values: bool = True,
                 covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 process_group: Any = None) -> None:
        self._bind(locals())


def geman_mcclure_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", scale: float | Tensor = 1.0,
                       missing: str | None = None, weight: Tensor | None = None, mask: Tensor | None = None,
                       sample_weight: Tensor | None = None, check_values: bool = True, normalizer: Tensor | None = None,
                       process_group: Any = None) -> Tensor:
    """Functional :class:`GemanMcClureLoss` (its arguments, and ``sample_weight``,
    ``normalizer``, ``process_group``)."""
    fields = {"reduction": reduction, "scale": scale, "missing": missing}
    return _functional_call("geman_mcclure", input, target, fields, weight, sample_weight, mask, check_values,
                            normalizer, process_group)


class WelschLoss(_Preset, preset="welsch"):
    def __init__(self, reduction: str = "mean", scale: float | Tensor = 1.0, *, missing: str | None = None,
                 weight: Tensor | None = None, mask: Tensor | None = None, check_values: bool = True,
                 covariance: Any = None, scale_tril: Any = None, precision: Any = None,
                 process_group: Any = None) -> None:
        self._bind(locals())


def welsch_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", scale: float | Tensor = 1.0,
                missing: str | None = None, weight: Tensor | None = None, mask: Tensor | None = None,
                sample_weight: Tensor | None = None, check_values: bool = True, normalizer: Tensor | None = None,
                process_group: Any = None) -> Tensor:
    """Functional :class:`WelschLoss` (its arguments, and ``sample_weight``,
    ``normalizer``, ``process_group``)."""
    fields = {"reduction": reduction, "scale": scale, "missing": missing}
    return _functional_call("welsch", input, target, fields, weight, sample_weight, mask, check_values,
                            normalizer, process_group)


class NMSELoss(_Preset, preset="nmse"):
    def __init__(self, *, multioutput: Multioutput = "uniform_average", force_finite: bool = True,
                 missing: str | None = None, weight: Tensor | None = None, mask: Tensor | None = None,
                 check_values: bool = True, process_group: Any = None) -> None:
        self._bind(locals())


def nmse_loss(input: Tensor, target: Tensor, *, multioutput: Multioutput = "uniform_average", force_finite: bool = True,
              missing: str | None = None, weight: Tensor | None = None, mask: Tensor | None = None,
              sample_weight: Tensor | None = None, check_values: bool = True, normalizer: Tensor | None = None,
              process_group: Any = None) -> Tensor:
    """Functional :class:`NMSELoss` (its arguments, and ``sample_weight``,
    ``normalizer``, ``process_group``)."""
    fields = {"multioutput": multioutput, "force_finite": force_finite, "missing": missing}
    return _functional_call("nmse", input, target, fields, weight, sample_weight, mask, check_values,
                            normalizer, process_group)


class R2Score(_Preset, preset="r2"):
    def __init__(self, *, multioutput: Multioutput = "uniform_average", force_finite: bool = True,
                 missing: str | None = None, weight: Tensor | None = None, mask: Tensor | None = None,
                 check_values: bool = True, process_group: Any = None) -> None:
        self._bind(locals())


def r2_score(input: Tensor, target: Tensor, *, multioutput: Multioutput = "uniform_average", force_finite: bool = True,
             missing: str | None = None, weight: Tensor | None = None, mask: Tensor | None = None,
             sample_weight: Tensor | None = None, check_values: bool = True, normalizer: Tensor | None = None,
             process_group: Any = None) -> Tensor:
    """Functional :class:`R2Score` (its arguments, and ``sample_weight``,
    ``normalizer``, ``process_group``)."""
    fields = {"multioutput": multioutput, "force_finite": force_finite, "missing": missing}
    return _functional_call("r2", input, target, fields, weight, sample_weight, mask, check_values,
                            normalizer, process_group)


# </generated>


# -- Gaussian likelihoods -----------------------------------------------------------------


class GaussianNLLLoss(_Preset):
    """Heteroscedastic Gaussian negative log-likelihood with a predicted variance:
    ``0.5 * (log v + (input - target)**2 / v)`` with ``v = max(var, eps)`` (clamped as torch
    does, the gradient passing through the clamp), plus ``0.5 * log(2 pi)`` with ``full``.
    Equal to ``torch.nn.GaussianNLLLoss`` in value and gradient, with its variance shapes and
    its errors; adds weights, masks, missing targets and every reduction.

    >>> import torch
    >>> GaussianNLLLoss()(torch.tensor([1.0, 2.0]), torch.zeros(2), torch.tensor([1.0, 4.0]))
    tensor(0.8466)
    """

    _identity_fields = ("penalty", "finalize", "transform")

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean",
                 missing: str | None = None, weight: Tensor | None = None, mask: Tensor | None = None,
                 check_values: bool = True, process_group: Any = None) -> None:
        self._bind(locals())

    def _spec_of(self, fields: dict[str, Any]) -> LossSpec:
        return LossSpec(penalty="gaussian_nll", **fields)

    def forward(self, input: Tensor, target: Tensor, var: Any = None, *,  # type: ignore[override]
                weight: Tensor | None = None, sample_weight: Tensor | None = None,
                mask: Tensor | None = None, normalizer: Tensor | None = None) -> Tensor:
        return super().forward(input, target, weight=weight, sample_weight=sample_weight, mask=mask, var=var,
                               normalizer=normalizer)


class MultivariateGaussianNLLLoss(_Preset):
    """Full-covariance Gaussian negative log-likelihood, one value per sample (the last axis
    is the event): ``0.5 * |L^-1 r|**2 + sum(log diag L) + d/2 log(2 pi)`` with
    ``covariance = L L^T``, i.e. ``-MultivariateNormal(input, scale_tril=L).log_prob(target)``,
    then reduced over samples. Give a ``covariance`` (factored once, in float64) or a
    ``scale_tril`` (an ``nn.Parameter`` is learned). ``full=False`` drops the constant.

    >>> import torch
    >>> f = MultivariateGaussianNLLLoss(covariance=torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
    >>> f(torch.tensor([[1.0, 0.0]]), torch.zeros(1, 2))
    tensor(2.4345)
    """

    _identity_fields = ("penalty", "finalize", "transform")

    def __init__(self, *, covariance: Any = None, scale_tril: Any = None, full: bool = True,
                 reduction: str = "mean", missing: str | None = None, weight: Tensor | None = None,
                 mask: Tensor | None = None, check_values: bool = True, process_group: Any = None) -> None:
        self._bind(locals())

    def _spec_of(self, fields: dict[str, Any]) -> LossSpec:
        return LossSpec(penalty="gaussian_nll", transform="whiten", **fields)

    def _default_spec(self) -> LossSpec | None:
        return None  # it always holds a matrix


def gaussian_nll_loss(input: Tensor, target: Tensor, var: Any, *, full: bool = False, eps: float = 1e-6,
                      reduction: str = "mean", weight: Any = None, sample_weight: Any = None, mask: Any = None,
                      missing: str | None = None, check_values: bool = True, normalizer: Any = None,
                      process_group: Any = None) -> Tensor:
    """Functional :class:`GaussianNLLLoss` (``torch.nn.functional.gaussian_nll_loss``'s order)."""
    spec = LossSpec(penalty="gaussian_nll", full=full, eps=eps, reduction=reduction, missing=missing)
    return loss(spec, input, target, weight=weight, sample_weight=sample_weight, mask=mask,
                check_values=check_values, var=var, normalizer=normalizer, process_group=process_group)


def multivariate_gaussian_nll_loss(input: Tensor, target: Tensor, *, covariance: Any = None, scale_tril: Any = None,
                                   full: bool = True, reduction: str = "mean", weight: Any = None,
                                   sample_weight: Any = None, mask: Any = None, missing: str | None = None,
                                   check_values: bool = True, normalizer: Any = None,
                                   process_group: Any = None) -> Tensor:
    """Functional :class:`MultivariateGaussianNLLLoss`. A ``scale_tril`` or ``covariance``
    that requires grad (e.g. predicted per sample, ``(B, d, d)``) gets its gradient."""
    spec = LossSpec(penalty="gaussian_nll", transform="whiten", full=full, reduction=reduction, missing=missing)
    return loss(spec, input, target, weight=weight, sample_weight=sample_weight, mask=mask,
                check_values=check_values, covariance=covariance, scale_tril=scale_tril, normalizer=normalizer,
                process_group=process_group)



# Diagnostics and derivative penalties (written once in mse_adapters/_diagnostics.py).
from .._diagnostics import bind as _bind_diagnostics  # noqa: E402

bias_variance, contributions, derivative, derivative_penalty = _bind_diagnostics(
    OPS, prepare, jvp=lambda f, x, v: torch.func.jvp(f, (x,), (v,)), loss=mse_loss)
__all__ += ["bias_variance", "contributions", "derivative", "derivative_penalty"]
