"""Peak memory and time of the float64 reference's derivatives (``mse_adapters.numpy``'s
``value_and_grad`` and ``hessian_vector_product``), each measurement in a fresh process:
MSE, Huber with a weight and a mask, and MSE whitened by a covariance (d = 8), at 1e3, 1e4
and 1e5 elements. What is reported is the peak of the memory allocated during the first call
(``tracemalloc``, which sees NumPy's arrays) and the best time of three further calls. A process that runs out of
its address-space cap (``--cap-gb``) or of ``--timeout`` seconds is reported as such.

    python benchmarks/bench_reference.py [--root PATH] [--sizes 1e3,1e4,1e5] [--out FILE]

``--root`` is the checkout whose ``mse_adapters`` is measured (this one by default): run it
against two checkouts to compare them.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time, tracemalloc
root, case, fn, n, cap = sys.argv[1], sys.argv[2], sys.argv[3], int(float(sys.argv[4])), float(sys.argv[5])
resource.setrlimit(resource.RLIMIT_AS, (int(cap * 2**30), int(cap * 2**30)))
sys.path.insert(0, root)
import numpy as np
from mse_adapters import preset
from mse_adapters import numpy as mnp
rng = np.random.default_rng(0)
d = 8 if case == "whitened" else 10
shape = (n // d, d)
t = rng.normal(size=shape)
p = t + rng.normal(size=shape)
v = rng.normal(size=shape)
kw = {}
spec = preset("mse")
if case == "huber":
    spec = preset("huber", delta=1.0)
    kw = {"weight": rng.random(shape) + 0.5, "mask": rng.random(shape) > 0.3}
elif case == "whitened":
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    kw = {"covariance": (q * np.logspace(0.0, 2.0, d)) @ q.T}
if fn == "grad":
    call = lambda: mnp.value_and_grad(spec, t, p, **kw)
else:
    call = lambda: mnp.hessian_vector_product(spec, t, p, v, **kw)
try:
    tracemalloc.start()
    call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
except MemoryError:
    print(json.dumps({"error": "out of memory"}))
    sys.exit(0)
times = []
for _ in range(3):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
print(json.dumps({"peak": peak, "seconds": min(times)}))
"""

CASES = {"mse": "MSE", "huber": "Huber, weight + mask", "whitened": "MSE, covariance d = 8"}
FNS = {"grad": "value_and_grad", "hvp": "hessian_vector_product"}


def measure(root: str, case: str, fn: str, n: float, cap: float, timeout: float) -> str:
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, root, case, fn, str(n), str(cap)], capture_output=True,
                             text=True, timeout=timeout, env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        return f"> {timeout:.0f} s"
    lines = out.stdout.strip().splitlines()
    if out.returncode or not lines:
        return f"failed ({out.stderr.strip().splitlines()[-1:]})"
    r = json.loads(lines[-1])
    if "error" in r:
        return f"> {cap:g} GiB"
    return f"{r['peak'] / 2**20:.1f} MiB, {r['seconds'] * 1e3:.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(ROOT))
    ap.add_argument("--sizes", default="1e3,1e4,1e5")
    ap.add_argument("--cap-gb", type=float, default=4.0)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    head = "| case | function | " + " | ".join(f"{n:.0e} elements" for n in sizes) + " |"
    lines = [f"Reference derivatives of {args.root} (peak memory allocated by one call, best of three times)", "",
             head, "|" + "---|" * (len(sizes) + 2)]
    for case, label in CASES.items():
        for fn, name in FNS.items():
            cells = [measure(args.root, case, fn, n, args.cap_gb, args.timeout) for n in sizes]
            lines.append(f"| {label} | `{name}` | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        pathlib.Path(args.out).write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
