"""Session summary: cases run and the largest disagreement with the reference, per backend
and dtype (the numbers the issue notes quote)."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    try:
        from tests.conformance.harness import COUNTS, WORST
    except Exception:  # pragma: no cover - harness not imported in this run
        return
    if not COUNTS:
        return
    tr = terminalreporter
    tr.section("conformance: largest relative disagreement with the float64 reference")
    for name in sorted(COUNTS):
        worst = ", ".join(f"{dt} {err:.2e}" for (b, dt), err in sorted(WORST.items()) if b == name)
        tr.write_line(f"{name:18s} {COUNTS[name]:6d} checks   {worst}")
