"""The Markdown of a benchmark run (``results/latest.md``, the tables of docs/benchmarks.md and
README's Performance table), and the merging of runs.

Everything written is made from the run's structured fields (per row its backend, case,
size, mode, candidate, clock and date), never from text an earlier run wrote: merging runs
(``python -m benchmarks --merge``) replaces rows by their key and judges the targets again
on the merged rows, so a heading, a date or a target appears once whatever was merged.
:func:`markdown` checks that no heading repeats.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterable
from typing import Any

from ._runner import CLOCKS, Target

README_START = "<!-- benchmarks:start (written by `python -m benchmarks --readme`) -->"
README_END = "<!-- benchmarks:end -->"
#: A run's date, as :func:`stamp` writes it.
DATE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC")
#: The key of a row: one candidate of one cell.
ROW_KEY = ("backend", "case", "size", "mode", "candidate")
IMPORT_TARGET = "import mse_adapters: no framework, <= 50 ms"


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


def _shape(r: dict[str, Any]) -> str:
    shape = r.get("extra", {}).get("shape")
    return f"({', '.join(str(s) for s in shape)})" if shape else _size(r["size"])


def _key(r: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(r[k] for k in ROW_KEY)


def _unique(items: Iterable[dict[str, Any]], key: Any) -> list[dict[str, Any]]:
    """``items`` with one item per key, the last one given, in the order of first sight."""
    out: dict[Any, dict[str, Any]] = {}
    for item in items:
        out[key(item)] = item
    return list(out.values())


# ---------------------------------------------------------------------------------------
# Runs: merging and judging
# ---------------------------------------------------------------------------------------


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` with the rows, backends and target definitions of ``old`` that ``new`` did not
    measure again (a row is replaced by the row of the same key; the targets are judged
    again on the merged rows by :func:`judge`)."""
    ran = {_key(r) for r in new["rows"]}
    dated = old.get("date", "")
    kept = [{**r, "date": r.get("date") or dated} for r in old.get("rows", []) if _key(r) not in ran]
    out = {**new, "rows": kept + new["rows"]}
    out["backends"] = {**old.get("backends", {}), **new["backends"]}
    out["skipped"] = {b: why for b, why in {**old.get("skipped", {}), **new.get("skipped", {})}.items()
                      if b not in out["backends"]}
    out["target_defs"] = _unique([*old.get("target_defs", []), *new.get("target_defs", [])], lambda t: t["name"])
    # a run of an older writer has judged targets and no definitions: keep those of the
    # backends nothing defines now
    defined = {t["backend"] for t in out["target_defs"]}
    out["legacy_targets"] = [t for t in [*old.get("legacy_targets", []), *old.get("targets", [])]
                             if t["backend"] not in defined and t["target"] != IMPORT_TARGET
                             and t["backend"] in out["backends"]]
    return out


