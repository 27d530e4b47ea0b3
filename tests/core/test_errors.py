"""The same bad input raises the same exception, naming the argument and the shapes, in
the NumPy reference and in torch (the full cross-backend catalogue lives in
tests/catalogue)."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

from mse_adapters import numpy as mnp

BAD = [
    # (description, kwargs builder, exception, words)
    ("(B,) vs (B,1)", dict(pred=np.zeros((4, 1)), target=np.zeros(4)), ValueError,
     ["same shape", "(4, 1)", "(4,)"]),
    ("(B,d) vs (B,)", dict(pred=np.zeros((4, 3)), target=np.zeros(4)), ValueError, ["(4, 3)", "(4,)"]),
    ("weight does not broadcast", dict(weight=np.ones(4)), ValueError, ["weight", "(4,)", "(5, 3)"]),
    ("weight would grow the result", dict(weight=np.ones((2, 5, 3))), ValueError, ["weight", "(2, 5, 3)"]),
    ("trailing-aligned sample_weight", dict(sample_weight=np.ones(3)), ValueError,
     ["sample_weight", "(3,)", "leading"]),
    ("sample_weight too long", dict(sample_weight=np.ones(6)), ValueError, ["sample_weight", "(6,)"]),
    ("mask does not broadcast", dict(mask=np.ones(4, bool)), ValueError, ["mask", "(4,)"]),
    ("negative weight", dict(weight=-np.ones(3)), ValueError, ["weight", "negative"]),
    ("NaN weight", dict(weight=np.full(3, np.nan)), ValueError, ["weight", "finite"]),
    ("inf sample_weight", dict(sample_weight=np.full(5, np.inf)), ValueError, ["sample_weight", "finite"]),
    ("mask not 0/1", dict(mask=np.full((5, 3), 0.5)), ValueError, ["mask", "0 and 1"]),
    ("complex prediction", dict(pred=np.zeros((5, 3), complex)), TypeError, ["complex"]),
]


def _call_numpy(kw):
    pred = kw.get("pred", np.zeros((5, 3)))
    target = kw.get("target", np.zeros(pred.shape if "pred" in kw and "target" not in kw else (5, 3)))
    return mnp.mse(target, pred, weight=kw.get("weight"), sample_weight=kw.get("sample_weight"),
                   mask=kw.get("mask"))


def _call_torch(kw):
    import torch

    import mse_adapters.torch as mt

    def t(x):
        return None if x is None else torch.as_tensor(x)

    pred = kw.get("pred", np.zeros((5, 3)))
    target = kw.get("target", np.zeros(pred.shape if "pred" in kw and "target" not in kw else (5, 3)))
    return mt.MSELoss()(t(pred), t(target), weight=t(kw.get("weight")),
                        sample_weight=t(kw.get("sample_weight")), mask=t(kw.get("mask")))


CALLERS = {"numpy": _call_numpy}
if importlib.util.find_spec("torch") is not None:
    CALLERS["torch"] = _call_torch


@pytest.mark.parametrize("backend", sorted(CALLERS))
@pytest.mark.parametrize("desc,kw,exc,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input(backend, desc, kw, exc, words):
    with pytest.raises(exc) as info:
        CALLERS[backend](kw)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


PRED_TARGET_NAMES = {"numpy": ("y_pred", "y_true"), "torch": ("input", "target")}


@pytest.mark.parametrize("desc,kw,exc,words", BAD, ids=[b[0] for b in BAD])
def test_same_message_in_every_backend(desc, kw, exc, words):
    """Identical messages, up to each ecosystem's names for the prediction and the target."""
    msgs = {}
    for name, call in CALLERS.items():
        with pytest.raises(exc) as info:
            call(kw)
        pred, target = PRED_TARGET_NAMES[name]
        msg = re.sub(rf"\b{pred}\b", "<pred>", str(info.value))
        msgs[name] = re.sub(rf"\b{target}\b", "<target>", msg)
    assert len(set(msgs.values())) == 1, msgs
