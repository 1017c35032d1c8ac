"""A transient error is never a verdict in maintenance (issue #15 item 4).

A lock held by another connection (``LockedFault``: a real ``BEGIN EXCLUSIVE``) while recovery
verifies a backup, while a scheduled ``quick_check`` runs or while a backup is copied is retried
under the shared policy; when it outlasts the policy the operation fails as BUSY and nothing is
marked bad. The retry policy's ``sleep`` is where a test lifts the lock, so no test depends on
timing. Locks on files the runtime reads with the stdlib ``sqlite3`` (backups, replay, a bare
path) are held from a subprocess, which every SQLite build in this process sees.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime_helpers import fast_config, wait_for

from pytest_dbfault.faults import LockedFault
from reliability import DatabaseManager
from reliability.errors import DatabaseError, ErrorKind
from reliability.health import check_integrity
from reliability.retry import RetryPolicy


class LiftOnSleep:
    """A retry policy's sleep that heals a held lock the first time the policy backs off."""

    def __init__(self) -> None:
        self.holder: LockedFault | None = None
        self.sleeps = 0

    def __call__(self, seconds: float) -> None:
        self.sleeps += 1
        if self.holder is not None:
            self.holder.heal()
            self.holder = None


def file_lock(path: object) -> LockedFault:
    """An EXCLUSIVE lock on a file the runtime opens with the stdlib sqlite3 (seen by every build)."""
    return LockedFault(path, mode="exclusive", holder="subprocess")


def new_db(tmp_path: Path, sleep=None, **changes: object) -> DatabaseManager:
    cfg = fast_config(tmp_path / "app.db", **changes)
    policy = RetryPolicy.from_config(cfg, sleep=sleep) if sleep is not None else None
    db = DatabaseManager(cfg, policy=policy)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    db.executemany("INSERT INTO t (id, v) VALUES (?, ?)", [(i, f"v{i}") for i in range(20)])
    return db


def test_a_backup_locked_through_recovery_stays_verified_and_the_next_recovery_uses_it(tmp_path):
    db = new_db(tmp_path)
    try:
        info = db.backup()
        db.execute("INSERT INTO t (id, v) VALUES (100, 'after the backup')")
        with file_lock(info.path):
            first = db.recover()
        assert not first.ok and first.backup is None
        assert any("could not be checked now (busy)" in p and "not marked bad" in p for p in first.problems)
        assert [b.verified for b in db.backups()] == [True]  # a lock is no verdict on the file
        second = db.recover()
        assert second.ok and second.backup == info.path, second.problems
        assert db.fetch_one("SELECT v FROM t WHERE id = 100") == ("after the backup",)
    finally:
        db.close()


def test_a_backup_locked_for_a_moment_is_checked_again_and_used(tmp_path):
    sleep = LiftOnSleep()
    db = new_db(tmp_path, sleep=sleep)
    try:
        info = db.backup()
        db.execute("INSERT INTO t (id, v) VALUES (100, 'after the backup')")
        sleep.holder = file_lock(info.path).inject()
        report = db.recover()
        assert sleep.sleeps >= 1 and sleep.holder is None  # the first check met the lock
        assert report.ok and report.backup == info.path, report.problems
        assert db.fetch_one("SELECT count(*) FROM t") == (21,)
    finally:
        db.close()


def test_restore_of_a_locked_backup_fails_as_busy_and_marks_nothing(tmp_path):
    db = new_db(tmp_path)
    try:
        info = db.backup()
        with file_lock(info.path), pytest.raises(DatabaseError) as caught:
            db.restore()
        assert caught.value.kind is ErrorKind.BUSY and "no verdict on the file" in caught.value.detail
        assert [b.verified for b in db.backups()] == [True]
        assert db.restore().path == info.path
    finally:
        db.close()


