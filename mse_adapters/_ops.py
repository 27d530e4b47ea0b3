"""The interface between the core and the backends, and the checks of a call's inputs that
need no arithmetic: :class:`Ops` (the array primitives every backend supplies), the records
that travel between the stages (:class:`ArgNames`, :class:`Whitening`, :class:`Prepared`,
:class:`Check`), the input checks (framework, dtype, compute dtype) and the shape rules
(trailing and leading alignment). Nothing here imports a framework or another module of the
package but the messages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from . import _messages as msg
from ._penalties import EPS  # (defined with the numerics that read it)

if TYPE_CHECKING:
    from ._spec import LossSpec

__all__ = ["Ops", "ArgNames", "DEFAULT_NAMES", "Prepared", "Whitening", "Check", "Rule", "EPS", "Fixed", "NO_FIXED",
           "Call", "Context", "kind",
           "check_input", "compute_dtype", "check_trailing", "broadcasts_to", "leading_shape", "var_shape"]

Array = Any
Shape = tuple[int, ...]
#: A value check: (condition, message, format arguments); the condition holds where it is
#: True everywhere (an array of any shape).
Rule = tuple[Array, str, Mapping[str, Any]]



class ArgNames(NamedTuple):
    """How a backend names its arguments in error messages."""

    pred: str = "y_pred"
    target: str = "y_true"
    weight: str = "weight"
    sample_weight: str = "sample_weight"
    mask: str = "mask"


DEFAULT_NAMES = ArgNames()


class Whitening(NamedTuple):
    """The transform stage as the pipeline applies it, in the compute dtype.

    ``kind``: ``"solve"`` (``matrix`` is the lower Cholesky factor L: z = L^-1 r by a
    triangular solve; a trainable or traced factor always takes this path, so that its
    gradient flows), ``"inverse"`` (``matrix`` is L^-1, formed in float64 on the host: z by a
    product) or ``"precision"`` (``matrix`` is P: the terms r_j (P r)_j, whose sum over the
    last axis is r^T P r). ``log_diag``: log L_jj, ``(..., d)``, for the multivariate
    Gaussian NLL (None: read off ``matrix``). ``name``: the argument it came from."""

    kind: str
    matrix: Array
    log_diag: Array | None = None
    name: str = "covariance"


class Ops:
    """The array primitives the pipeline and the preparation need; one subclass per backend.

    Arithmetic (``+ - * /``, unary ``-``), comparisons and the boolean ``& | ~`` are used
    directly on the arrays. A backend's optimisation is its implementation of a primitive
    (JAX counts booleans through a 2-byte type in :meth:`sum`; torch answers
    :meth:`extrema` in one pass). Linear algebra (:meth:`matvec`, :meth:`solve_tril`,
    :meth:`cholesky`) and :meth:`clamp_min_nograd` are needed by the transform stage and the
    Gaussian likelihoods only.
    """

    #: The backend's name (``numpy``, ``torch``, ``jax``, ``keras``).
    name = "abstract"
    #: The framework whose arrays it takes (an array of another one is a TypeError).
    framework = "numpy"
    #: What the inputs may be, for the error of an object that is none of them.
    accepts = "an array"
    #: How a constant (host-factored) covariance is applied: ``"inverse"`` (a product with
    #: the float64-formed L^-1) or ``"solve"`` (a triangular solve against L): the backend's
    #: measured choice (docs/design.md, "Whitening").
    whiten_by = "inverse"
    #: The NumPy-API namespace of the framework, for value checks of traced matrices (only
    #: JAX's checkify evaluates them; elsewhere traced values are not checked).
    xp: Any = None

    # -- arrays in and out ------------------------------------------------------------------
    def asarray(self, x: Any, dtype: str | None = None, like: Array = None) -> Array:
        """``x`` (an array of this framework or an array-like) as an array, cast to ``dtype``
        when given, on ``like``'s device."""
        raise NotImplementedError

    def dtype(self, x: Array) -> str | None:
        """``x``'s dtype name (``float32``, ``bfloat16``, ``int64``, ``bool``, ``complex64``);
        None for an object that is not an array of the backend's framework."""
        raise NotImplementedError

    def float_dtype(self, *xs: Array) -> str:
        """The dtype the arrays promote to; the framework's default float for integers and
        booleans."""
        raise NotImplementedError

    def constant(self, values: Any, like: Array) -> Array:
        """Host values (a NumPy array or a list) as an array of ``like``'s dtype and device."""
        raise NotImplementedError

    def to_host(self, x: Array) -> np.ndarray:
        """The value of a concrete array as NumPy (a host sync)."""
        return np.asarray(x)

    def is_abstract(self, x: Any) -> bool:
        """Whether ``x`` is symbolic (traced or compiled): it has no value to check."""
        return False

    def is_traced(self, x: Any) -> bool:
        """Whether a matrix ``x`` is differentiated or symbolic: it is then used in the
        compute dtype by a differentiable triangular solve, not factored on the host."""
        return self.is_abstract(x)

    # -- elementwise ------------------------------------------------------------------------
    def penalty(self, row: Any, r: Array, params: Any) -> Array:
        """rho(r) of a penalty table row. A backend may attach the row's own derivatives
        (rho', rho'') to it in place of its autodiff of the value's formula."""
        return row.value(self, r, params)

    def where(self, cond: Array, x: Array | float, y: Array | float) -> Array:
        raise NotImplementedError

    def abs(self, x: Array) -> Array:
        """|x| with derivative sign(x): 0 at x = 0."""
        raise NotImplementedError

    def sign(self, x: Array) -> Array:
        raise NotImplementedError

    def sqrt(self, x: Array) -> Array:
        raise NotImplementedError

    def expm1(self, x: Array) -> Array:
        """exp(x) - 1, accurate near 0."""
        raise NotImplementedError

    def log(self, x: Array) -> Array:
        raise NotImplementedError

    def log1p(self, x: Array) -> Array:
        raise NotImplementedError

    def clamp_min_nograd(self, x: Array, lo: float) -> Array:
        """max(x, lo) with the identity's derivative (``torch.nn.GaussianNLLLoss`` clamps its
        variance in place under ``no_grad``: the gradient passes through the clamp)."""
        raise NotImplementedError

    # -- shapes -----------------------------------------------------------------------------
    def shape(self, x: Array) -> Shape:
        raise NotImplementedError

    def reshape(self, x: Array, shape: Shape) -> Array:
        raise NotImplementedError

    def broadcast_to(self, x: Array, shape: Shape) -> Array:
        raise NotImplementedError

    # -- reductions -------------------------------------------------------------------------
    def sum(self, x: Array, axis: tuple[int, ...] | None = None, dtype: str | None = None) -> Array:
        """Accurate (pairwise or better) sum over ``axis`` (all when None; ``()``: ``x``).
        A boolean ``x`` is counted, in the float ``dtype``."""
        raise NotImplementedError

    def count(self, x: Array, axes: tuple[int, ...] | None = None) -> Array | float:
        """The number of elements of ``x`` over ``axes`` (all when None) as a Python float; a
        backend whose shapes may be unknown until run time returns an array then."""
        shape = self.shape(x)
        return float(math.prod(shape if axes is None else [shape[a] for a in axes]))

    def extrema(self, x: Array) -> tuple[Array, Array]:
        """(min, max) of a non-empty ``x``, NaN-propagating (the value checks of weights)."""
        raise NotImplementedError

    # -- linear algebra (the transform stage) ------------------------------------------------
    def matvec(self, m: Array, x: Array) -> Array:
        """``m @ x`` for matrices ``(..., d, d)`` and vectors on the last axis of ``x``."""
        raise NotImplementedError

    def solve_tril(self, lower: Array, x: Array) -> Array:
        """z with ``tril(lower) @ z = x`` along the last axis; differentiable in both."""
        raise NotImplementedError

    def cholesky(self, m: Array) -> Array:
        """The lower Cholesky factor of a traced covariance (in its dtype)."""
        raise NotImplementedError

    # -- plans and value checks -------------------------------------------------------------
    def describe(self, x: Any) -> Hashable:
        """What a call's plan depends on of an argument (docs/design.md, "Plans"): None, a
        Python number's type, or an array's type, dtype and shape (a backend adds its device
        and whether it is differentiated). Cheap: no values are read."""
        if x is None:
            return None
        if isinstance(x, (bool, int, float, complex)):
            return type(x).__name__
        a = x if hasattr(x, "shape") and hasattr(x, "dtype") else np.asarray(x)
        return (type(x), str(a.dtype), tuple(a.shape))

    def host_values(self, stats: Sequence[Array]) -> list[Any]:
        """The values of the checks' statistics on the host (one synchronisation, where the
        backend can gather them into one transfer)."""
        return [self.to_host(s) for s in stats]

    def verify(self, checks: Sequence[tuple[Check, Array]]) -> None:
        """The eager value checks of a call, all at once: each :class:`Check` reduces its array
        to a few statistics on the array's device, the statistics come to the host in one
        transfer (:meth:`host_values`), and the first rule that fails raises
        ``ValueError(message.format(**arguments))``. Skipped when an input is abstract
        (tracing, compilation): nothing can be raised there. JAX under checkify emits the
        rules as ``checkify.check`` calls instead."""
        if not checks or any(self.is_abstract(x) for _, x in checks):
            return
        self._verify(checks)

    def _verify(self, checks: Sequence[tuple[Check, Array]]) -> None:
        groups = [c.stats(self, x) for c, x in checks]
        values = iter(self.host_values([s for g in groups for s in g]))
        for (c, _), g in zip(checks, groups):
            vals = [next(values) for _ in g]
            if c.passes is not None and c.passes(*vals):
                continue  # the common case: no rule to evaluate
            for cond, text, kw in c.rules(np, *vals):
                if not (cond if isinstance(cond, bool) else bool(np.all(cond))):
                    raise ValueError(text.format(**{k: self._host_scalar(v) for k, v in kw.items()}))

    def _host_scalar(self, v: Any) -> Any:
        a = np.asarray(self.to_host(v) if not isinstance(v, (int, float, str)) else v)
        return a.item() if a.ndim == 0 else a


