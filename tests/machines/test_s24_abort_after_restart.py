"""A failed COMMIT after a restart of the only writer must not make its next transaction leave a sequence out.

Found by the surface machine in CI (2026-12-05, shrunk): synchronous NORMAL, DELETE journal, redo journal on. The
manager committed alone, was closed cleanly and started again (``backup_of_damaged_file``); a transaction's COMMIT
then failed under a lock (``executemany_under_a_lock``), so its journal record got an abort marker; the retry
published the earlier run alone and took the file's abort marker for "its owner stopped without closing", leaving a
sequence out for a transaction nobody committed. Recovery from damage then reported that sequence missing and held
back every transaction after it (``failed_transaction_then_damage``). The rules are called directly."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

SETTINGS = {"retry_attempts": 4, "redo_journal": True, "retry_max_delay": 0.08, "retry_budget": 5.0, "backup_keep": 3,
            "retry_base_delay": 0.01, "journal_mode": "DELETE", "synchronous": "NORMAL"}


@pytest.mark.parametrize("failure", ["app_error", "moved_before_commit", "swallowed_disk_full"])
def test_recovery_after_an_aborted_commit_of_a_restarted_only_writer_is_whole(tmp_path, failure):
    machine = started_machine("surface", tmp_path, frozenset({"backup", "commands", "recover", "fault:locked",
                                                              "fault:disk_full", "fault:disconnect_rename"}),
                              **SETTINGS)

    def call(m) -> None:
        m.backup_of_damaged_file(seed=0)  # the runtime closed cleanly and started again
        m.executemany_under_a_lock(at_commit=True, lazily=False, n=0, param=0, sleeps=1, width=2)
        m.failed_transaction_then_damage(failures=[failure], later=0, n=0, part="btree_root", seed=0)

    run_and_tear_down(machine, call)
