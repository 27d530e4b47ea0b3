"""Every tolerance comes from the one table: ``TOLERANCE`` in tests/conformance/harness.py,
used through its ``assert_close``. No test file writes a tolerance as a number of its own
(an rtol or atol keyword given a numeric literal, or a module constant named like a
tolerance bound to one); a test that needs another bound names an entry of the table."""

from __future__ import annotations

import pathlib
import re

import pytest

TESTS = pathlib.Path(__file__).resolve().parents[1]
HARNESS = TESTS / "conformance" / "harness.py"
SELF = pathlib.Path(__file__).resolve()  # its examples below are literals on purpose

#: ``rtol=`` / ``atol=`` / ``rtol_scale=`` (any case, spaces allowed) followed by a number: 1e-6, .5, (2e-3 * x)...
KEYWORD = re.compile(r"\b([ra]tol|rtol_scale)\b['\"]?\s*[=:]\s*[-+(\s]*(\d|\.\d)", re.IGNORECASE)
#: ``RTOL = 1e-12``, ``RTOL, ATOL = 1e-12, 1e-13``, ``RTOL32 = 2e-6``: a tolerance-named constant bound to a number
CONSTANT = re.compile(r"^[ \t]*[A-Z_0-9]*TOL[A-Z_0-9]*\s*(,\s*[A-Z_0-9]+\s*)*(:[^=]*)?=\s*[-+(\s]*(\d|\.\d)",
                      re.MULTILINE)

#: Folders being converted on other branches (none now): their literals are reported as expected failures
#: (xfail) until those branches land.
PENDING: tuple[str, ...] = ()


def literal_tolerances(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every numeric tolerance literal in ``text``."""
    found = {text.count("\n", 0, m.start()) + 1 for rx in (KEYWORD, CONSTANT) for m in rx.finditer(text)}
    lines = text.splitlines()
    return [(n, lines[n - 1].strip()) for n in sorted(found)]


def _files() -> list:
    params = []
    for path in sorted(TESTS.rglob("*.py")):
        if path in (HARNESS, SELF):
            continue
        rel = path.relative_to(TESTS).as_posix()
        marks = [pytest.mark.xfail(strict=True, reason="converted on another branch")] if (
            rel.startswith(PENDING) and literal_tolerances(path.read_text(encoding="utf-8"))) else []
        params.append(pytest.param(path, id=rel, marks=marks))
    return params


@pytest.mark.parametrize("path", _files())
def test_no_literal_tolerance(path):
    hits = literal_tolerances(path.read_text(encoding="utf-8"))
    assert not hits, f"{path.relative_to(TESTS)}: tolerances not from the harness table: " + "; ".join(
        f"line {n}: {line}" for n, line in hits)


@pytest.mark.parametrize("text,hits", [
    ("np.testing.assert_allclose(a, b, rtol=1e-6)", 1),
    ("assert_allclose(a, b, atol = .5)", 1),
    ("np.isclose(a, b, rtol=1e-5, atol=1e-6)", 1),
    ("close(a, b,\n    atol=2e-2)", 1),
    ("f(a, b, rtol=RTOL)", 0),
    ('tol = {"rtol": 2e-6, "atol": 1e-7}', 1),
    ("tol = {'atol': .5}", 1),
    ('tol = {"rtol": TOLERANCE["float32"][0]}', 0),
    ("assert_close(a, b, 'float32', 'x', rtol_scale=10.0)", 1),
    ("assert_close(a, b, 'float32', 'x', rtol_scale=ABSOLUTE_ONLY)", 0),
    ("RTOL, ATOL = 1e-12, 1e-13\n", 1),
    ("RTOL32 = 2e-6\n", 1),
    ("RTOL = TOLERANCE['float32'][0]\n", 0),
])
def test_the_scan_finds_literals(text, hits):
    assert len(literal_tolerances(text)) == hits
