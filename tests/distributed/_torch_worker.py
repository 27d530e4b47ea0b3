"""One rank of the torch data-parallel tests (started by test_torch_ddp.py): for every case,
one step of DDP, or of FSDP2 (``fully_shard``), with the loss' process_group (and a
4-micro-batch window without gradient sync and with normalizer=), its gradient written to
``outdir``; a finalized loss over a window must raise.

Arguments: rank, world size, port, ``outdir``, engine (``ddp`` or ``fully_shard``)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from mse_adapters import torch as mt
from mse_adapters._presets import row
from tests.distributed._cases import LARGE, MICRO, OUTPUT_WEIGHT, cases, large_cases, model_init, shard


def build(name: str, reduction: str | None, group: object) -> nn.Module:
    cls = getattr(mt, row(name).torch)
    kw = {} if reduction is None else {"reduction": reduction}
    return cls(weight=torch.as_tensor(OUTPUT_WEIGHT), process_group=group, **kw)


def wrap(engine: str, model: nn.Module) -> tuple[nn.Module, Callable[[], contextlib.AbstractContextManager],
                                                Callable[[torch.Tensor], torch.Tensor]]:
    """``model`` under ``engine``: the module to call, a context without gradient sync (the
    window's non-last micro-batches) and a parameter's full gradient on this rank."""
    if engine == "ddp":
        ddp = nn.parallel.DistributedDataParallel(model)
        return ddp, ddp.no_sync, lambda p: p.grad
    from torch.distributed.fsdp import fully_shard

    fsdp = fully_shard(model)  # FSDP2 on CPU over gloo: parameters and gradients are sharded DTensors

    @contextlib.contextmanager
    def no_sync() -> Iterator[None]:
        fsdp.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            fsdp.set_requires_gradient_sync(True)

    return fsdp, no_sync, lambda p: p.grad.full_tensor()


def main() -> None:
    rank, world, port, outdir = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    engine = sys.argv[5]
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=60))
    group = dist.group.WORLD
    results: dict[str, np.ndarray] = {}
    all_cases = [(c, 1) for c in cases()] + [(c, LARGE) for c in large_cases()]
    for (name, reduction, accumulate), scale in all_cases:
        w, b = model_init()
        model = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            model.weight.copy_(torch.as_tensor(w))
            model.bias.copy_(torch.as_tensor(b))
        wrapped, no_sync, grad = wrap(engine, model)
        loss_fn = build(name, reduction, group)
        key = ("large-" if scale > 1 else "") + f"{name}-{reduction}-{accumulate}"
        micros = [shard(world, rank, m, scale=scale) for m in range(MICRO if accumulate else 1)]
        data = [{k: torch.as_tensor(v) for k, v in mb.items()} for mb in micros]
        if accumulate and loss_fn.spec.finalize != "identity":  # pragma: no cover - not in cases()
            continue
        window = None
        if accumulate:
            window = sum(loss_fn.normalizer(d["target"], sample_weight=d["sample_weight"], mask=d["mask"])
                         for d in data)
        value = 0.0
        for i, d in enumerate(data):
            last = i == len(data) - 1
            with contextlib.nullcontext() if last else no_sync():
                out = wrapped(d["x"])
                loss = loss_fn(out, d["target"], sample_weight=d["sample_weight"], mask=d["mask"],
                               normalizer=window)
                loss.backward()
                value += float(loss.detach())
        results[key + "-weight"] = grad(model.weight).numpy()
        results[key + "-bias"] = grad(model.bias).numpy()
        results[key + "-value"] = np.array(value)
    # a finalized loss cannot be summed over a window: its error names the alternatives
    try:
        build("rmse", None, group)(torch.zeros(2, 3), torch.zeros(2, 3), normalizer=torch.tensor(1.0))
    except ValueError as e:
        results["rmse-window-error"] = np.array(str(e))
    np.savez(f"{outdir}/rank{rank}.npz", **results)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
