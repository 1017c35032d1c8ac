"""The surface machine's rule ``backup_of_damaged_file`` judges what a refused copy leaves behind (session 25,
surviving mutant ``durability/upkeep.py:157``): ``db.backup()`` of a database whose damage its copy's
``integrity_check`` finds sends the source to the *full* integrity check, whose verdict stands (``Upkeep.backup``: "a
bad copy may mean a bad source, and that check is the verdict"). With one index entry changed in place, which passes
``quick_check``, a runtime that sends the source to the quick check leaves health calling the file sound.

Called directly with fixed seeds (no Hypothesis search): odd seeds damage an index entry, even ones the table's root
page. It passes on the runtime and fails against a runtime whose refused copy sends the source to a quick check."""

from __future__ import annotations

from typing import Any

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.durability import upkeep
from reliability.durability.backup import BackupError
from reliability.errors import RecoveryAction


def run_rule(tmp_path, seed: int) -> None:
    machine = started_machine("surface", tmp_path, frozenset({"backup", "recover"}))

    def call(m: Any) -> None:
        for k in range(3):
            m.upsert(k)
        m.backup_of_damaged_file(seed)

    run_and_tear_down(machine, call)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_rule_passes_on_the_runtime(tmp_path, seed):
    run_rule(tmp_path, seed)


def test_it_bites_a_refused_copy_that_sends_the_source_to_a_quick_check(tmp_path, monkeypatch):
    def backup(self: Any) -> Any:
        try:
            return self.backups.backup()
        except BackupError as exc:
            if exc.action is RecoveryAction.RESTORE:
                self.check_integrity(full=False)
            raise

    monkeypatch.setattr(upkeep.Upkeep, "backup", backup)
    with pytest.raises(AssertionError, match=r"p12_automatic_backup violated .*db.backup\(\) refused its copy of a "
                                             r"database with a damaged index_entry .*not judged damaged"):
        run_rule(tmp_path, 1)
