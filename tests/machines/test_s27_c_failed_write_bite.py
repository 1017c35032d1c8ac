"""The backup machine's rule ``failed_write_stays_failed`` (session 27 surviving mutant ``manager.py:397``, the
``redo.discard()`` of a failed write outside a transaction dropped): a write whose commit failed after its statement
ran (the redo sequence table damaged on disk) is told it failed, and no recovery may bring it back, not even one after
later writes were journaled.

The rule is called directly with chosen arguments (no Hypothesis search), once against the real runtime (it passes)
and once against a runtime whose failed autocommit write leaves its statement captured for the next record."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import manager as manager_module
from reliability.redo import RedoJournal


def failed_write(tmp_path, n: int = 3, then: int = 5, seed: int = 7, **drawn: object) -> None:
    machine = started_machine("backup_recovery", tmp_path, frozenset({"recover", "backup", "fault:locked"}),
                              redo_journal=True, **drawn)
    run_and_tear_down(machine, lambda m: m.failed_write_stays_failed(n, then, seed))


@pytest.mark.parametrize("journal_mode", ["WAL", "DELETE"])
def test_the_real_runtime_never_replays_a_failed_write(tmp_path, journal_mode):
    failed_write(tmp_path, journal_mode=journal_mode)


def test_it_bites_a_failed_write_left_captured(tmp_path, monkeypatch):
    # The failed write's clean-up forgets what the journal captured for it (the statement stays pending): the next
    # acknowledged write's record carries it, and a recovery replays a write the application was told failed.
    real = manager_module.DatabaseManager._autocommit_journaled

    def autocommit_journaled(self, conn, sql, params):
        with monkeypatch.context() as patch:
            patch.setattr(RedoJournal, "discard", lambda journal: None)
            return real(self, conn, sql, params)

    monkeypatch.setattr(manager_module.DatabaseManager, "_autocommit_journaled", autocommit_journaled)
    with pytest.raises(AssertionError, match=r"p13_\w+ violated .*must never come back at recovery"):
        failed_write(tmp_path, n=4)
