"""The data-loss machine bites: each rule finds its defect class when the runtime has it back (issue #15).

Every case plants one old defect by putting a real function of the runtime back to how it behaved
before the fix (recovery reading only its own journal, a journal without its high-water mark, a
missing database taken for a fresh start, a WAL set aside whenever the file changed, a lock taken
for damage by the backup check) and asserts that :class:`~pytest_dbfault.machines.dataloss.DataLossMachine`
reports a violation of the property that rule checks. A last case runs the unpatched runtime, so
the machine's checks are also known not to fire on a correct one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from bite_settings import bite_settings
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyFailure
from hypothesis.stateful import rule

from pytest_dbfault.machines import MACHINES, run_machine
from pytest_dbfault.machines.dataloss import DataLossMachine
from reliability import connection as connection_module
from reliability import redo as redo_module
from reliability.durability import backup as backup_module
from reliability.durability import journal as journal_module
from reliability.durability import recovery as recovery_module
from reliability.errors import sqlite_errors

BITE = bite_settings(max_examples=150, steps=12)



def violation(tmp_path: Path, number: int, machine: Any = None, **overrides: Any) -> str:
    """Run the data-loss machine with only property ``number`` enforced; the first line of what it found.

    A planted bug that depends on timing between processes may not fail again when Hypothesis replays the
    example: then it raises ``FlakyFailure`` around the violation it did find (seen in CI for the removed-WAL
    holder bug), and that violation is what is returned.
    """
    with pytest.raises((AssertionError, FlakyFailure)) as found:
        run_machine(machine or MACHINES["dataloss"], settings_=settings(BITE, **overrides), base_dir=str(tmp_path),
                    enforce={number})
    error: BaseException = found.value
    if isinstance(error, FlakyFailure):
        error = next(e for e in error.exceptions if isinstance(e, AssertionError))
    return str(error).splitlines()[0]


class WithoutConcurrentRules:
    """Hides the rules in which another live process acts at the same moment (session 23), so the focused searches
    below stay on the rules they were written for (added rules moved them: one no longer met its defect)."""

    def queue_from_another_process(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def temps_of_a_live_process(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def solo_writer_process(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def write_in_a_live_commit_window(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here: session 24's rule; it takes the example's one worker process)"""


