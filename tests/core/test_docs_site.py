"""The docs site's pages: their examples run and print what they say, and the gallery is
complete (every example that draws a figure has a page, every page's example exists). The
site itself is built by `nox -s docs` (`mkdocs build --strict`)."""

from __future__ import annotations

import doctest
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if ">>>" in p.read_text(encoding="utf-8"))
FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_page_examples(page: pathlib.Path) -> None:
    result = doctest.testfile(str(page), module_relative=False, optionflags=FLAGS)
    assert result.attempted > 0 and result.failed == 0


def test_the_gallery_is_complete() -> None:
    marker = re.compile(r"<!-- gallery:(\w+) -->")
    named = {n for p in DOCS.rglob("*.md") for n in marker.findall(p.read_text(encoding="utf-8"))}
    drawing = {p.stem for p in (ROOT / "examples").glob("[!_]*.py") if "from _gallery import" in p.read_text()}
    assert named == drawing, (named ^ drawing)
    listed = (DOCS / "gallery" / "index.md").read_text(encoding="utf-8")
    for page in (DOCS / "gallery").glob("*.md"):
        assert page.name == "index.md" or f"({page.name})" in listed, page.name


def _hooks() -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_hook_fences_doctests_and_roles() -> None:
    fence = _hooks()._DoctestFences.fence  # type: ignore[attr-defined]
    lines = ["See :func:`bias_variance` and :class:`~mse_adapters.LossSpec`.", "", "    >>> f(1)", "    2", "",
             "```python", ">>> kept(1)", ":func:`kept`", "```"]
    assert fence(lines) == ["See `bias_variance` and `mse_adapters.LossSpec`.", "", "", "    ```pycon",
                            "    >>> f(1)", "    2", "    ```", "", "", "```python", ">>> kept(1)", ":func:`kept`",
                            "```"]


def test_the_hook_generates_the_conformance_tables() -> None:
    from tests.conformance import cases
    from tests.conformance.harness import TOLERANCE

    hooks = _hooks()
    tolerance = hooks._tolerance()  # type: ignore[attr-defined]
    for dtype, (rtol, _) in TOLERANCE.items():
        assert f"| {dtype} | {rtol:g} |" in tolerance
    assert f"**{len(cases.all_cases())}**" in hooks._grid()  # type: ignore[attr-defined]
