"""Every error message, once. Each backend raises these (with its own argument names), so the
same bad input gives the same words everywhere (the hardening catalogue checks it)."""

from __future__ import annotations

import math

Shape = tuple[int, ...]


def same_shape(pred: str, target: str, pshape: Shape, tshape: Shape) -> str:
    return (f"{pred} and {target} must have the same shape, got {pred} shape {pshape} and {target} shape "
            f"{tshape} (no broadcasting between predictions and targets)")


def not_trailing(name: str, shape: Shape, target: Shape, target_name: str) -> str:
    return (f"{name} of shape {shape} does not broadcast to {target_name} shape {target} (trailing axes are "
            "aligned, as in NumPy; the result may not be larger than the prediction)")


def not_leading(name: str, shape: Shape, target: Shape, target_name: str) -> str:
    return (f"{name} of shape {shape} is not aligned with the leading axes of {target_name} shape {target} "
            "(sample_weight weights samples: shape (B,), (B, T), ...; use `weight` for trailing-aligned, "
            "per-output or per-element weights)")


def scalar_needs_axis(pred: str, reduction: str, per_sample: bool, multioutput: object) -> str:
    return (f"{pred} is a scalar: reduction={reduction!r}, per_sample={per_sample} and "
            f"multioutput={multioutput!r} need at least one axis")


def scalar_unit_norm(pred: str) -> str:
    return f"{pred} is a scalar: unit_norm penalises the norm of its last axis"


def multioutput_count(n: int, shape: Shape, d: int) -> str:
    return (f"multioutput has {n} weights but the prediction of shape {shape} has {d} outputs "
            "(its last axis)")


def param_range(name: str, low: float, low_open: bool, high: float | None, users: str) -> str:
    """The range of a penalty parameter, as the start of its error message."""
    if high is not None:
        return f"{name} must lie in the open interval ({low:g}, {high:g}) ({users})"
    if low == -math.inf and not low_open:
        return f"{name} must be a real number or -inf ({users})"
    return f"{name} must be {'>' if low_open else '>='} {low:g} ({users})"


def not_a_param(name: str, penalty: str, params: tuple[str, ...]) -> str:
    have = ", ".join(params) if params else "none"
    return f"{name} is not a parameter of penalty={penalty!r} (its parameters: {have})"


PARAM_NOT_FINITE = "{name} must be finite; it contains NaN or inf"
PARAM_NOT_REAL = "{name} must be a real number or -inf; it contains NaN or +inf"
PARAM_OUT_OF_RANGE = "{range}; it has entries outside it (smallest {{lo:.6g}}, largest {{hi:.6g}})"

WEIGHT_NOT_FINITE = "{name} must be finite; it contains NaN or inf"
WEIGHT_NEGATIVE = "{name} must be non-negative; it contains negative values"
MASK_NOT_BINARY = "{name} must be boolean, or numeric with only 0 and 1; it contains other values"
VAR_NEGATIVE = "var must be non-negative; it has negative entry/entries"


def dtype_error(name: str, dtype: str) -> TypeError:
    """An array (an input, a weight, a matrix, ``var``) whose dtype no loss takes."""
    dtype = str(dtype).removeprefix("torch.")
    if dtype.startswith("complex"):
        return TypeError(f"{name} has complex dtype {dtype}; only real inputs are supported")
    return TypeError(f"{name} has dtype {dtype}; expected a real numeric array")


def foreign(name: str, framework: str, type_name: str, own: str) -> str:
    return (f"{name} is a {framework} array ({type_name}) but this loss is the {own} backend; convert it "
            "explicitly (mixing frameworks would copy it and cut the gradient)")


def not_an_array(name: str, what: str, type_name: str) -> str:
    return f"{name} must be {what}, got {type_name}"


def param_type(name: str, got: str) -> str:
    """A penalty parameter (``delta``, ``beta``, ``tau``) of a type no loss takes."""
    return f"{name} must be a real number or an array of real numbers, got {got}"


def missing_dtype(target: str, dtype: str) -> str:
    return (f"missing='nan' marks missing targets with NaN, but {target} has dtype {dtype}, which cannot hold "
            "NaN; pass floating-point targets or a mask")


def var_shape(vshape: Shape, pshape: Shape, pred: str) -> str:
    return (f"var of shape {vshape} is of incorrect size for {pred} of shape {pshape}: it must have {pred}'s "
            f"shape, {pred}'s shape without its last axis, or {pred}'s shape with exactly one axis of size 1 "
            "(torch.nn.GaussianNLLLoss' rule)")


