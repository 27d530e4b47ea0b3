"""Structured outputs in the Keras adapter (docs/design.md, "Whitening", issue 5), under this process' Keras
backend: whitening by a covariance or a (trainable) ``scale_tril``, precision cost matrices,
the Gaussian likelihoods, the unit-norm penalty; against the float64 reference and against
``torch.nn.GaussianNLLLoss`` / ``torch.distributions.MultivariateNormal``; in ``model.fit``,
saved and reloaded; trained in a custom step; under ``tf.function(jit_compile=True)`` and
``jax.jit``; the error catalogue. (The option grid is in the conformance suite.)"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from mse_adapters import LossSpec, preset
from mse_adapters import numpy as mnp
from tests.conformance.backend_keras import tensor, to_numpy, value_and_grad, x64
from tests.conformance.harness import assert_close

from .common import BACKEND, keras, mk

D = 3


def spd(d: int, cond: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q * np.logspace(0.0, np.log10(cond), d)) @ q.T


COV = spd(D, 1e3)
TRIL = np.linalg.cholesky(spd(D, 30.0, seed=1))
PREC = spd(D, 10.0, seed=2)


def _data(n: int = 6, d: int = D, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(n, d))  # y_true, y_pred


def run(loss: Any, y_true: np.ndarray, y_pred: np.ndarray, wrt: tuple[str, ...] = ("y_pred",),
        dtype: str = "float64", cotangent: np.ndarray | None = None, **kw: Any) -> tuple[np.ndarray, dict]:
    """``loss(y_true, y_pred, sample_weight, var=..., ...)`` in ``dtype``: value and gradients
    (``wrt`` may name ``"scale_tril"``: the loss' trainable variable) as float64 NumPy."""
    number = kw.pop("var") if isinstance(kw.get("var"), float) else None  # a Python float stays one
    with x64(dtype):
        arrays = {"y_true": y_true, "y_pred": y_pred, "sample_weight": kw.pop("sample_weight", None),
                  "var": kw.pop("var", None)}
        inputs = {n: tensor(a, dtype) for n, a in arrays.items()}
        variables = {"scale_tril": loss.scale_tril} if "scale_tril" in wrt else {}

        def fn(y_true: Any, y_pred: Any, sample_weight: Any, var: Any) -> Any:
            return loss(y_true, y_pred, sample_weight, var=number if var is None else var, **kw)

        out, grads = value_and_grad(fn, inputs, wrt, cotangent, variables)
        return to_numpy(out), {n: to_numpy(g) for n, g in grads.items()}


def _float64_loss(cls: Any, **kw: Any) -> Any:
    with x64("float64"):
        return cls(dtype="float64", **kw)


# ---------------------------------------------------------------------------------------
# Values and gradients against the float64 reference
# ---------------------------------------------------------------------------------------

PRESETS = {
    "mse-cov": (lambda **k: mk.MeanSquaredError(covariance=COV, **k), preset("mse", per_sample=True),
                {"covariance": COV}),
    "mae-tril": (lambda **k: mk.MeanAbsoluteError(scale_tril=TRIL, **k), preset("mae", per_sample=True),
                 {"scale_tril": TRIL}),
    "huber-cov-sum": (lambda **k: mk.Huber(delta=0.5, covariance=COV, reduction="sum", **k),
                      preset("huber", delta=0.5, per_sample=True, reduction="sum"), {"covariance": COV}),
    "rmse-prec": (lambda **k: mk.RootMeanSquaredError(precision=PREC, **k), preset("rmse", per_sample=True),
                  {"precision": PREC}),
    "mse-prec-unit-norm": (lambda **k: mk.MeanSquaredError(precision=PREC, unit_norm=0.3, **k),
                           preset("mse", per_sample=True, unit_norm=0.3), {"precision": PREC}),
    "expectile-cov-elements": (lambda **k: mk.Expectile(tau=0.8, covariance=COV, per_sample=False, **k),
                               preset("expectile", tau=0.8), {"covariance": COV}),
    "mvn": (lambda **k: mk.MultivariateGaussianNLL(covariance=COV, **k),
            LossSpec(penalty="gaussian_nll", transform="whiten", full=True), {"covariance": COV}),
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_with_a_matrix_equal_the_reference(name):
    make, spec, matrices = PRESETS[name]
    y, p = _data()
    y[2] = np.nan  # a missing sample: a whole row, as whitening needs
    sw = np.random.default_rng(3).uniform(0.5, 2.0, len(y))
    loss = _float64_loss(make, missing="nan")
    transform = "precision" if "precision" in matrices else "whiten"
    if spec.reduction == "mean":  # (the presets' torch default; Keras' is sum_over_batch_size)
        spec = spec.replace(reduction="sum_over_batch_size")
    assert loss.spec == spec.replace(missing="nan", transform=transform)
    spec = loss.spec
    got_v, got_g = run(loss, y, p, ("y_pred", "y_true", "sample_weight"), sample_weight=sw)
    want_v, want_g = mnp.value_and_grad(spec, y, p, sample_weight=sw, wrt=("y_pred", "y_true", "sample_weight"),
                                        **matrices)
    assert_close(got_v, want_v, "float64", "value")
    for n in want_g:
        assert_close(got_g[n], np.nan_to_num(want_g[n]), "float64", f"d/d{n}", floor=float(np.abs(want_v)))


def test_identity_gives_exactly_the_plain_loss():
    y, p = _data()
    for plain, whitened in ((mk.MeanSquaredError(), mk.MeanSquaredError(covariance=np.eye(D))),
                            (mk.Huber(reduction="sum"), mk.Huber(reduction="sum", scale_tril=np.eye(D))),
                            (mk.MeanSquaredError(), mk.MeanSquaredError(precision=np.eye(D)))):
        a = to_numpy(plain(tensor(y, "float32"), tensor(p, "float32")))
        b = to_numpy(whitened(tensor(y, "float32"), tensor(p, "float32")))
        assert_close(b, a, "float32-rerun", "identity whitening")


def test_float32_whitening_keeps_float64_accuracy_at_cond_1e6():
    """The factor is formed in float64 and applied in float32: ~1e-6 relative error, where a
    float32 Cholesky or inverse per call would lose three digits."""
    cov = spd(8, 1e6, seed=4)
    y, p = _data(256, 8, seed=5)
    p = y + 1e-3 * np.random.default_rng(6).normal(size=y.shape)
    got, _ = run(mk.MeanSquaredError(covariance=cov), y, p, (), dtype="float32")
    want = mnp.loss(preset("mse", per_sample=True), np.float32(y).astype(np.float64),
                    np.float32(p).astype(np.float64), covariance=cov)
    assert abs(float(got) - want) / want < 2e-5


# ---------------------------------------------------------------------------------------
# Gaussian likelihoods against torch
# ---------------------------------------------------------------------------------------

VSHAPES = {"elem": (6, 4), "sample": (6,), "col": (6, 1), "row": (1, 4), "float": None}


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("vshape", sorted(VSHAPES))
def test_gaussian_nll_equals_torch(full, reduction, vshape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    if vshape == "float":
        var: Any = 0.3
    else:
        var = rng.uniform(0.1, 2.0, VSHAPES[vshape])
        var.reshape(-1)[0] = 1e-9  # below eps: clamped, the gradient passing through the clamp
    xt, yt = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    vt = var if vshape == "float" else torch.tensor(var, requires_grad=True)
    want = torch.nn.GaussianNLLLoss(full=full, reduction=reduction)(xt, yt, vt)
    ct = rng.uniform(0.5, 1.5, tuple(want.shape)) if reduction == "none" else np.ones(())
    leaves = [xt, yt] + ([] if vshape == "float" else [vt])
    want_g = torch.autograd.grad((want * torch.tensor(ct)).sum(), leaves)
    keras_red = {"none": "none", "sum": "sum", "mean": "sum_over_batch_size"}[reduction]
    loss = _float64_loss(mk.GaussianNLL, full=full, reduction=keras_red, per_sample=False)
    wrt = ("y_pred", "y_true") + (() if vshape == "float" else ("var",))
    got, got_g = run(loss, y, x, wrt, cotangent=ct if reduction == "none" else None, var=var)
    assert_close(got, want.detach().numpy(), "float64", "GaussianNLL against torch")
    for n, g in zip(wrt, want_g):
        assert_close(got_g[n], g.numpy(), "float64", f"GaussianNLL d/d{n} against torch")
    if reduction == "mean" and vshape == "elem":  # Keras' default: per-sample means, then their mean
        default, _ = run(_float64_loss(mk.GaussianNLL, full=full), y, x, (), var=var)
        assert_close(default, want.detach().numpy(), "float64", "GaussianNLL default reduction")


@pytest.mark.parametrize("full", [False, True])
def test_gaussian_nll_concatenated_y_pred_equals_torch(full):
    """What fit passes: y_pred = [mean, variance] along the last axis; the gradient with
    respect to each half is torch's with respect to input and var."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    mean, y, var = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)), rng.uniform(0.1, 2.0, (5, 3))
    var[0, 0] = 1e-9
    mt, vt = torch.tensor(mean, requires_grad=True), torch.tensor(var, requires_grad=True)
    want = torch.nn.GaussianNLLLoss(full=full)(mt, torch.tensor(y), vt)
    want_g = torch.autograd.grad(want, [mt, vt])
    got, got_g = run(_float64_loss(mk.GaussianNLL, full=full), y, np.concatenate([mean, var], -1))
    assert_close(got, want.detach().numpy(), "float64", "GaussianNLL (mean, var) against torch")
    assert_close(got_g["y_pred"], np.concatenate([g.numpy() for g in want_g], -1), "float64",
                 "GaussianNLL d/d(mean, var) against torch")
    # a (N,) target with a (N, 2) prediction: one output
    got1, _ = run(_float64_loss(mk.GaussianNLL, full=full), y[:, 0], np.stack([mean[:, 0], var[:, 0]], -1), ())
    want1 = torch.nn.GaussianNLLLoss(full=full)(mt[:, :1], torch.tensor(y[:, :1]), vt[:, :1])
    assert_close(got1, want1.detach().numpy(), "float64", "GaussianNLL one output")


@pytest.mark.parametrize("how", ["covariance", "scale_tril", "trainable", "variable", "batched"])
@pytest.mark.parametrize("full", [False, True])
def test_multivariate_gaussian_nll_equals_torch_distributions(how, full):
    torch = pytest.importorskip("torch")
    lower = np.linalg.cholesky(COV)
    if how == "batched":
        lower = np.linalg.cholesky(np.stack([spd(D, 10.0 ** (i % 4 + 1), seed=i) for i in range(6)]))
    y, p = _data(6, D, seed=2)
    x = torch.tensor(p, requires_grad=True)
    lt = torch.tensor(lower, requires_grad=True)
    want = -torch.distributions.MultivariateNormal(x, scale_tril=lt).log_prob(torch.tensor(y))
    if not full:
        want = want - 1.5 * math.log(2 * math.pi)
    ct = np.arange(1.0, 7.0)
    want_g = torch.autograd.grad((want * torch.tensor(ct)).sum(), [x, lt])
    with x64("float64"):
        kw: dict[str, Any] = {"covariance": COV} if how == "covariance" else {"scale_tril": lower}
        if how == "trainable":
            kw["trainable_scale_tril"] = True
        if how == "variable":
            kw["scale_tril"] = keras.Variable(lower, dtype="float64")
        loss = mk.MultivariateGaussianNLL(full=full, reduction="none", dtype="float64", **kw)
    wrt = ("y_pred", "scale_tril") if how in ("trainable", "variable") else ("y_pred",)
    got, got_g = run(loss, y, p, wrt, cotangent=ct)
    assert_close(got, want.detach().numpy(), "float64", f"{how} NLL against torch")
    assert_close(got_g["y_pred"], want_g[0].numpy(), "float64", f"{how} NLL d/dy_pred against torch")
    if "scale_tril" in wrt:
        assert_close(got_g["scale_tril"], want_g[1].numpy(), "float64", f"{how} NLL d/dscale_tril against torch")


# ---------------------------------------------------------------------------------------
# A trainable scale_tril
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["owned", "variable"])
@pytest.mark.parametrize("cls", ["Huber", "MultivariateGaussianNLL"])
def test_gradient_wrt_a_trainable_scale_tril_equals_the_reference(how, cls):
    y, p = _data()
    sw = np.random.default_rng(7).uniform(0.5, 2.0, len(y))
    with x64("float64"):
        st: Any = keras.Variable(TRIL, dtype="float64") if how == "variable" else TRIL
        loss = getattr(mk, cls)(dtype="float64", scale_tril=st, trainable_scale_tril=how == "owned")
    assert loss.trainable_variables == [loss.scale_tril]
    if how == "variable":
        assert loss.scale_tril is st  # referenced, not copied
    got, got_g = run(loss, y, p, ("y_pred", "scale_tril"), sample_weight=sw)
    want, want_g = mnp.value_and_grad(loss.spec, y, p, sample_weight=sw, scale_tril=TRIL,
                                      wrt=("y_pred", "scale_tril"))
    assert_close(got, want, "float64", "value")
    assert_close(got_g["y_pred"], want_g["y_pred"], "float64", "d/dy_pred")
    assert_close(got_g["scale_tril"], want_g["scale_tril"], "float64", "d/dscale_tril")
    assert np.all(np.triu(got_g["scale_tril"], 1) == 0)  # the factor's upper triangle gets no gradient


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.GradientTape needs the TensorFlow backend")
def test_custom_training_step_learns_the_noise_covariance():
    """A tf.GradientTape step over the model's weights and the loss' trainable factor: the
    first step's gradients equal the reference, and the factor learns the noise covariance."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    true = np.linalg.cholesky(np.array([[2.0, 0.8, 0.0], [0.8, 1.0, 0.3], [0.0, 0.3, 0.5]]))
    x = rng.normal(size=(2000, 4)).astype("float32")
    w = rng.normal(size=(4, D))
    y = (x @ w + rng.normal(size=(2000, D)) @ true.T).astype("float32")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(D)(inputs))
    loss = mk.MultivariateGaussianNLL(scale_tril=np.eye(D), trainable_scale_tril=True)
    variables = model.trainable_variables + loss.trainable_variables
    optimizer = keras.optimizers.Adam(0.05)

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            pred = model(xb, training=True)
            value = loss(yb, pred)
        grads = tape.gradient(value, variables)
        optimizer.apply(grads, variables)
        return value, pred, grads[-1]

    values = []
    for i in range(300):
        before = keras.ops.convert_to_numpy(loss.scale_tril).astype(np.float64)
        value, pred, g = step(x, y)
        values.append(float(value))
        if i == 0:
            _, want = mnp.value_and_grad(loss.spec, y, pred.numpy(), scale_tril=before, wrt=("scale_tril",))
            assert_close(g.numpy(), want["scale_tril"], "float32", "first step's d/dscale_tril")
    assert values[-1] < values[0]
    learned = keras.ops.convert_to_numpy(loss.scale_tril).astype(np.float64)
    resid = y - model.predict(x, verbose=0)
    assert_close(learned @ learned.T, np.cov(resid.T, bias=True), "learned-covariance", "learned covariance")


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # (its state for the factor)
def test_fit_trains_a_factor_the_model_tracks_and_save_keeps_it(tmp_path):
    """The documented recipe for fit: the model tracks the loss' variable (an attribute), fit
    trains it; untracked again before saving, the loss' config carries the learned factor."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, D)) + rng.normal(size=(256, D)) * [2.0, 1.0, 0.5]).astype("float32")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(D)(inputs))
    loss = mk.MultivariateGaussianNLL(scale_tril=np.eye(D), trainable_scale_tril=True)
    model.noise_scale_tril = loss.scale_tril
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
    hist = model.fit(x, y, batch_size=64, epochs=5, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    learned = keras.ops.convert_to_numpy(loss.scale_tril)
    assert not np.allclose(learned, np.eye(D))
    del model.noise_scale_tril
    path = tmp_path / "m.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(reloaded.loss.scale_tril), learned)
    assert_close(reloaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), "float32-rerun", "reloaded")


# ---------------------------------------------------------------------------------------
# model.fit, save and load
# ---------------------------------------------------------------------------------------


def test_gaussian_nll_in_fit_save_and_load(tmp_path):
    """A model whose output is [mean, softplus variance]: fit reduces the NLL, evaluate equals
    the reference on the predictions, and load_model restores it without custom_objects."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(128, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, D)) + rng.normal(size=(128, D)) * np.abs(x[:, :1])).astype("float32")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    h = keras.layers.Dense(16, activation="tanh")(inputs)
    out = keras.layers.Concatenate()([keras.layers.Dense(D)(h), keras.layers.Dense(D, activation="softplus")(h)])
    model = keras.Model(inputs, out)
    loss = mk.GaussianNLL(full=True, eps=1e-4)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss)
    sw = rng.uniform(0.5, 2.0, len(x)).astype("float32")
    hist = model.fit(x, y, sample_weight=sw, batch_size=32, epochs=5, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    got = model.evaluate(x, y, sample_weight=sw, batch_size=len(x), verbose=0)
    p = model.predict(x, verbose=0).astype(np.float64)
    want = mnp.loss(loss.spec, y.astype(np.float64), p[:, :D], var=p[:, D:], sample_weight=sw)
    assert_close(got, want, "float32", "evaluate against the reference")
    path = tmp_path / "g.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert type(reloaded.loss) is mk.GaussianNLL and reloaded.loss.get_config() == loss.get_config()
    assert_close(reloaded.evaluate(x, y, sample_weight=sw, batch_size=len(x), verbose=0), got, "float32-rerun",
                 "reloaded")


CONFIGS = {
    "mse-cov": lambda: mk.MeanSquaredError(covariance=COV / 3.0, reduction="sum"),
    "huber-tril": lambda: mk.Huber(delta=0.3, scale_tril=TRIL, weight=[1.0, 2.0, 0.5]),
    "mse-prec-unit-norm": lambda: mk.MeanSquaredError(precision=PREC / 7.0, unit_norm=0.2),
    "spec-batched": lambda: mk.compile(LossSpec(penalty="log_cosh", reduction="per_sample"),
                                       covariance=np.stack([COV, COV / 3.0, np.eye(D)] * 2)),
    "mvn-trainable": lambda: mk.MultivariateGaussianNLL(covariance=COV, trainable_scale_tril=True, full=False),
    "gnll": lambda: mk.GaussianNLL(full=True, eps=1e-3, per_sample=False, reduction="sum"),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_is_json_and_round_trips_exactly(name):
    loss = CONFIGS[name]()
    config = json.loads(json.dumps(loss.get_config()))  # what model.save writes
    for key in ("covariance", "scale_tril", "precision"):
        if key in config:  # nested lists of float64, exact
            given = {"covariance": COV, "scale_tril": TRIL, "precision": PREC}[key]
            assert np.asarray(config[key]).dtype == np.float64 and np.shape(config[key])[-1] == D
            if name != "mvn-trainable" and np.ndim(config[key]) == 2:
                scale = {"mse-cov": 3.0, "mse-prec-unit-norm": 7.0}.get(name, 1.0)
                np.testing.assert_array_equal(np.asarray(config[key]), given / scale)
    again = type(loss).from_config(config)
    assert again.get_config() == loss.get_config() and again.spec == loss.spec
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()
    y, p = _data(6, 2 * D if name == "gnll" else D, seed=4)
    if name == "gnll":
        y, p = y[:, :D], np.concatenate([p[:, :D], np.abs(p[:, D:])], -1)
    a, ga = run(loss, y, p, dtype="float32")
    b, gb = run(again, y, p, dtype="float32")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ga["y_pred"], gb["y_pred"])


# ---------------------------------------------------------------------------------------
# Compiled graphs
# ---------------------------------------------------------------------------------------

GRAPH_LOSSES = {
    "mse-cov": lambda: mk.MeanSquaredError(covariance=COV, missing="nan"),
    "huber-prec": lambda: mk.MeanSquaredError(precision=PREC, reduction="sum"),
    "mvn-trainable": lambda: mk.MultivariateGaussianNLL(scale_tril=TRIL, trainable_scale_tril=True),
    "gnll-concat": lambda: mk.GaussianNLL(full=True),
    "huber-tril": lambda: mk.Huber(delta=0.5, scale_tril=TRIL, weight=[1.0, 2.0, 0.5]),  # a whitened penalty
}


def _graph_batch(name: str, seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, D)).astype("float32")
    p = rng.normal(size=(n, 2 * D if name == "gnll-concat" else D)).astype("float32")
    if name == "gnll-concat":
        p[:, D:] = np.abs(p[:, D:]) + 0.1
    if name == "mse-cov":
        y[1] = np.nan  # a missing sample
    return y, p, rng.uniform(0.5, 2.0, n).astype("float32")


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.function needs the TensorFlow backend")
@pytest.mark.parametrize("name", sorted(GRAPH_LOSSES))
@pytest.mark.parametrize("signature", ["static", "unknown-batch"])
def test_xla_traces_once_and_equals_eager(name, signature):
    import tensorflow as tf

    loss = GRAPH_LOSSES[name]()
    variables = loss.trainable_variables
    traces = []
    sig = None
    if signature == "unknown-batch":
        sig = [tf.TensorSpec((None, D)), tf.TensorSpec((None, 2 * D if name == "gnll-concat" else D)),
               tf.TensorSpec((None,))]

    @tf.function(jit_compile=True, input_signature=sig)
    def step(y, p, sw):
        traces.append(1)
        with tf.GradientTape() as tape:
            tape.watch(p)
            value = loss(y, p, sw)
        return value, tape.gradient(value, [p, *variables])

    for seed, n in enumerate((8, 8, 8) if signature == "static" else (8, 5, 11)):
        y, p, sw = _graph_batch(name, seed, n)
        value, grads = step(tf.constant(y), tf.constant(p), tf.constant(sw))
        with tf.GradientTape() as tape:
            pt = tf.constant(p)
            tape.watch(pt)
            eager = loss(y, pt, sw)
        eager_grads = tape.gradient(eager, [pt, *variables])
        assert_close(float(value), float(eager), "float32", "traced value")
        for g, e in zip(grads, eager_grads):
            assert_close(g.numpy(), e.numpy(), "float32", "traced gradient")
    assert len(traces) == 1


@pytest.mark.skipif(BACKEND != "jax", reason="jax.jit needs the JAX backend")
@pytest.mark.parametrize("name", sorted(GRAPH_LOSSES))
def test_jax_jit_traces_once_and_equals_eager(name):
    import jax

    loss = GRAPH_LOSSES[name]()
    traces = []

    @jax.jit
    def step(y, p, sw):
        traces.append(1)
        return jax.value_and_grad(lambda q: loss(y, q, sw))(p)

    for seed in range(3):
        y, p, sw = _graph_batch(name, seed, 8)
        value, grad = step(y, p, sw)
        eager, eager_grad = jax.value_and_grad(lambda q, y=y, sw=sw: loss(y, q, sw))(p)
        assert_close(float(value), float(eager), "float32", "jitted value")
        assert_close(np.asarray(grad), np.asarray(eager_grad), "float32", "jitted gradient")
    assert len(traces) == 1


# ---------------------------------------------------------------------------------------
# Errors: the catalogue of tests/numpy/test_whitening.py, the same messages as the reference
# ---------------------------------------------------------------------------------------


def _catalogue() -> dict[str, Any]:
    from tests.numpy.test_whitening import ERRORS, P6, T6

    return {"errors": ERRORS, "pred": P6, "target": T6}


CATALOGUE = _catalogue()


def _keras_call(spec: LossSpec, kw: dict[str, Any]) -> Any:
    kw = dict(kw)
    target = tensor(kw.pop("target", CATALOGUE["target"]))
    mats = {k: np.ascontiguousarray(kw.pop(k)) for k in ("covariance", "scale_tril", "precision") if k in kw}
    rest = {k: (v if isinstance(v, float) else tensor(v)) for k, v in kw.items()}
    return mk.compile(spec, dtype="float64", **mats)(target, tensor(CATALOGUE["pred"]), **rest)


@pytest.mark.parametrize("name", sorted(CATALOGUE["errors"]))
def test_error_catalogue_is_the_reference_s(name):
    spec, kw, words = CATALOGUE["errors"][name]
    with pytest.raises(ValueError) as ref:
        mnp.loss(spec, kw.get("target", CATALOGUE["target"]), CATALOGUE["pred"],
                 **{k: v for k, v in kw.items() if k != "target"})
    with x64("float64"), pytest.raises(ValueError) as got:
        _keras_call(spec, kw)
    if name == "var-missing":  # Keras' alternative: y_pred concatenating mean and variance
        assert str(got.value).startswith(str(ref.value)) and "concatenate([mean, variance]" in str(got.value)
    else:
        assert str(got.value) == str(ref.value)
    for w in words:
        assert w in str(got.value)


@pytest.mark.parametrize("kwargs,words", [
    ({"precision": PREC, "trainable_scale_tril": True}, ["trainable precision", "scale_tril"]),
    ({"trainable_scale_tril": True}, ["trainable_scale_tril=True", "initial"]),
    ({"covariance": COV, "scale_tril": TRIL}, ["covariance", "scale_tril", "exactly one"]),
    ({"scale_tril": np.ones((3, 3)), "trainable_scale_tril": True}, ["scale_tril", "lower triangular"]),
    ({"covariance": np.eye(3, dtype=np.complex64)}, ["covariance", "complex dtype complex64", "real"]),
    ({"precision": np.array([["a"] * 3] * 3)}, ["precision", "expected a real numeric array"]),
])
def test_constructor_errors_name_the_argument(kwargs, words):
    exc = TypeError if "real" in words[-1] else ValueError
    with pytest.raises(exc) as info:
        mk.MeanSquaredError(**kwargs)
    for w in words:
        assert w in str(info.value)


def test_a_trainable_covariance_variable_is_an_error():
    with pytest.raises(ValueError, match="trainable covariance is not supported.*scale_tril"):
        mk.MeanSquaredError(covariance=keras.Variable(COV.astype("float32")))
    loss = mk.MeanSquaredError(covariance=keras.Variable(COV.astype("float32"), trainable=False))
    assert loss.trainable_variables == []  # a non-trainable variable is a constant (its value now)


def test_concatenated_y_pred_of_the_wrong_width_is_an_error():
    y, p = _data()
    with pytest.raises(ValueError, match=r"twice y_true's \(got y_pred shape \(6, 3\) and y_true shape \(6, 3\)\)"):
        mk.GaussianNLL()(tensor(y), tensor(p))
    with pytest.raises(ValueError, match="penalty='square'"):
        mk.MeanSquaredError()(tensor(y), tensor(p), var=1.0)