def test_an_integrity_check_that_meets_a_lock_is_no_verdict(tmp_path):
    db = new_db(tmp_path, journal_mode="DELETE", auto_recover=False)
    try:
        assert db.check_integrity().ok and db.monitor.integrity_ok is True
        with LockedFault(db, mode="exclusive"), pytest.raises(DatabaseError) as caught:
            db.check_integrity()
        assert caught.value.kind is ErrorKind.BUSY
        assert db.monitor.integrity_ok is True and db.monitor.integrity_problems == []
        assert str(db.health().status) == "healthy"
    finally:
        db.close()


def test_an_integrity_check_retries_a_lock_that_goes_away(tmp_path):
    sleep = LiftOnSleep()
    db = new_db(tmp_path, sleep=sleep, journal_mode="DELETE", auto_recover=False)
    try:
        sleep.holder = LockedFault(db, mode="exclusive").inject()
        report = db.check_integrity(full=True)
        assert sleep.sleeps >= 1 and report.ok and db.monitor.integrity_ok is True
    finally:
        db.close()


def test_a_scheduled_quick_check_that_meets_a_lock_leaves_integrity_unknown(tmp_path):
    db = new_db(tmp_path, journal_mode="DELETE", auto_recover=False, quick_check_interval=0.01)
    try:
        with LockedFault(db, mode="exclusive"):
            # A check already running when the lock was taken may still finish "ok": let it end first
            # (the scheduler runs one at a time), so every run counted below started under the lock.
            runs = db.durability.scheduler.runs["quick_check"]
            assert wait_for(lambda: db.durability.scheduler.runs["quick_check"] >= runs + 1)
            db.monitor.integrity_ok = None
            runs = db.durability.scheduler.runs["quick_check"]
            assert wait_for(lambda: db.durability.scheduler.runs["quick_check"] >= runs + 2)
            assert db.monitor.integrity_ok is None  # never False: nothing was learnt about the file
        assert wait_for(lambda: db.monitor.integrity_ok is True)
    finally:
        db.close()


def test_check_integrity_without_a_policy_raises_on_a_lock_instead_of_reporting_damage(tmp_path):
    db = new_db(tmp_path, journal_mode="DELETE")
    db.close()
    with file_lock(db.path), pytest.raises(DatabaseError) as caught:
        check_integrity(db.path, timeout=0.01)
    assert caught.value.kind is ErrorKind.BUSY


def test_a_backup_blocked_for_a_moment_is_retried_under_the_shared_policy(tmp_path):
    sleep = LiftOnSleep()
    db = new_db(tmp_path, sleep=sleep, journal_mode="DELETE")
    try:
        sleep.holder = LockedFault(db, mode="exclusive").inject()
        info = db.backup()
        assert sleep.sleeps >= 1 and info.verified and db.monitor.last_backup_error is None
    finally:
        db.close()


def test_replay_that_meets_a_lock_is_rerun_not_cut_short(tmp_path):
    from reliability.durability.backup import read_sequence
    from reliability.durability.recovery import replay_journal

    path = tmp_path / "target.db"
    db = new_db(tmp_path)  # only for a database file with table t
    db.close()
    Path(db.path).rename(path)
    base = read_sequence(path) or 0  # what the file already holds (its own journaled writes: the global sequence)
    entries = [(seq, [("INSERT INTO t (id, v) VALUES (?, ?)", [1000 + seq, "replayed"], False)])
               for seq in range(base + 1, base + 6)]
    sleep = LiftOnSleep()
    sleep.holder = file_lock(path).inject()
    replayed, problems = replay_journal(path, entries, policy=RetryPolicy(attempts=3, sleep=sleep))
    assert (replayed, problems) == (5, []) and sleep.sleeps == 1
    assert read_sequence(path) == base + 5


