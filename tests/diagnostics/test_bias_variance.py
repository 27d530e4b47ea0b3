"""bias_variance in every backend that has it, against the NumPy float64 reference built
from the reference's own losses: bias^2 is the MSE of the mean prediction, the expected MSE
the mean over the members of their MSE, the variance their difference (values and
gradients; weights, masks, missing targets and the reductions of the contract)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mse_adapters import _messages as msg
from mse_adapters import numpy as mnp
from mse_adapters import preset

from ..conformance.harness import assert_close
from ._backends import ALL, DIFFERENTIABLE, Backend

REDUCTIONS = ("mean", "sum", "sum_over_batch_size", "none", "per_sample")
SCALAR = ("mean", "sum", "sum_over_batch_size")


def reference(p: np.ndarray, t: np.ndarray, reduction: str = "mean", missing: str | None = None,
              **kw: object) -> tuple[object, object, object]:
    # the reference's MSE loss (a loss: an empty or fully masked batch is 0, where the metric
    # function mnp.mse reports NaN)
    spec = preset("mse", reduction=reduction, missing=missing)
    k = p.shape[0]
    pbar = p.sum(0) / k
    bias2 = mnp.loss(spec, t, pbar, **kw)
    expected = sum(np.asarray(mnp.loss(spec, t, p[i], **kw)) for i in range(k)) / k
    return bias2, expected - bias2, expected


def reference_grads(p: np.ndarray, t: np.ndarray, reduction: str, missing: str | None,
                    **kw: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """d(bias2, variance, expected)/d predictions, from the reference's exact gradients."""
    spec = preset("mse", reduction=reduction, missing=missing)
    k = p.shape[0]
    pbar = p.sum(0) / k
    gb = mnp.value_and_grad(spec, t, pbar, **kw)[1]["y_pred"] / k
    ge = np.stack([mnp.value_and_grad(spec, t, p[i], **kw)[1]["y_pred"] / k for i in range(k)])
    gbias = np.broadcast_to(gb, p.shape)
    return gbias, ge - gbias, ge


@st.composite
def problems(draw: st.DrawFn) -> dict[str, object]:
    k = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=3)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p = rng.normal(size=(k, *shape))
    t = rng.normal(size=shape)
    kw: dict[str, object] = {"reduction": draw(st.sampled_from(REDUCTIONS))}
    if draw(st.booleans()):
        kw["weight"] = rng.uniform(0.1, 2.0, size=shape[-1:] if draw(st.booleans()) else shape)
    if draw(st.booleans()):
        kw["sample_weight"] = rng.uniform(0.1, 2.0, size=shape[:1])
    if draw(st.booleans()):
        m = rng.uniform(size=shape) > 0.3
        kw["mask"] = m
        p[:, ~m] = np.nan  # masked predictions and targets count for nothing
        t[~m] = np.inf
    if draw(st.booleans()):
        kw["missing"] = "nan"
        t[rng.uniform(size=shape) > 0.7] = np.nan
    return {"p": p, "t": t, **kw}


@pytest.mark.parametrize("b", ALL, ids=lambda b: b.id)
@settings(max_examples=30, deadline=None, derandomize=True)
@given(case=problems())
def test_values_match_the_reference(b: Backend, case: dict[str, object]) -> None:
    kw = dict(case)
    p, t = kw.pop("p"), kw.pop("t")
    assert isinstance(p, np.ndarray) and isinstance(t, np.ndarray)
    if b.dtype == "float32":  # the reference sees the values the backend sees
        p, t = p.astype(np.float32).astype(np.float64), t.astype(np.float32).astype(np.float64)
    ref = reference(p, t, **kw)
    with b.ctx():
        arrays = {n: b.array(kw[n]) for n in ("weight", "sample_weight", "mask") if n in kw}
        got = b.module().bias_variance(b.array(p), b.array(t), missing=kw.get("missing"),
                                       reduction=kw["reduction"], **arrays)
        got = [b.host(g) for g in got]
    for g, r in zip(got, ref):
        b.close(g, r)
        assert np.all(np.isfinite(g))
    # expected_mse is the sum of the two, exactly
    with b.ctx():
        raw = b.module().bias_variance(b.array(p), b.array(t), missing=kw.get("missing"),
                                       reduction=kw["reduction"], **arrays)
        assert bool(np.all(b.host(raw.expected_mse) == b.host(raw.bias2 + raw.variance)))


