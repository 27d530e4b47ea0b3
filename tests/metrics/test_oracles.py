"""External oracles where they are accurate (targets of mean 0): torchmetrics' and
keras.metrics' namesakes, streamed over the same uneven batches (``forward``'s batch values
too), equal ours; scikit-learn on the whole data equals the streamed reference."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import r2_score

from mse_adapters import UndefinedMetricWarning
from mse_adapters.numpy import metrics as npm
from tests.conformance.harness import TOLERANCE

CUTS = (0, 13, 13, 40, 41, 90)


def _data(d: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (90,) if d is None else (90, d)
    y = rng.normal(size=shape).astype(np.float32)
    p = (y + 0.5 * rng.normal(size=shape)).astype(np.float32)
    return y, p, rng.uniform(0.1, 2.0, size=90).astype(np.float32)


def _batches(*arrays: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    edges = list(zip(CUTS[:-1], CUTS[1:]))
    return [tuple(a[lo:hi] for a in arrays) for lo, hi in edges if hi > lo]


@pytest.mark.parametrize("multioutput", ["raw_values", "uniform_average", "variance_weighted"])
def test_sklearn_r2_weighted(multioutput: str) -> None:
    y, p, w = _data(3)
    m = npm.r2(multioutput=multioutput)
    for yb, pb, wb in _batches(y, p, w):
        m.update(yb, pb, sample_weight=wb)
    y64, p64, w64 = (a.astype(np.float64) for a in (y, p, w))
    rtol, atol = TOLERANCE["float64"]  # the float64 stream against scikit-learn on the whole data
    np.testing.assert_allclose(m.compute(), r2_score(y64, p64, sample_weight=w64, multioutput=multioutput), rtol=rtol,
                               atol=atol)


torch_cases = [
    ("MeanSquaredError", {}, None), ("MeanSquaredError", {"squared": False}, None),
    ("MeanSquaredError", {"num_outputs": 3}, 3), ("MeanSquaredError", {"squared": False, "num_outputs": 3}, 3),
    ("MeanAbsoluteError", {}, None), ("MeanAbsoluteError", {"num_outputs": 3}, 3),
    ("LogCoshError", {}, None), ("LogCoshError", {"num_outputs": 3}, 3),
    ("R2Score", {}, None), ("R2Score", {}, 3), ("R2Score", {"multioutput": "raw_values"}, 3),
    ("R2Score", {"multioutput": "variance_weighted"}, 3), ("R2Score", {"adjusted": 2}, 3),
]


@pytest.mark.parametrize(("name", "kwargs", "d"), torch_cases)
def test_torchmetrics(name: str, kwargs: dict, d: int | None) -> None:
    torch = pytest.importorskip("torch")
    torchmetrics = pytest.importorskip("torchmetrics")
    from mse_adapters.torch import metrics as ours

    y, p, _ = _data(d)
    mine, theirs = getattr(ours, name)(**kwargs), getattr(torchmetrics, name)(**kwargs)
    rtol, atol = TOLERANCE["float32-ratio"]  # float32 against torchmetrics' float32, R^2 near 0 included
    for yb, pb in _batches(y, p):
        a = mine(torch.from_numpy(pb), torch.from_numpy(yb))  # forward: the batch value
        if len(yb) > 1:
            b = theirs(torch.from_numpy(pb), torch.from_numpy(yb))
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=rtol, atol=atol)
        else:
            theirs.update(torch.from_numpy(pb), torch.from_numpy(yb))
    rtol32, atol32 = TOLERANCE["float32"]  # the whole stream's values are not near 0
    np.testing.assert_allclose(mine.compute().numpy(), theirs.compute().numpy(), rtol=rtol32, atol=atol32)
    mine.reset()
    mine.update(torch.from_numpy(p), torch.from_numpy(y))
    np.testing.assert_allclose(mine.compute().numpy(), theirs.compute().numpy(), rtol=rtol32, atol=atol32)


# (Keras' mean-type metrics average a 1-D batch to one value per batch, and its R2Score rejects
# a 1-D y: ours take a 1-D y as one output per sample, as torchmetrics and scikit-learn.)
keras_cases = [
    ("MeanSquaredError", {}, 3), ("MeanAbsoluteError", {}, 3), ("RootMeanSquaredError", {}, 3),
    ("LogCoshError", {}, 3), ("RootMeanSquaredError", {}, None),
    ("R2Score", {}, 3), ("R2Score", {"class_aggregation": None}, 3),
    ("R2Score", {"class_aggregation": "variance_weighted_average"}, 3), ("R2Score", {"num_regressors": 2}, 3),
]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(("name", "kwargs", "d"), keras_cases)
def test_keras_metrics(name: str, kwargs: dict, d: int | None, weighted: bool) -> None:
    keras = pytest.importorskip("keras")
    from mse_adapters.keras import metrics as ours

    y, p, w = _data(d, seed=1)
    mine, theirs = getattr(ours, name)(**kwargs), getattr(keras.metrics, name)(**kwargs)
    for yb, pb, wb in _batches(y, p, w):
        sw = wb if weighted else None
        mine.update_state(yb, pb, sample_weight=sw)
        theirs.update_state(yb, pb, sample_weight=sw)
    got = keras.ops.convert_to_numpy(mine.result())
    rtol, atol = TOLERANCE["float32-ratio"]  # float32 against keras.metrics' float32, R^2 near 0 included
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(theirs.result()), rtol=rtol, atol=atol)
    assert mine.name == theirs.name or name == "LogCoshError"
    mine.reset_state()
    fresh = getattr(ours, name)(**kwargs)
    fresh.update_state(y[:0], p[:0])
    with pytest.warns(UndefinedMetricWarning, match="no data"):  # reset: no data, as a fresh metric's
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(mine.result()),
                                      keras.ops.convert_to_numpy(fresh.result()))
