"""Every whitenable preset takes ``covariance``, ``scale_tril`` and ``precision`` in every
backend, as the Keras classes do (docs/design.md, "Whitening", issue 5): the preset equals the generic path
(``Loss(spec, covariance=...)`` / ``loss(spec, ...)``) and the float64 reference
``mse_adapters.numpy.value_and_grad``, value and gradient with respect to the prediction;
``precision`` with a non-square penalty is the spec's ValueError, one message everywhere."""

from __future__ import annotations

import numpy as np
import pytest

from mse_adapters import numpy as mnp
from mse_adapters import preset
from tests.conformance.harness import assert_close

B, D = 5, 3
RNG = np.random.default_rng(7)
P = RNG.normal(size=(B, D))  # y_pred
T = RNG.normal(size=(B, D))  # y_true


def _spd(seed: int, cond: float = 30.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(D, D)))
    return (q * np.logspace(-0.5, np.log10(cond) - 0.5, D)) @ q.T


COV = _spd(0)
MATRICES = {
    "covariance": ("covariance", COV),
    "batched": ("covariance", np.stack([_spd(s) for s in range(1, B + 1)])),
    "scale_tril": ("scale_tril", np.linalg.cholesky(COV)),
    "precision": ("precision", _spd(11, cond=5.0)),
}

#: preset name -> the hyperparameters passed to the preset (and to ``preset(name, ...)``).
PRESETS = {
    "mae": {},
    "rmse": {"multioutput": "pooled"},  # the torch / JAX default; NumPy's is "uniform_average"
    "huber": {"delta": 0.7},
    "smooth_l1": {"beta": 0.6},
    "log_cosh": {},
    "expectile": {"tau": 0.8},
}
#: The presets whose penalty is the square, the only ones that take a precision.
SQUARE = {"rmse"}
NOT_SQUARE = sorted(set(PRESETS) - SQUARE)

CASES = [(n, m) for n in PRESETS for m in MATRICES if m != "precision" or n in SQUARE]

TORCH_CLASSES = {"mae": "MAELoss", "rmse": "RMSELoss", "huber": "HuberLoss", "smooth_l1": "SmoothL1Loss",
                 "log_cosh": "LogCoshLoss", "expectile": "ExpectileLoss"}
KERAS_CLASSES = {"mae": "MeanAbsoluteError", "huber": "Huber", "smooth_l1": "SmoothL1",
                 "log_cosh": "LogCosh", "expectile": "Expectile"}


def _reference(name: str, how: str) -> tuple[float, np.ndarray]:
    arg, m = MATRICES[how]
    v, g = mnp.value_and_grad(preset(name, **PRESETS[name]), T, P, wrt=("y_pred",), **{arg: m})
    return float(v), g["y_pred"]


def _precision_message() -> str:
    with pytest.raises(ValueError) as e:
        preset("huber").replace(transform="precision")
    return str(e.value)


# ---------------------------------------------------------------------------------------
# NumPy
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,how", CASES)
def test_numpy_preset_equals_the_generic_path_and_the_reference(name, how):
    arg, m = MATRICES[how]
    fn = getattr(mnp, name)
    got = fn(T, P, **PRESETS[name], **{arg: m})
    generic = mnp.loss(preset(name, **PRESETS[name]), T, P, **{arg: m})
    want, grad = _reference(name, how)
    assert got == generic
    assert_close(got, want, "float64", f"numpy {name} {how}")
    # the NumPy presets are not differentiable: their central differences match the reference
    h = 1e-6
    fd = np.zeros_like(P)
    for idx in np.ndindex(P.shape):
        e = np.zeros_like(P)
        e[idx] = h
        fd[idx] = (fn(T, P + e, **PRESETS[name], **{arg: m}) - fn(T, P - e, **PRESETS[name], **{arg: m})) / (2 * h)
    assert_close(fd, grad, "finite-difference", f"{name} {how} central differences")


def test_numpy_rmse_default_multioutput_with_a_covariance():
    got = mnp.rmse(T, P, covariance=COV)
    want = mnp.loss(preset("rmse", multioutput="uniform_average"), T, P, covariance=COV)
    assert got == want


# ---------------------------------------------------------------------------------------
# torch
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,how", CASES)
def test_torch_preset_equals_the_generic_path_and_the_reference(name, how):
    torch = pytest.importorskip("torch")
    import mse_adapters.torch as mt

    arg, m = MATRICES[how]
    mat = torch.tensor(m, dtype=torch.float64)
    y = torch.tensor(T, dtype=torch.float64)
    want, grad = _reference(name, how)
    for f in (getattr(mt, TORCH_CLASSES[name])(**PRESETS[name], **{arg: mat}),
              mt.Loss(preset(name, **PRESETS[name]), **{arg: mat})):
        x = torch.tensor(P, dtype=torch.float64, requires_grad=True)
        v = f(x, y)
        (g,) = torch.autograd.grad(v, x)
        assert v.dtype == torch.float64
        assert_close(v.item(), want, "float64", f"torch {name} value")
        assert_close(g.numpy(), grad, "float64", f"torch {name} gradient")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_torch_trainable_scale_tril_gets_the_reference_gradient(name):
    torch = pytest.importorskip("torch")
    import mse_adapters.torch as mt

    lower = MATRICES["scale_tril"][1]
    param = torch.nn.Parameter(torch.tensor(lower))
    f = getattr(mt, TORCH_CLASSES[name])(**PRESETS[name], scale_tril=param)
    assert [n for n, _ in f.named_parameters()] == ["scale_tril"]
    x = torch.tensor(P, requires_grad=True)
    v = f(x, torch.tensor(T))
    gx, gl = torch.autograd.grad(v, (x, param))
    want, grads = mnp.value_and_grad(preset(name, **PRESETS[name]), T, P, scale_tril=lower,
                                     wrt=("y_pred", "scale_tril"))
    assert_close(v.item(), want, "float64", f"torch {name} value")
    assert_close(gx.numpy(), grads["y_pred"], "float64", f"torch {name} d/dy_pred")
    assert_close(gl.numpy(), grads["scale_tril"], "float64", f"torch {name} d/dscale_tril")


