"""The preset table's bindings (docs/design.md, "Bindings"): generated from the tables into
each adapter, current, with the row's parameters, and seen by static tools (mypy rejects a
wrong keyword as for hand-written code)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pathlib
import textwrap

import pytest

from mse_adapters import _bindings
from mse_adapters._presets import PRESET_TABLE

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: the adapters whose framework is installed, with the module that holds their bindings
INSTALLED = [eco for eco, need in (("numpy", "numpy"), ("torch", "torch"), ("jax", "jax"), ("keras", "keras"))
             if importlib.util.find_spec(need) is not None]


def test_the_generated_regions_are_current():
    assert _bindings.check() == [], "run: python -m mse_adapters._bindings"


def test_the_generator_rewrites_a_stale_region(tmp_path, monkeypatch):
    adapter = tmp_path / "numpy" / "__init__.py"
    adapter.parent.mkdir()
    adapter.write_text(f"before\n{_bindings.BEGIN}\nstale\n{_bindings.END}\nafter\n", encoding="utf-8")
    monkeypatch.setattr(_bindings, "_path", lambda eco: adapter)
    monkeypatch.setattr(_bindings, "ADAPTERS", {"numpy": _bindings.ADAPTERS["numpy"]})
    assert _bindings.check() == [str(adapter)]
    assert _bindings.write() == [str(adapter)]
    text = adapter.read_text(encoding="utf-8")
    assert text.startswith("before\n") and text.endswith("\nafter\n") and "stale" not in text
    assert _bindings.check() == [] and _bindings.write() == []


@pytest.mark.parametrize("eco", INSTALLED)
def test_every_row_is_bound_with_its_parameters(eco):
    module = importlib.import_module(f"mse_adapters.{eco}")
    for row in PRESET_TABLE:
        fields = {a.name: a.default for a in _bindings.row_args(row, eco, "")}
        for name in row.names(eco):
            obj = getattr(module, name)
            assert name in module.__all__
            params = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj).parameters
            for field, default in fields.items():
                if eco == "keras" and field == "reduction":
                    continue  # Keras' own reduction names and default
                assert params[field].default == default, (eco, name, field)
            assert obj.__doc__ and row.title in obj.__doc__ or "Functional" in obj.__doc__


_SNIPPET = {
    "numpy": ("import mse_adapters.numpy as mnp", "mnp.huber([0.0], [1.0], delta=0.5)",
              "mnp.huber([0.0], [1.0], deltaa=0.5)"),
    "torch": ("import torch\nimport mse_adapters.torch as mt",
              "mt.HuberLoss(delta=0.5)\nmt.huber_loss(torch.zeros(1), torch.zeros(1), delta=0.5)",
              "mt.HuberLoss(deltaa=0.5)\nmt.huber_loss(torch.zeros(1), torch.zeros(1), deltaa=0.5)"),
    "jax": ("import mse_adapters.jax as mj", "mj.huber([0.0], [1.0], delta=0.5)", "mj.huber([0.0], [1.0], deltaa=0.5)"),
    "keras": ("import mse_adapters.keras as mk", "mk.Huber(delta=0.5)", "mk.Huber(deltaa=0.5)"),
}
#: mypy reads the package's source and skips the frameworks' own (their stubs are large).
_MYPY_INI = """[mypy]
ignore_missing_imports = True
incremental = False
[mypy-mse_adapters.*]
follow_imports = silent
[mypy-torch.*,jax.*,jaxlib.*,keras.*,tensorflow.*,optax.*,scipy.*,ml_dtypes.*,torchmetrics.*]
follow_imports = skip
"""


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_mypy_reports_a_wrong_keyword(tmp_path):
    from mypy import api

    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text("\n".join(f"{_SNIPPET[e][0]}\n{_SNIPPET[e][1]}" for e in INSTALLED) + "\n", encoding="utf-8")
    bad.write_text("\n".join(f"{_SNIPPET[e][0]}\n{_SNIPPET[e][2]}" for e in INSTALLED) + "\n", encoding="utf-8")
    ini = tmp_path / "mypy.ini"
    ini.write_text(_MYPY_INI, encoding="utf-8")
    flags = ["--config-file", str(ini), "--cache-dir", str(tmp_path / "cache")]
    env_path = os.environ.get("MYPYPATH")
    os.environ["MYPYPATH"] = str(ROOT)
    try:
        out_good, _, status_good = api.run([*flags, str(good)])
        out_bad, _, status_bad = api.run([*flags, str(bad)])
    finally:
        if env_path is None:
            os.environ.pop("MYPYPATH", None)
        else:
            os.environ["MYPYPATH"] = env_path
    assert status_good == 0, out_good
    wrong = [line for line in out_bad.splitlines() if 'Unexpected keyword argument "deltaa"' in line]
    expected = sum(_SNIPPET[e][2].count("deltaa") for e in INSTALLED)
    assert status_bad == 1 and len(wrong) == expected, textwrap.shorten(out_bad, 2000)
