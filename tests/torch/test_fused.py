"""The torch fast paths equal the general pipeline (``mse_adapters.torch.loss``) for every
option each covers; this file is what makes substituting a kernel safe (docs/design.md,
"Fast paths").

- the plain path: torch's own kernels (MSE, L1, Huber, SmoothL1) with no weights or masks,
  every reduction, dtype and shape, the empty batch;
- the fused path (``FusedLoss``): every elementwise preset of the preset table x weights
  (per element, per output, broadcast), sample weights, masks (full and broadcast, NaN and
  inf targets under them), missing targets, all combined, zero weights, everything masked x
  every reduction (none, sum, mean, sum_over_batch_size, per_sample, per_output) and RMSE's
  square root; float64 for every case and one of float32/float16/bfloat16 in rotation;
  gradients with respect to the prediction, the target, the weight and the sample weight;
  a second backward (retain_graph); double backward (create_graph) against the general
  pipeline and the Hessian-vector product against the float64 reference, at r = 0 and at
  |r| = delta (beta);
- penalty parameters as tensors; torch.compile(fullgraph=True) of a training step.

Each case also checks that the fast path really ran (the autograd node it leaves).
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mse_adapters.numpy as mnp  # noqa: E402
import mse_adapters.torch as mt  # noqa: E402
from mse_adapters import LossSpec, preset  # noqa: E402
from mse_adapters._penalties import PENALTY_TABLE  # noqa: E402
from mse_adapters._presets import PRESET_TABLE  # noqa: E402
from mse_adapters._presets import row as preset_row  # noqa: E402
from tests.conformance.harness import assert_close  # noqa: E402

DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16,
          "bfloat16": torch.bfloat16}
FUSED_NODE = "FusedLossBackward"
GENERAL = mt.loss  # the general pipeline
REDUCTIONS = ("none", "sum", "mean", "sum_over_batch_size", "per_sample", "per_output")
#: A non-default value of every penalty parameter of the table: half its default (delta and
#: beta 0.5: a point of the residuals sits on the kink; tau 0.25; Barron's alpha 0.5, scale 0.5).
PARAM_VALUES = {q.name: 0.5 * getattr(LossSpec(), q.name) for pen in PENALTY_TABLE.values() for q in pen.params}


def general(spec):
    return lambda **kw: GENERAL(spec, **kw)


def _with_params(spec: LossSpec, name: str) -> LossSpec:
    """The preset ``name``'s spec with its parameters (those its bindings take) at PARAM_VALUES."""
    return spec.replace(**{n: PARAM_VALUES[n] for n in preset_row(name).params})


def _spec(name: str, **changes) -> LossSpec | None:
    try:
        return _with_params(preset(name, **changes), name)
    except ValueError:  # a combination the contract does not define (RMSE of a sum)
        return None


@pytest.fixture
def fast_only(monkeypatch):
    """Within the test, a call whose plan chose the general pipeline fails: the values
    compared below really come from the fast paths."""

    def fail(*args, **kwargs):
        raise AssertionError("the general pipeline ran where a fast path applies")

    monkeypatch.setattr(mt, "_pipeline", fail)


