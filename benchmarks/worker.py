"""One backend's benchmark in this process: ``python -m benchmarks.worker torch --out f.json``.
Started by ``python -m benchmarks`` with one thread set in the environment (the Keras
backend too: it is fixed per process)."""

from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import sys

from ._runner import SIZES, row_dicts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("module", choices=("torch", "jax", "keras"))
    ap.add_argument("--out", type=pathlib.Path, required=True)
    ap.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args(argv)
    bench = importlib.import_module(f"benchmarks.bench_{args.module}")
    sizes = tuple(int(float(s)) for s in args.sizes.split(",") if s)
    kwargs = {"compiled": not args.no_compile} if args.module == "torch" else {}
    rows = row_dicts(bench.run(sizes=sizes, rounds=args.rounds, **kwargs))
    targets = [t.judge(rows) for t in bench.TARGETS]
    args.out.write_text(json.dumps({"info": bench.info(), "rows": rows, "targets": targets}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
