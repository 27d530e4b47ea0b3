"""Every catalogue entry through every backend: the same exception type, the same words,
and (names of the prediction and target aside) the same message."""

from __future__ import annotations

import re

import pytest

from .catalogue import ENTRIES
from .runners import RUNNERS


def test_catalogue_is_large_enough():
    assert len(ENTRIES) >= 40
    assert len({e.id for e in ENTRIES}) == len(ENTRIES)


@pytest.mark.parametrize("runner", RUNNERS, ids=lambda r: r.name)
@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.id)
def test_entry_raises(runner, entry):
    if entry.foreign and len(RUNNERS) < 2:
        pytest.skip("needs a second framework installed")
    with pytest.raises(entry.exc) as info:
        runner.run(entry)
    msg = str(info.value)
    for w in runner.words(entry):
        assert w in msg, f"{w!r} not in {msg!r}"


def _normalised(runner, entry) -> str:
    with pytest.raises(entry.exc) as info:
        runner.run(entry)
    msg = re.sub(rf"\b{runner.pred_name}\b", "<pred>", str(info.value))
    return re.sub(rf"\b{runner.target_name}\b", "<target>", msg)


@pytest.mark.parametrize("entry", [e for e in ENTRIES if not e.foreign], ids=lambda e: e.id)
def test_same_message_in_every_backend(entry):
    msgs = {r.name: _normalised(r, entry) for r in RUNNERS}
    assert len(set(msgs.values())) == 1, msgs
