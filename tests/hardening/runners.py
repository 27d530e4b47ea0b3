"""How each backend runs a catalogue entry: build the loss, convert the arrays, call it.

Runners: ``numpy`` (the reference), ``torch``, ``jax`` (eager) and ``keras-<backend>`` (the
Keras backend of this process: it is fixed per process, so nox runs this folder once per
Keras backend). :data:`TRACED` holds the same backends with the call traced (``jax-jit``,
``keras-tensorflow`` under ``tf.function``, ``keras-jax`` under ``jax.jit``), for
tests/hardening/test_traced.py.

``MSE_ADAPTERS_TEST_BACKENDS`` (comma-separated name prefixes, e.g. ``keras``) restricts the
runners, as it restricts the conformance backends; the NumPy reference that the messages
are compared with always runs.

Adding a backend is adding a runner to :data:`RUNNERS`.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from mse_adapters import preset

from .catalogue import MATRICES, Entry

HAVE = {m: importlib.util.find_spec(m) is not None for m in ("torch", "jax", "tensorflow", "keras")}
WANTED = [w for w in os.environ.get("MSE_ADAPTERS_TEST_BACKENDS", "").split(",") if w]


def selected(name: str) -> bool:
    """Whether ``MSE_ADAPTERS_TEST_BACKENDS`` lets the backend ``name`` run."""
    return not WANTED or any(name.startswith(w) for w in WANTED)


def foreign_array(x: np.ndarray, own: str) -> Any:
    """``x`` as an array of a framework other than ``own``."""
    if own != "torch" and HAVE["torch"]:
        import torch

        return torch.as_tensor(x)
    if own != "jax" and HAVE["jax"]:
        import jax.numpy as jnp

        return jnp.asarray(x)
    raise RuntimeError("needs a second framework")  # pragma: no cover


def _takes(fn: Callable[..., Any], name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - a builtin
        return False


class Runner:
    name: str
    own: str  # the framework whose arrays this backend takes
    pred_name: str
    target_name: str
    traced: bool = False  # the call runs on traced arrays (jit, tf.function)
    aligns_rank: bool = False  # Keras: a trailing 1 is squeezed (entries marked keras_aligns)
    #: where the backend takes a matrix (covariance, scale_tril, precision) and var:
    #: "build", "call", or None (not implemented: the entry is skipped, naming the backend)
    matrix_at: str | None = None
    var_at: str | None = None

    def __repr__(self) -> str:
        return self.name

    def lacks(self, entry: Entry) -> str | None:
        """Why this backend cannot run ``entry`` (None: it can)."""
        if entry.matrices() and self.matrix_at is None:
            return (f"{self.name} does not take covariance/scale_tril/precision yet "
                    "(the whitening stage, docs/design.md, Whitening)")
        if "gaussian_nll" in entry.needs and self.var_at is None:
            return f"{self.name} does not implement penalty='gaussian_nll' with var yet"
        if entry.foreign and self.own == "numpy" and not (HAVE["torch"] or HAVE["jax"]):
            return "needs a second framework installed"  # pragma: no cover
        return None

    def build(self, entry: Entry, check_values: bool = True, **structured: Any) -> Callable[..., Any]:
        raise NotImplementedError

    def convert(self, name: str, x: Any) -> Any:
        raise NotImplementedError

    def structured(self, entry: Entry, at: str) -> dict[str, Any]:
        """The entry's matrices and var that this backend takes at ``at`` (build or call)."""
        out = {k: self.convert(k, np.asarray(v)) for k, v in entry.matrices().items() if self.matrix_at == at}
        if entry.var is not None and self.var_at == at:
            out["var"] = self.convert("var", np.asarray(entry.var))
        return out

    def run(self, entry: Entry, check_values: bool = True) -> Any:
        fn = self.build(entry, check_values, **self.structured(entry, "build"))
        a = entry.arrays()
        args = {k: (None if v is None else self.convert(k, np.asarray(v))) for k, v in a.items()}
        if entry.foreign:
            args[entry.foreign] = foreign_array(np.asarray(a[entry.foreign]), self.own)
        return self.call(fn, args, self.structured(entry, "call"))

    def call(self, fn: Callable[..., Any], a: dict[str, Any], kw: dict[str, Any]) -> Any:
        raise NotImplementedError

    def words(self, entry: Entry) -> list[str]:
        return [w.format(pred=self.pred_name, target=self.target_name) for w in entry.words]

    def unwrap(self, msg: str, exc: type[Exception]) -> str:
        """The loss's own message. (AutoGraph, the default of ``tf.function``, re-raises an
        error raised while tracing as the same type with the user-code traceback before the
        original message, which it ends with: ``in user code: ... ValueError: <message>``.)"""
        head = f"{exc.__name__}: "
        if msg.startswith("in user code:") and head in msg:
            return msg[msg.rindex(head) + len(head):].rstrip("\n")
        return msg


