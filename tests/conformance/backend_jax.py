"""The JAX backends: the compiled loss run eagerly (``jax``) and under ``jax.jit``
(``jax-jit``: loss, gradient and all, one XLA program per spec, the spec static), gradients
by ``jax.vjp``.

float64 cases run inside ``jax.enable_x64(True)`` (a context manager, part of JAX's jit
key), so the rest of the test process keeps JAX's default float32.

Cost. On CPU, XLA compiles every (spec, shapes, dtype) program afresh (~0.2-0.4 s each on
a 2-core machine), and an eager ``jax.vjp`` costs ~20 ms a case once its shapes' kernels
are compiled (~0.4 s on a cold cache, as in every new dtype); the whole grid in both modes
and four dtypes would take ~30 minutes. So by default:

- ``jax`` (eager) runs a stratified subset: three cases of every spec group in float32, one
  case of every third group in float64, and in float16 and bfloat16 one case of every group (half
  inputs are cast to float32 on entry, so the pipeline is the float32 one; what differs is
  the casting);
- ``jax-jit`` runs a stratified subset in float32 (one case of every third spec group) and
  float64 (every sixth); jitted float16/bfloat16 are checked on a handful of cases in
  tests/jax/test_transforms.py;
- the structured cases (docs/design.md, "Whitening": whitening, precision, the Gaussian NLLs, unit norm) are
  sampled in every mode and dtype (:data:`STRUCTURED_PER_GROUP`, :data:`STRUCTURED_STRIDE`):
  two cases of every group eagerly in float32, one of every sixth group in float64 and in
  half precision, every eighth jitted in float32 and every sixteenth in float64 (~590
  checks, ~50 s on 2 cores); tests/jax/test_whiten.py checks the JAX specifics.

A stratified subset holds every edge case and, from every (``stride``-th) spec group (the
same loss with another weighting option or shape: a preset x reduction x per-sample stage,
or a multioutput choice), one case, rotating through the options and shapes from one group
to the next and from one dtype to the next. Cases from outside the grid: the hypothesis
examples of test_properties.py run in both modes (a skipped example would end the property
test), the committed vectors all eagerly and one in four jitted.
``MSE_ADAPTERS_JAX_FULL=1`` runs every case in both modes and every dtype (~30 minutes).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from mse_adapters import LossSpec

from .harness import Case

BACKENDS: list[Any] = []

ARGS = ("pred", "target", "weight", "sample_weight", "var")
FULL = os.environ.get("MSE_ADAPTERS_JAX_FULL", "") not in ("", "0")

#: Cases per spec group, per (backend, dtype); None: every case. Eagerly, JAX compiles each
#: operation for each new shape and dtype (20 cases cost ~130 compilations, 190 ms a case):
#: float32 runs three cases of every group (rotating over the options and shapes), the
#: other dtypes and the jitted backend fewer; torch, Keras and the reference run every case.
PER_GROUP: dict[tuple[str, str], int | None] = {
    ("jax", "float32"): 3,
    ("jax", "float64"): 1,
    ("jax", "float16"): 1,
    ("jax", "bfloat16"): 1,
    ("jax-jit", "float32"): 1,
    ("jax-jit", "float64"): 1,
}
#: Groups sampled: one in ``GROUP_STRIDE`` (rotating); elsewhere every group.
GROUP_STRIDE: dict[tuple[str, str], int] = {
    ("jax", "float64"): 3,
    ("jax-jit", "float32"): 3,
    ("jax-jit", "float64"): 6,
}
#: The structured cases (whitening, precision, Gaussian NLLs, unit norm: 1324 cases in 246
#: groups of (spec, features, trainable scale_tril)) are sampled everywhere (all of them would
#: add ~50 s eagerly in float32 alone): cases per group, and one group in a stride.
STRUCTURED_PER_GROUP: dict[tuple[str, str], int] = {("jax", "float32"): 2}
STRUCTURED_STRIDE: dict[tuple[str, str], int] = {
    ("jax", "float32"): 1,
    ("jax", "float64"): 6,
    ("jax", "float16"): 6,
    ("jax", "bfloat16"): 6,
    ("jax-jit", "float32"): 8,
    ("jax-jit", "float64"): 16,
}
#: The jitted backend runs one in ``VECTOR_STRIDE`` of the other named cases (the committed
#: vectors), chosen by a stable hash of the name; the eager backend runs all of them.
VECTOR_STRIDE = 4


def _sample(groups: Sequence[list[Case]], k: int, offset: int, stride: int) -> set[str]:
    chosen: set[str] = set()
    sampled = [g for i, g in enumerate(groups) if (i + offset) % stride == 0]
    for i, group in enumerate(sampled):  # rotate over the sampled groups
        for j in range(min(k, len(group))):
            chosen.add(group[(i * k + j + offset) % len(group)].name)
    return chosen


def stratified(cases: Sequence[Case], edge: Sequence[Case], k: int | None, offset: int,
               stride: int = 1, structured: tuple[int, int] | None = None) -> frozenset[str]:
    """Every edge case, and ``k`` cases (None: all) of every ``stride``-th spec group,
    rotating; the structured cases are grouped by (spec, features, trainable
    ``scale_tril``) and sampled the same way, ``structured = (k, stride)`` (default: the
    same as the others)."""
    groups: dict[LossSpec, list[Case]] = {}
    sgroups: dict[tuple[Any, ...], list[Case]] = {}
    for c in cases:
        if not c.needs:
            groups.setdefault(c.spec.replace(missing=None), []).append(c)
        else:
            key = (c.spec.replace(missing=None), c.needs, "scale_tril" in c.wrt)
            sgroups.setdefault(key, []).append(c)
    chosen = {c.name for c in edge}  # (an empty ``edge``: none of them)
    if k is None:
        chosen |= {c.name for g in groups.values() for c in g}
    else:
        chosen |= _sample(list(groups.values()), k, offset, stride)
    sk, sstride = structured or (k, stride)
    chosen |= _sample(list(sgroups.values()), sk or 1, offset, sstride)
    return frozenset(chosen)


def subsets(backend: str, dtypes: Sequence[str]) -> dict[str, frozenset[str] | None]:
    from .cases import all_cases, edge_cases

    cases, edge = all_cases(), list(edge_cases())
    out: dict[str, frozenset[str] | None] = {}
    for offset, dtype in enumerate(dtypes):
        if FULL:
            out[dtype] = None
            continue
        k = PER_GROUP[(backend, dtype)]
        stride = GROUP_STRIDE.get((backend, dtype), 1)
        structured = (STRUCTURED_PER_GROUP.get((backend, dtype), 1), STRUCTURED_STRIDE[(backend, dtype)])
        out[dtype] = stratified(cases, edge, k, 3 * offset, stride, structured)
    return out


if importlib.util.find_spec("jax") is not None:
    import jax
    import jax.numpy as jnp

    import mse_adapters.jax as mj

    JAX_DTYPES = {"float64": jnp.float64, "float32": jnp.float32,
                  "float16": jnp.float16, "bfloat16": jnp.bfloat16}

    def value_and_vjp(fn: mj.Loss, wrt: tuple[str, ...], arrays: dict[str, Any], mask: Any,
                      ct: Any) -> tuple[Any, tuple[Any, ...]]:
        """The loss and the gradient of sum(loss * ct) w.r.t. the arrays named in ``wrt``
        (``ct=None``: ones, a scalar loss). ``fn``: the compiled loss (with its constant
        matrix, factored in float64: a static argument under jit); ``arrays`` may hold a
        trainable ``scale_tril``, passed at call time."""

        def f(*xs: Any) -> Any:
            a = {**arrays, **dict(zip(wrt, xs))}
            return fn(a["pred"], a["target"], weight=a["weight"], sample_weight=a["sample_weight"],
                      mask=mask, var=a["var"], scale_tril=a.get("scale_tril"))

        out, pullback = jax.vjp(f, *(arrays[n] for n in wrt))
        cot = jnp.ones_like(out) if ct is None else ct.astype(out.dtype)
        return out, pullback(cot)

    #: One trace and one XLA program per (compiled loss, wrt, shapes, dtypes): the loss (its
    #: spec and constant matrix) is static.
    jit_value_and_vjp = jax.jit(value_and_vjp, static_argnums=(0, 1))

    def x64(dtype: str) -> contextlib.AbstractContextManager[Any]:
        return jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()

    def run(fn: Any, spec: LossSpec, case: Case, dtype: str,
            wrt: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``fn`` (eager or jitted value_and_vjp) on the case's arrays in ``dtype``."""
        with x64(dtype):
            dt = JAX_DTYPES[dtype]
            arrays = {n: None if getattr(case, n) is None else jnp.asarray(getattr(case, n), dt)
                      for n in ARGS}
            # covariance and precision: host constants in float64, factored by compile();
            # scale_tril: trainable (a call-time array) when differentiated, else a constant.
            structured = {n: getattr(case, n) for n in ("covariance", "precision") if getattr(case, n) is not None}
            if case.scale_tril is not None:
                st = jnp.asarray(case.scale_tril, dt)
                if "scale_tril" in wrt:
                    arrays["scale_tril"] = st
                else:
                    structured["scale_tril"] = st
            mask = None if case.mask is None else jnp.asarray(case.mask)
            ct = None if case.cotangent is None else jnp.asarray(case.cotangent)
            out, grads = fn(mj.compile(spec, **structured), tuple(wrt), arrays, mask, ct)
            expected = jnp.float32 if dtype in ("float16", "bfloat16") else dt
            assert out.dtype == expected, f"loss dtype {out.dtype} for {dtype} inputs"
            for n, g in zip(wrt, grads):
                assert g.dtype == dt, f"d/d{n} has dtype {g.dtype} for {dtype} inputs"
            return (np.asarray(out, dtype=np.float64),
                    {n: np.asarray(g, dtype=np.float64) for n, g in zip(wrt, grads)})

    class JaxBackend:
        features = frozenset({"whiten", "precision", "gaussian_nll", "unit_norm"})

        def __init__(self, jit: bool, dtypes: tuple[str, ...] = ("float64", "float32", "float16", "bfloat16"),
                     sampled: bool = True) -> None:
            self.jit = jit
            self.name = "jax-jit" if jit else "jax"
            self.dtypes = dtypes
            self.fn = jit_value_and_vjp if jit else value_and_vjp
            self.sampled = sampled and not FULL
            self._subsets: dict[str, frozenset[str] | None] | None = None
            self._grid: frozenset[str] = frozenset()

        def selected(self, case: Case, dtype: str) -> bool:
            if not self.sampled:
                return True
            if self._subsets is None:
                from .cases import all_cases

                self._subsets = subsets(self.name, self.dtypes)
                self._grid = frozenset(c.name for c in all_cases())
            chosen = self._subsets[dtype]
            if chosen is None or case.name in chosen:
                return True
            if case.name in self._grid:
                return False
            if case.name.startswith("hyp-"):  # hypothesis: a skip would end the whole property
                return True
            return not self.jit or zlib.crc32(case.name.encode()) % VECTOR_STRIDE == 0

        def value_and_grad(
            self, spec: LossSpec, case: Case, dtype: str, wrt: Sequence[str]
        ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
            return run(self.fn, spec, case, dtype, wrt)

    BACKENDS.extend([JaxBackend(jit=False),
                     JaxBackend(jit=True, dtypes=("float64", "float32", "float16", "bfloat16") if FULL
                                else ("float64", "float32"))])
