"""The docs build's hooks (``hooks:`` in mkdocs.yml).

- ``on_pre_build``: runs every gallery example a page names (``<!-- gallery:NAME -->`` runs
  ``examples/NAME.py``) with ``MSE_ADAPTERS_FIGURES=docs/figures``, so that each writes its
  figure ``docs/figures/NAME.png``; what it prints is kept as ``docs/figures/NAME.txt``. An
  example that fails, or writes no figure, fails the build. The figures are build outputs
  (docs/figures/ is ignored by git), drawn by the library at build time.
- ``on_config``: adds a Markdown preprocessor that fences doctest blocks (lines from ``>>>``
  to the next blank line) as ``pycon`` code, in the pages and in the docstrings the API
  reference renders (Markdown would read ``>>>`` as nested block quotes), and shows the
  docstrings' Sphinx roles (``:func:`x` ``) as code.
- ``on_page_markdown``: expands the markers: ``<!-- gallery:NAME -->`` into the figure, the
  printed output and the source; ``<!-- generated:WHAT -->`` into a table computed from the
  code (the conformance tolerances and grid, the penalty formulas) or read from the
  benchmark results.

``MSE_ADAPTERS_DOCS_JOBS`` (default 2) examples run at a time. ``MSE_ADAPTERS_DOCS_REUSE=1``
(for editing the pages, e.g. under ``mkdocs serve``) keeps a figure that is newer than its
example and the gallery's helpers instead of running the example again; CI never sets it.
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
import re
import subprocess
import sys
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FIGURES = DOCS / "figures"
EXAMPLES = ROOT / "examples"
GALLERY = re.compile(r"<!-- gallery:([A-Za-z0-9_]+) -->")
GENERATED = re.compile(r"<!-- generated:([A-Za-z0-9_]+) -->")
TIMEOUT_S = 300
SPHINX_ROLE = re.compile(r":(?:mod|func|class|meth|attr|data|obj):`~?([^`]+)`")  # docstrings' roles: code
ISSUE_REF = re.compile(r" \(issues? \d+(?:, \d+)*\)")

_log: dict[str, float] = {}


class BuildError(Exception):
    pass


def _error(message: str) -> Exception:
    try:
        from mkdocs.exceptions import PluginError

        return PluginError(message)
    except ImportError:  # pragma: no cover - only under mkdocs
        return BuildError(message)


def gallery_names() -> list[str]:
    """The examples the pages name, in order of first appearance."""
    names: list[str] = []
    for page in sorted(DOCS.rglob("*.md")):
        for name in GALLERY.findall(page.read_text(encoding="utf-8")):
            if name not in names:
                names.append(name)
    return names


def _fresh(name: str) -> bool:
    outputs = [FIGURES / f"{name}.png", FIGURES / f"{name}.txt"]
    if os.environ.get("MSE_ADAPTERS_DOCS_REUSE") != "1" or not all(p.is_file() for p in outputs):
        return False
    sources = [EXAMPLES / f"{name}.py", EXAMPLES / "_gallery.py"]
    return min(p.stat().st_mtime for p in outputs) > max(p.stat().st_mtime for p in sources)


def _run(name: str) -> tuple[str, float]:
    script = EXAMPLES / f"{name}.py"
    if not script.is_file():
        raise _error(f"a page names the gallery example {name!r}, but {script} does not exist")
    if _fresh(name):
        return name, 0.0
    env = dict(os.environ, MSE_ADAPTERS_FIGURES=str(FIGURES), MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise _error(f"examples/{name}.py ran past {TIMEOUT_S} s") from e
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise _error(f"examples/{name}.py failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    if not (FIGURES / f"{name}.png").is_file():
        raise _error(f"examples/{name}.py wrote no figure {name}.png")
    lines = [ln for ln in proc.stdout.splitlines() if not ln.startswith("figure: ")]
    (FIGURES / f"{name}.txt").write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return name, elapsed


class _DoctestFences:
    """The preprocessor (a Python-Markdown extension, built lazily: Markdown is mkdocs')."""

    @staticmethod
    def fence(lines: list[str]) -> list[str]:
        out: list[str] = []
        i, fenced = 0, False
        while i < len(lines):
            line = lines[i]
            stripped = line.lstrip()
            if stripped.startswith(("```", "~~~")):
                fenced = not fenced
            if fenced or not stripped.startswith(">>>"):
                out.append(line if fenced else SPHINX_ROLE.sub(r"`\1`", line))
                i += 1
                continue
            indent = line[: len(line) - len(stripped)]
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
                i += 1
            out += ["", f"{indent}```pycon", *(f"{indent}{b}" for b in block), f"{indent}```", ""]
        return out

    @classmethod
    def extension(cls) -> Any:
        from markdown import Extension
        from markdown.preprocessors import Preprocessor

        class Fences(Preprocessor):
            def run(self, lines: list[str]) -> list[str]:
                return cls.fence(lines)

        class DoctestExtension(Extension):
            def extendMarkdown(self, md: Any) -> None:  # noqa: N802 - Markdown's API
                md.preprocessors.register(Fences(md), "doctest_fences", 40)

        return DoctestExtension()


def _on_config(config: Any, **kwargs: Any) -> Any:
    # The API reference imports the adapters (their classes and functions are generated from
    # the preset table); Keras' backend is fixed by its first import.
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    config.markdown_extensions.append(_DoctestFences.extension())
    return config


try:  # before mkdocstrings reads the extensions
    from mkdocs.plugins import event_priority

    on_config = event_priority(100)(_on_config)
except ImportError:  # pragma: no cover - only under mkdocs
    on_config = _on_config


def on_pre_build(config: Any, **kwargs: Any) -> None:
    FIGURES.mkdir(parents=True, exist_ok=True)
    names = gallery_names()
    jobs = max(1, int(os.environ.get("MSE_ADAPTERS_DOCS_JOBS", "2")))
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        for name, elapsed in pool.map(_run, names):
            _log[name] = elapsed
            print(f"INFO    -  gallery: examples/{name}.py ran in {elapsed:.1f} s")
    print(f"INFO    -  gallery: {len(names)} examples in {time.perf_counter() - start:.1f} s ({jobs} at a time)")


# ---------------------------------------------------------------------------------------
# Markers
# ---------------------------------------------------------------------------------------


def _gallery_block(name: str, page_dir: str) -> str:
    figure = os.path.relpath(f"figures/{name}.png", page_dir or ".").replace(os.sep, "/")
    output = (FIGURES / f"{name}.txt").read_text(encoding="utf-8") if (FIGURES / f"{name}.txt").is_file() else ""
    source = (EXAMPLES / f"{name}.py").read_text(encoding="utf-8")
    return (f"![{name}]({figure})\n\n"
            f"What `python examples/{name}.py` prints:\n\n```text\n{output.rstrip()}\n```\n\n"
            f'??? note "The source: examples/{name}.py"\n\n'
            + "".join(f"    {ln}\n" if ln else "\n" for ln in f"```python\n{source.rstrip()}\n```".splitlines()))


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _tolerance() -> str:
    sys.path.insert(0, str(ROOT))
    from tests.conformance.harness import TOLERANCE

    # the dtypes' entries first, then the named ones (a special case each: see harness.py)
    dtypes = ("float64", "float32", "float16", "bfloat16")
    order = [k for k in dtypes if k in TOLERANCE] + [k for k in TOLERANCE if k not in dtypes]
    return _table(["dtype or named case", "relative tolerance", "absolute floor"],
                  [[k, f"{TOLERANCE[k][0]:g}", f"{TOLERANCE[k][1]:g}"] for k in order])


def _grid() -> str:
    sys.path.insert(0, str(ROOT))
    from tests.conformance import cases

    groups = [("the grid: preset x reduction x weighting option x per-sample stage x shape", cases.grid),
              ("multioutput (RMSE, NMSE, R^2 with every scikit-learn choice)", cases.multioutput_cases),
              ("edge cases", cases.edge_cases),
              ("structured (covariance, scale_tril, precision, Gaussian NLLs, unit norm)", cases.structured_cases)]
    rows = [[what, str(sum(1 for _ in make()))] for what, make in groups]
    rows.append(["**all cases** (each in every dtype a backend supports, value and gradients)",
                 f"**{len(cases.all_cases())}**"])
    return _table(["cases", "count"], rows)


def _penalties() -> str:
    from mse_adapters._penalties import PENALTY_TABLE

    rows = []
    for name, p in PENALTY_TABLE.items():
        params = ", ".join(q.name for q in p.params) or "-"
        rows.append([f"`{name}`", params, p.formula.replace("|", "\\|"), "yes" if p.smooth else "no"])
    return _table(["penalty", "parameters", "rho(r)", "twice differentiable"], rows)


def _results(name: str, fallback: str) -> str:
    path = ROOT / "benchmarks" / "results" / name
    if not path.is_file():
        return fallback
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"^# .*\n", "", text, count=1)  # the page has its own title
    text = re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", text, flags=re.M)  # one level down
    return ISSUE_REF.sub("", text)


GENERATORS = {
    "tolerance": _tolerance,
    "grid": _grid,
    "penalties": _penalties,
    "benchmarks": lambda: _results("latest.md", "No benchmark results in this checkout: run `nox -s bench`."),
    "whitening": lambda: _results("whitening.md", "No whitening results in this checkout: run `nox -s bench`."),
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    page_dir = os.path.dirname(page.file.src_uri)

    def generated(m: re.Match[str]) -> str:
        if m.group(1) not in GENERATORS:
            raise _error(f"{page.file.src_uri}: unknown marker {m.group(0)}")
        return GENERATORS[m.group(1)]()

    markdown = GALLERY.sub(lambda m: _gallery_block(m.group(1), page_dir), markdown)
    return GENERATED.sub(generated, markdown)
