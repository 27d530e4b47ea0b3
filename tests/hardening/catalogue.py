"""The catalogue of bad inputs: data, not code. Each entry is run through every backend
(tests/hardening/test_catalogue.py) and must raise the same exception type with a message
containing the same words (each backend names the prediction and the target its own way:
``{pred}`` and ``{target}`` in the words are filled in per backend).

An entry's arrays are NumPy; each backend converts them to its own arrays. ``spec`` is the
loss (a preset name plus overrides); ``foreign`` marks an argument that is passed as
another framework's array. ``when`` is ``"build"`` for errors raised when the loss is
built (bad parameters) and ``"call"`` for errors raised when it is called.

``covariance``, ``scale_tril``, ``precision`` (host constants) and ``var`` go to the loss
where its backend takes them (at construction for the torch and Keras modules, per call for
the NumPy and JAX functions); an entry needing one runs only where the backend implements
it (tests/hardening/runners.py says which, and the skip names the backend).
``value_check`` marks the eager value checks (docs/design.md, "Validation"): they cannot raise on
traced arrays (``jax.jit``, ``tf.function``, ``torch.compile``), where the loss is computed
as with ``check_values=False`` (tests/hardening/test_traced.py). ``keras_aligns`` marks the
shape pairs Keras' rank alignment (squeezing a trailing 1) makes legal in the Keras adapter
alone, as docs/design.md, "Semantics" says. ``extended_in`` names the backends whose message goes on after the
shared one with a hint of their own (Keras: a Gaussian NLL's variance may also come
concatenated to ``y_pred``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Entry:
    id: str
    exc: type[Exception]
    words: tuple[str, ...]
    spec: tuple[str, dict[str, Any]] = ("mse", {})
    pred: Any = None  # default: zeros (5, 3)
    target: Any = None  # default: ones like pred
    weight: Any = None
    sample_weight: Any = None
    mask: Any = None
    foreign: str | None = None  # "pred" or "target": passed as another framework's array
    when: str = "call"
    covariance: Any = None
    scale_tril: Any = None
    precision: Any = None
    var: Any = None
    value_check: bool = False  # an eager value check: skipped on traced arrays
    keras_aligns: bool = False  # legal in Keras (rank alignment), an error elsewhere
    extended_in: tuple[str, ...] = ()  # runners whose message adds a hint after the shared one

    def arrays(self) -> dict[str, Any]:
        pred = np.zeros((5, 3)) if self.pred is None else self.pred
        target = np.ones(np.shape(pred)) if self.target is None else self.target
        return {"pred": pred, "target": target, "weight": self.weight,
                "sample_weight": self.sample_weight, "mask": self.mask}

    def matrices(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in MATRICES if getattr(self, k) is not None}

    @property
    def needs(self) -> frozenset[str]:
        """The structured features the entry exercises (docs/design.md, "Whitening")."""
        f = set()
        if self.matrices():
            f.add("whiten")
        if self.var is not None or self.spec[1].get("penalty") == "gaussian_nll":
            f.add("gaussian_nll")
        return frozenset(f)


MATRICES = ("covariance", "scale_tril", "precision")


Z = np.zeros
ONES = np.ones
V = ValueError
T = TypeError
EYE3 = np.eye(3)
NONSYM = np.array([[2.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])

ENTRIES: list[Entry] = [
    # -- shapes: prediction vs target (no broadcasting between them) ---------------------------
    Entry("pred (4,1) vs target (4,)", V, ("{pred}", "{target}", "same shape", "(4, 1)", "(4,)"),
          pred=Z((4, 1)), target=Z(4), keras_aligns=True),
    Entry("pred (4,) vs target (4,1)", V, ("same shape", "(4,)", "(4, 1)"), pred=Z(4), target=Z((4, 1)),
          keras_aligns=True),
    Entry("pred (3,4) vs target (4,)", V, ("same shape", "(3, 4)", "(4,)"), pred=Z((3, 4)), target=Z(4)),
    Entry("pred (2,3) vs target (2,1)", V, ("same shape", "(2, 3)", "(2, 1)"), pred=Z((2, 3)), target=Z((2, 1))),
    Entry("pred (3,) vs target (4,)", V, ("same shape", "(3,)", "(4,)"), pred=Z(3), target=Z(4)),
    Entry("pred (2,3,4) vs target (2,4,3)", V, ("same shape", "(2, 3, 4)", "(2, 4, 3)"),
          pred=Z((2, 3, 4)), target=Z((2, 4, 3))),
    # -- weights, sample weights and masks that do not broadcast ------------------------------
    Entry("weight (4,) vs (5,3)", V, ("weight", "(4,)", "(5, 3)", "broadcast"), weight=ONES(4)),
    Entry("weight (5,) vs (5,3): trailing, not leading", V, ("weight", "(5,)", "(5, 3)"), weight=ONES(5)),
    Entry("weight (2,5,3) would grow the loss", V, ("weight", "(2, 5, 3)"), weight=ONES((2, 5, 3))),
    Entry("weight (5,1,3) would grow the loss", V, ("weight", "(5, 1, 3)"), weight=ONES((5, 1, 3))),
    Entry("sample_weight (3,) is trailing-aligned (wrong rows)", V, ("sample_weight", "(3,)", "leading"),
          sample_weight=ONES(3)),
    Entry("sample_weight (5,) vs (3,5): pairs wrong rows", V, ("sample_weight", "(5,)", "leading"),
          pred=Z((3, 5)), sample_weight=ONES(5)),
    Entry("sample_weight (6,) vs (5,3)", V, ("sample_weight", "(6,)", "(5, 3)"), sample_weight=ONES(6)),
    Entry("sample_weight (5,3,1) has too many axes", V, ("sample_weight", "(5, 3, 1)"),
          sample_weight=ONES((5, 3, 1))),
    Entry("mask (4,) vs (5,3)", V, ("mask", "(4,)", "(5, 3)"), mask=ONES(4, bool)),
    Entry("mask (5,) vs (5,3)", V, ("mask", "(5,)", "(5, 3)"), mask=ONES(5, bool)),
    Entry("mask (2,5,3) would grow the loss", V, ("mask", "(2, 5, 3)"), mask=ONES((2, 5, 3), bool)),
    # -- weight and mask values (eager checks) --------------------------------------------------
    Entry("negative weight", V, ("weight", "negative"), weight=np.array([1.0, -1.0, 1.0]), value_check=True),
    Entry("NaN weight", V, ("weight", "finite"), weight=np.array([1.0, np.nan, 1.0]), value_check=True),
    Entry("inf weight", V, ("weight", "finite"), weight=np.array([1.0, np.inf, 1.0]), value_check=True),
    Entry("negative sample_weight", V, ("sample_weight", "negative"), sample_weight=-ONES(5), value_check=True),
    Entry("NaN sample_weight", V, ("sample_weight", "finite"), sample_weight=np.full(5, np.nan), value_check=True),
    Entry("inf sample_weight", V, ("sample_weight", "finite"), sample_weight=np.full(5, np.inf), value_check=True),
    Entry("mask of 0.5", V, ("mask", "0 and 1"), mask=np.full((5, 3), 0.5), value_check=True),
    Entry("mask of 2", V, ("mask", "0 and 1"), mask=np.full((5, 3), 2.0), value_check=True),
    Entry("mask with NaN", V, ("mask", "0 and 1"), mask=np.full((5, 3), np.nan), value_check=True),
    Entry("negative weight under the mask is still an error", V, ("weight", "negative"),
          weight=-ONES((5, 3)), mask=Z((5, 3), bool), value_check=True),
    # -- dtypes ------------------------------------------------------------------------------------
    Entry("complex prediction", T, ("{pred}", "complex"), pred=Z((5, 3), np.complex64)),
    Entry("complex target", T, ("{target}", "complex"), target=ONES((5, 3), np.complex64)),
    Entry("complex weight", T, ("weight", "complex"), weight=ONES(3, np.complex64)),
    Entry("complex sample_weight", T, ("sample_weight", "complex"), sample_weight=ONES(5, np.complex64)),
    Entry("complex mask", T, ("mask", "complex"), mask=ONES((5, 3), np.complex64)),
    Entry("missing='nan' with integer targets (no NaN possible)", V, ("missing", "{target}", "NaN"),
          spec=("mse", {"missing": "nan"}), target=ONES((5, 3), np.int32)),
    # -- parameters out of range and unknown options (raised when the loss is built) ----------
    Entry("unknown reduction", V, ("reduction", "'batchmean'", "allowed"), spec=("mse", {"reduction": "batchmean"}),
          when="build"),
    Entry("huber delta = 0", V, ("delta", "> 0"), spec=("huber", {"delta": 0.0}), when="build"),
    Entry("huber delta < 0", V, ("delta", "> 0"), spec=("huber", {"delta": -1.0}), when="build"),
    Entry("huber delta NaN", V, ("delta", "finite"), spec=("huber", {"delta": float("nan")}), when="build"),
    Entry("smooth_l1 beta < 0", V, ("beta", ">= 0"), spec=("smooth_l1", {"beta": -0.5}), when="build"),
    Entry("expectile tau = 0", V, ("tau", "(0, 1)"), spec=("expectile", {"tau": 0.0}), when="build"),
    Entry("expectile tau = 1", V, ("tau", "(0, 1)"), spec=("expectile", {"tau": 1.0}), when="build"),
    Entry("expectile tau > 1", V, ("tau", "(0, 1)"), spec=("expectile", {"tau": 1.5}), when="build"),
    Entry("huber delta = inf", V, ("delta", "finite"), spec=("huber", {"delta": float("inf")}), when="build"),
    Entry("smooth_l1 beta NaN", V, ("beta", "finite"), spec=("smooth_l1", {"beta": float("nan")}), when="build"),
    Entry("expectile tau NaN", V, ("tau", "finite"), spec=("expectile", {"tau": float("nan")}), when="build"),
    Entry("unknown penalty", V, ("penalty", "'cauchy'", "allowed"), spec=("mse", {"penalty": "cauchy"}),
          when="build"),
    Entry("RMSE with reduction='none'", V, ("sqrt", "mean-type reduction", "'none'"),
          spec=("rmse", {"reduction": "none"}), when="build"),
    Entry("unknown missing policy", V, ("missing", "'drop'"), spec=("mse", {"missing": "drop"}), when="build"),
    Entry("unknown multioutput", V, ("multioutput", "'mean'"), spec=("rmse", {"multioutput": "mean"}),
          when="build"),
    Entry("variance_weighted RMSE", V, ("variance_weighted",), spec=("rmse", {"multioutput": "variance_weighted"}),
          when="build"),
    Entry("negative multioutput weights", V, ("multioutput", "non-negative"),
          spec=("r2", {"multioutput": (1.0, -1.0, 1.0)}), when="build"),
    # -- options that do not fit the data ---------------------------------------------------------
    Entry("multioutput weights vs outputs", V, ("multioutput", "2 weights", "3 outputs"),
          spec=("rmse", {"multioutput": (0.5, 0.5)})),
    Entry("per_output reduction of a scalar", V, ("scalar", "per_output"), spec=("mse", {"reduction": "per_output"}),
          pred=np.zeros(()), target=np.ones(())),
    # -- covariance, scale_tril, precision (docs/design.md, "Whitening"): validated on the host when the loss
    #    gets them (at construction for the modules, per call for the functions) -----------
    Entry("covariance not symmetric", V, ("covariance", "symmetric", "covariance^T"), covariance=NONSYM),
    Entry("covariance not positive definite", V, ("covariance", "positive definite", "smallest eigenvalue -1"),
          covariance=np.diag([1.0, -1.0, 1.0])),
    Entry("covariance singular (semi-definite only)", V, ("covariance", "positive definite", "eigenvalue 0"),
          covariance=np.diag([1.0, 0.0, 1.0])),
    Entry("covariance non-SPD in one batch entry", V, ("covariance", "positive definite", "batch index (3,)"),
          covariance=np.stack([EYE3] * 3 + [np.diag([1.0, 1.0, -2.0])] + [EYE3])),
    Entry("covariance with NaN", V, ("covariance", "finite"), covariance=np.where(EYE3 > 0, np.nan, 0.0)),
    Entry("covariance (2,2) vs 3 outputs", V, ("covariance", "(2, 2)", "{pred}", "3 outputs", "(3, 3)"),
          covariance=np.eye(2)),
    Entry("covariance (3,2) not square", V, ("covariance", "square", "(3, 2)"), covariance=ONES((3, 2))),
    Entry("covariance 1-D (a diagonal?)", V, ("covariance", "square", "(3,)"), covariance=ONES(3)),
    Entry("covariance batch (4,3,3) vs 5 samples", V, ("covariance", "(4, 3, 3)", "batch shape", "(5,)"),
          covariance=np.stack([EYE3] * 4)),
    Entry("covariance of a scalar prediction", V, ("covariance", "last axis", "scalar"), covariance=np.eye(1),
          pred=np.zeros(()), target=np.ones(())),
    Entry("complex covariance", T, ("covariance", "complex"), covariance=EYE3.astype(np.complex64)),
    Entry("scale_tril not lower triangular", V, ("scale_tril", "lower triangular"), scale_tril=EYE3 + np.eye(3, k=1)),
    Entry("scale_tril zero on the diagonal", V, ("scale_tril", "positive diagonal", "entry is 0"),
          scale_tril=np.diag([1.0, 0.0, 1.0])),
    Entry("scale_tril negative diagonal", V, ("scale_tril", "positive diagonal", "-2"),
          scale_tril=np.diag([1.0, -2.0, 1.0])),
    Entry("precision not positive semi-definite", V, ("precision", "positive semi-definite", "-1"),
          precision=np.diag([1.0, -1.0, 1.0])),
    Entry("precision not symmetric", V, ("precision", "symmetric"), precision=NONSYM),
    Entry("covariance and precision at once", V, ("mutually exclusive", "covariance and precision"),
          covariance=EYE3, precision=EYE3),
    Entry("covariance and scale_tril at once", V, ("mutually exclusive", "covariance and scale_tril"),
          covariance=EYE3, scale_tril=EYE3),
    Entry("precision with the huber penalty", V, ("precision", "penalty='square' only", "'huber'"),
          spec=("huber", {}), precision=EYE3),
    Entry("precision with R^2", V, ("r2", "precision"), spec=("r2", {}), precision=EYE3),
    Entry("transform='whiten' without a matrix", V, ("whiten", "covariance", "neither"),
          spec=("mse", {"transform": "whiten"})),
    Entry("precision with a per-output weight", V, ("weight", "(3,)", "last axis", "sample_weight"),
          precision=EYE3, weight=np.array([1.0, 2.0, 3.0])),
    Entry("covariance with a mask splitting a sample", V, ("mask", "whole samples"), covariance=EYE3,
          mask=np.array([True, False, True]), value_check=True),
    Entry("covariance with NaN targets splitting a sample", V, ("NaN values of {target}", "whole samples"),
          spec=("mse", {"missing": "nan"}), covariance=EYE3, target=np.where(EYE3[:1] > 0, np.nan, np.ones((5, 3))),
          value_check=True),
    # -- the Gaussian likelihoods' variance -----------------------------------------------------
    Entry("gaussian_nll without var", V, ("gaussian_nll", "var"), spec=("mse", {"penalty": "gaussian_nll"}),
          extended_in=("keras",)),
    Entry("gaussian_nll with a negative var", V, ("var", "non-negative"), spec=("mse", {"penalty": "gaussian_nll"}),
          var=np.full((5, 3), -1.0), value_check=True),
    Entry("var given to a squared error", V, ("var", "gaussian_nll", "'square'"), var=ONES((5, 3))),
    # -- mixing frameworks ---------------------------------------------------------------------
    Entry("prediction from another framework", T, ("{pred}", "array", "convert it explicitly"), foreign="pred"),
    Entry("target from another framework", T, ("{target}", "array", "convert it explicitly"), foreign="target"),
]