class Check(NamedTuple):
    """A value check of one array, in two halves: ``stats(ops, x)`` reduces ``x`` to a few
    statistics on its device (its extrema, a count), and ``rules(xp, *values)`` states the
    conditions on their values with their messages (:data:`Rule` s), in the array namespace
    ``xp`` (NumPy on the host; ``jax.numpy`` when JAX's checkify emits them traced). Every
    check of a call thus costs its reductions and one transfer to the host in all."""

    stats: Callable[[Ops, Array], tuple[Array, ...]]
    rules: Callable[..., Sequence[Rule]]
    #: Whether the host values pass every rule (a shortcut for the common case, on Python
    #: numbers; None: evaluate the rules).
    passes: Callable[..., bool] | None = None


class Prepared(NamedTuple):
    """One call, ready for the pipeline: arrays in the compute dtype (``mask`` boolean),
    shapes checked, values checked (eagerly), the transform resolved."""

    spec: LossSpec
    pred: Array
    target: Array
    weight: Array | None
    sample_weight: Array | None
    mask: Array | None
    whitening: Whitening | None
    var: Array | float | None
    shape: Shape
    names: ArgNames
    #: Penalty parameters given as arrays (broadcastable like ``weight``), by name; the
    #: spec's Python floats otherwise.
    params: Mapping[str, Array] = {}
    #: The denominator the reduction divides by instead of the batch's own (docs/design.md,
    #: "Scale-out"): a scalar, or one per output for per-output reductions; checked.
    normalizer: Array | None = None
    #: Sums across replicas (data parallelism): ``allreduce(arrays) -> arrays``, each the sum
    #: of its replicas' values, differentiable (the backend's collective).
    allreduce: Callable[[tuple[Array, ...]], tuple[Array, ...]] | None = None