def judge(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of ``result`` judged on its rows (one per name), the import's last."""
    targets = [Target(**d).judge(result["rows"]) for d in result.get("target_defs", [])]
    targets += result.get("legacy_targets", [])
    imp = result.get("import")
    if imp:
        targets.append({"target": IMPORT_TARGET, "backend": "none", "measured": imp["median_s"] * 1e3,
                        "unit": "ms", "limit": 50.0, "at_most": True, "group": "",
                        "met": imp["median_s"] <= 0.05 and not imp["frameworks_loaded"]})
    return _unique(targets, lambda t: (t["backend"], t["target"]))


# ---------------------------------------------------------------------------------------
# The tables
# ---------------------------------------------------------------------------------------


def _dates(rows: list[dict[str, Any]], backend: str) -> str:
    dates = sorted({r.get("date", "") for r in rows if r["backend"] == backend})
    good = [d for d in dates if DATE.fullmatch(d)]
    if not good:
        return "date unknown"
    return good[0] if len(good) == 1 else f"{good[0]} to {good[-1]}"


def header(result: dict[str, Any]) -> str:
    """Where and how the numbers were measured: the machine, then per backend its versions,
    dates and clock."""
    m = result["machine"]
    parts = []
    for b, info in result["backends"].items():
        versions = ", ".join(f"{k} {v}" for k, v in info.items()
                             if k in ("torch", "jax", "optax", "keras", "backend_version"))
        clock = CLOCKS.get(info.get("clock", ""), ("clock unknown",))[0]
        only = f" of the cases matching {info['cases']!r}" if info.get("cases") else ""
        took = f", {info['cpu_s'] / 60:.1f} min of CPU in its last run{only}" if "cpu_s" in info else ""
        parts.append(f"{b} ({versions}): {_dates(result['rows'], b)}, {clock}{took}")
    return (
        f"Measured on {m['cpu']} ({m['cores']} cores, {m['memory_gib']} GiB, {m['os']}), Python "
        f"{m['python']}, one thread, {result['dtype']}; " + "; ".join(parts) + ". "
        f"Load average (1, 5, 15 min) before {result['load_before']}, after {result['load_after']}: "
        "the machine is shared, so the ratios (interleaved in one process, medians of per-round "
        "ratios with their interquartile range) are the numbers to read, not the times."
    )


def _limit(t: dict[str, Any]) -> str:
    op = "<=" if t.get("at_most", True) else ">="
    return f"{op} {t['limit']:g}" + (" ms" if t.get("unit") == "ms" else "x")


def _group_line(group: str, members: list[dict[str, Any]]) -> str:
    measured = [t for t in members if t.get("measured") is not None]
    if not measured:
        return f"| {group} | not measured | {_limit(members[0])} | - |"
    worst = max(measured, key=lambda t: t["measured"] if t.get("at_most", True) else -t["measured"])
    met = sum(1 for t in measured if t["met"])
    verdict = "yes" if met == len(measured) else f"**no** ({met} of {len(measured)} met)"
    unmeasured = f"; {len(members) - len(measured)} not measured" if len(measured) < len(members) else ""
    return (f"| {group} (every cell in its table{unmeasured}) | worst {worst['measured']:.2f}x "
            f"({worst['target']}) | {_limit(worst)} | {verdict} |")


def targets_table(result: dict[str, Any]) -> str:
    """One line per target, and one per group of targets (its worst cell and how many met)."""
    lines = ["| target | measured (IQR) | limit | met |", "|---|---|---|---|"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for t in result["targets"]:
        if t.get("group"):
            if t["group"] not in groups:
                lines.append(t["group"])  # a placeholder, filled below
            groups.setdefault(t["group"], []).append(t)
            continue
        if t.get("measured") is None:
            lines.append(f"| {t['target']} | not measured | {_limit(t)} | - |")
            continue
        if t.get("unit") == "ms":
            meas = f"{t['measured']:.1f} ms"
        else:
            meas = f"{t['measured']:.2f}x" + (f" ({t['q1']:.2f}-{t['q3']:.2f})" if "q1" in t else "")
        lines.append(f"| {t['target']} | {meas} | {_limit(t)} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(_group_line(x, groups[x]) if x in groups else x for x in lines)


def pivot_table(result: dict[str, Any], backend: str, prefix: str, mode: str = "fwd+bwd") -> str:
    """The cells of the cases ``{prefix}-{loss}-{option}``: a line per loss and option, a
    column per input (shape or size); each cell the adapter's ratio to the cell's baseline
    (IQR) and its time per call; a ratio above its target's limit in bold."""
    limits = {(t["case"], t["size"]): t["limit"] for t in result["targets"] if t.get("case")}
    cells: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    columns: dict[str, int] = {}
    baseline = ""
    for r in result["rows"]:
        if r["backend"] != backend or r["mode"] != mode or not r["case"].startswith(prefix + "-") \
                or not r["candidate"].startswith("mse_adapters"):
            continue
        _, loss, option = r["case"].split("-", 2)
        col = _shape(r)
        columns.setdefault(col, r["size"])
        cells.setdefault((r["candidate"].split()[-1], option), {})[col] = r
        baseline = baseline or r["baseline"].split(" (")[0]
    if not cells:
        return ""
    cols = sorted(columns, key=lambda c: columns[c])
    lines = [f"| loss | option | {' | '.join(cols)} |", "|---|---|" + "---|" * len(cols)]
    for (loss, option), got in cells.items():
        out = []
        for c in cols:
            r = got.get(c)
            if r is None:
                out.append("-")
                continue
            text = f"{r['ratio']:.2f}"
            limit = limits.get((r["case"], r["size"]))
            text = f"**{text}**" if limit is not None and r["ratio"] > limit else text
            out.append(f"{text} ({r['ratio_q1']:.2f}-{r['ratio_q3']:.2f}), {_time(r['time_s'])}")
        lines.append(f"| {loss} | {option} | {' | '.join(out)} |")
    return "\n".join(lines)


def rows_table(rows: list[dict[str, Any]], backend: str) -> str:
    lines = ["| case | N | mode | candidate | time | ratio (IQR) | GB/s |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["backend"] != backend:
            continue
        base = r["candidate"] == r["baseline"]
        lines.append(
            f"| {r['case']} | {_shape(r)} | {r['mode']} | {r['candidate']}"
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


#: The pivot tables: (heading, backend, case prefix, what the cells are).
PIVOTS = (
    ("torch at batch sizes", "torch", "batch",
     "Eager, forward and backward, the default value checks on; each cell the module's time "
     "over the hand-written form's with the same options (which checks nothing), its "
     "interquartile range and the module's time per call."),
    ("JAX under jit, every penalty and option", "jax", "grid",
     "`jax.jit(jax.value_and_grad(f))`; each cell the adapter's time over the hand-written "
     "`jnp` form's with the same options, its interquartile range and the adapter's time per call."),
)


def import_line(result: dict[str, Any]) -> str:
    imp = result.get("import")
    if not imp:
        return ""
    return (f"`import mse_adapters`: median {imp['median_s'] * 1e3:.1f} ms over {imp['repeats']} fresh "
            f"interpreters (max {imp['max_s'] * 1e3:.1f} ms); frameworks loaded: "
            f"{', '.join(imp['frameworks_loaded']) or 'none'}.")


def check_headings(text: str) -> None:
    """A ValueError if a Markdown heading of ``text`` repeats."""
    seen: set[str] = set()
    for line in text.splitlines():
        if line.startswith("#"):
            if line in seen:
                raise ValueError(f"the heading {line!r} repeats")
            seen.add(line)


def markdown(result: dict[str, Any]) -> str:
    """``results/latest.md``: the header, the targets, the pivot tables, every cell of every
    backend, the import."""
    out = ["# Benchmarks", "", header(result), "", "## Targets", "", targets_table(result), ""]
    if result["skipped"]:
        out += ["Not measured: " + "; ".join(f"{b} ({why})" for b, why in result["skipped"].items()), ""]
    for heading, backend, prefix, what in PIVOTS:
        table = pivot_table(result, backend, prefix)
        if table:
            out += [f"## {heading}", "", what, "", table, ""]
    for backend in result["backends"]:
        out += [f"## {backend}: every cell", "", rows_table(result["rows"], backend), ""]
    if result.get("import"):
        out += ["## import", "", import_line(result), ""]
    text = "\n".join(out)
    check_headings(text)
    return text


def docs_blocks(result: dict[str, Any]) -> dict[str, str]:
    """The blocks :func:`update_blocks` writes into docs/benchmarks.md."""
    blocks = {"header": header(result) + " " + import_line(result), "targets": targets_table(result)}
    for _, backend, prefix, what in PIVOTS:
        blocks[f"{backend}-{prefix}"] = what + "\n\n" + (pivot_table(result, backend, prefix) or "Not measured.")
    return blocks


def _replace_between(text: str, start: str, end: str, block: str, where: str) -> str:
    """``text`` with what lies between the markers ``start`` and ``end`` (each exactly once,
    in this order) replaced by ``block``."""
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"{where} must hold {start!r} and then {end!r}, once each")
    i, j = text.index(start) + len(start), text.index(end)
    return text[:i] + "\n" + block.strip("\n") + "\n" + text[j:]


def update_blocks(path: pathlib.Path, blocks: dict[str, str]) -> None:
    """Write each block between ``<!-- benchmarks:NAME -->`` and ``<!-- /benchmarks:NAME -->``
    in ``path`` (every marker must be there once)."""
    text = path.read_text()
    for name, block in blocks.items():
        text = _replace_between(text, f"<!-- benchmarks:{name} -->", f"<!-- /benchmarks:{name} -->", block,
                                str(path))
    check_headings(text)
    path.write_text(text)


#: README's headline rows: (what, the target's case, size and backend; the baseline's words).
HEADLINES = (
    ("torch `MSELoss()`, 1e7 elements", "plain-mse", 10**7, "torch", "`torch.nn.MSELoss`"),
    ("torch `MSELoss` with a weight and a mask, 1e7", "grid-mse-weight+mask", 10**7, "torch",
     "plain `torch.nn.MSELoss`"),
    ("torch `HuberLoss` with a mask, 1e7", "grid-huber-mask", 10**7, "torch", "`F.huber_loss` (plain)"),
    ("torch `MSELoss` with a weight and a mask, (4096, 64)", "batch-mse-weight+mask", 4096 * 64, "torch",
     "hand-written, same options"),
    ("torch `MSELoss` with a weight and a mask, (32, 1)", "batch-mse-weight+mask", 32, "torch",
     "hand-written, same options"),
    ("JAX `mse` with a weight and a mask under `jit`, 1e7", "grid-mse-weight+mask", 10**7, "jax",
     "hand-written `jnp`, same options"),
    ("Keras `model.fit`, `MeanSquaredError()`", "fit-mse", None, "keras-tensorflow", "`loss=\"mse\"`"),
)


def headline_table(result: dict[str, Any]) -> str:
    """A few rows for README (forward and backward, time ratios; the full tables are the
    docs'): each headline's target, where the run measured it."""
    lines = ["| loss | time ratio | against |", "|---|---|---|"]
    for what, case, size, backend, baseline in HEADLINES:
        hit = [t for t in result["targets"] if t.get("case") == case and t.get("backend") == backend
               and (size is None or t.get("size") == size) and t.get("measured") is not None]
        if hit:
            lines.append(f"| {what} | {hit[0]['measured']:.2f}x | {baseline} |")
    return "\n".join(lines)


def update_readme(path: pathlib.Path, result: dict[str, Any]) -> None:
    """Put the headline rows between README's markers (the full tables: docs/benchmarks.md)."""
    m = result["machine"]
    block = "\n".join(["", f"Forward and backward, one thread, interleaved with the baseline in one process "
                       f"({m['cores']} cores, {result['dtype']}):", "", headline_table(result), ""])
    path.write_text(_replace_between(path.read_text(), README_START, README_END, block, str(path)))

