"""Exact masked losses under DistributedDataParallel (CPU, gloo).

Two ranks hold uneven shares of a masked regression batch (3 and 24 valid targets). DDP
averages the ranks' gradients, so a per-rank masked mean (``MSELoss()(p, t, mask=m)`` on
each rank) gives the gradient of the average of two ratios, not of the global masked mean.
``MSELoss(process_group=dist.group.WORLD)`` all-reduces the numerator and the normalizer
(one collective of two scalars), returns the global loss on every rank, and its gradient
after DDP's averaging is the single-process gradient on the global batch. The second part
accumulates over 4 micro-batches with ``no_sync`` and ``normalizer=``, the window's
normalizer from ``loss_fn.normalizer(...)``.

Run: ``torchrun --standalone --nproc-per-node=2 examples/ddp_masked_regression.py``, or
``python examples/ddp_masked_regression.py`` (it then starts its own 2 gloo processes on
127.0.0.1, with a timeout).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from mse_adapters.torch import MSELoss

VALID = (3, 24)  # valid targets per rank (of 16 x 2 each)


def data(rank: int, micro: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 * rank + micro)
    x = torch.randn(16, 4, generator=g)
    y = x @ torch.tensor([[1.0, -2.0], [0.5, 0.0], [0.0, 1.0], [2.0, 0.3]]) + 0.1 * torch.randn(16, 2, generator=g)
    mask = torch.zeros(32, dtype=torch.bool)
    mask[torch.randperm(32, generator=g)[:VALID[rank]]] = True
    return x, y, mask.reshape(16, 2)


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(4, 2)


def grad_of(m: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in m.parameters()])


def single_process(world: int, micros: int) -> torch.Tensor:
    """The gradient of the masked mean over the global batch (every rank, every micro-batch)."""
    parts = [data(r, i) for i in range(micros) for r in range(world)]
    x, y, m = (torch.cat([p[k] for p in parts]) for k in range(3))
    net = model()
    MSELoss()(net(x), y, mask=m).backward()
    return grad_of(net)


def ddp_step(loss_fn: nn.Module, micros: int, window: bool) -> torch.Tensor:
    rank = dist.get_rank()
    net = model()
    ddp = nn.parallel.DistributedDataParallel(net)
    batches = [data(rank, i) for i in range(micros)]
    n = sum(loss_fn.normalizer(y, mask=m) for _, y, m in batches) if window else None
    for i, (x, y, m) in enumerate(batches):
        with ddp.no_sync() if i < micros - 1 else contextlib.nullcontext():
            loss = loss_fn(ddp(x), y, mask=m, normalizer=n) if window else loss_fn(ddp(x), y, mask=m) / micros
            loss.backward()
    return grad_of(net)


def worker() -> None:
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    rank, world = dist.get_rank(), dist.get_world_size()
    group = dist.group.WORLD
    rows = []
    for micros in (1, 4):
        want = single_process(world, micros)
        naive = ddp_step(MSELoss(), micros, window=False)
        exact = ddp_step(MSELoss(process_group=group), micros, window=micros > 1)
        rows.append((micros, (naive - want).abs().max().item(), (exact - want).abs().max().item(),
                     want.abs().max().item()))
    if rank == 0:
        print(f"{world} ranks, valid targets per rank {VALID[:world]}; max |grad - single-process grad|:")
        print(f"{'micro-batches':>14} {'naive (per-rank mean)':>22} {'exact (process_group)':>22} {'max |grad|':>11}")
        for micros, naive, exact, scale in rows:
            print(f"{micros:>14} {naive:>22.3e} {exact:>22.3e} {scale:>11.3f}")
    dist.destroy_process_group()


def spawn(world: int = 2, timeout: float = 120.0) -> None:
    """Start ``world`` copies of this script as torchrun would (env:// rendezvous on 127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, __file__], env={
        **os.environ, "RANK": str(r), "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
        "LOCAL_RANK": str(r), "OMP_NUM_THREADS": "1"}) for r in range(world)]
    try:
        codes = [p.wait(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    if any(codes):
        raise SystemExit(f"a rank failed: exit codes {codes}")


if __name__ == "__main__":
    if "RANK" in os.environ:
        worker()
    else:
        spawn()