def test_torch_whitened_huber_state_dict_round_trips():
    torch = pytest.importorskip("torch")
    import mse_adapters.torch as mt

    f = mt.HuberLoss(delta=0.7, covariance=torch.tensor(COV))
    g = mt.HuberLoss(delta=0.7, covariance=torch.eye(D, dtype=torch.float64))
    g.load_state_dict(f.state_dict())
    x, y = torch.tensor(P), torch.tensor(T)
    assert torch.equal(g(x, y), f(x, y))


# ---------------------------------------------------------------------------------------
# JAX
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,how", CASES)
def test_jax_preset_equals_the_generic_path_and_the_reference(name, how):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    import mse_adapters.jax as mj

    arg, m = MATRICES[how]
    spec = preset(name, **PRESETS[name])
    want, grad = _reference(name, how)
    with jax.enable_x64(True):
        x, y, mat = jnp.asarray(P), jnp.asarray(T), jnp.asarray(m)
        compiled = mj.Loss(spec, **{arg: mat})
        fns = [
            lambda p: getattr(mj, name)(p, y, **PRESETS[name], **{arg: mat}),
            lambda p: mj.loss(spec, p, y, **{arg: mat}),
            lambda p: compiled(p, y),
        ]
        for fn in fns:
            v, g = jax.value_and_grad(fn)(x)
            assert v.dtype == jnp.float64
            assert_close(float(v), want, "float64", f"jax {name} value")
            assert_close(np.asarray(g), grad, "float64", f"jax {name} gradient")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_jax_preset_is_jittable_with_the_matrix_as_an_argument(name):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    import mse_adapters.jax as mj

    how = "precision" if name in SQUARE else "scale_tril"
    arg, m = MATRICES[how]
    fn = getattr(mj, name)
    want, grads = mnp.value_and_grad(preset(name, **PRESETS[name]), T, P, wrt=("y_pred", arg), **{arg: m})
    with jax.enable_x64(True):
        f = jax.jit(jax.value_and_grad(lambda p, t, a: fn(p, t, **PRESETS[name], **{arg: a}), argnums=(0, 2)))
        v, (gx, ga) = f(jnp.asarray(P), jnp.asarray(T), jnp.asarray(m))
    assert_close(float(v), want, "float64", f"jax {name} value")
    assert_close(np.asarray(gx), grads["y_pred"], "float64", f"jax {name} d/dy_pred")
    assert_close(np.asarray(ga), grads[arg], "float64", f"jax {name} d/d{arg}")


# ---------------------------------------------------------------------------------------
# precision with a non-square penalty: the spec's ValueError, the same in every backend
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NOT_SQUARE)
def test_precision_with_a_non_square_penalty_is_one_value_error_everywhere(name):
    prec = MATRICES["precision"][1]
    penalty = preset(name).penalty
    msg = _precision_message().replace("'huber'", repr(penalty))
    messages = {}
    with pytest.raises(ValueError) as e:
        getattr(mnp, name)(T, P, precision=prec)
    messages["numpy"] = str(e.value)
    with pytest.raises(ValueError) as e:
        mnp.loss(preset(name), T, P, precision=prec)
    messages["numpy generic"] = str(e.value)
    try:
        import torch

        import mse_adapters.torch as mt
    except ImportError:
        pass
    else:
        with pytest.raises(ValueError) as e:
            getattr(mt, TORCH_CLASSES[name])(precision=torch.tensor(prec))
        messages["torch"] = str(e.value)
    try:
        import jax
        import jax.numpy as jnp

        import mse_adapters.jax as mj
    except ImportError:
        pass
    else:
        with pytest.raises(ValueError) as e:
            getattr(mj, name)(jnp.asarray(P, jnp.float32), jnp.asarray(T, jnp.float32), precision=prec)
        messages["jax"] = str(e.value)
        with pytest.raises(ValueError) as e:
            jax.jit(lambda p, t, a: getattr(mj, name)(p, t, precision=a))(
                jnp.asarray(P, jnp.float32), jnp.asarray(T, jnp.float32), jnp.asarray(prec, jnp.float32))
        messages["jax traced"] = str(e.value)
    assert messages == {k: msg for k in messages}, messages


@pytest.mark.parametrize("name", NOT_SQUARE)
def test_keras_gives_the_same_precision_message(name):
    pytest.importorskip("keras")
    import mse_adapters.keras as mk

    msg = _precision_message().replace("'huber'", repr(preset(name).penalty))
    with pytest.raises(ValueError) as e:
        getattr(mk, KERAS_CLASSES[name])(precision=MATRICES["precision"][1])
    assert str(e.value) == msg
    with pytest.raises(ValueError) as e:
        getattr(mnp, name)(T, P, precision=MATRICES["precision"][1])
    assert str(e.value) == msg


def test_nmse_and_r2_take_no_matrix():
    for fn in (mnp.nmse, mnp.r2):
        with pytest.raises(TypeError):
            fn(T, P, covariance=COV)
