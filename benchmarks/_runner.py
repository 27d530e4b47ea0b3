"""The measuring machinery every backend's benchmark shares (no framework imported here).

A *cell* is one (case, size, mode): a baseline (the framework's built-in, or the best
hand-written equivalent) and the candidates compared with it. The candidates of a cell run
interleaved in the same process: each round times every candidate once (the order
rotating from round to round), and the ratio candidate / baseline is taken within the
round, so that a slow spell of a shared machine hits both sides of a ratio. A cell reports
the median of the per-round ratios with their interquartile range, the median time per
call and the effective bandwidth (the bytes a call must move at the least, divided by
its time).
"""

from __future__ import annotations

import gc
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: Element counts of the benchmark inputs.
SIZES = (10**2, 10**4, 10**6, 10**7)
MODES = ("fwd", "fwd+bwd")

#: Environment of every benchmark process: one thread everywhere.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "TF_CPP_MIN_LOG_LEVEL": "3",
}


@dataclass
class Candidate:
    """One way of computing a cell: ``run()`` does one call (forward, or forward and
    backward)."""

    name: str
    run: Callable[[], Any]


@dataclass
class Row:
    """One candidate of one cell, measured against the cell's baseline."""

    backend: str
    case: str
    size: int
    mode: str
    candidate: str
    baseline: str
    ratio: float  # median over rounds of time(candidate) / time(baseline)
    ratio_q1: float
    ratio_q3: float
    time_s: float  # median time per call
    baseline_time_s: float
    gbps: float  # the bytes a call must move at the least / time
    rounds: int
    calls_per_round: int
    note: str = ""
    clock: str = "wall"  # a name of CLOCKS
    date: str = ""  # of the run (set by python -m benchmarks)
    extra: dict[str, Any] = field(default_factory=dict)


