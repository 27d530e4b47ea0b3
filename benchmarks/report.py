"""The Markdown of a benchmark run (``results/latest.md``, and README's Performance table)."""

from __future__ import annotations

import pathlib
import re
from typing import Any

README_START = "<!-- benchmarks:start (written by `python -m benchmarks --readme`) -->"
README_END = "<!-- benchmarks:end -->"


def _size(n: int) -> str:
    e = len(str(n)) - 1
    return f"1e{e}" if n == 10**e else str(n)


def _time(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} µs"


def _ratio(r: dict[str, Any]) -> str:
    return f"{r['ratio']:.2f} ({r['ratio_q1']:.2f}-{r['ratio_q3']:.2f})"


def header(result: dict[str, Any]) -> str:
    m = result["machine"]
    versions = "; ".join(f"{b}: " + ", ".join(f"{k} {v}" for k, v in info.items() if k in
                                                ("torch", "jax", "optax", "keras", "backend_version"))
                         for b, info in result["backends"].items())
    return (
        f"Measured {result['date']} on {m['cpu']} ({m['cores']} cores, {m['memory_gib']} GiB, "
        f"{m['os']}), Python {m['python']}; {versions}. One thread, {result['dtype']}, "
        f"{m.get('clock', 'wall time')}. "
        f"Load average (1, 5, 15 min) before {result['load_before']}, after {result['load_after']}: "
        "the machine is shared, so the ratios (interleaved in one process, medians of per-round "
        "ratios with their interquartile range) are the numbers to read, not the times."
    )


def targets_table(result: dict[str, Any]) -> str:
    lines = ["| target | measured (IQR) | limit | met |", "|---|---|---|---|"]
    for t in result["targets"]:
        op = "<=" if t.get("at_most", True) else ">="
        if t.get("measured") is None:
            lines.append(f"| {t['target']} | not measured | {op} {t['limit']:g} | - |")
            continue
        if t.get("unit") == "ms":
            meas = f"{t['measured']:.1f} ms"
            lim = f"{op} {t['limit']:g} ms"
        else:
            meas = f"{t['measured']:.2f}x"
            if "q1" in t:
                meas += f" ({t['q1']:.2f}-{t['q3']:.2f})"
            lim = f"{op} {t['limit']:g}x"
        lines.append(f"| {t['target']} | {meas} | {lim} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines)


def rows_table(rows: list[dict[str, Any]], backend: str) -> str:
    lines = ["| case | N | mode | candidate | time | ratio (IQR) | GB/s |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["backend"] != backend:
            continue
        base = r["candidate"] == r["baseline"]
        lines.append(
            f"| {r['case']} | {_size(r['size'])} | {r['mode']} | {r['candidate']}"
            f"{' (baseline)' if base else ''} | {_time(r['time_s'])} | "
            f"{'1' if base else _ratio(r)} | {r['gbps']:.2f} |"
        )
    return "\n".join(lines)


def summary_table(result: dict[str, Any]) -> str:
    """Every case at its largest size, forward and backward (Keras: model.fit): each
    candidate against the cell's baseline."""
    largest: dict[tuple[str, str], int] = {}
    for r in result["rows"]:
        key = (r["backend"], r["case"])
        largest[key] = max(largest.get(key, 0), r["size"])
    lines = ["| backend | case | N | candidate | baseline | ratio (IQR) | GB/s |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if (r["mode"] not in ("fwd+bwd", "fit") or r["size"] != largest[(r["backend"], r["case"])]
                or r["candidate"] == r["baseline"]):
            continue
        lines.append(f"| {r['backend']} | {r['case']} | {_size(r['size'])} | {r['candidate']} | "
                     f"{r['baseline']} | {_ratio(r)} | {r['gbps']:.2f} |")
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    out = ["# Benchmarks", "", header(result), "", "## Targets", "", targets_table(result), ""]
    if result["skipped"]:
        out += ["Not measured: " + "; ".join(f"{b} ({why})" for b, why in result["skipped"].items()), ""]
    for backend in result["backends"]:
        out += [f"## {backend}", "", rows_table(result["rows"], backend), ""]
    imp = result.get("import")
    if imp:
        out += ["## import", "",
                f"`import mse_adapters`: median {imp['median_s'] * 1e3:.1f} ms over {imp['repeats']} "
                f"fresh interpreters (max {imp['max_s'] * 1e3:.1f} ms); frameworks loaded: "
                f"{', '.join(imp['frameworks_loaded']) or 'none'}.", ""]
    return "\n".join(out)


def update_readme(path: pathlib.Path, result: dict[str, Any]) -> None:
    """Put the header and the targets table between README's markers."""
    text = path.read_text()
    block = "\n".join([README_START, "", header(result), "", targets_table(result), "",
                       "Every case at its largest size, forward and backward (time ratios; the "
                       "full table, every size and mode, is `benchmarks/results/latest.md`):", "",
                       summary_table(result), "", README_END])
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path} has no benchmark markers ({README_START!r} ... {README_END!r})")
    path.write_text(pattern.sub(lambda _: block, text))
