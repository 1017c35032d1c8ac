"""A clean ``quick_check`` never clears a damage verdict; a start on a file another process marked damaged checks it.

``quick_check`` does not compare an index with its rows: it passes a file whose index entry was changed in place
(the real ``index_entry`` fault). Before, a clean quick check (the schedule's, the write gate's recheck) cleared the
verdict the full check had reached, in this process and in the shared marker, and a manager started on a marked file
ran its statements without a look: a write through the changed entry landed on another row (recovery_fuzz seed 906).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_backup_full_check import KV, _faults_use_the_runtimes_sqlite_build, manager  # noqa: F401 (the fixture)

from pytest_dbfault.faults import CorruptFault, outside
from reliability import HealthStatus
from reliability.damage_mark import DamageMarker


def index_entry_damaged(db_path: Path) -> CorruptFault:
    """Rows and a verified backup, then the real ``index_entry`` fault on the closed file."""
    with manager(db_path) as db:
        db.execute(KV)
        db.executemany("INSERT INTO kv (k, v) VALUES (?, ?)", [(f"user-{i}", f"v{i}") for i in range(20)])
        db.backup()
    fault = CorruptFault(db_path, part="index_entry", index="sqlite_autoindex_kv_1", seed=3, backup_before=True)
    fault.inject()
    assert outside.query(db_path, "PRAGMA quick_check") == [["ok"]]
    assert outside.query(db_path, "PRAGMA integrity_check") != [["ok"]]
    return fault


def test_a_clean_quick_check_leaves_the_full_checks_verdict(tmp_path: Path) -> None:
    db_path = tmp_path / "app.db"
    fault = index_entry_damaged(db_path)
    with manager(db_path) as db:
        assert not db.check_integrity(full=True).ok
        assert db.check_integrity().ok  # quick_check itself passes the file...
        # ...and changes nothing: the verdict, health and the mark for every other process stay
        assert db.monitor.integrity_ok is False and db.health().status is HealthStatus.UNAVAILABLE
        assert DamageMarker(db_path).present()
        # the write gate's recheck is the full check: the runtime's own writes still wait
        db.write_gate.recheck_interval = 0
        now = [0.0]  # a fake clock, moved on before each question: every one checks
        db.write_gate.clock = lambda: now[0]
        now[0] += 100
        assert db.write_gate.refusal() is not None and DamageMarker(db_path).present()
        fault.heal()  # the original bytes back: only the full check may say so
        assert db.check_integrity().ok and db.monitor.integrity_ok is False
        now[0] += 100
        assert db.write_gate.refusal() is None  # its full check is clean: the verdict goes
        assert db.monitor.integrity_ok is True and not DamageMarker(db_path).present()
        assert db.health().status is HealthStatus.HEALTHY


@pytest.mark.parametrize("auto_recover", [False, True])
def test_a_start_on_a_file_marked_damaged_elsewhere_runs_the_full_check(tmp_path: Path, auto_recover: bool) -> None:
    db_path = tmp_path / "app.db"
    index_entry_damaged(db_path)
    with manager(db_path) as first:  # another process' manager, here in the same one: only the mark is shared
        assert not first.check_integrity(full=True).ok
    assert DamageMarker(db_path).present()
    with manager(db_path, auto_recover=auto_recover) as db:
        if auto_recover:  # the start's check found the damage and recovered from the verified backup
            assert db.monitor.recoveries == 1 and db.monitor.last_recovery["ok"]
            assert outside.query(db_path, "PRAGMA integrity_check") == [["ok"]]
            assert not DamageMarker(db_path).present() and db.health().status is HealthStatus.HEALTHY
        else:  # its own verdict (unavailable), not only another's mark (degraded)
            assert db.monitor.integrity_ok is False and db.health().status is HealthStatus.UNAVAILABLE
            assert DamageMarker(db_path).present()


def test_a_start_on_a_file_whose_mark_is_stale_clears_it(tmp_path: Path) -> None:
    """A mark whose damage is gone (repaired by hand, the process that marked it dead): the start's full check
    is clean and removes it, so the runtime's own writes are not held back."""
    db_path = tmp_path / "app.db"
    fault = index_entry_damaged(db_path)
    with manager(db_path) as first:
        assert not first.check_integrity(full=True).ok
    fault.heal()
    with manager(db_path) as db:
        assert db.monitor.integrity_ok is True and not DamageMarker(db_path).present()
        assert db.health().status is HealthStatus.HEALTHY


def test_a_lock_during_the_starts_check_is_no_result_the_mark_stands(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """A start on a marked file whose full check meets a lock outlasting the retry policy (a real exclusive lock:
    readers wait too in a rollback journal) reaches no verdict: the start goes on, the mark stands for the next
    check, and nothing is recovered or cleared on a transient error."""
    from pytest_dbfault.faults.locked import LockedFault

    db_path = tmp_path / "app.db"
    index_entry_damaged(db_path)
    with manager(db_path) as first:
        assert not first.check_integrity(full=True).ok
    with LockedFault(db_path, mode="exclusive"):
        db = manager(db_path, auto_recover=True, busy_timeout_ms=20, retry_attempts=2)
    try:
        assert "could not check it now" in caplog.text and "the mark stands" in caplog.text
        assert DamageMarker(db_path).present() and db.monitor.recoveries == 0
    finally:
        db.close()
