"""A quiet first run: the frameworks' C++ start-up logging is kept out of the user's output
when the adapters import a framework (mse_adapters/_quiet.py), nothing else on stderr is
lost, and the demo's table prints no signed zero."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from mse_adapters import _quiet
from mse_adapters.demo import _fmt

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: What TensorFlow 2.21 prints while loading (the pre-initialisation banner and an INFO line),
#: a warning, a Python line and a continuation, in that order.
STDERR = (_quiet.BANNER + b"\n"
          b"I0000 00:00:1796589643.675283   12445 port.cc:153] oneDNN custom operations are on.\n"
          b"W0000 00:00:1796589643.675283   12445 x.cc:1] a warning\n"
          b"/a/b.py:3: UserWarning: a Python warning\n"
          b"  warnings.warn('a Python warning')\n")


@pytest.mark.parametrize("level,dropped", [(0, 0), (1, 2), (2, 3)])
def test_lines_below_the_level_and_the_banner_are_dropped(level: int, dropped: int) -> None:
    kept = _quiet.kept(STDERR, level).splitlines()
    assert len(kept) == len(STDERR.splitlines()) - dropped
    assert kept[-2:] == STDERR.splitlines()[-2:]  # Python's own lines are never dropped
    assert (b"oneDNN" in b"".join(kept)) == (level == 0)


def test_stderr_is_written_back_when_the_import_fails(capfd: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    with pytest.raises(ImportError), _quiet.framework_import():
        os.write(2, STDERR)
        raise ImportError("no such framework")
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == _quiet.DEFAULT_LEVEL
    err = capfd.readouterr().err
    assert "a warning" in err and "a Python warning" in err
    assert "oneDNN" not in err and "absl::InitializeLog" not in err


def test_a_level_the_user_set_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    with _quiet.framework_import():
        pass
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_the_adapters_import_their_framework_quietly(backend: str) -> None:
    """A fresh process on each Keras backend imports both adapters and seeds Keras (which
    imports TensorFlow by itself on the other backends): nothing on stderr."""
    if any(importlib.util.find_spec(m) is None for m in ("keras", backend)):
        pytest.skip(f"keras or {backend} is not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    env.update(KERAS_BACKEND=backend, PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""))
    code = ("import mse_adapters.keras, keras\n"
            "keras.utils.set_random_seed(0)\n"
            "import importlib.util\n"
            "if importlib.util.find_spec('jax'):\n"
            "    import mse_adapters.jax\n"
            "print(keras.backend.backend())")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == backend, proc
    assert proc.stderr == "", proc.stderr


def test_the_demo_prints_no_signed_zero() -> None:
    assert _fmt(np.array([-0.0, -1e-9, 0.5, -0.25])) == "[ 0.00000  0.00000  0.50000 -0.25000]"
    assert _fmt(np.float32(-0.0)) == _fmt(0.0) == " 0.0000000"
    assert _fmt(-1e-9) == " 0.0000000" and _fmt(-0.5) == "-0.5000000"
