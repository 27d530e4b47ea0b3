"""Lossless serialization (issue 6, item 4): every torch loss class through ``state_dict`` /
``load_state_dict`` into a module built with default arguments, ``torch.save`` +
``torch.load(weights_only=True)``, ``copy.deepcopy`` and ``pickle``, with non-default
hyperparameters and with the weight, mask and matrices given at construction; the spec
through ``to_dict``/``from_dict`` and JSON; pickled JAX and NumPy compiled losses. After each
round trip: the same value and the same gradients (w.r.t. the input and a trainable
``scale_tril``), bit for bit. (Keras ``get_config``/``from_config`` and ``model.save`` /
``load_model``: tests/keras/test_fit_save.py.)"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from mse_adapters import PRESET_TABLE, PRESETS, LossSpec, preset
from tests.conformance.harness import nondefault_params

B, D = 6, 3


def _spd(d: int = D, seed: int = 0) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T + d * np.eye(d)


def _tril(d: int = D, seed: int = 1) -> np.ndarray:
    return np.linalg.cholesky(_spd(d, seed))


# -- the spec ------------------------------------------------------------------------------

SPECS = [
    *(PRESETS[name].replace(missing="nan") for name in sorted(PRESETS)),
    preset("huber", delta=0.25, reduction="sum", unit_norm=0.5),
    preset("smooth_l1", beta=0.0, reduction="per_sample", per_sample=True),
    preset("expectile", tau=0.9, reduction="sum_over_batch_size", per_sample=True, missing="nan"),
    preset("rmse", multioutput=(0.2, 0.3, 0.5)),
    preset("r2", multioutput="variance_weighted"),
    preset("nmse", reduction="per_output"),
    preset("log_cosh", transform="whiten", reduction="none"),
    LossSpec(transform="precision", reduction="sum"),
    LossSpec(penalty="gaussian_nll", full=True, eps=1e-3, reduction="per_output"),
    LossSpec(penalty="gaussian_nll", transform="whiten", full=False, reduction="sum"),
]


@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_spec_round_trips_through_dict_json_and_pickle(spec):
    d = spec.to_dict()
    assert {f.name for f in dataclasses.fields(LossSpec)} == set(d)  # every field, by name
    text = json.dumps(d, allow_nan=False)  # strict JSON: no NaN or inf anywhere
    for again in (LossSpec.from_dict(d), LossSpec.from_dict(json.loads(text)), pickle.loads(pickle.dumps(spec)),
                  copy.deepcopy(spec)):
        assert again == spec and hash(again) == hash(spec) and repr(again) == repr(spec)
        assert again.to_dict() == d


# -- torch ---------------------------------------------------------------------------------

torch_cases: list[Any] = []
try:
    import torch

    import mse_adapters.torch as mt
except ImportError:  # pragma: no cover
    torch = None  # type: ignore[assignment]

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


@dataclasses.dataclass
class TCase:
    """A module to build (``make``), how a user rebuilds it with default arguments
    (``fresh``), and the call's extra arguments."""

    id: str
    make: Callable[[], Any]
    fresh: Callable[[], Any]
    call: dict[str, Any] = dataclasses.field(default_factory=dict)


def _t(a: Any) -> Any:
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