def leading_shape(name: str, shape: Shape, target: Shape, target_name: str) -> Shape:
    """Align ``shape`` with the LEADING axes of ``target``; return it padded with 1s."""
    shape = tuple(shape)
    if not (len(shape) <= len(target) and all(s in (1, t) for s, t in zip(shape, target))):
        raise ValueError(msg.not_leading(name, shape, tuple(target), target_name))
    return shape + (1,) * (len(target) - len(shape))



def var_shape(vshape: Shape, pred_shape: Shape, names: ArgNames) -> Shape:
    """torch.nn.GaussianNLLLoss' accepted variance shapes: ``pred``'s shape; ``pred``'s shape
    without its last axis (one variance per sample: a trailing 1 is added); or ``pred``'s
    number of axes with exactly one mismatched axis, of size 1 in ``var``."""
    vshape, pred_shape = tuple(vshape), tuple(pred_shape)
    if vshape == pred_shape:
        return vshape
    if pred_shape and vshape == pred_shape[:-1]:
        return vshape + (1,)
    if len(vshape) == len(pred_shape) and sum(v for p, v in zip(pred_shape, vshape) if p != v) == 1:
        return vshape
    raise ValueError(msg.var_shape(vshape, pred_shape, names.pred))



def check_trailing(name: str, shape: Shape, target: Shape, target_name: str) -> None:
    """``shape`` must broadcast to ``target`` by NumPy (trailing) rules, without growing it."""
    if not broadcasts_to(tuple(shape), tuple(target)):
        raise ValueError(msg.not_trailing(name, tuple(shape), tuple(target), target_name))


