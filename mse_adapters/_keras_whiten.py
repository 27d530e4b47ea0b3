"""Keras side of the transform stage and the Gaussian likelihoods (DESIGN §4).

Kept out of :mod:`mse_adapters.keras` so that the plain losses' code is unchanged: a loss whose
spec has no transform never comes here but for one ``None`` check per call.

- A CONSTANT matrix (a covariance, a ``scale_tril`` that is not a trainable ``keras.Variable``,
  a precision) is validated and factored once, at construction, on the host in float64
  (:func:`mse_adapters._whiten.host_factor`), and applied per call in the loss' compute dtype:
  a covariance (or constant factor) as a product with the precomputed inverse Cholesky factor
  ``L^-1`` (formed in float64), a precision as the quadratic form. The product is the faster
  way on every Keras backend: measured (B = 4096, float32, one thread, a quiet machine) a
  triangular solve against L takes 1.09x / 1.16x / 1.07x the product's time forward +
  backward at d = 8 / 64 / 256 on TensorFlow (``tf.linalg.triangular_solve``), and the JAX and torch backends are the
  XLA and torch kernels the JAX and torch adapters measured (the product wins there too:
  ``mse_adapters._jax_whiten``, ``mse_adapters._torch_whiten``). The cast copies are cached
  per dtype and device in eager mode; inside a traced function (``tf.function``, ``jax.jit``)
  they are constants of the graph.
- A TRAINABLE ``scale_tril`` (a trainable ``keras.Variable``, or ``trainable_scale_tril=True``,
  which makes the loss create one) is solved against per call (``keras.ops.solve_triangular``),
  so its gradient flows to the variable, in every Keras backend.

The matrices are in the loss' config as nested lists of float64 (a trainable factor: its value
when the config is taken), so ``get_config`` / ``from_config`` and ``model.save`` /
``keras.models.load_model`` round-trip them exactly.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from . import _whiten
from ._spec import LossSpec
from ._whiten import HostFactor, Whitening

__all__ = ["WhitenState", "setup", "split_mean_and_variance"]

Array = Any

_EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52}
_FRAMEWORK = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(keras.backend.backend(), "numpy")


def _std(dtype: Any) -> str:
    return str(keras.backend.standardize_dtype(dtype))


def _host(name: str, m: Any) -> tuple[np.ndarray, float]:
    """A float64 NumPy copy of a concrete matrix, and the epsilon of the dtype it came in."""
    from . import _core

    if isinstance(m, keras.Variable):
        dtype, value = _std(m.dtype), ops.convert_to_numpy(m.value)
    else:
        _core.check_not_foreign(name, m, _FRAMEWORK)
        if isinstance(m, (list, tuple, np.ndarray, float, int)):
            value = np.asarray(m)
            dtype = str(value.dtype)
        else:  # a tensor of the active backend
            dtype, value = _std(m.dtype), ops.convert_to_numpy(m)
    if dtype.startswith("complex") or not (dtype in _EPS or dtype == "bool" or "int" in dtype):
        raise _core.dtype_error(name, dtype)
    return np.asarray(value).astype(np.float64), _EPS.get(dtype, _EPS["float64"])


def _read(v: Any) -> Array:
    """A variable's value as a tensor (differentiable: TensorFlow's tape records the read; on
    JAX, inside a ``StatelessScope``, it is the scope's value)."""
    value = v.value
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.convert_to_tensor(value)  # (Keras' convert_to_tensor returns the variable itself)
    return value


def _trainable(m: Any) -> bool:
    return isinstance(m, keras.Variable) and bool(m.trainable)


