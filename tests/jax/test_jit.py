"""Every public JAX loss under ``jax.jit`` (issue 6, item 5): the jitted ``value_and_grad``
(w.r.t. the predictions and, where there is one, a traced variance or ``scale_tril``)
equals the eager one, and a second call with new values does not retrace. Each function
of ``mse_adapters.jax.__all__`` has an entry (a test checks it); the whitened variants run
with a concrete matrix (a constant of the program, factored on the host at trace time) and
with a traced one (differentiated)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import mse_adapters.jax as mj  # noqa: E402
from mse_adapters import LossSpec, preset  # noqa: E402
from mse_adapters._presets import PRESET_TABLE  # noqa: E402
from tests.conformance.harness import assert_close, nondefault_params  # noqa: E402

B, D = 8, 3


def _spd(seed: int = 0) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(D, D))
    return (a @ a.T + D * np.eye(D)).astype(np.float32)


W = np.array([1.0, 0.5, 2.0], np.float32)
SW = np.linspace(0.5, 2.0, B).astype(np.float32)
M = np.ones((B, D), bool)
M[::3, 1] = False
COV = _spd()
TRIL = np.linalg.cholesky(_spd(1)).astype(np.float32)
VAR = np.random.default_rng(2).uniform(0.2, 2.0, (B, D)).astype(np.float32)

#: name (the function of ``mj.__all__`` before the first "-") -> (f(p, t, aux), aux or None,
#: whether the targets may hold NaN where M is False)
Entry = tuple[Callable[[Any, Any, Any], Any], Any, bool]
ENTRIES: dict[str, Entry] = {
    "mse": (lambda p, t, a: mj.mse(p, t, weight=W, sample_weight=SW, mask=M, reduction="sum"), None, True),
    "mae": (lambda p, t, a: mj.mae(p, t, missing="nan", reduction="per_sample"), None, True),
    "rmse": (lambda p, t, a: mj.rmse(p, t, mask=M, multioutput=[0.2, 0.3, 0.5]), None, True),
    "huber": (lambda p, t, a: mj.huber(p, t, delta=0.3, weight=W, mask=M), None, True),
    "smooth_l1": (lambda p, t, a: mj.smooth_l1(p, t, beta=0.2, missing="nan", reduction="per_output"), None, True),
    "log_cosh": (lambda p, t, a: mj.log_cosh(p, t, sample_weight=SW, mask=M), None, True),
    "expectile": (lambda p, t, a: mj.expectile(p, t, tau=0.8, mask=M, reduction="sum_over_batch_size"), None, True),
    "pseudo_huber": (lambda p, t, a: mj.pseudo_huber(p, t, delta=0.6, weight=W, mask=M), None, True),
    "quantile": (lambda p, t, a: mj.quantile(p, t, tau=0.3, sample_weight=SW, missing="nan"), None, True),
    "nmse": (lambda p, t, a: mj.nmse(p, t, missing="nan", multioutput="variance_weighted"), None, True),
    "r2": (lambda p, t, a: mj.r2(p, t, weight=W, mask=M), None, True),
    "squared_error": (lambda p, t, a: mj.squared_error(p, t, mask=M), None, True),
    "absolute_error": (lambda p, t, a: mj.absolute_error(p, t, weight=W), None, False),
    "l2_loss": (lambda p, t, a: mj.l2_loss(p, t, mask=M), None, True),
    "huber_loss": (lambda p, t, a: mj.huber_loss(p, t, delta=0.5, mask=M), None, True),
    "loss": (lambda p, t, a: mj.loss(preset("expectile", tau=0.2, per_sample=True, reduction="sum"), p, t,
                                     weight=W, mask=M), None, True),
    "compile": (lambda p, t, a: mj.compile(LossSpec(penalty="huber", delta=0.4, unit_norm=0.1))(p, t, mask=M),
                None, True),
    "Loss": (lambda p, t, a: mj.Loss(preset("log_cosh", reduction="sum"), check_values=False)(p, t, mask=M),
             None, True),
    # The diagnostics (docs/design.md, "Diagnostics"): their results reduced to one number.
    "bias_variance": (lambda p, t, a: sum(mj.bias_variance(jnp.stack([p, 0.5 * (p + t), t - 0.3 * p]), t,
                                                           weight=W)), None, False),
    "contributions": (lambda p, t, a: jnp.sum(mj.contributions(p, t, "huber", delta=0.5, mask=M).per_sample),
                      None, True),
    "derivative": (lambda p, t, a: jnp.sum(mj.derivative(lambda x: jnp.sin(p * x), t, order=2, direction=W)),
                   None, False),
    "derivative_penalty": (lambda p, t, a: mj.derivative_penalty(lambda x: p * x ** 3, t, order=1, direction=W,
                                                                          sample_weight=SW),
                           None, False),
}
#: Every other row of the preset table, masked, with its parameters away from their defaults.
ENTRIES.update({row.name: (lambda p, t, a, row=row: getattr(mj, row.name)(p, t, mask=M, **nondefault_params(row)),
                           None, True) for row in PRESET_TABLE if row.name not in ENTRIES})
if hasattr(mj, "gaussian_nll"):  # the whitened and Gaussian losses (docs/design.md)
    ENTRIES.update({
        "mse-covariance": (lambda p, t, a: mj.mse(p, t, covariance=COV), None, False),
        "mse-scale_tril-traced": (lambda p, t, a: mj.mse(p, t, scale_tril=a, reduction="sum"), TRIL, False),
        "mse-precision": (lambda p, t, a: mj.mse(p, t, precision=COV, mask=M), None, True),
        "loss-huber-scale_tril": (lambda p, t, a: mj.loss(preset("huber", delta=0.5), p, t, scale_tril=TRIL),
                                  None, False),
        "compile-covariance": (lambda p, t, a: mj.compile(preset("huber", delta=0.5), covariance=COV)(p, t),
                               None, False),
        "Loss-precision": (lambda p, t, a: mj.Loss(LossSpec(reduction="sum"), precision=COV)(p, t), None, False),
        "loss-batched-covariance": (lambda p, t, a: mj.loss(LossSpec(penalty="log_cosh"), p, t,
                                                            covariance=np.stack([_spd(s) for s in range(B)])),
                                    None, False),
        "gaussian_nll": (lambda p, t, a: mj.gaussian_nll(p, t, a, full=True, eps=1e-3, mask=M), VAR, True),
        "multivariate_gaussian_nll": (lambda p, t, a: mj.multivariate_gaussian_nll(p, t, scale_tril=a,
                                                                                   reduction="sum"), TRIL, False),
        "multivariate_gaussian_nll-covariance": (
            lambda p, t, a: mj.multivariate_gaussian_nll(p, t, covariance=COV, full=False), None, False),
    })


def _batch(seed: int, nan: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(B, D)).astype(np.float32)
    p = (t + rng.normal(size=(B, D))).astype(np.float32)
    if nan:
        t = np.where(M, t, np.nan).astype(np.float32)  # NaN only where masked (or missing="nan")
    return p, t


def test_every_public_loss_has_an_entry():
    public = {n for n in mj.__all__ if n not in ("JaxOps", "normalizer")}
    assert public <= {k.split("-")[0] for k in ENTRIES}, public - {k.split("-")[0] for k in ENTRIES}


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_jit_value_and_grad_equals_eager(name):
    fn, aux, nan = ENTRIES[name]
    traces = []

    def objective(p: Any, t: Any, a: Any) -> Any:
        traces.append(1)  # runs only while tracing
        return jnp.sum(fn(p, t, a))

    argnums = (0,) if aux is None else (0, 2)
    vg = jax.value_and_grad(objective, argnums=argnums)
    jitted = jax.jit(vg)
    for seed in range(2):  # new values, the same shapes: one trace
        p, t = _batch(seed, nan)
        a = None if aux is None else aux * (1.0 + 0.1 * seed)
        (v_e, g_e), (v_j, g_j) = vg(p, t, a), jitted(p, t, a)
        assert np.isfinite(float(v_j))
        assert_close(v_j, v_e, "float32", f"{name}: jitted value")
        for ge, gj in zip(g_e, g_j):
            assert np.all(np.isfinite(np.asarray(gj)))
            assert_close(gj, ge, "float32", f"{name}: jitted gradient")
    assert len(traces) == 3  # one eager call each, one jit trace
