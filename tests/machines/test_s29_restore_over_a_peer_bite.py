"""The backup machine's ``restore_backup`` with a second manager that wrote since the backup (P13).

A restore drops every manager's writes made after the backup, and the other manager's journal slot keeps its
records of them. The restored file's redo sequence must move past them: a runtime that moved it only past what the
restoring manager itself had seen handed those numbers out again, so a later recovery met two records of one
sequence, reported not ok and lost the writes acknowledged after the restore (session 29, from the ninth mutant
sample's survivor ``recovery.py:187``; the runtime fix is tested in ``tests/test_s29_restore_sequence.py``).
Called directly: passes on the runtime; bites a restore that keeps the restoring manager's own sequence.
"""

from __future__ import annotations

from typing import Any

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.durability import recovery as recovery_module


class Drawn:
    """Stands in for Hypothesis' ``data``: the newest remembered backup, and a second manager that wrote."""

    def __init__(self, machine: Any, peer: bool) -> None:
        self.machine, self.peer = machine, peer

    def draw(self, strategy: Any, label: str = "") -> Any:
        if label == "backup":
            return sorted(self.machine.snapshots)[-1]
        assert label == "a second manager wrote since the backup", label
        return self.peer


def restore(tmp_path, peer: bool) -> None:
    machine = started_machine("backup_recovery", tmp_path, frozenset({"backup", "recover", "fault:corrupt"}),
                              redo_journal=True)

    def call(m: Any) -> None:
        for k in range(3):
            m.upsert(k)
        m.take_backup(False)
        m.upsert(5)
        m.restore_backup(Drawn(m, peer))

    run_and_tear_down(machine, call)


@pytest.mark.parametrize("peer", [False, True])
def test_passes_on_the_runtime(tmp_path, peer):
    restore(tmp_path, peer)


def test_bites_a_restore_that_keeps_only_its_own_sequence(tmp_path, monkeypatch):
    def own_only(self):
        return max(self.redo.seen, self.redo.seq)

    monkeypatch.setattr(recovery_module.Recovery, "_sequence_reached", own_only)
    with pytest.raises(AssertionError, match=r"p13_corruption_recovery violated.*recovery after a restore of .* "
                                             r"was not ok: .*candidate records"):
        restore(tmp_path, True)