def event_sample_weight(name: str, shape: Shape) -> str:
    return (f"{name} of shape {shape} varies along the last axis, but the multivariate Gaussian NLL has one "
            "value per sample")


def partial_sample(what: str) -> str:
    return (f"{what} must keep or drop whole samples when whitening along the last axis (covariance or "
            "scale_tril): a whitened coordinate mixes every output of its sample, so a partly observed "
            "sample has no whitened residual. Mask whole samples, or use a precision (cost) matrix, whose "
            "quadratic form is exact on the observed outputs")


def weight_mixes(name: str, shape: Shape, precision: bool, sample_weight: str) -> str:
    what = ("transform='precision' (the quadratic form r^T P r)" if precision
            else "the multivariate Gaussian NLL")
    return (f"{name} of shape {shape} varies along the last axis, which {what} mixes: weight whole samples "
            f"instead ({sample_weight}, or a {name} whose last axis is 1)")


GAUSSIAN_NEEDS_VAR = "penalty='gaussian_nll' without a covariance needs var, the predicted variance"


def var_not_used(penalty: str, transform: object) -> str:
    return ("var is the predicted variance of penalty='gaussian_nll' (without a covariance); got "
            f"penalty={penalty!r}, transform={transform!r}")


def matrix_not_used(name: str, transform: object, means: str | None = None) -> str:
    tail = f" ({name} means transform={means!r})" if means else ""
    return f"{name} was given but the spec has transform={transform!r}{tail}"


def matrices_exclusive(given: list[str]) -> str:
    return "covariance, scale_tril and precision are mutually exclusive: give exactly one, got " + " and ".join(given)


WHITEN_NEEDS_MATRIX = "transform='whiten' needs a covariance or a scale_tril; neither was given"
PRECISION_NEEDS_MATRIX = "transform='precision' needs a precision matrix; none was given"


def not_square(name: str, shape: Shape) -> str:
    return f"{name} must be a square matrix (d, d) or a batch of them (..., d, d), got shape {shape}"


def matrix_of_scalar(name: str, pred: str) -> str:
    return f"{name} acts on the last axis of {pred}, but {pred} is a scalar"


def matrix_outputs(name: str, trailing: Shape, pred: str, pshape: Shape, d: int) -> str:
    return (f"{name} has trailing shape {trailing} but {pred} of shape {pshape} has {d} outputs on its last "
            f"axis: expected trailing shape ({d}, {d})")


def matrix_batch(name: str, mshape: Shape, batch: Shape, lead: Shape, pred: str) -> str:
    return (f"{name} of shape {mshape} has batch shape {batch}, which does not broadcast to the leading axes "
            f"{lead} of {pred} (one matrix per sample; batch axes are aligned from the right, as in NumPy's "
            "matmul)")


def at_batch(ndim: int) -> str:
    """The ``(at batch index (i, j))`` suffix of the matrix errors, with format fields."""
    if not ndim:
        return ""
    inner = ", ".join(f"{{i{k}}}" for k in range(ndim)) + ("," if ndim == 1 else "")
    return f" (at batch index ({inner}))"


# The matrix value checks (format fields: s, a, r, i0, i1, ...).
MATRIX_NOT_FINITE = "{name} must be finite; it contains NaN or inf"
NOT_LOWER = "{name} must be lower triangular; it has non-zero entries above the diagonal"
DIAGONAL = "{name} must have a positive diagonal (a Cholesky factor); its smallest diagonal entry is {{s:.6g}}"
ASYMMETRIC = "{name} must be symmetric; max |{name} - {name}^T| is {{a:.3g}} ({{r:.3g}} of its largest entry)"
NOT_PSD = "{name} must be positive semi-definite; its smallest eigenvalue is {{s:.6g}}"
NOT_PD = "{name} must be positive definite; its Cholesky factorisation failed{where}: smallest eigenvalue {{s:.6g}}"

TRAINABLE_MATRIX = ("a trainable {name} is not supported: pass a trainable scale_tril (the Cholesky factor) "
                    "instead{alternative}")
TRACED_AT_COMPILE = ("{name} given to compile() is traced (inside jax.jit or jax.grad); the compiled loss "
                     "factors its matrix once, on the host: pass a traced {name} at call time, "
                     "f(predictions, targets, {name}=...)")


def check_values_flag(value: object, allowed: str) -> str:
    return f"check_values must be {allowed}, got {value!r}"


# -- diagnostics (mse_adapters._diagnostics) ---------------------------------------------------


def stacked_shape(pshape: Shape, tshape: Shape) -> str:
    return (f"predictions of shape {pshape} must be the target's shape {tshape} stacked on a leading axis "
            "(K, *target.shape): one row per ensemble member or bootstrap refit")


