"""One backend's benchmark in this process: ``python -m benchmarks.worker torch --out f.json``.
Started by ``python -m benchmarks`` with one thread set in the environment (the Keras
backend too: it is fixed per process). It writes the rows, the backend's information and
its targets' definitions (``python -m benchmarks`` judges them on the rows, also merged
with an earlier run's)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import pathlib
import sys
import time

from ._runner import SIZES, row_dicts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("module", choices=("torch", "jax", "keras"))
    ap.add_argument("--out", type=pathlib.Path, required=True)
    ap.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cases", default="", help="a regular expression the case names must match")
    args = ap.parse_args(argv)
    bench = importlib.import_module(f"benchmarks.bench_{args.module}")
    sizes = tuple(int(float(s)) for s in args.sizes.split(",") if s)
    accepted = inspect.signature(bench.run).parameters
    options = {"compiled": not args.no_compile, "quick": args.quick, "cases": args.cases}
    kwargs = {k: v for k, v in options.items() if k in accepted}
    t0, c0 = time.perf_counter(), time.process_time()
    rows = row_dicts(bench.run(sizes=sizes, rounds=args.rounds, **kwargs))
    # the wall time grows with the load of a shared machine; the CPU time is what the run costs
    info = {**bench.info(), "duration_s": round(time.perf_counter() - t0, 1),
            "cpu_s": round(time.process_time() - c0, 1)}
    defs = [dataclasses.asdict(t) for t in bench.TARGETS]
    args.out.write_text(json.dumps({"info": info, "rows": rows, "target_defs": defs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
