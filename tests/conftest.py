"""Session summary: cases run and the largest disagreement with the reference, per backend
and dtype, and the hypothesis examples run (the numbers the issue notes quote)."""

from __future__ import annotations

import collections
from typing import Any

import pytest

#: Hypothesis examples per test (node id): [valid, every example tried].
EXAMPLES: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])


def _count(nodeid: str, stats: dict[str, Any]) -> None:
    """Add one hypothesis run's statistics (``hypothesis.statistics``: per phase, a list of
    test cases with their status) to :data:`EXAMPLES`."""
    for phase in stats.values():
        if isinstance(phase, dict):
            for case in phase.get("test-cases", ()):
                EXAMPLES[nodeid][1] += 1
                EXAMPLES[nodeid][0] += case.get("status") == "valid"


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_call(item):  # noqa: ANN001
    """Inside hypothesis' own pytest hook (trylast: the innermost wrapper), which installs its
    statistics collector for every @given test: ours counts, then hands the statistics on."""
    try:
        from hypothesis.statistics import collector
    except ImportError:  # pragma: no cover - hypothesis not installed
        yield
        return
    outer = collector.value

    def note(stats: dict[str, Any]) -> None:
        _count(item.nodeid, stats)
        if outer is not None:
            outer(stats)

    with collector.with_value(note):
        yield


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    tr = terminalreporter
    if EXAMPLES:
        valid = sum(v for v, _ in EXAMPLES.values())
        tried = sum(t for _, t in EXAMPLES.values())
        tr.section("hypothesis: examples run")
        by_file: dict[str, int] = collections.Counter()
        for nodeid, (v, _) in EXAMPLES.items():
            by_file[nodeid.split("::")[0]] += v
        for name, v in sorted(by_file.items()):
            tr.write_line(f"{name:50s} {v:6d}")
        tr.write_line(f"{'total':50s} {valid:6d} valid examples ({tried} tried) in {len(EXAMPLES)} tests")
    try:
        from tests.conformance.harness import COUNTS, WORST
    except Exception:  # pragma: no cover - harness not imported in this run
        return
    if not COUNTS:
        return
    tr.section("conformance: largest relative disagreement with the float64 reference")
    for name in sorted(COUNTS):
        worst = ", ".join(f"{dt} {err:.2e}" for (b, dt), err in sorted(WORST.items()) if b == name)
        tr.write_line(f"{name:18s} {COUNTS[name]:6d} checks   {worst}")
