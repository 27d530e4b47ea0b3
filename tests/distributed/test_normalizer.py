"""``normalizer=`` and ``normalizer(...)`` in every backend, for every preset of the preset
table (no processes): with the window's normalizer (the sum of its micro-batches'), the
micro-batch losses add up to the loss of the whole window, value and gradient, against the
NumPy float64 reference; an empty micro-batch and one with nothing valid included; a zero
normalizer gives 0 with a zero gradient; finalized losses (RMSE, NMSE, R^2) and reductions
without a normalizer refuse it; a normalizer of the wrong shape, negative or NaN is a
ValueError naming it, with the same words everywhere."""

from __future__ import annotations

import numpy as np
import pytest

from mse_adapters import PRESET_TABLE
from mse_adapters import numpy as mnp
from mse_adapters._presets import row
from tests.conformance.harness import TOLERANCE

#: micro-batch boundaries of the 12-row window: sizes 5, 0 (empty), 3 (nothing valid), 4
CUTS = (0, 5, 5, 8, 12)
LINEAR = [r.name for r in PRESET_TABLE if r.spec.finalize == "identity"]
FINALIZED = [r.name for r in PRESET_TABLE if r.spec.finalize != "identity"]
#: (reduction, multioutput) of the linear presets: every reduction with a normalizer
VARIANTS = [("mean", "pooled"), ("sum_over_batch_size", "pooled"), ("per_output", "pooled"),
            ("mean", "uniform_average")]


def window() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    y_true = rng.normal(size=(12, 3))
    mask = rng.random((12, 3)) > 0.3
    mask[5:8] = False  # the third micro-batch: nothing valid
    y_true[~mask] = np.nan  # never seen
    return {"y_true": y_true, "y_pred": rng.normal(size=(12, 3)), "mask": mask,
            "sample_weight": rng.uniform(0.1, 2.0, size=12), "weight": np.array([0.5, 1.0, 2.0])}