@pytest.mark.parametrize("b", DIFFERENTIABLE, ids=lambda b: b.id)
@pytest.mark.parametrize("reduction", SCALAR)
@pytest.mark.parametrize("options", ["plain", "weighted", "masked-nan"])
def test_gradients_match_the_reference(b: Backend, reduction: str, options: str) -> None:
    rng = np.random.default_rng(7)
    p = rng.normal(size=(3, 5, 2))
    t = rng.normal(size=(5, 2))
    kw: dict[str, object] = {}
    if options == "weighted":
        kw = {"weight": rng.uniform(0.1, 2, size=(2,)), "sample_weight": rng.uniform(0.1, 2, size=(5,))}
    if options == "masked-nan":
        m = rng.uniform(size=(5, 2)) > 0.3
        m[0] = False  # a sample with nothing valid
        p[1, ~m] = np.nan
        t[~m] = np.nan
        kw = {"mask": m}
    if b.dtype == "float32":
        p, t = p.astype(np.float32).astype(np.float64), t.astype(np.float32).astype(np.float64)
    refs = reference_grads(p, t, reduction, None, **kw)
    mod = b.module()
    for field, ref in zip(("bias2", "variance", "expected_mse"), refs):
        with b.ctx():
            arrays = {n: b.array(v) for n, v in kw.items()}
            _, g = b.grad(lambda x, f=field, a=arrays: getattr(mod.bias_variance(x, b.array(t), reduction=reduction,
                                                                                   **a), f), p)
        b.close(g, ref, scale=10.0)
        if options == "masked-nan":
            assert np.all(g[:, ~kw["mask"]] == 0)  # type: ignore[index]


@pytest.mark.parametrize("b", ALL, ids=lambda b: b.id)
def test_edge_cases(b: Backend) -> None:
    mod = b.module()
    rng = np.random.default_rng(3)
    p, t = rng.normal(size=(4, 3, 2)), rng.normal(size=(3, 2))
    with b.ctx():
        bv = lambda *a, **k: [b.host(x) for x in mod.bias_variance(*map(b.array, a), **k)]  # noqa: E731
        # one model: no variance, bias^2 is its MSE
        one = bv(p[:1], t)
        assert one[1] == 0.0
        b.close(one[0], mnp.mse(t, p[0]))
        # NaN without a mask propagates to all three
        q = p.copy()
        q[2, 1, 0] = np.nan
        assert all(np.isnan(v) for v in bv(q, t))
        # all weights zero, an empty batch, everything masked: 0, never NaN
        assert bv(p, t, weight=b.array(np.zeros(2))) == [0.0, 0.0, 0.0]
        assert bv(np.zeros((4, 0, 2)), np.zeros((0, 2))) == [0.0, 0.0, 0.0]
        assert bv(q, t, mask=b.array(np.zeros((3, 2), bool))) == [0.0, 0.0, 0.0]
        # a sample with nothing valid is 0 in the per-sample reduction
        m = np.ones((3, 2), bool)
        m[1] = False
        per = bv(q, t, mask=b.array(m), reduction="per_sample")
        assert per[0][1] == per[1][1] == per[2][1] == 0.0
        for got, ref in zip(per, reference(np.where(m, q, 0.0), t, mask=m, reduction="per_sample")):
            b.close(got, ref)


@pytest.mark.parametrize("b", ALL, ids=lambda b: b.id)
def test_errors_are_the_contracts(b: Backend) -> None:
    mod = b.module()
    with b.ctx():
        with pytest.raises(ValueError) as e:
            mod.bias_variance(b.array(np.zeros((2, 3))), b.array(np.zeros((4,))))
        assert str(e.value) == msg.stacked_shape((2, 3), (4,))
        with pytest.raises(ValueError) as e:
            mod.bias_variance(b.array(np.zeros((0, 3))), b.array(np.zeros((3,))))
        assert str(e.value) == msg.no_members((0, 3))
        with pytest.raises(ValueError) as e:
            mod.bias_variance(b.array(np.zeros((2, 3))), b.array(np.zeros((3,))), weight=b.array(-np.ones(3)))
        assert str(e.value) == msg.WEIGHT_NEGATIVE.format(name="weight")
        with pytest.raises(ValueError) as e:
            mod.bias_variance(b.array(np.zeros((2, 3))), b.array(np.zeros((3,))), mask=b.array(np.full(3, 2.0)))
        assert str(e.value) == msg.MASK_NOT_BINARY.format(name="mask")


def test_jax_jit_equals_eager() -> None:
    jax = pytest.importorskip("jax")
    from mse_adapters import jax as mjax

    rng = np.random.default_rng(5)
    p, t = jax.numpy.asarray(rng.normal(size=(6, 8)), "float32"), jax.numpy.asarray(rng.normal(size=(8,)), "float32")
    w = jax.numpy.asarray(rng.uniform(size=(8,)), "float32")
    eager = mjax.bias_variance(p, t, weight=w)
    jitted = jax.jit(mjax.bias_variance)(p, t, weight=w)
    for e, j in zip(eager, jitted):
        assert_close(np.asarray(j), np.asarray(e), "float32-rerun", "bias_variance jitted vs eager")
