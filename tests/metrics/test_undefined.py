"""Undefined is NaN, never a perfect score, in every backend's metrics and in the NumPy metric
functions: an output with no valid target (all missing, all masked, or a total weight of 0)
is NaN in ``raw_values`` with an ``UndefinedMetricWarning`` naming it; the averages over the
outputs take the defined ones (scikit-learn's value on the observed outputs); a metric with
no data (no update, an empty or fully masked stream, all weights zero) is NaN with the same
warning; a ``sum`` is 0 over no data; a constant target keeps scikit-learn's ``force_finite``
values; the losses keep training on 0 with a zero gradient."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import r2_score

from mse_adapters import LossSpec, UndefinedMetricWarning
from mse_adapters import numpy as mnp
from tests.conformance.harness import assert_close
from tests.metrics.common import ROW_SPECS, RUNNERS, D, Data, fresh, make_data, reference, splits

DTYPE = {"numpy": "float64", "torch": "float32", "jax": "float32", "keras": "float32"}
KEEP = [0, 2]  # the outputs that keep their targets; output 1 loses them
#: Per-output specs, each averaging (or not) the outputs its own way.
PER_OUTPUT = [
    LossSpec(finalize="r2", multioutput="raw_values"), LossSpec(finalize="r2", multioutput="uniform_average"),
    LossSpec(finalize="r2", multioutput="variance_weighted"), LossSpec(finalize="r2", multioutput=(1.0, 2.0, 0.5)),
    LossSpec(finalize="nmse", multioutput="uniform_average"), LossSpec(multioutput="raw_values"),
    LossSpec(finalize="sqrt", reduction="per_output"), LossSpec(penalty="abs", multioutput=(1.0, 2.0, 0.5)),
    LossSpec(penalty="huber", delta=0.5, multioutput="uniform_average"),
]
HOW = ("missing", "mask", "weight")


def _stream(backend: str, spec: LossSpec, data: Data) -> np.ndarray:
    """The value of ``data`` streamed in uneven parts (an empty one too) and merged."""
    return RUNNERS[backend](spec, data, splits(data.n, [0, 7, 7, 15]), [1, 0, 2], DTYPE[backend])


def _rounded(data: Data, dtype: str) -> Data:
    for name in ("y_true", "y_pred", "weight", "sample_weight"):
        a = getattr(data, name)
        if a is not None:
            setattr(data, name, a.astype(dtype).astype(np.float64))
    return data


def _without_output_1(spec: LossSpec, data: Data, how: str) -> tuple[LossSpec, Data]:
    """``spec`` and ``data`` where output 1 has no valid target, the way ``how`` says."""
    if how == "missing":
        spec = spec.replace(missing="nan")
        data.y_true[:, 1] = np.nan
    elif how == "mask":
        data.mask = np.ones(data.y_true.shape, dtype=bool)
        data.mask[:, 1] = False
        data.y_true[:, 1] = np.inf  # under the mask: counts for nothing
    else:
        data.weight = np.ones(data.y_true.shape)
        data.weight[:, 1] = 0.0
    return spec, data


def _observed(spec: LossSpec, data: Data) -> tuple[LossSpec, Data]:
    """The spec and data of the observed outputs only (their weights, if any, kept)."""
    mo = spec.multioutput
    if isinstance(mo, tuple):
        spec = spec.replace(multioutput=tuple(mo[i] for i in KEEP))

    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None or a.ndim < 2 else a[:, KEEP]

    return spec, Data(data.y_true[:, KEEP], data.y_pred[:, KEEP], cut(data.weight), data.sample_weight,
                      cut(data.mask))


@pytest.mark.parametrize("backend", sorted(RUNNERS))
@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("spec", PER_OUTPUT, ids=repr)
def test_an_output_without_targets_is_nan(backend: str, spec: LossSpec, how: str) -> None:
    rng = np.random.default_rng(5)
    spec, data = _without_output_1(spec, _rounded(make_data(rng, 30, ("sample_weight",)), DTYPE[backend]), how)
    with pytest.warns(UndefinedMetricWarning, match=r"output \[1\] of 3"):
        got = _stream(backend, spec, data)
    sub_spec, sub = _observed(spec, data)
    want = np.asarray(reference(sub_spec, sub), dtype=np.float64)
    if want.ndim:  # raw values: NaN at the output without targets, the others as if it were not there
        want = np.insert(want, 1, np.nan)
    floor = 1e-3 if backend != "numpy" else 0.0
    assert_close(got, want, DTYPE[backend], f"{backend} {how} {spec!r}", floor=floor)


@pytest.mark.parametrize("multioutput", ["raw_values", "uniform_average", "variance_weighted"])
def test_r2_on_the_observed_outputs_is_scikit_learns(multioutput: str) -> None:
    """The issue's case: with one output of no observed target, R^2 averages the others, as
    scikit-learn does on the observed outputs (a 1.0 for the empty output used to enter the
    average)."""
    rng = np.random.default_rng(6)
    data = make_data(rng, 40, ("sample_weight",))
    data.y_true[:, 1] = np.nan
    with pytest.warns(UndefinedMetricWarning, match=r"output \[1\] of 3"):
        got = mnp.r2(data.y_true, data.y_pred, sample_weight=data.sample_weight, missing="nan",
                     multioutput=multioutput)
    want = r2_score(data.y_true[:, KEEP], data.y_pred[:, KEEP], sample_weight=data.sample_weight,
                    multioutput=multioutput)
    if multioutput == "raw_values":
        want = np.insert(want, 1, np.nan)
    assert_close(got, want, "float64", f"R^2 {multioutput} against scikit-learn on the observed outputs")


def _no_data(kind: str, data: Data) -> tuple[Data, list[tuple[int, int]]]:
    """A stream with no data, four ways."""
    if kind == "empty":
        return data, [(0, 0), (0, 0)]
    if kind == "masked":
        data.mask = np.zeros(data.y_true.shape, dtype=bool)
        data.y_pred[:] = np.nan  # under the mask: counts for nothing
    else:  # all weights zero
        data.sample_weight = np.zeros(data.n)
    return data, [(0, 5), (5, data.n)]


NO_DATA = [*ROW_SPECS, LossSpec(reduction="per_output"), LossSpec(penalty="abs", reduction="sum_over_batch_size"),
           LossSpec(finalize="r2", multioutput="variance_weighted")]


# torchmetrics warns when compute() runs before any update(): that is this test's case.
@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric:UserWarning")
@pytest.mark.parametrize("backend", sorted(RUNNERS))
@pytest.mark.parametrize("kind", ["fresh", "empty", "masked", "zero_weights"])
def test_a_metric_with_no_data_is_nan(backend: str, kind: str) -> None:
    for spec in NO_DATA:
        if kind == "zero_weights" and spec.reduction == "sum_over_batch_size":
            continue  # (its denominator is the number of valid units, not their weight: test_..._batch_size)
        with pytest.warns(UndefinedMetricWarning, match="no data"):
            if kind == "fresh":
                got = fresh(backend, spec)
            else:
                data, parts = _no_data(kind, make_data(np.random.default_rng(7), 12, ()))
                got = RUNNERS[backend](spec, data, parts, [0], DTYPE[backend])
        assert got.size and np.all(np.isnan(got)), (backend, kind, spec, got)


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric:UserWarning")  # (as above)
@pytest.mark.parametrize("backend", sorted(RUNNERS))
def test_a_sum_over_no_data_is_zero(backend: str) -> None:
    spec = LossSpec(reduction="sum")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndefinedMetricWarning)
        assert float(fresh(backend, spec)) == 0.0
        data, parts = _no_data("masked", make_data(np.random.default_rng(8), 12, ()))
        assert float(RUNNERS[backend](spec, data, parts, [0], DTYPE[backend])) == 0.0


@pytest.mark.parametrize("backend", sorted(RUNNERS))
def test_zero_weights_over_the_batch_size_are_zero(backend: str) -> None:
    """``sum_over_batch_size`` divides by the number of valid units, not their weight: all
    weights zero is a defined 0 (Keras' convention), not an undefined value."""
    spec = LossSpec(reduction="sum_over_batch_size")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndefinedMetricWarning)
        data, parts = _no_data("zero_weights", make_data(np.random.default_rng(8), 12, ()))
        assert float(RUNNERS[backend](spec, data, parts, [0], DTYPE[backend])) == 0.0