def _torch_cases() -> list[TCase]:
    w = lambda: _t([1.0, 0.5, 2.0])  # noqa: E731
    m = lambda: torch.tensor([True, False, True])  # noqa: E731
    ew = lambda: _t(np.random.default_rng(3).uniform(0.5, 2.0, (B, D)))  # noqa: E731
    cov, tril = lambda: _t(_spd()), lambda: _t(_tril())  # noqa: E731
    param = lambda: torch.nn.Parameter(_t(_tril(seed=4)))  # noqa: E731
    var = _t(np.random.default_rng(5).uniform(0.1, 2.0, (B, D)))
    return [
        TCase("MSELoss-weight-mask-missing", lambda: mt.MSELoss("sum", missing="nan", weight=w(), mask=m()),
              mt.MSELoss),
        TCase("MSELoss-covariance-unit_norm", lambda: mt.MSELoss(covariance=cov(), unit_norm=0.1), mt.MSELoss),
        TCase("MSELoss-scale_tril-const", lambda: mt.MSELoss("sum_over_batch_size", scale_tril=tril()), mt.MSELoss),
        TCase("MSELoss-scale_tril-param", lambda: mt.MSELoss("sum", scale_tril=param(), weight=ew()), mt.MSELoss),
        TCase("MSELoss-scale_tril-requires-grad",
              lambda: mt.MSELoss(scale_tril=_t(_tril(seed=6)).requires_grad_()), mt.MSELoss),
        TCase("MSELoss-precision", lambda: mt.MSELoss("sum", precision=cov(), mask=m()), mt.MSELoss),
        TCase("MAELoss", lambda: mt.MAELoss("sum", missing="nan", weight=ew()), mt.MAELoss),
        TCase("RMSELoss", lambda: mt.RMSELoss(multioutput=[0.2, 0.3, 0.5], missing="nan", mask=m()), mt.RMSELoss),
        TCase("HuberLoss", lambda: mt.HuberLoss("none", delta=0.3, weight=w()), mt.HuberLoss),
        TCase("SmoothL1Loss", lambda: mt.SmoothL1Loss("sum", beta=0.2, mask=m()), mt.SmoothL1Loss),
        TCase("LogCoshLoss", lambda: mt.LogCoshLoss("sum_over_batch_size", missing="nan", weight=w()),
              mt.LogCoshLoss),
        TCase("ExpectileLoss", lambda: mt.ExpectileLoss("sum", tau=0.85, weight=ew(), mask=m()), mt.ExpectileLoss),
        TCase("PseudoHuberLoss", lambda: mt.PseudoHuberLoss("sum", delta=0.6, mask=m()), mt.PseudoHuberLoss),
        TCase("QuantileLoss-param",  # a learned quantile level per output: a parameter of the module
              lambda: mt.QuantileLoss(tau=torch.nn.Parameter(_t([0.2, 0.5, 0.8])), missing="nan"),
              lambda: mt.QuantileLoss(tau=torch.nn.Parameter(_t([0.5, 0.5, 0.5])))),
        TCase("NMSELoss", lambda: mt.NMSELoss(multioutput="variance_weighted", weight=w()), mt.NMSELoss),
        TCase("R2Score", lambda: mt.R2Score(multioutput=[1.0, 2.0, 3.0], missing="nan", mask=m()), mt.R2Score),
        TCase("GaussianNLLLoss", lambda: mt.GaussianNLLLoss(full=True, eps=1e-3, reduction="sum", weight=w()),
              mt.GaussianNLLLoss, {"var": var}),
        TCase("MultivariateGaussianNLLLoss-covariance",
              lambda: mt.MultivariateGaussianNLLLoss(covariance=cov(), full=False, reduction="none"),
              lambda: mt.MultivariateGaussianNLLLoss(covariance=torch.eye(D))),
        TCase("MultivariateGaussianNLLLoss-param",
              lambda: mt.MultivariateGaussianNLLLoss(scale_tril=param(), reduction="sum",
                                                     weight=_t(np.linspace(0.5, 2, B)[:, None])),
              lambda: mt.MultivariateGaussianNLLLoss(covariance=torch.eye(2))),
        TCase("Loss-batched-covariance",  # one covariance per sample: (B, d, d)
              lambda: mt.Loss(preset("huber", delta=0.4, reduction="per_sample"),
                              covariance=_t(np.stack([_spd(seed=s) for s in range(B)]))),
              lambda: mt.Loss(LossSpec())),
        TCase("compile-per_sample", lambda: mt.compile(preset("expectile", tau=0.2, per_sample=True, reduction="sum"),
                                                       weight=ew(), mask=m()),
              lambda: mt.Loss(LossSpec())),
        # every other row of the preset table, its parameters away from their defaults, one as a Parameter
        *(TCase(r.torch, lambda r=r: getattr(mt, r.torch)("sum", missing="nan", mask=m(), **_param_tensor(r)),
                getattr(mt, r.torch)) for r in PRESET_TABLE if r.params and r.torch not in _LISTED),
    ]


#: The classes the cases above list by hand.
_LISTED = {"MSELoss", "MAELoss", "RMSELoss", "HuberLoss", "SmoothL1Loss", "LogCoshLoss", "ExpectileLoss",
           "PseudoHuberLoss", "QuantileLoss", "NMSELoss", "R2Score"}


