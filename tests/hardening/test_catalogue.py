"""Every catalogue entry through every backend (numpy, torch, JAX eagerly, Keras under this
process's Keras backend): the same exception type, the same words and (the names of the
prediction and target aside) the same message as the NumPy reference, hence the same
message in every backend.

Exceptions, each named by its skip or its test: an entry needing a feature a backend lacks
is skipped for that backend alone, the skip naming it; the two ``(B,)`` vs ``(B, 1)``
entries are legal in the Keras adapter (Keras' rank alignment, docs/design.md, "Semantics"), which must then
compute a finite value instead of raising; where an entry says so (``extended_in``), a
backend's message continues the shared one with a hint of its own."""

from __future__ import annotations

import re

import numpy as np
import pytest

from .catalogue import ENTRIES, Entry
from .runners import REFERENCE, RUNNERS, Runner


def test_catalogue_is_large_enough():
    assert len(ENTRIES) >= 40
    assert len({e.id for e in ENTRIES}) == len(ENTRIES)


def message(runner: Runner, entry: Entry) -> str:
    with pytest.raises(entry.exc) as info:
        runner.run(entry)
    return str(info.value)


def reference_message(runner: Runner, entry: Entry) -> str:
    """The NumPy reference's message with its argument names replaced by ``runner``'s (the
    other way round would also rename the words "target(s)" and "prediction(s)" in the text;
    the reference's names, ``y_pred`` and ``y_true``, occur in no message's prose)."""
    msg = re.sub(rf"\b{REFERENCE.pred_name}\b", runner.pred_name, message(REFERENCE, entry))
    return re.sub(rf"\b{REFERENCE.target_name}\b", runner.target_name, msg)


def assert_same_message(runner: Runner, entry: Entry, msg: str) -> None:
    """``msg`` is the reference's message (in ``runner``'s names), or, where the entry says
    the backend adds a hint of its own, begins with it."""
    ref = reference_message(runner, entry)
    if any(runner.name.startswith(b) for b in entry.extended_in):
        assert msg.startswith(ref) and len(msg) > len(ref), (msg, ref)
    else:
        assert msg == ref


def skip_if_lacking(runner: Runner, entry: Entry) -> None:
    why = runner.lacks(entry)
    if why:
        pytest.skip(why)


@pytest.mark.parametrize("runner", RUNNERS, ids=repr)
@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.id)
def test_entry(runner, entry):
    skip_if_lacking(runner, entry)
    if entry.keras_aligns and runner.aligns_rank:
        out = np.asarray(runner.run(entry))  # Keras' rank alignment: a value, not an error
        assert np.all(np.isfinite(out))
        return
    msg = message(runner, entry)
    for w in runner.words(entry):
        assert w in msg, f"{w!r} not in {msg!r}"
    if not entry.foreign:  # (the foreign framework's name differs by design)
        assert_same_message(runner, entry, msg)
