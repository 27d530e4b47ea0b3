"""The catalogue of bad inputs: data, not code. Each entry is run through every backend
(tests/hardening/test_catalogue.py) and must raise the same exception type with a message
containing the same words (each backend names the prediction and the target its own way:
``{pred}`` and ``{target}`` in the words are filled in per backend).

An entry's arrays are NumPy; each backend converts them to its own arrays. ``spec`` is the
loss (a preset name plus overrides); ``foreign`` marks an argument that is passed as
another framework's array. ``when`` is ``"build"`` for errors raised when the loss is
built (bad parameters) and ``"call"`` for errors raised when it is called.
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

    def arrays(self) -> dict[str, Any]:
        pred = np.zeros((5, 3)) if self.pred is None else self.pred
        target = np.ones(np.shape(pred)) if self.target is None else self.target
        return {"pred": pred, "target": target, "weight": self.weight,
                "sample_weight": self.sample_weight, "mask": self.mask}


Z = np.zeros
ONES = np.ones
V = ValueError
T = TypeError

ENTRIES: list[Entry] = [
    # -- shapes: prediction vs target (no broadcasting between them) ---------------------------
    Entry("pred (4,1) vs target (4,)", V, ("{pred}", "{target}", "same shape", "(4, 1)", "(4,)"),
          pred=Z((4, 1)), target=Z(4)),
    Entry("pred (4,) vs target (4,1)", V, ("same shape", "(4,)", "(4, 1)"), pred=Z(4), target=Z((4, 1))),
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
    Entry("sample_weight (3,) vs (3,5): pairs wrong rows", V, ("sample_weight", "(5,)", "leading"),
          pred=Z((3, 5)), sample_weight=ONES(5)),
    Entry("sample_weight (6,) vs (5,3)", V, ("sample_weight", "(6,)", "(5, 3)"), sample_weight=ONES(6)),
    Entry("sample_weight (5,3,1) has too many axes", V, ("sample_weight", "(5, 3, 1)"),
          sample_weight=ONES((5, 3, 1))),
    Entry("mask (4,) vs (5,3)", V, ("mask", "(4,)", "(5, 3)"), mask=ONES(4, bool)),
    Entry("mask (5,) vs (5,3)", V, ("mask", "(5,)", "(5, 3)"), mask=ONES(5, bool)),
    Entry("mask (2,5,3) would grow the loss", V, ("mask", "(2, 5, 3)"), mask=ONES((2, 5, 3), bool)),
    # -- weight and mask values (eager checks) --------------------------------------------------
    Entry("negative weight", V, ("weight", "negative"), weight=np.array([1.0, -1.0, 1.0])),
    Entry("NaN weight", V, ("weight", "finite"), weight=np.array([1.0, np.nan, 1.0])),
    Entry("inf weight", V, ("weight", "finite"), weight=np.array([1.0, np.inf, 1.0])),
    Entry("negative sample_weight", V, ("sample_weight", "negative"), sample_weight=-ONES(5)),
    Entry("NaN sample_weight", V, ("sample_weight", "finite"), sample_weight=np.full(5, np.nan)),
    Entry("inf sample_weight", V, ("sample_weight", "finite"), sample_weight=np.full(5, np.inf)),
    Entry("mask of 0.5", V, ("mask", "0 and 1"), mask=np.full((5, 3), 0.5)),
    Entry("mask of 2", V, ("mask", "0 and 1"), mask=np.full((5, 3), 2.0)),
    Entry("mask with NaN", V, ("mask", "0 and 1"), mask=np.full((5, 3), np.nan)),
    Entry("negative weight under the mask is still an error", V, ("weight", "negative"),
          weight=-ONES((5, 3)), mask=Z((5, 3), bool)),
    # -- dtypes ------------------------------------------------------------------------------------
    Entry("complex prediction", T, ("{pred}", "complex"), pred=Z((5, 3), np.complex64)),
    Entry("complex target", T, ("{target}", "complex"), target=ONES((5, 3), np.complex64)),
    Entry("complex weight", T, ("weight", "complex"), weight=ONES(3, np.complex64)),
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
    # -- mixing frameworks ---------------------------------------------------------------------
    Entry("prediction from another framework", T, ("{pred}", "array", "convert it explicitly"), foreign="pred"),
    Entry("target from another framework", T, ("{target}", "array", "convert it explicitly"), foreign="target"),
]
