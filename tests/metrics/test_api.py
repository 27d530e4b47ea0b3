"""Each backend's metric API: a constructor per preset row (names from the preset table)
building the row's spec with the ecosystem's defaults; the losses' errors for bad inputs;
JAX's pure functions under jit (no retrace per batch), vmap and lax.scan; torchmetrics'
forward / reset / MetricCollection; Keras configs and registration."""

from __future__ import annotations

import numpy as np
import pytest

from mse_adapters import LossSpec
from mse_adapters import numpy as mnp
from mse_adapters._presets import PRESET_TABLE
from mse_adapters.numpy import metrics as npm
from tests.conformance.harness import TOLERANCE, assert_close

ROWS = list(PRESET_TABLE)


def _class_name(row) -> str:  # noqa: ANN001 - the rule the adapters document
    return row.keras if row.keras.endswith(("Error", "Score")) else row.keras + "Error"


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_numpy_and_jax_constructors(row) -> None:  # noqa: ANN001
    want = row.spec.replace(**row.defaults.get("numpy", {}))
    assert getattr(npm, row.name)().spec == want
    jm = pytest.importorskip("mse_adapters.jax.metrics")
    assert getattr(jm, row.name)().spec == row.spec.replace(**row.defaults.get("jax", {}))
    if row.params:
        p = row.params[0]
        value = 0.3
        assert getattr(getattr(npm, row.name)(**{p: value}).spec, p) == value


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_torch_classes(row) -> None:  # noqa: ANN001
    tm = pytest.importorskip("mse_adapters.torch.metrics")
    m = getattr(tm, _class_name(row))()
    assert m.spec == row.spec.replace(**row.defaults.get("torch", {}))
    assert m.higher_is_better == (row.spec.finalize == "r2")


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_keras_classes_config_round_trip(row) -> None:  # noqa: ANN001
    keras = pytest.importorskip("keras")
    km = pytest.importorskip("mse_adapters.keras.metrics")
    cls = getattr(km, _class_name(row))
    kw = {row.params[0]: 0.25} if row.params else {}
    m = cls(**kw)
    if row.spec.finalize in ("nmse", "r2"):
        assert not m.spec.per_sample
    else:
        assert m.spec.per_sample and m.spec.reduction == "mean"
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(m))
    assert type(again) is cls and again.spec == m.spec and again.get_config() == m.get_config()


def test_metric_of_any_spec() -> None:
    spec = LossSpec(penalty="expectile", tau=0.8, reduction="per_output", missing="nan")
    y = np.array([[1.0, np.nan], [2.0, 3.0], [0.0, 1.0]])
    p = np.array([[1.5, 0.0], [1.0, 3.5], [0.5, 0.0]])
    m = npm.metric(spec).update(y[:1], p[:1]).update(y[1:], p[1:])
    rtol, atol = TOLERANCE["float64-exact"]  # two batches against one: the same float64 sums
    np.testing.assert_allclose(m.compute(), mnp.loss(spec, y, p), rtol=rtol, atol=atol)
    for bad in (LossSpec(reduction="none"), LossSpec(reduction="per_sample"), LossSpec(penalty="gaussian_nll")):
        with pytest.raises(ValueError, match="streaming metric"):
            npm.metric(bad)


def _message(fn) -> str:  # noqa: ANN001
    with pytest.raises(ValueError) as info:
        fn()
    return str(info.value)


def test_bad_inputs_are_the_losses_errors() -> None:
    y, p = np.ones((4, 2)), np.zeros((4, 2))
    sw = np.array([1.0, -1.0, 1.0, 1.0])
    assert _message(lambda: npm.mse().update(y, p, sample_weight=sw)) == _message(
        lambda: mnp.mse(y, p, sample_weight=sw))
    assert _message(lambda: npm.r2().update(y, p[:, :1])) == _message(lambda: mnp.r2(y, p[:, :1]))
    torch = pytest.importorskip("torch")
    tm = pytest.importorskip("mse_adapters.torch.metrics")
    import mse_adapters.torch as mt

    tp, ty, tsw = torch.zeros(4, 2), torch.ones(4, 2), torch.tensor(sw)
    theirs = _message(lambda: mt.mse_loss(tp, ty, sample_weight=tsw))
    assert _message(lambda: tm.MeanSquaredError().update(tp, ty, sample_weight=tsw)) == theirs
    jm = pytest.importorskip("mse_adapters.jax.metrics")
    import jax.numpy as jnp

    import mse_adapters.jax as mj

    m = jm.mse()
    assert _message(lambda: m.update(m.init(y), jnp.zeros((4, 2)), jnp.ones((4, 2)), sample_weight=jnp.asarray(sw))) \
        == _message(lambda: mj.mse(jnp.zeros((4, 2)), jnp.ones((4, 2)), sample_weight=jnp.asarray(sw)))