def _param_tensor(row: Any) -> dict[str, Any]:
    """A row's parameters away from their defaults, the first a learned Parameter."""
    params = nondefault_params(row)
    first = next(iter(params))
    return {**params, first: torch.nn.Parameter(_t(params[first]))}


if torch is not None:
    torch_cases = _torch_cases()


def _inputs() -> tuple[Any, Any]:
    rng = np.random.default_rng(7)
    y = rng.normal(size=(B, D))
    y[1, 2] = np.nan  # a missing target: masked where missing="nan", and where the mask drops column 1
    y[4, 1] = np.nan
    return _t(rng.normal(size=(B, D))), _t(y)


def _evaluate(module: Any, case: TCase) -> tuple[Any, list[Any]]:
    """The value and the gradients w.r.t. the input and every trainable matrix."""
    x, y = _inputs()
    if module.spec.missing != "nan":  # NaN targets only where missing="nan" or the mask drops them
        y[1, 2] = 0.0
        if module.mask is None or bool(module.mask[1]):
            y[4, 1] = 0.0
    x.requires_grad_(True)
    trainable = _trainable(module)
    for t in trainable:
        t.grad = None
    value = module(x, y, **case.call)
    value.sum().backward()
    grads = [x.grad] + [t.grad for t in trainable]
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    return value.detach(), grads


def _trainable(module: Any) -> list[Any]:
    out = list(module.parameters())
    st = module.__dict__["_matrix"]
    if st.tensor is not None:
        out.append(st.tensor)
    return out


def _same(a: Any, b: Any) -> None:
    (va, ga), (vb, gb) = a, b
    assert va.shape == vb.shape and torch.equal(va, vb), (va, vb)
    assert len(ga) == len(gb)
    for x, y in zip(ga, gb):
        assert torch.equal(x, y), (x, y)


def _via_state_dict(module: Any, case: TCase) -> Any:
    fresh = case.fresh()
    fresh.load_state_dict(module.state_dict())  # strict
    return fresh


def _via_torch_save(module: Any, case: TCase) -> Any:
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    buf.seek(0)
    fresh = case.fresh()
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    return fresh


ROUND_TRIPS = {
    "state_dict": _via_state_dict,
    "torch.save-weights_only": _via_torch_save,
    "deepcopy": lambda module, case: copy.deepcopy(module),
    "pickle": lambda module, case: pickle.loads(pickle.dumps(module)),
}


@needs_torch
@pytest.mark.parametrize("trip", sorted(ROUND_TRIPS))
@pytest.mark.parametrize("case", torch_cases, ids=lambda c: c.id)
def test_torch_round_trip_keeps_value_and_gradient(case, trip):
    module = case.make()
    again = ROUND_TRIPS[trip](module, case)
    assert type(again) is type(module) and again.spec == module.spec
    assert again.check_values == module.check_values or trip.startswith(("state", "torch"))
    assert {k for k, v in again.state_dict().items() if isinstance(v, torch.Tensor)} == {
        k for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}
    for k, v in module.state_dict().items():
        if isinstance(v, torch.Tensor):
            w = again.state_dict()[k]
            assert w.dtype == v.dtype and torch.equal(w, v), k
    _same(_evaluate(again, case), _evaluate(module, case))
    # the round trip is a copy: training the original does not move the reloaded one
    for p in _trainable(module):
        with torch.no_grad():
            p.add_(0.01)
    assert not any(p is q for p in _trainable(module) for q in _trainable(again))


@needs_torch
def test_the_whole_set_was_covered():
    covered = {type(c.make()).__name__ for c in torch_cases}
    classes = {name for name in mt.__all__ if isinstance(getattr(mt, name), type)
               and issubclass(getattr(mt, name), torch.nn.Module)}
    assert classes <= covered, classes - covered