@pytest.mark.parametrize("backend", sorted(RUNNERS))
def test_a_constant_target_keeps_scikit_learns_values(backend: str) -> None:
    """force_finite (a defined output whose target is constant): 1 for a perfect fit, else 0,
    as scikit-learn, and no warning."""
    rng = np.random.default_rng(9)
    data = make_data(rng, 20, ())
    data.y_true[:, 1] = 2.0
    data.y_pred[:, 1] = 2.0  # a perfect fit of a constant
    data.y_true[:, 2] = 3.0  # an imperfect one
    spec = LossSpec(finalize="r2", multioutput="raw_values")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndefinedMetricWarning)
        got = _stream(backend, spec, data)
    want = r2_score(data.y_true, data.y_pred, multioutput="raw_values")
    assert want[1] == 1.0 and want[2] == 0.0
    assert got[1] == 1.0 and got[2] == 0.0
    assert_close(got, want, DTYPE[backend], f"{backend} constant targets", floor=1e-3 if backend != "numpy" else 0.0)


def test_under_jit_the_value_is_nan_without_a_warning() -> None:
    """A value computed inside a compiled function cannot warn (docs/metrics.md)."""
    jax = pytest.importorskip("jax")
    from mse_adapters.jax import metrics

    m = metrics.r2(multioutput="raw_values", missing="nan")
    y = np.ones((4, D), dtype=np.float32)
    y[:, 1] = np.nan
    state = m.update(m.init(y), jax.numpy.asarray(y + 1.0), jax.numpy.asarray(y))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndefinedMetricWarning)
        got = np.asarray(jax.jit(m.compute)(state))
    assert np.isnan(got[1]) and np.all(np.isfinite(got[KEEP]))
    with pytest.warns(UndefinedMetricWarning, match=r"output \[1\] of 3"):
        np.testing.assert_array_equal(np.asarray(m.compute(state)), got)


def test_the_loss_trains_where_the_metric_reports() -> None:
    """Side by side on a fully masked batch: the loss is 0 with a zero gradient (nothing to
    learn from), the metric NaN (nothing to report)."""
    y, p = np.ones((3, 2)), np.zeros((3, 2))
    mask = np.zeros((3, 2), dtype=bool)
    value, grads = mnp.value_and_grad(LossSpec(), y, p, mask=mask)
    assert value == 0.0 and not np.any(grads["y_pred"])
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(mnp.mse(y, p, mask=mask))
    torch = pytest.importorskip("torch")
    import mse_adapters.torch as mt
    from mse_adapters.torch import metrics as tm

    tp = torch.zeros(3, 2, requires_grad=True)
    loss = mt.MSELoss()(tp, torch.ones(3, 2), mask=torch.as_tensor(mask))
    loss.backward()
    assert float(loss.detach()) == 0.0 and not tp.grad.any()
    metric = tm.MeanSquaredError()
    with pytest.warns(UndefinedMetricWarning):
        assert torch.isnan(metric(tp, torch.ones(3, 2), mask=torch.as_tensor(mask)))
