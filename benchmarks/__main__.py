"""``python -m benchmarks``: every backend's benchmark, each in a process of its own with
one thread, then the performance targets judged, a Markdown table and a JSON file written.

    python -m benchmarks                      # everything installed, results/latest.{md,json}
    python -m benchmarks --quick              # fewer rounds, value_and_grad / fwd+bwd only
    python -m benchmarks --backends torch --sizes 1e2,1e7 --rounds 5
    python -m benchmarks --backends torch --sizes '' --cases '^batch-' --merge   # re-run some cells
    python -m benchmarks --docs               # also write the tables into docs/benchmarks.md
    python -m benchmarks --rewrite --docs     # measure nothing: write results/latest.json's tables again
    python -m benchmarks --readme             # also put the table into README.md

Benchmarks measure; nothing here asserts a time. The ratios are medians of per-round ratios
measured interleaved in one process (see ``benchmarks/_runner.py``). ``--merge`` keeps the
cells of the last run (results/latest.json) that this run does not measure again and judges
every target on the merged cells.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
from typing import Any

from ._runner import SINGLE_THREAD_ENV, SIZES, loadavg, machine
from .report import docs_blocks, judge, markdown, merge, update_blocks, update_readme

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = pathlib.Path(__file__).resolve().parent / "results"
DOCS = ROOT / "docs" / "benchmarks.md"

#: name -> (worker module, its environment)
BACKENDS: dict[str, tuple[str, dict[str, str]]] = {
    "torch": ("torch", {}),
    "jax": ("jax", {}),
    "keras-tensorflow": ("keras", {"KERAS_BACKEND": "tensorflow"}),
    "keras-jax": ("keras", {"KERAS_BACKEND": "jax"}),
    "keras-torch": ("keras", {"KERAS_BACKEND": "torch"}),
}
#: what each backend needs installed
NEEDS = {"torch": ("torch",), "jax": ("jax", "optax"), "keras": ("keras",)}
FRAMEWORKS = ("torch", "jax", "tensorflow", "keras", "optax")


def installed(backend: str) -> bool:
    module, env = BACKENDS[backend]
    needs = NEEDS[module] + ((env["KERAS_BACKEND"],) if "KERAS_BACKEND" in env else ())
    return all(importlib.util.find_spec(n) is not None for n in needs)


def run_backend(backend: str, sizes: list[int], rounds: int, extra: list[str]) -> dict[str, Any]:
    """One backend's worker (``extra``: its further arguments)."""
    module, env_extra = BACKENDS[backend]
    env = {**os.environ, **SINGLE_THREAD_ENV, **env_extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = pathlib.Path(f.name)
    cmd = [sys.executable, "-m", "benchmarks.worker", module, "--out", str(out),
           "--sizes", ",".join(str(s) for s in sizes), "--rounds", str(rounds), *extra]
    print(f"== {backend}", flush=True)
    try:
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def import_time(repeats: int = 15) -> dict[str, Any]:
    """``import mse_adapters`` in fresh interpreters: the median seconds, and which
    frameworks it loaded (it must load none)."""
    code = (
        "import json, sys, time\n"
        "t0 = time.perf_counter()\n"
        "import mse_adapters\n"
        "dt = time.perf_counter() - t0\n"
        f"print(json.dumps({{'s': dt, 'loaded': [m for m in {FRAMEWORKS!r} if m in sys.modules]}}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                                      capture_output=True, text=True).stdout)
            for _ in range(repeats + 1)][1:]  # the first may compile bytecode
    loaded = sorted({m for r in runs for m in r["loaded"]})
    secs = [r["s"] for r in runs]
    return {"median_s": statistics.median(secs), "max_s": max(secs), "repeats": repeats,
            "frameworks_loaded": loaded}


def parse_sizes(text: str) -> list[int]:
    return [int(float(s)) for s in text.split(",") if s]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default=",".join(BACKENDS),
                    help="comma-separated, from: " + ", ".join(BACKENDS))
    ap.add_argument("--sizes", default=",".join(str(s) for s in SIZES), type=str)
    ap.add_argument("--rounds", type=int, default=9, help="rounds per cell (small sizes: at least 15)")
    ap.add_argument("--quick", action="store_true",
                    help="5 rounds (small sizes: 15), forward + backward (value_and_grad, fit) only, no torch.compile")
    ap.add_argument("--cases", default="", help="only the cases whose name matches this regular expression")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile cells")
    ap.add_argument("--merge", action="store_true",
                    help="keep the cells of the last run (OUT/latest.json) that this run does not measure")
    ap.add_argument("--out", type=pathlib.Path, default=RESULTS)
    ap.add_argument("--docs", action="store_true", help="also write the tables into docs/benchmarks.md")
    ap.add_argument("--readme", action="store_true", help="also update README.md's Performance table")
    ap.add_argument("--rewrite", action="store_true",
                    help="measure nothing: judge the targets of OUT/latest.json again and write its tables")
    args = ap.parse_args(argv)
    if args.rewrite:
        result = json.loads((args.out / "latest.json").read_text())
        result["targets"] = judge(result)
        write(result, args.out, args.docs, args.readme)
        return 0

    sizes = parse_sizes(args.sizes)
    rounds = 5 if args.quick and args.rounds == 9 else args.rounds
    extra = [*(["--no-compile"] if args.no_compile or args.quick else []), *(["--quick"] if args.quick else []),
             *(["--cases", args.cases] if args.cases else [])]
    started = datetime.datetime.now(datetime.timezone.utc)
    date = started.strftime("%Y-%m-%d %H:%M UTC")
    result: dict[str, Any] = {
        "date": date, "machine": machine(), "threads": 1, "dtype": "float32", "load_before": loadavg(),
        "backends": {}, "skipped": {}, "rows": [], "target_defs": [],
    }
    for backend in [b for b in args.backends.split(",") if b]:
        if backend not in BACKENDS:
            ap.error(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        if not installed(backend):
            result["skipped"][backend] = "framework not installed"
            continue
        got = run_backend(backend, sizes, rounds, extra)
        result["backends"][backend] = {**got["info"], **({"cases": args.cases} if args.cases else {})}
        result["rows"] += [{**r, "date": date} for r in got["rows"]]
        result["target_defs"] += got["target_defs"]
    result["import"] = import_time()
    result["load_after"] = loadavg()
    result["duration_s"] = round((datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(), 1)
    latest = args.out / "latest.json"
    if args.merge and latest.is_file():
        result = merge(json.loads(latest.read_text()), result)
    result["targets"] = judge(result)

    write(result, args.out, args.docs, args.readme)
    print(f"took {result['duration_s']:.0f} s", flush=True)
    return 0


def write(result: dict[str, Any], out: pathlib.Path, docs: bool, readme: bool) -> None:
    """``out``/latest.json and latest.md, and the tables of docs/benchmarks.md and README.md
    when asked."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(result, indent=1) + "\n")
    md = markdown(result)
    (out / "latest.md").write_text(md)
    print(md)
    if docs:
        update_blocks(DOCS, docs_blocks(result))
    if readme:
        update_readme(ROOT / "README.md", result)


if __name__ == "__main__":
    sys.exit(main())