class CutJournalsOnly(WithoutConcurrentRules, DataLossMachine):
    """The machine with only its writers and its damage-and-recover rule (plain methods hide the other rules),
    so the search spends its examples on the journal-cut class instead of meeting it once in a few hundred."""

    def delete_database(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def replace_and_heal(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def remove_wal_live(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def remove_wal(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def transient_in_maintenance(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def worker_process(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def take_backup(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here: a backup re-anchors the journals, leaving nothing to cut)"""

    def corrupt_and_recover(self, *args: Any, **kwargs: Any) -> None:
        """(replaced by the rule below)"""

    @rule(cut=st.sampled_from(("half", "boundary")), pick=st.integers(0, 7))
    def cut_after_kill_and_recover(self, cut: str, pick: int) -> None:
        """The machine's own rule with the issue's reproduction drawn: header damage, a cut journal, every
        writer killed, recovery by a fresh manager (the combination is one draw in ~20 of the full rule)."""
        DataLossMachine.corrupt_and_recover(self, "header", 2, cut, pick, 0)


def test_recovery_that_replays_only_its_own_journal_is_caught(tmp_path, monkeypatch):
    """(a) Before the fix only the first manager's journal was replayed: the others' writes vanished."""
    real = redo_module.journal_files
    monkeypatch.setattr(redo_module, "journal_files", lambda base: [(s, p) for s, p in real(base) if s == 0])
    assert violation(tmp_path, 13).startswith("p13_corruption_recovery violated")


def test_a_journal_without_its_high_water_mark_is_caught(tmp_path, monkeypatch):
    """(b) Without the mark a cut tail looks like "never acknowledged": recovery said ok with writes missing."""
    monkeypatch.setattr(redo_module, "_read_hwm", lambda data: (0, 0, 0))
    # The registry of slots would still report a deleted file; the mark is what catches a cut one.
    monkeypatch.setattr(recovery_module, "_missing_journal_files", lambda *a, **k: [])
    message = violation(tmp_path, 13, CutJournalsOnly, max_examples=60)
    assert message.startswith("p13_corruption_recovery violated") and "journal_cut" in message, message


def test_the_focused_machine_passes_on_the_runtime_as_it_is(tmp_path):
    run_machine(CutJournalsOnly, settings_=settings(BITE, max_examples=15), base_dir=str(tmp_path))


def test_a_deleted_database_taken_for_a_fresh_start_is_caught(tmp_path, monkeypatch):
    """(c) Before the fix a missing database at start was created empty and reported healthy."""
    monkeypatch.setattr(journal_module, "database_missing", lambda path: False)
    message = violation(tmp_path, 10)
    assert message.startswith("p10_health_monitoring violated") and "disconnect_delete" in message, message


def test_a_wal_set_aside_whenever_the_file_changed_is_caught(tmp_path, monkeypatch):
    """(d) Before the fix the original's -wal was moved aside when the runtime reopened it after a replace."""

    def always_set_aside(path: str, *args: Any, **kwargs: Any) -> list[str]:
        moved = []
        for suffix in ("-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.rename(path + suffix, path + suffix + ".stale-planted")
                moved.append(path + suffix + ".stale-planted")
        return moved

    monkeypatch.setattr(connection_module, "set_aside_foreign_wal", always_set_aside)
    message = violation(tmp_path, 13)
    assert message.startswith("p13_corruption_recovery violated") and "disconnect_replace" in message, message


def test_a_lock_taken_for_damage_by_the_backup_check_is_caught(tmp_path, monkeypatch):
    """(e) Before the fix a lock met while verifying a backup was reported as a problem: marked unverified."""
    real = backup_module.check_pragma

    def every_error_is_damage(conn: Any, *, full: bool = True) -> list[str]:
        try:
            return real(conn, full=full)
        except sqlite_errors() as exc:  # (the runtime's build: pysqlite3's errors are not sqlite3.Error)
            return [f"integrity_check failed: {exc}"]

    monkeypatch.setattr(backup_module, "check_pragma", every_error_is_damage)
    message = violation(tmp_path, 12)
    assert message.startswith("p12_automatic_backup violated") and "locked" in message, message


def test_the_machine_passes_on_the_runtime_as_it_is(tmp_path):
    run_machine(MACHINES["dataloss"], settings_=settings(BITE, max_examples=8), base_dir=str(tmp_path))


class ReplaceWithTwoManagers(WithoutConcurrentRules, DataLossMachine):
    """The machine with its writers and the replace-and-heal rule only, a second manager and worker processes
    always in play: the reproduction of the malformed database is then one draw in a few, not in hundreds."""

    def after_start(self) -> None:
        """The base start, then processes on and the second manager open (the reproduction needs both)."""
        super().after_start()
        self.use_processes = True
        self.peer = self.open_runtime(self.config)

    def corrupt_and_recover(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def delete_database(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def transient_in_maintenance(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def remove_wal_live(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def remove_wal(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def worker_process(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here: replace_and_heal runs its own worker)"""


def test_a_database_header_read_that_drops_the_process_s_locks_is_caught(tmp_path, monkeypatch):
    """(d) Before the fix the WAL check read the database's page size with a plain open()/close() (before
    consulting its identity record): closing it dropped the POSIX locks of the process's other connections,
    a worker process deleted the -wal/-shm under them and the second manager's write left the file malformed.

    Caught on every build through the machine's lock probe (another process must not get the database
    EXCLUSIVE while this process has it open). The damage alone is build-dependent: SQLite 3.51 (pysqlite3)
    also leaves the WAL alone at a last close while another process holds a lock on the -shm's dead-man-switch
    byte, which the plain read never touches, so there the worker's close did not delete it and the malformed
    file never came (this test was xfail there, unexplained, before the probe)."""
    real = connection_module.set_aside_foreign_wal

    def header_read_plainly_first(path: str, *args: Any, **kwargs: Any) -> list[str]:
        if os.path.exists(path + "-wal"):
            with open(path, "rb") as fh:  # the old _db_page_size
                fh.read(100)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(connection_module, "set_aside_foreign_wal", header_read_plainly_first)
    message = violation(tmp_path, 13, ReplaceWithTwoManagers, max_examples=30)
    assert message.startswith("p13_corruption_recovery violated") and "disconnect_replace" in message, message


def test_the_replace_machine_passes_on_the_runtime_as_it_is(tmp_path):
    run_machine(ReplaceWithTwoManagers, settings_=settings(BITE, max_examples=6), base_dir=str(tmp_path))


class RemovedWalOnly(WithoutConcurrentRules, DataLossMachine):
    """The machine with its writers and the removed-WAL rule only (worker processes always on)."""

    def after_start(self) -> None:
        """The base start, with processes on (the restart case needs a killed worker)."""
        super().after_start()
        self.use_processes = True

    def corrupt_and_recover(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def delete_database(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def replace_and_heal(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def transient_in_maintenance(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def worker_process(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here: remove_wal runs its own worker)"""

    def remove_wal_live(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def another_application_opens_after_removal(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here: session 29's, and a removed-WAL case of its own; as a rule it moved this machine's
        derandomized search, and the killed-worker search below then met an older under-report of a cut journal)"""


def test_journal_records_taken_for_orphans_after_a_removed_wal_are_caught(tmp_path, monkeypatch):
    """(f) Before the fix a restart after a removed -wal marked every journal record past the database's
    sequence aborted and re-anchored: the acknowledged writes were gone, health healthy, recovery ok."""
    from reliability.durability import journal as journal_module

    monkeypatch.setattr(journal_module, "lost_commits_at_start", lambda *a, **k: False)
    message = violation(tmp_path, 13, RemovedWalOnly, max_examples=40)
    assert message.startswith("p13_corruption_recovery violated") and "wal_removed" in message, message


def test_the_removed_wal_machine_passes_on_the_runtime_as_it_is(tmp_path):
    run_machine(RemovedWalOnly, settings_=settings(BITE, max_examples=10), base_dir=str(tmp_path))


class RemovedWalLiveOnly(WithoutConcurrentRules, DataLossMachine):
    """The machine with its writers and the live removed-WAL rule only (worker processes always on)."""

    def after_start(self) -> None:
        """The base start, with processes on (the rule's paused worker and newcomer need them)."""
        super().after_start()
        self.use_processes = True

    def corrupt_and_recover(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def delete_database(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def replace_and_heal(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def transient_in_maintenance(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    def remove_wal(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""


def test_a_removed_wal_its_holder_does_not_save_is_caught(tmp_path, monkeypatch):
    """(g) Before the fix a -wal removed under a running manager was never saved when the manager only read or
    asked for health: it kept serving every transfer through the unlinked WAL, healthy, while another process
    saw the database as of the last checkpoint (with the -shm removed) and the frames went with the last handle.
    Planted: the rescue does nothing (a write still saves the WAL on its own path, when it reopens)."""
    monkeypatch.setattr(connection_module.ConnectionManager, "rescue_removed_wal", lambda self: None)
    message = violation(tmp_path, 13, RemovedWalLiveOnly, max_examples=40)
    assert message.startswith("p13_corruption_recovery violated") and "disconnect_remove_wal" in message, message
    # Another process reads the database as of the last checkpoint: without the transfers (or, when the tables
    # were made since, without the tables), silently. With SQLite 3.51 (the pysqlite3 cell) a connection of this
    # process opened since reads through the unsaved WAL's index first and fails: "unreadable: disk I/O error".
    assert any(sign in message for sign in ("acknowledged transfer(s) lost", "no such table",
                                            "the database is unreadable: disk I/O error")), message


def test_the_live_removed_wal_machine_passes_on_the_runtime_as_it_is(tmp_path):
    run_machine(RemovedWalLiveOnly, settings_=settings(BITE, max_examples=10), base_dir=str(tmp_path))


class ForeignWriterAfterLiveRemoval(RemovedWalLiveOnly):
    """The live removed-WAL rule with the actor it holds out of the draw (``HELD_AFTER_REMOVAL``): another
    application opens the database right after the -wal and -shm were removed."""

    def remove_wal_live(self, *args: Any, **kwargs: Any) -> None:
        """(replaced by the rule below)"""

    @rule(count=st.integers(1, 3))
    def foreign_write_after_removal(self, count: int) -> None:
        """The machine's own rule with ``foreign_write`` and the -shm removed too."""
        DataLossMachine.remove_wal_live(self, True, "foreign_write", count)


def test_recovery_after_another_application_opened_a_database_whose_wal_was_removed(tmp_path):
    """Found by remove_wal_live (held out of the draw until fixed): with the -wal and -shm removed while pages of
    the removed WAL are needed to begin a write, a process that merely opens the database makes the manager refuse
    it (rightly), and every new connection of the manager's process reads through the removed WAL's index, which
    a parked handle keeps alive there: recover() raised ioerr while fencing writers out. It fences from a helper
    process now (reliability/durability/outside_fence.py); the machine's P13 must hold."""
    run_machine(ForeignWriterAfterLiveRemoval, settings_=settings(BITE, max_examples=5, stateful_step_count=3),
                base_dir=str(tmp_path), enforce={13})


class KilledWorkersOnly(RemovedWalOnly):
    """Transfers and worker processes killed -9 in their commit after the journal record, nothing else."""

    def remove_wal(self, *args: Any, **kwargs: Any) -> None:
        """(not a rule here)"""

    @rule(count=st.integers(1, 2))
    def killed_worker(self, count: int) -> None:
        """The machine's own rule, the worker killed after its journal record (before SQLite's COMMIT)."""
        DataLossMachine.worker_process(self, count, "after_record")


def test_a_transfer_acknowledged_before_its_commit_is_caught_right_after_the_kill(tmp_path, monkeypatch):
    """The check made at once after a worker is killed (``after:worker_killed``). Planted: the worker's runtime
    acknowledges the transfer it is killed in before its COMMIT (as a runtime returning once the journal record
    is written would), so an acknowledged transfer is not on disk. Before this check, an example ending with the
    kill judged nothing after it."""
    from pytest_dbfault.machines import dataloss as dataloss_module

    armed = 'print("armed", tid, flush=True)'
    assert dataloss_module.WORKER.count(armed) == 1
    monkeypatch.setattr(dataloss_module, "WORKER",
                        dataloss_module.WORKER.replace(armed, 'print("ack", tid, a, b, amount, flush=True)'))
    message = violation(tmp_path, 13, KilledWorkersOnly, max_examples=10)
    assert "after:worker_killed" in message and "acknowledged transfer(s) lost" in message, message


def test_the_killed_worker_machine_passes_on_the_runtime_as_it_is(tmp_path):
    run_machine(KilledWorkersOnly, settings_=settings(BITE, max_examples=6), base_dir=str(tmp_path))