@needs_torch
def test_state_is_plain_data_for_weights_only_loading():
    state = mt.MultivariateGaussianNLLLoss(scale_tril=torch.nn.Parameter(torch.eye(D)), mask=[True, False, True],
                                           reduction="sum").state_dict()
    extra = state["_extra_state"]

    def plain(v: Any) -> bool:
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        if isinstance(v, list):
            return all(plain(x) for x in v)
        return v is None or isinstance(v, (str, bool, int, float, torch.Tensor))

    assert plain(extra) and extra["spec"] == LossSpec.from_dict(extra["spec"]).to_dict()
    assert extra["spec"]["reduction"] == "sum" and extra["mask"] and not extra["weight"]


@needs_torch
def test_load_into_a_model_replaces_hyperparameters_and_keeps_a_same_shape_parameter():
    """Inside a model (a prefixed key), into a module built with other arguments: the spec,
    the weight and the matrix are the saved ones; a trainable factor of the saved shape is
    copied into in place, so that an optimizer holding it keeps training it."""

    class Model(torch.nn.Module):
        def __init__(self, loss: Any) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(D, D, dtype=torch.float64)
            self.loss = loss

    saved = Model(mt.MSELoss("sum", scale_tril=torch.nn.Parameter(_t(_tril())), weight=_t([1.0, 2.0, 3.0])))
    target = Model(mt.MSELoss(scale_tril=torch.nn.Parameter(torch.eye(D, dtype=torch.float64)),
                              mask=torch.tensor([True, True, False])))
    param = target.loss.scale_tril
    opt = torch.optim.SGD(target.parameters(), lr=0.1)
    target.load_state_dict(saved.state_dict())
    assert target.loss.scale_tril is param and torch.equal(param, saved.loss.scale_tril)
    assert target.loss.spec == saved.loss.spec and target.loss.mask is None
    assert torch.equal(target.loss.weight, saved.loss.weight)
    x, y = _inputs()
    y = torch.nan_to_num(y)
    target.loss(target.lin(x), y).backward()
    opt.step()
    assert not torch.equal(param, saved.loss.scale_tril)  # the optimizer trained the loaded factor


@needs_torch
def test_loading_removes_and_adds_matrices_and_weights():
    """A module's tensors become the saved ones: a covariance module loaded from a plain
    state loses its factor, a plain one gains a precision, a weight appears and goes."""
    x, y = _inputs()
    y = torch.nan_to_num(y)
    plain, cov = mt.MSELoss("sum"), mt.MSELoss(covariance=_t(_spd()), weight=_t([1.0, 2.0, 3.0]))
    cov.load_state_dict(plain.state_dict())
    assert set(cov.state_dict()) == {"_extra_state"} and torch.equal(cov(x, y), plain(x, y))
    prec = mt.MSELoss("sum", precision=_t(_spd()), mask=torch.tensor([True, False, True]))
    plain.load_state_dict(prec.state_dict())
    assert set(plain.state_dict()) == {"precision", "mask", "_extra_state"} and torch.equal(plain(x, y), prec(x, y))


@needs_torch
@pytest.mark.parametrize("saved, into, words", [
    (lambda: mt.HuberLoss(delta=0.3), mt.MSELoss, ["LossSpec(penalty='huber', delta=0.3)", "MSELoss",
                                                    "penalty='square'", "Loss"]),
    (lambda: mt.RMSELoss(missing="nan"), mt.MSELoss, ["finalize='sqrt'", "finalize='identity'"]),
    (lambda: mt.MultivariateGaussianNLLLoss(covariance=torch.eye(2)), mt.GaussianNLLLoss,
     ["transform='whiten'", "GaussianNLLLoss", "transform=None"]),
])
def test_loading_another_class_state_is_a_clear_error(saved, into, words):
    """What a class is (its penalty and finalizer; for the Gaussian NLLs its transform) is
    not a hyperparameter: torch's RuntimeError names both specs; ``Loss`` loads any."""
    state = saved().state_dict()
    target = into()
    before = target.spec
    with pytest.raises(RuntimeError) as err:
        target.load_state_dict(state)
    for w in words:
        assert w in str(err.value), (w, str(err.value))
    assert target.spec == before  # unchanged
    anything = mt.Loss(LossSpec())
    anything.load_state_dict(state)
    assert anything.spec == saved().spec


