"""The frameworks' start-up logging, kept out of the user's output (framework-free).

TensorFlow and XLA (which JAX shares) log from C++ through absl, to the process' stderr.
What a first run meets, measured with tensorflow-cpu 2.21 on ``import keras`` (TensorFlow
backend), and what silences it:

* Lines logged while TensorFlow's libraries load, before absl's logging is initialised:
  ``WARNING: All log messages before absl::InitializeLog() is called are written to STDERR``
  and ``I0000 ... port.cc:153] oneDNN custom operations are on ...`` (twice: two libraries).
  ``TF_CPP_MIN_LOG_LEVEL`` does not reach them (levels 1, 2 and 3 all print them); only
  ``TF_ENABLE_ONEDNN_OPTS=0`` does, by switching oneDNN's kernels off, which changes
  TensorFlow's speed and numerics: not ours to change. So while the framework is imported,
  file descriptor 2 goes to a temporary file, and its lines are written back afterwards,
  less the banner and those below ``TF_CPP_MIN_LOG_LEVEL`` (what that level would have
  hidden had it applied): nothing else is dropped, nothing is lost if the import fails.
* Lines logged later (``I... cpu_feature_guard.cc] This TensorFlow binary is optimized ...``
  at import, XLA's ``service.cc] XLA service ... initialized`` and the like when a step is
  compiled): ``TF_CPP_MIN_LOG_LEVEL`` applies. It defaults here to ``1`` (INFO off, warnings
  and errors kept) when the user has not set it; a value the user set is kept.
* On Keras' JAX and torch backends, Keras imports TensorFlow (when it is installed) later
  and by itself, e.g. in ``keras.utils.set_random_seed`` (to seed ``tf.random`` too) or for
  ``tf.data``: not through here. There TensorFlow computes no model, and
  ``TF_ENABLE_ONEDNN_OPTS`` defaults to ``0`` (oneDNN's kernels off for TensorFlow's side
  work), which keeps its load quiet; a value the user set is kept, and nothing is set when
  TensorFlow was imported already.

Only the package's own imports of a framework go through here (:mod:`mse_adapters.keras`,
:mod:`mse_adapters.jax`); a framework the user imported first is theirs, as is its output.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

__all__ = ["framework_import", "tensorflow_on_the_side"]

#: The level set when the user has set none: INFO off, warnings and errors kept.
DEFAULT_LEVEL = "1"
#: The banner absl prints before its first line logged ahead of initialisation.
BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
#: An absl log line: severity, date, time, thread, file:line].
ABSL_LINE = re.compile(rb"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] ")
SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}


def _level() -> int:
    """``TF_CPP_MIN_LOG_LEVEL`` (set to the default first, if the user has not set it)."""
    value = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", DEFAULT_LEVEL)
    try:
        return int(value)
    except ValueError:
        return 0  # TensorFlow reads an unparsable level as 0: hide nothing


def kept(text: bytes, level: int) -> bytes:
    """``text`` (what was written to stderr) less the absl banner and the absl lines of a
    severity below ``level``."""
    if level <= 0:
        return text
    lines = text.splitlines(keepends=True)
    out = [line for line in lines if line.rstrip(b"\r\n") != BANNER
           and not ((m := ABSL_LINE.match(line)) and SEVERITY[m.group(1)] < level)]
    return b"".join(out)


def tensorflow_on_the_side() -> None:
    """Keras runs on another backend: TensorFlow, if Keras imports it later, does side work
    only, so its oneDNN kernels default to off, which keeps its load quiet (module docstring)."""
    if "tensorflow" not in sys.modules:
        _level()
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


@contextlib.contextmanager
def framework_import() -> Iterator[None]:
    """Import a framework inside this context: its C++ start-up logging is filtered as the
    module docstring says. A no-op for the stderr filter where stderr has no descriptor."""
    level = _level()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no stderr descriptor (e.g. pythonw)
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = kept(capture.read(), level)
            while text:
                text = text[os.write(2, text):]
