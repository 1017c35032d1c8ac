"""The data-loss machine's ``corrupt_and_recover`` beside the live writers (``who`` 3) with an odd ``pick`` (session
29): writer 0 recovers while a manager started on the damaged file watches (its redo journal never anchored: its
anchoring backup failed the check), then that manager writes a transfer, closes, and the same damage again is
recovered (``write_beside_after_recovery``). Its journal must anchor on the sound file before that write
(``reliability/durability/journal.py``, ``anchor_if_due``), which no default run reached before. Called directly
with fixed arguments: passes on the runtime, and bites an anchoring that records the slot but takes no anchoring
backup (planted bug ``s29_c_beside_journal_never_anchors``): the write goes into no journal and the next recovery
loses it or reports it missing with every journal intact."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine
from test_s26_beside_recovery_bite import recovery_beside

from reliability.durability import journal as journal_module


def write_beside(peer: bool, part: str):
    return recovery_beside(peer, part, pick=1)  # (odd: writer 0 recovers while the manager beside watches)


def machine(tmp_path):
    return started_machine("dataloss", tmp_path, frozenset({"fault:corruption"}))


@pytest.mark.parametrize("peer", [False, True])
def test_passes_on_the_runtime_and_anchors_on_the_recovered_file(tmp_path, monkeypatch, peer):
    anchored = []
    real = journal_module.Journal.anchor_if_due

    def anchor_if_due(self):
        real(self)
        anchored.append(self.redo is not None and self.redo.anchored)

    monkeypatch.setattr(journal_module.Journal, "anchor_if_due", anchor_if_due)
    run_and_tear_down(machine(tmp_path), write_beside(peer, "btree"))  # (header damage in this case: see the rule)
    assert True in anchored  # the path the case is for: the beside manager's journal anchored before its write


@pytest.mark.parametrize("peer", [False, True])
def test_bites_a_journal_that_never_anchors_on_the_recovered_file(tmp_path, monkeypatch, peer):
    real = journal_module.Journal.anchor_if_due

    def anchor_if_due(self):  # the slot recorded, no anchoring backup (the startup anchoring is left as it is)
        self._anchor = lambda *a, **k: None
        try:
            real(self)
        finally:
            del self._anchor

    monkeypatch.setattr(journal_module.Journal, "anchor_if_due", anchor_if_due)
    found = r"p13_corruption_recovery violated.*(acknowledged transfer|every journal intact)"
    with pytest.raises(AssertionError, match=found):
        run_and_tear_down(machine(tmp_path), write_beside(peer, "btree"))