def test_jax_jit_no_retrace_vmap_scan() -> None:
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from mse_adapters.jax import metrics as jm

    m = jm.r2(multioutput="raw_values")
    traces = []

    def update(state, p, y):  # noqa: ANN001, ANN202
        traces.append(1)
        return m.update(state, p, y)

    step = jax.jit(update)
    rng = np.random.default_rng(0)
    y = rng.normal(size=(5, 8, 2)).astype(np.float32)
    p = (y + rng.normal(size=y.shape)).astype(np.float32)
    state = m.init(y[0])
    for i in range(5):
        state = step(state, jnp.asarray(p[i]), jnp.asarray(y[i]))
    assert len(traces) == 1
    ref = mnp.r2(y.reshape(40, 2), p.reshape(40, 2), multioutput="raw_values")
    rtol, atol = TOLERANCE["float32"]  # float32 streams against the float64 reference
    np.testing.assert_allclose(np.asarray(m.compute(state)), ref, rtol=rtol, atol=atol)

    def body(s, batch):  # noqa: ANN001, ANN202
        return m.update(s, batch[0], batch[1]), None

    scanned, _ = jax.lax.scan(body, m.init(y[0]), (jnp.asarray(p), jnp.asarray(y)))
    np.testing.assert_allclose(np.asarray(m.compute(scanned)), ref, rtol=rtol, atol=atol)
    # vmap: five independent streams (one batch each) at once
    states = jax.vmap(lambda pb, yb: m.update(m.init(yb), pb, yb))(jnp.asarray(p), jnp.asarray(y))
    values = jax.vmap(m.compute)(states)
    for i in range(5):
        np.testing.assert_allclose(np.asarray(values[i]), mnp.r2(y[i], p[i], multioutput="raw_values"), rtol=rtol,
                                   atol=atol)
    assert hash(m) == hash(jm.r2(multioutput="raw_values")) and m == jm.r2(multioutput="raw_values")


def test_torchmetrics_protocol() -> None:
    torch = pytest.importorskip("torch")
    torchmetrics = pytest.importorskip("torchmetrics")
    from mse_adapters.torch import metrics as tm

    rng = np.random.default_rng(1)
    y = torch.as_tensor(rng.normal(size=(30, 2)), dtype=torch.float32)
    p = y + 0.3 * torch.as_tensor(rng.normal(size=(30, 2)), dtype=torch.float32)
    coll = torchmetrics.MetricCollection({"r2": tm.R2Score(), "huber": tm.HuberError(delta=0.5),
                                          "rmse": tm.RootMeanSquaredError()})
    batch_values = [coll(p[i:i + 10], y[i:i + 10]) for i in range(0, 30, 10)]
    assert_close(batch_values[1]["r2"].item(), mnp.r2(y[10:20].numpy(), p[10:20].numpy()), "float32", "forward's r2")
    out = coll.compute()
    assert_close(out["r2"].item(), mnp.r2(y.numpy(), p.numpy()), "float32", "r2")
    assert_close(out["huber"].item(), mnp.huber(y.numpy(), p.numpy(), delta=0.5), "float32", "huber")
    assert_close(out["rmse"].item(), mnp.rmse(y.numpy(), p.numpy(), multioutput="pooled"), "float32", "rmse")
    m = coll["r2"]
    m.reset()
    assert float(m.stats.abs().sum()) == 0.0
    m.update(p, y, mask=torch.zeros(30, 2, dtype=torch.bool))
    assert float(m.stats.abs().sum()) == 0.0  # a fully masked batch is a no-op