class NumpyRunner(Runner):
    name, own, pred_name, target_name = "numpy", "numpy", "y_pred", "y_true"
    matrix_at = var_at = "call"

    def build(self, entry: Entry, check_values: bool = True, **structured: Any) -> Callable[..., Any]:
        from mse_adapters import numpy as mnp

        return mnp.compile(preset(entry.spec[0], **entry.spec[1]))

    def convert(self, name: str, x: Any) -> Any:
        return x

    def call(self, fn: Callable[..., Any], a: dict[str, Any], kw: dict[str, Any]) -> Any:
        return fn(a["target"], a["pred"], weight=a["weight"], sample_weight=a["sample_weight"], mask=a["mask"],
                  **kw)


class TorchRunner(Runner):
    name, own, pred_name, target_name = "torch", "torch", "input", "target"
    matrix_at, var_at = "build", "call"

    def build(self, entry: Entry, check_values: bool = True, **structured: Any) -> Callable[..., Any]:
        import mse_adapters.torch as mt

        return mt.compile(preset(entry.spec[0], **entry.spec[1]), check_values=check_values, **structured)

    def convert(self, name: str, x: Any) -> Any:
        import torch

        return torch.as_tensor(x)

    def call(self, fn: Callable[..., Any], a: dict[str, Any], kw: dict[str, Any]) -> Any:
        return fn(a["pred"], a["target"], weight=a["weight"], sample_weight=a["sample_weight"], mask=a["mask"],
                  **kw)


class JaxRunner(Runner):
    """The JAX adapter, eagerly, or (``jit=True``) with the call under ``jax.jit``: the arrays
    (predictions, targets, weights, masks, var) are traced, the matrices are constants; with
    ``closed=True`` only the predictions are traced, the rest are constants closed over."""

    own, pred_name, target_name = "jax", "predictions", "targets"

    def __init__(self, jit: bool = False, closed: bool = False) -> None:
        import mse_adapters.jax as mj

        self.jit = self.traced = jit
        self.closed = closed
        self.name = ("jax-jit" + ("-constants" if closed else "")) if jit else "jax"
        call = mj.Loss.__call__
        self.matrix_at = ("build" if _takes(mj.compile, "covariance")
                          else "call" if _takes(call, "covariance") else None)
        self.var_at = ("build" if _takes(mj.compile, "var")
                       else "call" if _takes(call, "var") else None)

    def build(self, entry: Entry, check_values: bool = True, **structured: Any) -> Callable[..., Any]:
        import mse_adapters.jax as mj

        return mj.compile(preset(entry.spec[0], **entry.spec[1]), check_values=check_values, **structured)

    def convert(self, name: str, x: Any) -> Any:
        import jax.numpy as jnp

        a = np.asarray(x)
        if a.dtype.kind in "ic" and jnp.asarray(a).dtype != a.dtype:
            return a  # a NumPy array (also ArrayLike), so that its dtype is not narrowed
        if name in MATRICES:
            return a  # a host constant
        return jnp.asarray(a)

    def call(self, fn: Callable[..., Any], a: dict[str, Any], kw: dict[str, Any]) -> Any:
        import jax

        matrices = {k: v for k, v in kw.items() if k in MATRICES}

        def f(pred: Any, target: Any, weight: Any, sample_weight: Any, mask: Any, var: Any) -> Any:
            extra = {} if var is None else {"var": var}
            return fn(pred, target, weight=weight, sample_weight=sample_weight, mask=mask, **matrices, **extra)

        args = (a["pred"], a["target"], a["weight"], a["sample_weight"], a["mask"], kw.get("var"))
        if self.closed:
            return jax.jit(lambda pred: f(pred, *args[1:]))(args[0])
        return jax.jit(f)(*args) if self.jit else f(*args)