@needs_torch
@pytest.mark.parametrize("row", PRESET_TABLE, ids=lambda r: r.torch)
def test_a_default_module_adds_nothing_to_a_state_dict(row):
    """As torch.nn's losses: a checkpoint of a model that uses ours with the defaults loads
    strictly into one that uses torch.nn's (and back); a module with matrices does not load
    an empty state strictly (its buffers are missing), as any torch module with buffers."""

    class Model(torch.nn.Module):
        def __init__(self, loss: Any) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(D, D)
            self.loss = loss

    ours = Model(getattr(mt, row.torch)())
    assert set(ours.state_dict()) == {"lin.weight", "lin.bias"}
    theirs = Model(torch.nn.MSELoss())
    assert str(theirs.load_state_dict(ours.state_dict())) == "<All keys matched successfully>"
    assert str(ours.load_state_dict(theirs.state_dict())) == "<All keys matched successfully>"
    assert ours.loss.spec == getattr(mt, row.torch)().spec
    with pytest.raises(RuntimeError, match="Missing key"):
        mt.MSELoss(covariance=_t(_spd())).load_state_dict({})


@needs_torch
def test_torch_nn_state_loads_and_keeps_the_built_spec():
    """A state without ours (torch.nn.MSELoss's is empty): loads strictly, spec as built."""
    f = mt.HuberLoss(delta=0.5)
    assert str(f.load_state_dict(torch.nn.HuberLoss().state_dict())) == "<All keys matched successfully>"
    assert f.spec.delta == 0.5


@needs_torch
def test_unknown_extra_state_is_a_clear_error():
    state = mt.MSELoss("sum").state_dict()
    state["_extra_state"] = dict(state["_extra_state"], format=99)
    with pytest.raises(RuntimeError, match="format 99"):
        mt.MSELoss().load_state_dict(state)
    with pytest.raises(RuntimeError, match="not one of mse_adapters'"):
        mt.MSELoss().load_state_dict({"_extra_state": [1, 2]})
    with pytest.raises(ValueError, match="load_state_dict"):  # set_extra_state alone cannot add tensors
        mt.MSELoss().set_extra_state(mt.MSELoss(weight=torch.ones(D)).get_extra_state())


# -- NumPy and JAX compiled losses ----------------------------------------------------------

NP_SPECS = [s for s in SPECS if s.penalty != "gaussian_nll" and s.transform is None]


@pytest.mark.parametrize("spec", NP_SPECS, ids=repr)
def test_numpy_compiled_loss_pickles(spec):
    import mse_adapters.numpy as mnp

    f = mnp.compile(spec)
    g = pickle.loads(pickle.dumps(f))
    assert g.spec == spec
    rng = np.random.default_rng(2)
    y, p, w = rng.normal(size=(B, D)), rng.normal(size=(B, D)), rng.uniform(0.5, 2.0, (B, D))
    np.testing.assert_array_equal(g(y, p, weight=w), f(y, p, weight=w))


def test_numpy_compiled_whitened_and_gaussian_losses_pickle():
    import mse_adapters.numpy as mnp

    rng = np.random.default_rng(2)
    y, p = rng.normal(size=(B, D)), rng.normal(size=(B, D))
    for spec, kw in [(LossSpec(transform="whiten", penalty="huber", delta=0.3), {"covariance": _spd()}),
                     (LossSpec(transform="precision", reduction="sum"), {"precision": _spd()}),
                     (LossSpec(penalty="gaussian_nll", full=True), {"var": rng.uniform(0.5, 2, (B, D))}),
                     (LossSpec(penalty="gaussian_nll", transform="whiten"), {"scale_tril": _tril()})]:
        f = mnp.compile(spec)
        assert pickle.loads(pickle.dumps(f))(y, p, **kw) == f(y, p, **kw)


@needs_torch
def test_a_compiled_module_follows_load_state_dict():
    """torch.compile guards on the module's spec and tensors: after loading another state,
    the compiled loss computes the loaded loss (no stale graph)."""
    x, y = _inputs()
    x, y = x.float(), torch.nan_to_num(y).float()
    for f, saved in [(mt.HuberLoss(), mt.HuberLoss("sum", delta=0.2, weight=torch.tensor([1.0, 2.0, 3.0]))),
                     (mt.MSELoss(covariance=torch.eye(D)), mt.MSELoss(covariance=4 * torch.eye(D)))]:
        torch._dynamo.reset()
        compiled = torch.compile(f, fullgraph=True, backend="eager")
        assert torch.equal(compiled(x, y), f(x, y))
        f.load_state_dict(saved.state_dict())
        assert torch.equal(compiled(x, y), saved(x, y))


