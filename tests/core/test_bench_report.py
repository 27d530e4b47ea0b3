"""The benchmark writer (benchmarks/report.py): the Markdown of a run, merged runs and the
blocks it writes into the docs. A run of an earlier writer merged by hand gave README a
heading nested in itself ("Measured ... (torch, JAX; Keras: ... (torch, JAX; Keras: ...")
and the import target three times; here a heading, a date and a target appear once however
runs are merged."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from benchmarks import report
from benchmarks._runner import Row, Target

MACHINE = {"cpu": "Test CPU", "cores": 2, "memory_gib": 8.0, "os": "Linux", "python": "3.11"}


def _row(backend: str, case: str, size: int, candidate: str, baseline: str, ratio: float, date: str,
         shape: list[int] | None = None, clock: str = "thread") -> dict[str, Any]:
    r = Row(backend=backend, case=case, size=size, mode="fwd+bwd", candidate=candidate, baseline=baseline,
            ratio=ratio, ratio_q1=ratio * 0.95, ratio_q3=ratio * 1.05, time_s=ratio * 1e-4, baseline_time_s=1e-4,
            gbps=1.0, rounds=15, calls_per_round=100, clock=clock, date=date,
            extra={"shape": shape} if shape else {})
    return dataclasses.asdict(r)


def _cell(backend: str, case: str, size: int, ours: str, base: str, ratio: float, date: str,
          shape: list[int] | None = None) -> list[dict[str, Any]]:
    return [_row(backend, case, size, base, base, 1.0, date, shape),
            _row(backend, case, size, ours, base, ratio, date, shape)]


def _targets() -> list[dict[str, Any]]:
    batch = [Target(f"torch MSELoss {o} at {s}", "torch", f"batch-mse-{o}", n, "fwd+bwd", "mse_adapters MSELoss",
                    1.2, group="torch batch rows") for o in ("weight", "mask") for s, n in (("(32, 1)", 32),
                                                                                            ("(256, 10)", 2560))]
    return [dataclasses.asdict(t) for t in [
        Target("torch MSE module, N=1e7", "torch", "plain-mse", 10**7, "fwd+bwd", "mse_adapters MSELoss", 1.05),
        *batch,
        Target("JAX mse weight, N=1e6", "jax", "grid-mse-weight", 10**6, "fwd+bwd", "mse_adapters mjax.mse", 1.1,
               group="JAX grid"),
    ]]


def _run(date: str, ratio: float = 1.0, *, jax: bool = True) -> dict[str, Any]:
    rows = [*_cell("torch", "plain-mse", 10**7, "mse_adapters MSELoss", "torch.nn MSELoss", 1.01 * ratio, date),
            *_cell("torch", "batch-mse-weight", 32, "mse_adapters MSELoss", "hand-written (weight)", 2.4 * ratio,
                   date, [32, 1]),
            *_cell("torch", "batch-mse-weight", 2560, "mse_adapters MSELoss", "hand-written (weight)", 1.1 * ratio,
                   date, [256, 10]),
            *_cell("torch", "batch-mse-mask", 32, "mse_adapters MSELoss", "hand-written (mask)", 1.15 * ratio,
                   date, [32, 1])]
    backends: dict[str, Any] = {"torch": {"torch": "2.13", "clock": "thread"}}
    if jax:
        rows += _cell("jax", "grid-mse-weight", 10**6, "mse_adapters mjax.mse", "hand-written jnp (weight)",
                      1.3 * ratio, date)
        backends["jax"] = {"jax": "0.10", "optax": "0.2", "clock": "process"}
    result = {"date": date, "machine": MACHINE, "threads": 1, "dtype": "float32", "load_before": [1.0, 1.0, 1.0],
              "load_after": [1.0, 1.0, 1.0], "backends": backends, "skipped": {}, "rows": rows,
              "target_defs": _targets() if jax else [t for t in _targets() if t["backend"] == "torch"],
              "import": {"median_s": 0.02, "max_s": 0.03, "repeats": 15, "frameworks_loaded": []}}
    result["targets"] = report.judge(result)
    return result


def _headings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#")]


def _target_lines(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"| {name} ")]


def test_markdown_has_each_heading_target_and_date_once():
    md = report.markdown(_run("2026-12-06 10:00 UTC"))
    heads = _headings(md)
    assert len(heads) == len(set(heads))
    assert heads[0] == "# Benchmarks" and heads.count("# Benchmarks") == 1
    assert {"## Targets", "## torch at batch sizes", "## JAX under jit, every penalty and option",
            "## torch: every cell", "## jax: every cell", "## import"} <= set(heads)
    assert len(_target_lines(md, report.IMPORT_TARGET)) == 1
    header = md.splitlines()[2]
    assert header.count("2026-12-06 10:00 UTC") == 2  # torch's and JAX's, once each
    assert "thread CPU time" in header and "process CPU time" in header


def test_grouped_targets_are_one_line_with_the_worst_cell():
    md = report.markdown(_run("2026-12-06 10:00 UTC"))
    (line,) = [x for x in md.splitlines() if x.startswith("| torch batch rows")]
    # measured: weight at (32, 1) 2.4x (missed) and (256, 10) 1.1x, mask at (32, 1) 1.15x
    assert "worst 2.40x (torch MSELoss weight at (32, 1))" in line
    assert "**no** (2 of 3 met)" in line and "1 not measured" in line
    assert not _target_lines(md, "torch MSELoss weight at (32, 1)")  # no line per member


def test_pivot_table_puts_each_shape_in_a_column_and_bolds_a_miss():
    table = report.pivot_table(_run("2026-12-06 10:00 UTC"), "torch", "batch")
    lines = table.splitlines()
    assert lines[0] == "| loss | option | (32, 1) | (256, 10) |"
    weight = next(x for x in lines if x.startswith("| MSELoss | weight |"))
    assert "**2.40** (2.28-2.52), 240.0 µs" in weight and "| 1.10 (" in weight
    mask = next(x for x in lines if x.startswith("| MSELoss | mask |"))
    assert mask.endswith("| - |")  # (256, 10) not measured
    assert report.pivot_table(_run("2026-12-06 10:00 UTC"), "jax", "batch") == ""


def test_merged_runs_keep_one_row_per_cell_and_one_import_target():
    first = _run("2026-12-05 09:00 UTC")
    # the second run measures torch again, not JAX
    second = _run("2026-12-06 10:00 UTC", ratio=0.5, jax=False)
    merged = report.merge(first, second)
    merged["targets"] = report.judge(merged)
    keys = [report._key(r) for r in merged["rows"]]
    assert len(keys) == len(set(keys)) == len(first["rows"])
    torch_rows = [r for r in merged["rows"] if r["backend"] == "torch"]
    assert all(r["date"] == "2026-12-06 10:00 UTC" for r in torch_rows)
    assert all(r["date"] == "2026-12-05 09:00 UTC" for r in merged["rows"] if r["backend"] == "jax")
    md = report.markdown(merged)
    assert len(_target_lines(md, report.IMPORT_TARGET)) == 1
    assert len(_target_lines(md, "JAX grid (every cell in its table)")) == 1
    (line,) = _target_lines(md, "torch MSE module, N=1e7")
    assert "0.51x" in line  # judged again on the merged rows: the second run's ratio
    # merging the same run again changes nothing
    again = report.merge(merged, second)
    again["targets"] = report.judge(again)
    assert report.markdown(again) == md


def test_a_legacy_run_merged_gives_no_nested_date_and_one_import_target():
    """The run README was written from: a date nested in itself, the import target twice, no
    target definitions, no dates on the rows."""
    legacy = _run("2026-12-03 12:18 UTC")
    legacy["date"] = ("2026-12-03 12:18 UTC (torch, JAX; Keras: 2026-12-03 12:18 UTC (torch, JAX; Keras: "
                      "2026-12-01 20:05 UTC))")
    legacy["rows"] = [{k: v for k, v in r.items() if k != "date"} for r in legacy["rows"]]
    legacy["backends"]["keras-torch"] = {"keras": "3.15"}
    legacy["rows"] += [_row("keras-torch", "fit-mse", 65536, "loss='mse'", "loss='mse'", 1.0, ""),
                       _row("keras-torch", "fit-mse", 65536, "ours", "loss='mse'", 1.09, "")]
    legacy["targets"] = [*legacy["targets"], legacy["targets"][-1],
                         {"target": "keras-torch fit", "backend": "keras-torch", "measured": 1.09, "limit": 1.03,
                          "at_most": True, "met": False}]
    del legacy["target_defs"]
    merged = report.merge(legacy, _run("2026-12-06 10:00 UTC"))
    merged["targets"] = report.judge(merged)
    md = report.markdown(merged)
    assert "(torch, JAX; Keras:" not in md
    assert len(_target_lines(md, report.IMPORT_TARGET)) == 1
    assert len(_target_lines(md, "keras-torch fit")) == 1
    header = md.splitlines()[2]
    assert "keras-torch (keras 3.15): date unknown" in header
    assert all(report.DATE.fullmatch(d) for d in re.findall(r"\d{4}-\d\d-\d\d[^,;]*UTC", header))


def test_check_headings_refuses_a_repeated_heading():
    report.check_headings("# A\n\n## B\n\n## C\n")
    with pytest.raises(ValueError, match="'## B' repeats"):
        report.check_headings("# A\n\n## B\n\ntext\n\n## B\n")


def test_update_blocks_replaces_between_markers_and_is_idempotent(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n<!-- benchmarks:targets -->\nold\n<!-- /benchmarks:targets -->\n\nprose\n")
    blocks = report.docs_blocks(_run("2026-12-06 10:00 UTC"))
    report.update_blocks(page, {"targets": blocks["targets"]})
    once = page.read_text()
    assert "old" not in once and once.count("| target | measured (IQR) | limit | met |") == 1
    assert once.endswith("<!-- /benchmarks:targets -->\n\nprose\n")
    report.update_blocks(page, {"targets": blocks["targets"]})
    assert page.read_text() == once


@pytest.mark.parametrize("text", ["# Page\n\nno markers\n",
                                  "<!-- benchmarks:targets -->\n<!-- /benchmarks:targets -->\n"
                                  "<!-- benchmarks:targets -->\n<!-- /benchmarks:targets -->\n",
                                  "<!-- /benchmarks:targets -->\n<!-- benchmarks:targets -->\n"])
def test_update_blocks_refuses_missing_repeated_or_reversed_markers(tmp_path, text):
    page = tmp_path / "page.md"
    page.write_text(text)
    with pytest.raises(ValueError, match="once each"):
        report.update_blocks(page, {"targets": "| x |"})
    assert page.read_text() == text


def test_readme_gets_the_headline_rows_once(tmp_path):
    result = _run("2026-12-01 10:00 UTC")
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{report.README_START}\nold\n{report.README_END}\n\nafter\n", encoding="utf-8")
    for _ in range(2):  # idempotent
        report.update_readme(readme, result)
    text = readme.read_text(encoding="utf-8")
    block = text[text.index(report.README_START):text.index(report.README_END)]
    assert "old" not in block and text.endswith("after\n") and text.count(report.README_START) == 1
    rows = [line for line in block.splitlines() if line.startswith("| torch")]
    assert rows == ["| torch `MSELoss()`, 1e7 elements | 1.01x | `torch.nn.MSELoss` |"]  # only what was measured
    assert "Measured" not in block and block.count("| loss | time ratio | against |") == 1