def micro(w: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    s = slice(CUTS[i], CUTS[i + 1])
    return {k: v if k == "weight" else v[s] for k, v in w.items()}


def spec_of(name: str, reduction: str, multioutput: str):  # noqa: ANN201
    return row(name).spec.replace(reduction=reduction, multioutput=multioutput)


def reference(spec, w: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    v, g = mnp.value_and_grad(spec, w["y_true"], w["y_pred"], weight=w["weight"], sample_weight=w["sample_weight"],
                              mask=w["mask"])
    return np.asarray(v), g["y_pred"]


def check(got_v: object, got_g: object, want_v: np.ndarray, want_g: np.ndarray, dtype: str) -> None:
    rtol, atol = TOLERANCE[dtype]
    np.testing.assert_allclose(np.asarray(got_v, np.float64), want_v, rtol=rtol, atol=max(atol, rtol * 1e-3))
    np.testing.assert_allclose(np.asarray(got_g, np.float64), want_g, rtol=rtol,
                               atol=max(atol, rtol * float(np.abs(want_g).max())))


CASES = [(n, r, m) for n in LINEAR for r, m in VARIANTS]


@pytest.mark.parametrize("name,reduction,multioutput", CASES)
def test_numpy_window(name: str, reduction: str, multioutput: str) -> None:
    spec, w = spec_of(name, reduction, multioutput), window()
    parts = [micro(w, i) for i in range(len(CUTS) - 1)]
    n = sum(mnp.normalizer(spec, p["y_true"], weight=p["weight"], sample_weight=p["sample_weight"], mask=p["mask"])
            for p in parts)
    vals, grads = zip(*(mnp.value_and_grad(spec, p["y_true"], p["y_pred"], weight=p["weight"],
                                           sample_weight=p["sample_weight"], mask=p["mask"], normalizer=n)
                        for p in parts))
    check(sum(np.asarray(v) for v in vals), np.concatenate([g["y_pred"] for g in grads]), *reference(spec, w),
          "float64")


@pytest.mark.parametrize("name,reduction,multioutput", CASES)
def test_torch_window(name: str, reduction: str, multioutput: str) -> None:
    torch = pytest.importorskip("torch")
    from mse_adapters import torch as mt

    spec, w = spec_of(name, reduction, multioutput), window()
    cls = getattr(mt, row(name).torch)
    loss = cls(reduction=reduction, weight=torch.as_tensor(w["weight"])) if multioutput == "pooled" else \
        mt.Loss(spec, weight=torch.as_tensor(w["weight"]))
    assert loss.spec == spec
    t = {k: torch.as_tensor(v) for k, v in w.items()}
    pred = t["y_pred"].clone().requires_grad_(True)
    s = [slice(CUTS[i], CUTS[i + 1]) for i in range(len(CUTS) - 1)]
    n = sum(loss.normalizer(t["y_true"][c], sample_weight=t["sample_weight"][c], mask=t["mask"][c]) for c in s)
    total = sum(loss(pred[c], t["y_true"][c], sample_weight=t["sample_weight"][c], mask=t["mask"][c], normalizer=n)
                for c in s)
    (g,) = torch.autograd.grad(total.sum(), pred)
    check(total.detach().numpy(), g.numpy(), *reference(spec, w), "float64")


@pytest.mark.parametrize("name", LINEAR)
def test_torch_fused_window(name: str) -> None:
    """Micro-batches large enough for the fused autograd.Function's blocked forward (smaller
    ones take its direct forward, as every case above): it divides by the given normalizer
    (value and gradient equal the one-shot fused loss)."""
    torch = pytest.importorskip("torch")
    from mse_adapters import torch as mt

    g = torch.Generator().manual_seed(0)
    rows = mt._torch_fast.DIRECT // 3 + 7
    pred = torch.randn(3 * rows, 3, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randn(3 * rows, 3, generator=g, dtype=torch.float64)
    mask = torch.rand(3 * rows, 3, generator=g) > 0.3
    loss = getattr(mt, row(name).torch)(weight=torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))
    cuts = [slice(i * rows, (i + 1) * rows) for i in range(3)]
    n = sum(loss.normalizer(target[c], mask=mask[c]) for c in cuts)
    total = sum(loss(pred[c], target[c], mask=mask[c], normalizer=n) for c in cuts)
    (ga,) = torch.autograd.grad(total, pred)
    one = loss(pred, target, mask=mask)
    (gb,) = torch.autograd.grad(one, pred)
    rtol, atol = TOLERANCE["float64"]  # float64 micro-batches against the whole window: summation order only
    torch.testing.assert_close(total, one, rtol=rtol, atol=atol)
    torch.testing.assert_close(ga, gb, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name,reduction,multioutput", CASES)
def test_jax_window(name: str, reduction: str, multioutput: str) -> None:
    jax = pytest.importorskip("jax")
    from mse_adapters import jax as mjax

    spec, w = spec_of(name, reduction, multioutput), window()
    with jax.enable_x64(True):
        import jax.numpy as jnp

        a = {k: jnp.asarray(v) for k, v in w.items()}
        s = [slice(CUTS[i], CUTS[i + 1]) for i in range(len(CUTS) - 1)]
        if multioutput == "pooled":
            f = getattr(mjax, name)
            kw = {"reduction": reduction}
            n = sum(mjax.normalizer(name, a["y_true"][c], weight=a["weight"], sample_weight=a["sample_weight"][c],
                                    mask=a["mask"][c], reduction=reduction) for c in s)
        else:
            f, kw = mjax.compile(spec), {}
            n = sum(f.normalizer(a["y_true"][c], weight=a["weight"], sample_weight=a["sample_weight"][c],
                                 mask=a["mask"][c]) for c in s)

        def total(p):  # noqa: ANN001, ANN202
            return sum(f(p[c], a["y_true"][c], weight=a["weight"], sample_weight=a["sample_weight"][c],
                         mask=a["mask"][c], normalizer=n, **kw) for c in s)

        def summed(p):  # noqa: ANN001, ANN202
            out = total(p)
            return jnp.sum(out), out

        (_, v), g = jax.jit(jax.value_and_grad(summed, has_aux=True))(a["y_pred"])  # one compilation
        check(v, g, *reference(spec, w), "float64")


@pytest.mark.parametrize("name,reduction,multioutput", CASES)
def test_keras_window(name: str, reduction: str, multioutput: str) -> None:
    pytest.importorskip("keras")
    from mse_adapters import keras as mk
    from tests.conformance.backend_keras import tensor, to_numpy, value_and_grad

    w = window()
    knames = {"mean": "mean_with_sample_weight", "sum_over_batch_size": "sum_over_batch_size",
              "per_output": "per_output"}
    if multioutput == "pooled" and reduction != "per_output":
        loss = getattr(mk, row(name).keras)(reduction=knames[reduction], weight=w["weight"], dtype="float32")
    else:  # (the per-sample stage averages the outputs away: the spec's units)
        loss = mk.Loss(spec_of(name, reduction, multioutput), weight=w["weight"], dtype="float32")
    s = [slice(CUTS[i], CUTS[i + 1]) for i in range(len(CUTS) - 1)]
    n = sum(to_numpy(loss.normalizer(tensor(w["y_true"][c], "float32"), tensor(w["sample_weight"][c], "float32"),
                                     mask=tensor(w["mask"][c]))) for c in s)

    def fn(y_pred):  # noqa: ANN001, ANN202
        return sum(loss(tensor(w["y_true"][c], "float32"), y_pred[c], tensor(w["sample_weight"][c], "float32"),
                        mask=tensor(w["mask"][c]), normalizer=tensor(n, "float32")) for c in s)

    out, grads = value_and_grad(fn, {"y_pred": tensor(w["y_pred"], "float32")}, ("y_pred",))
    check(to_numpy(out), to_numpy(grads["y_pred"]), *reference(loss.spec, w), "float32")


# -- zero normalizers and errors -------------------------------------------------------------


def _backends():  # noqa: ANN202
    """(name, call(preset, y_true, y_pred, **kw)) for every importable backend."""
    out = [("numpy", lambda name, t, p, **kw: getattr(mnp, name)(t, p, **kw))]
    try:
        import torch

        from mse_adapters import torch as mt

        out.append(("torch", lambda name, t, p, **kw: getattr(mt, row(name).torch_fn)(
            torch.as_tensor(p), torch.as_tensor(t), **{k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v
                                                       for k, v in kw.items()})))
    except ImportError:  # pragma: no cover
        pass
    try:
        import jax.numpy as jnp

        from mse_adapters import jax as mjax

        out.append(("jax", lambda name, t, p, **kw: getattr(mjax, name)(jnp.asarray(p), jnp.asarray(t), **kw)))
    except ImportError:  # pragma: no cover
        pass
    try:
        from mse_adapters import keras as mk

        def keras_call(name: str, t: np.ndarray, p: np.ndarray, **kw: object) -> object:
            red = kw.pop("reduction", None)
            args = {} if red is None else {"reduction": {"mean": "mean_with_sample_weight"}.get(str(red), red)}
            return getattr(mk, row(name).keras)(**args)(t, p, **kw)

        out.append(("keras", keras_call))
    except ImportError:  # pragma: no cover
        pass
    return out


BACKENDS = _backends()


@pytest.mark.parametrize("backend,call", BACKENDS, ids=[b for b, _ in BACKENDS])
@pytest.mark.parametrize("name", FINALIZED)
def test_finalized_losses_refuse_a_normalizer(backend: str, call, name: str) -> None:  # noqa: ANN001
    t = np.arange(6.0).reshape(3, 2)
    with pytest.raises(ValueError, match="not linear in the sums") as e:
        call(name, t, t + 1.0, normalizer=np.float32(4.0) if backend != "torch" else np.array(4.0))
    assert "process_group" in str(e.value) and "axis_name" in str(e.value) and "streaming metric" in str(e.value)


BAD = [(np.array([1.0, 2.0]), "normalizer of shape (2,) does not fit"),
       (np.array(-1.0), "normalizer must be non-negative"),
       (np.array(np.nan), "normalizer must be finite")]


@pytest.mark.parametrize("backend,call", BACKENDS, ids=[b for b, _ in BACKENDS])
@pytest.mark.parametrize("bad,words", BAD, ids=["shape", "negative", "nan"])
def test_bad_normalizers(backend: str, call, bad: np.ndarray, words: str) -> None:  # noqa: ANN001
    t = np.arange(6.0).reshape(3, 2)
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        call(LINEAR[0], t, t + 1.0, normalizer=bad.astype(np.float32 if backend == "keras" else np.float64))


@pytest.mark.parametrize("backend,call", BACKENDS, ids=[b for b, _ in BACKENDS])
@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_reductions_without_a_normalizer(backend: str, call, reduction: str) -> None:  # noqa: ANN001
    t = np.arange(6.0).reshape(3, 2)
    with pytest.raises(ValueError, match="has none that adds up"):
        call(LINEAR[0], t, t + 1.0, reduction=reduction, normalizer=np.array(1.0))


@pytest.mark.parametrize("name", LINEAR)
def test_zero_normalizer_gives_zero_with_zero_gradient(name: str) -> None:
    w = window()
    mask = np.zeros_like(w["mask"])
    v, g = mnp.value_and_grad(row(name).spec, w["y_true"], w["y_pred"], mask=mask, normalizer=0.0)
    assert v == 0.0 and not np.any(g["y_pred"])
    assert mnp.normalizer(name, w["y_true"], mask=mask) == 0.0
    torch = pytest.importorskip("torch")
    from mse_adapters import torch as mt

    p = torch.as_tensor(w["y_pred"]).requires_grad_(True)
    out = getattr(mt, row(name).torch)()(p, torch.as_tensor(w["y_true"]), mask=torch.as_tensor(mask),
                                         normalizer=torch.tensor(0.0, dtype=torch.float64))
    (gt,) = torch.autograd.grad(out, p)
    assert float(out.detach()) == 0.0 and not bool(gt.any())


def test_axis_name_outside_a_mapped_context() -> None:
    pytest.importorskip("jax")
    from mse_adapters import jax as mjax

    with pytest.raises(ValueError, match="axis_name='batch' is not bound"):
        mjax.mse(np.zeros(3), np.zeros(3), axis_name="batch")
    with pytest.raises(ValueError, match="axis_name='batch' is not bound"):
        mjax.normalizer("mse", np.zeros(3), axis_name="batch")