def broadcasts_to(small: Shape, big: Shape) -> bool:
    if len(small) > len(big):
        return False
    return all(s in (1, b) for s, b in zip(reversed(small), reversed(big)))



# ---------------------------------------------------------------------------------------
# A call's arguments and what a loss brings to it (mse_adapters._prepare turns them into a
# Prepared call)
# ---------------------------------------------------------------------------------------


class Fixed(NamedTuple):
    """What a loss was built with: a weight and a mask (checked then), and a matrix: an object
    with ``name``, ``shape`` and ``whitening(ops, like) -> Whitening`` (a
    :class:`~mse_adapters._whiten.HostMatrix`, a trainable factor, a module's buffers)."""

    weight: Array | None = None
    mask: Array | None = None
    matrix: Any = None
    params: Mapping[str, Array] = {}  # penalty parameters held as arrays (a torch Parameter, a Keras variable)


NO_FIXED = Fixed()


class Call(NamedTuple):
    """One call's arguments as the user gave them (None: not given). ``params``: penalty
    parameters given as arrays; ``extra_masks``: further (name, mask) parts (Keras'
    ``_keras_mask``)."""

    pred: Any
    target: Any
    weight: Any = None
    sample_weight: Any = None
    mask: Any = None
    var: Any = None
    covariance: Any = None
    scale_tril: Any = None
    precision: Any = None
    params: Mapping[str, Any] = {}
    normalizer: Any = None
    extra_masks: tuple[tuple[str, Any], ...] = ()


class Context(NamedTuple):
    """What a loss brings to each of its calls: its backend, how it names its arguments, what
    it was built with, whether it checks values, the compute dtype when the loss fixes it
    (Keras, NumPy; else the promotion of the prediction and the target), and the sum across
    replicas (``allreduce``; ``replicas``: the argument that asked for it, for the errors)."""

    ops: Ops
    names: ArgNames = DEFAULT_NAMES
    fixed: Fixed = NO_FIXED
    check_values: bool = True
    dtype: str | None = None
    allreduce: Any = None
    replicas: str = "process_group"

# ---------------------------------------------------------------------------------------
# The inputs' frameworks and dtypes
# ---------------------------------------------------------------------------------------

_FRAMEWORK_OF_MODULE = {"torch": "torch", "jax": "jax", "jaxlib": "jax", "tensorflow": "tensorflow"}
_HOST_LIKE = (list, tuple, bool, int, float, np.ndarray, np.generic)


def kind(dtype: str) -> str:
    """``"b"`` (bool), ``"i"``, ``"u"``, ``"f"``, ``"c"`` or ``"o"`` (anything else)."""
    if dtype == "bool":
        return "b"
    if dtype.startswith("uint"):
        return "u"
    if dtype.startswith("int"):
        return "i"
    if dtype.startswith(("float", "bfloat")):
        return "f"
    if dtype.startswith("complex"):
        return "c"
    return "o"


def check_input(ops: Ops, name: str, x: Any) -> str:
    """A TypeError for another framework's array (converting it silently would copy it across
    devices and cut its gradient) or a dtype no loss takes; returns ``x``'s dtype name."""
    framework = _FRAMEWORK_OF_MODULE.get(type(x).__module__.split(".")[0])
    if framework is not None and framework != ops.framework:
        raise TypeError(msg.foreign(name, framework, type(x).__name__, ops.framework))
    dtype = str(np.asarray(x).dtype) if isinstance(x, _HOST_LIKE) else ops.dtype(x)
    if dtype is None:  # not an array of the backend's framework
        raise TypeError(msg.not_an_array(name, ops.accepts, f"{type(x).__module__}.{type(x).__qualname__}"))
    if kind(dtype) not in "biuf":
        raise msg.dtype_error(name, dtype)
    return dtype


def compute_dtype(ops: Ops, *xs: Array) -> str:
    """The dtype the pipeline runs in: the promoted float of the arrays, float32 for half
    precision (no overflow of e**2; the loss is float32), the default float for integers."""
    dt = ops.float_dtype(*xs)
    return "float32" if dt in ("float16", "bfloat16") else dt
