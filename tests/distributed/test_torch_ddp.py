"""torch DDP (2 and 4 local processes) and FSDP2 (``fully_shard``, 2 processes) over gloo on
127.0.0.1, in bounded time: with the loss' ``process_group`` (and, over a 4-micro-batch
window, no gradient sync but on the last and ``normalizer=``) the parameters' gradient after
the engine's averaging (FSDP2: its reduce-scatter, gathered back) equals the single-process
gradient on the global batch, and the loss is the global batch's, for every preset of the
preset table (linear ones with ``mean`` and ``sum_over_batch_size``, RMSE, NMSE and R^2 with
their own reduction), with uneven shards, weights, masks and a rank with no valid element."""

from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)

from torch import nn  # noqa: E402

from tests.conformance.harness import TOLERANCE, assert_close  # noqa: E402
from tests.distributed._cases import LARGE, MICRO, cases, global_batch, large_cases, launch, model_init  # noqa: E402
from tests.distributed._torch_worker import build  # noqa: E402

WORKER = os.path.join(os.path.dirname(__file__), "_torch_worker.py")
#: float32 gradients against the single-process float32 gradient, relative to its largest entry.
RTOL = TOLERANCE["data-parallel"][0]


def reference(name: str, reduction: str | None, world: int, micros: int, scale: int = 1,
              dtype: type = np.float32) -> tuple[float, np.ndarray, np.ndarray]:
    """The single-process loss and gradient on the global batch (all ranks, all micro-batches)."""
    w, b = model_init(dtype)
    model = nn.Linear(w.shape[1], w.shape[0], dtype=torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        model.weight.copy_(torch.as_tensor(w))
        model.bias.copy_(torch.as_tensor(b))
    g = {k: torch.as_tensor(v) for k, v in global_batch(world, micros, dtype, scale).items()}
    fn = build(name, reduction, None).to(model.weight.dtype)
    loss = fn(model(g["x"]), g["target"], sample_weight=g["sample_weight"], mask=g["mask"])
    loss.backward()
    return float(loss.detach()), model.weight.grad.numpy(), model.bias.grad.numpy()


#: (engine, world size): the worker's engines (``fully_shard`` is FSDP2, which runs on CPU over
#: gloo; FSDP1's FullyShardedDataParallel refuses a CPU-only process).
RUNS = [("ddp", 2), ("ddp", 4), ("fully_shard", 2)]


@pytest.fixture(scope="module", params=RUNS, ids=lambda r: f"{r[0]}-world{r[1]}")
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, list[dict]]:
    engine, world = request.param
    out = tmp_path_factory.mktemp(f"{engine}{world}")
    launch(WORKER, world, [str(out), engine], timeout=180)
    return world, [dict(np.load(out / f"rank{r}.npz")) for r in range(world)]


def _relative(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(np.asarray(got, np.float64) - want).max() / max(float(np.abs(want).max()), 1e-300))


def _close(got: np.ndarray, want32: np.ndarray, want64: np.ndarray, what: str) -> None:
    """As exact as one process: within RTOL of the one-process float32 gradient, or (large
    batches, where float32 summation order alone moves a gradient by a few 1e-6) no further
    from the exact float64 gradient than the one-process float32 gradient is, plus RTOL."""
    if _relative(got, want32) <= RTOL:
        return
    err, single = _relative(got, want64), _relative(want32, want64)
    assert err <= single + RTOL, f"{what}: {err:.3g} from the exact gradient, one process {single:.3g}"


#: (preset, reduction, accumulate, rows scale): small shards run the general pipeline, large
#: ones (every rank above 2^14 elements) torch's fused kernels with the group.
DDP_CASES = [(*c, 1) for c in cases()] + [(*c, LARGE) for c in large_cases()]


@pytest.mark.parametrize("name,reduction,accumulate,scale", DDP_CASES, ids=lambda v: str(v))
def test_gradient_is_the_global_batch_gradient(run: tuple[int, list[dict]], name: str, reduction: str | None,
                                               accumulate: bool, scale: int) -> None:
    world, ranks = run
    key = ("large-" if scale > 1 else "") + f"{name}-{reduction}-{accumulate}"
    micros = MICRO if accumulate else 1
    value, gw, gb = reference(name, reduction, world, micros, scale)
    value64, gw64, gb64 = reference(name, reduction, world, micros, scale, np.float64)
    for r, res in enumerate(ranks):
        _close(res[key + "-weight"], gw, gw64, f"{key} weight gradient on rank {r}")
        _close(res[key + "-bias"], gb, gb64, f"{key} bias gradient on rank {r}")
        # the loss is the global batch's on every rank (over a window: the micro-batches' sum)
        assert_close(float(res[key + "-value"]), value64, "float32", f"{key} loss on a rank", floor=1.0)


def test_finalized_loss_over_a_window_is_an_error(run: tuple[int, list[dict]]) -> None:
    text = str(run[1][0]["rmse-window-error"])
    assert "normalizer=" in text and "process_group" in text and "streaming metric" in text


def test_process_group_needs_an_initialised_group() -> None:
    if dist.is_initialized():  # pragma: no cover
        pytest.skip("a process group is initialised in the test process")
    from mse_adapters import torch as mt

    with pytest.raises(ValueError, match="process_group needs an initialised torch.distributed"):
        mt.MSELoss(process_group=object())
    with pytest.raises(ValueError, match="process_group"):
        mt.mse_loss(torch.zeros(2), torch.zeros(2), process_group=object())