# -- JAX compiled losses ----------------------------------------------------------------------


def _jax_cases() -> list[tuple[str, Any, dict[str, Any]]]:
    """(id, a compiled loss, call arguments): every preset with non-default fields, and with
    the matrices given at construction where the adapter takes them."""
    import mse_adapters.jax as mj

    rng = np.random.default_rng(4)
    w, m = rng.uniform(0.5, 2.0, (B, D)), rng.uniform(size=(B, D)) > 0.3
    cases = [(repr(s), mj.compile(s, check_values=cv), {"weight": w, "mask": m})
             for s, cv in zip(NP_SPECS, [True, False, "checkify"] * len(NP_SPECS))]
    cases.append(("Loss", mj.Loss(preset("huber", delta=0.2)), {"sample_weight": rng.uniform(0.5, 2.0, B)}))
    # matrices at construction (docs/design.md, "Whitening")
    cases += [
        ("compile-covariance", mj.compile(preset("huber", delta=0.3), covariance=_spd()), {}),
        ("compile-scale_tril", mj.compile(LossSpec(reduction="sum"), scale_tril=_tril()), {}),
        ("compile-precision", mj.compile(LossSpec(unit_norm=0.2), precision=_spd(), check_values=False),
         {"mask": m}),
        ("compile-gaussian_nll", mj.compile(LossSpec(penalty="gaussian_nll", full=True, eps=1e-3)),
         {"var": rng.uniform(0.5, 2.0, (B, D)), "weight": w}),
        ("compile-multivariate_gaussian_nll",
         mj.compile(LossSpec(penalty="gaussian_nll", transform="whiten", full=False), covariance=_spd()), {}),
    ]
    return cases


JAX_CASES = [repr(s) for s in NP_SPECS] + ["Loss", "compile-covariance", "compile-scale_tril", "compile-precision",
                                            "compile-gaussian_nll", "compile-multivariate_gaussian_nll"]


@pytest.mark.parametrize("case", JAX_CASES)
def test_jax_compiled_loss_pickles_with_the_same_value_and_gradient(case):
    jax = pytest.importorskip("jax")
    import functools

    f, kw = {name: (f, kw) for name, f, kw in _jax_cases()}[case]
    g = pickle.loads(pickle.dumps(f))
    assert g == f and hash(g) == hash(f) and g.spec == f.spec and g.check_values == f.check_values
    try:  # what multiprocessing and Ray ship functions with, where installed
        import cloudpickle
    except ImportError:  # pragma: no cover
        pass
    else:
        assert cloudpickle.loads(cloudpickle.dumps(f)) == f
    rng = np.random.default_rng(5)
    p, t = rng.normal(size=(B, D)).astype(np.float32), rng.normal(size=(B, D)).astype(np.float32)
    # weights and masks are call arguments in JAX: bound with functools.partial, they pickle too
    fa, fb = functools.partial(f, **kw), pickle.loads(pickle.dumps(functools.partial(f, **kw)))
    va, ga = jax.value_and_grad(lambda q: jax.numpy.sum(fa(q, t)))(p)
    vb, gb = jax.value_and_grad(lambda q: jax.numpy.sum(fb(q, t)))(p)
    assert float(va) == float(vb) and np.array_equal(np.asarray(ga), np.asarray(gb))
    # a pickled loss is the same static argument: jit does not retrace for it
    traces = []

    def run(h: Any, q: Any) -> Any:
        traces.append(1)
        return jax.numpy.sum(h(q, t, **kw))

    if f.check_values == "checkify":  # its checks run under jit inside checkify.checkify
        from jax.experimental import checkify

        checked = checkify.checkify(run)
        run = lambda h, q: checked(h, q)[1]  # noqa: E731
    jitted = jax.jit(run, static_argnums=0)
    assert float(jitted(f, p)) == float(jitted(g, p)) and len(traces) == 1
    assert float(jitted(g, p)) == pytest.approx(float(va), rel=1e-5, abs=1e-6)