def quantile(xs: Sequence[float], q: float) -> float:
    """The q-quantile of ``xs`` by linear interpolation (as numpy's default)."""
    s = sorted(xs)
    if not s:
        return math.nan
    pos = (len(s) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


#: The clocks a benchmark can be timed by: wall time, the process' CPU time (user + system,
#: every thread) or the calling thread's CPU time. On a busy shared machine the wall time of
#: a single-threaded call grows with the load (preemption), its CPU time much less. torch
#: runs every operation of a one-thread process on the calling thread, the forward and the
#: backward, so the thread's clock is the one for it; XLA:CPU (JAX) executes a jitted program
#: on a thread of its own, so JAX is timed by the process' CPU time.
CLOCKS: dict[str, tuple[str, Callable[[], float]]] = {
    "wall": ("wall time", time.perf_counter),
    "process": ("process CPU time", time.process_time),
    "thread": ("thread CPU time", time.thread_time),
}


def clock_name(default: str) -> str:
    """The clock of a benchmark: ``default`` (the backend's), or ``MSE_ADAPTERS_BENCH_CLOCK``
    when set (``wall``, ``process`` or ``thread``; ``cpu`` is ``process``)."""
    name = os.environ.get("MSE_ADAPTERS_BENCH_CLOCK", default)
    name = "process" if name == "cpu" else name
    if name not in CLOCKS:
        raise ValueError(f"MSE_ADAPTERS_BENCH_CLOCK must be one of {', '.join(CLOCKS)} (or cpu), got {name!r}")
    return name


def _time_calls(fn: Callable[[], Any], calls: int, sync: Callable[[], None] | None,
                clock: Callable[[], float]) -> float:
    t0 = clock()
    for _ in range(calls):
        fn()
    if sync is not None:
        sync()
    return (clock() - t0) / calls


def measure(
    candidates: Sequence[Candidate],
    *,
    rounds: int,
    min_sample_s: float = 0.02,
    warmup: int = 2,
    sync: Callable[[], None] | None = None,
    clock: str = "wall",
) -> dict[str, list[float]]:
    """Per-round times per call of each candidate, interleaved (see the module docstring),
    by ``clock`` (a name of :data:`CLOCKS`). ``candidates[0]`` is the baseline. Each sample
    repeats the call often enough to last ``min_sample_s``; the garbage collector is off
    while timing."""
    now = CLOCKS[clock][1]
    for c in candidates:
        for _ in range(warmup):
            c.run()
    if sync is not None:
        sync()
    # calls per sample, from the slowest candidate's single-call time, the same for all
    single = [_time_calls(c.run, 1, sync, now) for c in candidates]
    calls = max(1, int(min_sample_s / max(max(single), 1e-9)))
    times: dict[str, list[float]] = {c.name: [] for c in candidates}
    gc.collect()
    # what is alive now (a framework's few hundred thousand objects) is never scanned again:
    # a full collection between rounds took 0.1-0.2 s in the torch worker, half of its time
    gc.freeze()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            k = r % len(candidates)
            for c in list(candidates[k:]) + list(candidates[:k]):
                times[c.name].append(_time_calls(c.run, calls, sync, now))
            gc.collect()
    finally:
        if enabled:
            gc.enable()
    times["__calls__"] = [float(calls)]
    return times


def cell_rows(
    backend: str,
    case: str,
    size: int,
    mode: str,
    candidates: Sequence[Candidate],
    bytes_moved: int,
    *,
    rounds: int,
    sync: Callable[[], None] | None = None,
    notes: dict[str, str] | None = None,
    warmup: int = 2,
    clock: str = "wall",
    extra: dict[str, Any] | None = None,
) -> list[Row]:
    """Measure a cell; one row per candidate (the baseline's ratio is 1). ``extra``: what
    the rows carry besides (e.g. the input's shape)."""
    times = measure(candidates, rounds=rounds, sync=sync, warmup=warmup, clock=clock)
    calls = int(times.pop("__calls__")[0])
    base = candidates[0].name
    rows = []
    for c in candidates:
        ratios = [a / b for a, b in zip(times[c.name], times[base])]
        t = statistics.median(times[c.name])
        rows.append(Row(
            backend=backend, case=case, size=size, mode=mode, candidate=c.name, baseline=base,
            ratio=statistics.median(ratios), ratio_q1=quantile(ratios, 0.25),
            ratio_q3=quantile(ratios, 0.75), time_s=t,
            baseline_time_s=statistics.median(times[base]), gbps=bytes_moved / t / 1e9,
            rounds=rounds, calls_per_round=calls, note=(notes or {}).get(c.name, ""), clock=clock,
            extra=dict(extra or {}),
        ))
    return rows


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return []


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:  # pragma: no cover
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo") as f:
            mem_gib = round(int(f.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):  # pragma: no cover
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
    }


def row_dicts(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


@dataclass(frozen=True)
class Target:
    """A performance target of the issue: a ratio row that must stay within ``limit``."""

    name: str
    backend: str
    case: str
    size: int
    mode: str
    candidate: str
    limit: float
    at_most: bool = True  # False: the ratio must be at least ``limit`` (e.g. steps/s)
    #: a family of targets reported as one line of the targets table (their cells are in a
    #: table of their own), e.g. every penalty and option of a grid; "" for a target of its own
    group: str = ""

    def find(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
        for r in rows:
            if (r["backend"], r["case"], r["size"], r["mode"], r["candidate"]) == (
                    self.backend, self.case, self.size, self.mode, self.candidate):
                return r
        return None

    def judge(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        r = self.find(rows)
        out: dict[str, Any] = {"target": self.name, "limit": self.limit, "at_most": self.at_most,
                               "backend": self.backend, "group": self.group, "case": self.case,
                               "size": self.size}
        if r is None:
            out.update(measured=None, met=None)
        else:
            ok = r["ratio"] <= self.limit if self.at_most else r["ratio"] >= self.limit
            out.update(measured=r["ratio"], q1=r["ratio_q1"], q3=r["ratio_q3"], met=ok,
                       baseline=r["baseline"], candidate=r["candidate"])
        return out
