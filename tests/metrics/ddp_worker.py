"""Two torch processes (gloo on 127.0.0.1): uneven batches, masks, rank 1 with no valid
element; every rank writes its synced ``compute()`` values to ``OUT/rank{r}.json``.
Run by tests/metrics/test_distributed.py (``python ddp_worker.py PORT OUT``)."""

from __future__ import annotations

import datetime
import json
import os
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2
BATCHES = {0: [(0, 7), (7, 20), (20, 30)], 1: [(30, 32), (32, 35)]}


def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    y = rng.normal(size=(35, 3)) * 2 + 1
    p = y + rng.normal(size=(35, 3))
    mask = rng.uniform(size=(35, 3)) > 0.25
    mask[30:] = False  # rank 1: nothing valid
    sw = rng.uniform(0.5, 2.0, size=35)
    return {"y": y.astype(np.float32), "p": p.astype(np.float32), "mask": mask, "sw": sw.astype(np.float32)}


def metrics() -> dict[str, tuple[object, str]]:
    """name -> (metric, which option it gets)."""
    from mse_adapters import LossSpec
    from mse_adapters.torch import metrics as tm

    return {"mse_masked": (tm.Metric(LossSpec()), "mask"),
            "r2_raw_masked": (tm.R2Score(multioutput="raw_values"), "mask"),
            "nmse_weighted": (tm.NormalizedMeanSquaredError(num_outputs=3), "sample_weight"),
            "rmse_masked": (tm.RootMeanSquaredError(), "mask"),
            "mae_per_output_masked": (tm.MeanAbsoluteError(num_outputs=3), "mask")}


def run(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=60))
    d = data()
    results = {}
    for name, (m, option) in metrics().items():
        for lo, hi in BATCHES[rank]:
            kw = {"mask": torch.from_numpy(d["mask"][lo:hi])} if option == "mask" else \
                {"sample_weight": torch.from_numpy(d["sw"][lo:hi])}
            m.update(torch.from_numpy(d["p"][lo:hi]), torch.from_numpy(d["y"][lo:hi]), **kw)
        results[name] = np.asarray(m.compute().double()).tolist()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(results, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(run, args=(int(sys.argv[1]), sys.argv[2]), nprocs=WORLD, join=True)