class KerasRunner(Runner):
    """The Keras adapter under this process's Keras backend, eagerly, or (``traced=True``)
    with the call inside ``tf.function`` (TensorFlow) or ``jax.jit`` (JAX)."""

    pred_name, target_name = "y_pred", "y_true"
    aligns_rank = True

    def __init__(self, traced: bool = False, closed: bool = False) -> None:
        import keras

        import mse_adapters.keras as mk

        self.backend = keras.backend.backend()
        self.traced = traced
        self.closed = closed  # traced: only y_pred is an argument, the rest constants
        self.name = f"keras-{self.backend}" + ("-traced" if traced else "") + ("-constants" if closed else "")
        self.own = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[self.backend]
        call = mk.Loss.__call__
        self.matrix_at = "build" if _takes(mk.compile, "covariance") else None
        self.var_at = ("build" if _takes(mk.compile, "var")
                       else "call" if _takes(call, "var") else None)

    def build(self, entry: Entry, check_values: bool = True, **structured: Any) -> Callable[..., Any]:
        import mse_adapters.keras as mk

        return mk.compile(preset(entry.spec[0], **entry.spec[1]), check_values=check_values, **structured)

    def convert(self, name: str, x: Any) -> Any:
        if name in MATRICES:
            return np.asarray(x)  # a host constant
        from tests.conformance.backend_keras import tensor

        return tensor(x)

    def call(self, fn: Callable[..., Any], a: dict[str, Any], kw: dict[str, Any]) -> Any:
        def f(pred: Any, target: Any, weight: Any, sample_weight: Any, mask: Any, var: Any) -> Any:
            extra = {} if var is None else {"var": var}
            return fn(target, pred, sample_weight, weight=weight, mask=mask, **extra)

        args = (a["pred"], a["target"], a["weight"], a["sample_weight"], a["mask"], kw.get("var"))
        if not self.traced:
            return f(*args)
        rest = args[1:]
        g = (lambda pred: f(pred, *rest)) if self.closed else f
        traced = args[:1] if self.closed else args
        if self.backend == "tensorflow":
            import tensorflow as tf

            return tf.function(g)(*traced)
        if self.backend == "jax":
            import jax

            return jax.jit(g)(*traced)
        raise NotImplementedError(self.backend)  # pragma: no cover


def _runners(traced: bool) -> list[Runner]:
    out: list[Runner] = []
    if not traced:
        out.append(NumpyRunner())
        if HAVE["torch"]:
            out.append(TorchRunner())
    if HAVE["jax"]:
        out.append(JaxRunner(jit=traced))
    if HAVE["keras"]:
        import keras

        if not traced or keras.backend.backend() in ("tensorflow", "jax"):
            out.append(KerasRunner(traced=traced))
    return [r for r in out if selected(r.name)]


#: The reference: every other runner's message must equal its message (argument names aside).
REFERENCE = NumpyRunner()
#: Every installed backend, eager.
RUNNERS: list[Runner] = _runners(traced=False)
#: The backends whose calls can be traced, traced (torch.compile: tests/hardening/test_traced.py).
TRACED: list[Runner] = _runners(traced=True)