def _tensors(shape, dtype, seed=0):
    """(pred, target) with an exact zero residual and one of exactly 0.5 (= every parameter
    of PARAM_VALUES for delta and beta: the kink of Huber and Smooth L1)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    p = t + torch.randn(shape, generator=g, dtype=torch.float64)
    if p.numel():
        p.view(-1)[0] = t.view(-1)[0]
    if p.numel() > 1:
        t.view(-1)[1], p.view(-1)[1] = 0.25, 0.75
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

#: The presets whose default spec torch's own kernels compute (with a non-default parameter).
PLAIN = [r.name for r in PRESET_TABLE if mt._plain_path(_with_params(r.spec, r.name)) is not None]


def test_the_plain_path_covers_the_torch_nn_built_ins():
    assert set(PLAIN) >= {"mse", "mae", "huber", "smooth_l1"}
    assert mt._plain_path(preset("smooth_l1", beta=0.0)) is not None  # |r|


@pytest.mark.parametrize("name", PLAIN + ["smooth_l1_beta0"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "sum_over_batch_size"])
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", [(7,), (5, 3), (2, 3, 4), (0, 3)])
def test_plain_path_equals_general(fast_only, name, reduction, dtype, shape):
    spec = (preset("smooth_l1", beta=0.0) if name == "smooth_l1_beta0" else _spec(name)).replace(reduction=reduction)
    p, t = _tensors(shape, DTYPES[dtype])
    module = mt.Loss(spec)
    assert module._plain is not None
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
        assert mt.Loss(spec)._plain is None, spec
    for spec in (preset("mse", per_sample=True), preset("nmse"), preset("r2"), preset("mse", unit_norm=0.1),
                 preset("mse", multioutput="uniform_average", reduction="mean")):
        assert not mt._fused_path(mt.Loss(spec).spec), spec


# -- the fused path: every elementwise preset x option x reduction -----------------------

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


#: The presets the fused path computes (read from the preset table).
FUSED = [row.name for row in PRESET_TABLE if mt._fused_path(row.spec)]
ROTATION = ("float32", "float16", "bfloat16")


def _fused_params():
    i = 0
    for name in FUSED:
        for reduction in REDUCTIONS:
            if _spec(name, reduction=reduction) is None:
                continue
            for option in OPTIONS:
                for dtype in ("float64", ROTATION[i % len(ROTATION)]):
                    yield pytest.param(name, reduction, option, dtype, id=f"{name}-{reduction}-{option}-{dtype}")
                i += 1


def test_every_elementwise_preset_has_a_fused_path():
    elementwise = [row.name for row in PRESET_TABLE
                   if row.spec.penalty in PENALTY_TABLE and row.spec.transform is None
                   and row.spec.finalize in ("identity", "sqrt") and not row.spec.unit_norm]
    assert elementwise and FUSED == elementwise
    assert set(FUSED) >= {"mse", "mae", "rmse", "huber", "smooth_l1", "log_cosh", "expectile",
                          "pseudo_huber", "quantile"}


@pytest.mark.parametrize("name,reduction,option,dtype", list(_fused_params()))
def test_fused_path_equals_general(fast_only, name, reduction, option, dtype):
    changes, args, wrt = _case(option, (5, 3), DTYPES[dtype])
    spec = _spec(name, reduction=reduction).replace(**changes)
    module = mt.Loss(spec)
    assert mt._fused_path(module.spec)
    fo, fg, _ = _run(module, args, wrt, cotangent=1.7)
    go, gg, _ = _run(general(spec), args, wrt, cotangent=1.7)
    _compare(fo, fg, go, gg, dtype, f"{name}-{reduction}-{option}")
    if DTYPES[dtype] in (torch.float32, torch.float64):  # half inputs: a cast node comes last
        assert type(fo.grad_fn).__name__ == FUSED_NODE


#: (a 1-D prediction has no batch axis apart from its only axis: no "combined" for it)
SHAPE_OPTIONS = [(shape, option) for shape in [(6,), (2, 3, 4), (0, 3), (1, 1)]
                 for option in ["weight_output", "mask", "combined", "sample_weight"]
                 if not (option == "combined" and len(shape) == 1)]


@pytest.mark.parametrize("shape,option", SHAPE_OPTIONS)
@pytest.mark.parametrize("name", ["mse", "huber", "quantile"])
def test_fused_path_shapes(fast_only, shape, option, name):
    changes, args, wrt = _case(option, shape, torch.float64)
    for reduction in REDUCTIONS:
        spec = _spec(name, reduction=reduction).replace(**changes)
        fo, fg, _ = _run(mt.Loss(spec), args, wrt)
        go, gg, _ = _run(general(spec), args, wrt)
        _compare(fo, fg, go, gg, "float64", f"{name}-{reduction}-{option}-{shape}")


@pytest.mark.parametrize("name", FUSED)
def test_fused_path_non_contiguous_and_large(fast_only, name):
    # a transposed prediction, and enough elements for several blocks (the block scratch,
    # the per-block sums) and for the pairwise sums to matter in float32
    g = torch.Generator().manual_seed(3)
    rows = mt._torch_fast.BLOCK // 500 + 7
    t = torch.randn(rows, 1000, generator=g)
    p = (t + torch.randn(rows, 1000, generator=g)).T.contiguous().T
    mask = torch.rand(rows, 1000, generator=g) > 0.5
    t = torch.where(mask, t, float("nan"))
    w = torch.rand(1000, generator=g)
    args = {"input": p, "target": t, "weight": w, "mask": mask}
    wrt = ("input", "target", "weight")
    for reduction in ("mean", "per_sample"):
        spec = _spec(name, reduction=reduction)
        if spec is None:
            continue
        fo, fg, _ = _run(mt.Loss(spec), args, wrt)
        ref = {k: (v.double() if isinstance(v, torch.Tensor) and v.dtype.is_floating_point else v)
               for k, v in args.items()}
        go, gg, _ = _run(general(spec), ref, wrt)
        assert type(fo.grad_fn).__name__ == FUSED_NODE
        assert_close(fo.detach().double().numpy(), go.detach().numpy(), "float32", f"{name} value")
        for k in wrt:
            assert_close(fg[k].double().numpy(), gg[k].numpy(), "float32", f"{name} d/d{k}")


def test_fused_path_functional_forms(fast_only):
    changes, args, wrt = _case("combined", (5, 3), torch.float32)
    for row in PRESET_TABLE:
        if row.name not in FUSED:
            continue
        fn = getattr(mt, row.torch_fn)
        spec = _with_params(preset(row.name, missing="nan"), row.name)
        params = {k: getattr(spec, k) for k in row.params}
        fo, fg, _ = _run(lambda fn=fn, params=params, **kw: fn(**kw, missing="nan", **params), args, wrt)
        go, gg, _ = _run(general(spec), args, wrt)
        assert type(fo.grad_fn).__name__ == FUSED_NODE, row.torch_fn
        _compare(fo, fg, go, gg, "float32", row.torch_fn)


def test_fused_path_constructor_buffers(fast_only):
    changes, args, wrt = _case("combined", (5, 3), torch.float64)
    for cls, name in ((mt.MSELoss, "mse"), (mt.QuantileLoss, "quantile")):
        module = cls(missing="nan", weight=args["weight"], mask=args["mask"])
        call = {"input": args["input"], "target": args["target"], "sample_weight": args["sample_weight"]}
        fo, fg, _ = _run(module, call, ("input", "target", "sample_weight"))
        go, gg, _ = _run(lambda name=name, **kw: GENERAL(preset(name, missing="nan"), **kw, weight=args["weight"],
                                              mask=args["mask"]), call, ("input", "target", "sample_weight"))
        _compare(fo, fg, go, gg, "float64", f"{name} buffers")


def _hvp(fn, args, wrt, direction_of):
    leaves = {k: (v.detach().clone().requires_grad_(k in wrt)
                  if isinstance(v, torch.Tensor) and v.dtype.is_floating_point else v)
              for k, v in args.items()}
    out = fn(**leaves)
    ct = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape) if out.numel() > 1 else 1.0
    grads = torch.autograd.grad((out * ct).sum(), [leaves[k] for k in wrt], create_graph=True)
    vec = sum((g * direction_of(g)).sum() for g in grads)
    return out, grads, torch.autograd.grad(vec, [leaves[k] for k in wrt], allow_unused=True)


def _direction(g):
    return torch.linspace(0.5, 1.5, g.numel(), dtype=g.dtype).reshape(g.shape)


def _hvp_params():
    for name in FUSED:
        for reduction in ("mean", "none", "per_output"):
            if _spec(name, reduction=reduction) is not None:
                for option in ("weight_elem", "mask", "combined"):
                    yield pytest.param(name, option, reduction, id=f"{name}-{option}-{reduction}")


@pytest.mark.parametrize("name,option,reduction", list(_hvp_params()))
def test_fused_path_second_and_double_backward(fast_only, name, option, reduction):
    changes, args, wrt = _case(option, (4, 3), torch.float64)
    spec = _spec(name, reduction=reduction).replace(**changes)
    # a second backward through the same graph (retain_graph=True)
    out, first, leaves = _run(mt.Loss(spec), args, wrt, retain=True)
    ct = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape) if out.numel() > 1 else 1.0
    second = torch.autograd.grad((out * ct).sum(), [leaves[k] for k in wrt])
    for k, g in zip(wrt, second):
        assert g.dtype == first[k].dtype == torch.float64
        assert_close(g, first[k].detach(), "float64", f"second backward d/d{k}")
    # double backward: the Hessian-vector product is the general pipeline's...
    fast_out, _, fast = _hvp(mt.Loss(spec), args, wrt, _direction)
    assert type(fast_out.grad_fn).__name__ == FUSED_NODE
    _, _, slow = _hvp(general(spec), args, wrt, _direction)
    for k, a, b in zip(wrt, fast, slow):
        a = torch.zeros(()) if a is None else a
        b = torch.zeros(()) if b is None else b
        assert_close(a.double().numpy(), b.double().numpy(), "float64", f"{name} HVP d/d{k}", 1.0)
    # ...and, with respect to the prediction, the float64 reference's (second-order forward
    # mode, independent of any autograd), at r = 0 and |r| = delta included
    _, (g,), (hv,) = _hvp(mt.Loss(spec), args, ("input",), _direction)
    ct_np = np.linspace(0.5, 1.5, fast_out.numel()).reshape(tuple(fast_out.shape)) if fast_out.numel() > 1 else None
    _, g_ref, hv_ref = mnp.hessian_vector_product(
        spec, args["target"].numpy(), args["input"].detach().numpy(), _direction(g).numpy(),
        weight=None if "weight" not in args else args["weight"].numpy(),
        sample_weight=None if "sample_weight" not in args else args["sample_weight"].numpy(),
        mask=None if "mask" not in args else args["mask"].numpy(), cotangent=ct_np)
    assert_close(g.detach().numpy(), g_ref, "float64", f"{name} gradient vs reference", 1.0)
    assert_close(hv.numpy(force=True), hv_ref, "float64", f"{name} HVP vs reference", 1.0)


@pytest.mark.parametrize("name", [n for n in FUSED if PENALTY_TABLE[preset(n).penalty].params])
def test_tensor_parameters_take_the_fused_path_and_equal_floats(fast_only, name):
    spec = _spec(name)
    changes, args, wrt = _case("combined", (5, 3), torch.float64)
    spec = spec.replace(**changes)
    for param in preset_row(name).params:  # each parameter in turn a tensor
        value = torch.tensor(getattr(spec, param), dtype=torch.float64)
        fo, fg, _ = _run(mt.Loss(spec, params={param: value}), args, wrt)
        assert type(fo.grad_fn).__name__ == FUSED_NODE
        go, gg, _ = _run(general(spec), args, wrt)
        _compare(fo, fg, go, gg, "float64", f"{name} {param} tensor")
        # per output, a parameter that requires grad: its gradient is the reference's
        per_output = torch.tensor([0.5, 1.0, 1.5], dtype=torch.float64) * getattr(spec, param)
        per_output.requires_grad_(True)
        out = mt.Loss(spec, params={param: per_output})(args["input"], args["target"], weight=args["weight"],
                                                   sample_weight=args["sample_weight"], mask=args["mask"])
        assert type(out.grad_fn).__name__ == FUSED_NODE
        (dparam,) = torch.autograd.grad(out, [per_output])
        _, ref = mnp.value_and_grad(spec, args["target"].numpy(), args["input"].numpy(),
                                    weight=args["weight"].numpy(), sample_weight=args["sample_weight"].numpy(),
                                    mask=args["mask"].numpy(), params={param: per_output.detach().numpy()},
                                    wrt=(param,))
        assert_close(dparam.numpy(), ref[param], "float64", f"d/d{param}", 1.0)


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
@pytest.mark.parametrize("cls", [mt.MSELoss, mt.HuberLoss, mt.QuantileLoss])
def test_fused_path_raises_what_the_general_path_raises(kwargs, match, cls):
    p, t = _tensors((5, 3), torch.float32)
    with pytest.raises(ValueError, match=match):
        cls()(p, t, **kwargs)
    with pytest.raises(ValueError, match=match):
        GENERAL(cls().spec, p, t, **kwargs)


def test_modules_with_fast_paths_pickle_and_copy():
    for module in (mt.MSELoss(), mt.HuberLoss(delta=0.3), mt.MSELoss(weight=torch.tensor([1.0, 2.0])),
                   mt.QuantileLoss(tau=torch.tensor([0.1, 0.9]))):
        for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
            p, t = _tensors((4, 2), torch.float32)
            assert torch.equal(clone(p, t), module(p, t))
            assert clone.spec == module.spec and (clone._plain is None) == (module._plain is None)


@pytest.mark.parametrize("cls,option", [(mt.MSELoss, "combined"), (mt.HuberLoss, "mask"),
                                        (mt.QuantileLoss, "combined")])
def test_fused_path_in_a_compiled_training_step_has_no_graph_break(cls, option):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x = torch.randn(32, 4)
    y = torch.randn(32, 3)
    mask = torch.rand(32, 3) > 0.3
    y = torch.where(mask, y, float("nan"))
    w = torch.rand(3) + 0.5 if option == "combined" else None
    loss_fn = cls()

    def step(x, y, w, mask):
        return loss_fn(model(x), y, weight=w, mask=mask)

    def grads(fn):
        model.zero_grad()
        out = fn(x, y, w, mask)
        out.backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    eager_out = step(x, y, w, mask)
    assert type(eager_out.grad_fn).__name__ == FUSED_NODE  # eager: the fast path
    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True)  # raises on a graph break
    v1, g1 = grads(compiled)
    v2, g2 = grads(step)
    assert v1.dtype == v2.dtype
    assert_close(v1.detach(), v2.detach(), "float32", "compiled value")
    for a, b in zip(g1, g2):
        assert a.dtype == b.dtype
        assert_close(a.detach(), b.detach(), "float32", "compiled gradient")


def test_a_plan_is_built_once_per_call_signature(monkeypatch):
    built = []
    build = mt.build
    monkeypatch.setattr(mt, "build", lambda *a: built.append(a[0]) or build(*a))
    f = mt.MSELoss()
    p, t = _tensors((5, 3), torch.float32)
    w, m = torch.rand(5, 3), torch.rand(5, 3) > 0.5
    for _ in range(3):
        f(p, t, weight=w, mask=m)
        mt.mse_loss(p, t, weight=w, mask=m)
    assert len(built) == 2 and len(f._plans) == 1  # the module's plan and the functional form's
    f(p, t, weight=w[0], mask=m)  # another signature: a weight per output
    f(p.double(), t.double(), weight=w, mask=m)  # another dtype
    assert len(built) == 4 and len(f._plans) == 3
    f.reduction = "sum"  # another spec: the module's plans start afresh
    f(p, t, weight=w, mask=m)
    assert len(built) == 5 and len(f._plans) == 1


def test_small_and_large_inputs_take_the_fused_path():
    for shape in ((5, 3), (mt._torch_fast.DIRECT + 1,), (mt._torch_fast.BLOCK * 2 + 3,)):
        p, t = _tensors(shape, torch.float32)
        out = mt.MSELoss()(p.requires_grad_(), t, weight=torch.rand(shape))
        assert type(out.grad_fn).__name__ == FUSED_NODE, shape


def test_the_block_scratch_is_per_thread_and_released():
    import threading

    p, t = _tensors((mt._torch_fast.BLOCK + 11,), torch.float32)
    m = torch.rand(p.shape) > 0.5
    expected = mt.HuberLoss()(p, t, mask=m)
    results = []

    def work():
        results.append(mt.HuberLoss()(p, t, mask=m))
        mt._torch_fast.clear_scratch()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert len(results) == 3 and all(torch.equal(r, expected) for r in results)