class WhitenState:
    """A loss' transform: what it was given, its float64 host factor, or its variable.

    ``kind``: None (no transform), ``"inverse"`` (a constant factor, applied as a product with
    L^-1), ``"precision"`` or ``"trainable"`` (a ``keras.Variable`` scale_tril, solved against
    per call)."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.name: str | None = None  # covariance | scale_tril | precision
        self.source: np.ndarray | None = None  # the constant as given, float64 (for the config)
        self.host: HostFactor | None = None
        self.variable: Any = None  # keras.Variable (trainable)
        self.owns_variable = False
        self._cache: dict[tuple[str, str, str], Any] = {}

    # -- per call ------------------------------------------------------------------------
    def _const(self, which: str, a: np.ndarray, like: Array, cache: bool) -> Array:
        key = (which, _std(like.dtype), str(getattr(like, "device", "")))
        t = self._cache.get(key) if cache else None
        if t is None:
            t = ops.convert_to_tensor(a, dtype=key[1])
            if cache:
                self._cache[key] = t
        return t

    def whitening(self, like: Array, eager: bool) -> Whitening | None:
        """The transform for a prediction ``like`` (already in the compute dtype)."""
        kind = self.kind
        if kind is None:
            return None
        if kind == "trainable":
            lower = ops.cast(_read(self.variable), _std(like.dtype))
            return Whitening("solve", lower, None, "scale_tril")
        host = self.host
        assert host is not None and self.name is not None
        if kind == "precision":
            assert host.precision is not None
            return Whitening("precision", self._const("precision", host.precision, like, eager), None, self.name)
        assert host.inv_scale_tril is not None and host.log_diag is not None
        return Whitening("inverse", self._const("inv", host.inv_scale_tril, like, eager),
                         self._const("log_diag", host.log_diag, like, eager), self.name)

    # -- config --------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The matrix as nested lists of float64 (only the argument given), and
        ``trainable_scale_tril`` for a trainable factor (its current value)."""
        if self.kind is None:
            return {}
        if self.kind == "trainable":
            value = np.asarray(ops.convert_to_numpy(self.variable.value), dtype=np.float64)
            return {"scale_tril": value.tolist(), "trainable_scale_tril": True}
        assert self.name is not None and self.source is not None
        return {self.name: self.source.tolist()}

    @property
    def trainable_variables(self) -> list[Any]:
        return [self.variable] if self.kind == "trainable" else []

    def __getstate__(self) -> dict[str, Any]:  # (copy / pickle: the cast copies are rebuilt)
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state


def setup(spec: LossSpec, covariance: Any, scale_tril: Any, precision: Any, trainable_scale_tril: bool,
          dtype: str) -> tuple[LossSpec, WhitenState]:
    """Validate and factor a loss' matrix once (float64, on the host), or set up its trainable
    factor, and return the spec with its transform resolved. ``dtype``: the loss' compute dtype
    (a variable the loss creates is made in it, float32 for a half-precision loss)."""
    st = WhitenState()
    name, m = _whiten.pick_matrix(covariance, scale_tril, precision)
    spec = _whiten.resolve_spec(spec, name)
    if not isinstance(trainable_scale_tril, bool):
        raise ValueError(f"trainable_scale_tril must be a bool, got {trainable_scale_tril!r}")
    if name is None:
        if trainable_scale_tril:
            raise ValueError(
                "trainable_scale_tril=True needs the initial factor: a scale_tril, or a covariance "
                "(whose Cholesky factor it starts from)"
            )
        return spec, st
    st.name = name
    trainable = _trainable(m)
    if (trainable or trainable_scale_tril) and name == "precision":
        raise ValueError(
            "a trainable precision is not supported: pass a trainable scale_tril (the Cholesky "
            "factor of the covariance) instead"
        )
    if trainable and name == "covariance":
        raise ValueError(
            "a trainable covariance is not supported: pass a trainable scale_tril (the Cholesky "
            "factor) instead, or trainable_scale_tril=True with the covariance as its initial value"
        )
    a, eps = _host(name, m)
    f = _whiten.host_factor(name, a, eps)
    if trainable:  # the user's variable, referenced (its owner decides how it is trained)
        st.kind, st.name, st.variable = "trainable", "scale_tril", m
        return spec, st
    if trainable_scale_tril:  # the loss' own variable, from the float64 factor
        assert f.scale_tril is not None
        vdtype = "float32" if dtype in ("float16", "bfloat16") else dtype
        st.kind, st.name, st.owns_variable = "trainable", "scale_tril", True
        st.variable = keras.Variable(f.scale_tril, dtype=vdtype, trainable=True, name="scale_tril")
        return spec, st
    st.source, st.host = a, f
    st.kind = "precision" if name == "precision" else "inverse"
    return spec, st


def split_mean_and_variance(y_true: Array, y_pred: Array) -> tuple[Array, Array, Array]:
    """``y_pred = concatenate([mean, variance], axis=-1)`` (the Gaussian NLL without ``var``,
    as ``model.compile``/``fit`` pass it): (y_true, mean, variance). A ``y_true`` with one axis
    fewer than a ``y_pred`` of last axis 2 (``fit`` on ``y`` of shape ``(N,)``) is one output."""
    tshape, pshape = tuple(y_true.shape), tuple(y_pred.shape)
    if len(tshape) == len(pshape) - 1 and pshape[-1:] == (2,):
        y_true = ops.expand_dims(y_true, -1)
        tshape = tshape + (1,)
    if not (pshape and len(tshape) == len(pshape) and tshape[-1] is not None
            and pshape[-1] == 2 * tshape[-1]):
        raise ValueError(
            "penalty='gaussian_nll' without a covariance needs var, the predicted variance: pass "
            "var=..., or y_pred = concatenate([mean, variance], axis=-1), whose last axis is twice "
            f"y_true's (got y_pred shape {pshape} and y_true shape {tshape})"
        )
    mean, var = ops.split(y_pred, 2, axis=-1)
    return y_true, mean, var
