"""The torch fast paths equal the general pipeline (``mse_adapters.torch.loss``), value and
gradient, for every option each one covers (issue 7, DESIGN §6: a backend may substitute
a fused kernel where the semantics are identical; this file is what makes that safe).

- the plain path: torch's fused kernels (mse, l1, huber, smooth_l1) with no weights or
  masks, every reduction, dtype and shape, the empty batch;
- the squared-error autograd.Function: weights (per element, per output, broadcast),
  sample weights, masks (full and broadcast, with NaN and inf targets under them), missing
  targets, all combined, zero weights, everything masked, the empty batch; reductions sum,
  mean and sum_over_batch_size, MSE and RMSE; float64, float32, float16, bfloat16;
  gradients with respect to the prediction, the target, the weight and the sample weight,
  a second backward (retain_graph) and double backward (create_graph);
- torch.compile(fullgraph=True) of a training step that uses it: no graph break.

Each case also checks that the fast path really ran (the autograd node it leaves).
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mse_adapters.torch as mt  # noqa: E402
from mse_adapters import LossSpec, preset  # noqa: E402
from tests.conformance.harness import TOLERANCE, assert_close  # noqa: E402

DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16,
          "bfloat16": torch.bfloat16}
SQUARE_NODE = "SquareLossBackward"
GENERAL = mt.loss  # the general pipeline


def general(spec):
    return lambda **kw: GENERAL(spec, **kw)


@pytest.fixture
def fast_only(monkeypatch):
    """Within the test, a call that falls back to the general pipeline fails: the values
    compared below really come from the fast paths (also for the small inputs that the
    square path leaves to the general pipeline in normal use)."""

    def fail(*args, **kwargs):
        raise AssertionError("the general pipeline ran where a fast path applies")

    monkeypatch.setattr(mt, "loss", fail)
    monkeypatch.setattr(mt, "SQUARE_MIN_NUMEL", 0)


def _tensors(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    p = t + torch.randn(shape, generator=g, dtype=torch.float64)
    if p.numel():
        p.view(-1)[0] = t.view(-1)[0]  # an exact zero residual
    return p.to(dtype), t.to(dtype)


def _run(fn, args: dict, wrt: tuple[str, ...], cotangent: float = 1.0, retain: bool = False):
    """fn(**args) and the gradients of sum(cotangent * out) with respect to ``wrt``."""
    args = {k: (v.detach().clone().requires_grad_(k in wrt) if isinstance(v, torch.Tensor)
                and v.dtype.is_floating_point else v) for k, v in args.items()}
    out = fn(**args)
    # a non-uniform cotangent tests every entry's gradient of an unreduced loss
    ct = cotangent
    if out.numel() > 1:
        ct = cotangent * torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)
    grads = torch.autograd.grad((out * ct).sum(), [args[k] for k in wrt], retain_graph=retain,
                                allow_unused=True)
    return out, dict(zip(wrt, grads)), args


def _compare(fast_out, fast_grads, gen_out, gen_grads, dtype: str, what: str):
    assert fast_out.dtype == gen_out.dtype and fast_out.shape == gen_out.shape, what
    ref = gen_out.detach().double().numpy()
    assert_close(fast_out.detach().double().numpy(), ref, dtype, f"{what} value")
    floor = 0.1 * max(1.0, float(np.max(np.abs(ref), initial=0.0)))
    for k, g in gen_grads.items():
        f = fast_grads[k]
        g = torch.zeros(()) if g is None else g
        f = torch.zeros(()) if f is None else f
        assert f.dtype == g.dtype, f"{what} d/d{k} dtype"
        assert_close(f.double().numpy(), g.double().numpy(), dtype, f"{what} d/d{k}", floor)


# -- the plain path ------------------------------------------------------------------------

PLAIN_SPECS = {
    "mse": preset("mse"),
    "mae": preset("mae"),
    "huber": preset("huber", delta=0.7),
    "smooth_l1": preset("smooth_l1", beta=0.5),
    "smooth_l1_beta0": preset("smooth_l1", beta=0.0),
}


@pytest.mark.parametrize("name", list(PLAIN_SPECS))
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "sum_over_batch_size"])
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", [(7,), (5, 3), (2, 3, 4), (0, 3)])
def test_plain_path_equals_general(fast_only, name, reduction, dtype, shape):
    spec = PLAIN_SPECS[name].replace(reduction=reduction)
    p, t = _tensors(shape, DTYPES[dtype])
    module = mt.Loss(spec)
    assert module._fast.plain is not None
    args = {"input": p, "target": t}
    fo, fg, _ = _run(module, args, ("input", "target"))
    go, gg, _ = _run(general(spec), args, ("input", "target"))
    _compare(fo, fg, go, gg, dtype, f"{name}-{reduction}")


def test_plain_path_promotes_integers_and_checks_shapes(fast_only):
    spec = preset("mse")
    p = torch.tensor([[1, 2], [3, 5]])
    t = torch.tensor([[1, 0], [3, 4]])
    assert torch.equal(mt.Loss(spec)(p, t), GENERAL(spec, p, t))
    assert mt.Loss(spec)(p, t).dtype == torch.get_default_dtype()
    with pytest.raises(ValueError, match=r"input shape \(3,\) and target shape \(3, 1\)"):
        mt.MSELoss()(torch.zeros(3), torch.zeros(3, 1))
    with pytest.raises(TypeError):
        mt.MSELoss()([1.0, 2.0], torch.zeros(2))


def test_specs_beyond_the_kernels_take_no_fast_path():
    for spec in (preset("log_cosh"), preset("expectile"), preset("mse", per_sample=True),
                 preset("rmse"), preset("mse", missing="nan"), preset("nmse"),
                 preset("mse", reduction="per_output")):
        assert mt.Loss(spec)._fast.plain is None, spec
    for spec in (preset("mae"), preset("mse", reduction="none"), preset("mse", per_sample=True),
                 preset("mse", reduction="per_sample"), preset("nmse")):
        assert not mt.Loss(spec)._fast.square, spec


# -- the weighted / masked squared-error path ---------------------------------------------

OPTIONS = ("weight_elem", "weight_output", "weight_col", "sample_weight", "sample_weight_col",
           "mask", "mask_output", "missing", "combined", "zero_weights", "all_masked",
           "inf_under_mask")


def _case(option: str, shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0):
    """(spec changes, call arguments, names to differentiate)."""
    g = torch.Generator().manual_seed(seed + 1)
    p, t = _tensors(shape, dtype, seed)

    def u(s, lo, hi):
        return (lo + (hi - lo) * torch.rand(s, generator=g, dtype=torch.float64)).to(dtype)

    kw: dict = {}
    changes: dict = {}
    if option == "weight_elem":
        kw["weight"] = u(shape, 0.5, 2.0)
    elif option == "weight_output":
        kw["weight"] = u(shape[-1:], 0.5, 2.0)
    elif option == "weight_col":
        kw["weight"] = u(shape[:1] + (1,) * (len(shape) - 1), 0.5, 2.0)
    elif option == "sample_weight":
        kw["sample_weight"] = u(shape[:1], 0.5, 3.0)
    elif option == "sample_weight_col":
        kw["sample_weight"] = u(shape[:1] + (1,) * (len(shape) - 1), 0.5, 3.0)
    elif option in ("mask", "combined", "inf_under_mask"):
        mask = torch.rand(shape, generator=g) > 0.3
        t = torch.where(mask, t, float("inf") if option == "inf_under_mask" else float("nan"))
        kw["mask"] = mask
        if option == "combined":
            kw["weight"] = u(shape[-1:], 0.5, 2.0)
            kw["sample_weight"] = u(shape[:1], 0.5, 3.0)
            t = torch.where(torch.rand(shape, generator=g) > 0.8, float("nan"), t)
            changes["missing"] = "nan"
    elif option == "mask_output":
        kw["mask"] = torch.arange(shape[-1]) % 2 == 0
    elif option == "missing":
        t = torch.where(torch.rand(shape, generator=g) > 0.7, float("nan"), t)
        changes["missing"] = "nan"
    elif option == "zero_weights":
        kw["weight"] = torch.zeros(shape, dtype=dtype)
    elif option == "all_masked":
        kw["mask"] = torch.zeros(shape, dtype=torch.bool)
        t = torch.full(shape, float("nan"), dtype=dtype)
    wrt = ("input", "target") + tuple(k for k in ("weight", "sample_weight") if k in kw)
    return changes, {"input": p, "target": t, **kw}, wrt


def _square_specs():
    for name in ("mse", "rmse"):
        for reduction in ("sum", "mean", "sum_over_batch_size"):
            try:
                yield f"{name}-{reduction}", preset(name, reduction=reduction)
            except ValueError:
                continue  # RMSE of a sum


SQUARE_SPECS = dict(_square_specs())


@pytest.mark.parametrize("spec_name", list(SQUARE_SPECS))
@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_square_path_equals_general(fast_only, spec_name, option, dtype):
    changes, args, wrt = _case(option, (5, 3), DTYPES[dtype])
    spec = SQUARE_SPECS[spec_name].replace(**changes)
    module = mt.Loss(spec)
    assert module._fast.square
    fo, fg, _ = _run(module, args, wrt, cotangent=1.7)
    go, gg, _ = _run(general(spec), args, wrt, cotangent=1.7)
    _compare(fo, fg, go, gg, dtype, f"{spec_name}-{option}")
    if DTYPES[dtype] in (torch.float32, torch.float64):  # half inputs: a cast node comes last
        assert type(fo.grad_fn).__name__ == SQUARE_NODE


@pytest.mark.parametrize("shape", [(6,), (2, 3, 4), (0, 3), (1, 1)])
@pytest.mark.parametrize("option", ["weight_output", "mask", "combined", "sample_weight"])
def test_square_path_shapes(fast_only, shape, option):
    if option == "combined" and len(shape) == 1:
        pytest.skip("a 1-D prediction has no batch axis apart from its only axis")
    changes, args, wrt = _case(option, shape, torch.float64)
    spec = preset("mse").replace(**changes)
    fo, fg, _ = _run(mt.Loss(spec), args, wrt)
    go, gg, _ = _run(general(spec), args, wrt)
    _compare(fo, fg, go, gg, "float64", f"{option}-{shape}")


def test_square_path_non_contiguous_and_large(fast_only):
    # a transposed prediction (the select views the residual's bits) and enough elements
    # for the pairwise sums to matter in float32
    g = torch.Generator().manual_seed(3)
    t = torch.randn(300, 1000, generator=g)
    p = (t + torch.randn(300, 1000, generator=g)).T.contiguous().T
    mask = torch.rand(300, 1000, generator=g) > 0.5
    t = torch.where(mask, t, float("nan"))
    w = torch.rand(1000, generator=g)
    args = {"input": p, "target": t, "weight": w, "mask": mask}
    wrt = ("input", "target", "weight")
    fo, fg, _ = _run(mt.MSELoss(), args, wrt)
    ref = {k: (v.double() if isinstance(v, torch.Tensor) and v.dtype.is_floating_point else v)
           for k, v in args.items()}
    go, gg, _ = _run(general(preset("mse")), ref, wrt)
    assert type(fo.grad_fn).__name__ == SQUARE_NODE
    rtol = TOLERANCE["float32"][0]
    assert abs(fo.item() - go.item()) <= rtol * abs(go.item())
    for k in wrt:
        assert_close(fg[k].double().numpy(), gg[k].numpy(), "float32", k)


def test_square_path_functional_forms(fast_only):
    changes, args, wrt = _case("combined", (5, 3), torch.float32)
    fo, fg, _ = _run(lambda **kw: mt.mse_loss(**kw, missing="nan"), args, wrt)
    go, gg, _ = _run(general(preset("mse", missing="nan")), args, wrt)
    assert type(fo.grad_fn).__name__ == SQUARE_NODE
    _compare(fo, fg, go, gg, "float32", "mse_loss")
    fo, fg, _ = _run(lambda **kw: mt.rmse_loss(**kw, missing="nan"), args, wrt)
    go, gg, _ = _run(general(preset("rmse", missing="nan")), args, wrt)
    _compare(fo, fg, go, gg, "float32", "rmse_loss")


def test_square_path_constructor_buffers(fast_only):
    changes, args, wrt = _case("combined", (5, 3), torch.float64)
    module = mt.MSELoss(missing="nan", weight=args["weight"], mask=args["mask"])
    call = {"input": args["input"], "target": args["target"], "sample_weight": args["sample_weight"]}
    fo, fg, _ = _run(module, call, ("input", "target", "sample_weight"))
    go, gg, _ = _run(lambda **kw: GENERAL(preset("mse", missing="nan"), **kw, weight=args["weight"],
                                          mask=args["mask"]), call, ("input", "target", "sample_weight"))
    _compare(fo, fg, go, gg, "float64", "buffers")


@pytest.mark.parametrize("option", ["weight_elem", "mask", "combined"])
def test_square_path_second_and_double_backward(fast_only, option):
    changes, args, wrt = _case(option, (4, 3), torch.float64)
    spec = preset("rmse").replace(**changes)
    # a second backward through the same graph (retain_graph=True)
    out, first, leaves = _run(mt.Loss(spec), args, wrt, retain=True)
    second = torch.autograd.grad(out, [leaves[k] for k in wrt])
    for k, g in zip(wrt, second):
        torch.testing.assert_close(g, first[k], rtol=1e-12, atol=1e-14)
    # double backward: the Hessian-vector product is the general pipeline's
    def hvp(fn):
        leaves = {k: (v.detach().clone().requires_grad_(k in wrt)
                      if isinstance(v, torch.Tensor) and v.dtype.is_floating_point else v)
                  for k, v in args.items()}
        out = fn(**leaves)
        grads = torch.autograd.grad(out, [leaves[k] for k in wrt], create_graph=True)
        vec = sum((g * torch.linspace(0.5, 1.5, g.numel(), dtype=g.dtype).reshape(g.shape)).sum()
                  for g in grads)
        return torch.autograd.grad(vec, [leaves[k] for k in wrt], allow_unused=True)

    fast = hvp(mt.Loss(spec))
    slow = hvp(general(spec))
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"weight": torch.tensor([1.0, -1.0, 2.0])}, "weight must be non-negative"),
        ({"weight": torch.tensor([1.0, float("nan"), 2.0])}, "weight must be finite"),
        ({"weight": torch.tensor([1.0, float("inf"), 2.0])}, "weight must be finite"),
        ({"sample_weight": -torch.ones(5)}, "sample_weight must be non-negative"),
        ({"mask": torch.tensor([0.0, 2.0, 1.0])}, "mask must be boolean"),
        ({"weight": torch.ones(4)}, "does not broadcast"),
        ({"sample_weight": torch.ones(3)}, "not aligned with the leading axes"),
    ],
)
def test_square_path_raises_what_the_general_path_raises(kwargs, match):
    p, t = _tensors((5, 3), torch.float32)
    with pytest.raises(ValueError, match=match):
        mt.MSELoss()(p, t, **kwargs)
    with pytest.raises(ValueError, match=match):
        GENERAL(preset("mse"), p, t, **kwargs)


def test_modules_with_fast_paths_pickle_and_copy():
    for module in (mt.MSELoss(), mt.HuberLoss(delta=0.3), mt.MSELoss(weight=torch.tensor([1.0, 2.0]))):
        for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
            p, t = _tensors((4, 2), torch.float32)
            assert torch.equal(clone(p, t), module(p, t))
            assert clone._fast.spec == module.spec


def test_square_path_in_a_compiled_training_step_has_no_graph_break(monkeypatch):
    monkeypatch.setattr(mt, "SQUARE_MIN_NUMEL", 0)
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x = torch.randn(32, 4)
    y = torch.randn(32, 3)
    mask = torch.rand(32, 3) > 0.3
    y = torch.where(mask, y, float("nan"))
    w = torch.rand(3) + 0.5
    loss_fn = mt.MSELoss()

    def step(x, y, w, mask):
        return loss_fn(model(x), y, weight=w, mask=mask)

    def grads(fn):
        model.zero_grad()
        out = fn(x, y, w, mask)
        out.backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    eager_out = step(x, y, w, mask)
    assert type(eager_out.grad_fn).__name__ == SQUARE_NODE  # eager: the fast path
    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True)  # raises on a graph break
    v1, g1 = grads(compiled)
    v2, g2 = grads(step)
    torch.testing.assert_close(v1, v2, rtol=1e-5, atol=1e-6)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fast_paths_are_chosen_once_per_spec():
    a, b = mt.MSELoss(), mt.MSELoss()
    assert a._fast is b._fast  # one plan per spec, built at construction
    assert mt.Loss(LossSpec())._fast is a._fast


def test_small_inputs_take_the_general_pipeline():
    p, t = _tensors((5, 3), torch.float32)
    w = torch.rand(5, 3)
    assert p.numel() < mt.SQUARE_MIN_NUMEL
    out = mt.MSELoss()(p.requires_grad_(), t, weight=w)
    assert type(out.grad_fn).__name__ != SQUARE_NODE
    big_p, big_t = _tensors((mt.SQUARE_MIN_NUMEL,), torch.float32)
    out = mt.MSELoss()(big_p.requires_grad_(), big_t, weight=torch.rand(mt.SQUARE_MIN_NUMEL))
    assert type(out.grad_fn).__name__ == SQUARE_NODE