def test_a_schema_check_locked_out_at_startup_is_checked_again_not_held_against_writes(tmp_path):
    from reliability.schema import Migration

    migrations = [Migration(1, "create_t", "CREATE TABLE t (v)")]
    cfg = fast_config(tmp_path / "app.db", journal_mode="DELETE")
    DatabaseManager(cfg, migrations=migrations).close()
    with file_lock(cfg.db_path):
        db = DatabaseManager(cfg, migrations=migrations)
    try:
        assert db.durability.write_block and "checked again in the background" in db.durability.write_block
        assert wait_for(lambda: db.durability.write_block is None)
        db.execute("INSERT INTO t VALUES (1)")
        assert db.durability.schema_report is not None and db.durability.schema_report.ok
    finally:
        db.close()


def test_a_schema_check_locked_for_a_moment_at_startup_blocks_nothing(tmp_path):
    from reliability.schema import Migration

    migrations = [Migration(1, "create_t", "CREATE TABLE t (v)")]
    cfg = fast_config(tmp_path / "app.db", journal_mode="DELETE")
    DatabaseManager(cfg, migrations=migrations).close()
    sleep = LiftOnSleep()
    sleep.holder = file_lock(cfg.db_path).inject()
    with DatabaseManager(cfg, migrations=migrations, policy=RetryPolicy.from_config(cfg, sleep=sleep)) as db:
        assert sleep.sleeps >= 1 and db.durability.write_block is None
        db.execute("INSERT INTO t VALUES (1)")


def test_a_one_off_read_error_while_verifying_a_backup_is_retried_and_no_verdict(tmp_path, runtime_through_vfs):
    from pytest_dbfault.vfs.faults import IoErrorFault

    sleep = LiftOnSleep()
    db = new_db(tmp_path, sleep=sleep)
    try:
        info = db.backup()
        with IoErrorFault(info.path, ops="read", nth=1, persistent=False):
            assert db.durability.backups.verify(info.path) == []
        assert sleep.sleeps == 1  # the first check met the error and was retried
        assert [b.verified for b in db.backups()] == [True]
    finally:
        db.close()


def test_a_backup_unreadable_through_every_retry_is_reported(tmp_path, runtime_through_vfs):
    from pytest_dbfault.vfs.faults import IoErrorFault

    db = new_db(tmp_path)
    try:
        info = db.backup()
        with IoErrorFault(info.path, ops="read", persistent=True):
            problems = db.durability.backups.verify(info.path)
        assert len(problems) == 1, problems
        assert problems[0].startswith("integrity_check failed") and problems[0].endswith("(ioerr)"), problems
    finally:
        db.close()


def test_a_file_installed_by_another_process_and_locked_while_checked_is_no_verdict(tmp_path: Path) -> None:
    """Recovery waited for another process's install lock; the file that process installed is locked
    beyond the policy while this one checks it: no claim that it was already recovered (recover as asked),
    and nothing marks it damaged either."""
    import os
    import sqlite3

    from reliability.durability.recovered_elsewhere import recovered_by_another

    path = tmp_path / "app.db"
    # Rollback-journal mode: an exclusive lock keeps readers out (in WAL mode a reader is never blocked).
    db = DatabaseManager(fast_config(path, retry_attempts=1, journal_mode="DELETE"))
    try:
        db.execute("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES (1)")
        seen = db.connections.identity
        installed = tmp_path / "installed.db"
        src, dst = sqlite3.connect(path), sqlite3.connect(installed)
        src.backup(dst)  # another process's restored copy: a sound file at another inode
        src.close()
        dst.close()
        os.replace(installed, path)
        parts = db.durability.parts
        assert parts.connections.identity_at_path() != seen
        with LockedFault(db, mode="exclusive"):  # through the runtime's own build (pysqlite3 sees no other's)
            assert recovered_by_another(parts, parts.redo, seen) is None
        assert parts.monitor.integrity_ok is not False  # a lock is no verdict on the file
        assert recovered_by_another(parts, parts.redo, seen) is not None  # unlocked: seen as recovered
    finally:
        db.close()