def no_members(pshape: Shape) -> str:
    return f"predictions of shape {pshape} hold no model: the leading axis (K) must be at least 1"


def not_additive(what: str) -> str:
    return (f"per-sample contributions need a loss that is a weighted sum of its units: {what} is not "
            "(use reduction 'mean', 'sum' or 'sum_over_batch_size' and a loss without a square root or a "
            "ratio: not RMSE, NMSE or R^2)")


def contributions_scalar(pred: str) -> str:
    return f"{pred} is a scalar: per-sample contributions need a leading (sample) axis"


def derivative_order(order: object) -> str:
    return f"order must be an integer >= 1, got {order!r}"


def derivative_direction(shape: Shape) -> str:
    return (f"points of shape {shape} have more than one input coordinate per point: give a direction "
            "(the derivative is taken along it; the default, ones, is the ordinary derivative of a "
            "scalar input)")


# -- scale-out: normalizers and replicas (docs/design.md, "Scale-out") ---------------------

NORMALIZER_NOT_FINITE = "normalizer must be finite; it contains NaN or inf"
NORMALIZER_NEGATIVE = ("normalizer must be non-negative (a sum of weights or a count of valid units); its "
                       "smallest entry is {lo:.6g}")


def normalizer_nonlinear(finalize: str, multioutput: object) -> str:
    what = {"sqrt": "RMSE's square root", "nmse": "NMSE's division by the targets' variance",
            "r2": "R^2's 1 - SSE/SST"}.get(finalize, f"multioutput={multioutput!r}")
    return (f"normalizer= divides a linear reduction, but {what} is not linear in the sums: micro-batch "
            "values cannot add up to the window's. Across replicas, give the loss a process_group= (torch), "
            "an axis_name= (JAX), or run it under a tf.distribute strategy (Keras): the statistics are "
            "reduced exactly; over gradient-accumulation windows use the streaming metric instead")


def normalizer_reduction(reduction: str) -> str:
    return (f"normalizer= replaces the denominator of reduction 'mean', 'sum_over_batch_size' or 'per_output' "
            f"(or a multioutput mean); reduction={reduction!r} has none that adds up over a batch's parts")


def normalizer_shape(got: Shape, want: Shape, reduction: str, multioutput: object) -> str:
    what = "a scalar" if not want else f"one per output, shape {want}"
    return (f"normalizer of shape {got} does not fit: reduction={reduction!r} (multioutput={multioutput!r}) "
            f"divides by {what} (the loss' normalizer(...) computes it)")


def replicas_reduction(argument: str, reduction: str) -> str:
    return (f"{argument} reduces a loss across replicas, but reduction={reduction!r} returns per-unit or "
            "per-sample values, each already complete on its replica: use it without "
            f"{argument}, or a reduction that sums or averages")


def no_process_group(detail: str) -> str:
    return ("process_group needs an initialised torch.distributed process group "
            f"(torch.distributed.init_process_group): {detail}")


def axis_name_unbound(axis_name: object) -> str:
    return (f"axis_name={axis_name!r} is not bound: call the loss inside jax.shard_map or jax.pmap over that "
            "axis (under jax.jit with globally sharded arrays no axis_name is needed: the reduction is "
            "already global)")


# -- undefined metric values (docs/metrics.md, "Undefined values") -------------------------


class UndefinedMetricWarning(UserWarning):
    """A metric's value is undefined and reported as NaN: an output with no valid target (or
    a total weight of 0), or a metric that has seen no data (no update, an empty or fully
    masked stream, all weights zero). Emitted when the value is computed eagerly; a value
    computed inside a compiled function (``jax.jit``, ``tf.function``, ``torch.compile``)
    is NaN without it. The losses never emit it: an all-masked batch trains as 0 with a zero
    gradient.

    >>> import warnings
    >>> from mse_adapters import UndefinedMetricWarning
    >>> from mse_adapters.numpy import metrics
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     value = metrics.r2().compute()
    >>> value, caught[0].category is UndefinedMetricWarning
    (nan, True)
    """


def undefined_metric(what: str, outputs: list[int], k: int, per_output: bool) -> str:
    """The warning of a metric whose value is undefined at ``outputs`` (of ``k``)."""
    if not per_output or len(outputs) == k:
        return (f"{what} has no data (no update, an empty or fully masked stream, or a total weight of 0): "
                "its value is NaN")
    which = f"output{'s' if len(outputs) > 1 else ''} {outputs} of {k}"
    return (f"{what} is undefined for {which} (no valid target, or a total weight of 0): NaN there; an average "
            "over the outputs takes the defined ones (NaN when none is)")
