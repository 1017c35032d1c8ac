"""A backup is verified with the full ``integrity_check``: a copy of a file whose index no longer matches its rows
is never marked verified (P12 under corruption, and recovery_fuzz's ``index_entry`` class).

Such damage passes ``quick_check``, which verified backups before: a backup taken after it was marked verified, so a
recovery brought the damaged index back, and writes through it went astray again (a delete that found no row, an
upsert that added a second one).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime_helpers import SQLITE_MODULE_NAME, fast_config, sqlite_module, wait_for

from pytest_dbfault.faults import CorruptFault, outside
from pytest_dbfault.faults.target import MODULE_ENV
from reliability import DatabaseManager, HealthStatus
from reliability.durability.backup import BackupError, verify_file

KV = "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)"


@pytest.fixture(autouse=True)
def _faults_use_the_runtimes_sqlite_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)


def manager(db_path: Path, **extra: object) -> DatabaseManager:
    settings: dict[str, object] = {"journal_mode": "DELETE", "synchronous": "FULL", "auto_recover": False}
    settings.update(extra)
    return DatabaseManager(fast_config(db_path, **settings))


def index_entry_damaged(db_path: Path, **extra: object) -> None:
    """Rows and a verified backup, then the real ``index_entry`` fault on the closed file: quick_check passes, the full
    check does not."""
    with manager(db_path, **extra) as db:
        db.execute(KV)
        db.executemany("INSERT INTO kv (k, v) VALUES (?, ?)", [(f"user-{i}", f"v{i}") for i in range(20)])
        db.backup()
    CorruptFault(db_path, part="index_entry", index="sqlite_autoindex_kv_1", seed=3).inject()
    assert outside.query(db_path, "PRAGMA quick_check") == [["ok"]]
    assert outside.query(db_path, "PRAGMA integrity_check") != [["ok"]]


def test_a_copy_of_a_file_with_a_damaged_index_entry_is_not_verified(tmp_path: Path) -> None:
    db_path = tmp_path / "app.db"
    index_entry_damaged(db_path)
    with manager(db_path) as db:
        before = db.backups()
        with pytest.raises(BackupError, match="failed integrity_check and was discarded"):
            db.backup()  # (before: a backup marked verified, the damaged index in it)
        assert db.backups() == before
    assert verify_file(db_path, module=sqlite_module())  # (the check restore and `reliability restore` make)


def test_a_backup_whose_copy_fails_sends_the_source_to_the_full_check(tmp_path: Path) -> None:
    """``db.backup()`` as the schedule's: the copy refused, the source is judged (before, only the scheduled backup
    looked, and the runtime went on calling the file sound: recovery_fuzz seed 906)."""
    db_path = tmp_path / "app.db"
    index_entry_damaged(db_path)
    with manager(db_path) as db:
        with pytest.raises(BackupError, match="failed integrity_check"):
            db.backup()
        assert db.monitor.integrity_ok is False, db.monitor.integrity_problems
        assert db.health().status is not HealthStatus.HEALTHY


def test_a_scheduled_backup_that_meets_it_sends_the_source_to_the_full_check(tmp_path: Path) -> None:
    """The scheduled backup's failed copy starts the source's full check, whose verdict starts recovery: the newest
    verified backup (made before the damage) comes back, and the file passes the full check again."""
    db_path = tmp_path / "app.db"
    index_entry_damaged(db_path)
    with manager(db_path, backup_interval=0.05, auto_recover=True) as db:
        assert wait_for(lambda: db.monitor.recoveries >= 1, timeout=30), db.health().to_dict()
        assert db.check_integrity(full=True).ok
    assert outside.query(db_path, "PRAGMA integrity_check") == [["ok"]]


@pytest.mark.parametrize("auto_recover", [False, True], ids=["no_auto_recover", "auto_recover"])
def test_a_start_whose_anchoring_backup_fails_sends_the_source_to_the_full_check(tmp_path: Path,
                                                                                auto_recover: bool) -> None:
    """The first start with the redo journal anchors it with a backup: a damaged copy is a verdict on the source
    (before: a log line only, health healthy; with auto_recover a recovery with no verdict behind it)."""
    db_path = tmp_path / "app.db"
    index_entry_damaged(db_path, redo_journal=False)  # (written without the journal: the next start anchors one)
    with manager(db_path, redo_journal=True, auto_recover=auto_recover) as db:
        if auto_recover:
            assert db.monitor.recoveries == 1, db.monitor.last_recovery
            assert db.check_integrity(full=True).ok
        else:
            assert db.monitor.integrity_ok is False, db.monitor.integrity_problems
            assert db.health().status is not HealthStatus.HEALTHY
