"""The cost of the exact data-parallel loss against the naive one in a DDP step (CPU, gloo,
2 local processes): forward, loss, backward (with DDP's gradient all-reduce) of a small
MLP, per rank, for a masked MSE: ``MSELoss()(p, t, mask=m)`` (per-rank mean) against
``MSELoss(process_group=WORLD)`` (one more all-reduce of two scalars in the forward).
Prints the median step times; asserts nothing.

Run: ``python benchmarks/bench_ddp.py [--out FILE]`` (starts its own 2 processes on 127.0.0.1).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from mse_adapters.torch import MSELoss

SIZES = ((256, 16), (4096, 64))  # (rows per rank, outputs)
STEPS = 150


def worker() -> None:
    dist.init_process_group("gloo", timeout=timedelta(seconds=120))
    torch.set_num_threads(1)
    rank = dist.get_rank()
    out = []
    for rows, d in SIZES:
        torch.manual_seed(0)
        net = nn.parallel.DistributedDataParallel(nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, d)))
        g = torch.Generator().manual_seed(rank)
        x, y = torch.randn(rows, 64, generator=g), torch.randn(rows, d, generator=g)
        m = torch.rand(rows, d, generator=g) < (0.2 if rank == 0 else 0.9)
        fns = {"naive": MSELoss(), "exact": MSELoss(process_group=dist.group.WORLD)}
        times: dict[str, list[float]] = {k: [] for k in fns}
        for i in range(STEPS + 10):  # interleaved: the machine's drift hits both alike
            for label, fn in fns.items():
                dist.barrier()
                t0 = time.perf_counter()
                fn(net(x), y, mask=m).backward()
                if i >= 10:
                    times[label].append(time.perf_counter() - t0)
                net.zero_grad(set_to_none=True)
        res = {k: statistics.median(v) for k, v in times.items()}
        out.append((rows, d, res["naive"], res["exact"]))
    if rank == 0:
        lines = ["A DDP step (2 processes, gloo, one thread each; forward, masked MSE, backward), median ms:", "",
                 "| rows per rank | outputs | naive (per-rank mean) | exact (process_group=) | exact / naive |",
                 "|---|---|---|---|---|"]
        lines += [f"| {rows} | {d} | {1e3 * a:.3f} | {1e3 * b:.3f} | {b / a:.3f} |" for rows, d, a, b in out]
        text = "\n".join(lines) + "\n"
        print(text)
        if os.environ.get("BENCH_DDP_OUT"):
            with open(os.environ["BENCH_DDP_OUT"], "w", encoding="utf-8") as f:
                f.write(text)
    dist.barrier()  # both ranks done before the group goes (a rank leaving early aborts the other)
    dist.destroy_process_group()


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="", help="also write the table (Markdown) here")
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, __file__], env={
        **os.environ, "RANK": str(r), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
        "OMP_NUM_THREADS": "1", "BENCH_DDP_OUT": args.out}) for r in range(2)]
    try:
        codes = [p.wait(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    if any(codes):
        raise SystemExit(f"a rank failed: {codes}")


if __name__ == "__main__":
    worker() if "RANK" in os.environ else main()
