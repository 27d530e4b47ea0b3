"""Peak memory of one forward + backward in torch, each measurement in a fresh process:
every penalty of the grid with a weight, a mask or both against the plain built-in (or the
plain hand-written form where torch has none). The inputs (prediction, target, weight and
mask) exist in every process alike; what is reported is the resident-set growth of the
step itself (the peak RSS during it minus the RSS before it), in units of one float32
input array (N x 4 bytes).

    python benchmarks/bench_memory.py [--n 10000000] [--out benchmarks/results/memory.md]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys
import torch
import torch.nn.functional as F
sys.path.insert(0, sys.argv[1])
import mse_adapters.torch as mt
from benchmarks import penalties as grid
from benchmarks.bench_torch import BUILTINS
torch.set_num_threads(1)
name, option, who, n = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
g = torch.Generator().manual_seed(0)
shape = (n // 10, 10)
t = torch.randn(shape, generator=g)
p = (t + torch.randn(shape, generator=g)).requires_grad_(True)
w = torch.rand(shape, generator=g) + 0.5
m = torch.rand(shape, generator=g) > 0.3
tm = torch.where(m, t, float("nan"))
row = [r for r in grid.ROWS if r.name == name][0]
pen = row.spec.penalty
if who == "ours":
    kw = grid.option_kwargs(option, w, m)
    module = getattr(mt, row.torch)(**grid.params(row))
    f = lambda: module(p, tm if "mask" in kw else t, **kw)
elif pen in BUILTINS:
    builtin = BUILTINS[pen][1]
    f = lambda: builtin(p, t)
else:
    hand = grid.hand_loss(row, "plain", torch, F.softplus)
    f = lambda: hand(p, t, w, m)
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()
before = rss()
(grad,) = torch.autograd.grad(f(), p)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"growth": peak - before, "array": p.numel() * 4}))
"""


def measure(name: str, option: str, who: str, n: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), name, option, who, str(n)], env=env,
                         capture_output=True, text=True, check=True, timeout=600)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["growth"] / r["array"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10**7)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from benchmarks import penalties as grid
    lines = ["| penalty | baseline | weight | mask | weight+mask |", "|---|---|---|---|---|"]
    for row in grid.ROWS:
        base = measure(row.name, "plain", "baseline", args.n)
        cells = [f"{measure(row.name, o, 'ours', args.n):.2f}" for o in ("weight", "mask", "weight+mask")]
        lines.append(f"| {row.name} | {base:.2f} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    text = (f"Peak memory growth of one forward + backward, N = {args.n:.0e} float32, in float32 input "
            "arrays (the gradient itself is one); baseline: torch's built-in, or the plain hand-written "
            "form where torch has none.\n\n" + "\n".join(lines) + "\n")
    if args.out:
        pathlib.Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
