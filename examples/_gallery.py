"""What the gallery's examples share: matplotlib on the Agg backend (no display needed) and
where the figures go: the directory in ``MSE_ADAPTERS_FIGURES`` (the docs build sets
docs/figures), else ``mse_adapters_figures`` in the system's temporary directory. Figures
are build outputs, never committed."""

from __future__ import annotations

import os
import pathlib
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plt", "save"]


def figures_dir() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("MSE_ADAPTERS_FIGURES") or pathlib.Path(tempfile.gettempdir(),
                                                                                  "mse_adapters_figures"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def save(fig: plt.Figure, name: str) -> pathlib.Path:
    """Write ``fig`` as ``<figures dir>/<name>.png`` and say where."""
    path = figures_dir() / f"{name}.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    print(f"figure: {path}")
    return path
