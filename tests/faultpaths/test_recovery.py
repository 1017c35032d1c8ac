"""Durability meeting real faults: backups on a full disk, locks during migrations, I/O errors mid-recovery."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from runtime_helpers import fast_config, sqlite_module

from pytest_dbfault.faults import CorruptFault, DisconnectFault, FileFullFault, LockedFault
from pytest_dbfault.vfs import vfs_available
from pytest_dbfault.vfs.faults import EnospcFault, IoErrorFault
from reliability import DatabaseManager
from reliability.durability.backup import BackupError
from reliability.durability.recovery import replay_journal
from reliability.errors import DatabaseError, ErrorKind
from reliability.redo import read_journal
from reliability.schema import Migration, MigrationError

USERS = Migration(1, "create_users", "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)")


@pytest.fixture
def needs_vfs() -> None:
    # The shim is built for the runtime's own SQLite library (conftest points the faults at that build).
    ok, reason = vfs_available(fast_config("x.db").sqlite_module)
    if not ok:
        pytest.skip(f"VFS shim unavailable for this SQLite build: {reason}")


def new_db(tmp_path: Path, rows: int = 20, **changes: object) -> DatabaseManager:
    db = DatabaseManager(fast_config(tmp_path / "app.db", **changes))
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    for i in range(rows):
        db.execute("INSERT INTO t (id, v) VALUES (?, ?)", (i, f"value-{i}"))
    return db


def rows_of(path: Path | str) -> dict[int, str]:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT id, v FROM t"))
    finally:
        conn.close()


def test_a_migration_blocked_by_another_writer_fails_as_busy_and_changes_nothing(tmp_path):
    db = new_db(tmp_path)
    try:
        with LockedFault(db.path, mode="write"):
            with pytest.raises(DatabaseError) as info:
                db.migrate([USERS])
        assert info.value.kind is ErrorKind.BUSY and info.value.operation_id
        assert "users" not in {r[0] for r in db.fetch_all("SELECT name FROM sqlite_master")}
        assert db.migrate([USERS]).applied == [1]  # the lock is gone: it applies now
    finally:
        db.close()


def test_a_damaged_database_is_not_migrated_when_its_backup_fails_verification(tmp_path):
    db = new_db(tmp_path, rows=200, auto_recover=False)
    try:
        db.connections.close()
        with CorruptFault(db.path, part="btree", table="t", page="leaf", seed=5):
            with pytest.raises(MigrationError) as info:
                db.migrate([USERS])
        assert info.value.kind is ErrorKind.CORRUPT
        assert info.value.detail.startswith("no backup could be taken before migrating, so nothing was changed")
        assert "updating the database" in (info.value.user_message or "")
        assert db.fetch_one("SELECT count(*) FROM sqlite_master WHERE name = 'users'") == (0,)
        assert db.health().extra["last_backup_error"]
        assert db.backups() == []
    finally:
        db.close()


def test_a_backup_when_the_database_vanished_says_it_cannot_open_it(tmp_path):
    db = new_db(tmp_path)
    try:
        with DisconnectFault(db.connection, mode="close"), DisconnectFault(db.path, mode="rename"):
            with pytest.raises(BackupError) as info:
                db.backup()
        assert info.value.kind is ErrorKind.CANTOPEN
        assert info.value.detail.startswith("cannot open the database to back it up")
        assert db.monitor.last_backup_error == info.value.detail
        assert db.backup().verified and db.monitor.last_backup_error is None
    finally:
        db.close()


def test_a_scheduled_backup_of_a_damaged_database_checks_its_integrity(tmp_path):
    db = new_db(tmp_path, rows=200, auto_recover=False)
    try:
        db.connections.close()
        with CorruptFault(db.path, part="btree", table="t", page="leaf", seed=5):
            with pytest.raises(BackupError) as info:
                db.durability.upkeep.scheduled_backup()
        assert info.value.kind is ErrorKind.CORRUPT
        assert db.monitor.integrity_ok is False and db.monitor.integrity_problems
    finally:
        db.close()


def test_a_crash_left_journal_and_a_damaged_file_at_startup_recover_every_write(tmp_path):
    db = new_db(tmp_path, rows=200)
    db.backup()
    for i in range(200, 230):
        db.execute("INSERT INTO t (id, v) VALUES (?, ?)", (i, f"value-{i}"))
    expected = dict(db.fetch_all("SELECT id, v FROM t"))
    journal = db.config.redo_journal_file
    with FileFullFault(journal):
        db.close()  # the clean-close record cannot be written: the next start sees a crash
    with CorruptFault(db.path, part="btree", table="t", page="leaf", seed=5):
        db = DatabaseManager(fast_config(tmp_path / "app.db"))
    try:
        last = db.monitor.last_recovery
        assert last is not None and last["ok"], last
        assert dict(db.fetch_all("SELECT id, v FROM t")) == expected
        assert list(tmp_path.glob("app.db.quarantine-*"))
    finally:
        db.close()


def test_a_recovery_after_the_journal_was_deleted_says_writes_may_be_missing(tmp_path):
    db = new_db(tmp_path)
    db.backup()
    db.execute("INSERT INTO t (id, v) VALUES (100, 'after backup')")
    try:
        with DisconnectFault(db.config.redo_journal_file, mode="delete"):
            db.connections.close()
            with CorruptFault(db.path, part="header", seed=1):
                pass  # the damage stays
            report = db.recover()
        assert report.backup is not None and report.quarantined
        assert not report.ok  # the write after the backup is gone and the report must not claim otherwise
        assert any("is missing or lost its header" in p for p in report.problems), report.problems
        assert db.fetch_one("SELECT count(*) FROM t") == (20,)
        assert read_journal(db.config.redo_journal_file).header  # re-anchored: protected again from here
    finally:
        db.close()


def test_a_schema_that_cannot_be_read_at_startup_blocks_writes_with_the_reason(tmp_path):
    DatabaseManager(fast_config(tmp_path / "app.db"), migrations=[USERS]).close()
    with CorruptFault(tmp_path / "app.db", part="header", seed=2):
        db = DatabaseManager(fast_config(tmp_path / "app.db", auto_recover=False), migrations=[USERS])
    try:
        block = db.durability.write_block
        assert block and block.endswith("the schema could not be checked: file is not a database")
        assert block in db.health().reasons
    finally:
        db.close()


def test_an_io_error_while_replaying_stops_the_automatic_recovery_and_keeps_the_damaged_file(tmp_path, needs_vfs):
    db = new_db(tmp_path)
    db.backup()
    db.execute("INSERT INTO t (id, v) VALUES (100, 'after backup')")
    db.connections.close()
    with CorruptFault(db.path, part="btree", table="t", seed=9):
        pass  # the damage stays: CorruptFault heals nothing without backup_before
    damaged = Path(db.path).read_bytes()
    try:
        with IoErrorFault(f"{db.path}.restore-tmp", ops="read", persistent=True):
            report = db.check_integrity()
        assert not report.ok
        assert db.monitor.recoveries == 0  # the recovery raised before swapping anything in
        assert Path(db.path).read_bytes() == damaged and not list(tmp_path.glob("app.db.quarantine-*"))
        assert db.durability.recovery.last_failed_recovery > 0  # no new attempt on every error for a while
        db.durability.recovery.last_failed_recovery = 0.0
        assert db.recover().ok  # the disk reads again: a retry restores backup + journal
        assert db.fetch_one("SELECT v FROM t WHERE id = 100") == ("after backup",)
    finally:
        db.close()


def test_a_recovery_that_cannot_reopen_the_database_says_so_and_reconnects_later(tmp_path, needs_vfs):
    db = new_db(tmp_path)
    db.backup()
    db.execute("INSERT INTO t (id, v) VALUES (100, 'after backup')")
    expected = dict(db.fetch_all("SELECT id, v FROM t"))
    try:
        with IoErrorFault(db.path, ops="read", persistent=True):
            report = db.check_integrity()
        assert not report.ok
        last = db.monitor.last_recovery
        assert last is not None and not last["ok"]
        assert any(p.startswith("reopening after recovery failed") for p in last["problems"]), last
        redo_error = db.durability.redo.error  # type: ignore[union-attr]
        assert redo_error and redo_error.startswith("a recovery but no backup covers it yet")
        assert dict(db.fetch_all("SELECT id, v FROM t")) == expected
    finally:
        db.close()


def test_replay_onto_a_full_disk_stops_at_the_first_entry_it_cannot_write(tmp_path, needs_vfs):
    target = tmp_path / "prepared.db"
    module = sqlite_module()  # the runtime's build: the one the fault and the replay use
    conn = module.connect(str(target), isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    conn.close()
    entries = [(seq, [("INSERT INTO t (id, v) VALUES (?, ?)", (seq, "x" * 2000), False)]) for seq in (1, 2, 3)]
    with EnospcFault(target):
        replayed, problems = replay_journal(target, entries, module=module)
    assert replayed == 0
    assert len(problems) == 1 and problems[0].startswith("replay stopped at journal sequence 1")
    assert rows_of(target) == {}
    assert replay_journal(target, entries, module=module) == (3, [])


def test_replay_that_meets_a_passing_disk_full_redoes_the_batch_one_entry_at_a_time(tmp_path, needs_vfs):
    target = tmp_path / "prepared.db"
    module = sqlite_module()  # the runtime's build: the one the fault and the replay use
    conn = module.connect(str(target), isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    conn.close()
    entries = [(1, [("INSERT INTO t (id, v) VALUES (?, ?)", [(1, "a"), (2, "b")], True)]),
               (2, [("UPDATE t SET v = ? WHERE id = ?", ("c", 2), False)])]
    with EnospcFault(target, persistent=False) as fault:  # one write fails, the next ones find room
        assert replay_journal(target, entries, module=module) == (2, [])
    assert fault.fired == 1
    assert rows_of(target) == {1: "a", 2: "c"}


def test_a_database_deleted_while_the_service_was_down_is_rebuilt_at_startup(tmp_path):
    db = new_db(tmp_path)
    db.backup()
    db.execute("INSERT INTO t (id, v) VALUES (100, 'after backup')")
    expected = dict(db.fetch_all("SELECT id, v FROM t"))
    db.close()
    with DisconnectFault(tmp_path / "app.db", mode="delete"):
        db = DatabaseManager(fast_config(tmp_path / "app.db"))
    try:
        assert db.monitor.last_recovery is not None and db.monitor.last_recovery["ok"]
        assert dict(db.fetch_all("SELECT id, v FROM t")) == expected
    finally:
        db.close()


def test_a_crash_left_journal_on_a_damaged_file_without_auto_recover_is_reported_not_repaired(tmp_path):
    db = new_db(tmp_path, rows=200, auto_recover=False)
    db.backup()
    with FileFullFault(db.config.redo_journal_file):
        db.close()
    with CorruptFault(tmp_path / "app.db", part="btree", table="t", page="leaf", seed=5):
        db = DatabaseManager(fast_config(tmp_path / "app.db", auto_recover=False))
    try:
        assert db.monitor.last_recovery is None
        assert db.health().extra["last_backup_error"].startswith("the backup copy failed integrity_check")
    finally:
        db.close()


def test_with_auto_recover_off_a_damaged_read_marks_the_database_corrupt_and_leaves_it(tmp_path):
    db = new_db(tmp_path, rows=200, auto_recover=False)
    try:
        db.connections.close()
        with CorruptFault(db.path, part="btree", table="t", page="leaf", seed=5):
            for _ in range(2):  # the same error twice is listed once
                with pytest.raises(DatabaseError) as info:
                    db.fetch_all("SELECT * FROM t")
        assert info.value.kind is ErrorKind.CORRUPT
        assert db.monitor.integrity_ok is False and len(db.monitor.integrity_problems) == 1
        assert db.monitor.recoveries == 0 and not list(tmp_path.glob("app.db.quarantine-*"))
    finally:
        db.close()


def test_an_integrity_check_of_a_deleted_database_says_it_does_not_exist(tmp_path):
    db = new_db(tmp_path, auto_recover=False)
    try:
        db.connections.close()
        with DisconnectFault(db.path, mode="delete", backup_before=True):
            report = db.check_integrity()
        assert not report.ok and report.problems == [f"database file {db.path!r} does not exist"]
        assert db.check_integrity().ok  # put back by heal
    finally:
        db.close()


def test_maintenance_inside_a_transaction_is_refused_as_misuse(tmp_path):
    db = new_db(tmp_path)
    try:
        with db.transaction():
            for action in (lambda: db.migrate([USERS]), db.restore, db.recover):
                with pytest.raises(DatabaseError) as info:
                    action()
                assert info.value.kind is ErrorKind.MISUSE and "inside a transaction" in info.value.detail
    finally:
        db.close()


def test_without_a_redo_journal_backup_restore_and_recovery_say_what_they_cannot_do(tmp_path):
    db = new_db(tmp_path, redo_journal=False)
    try:
        with pytest.raises(BackupError, match="no verified backup"):
            db.restore()
        info = db.backup()
        assert info.last_seq is None
        db.execute("INSERT INTO t (id, v) VALUES (100, 'after backup')")
        assert db.restore().path == info.path
        assert db.fetch_one("SELECT count(*) FROM t WHERE id = 100") == (0,)  # restoring drops later writes
        report = db.recover()
        assert not report.ok and report.backup == info.path
        assert report.problems == ["the redo journal is off (redo_journal=False); writes after the backup are lost"]
    finally:
        db.close()


def test_a_journal_that_cannot_be_created_is_reported_and_writes_are_not_journaled(tmp_path):
    db = DatabaseManager(fast_config(tmp_path / "missing" / "app.db"))
    try:
        redo = db.durability.redo
        assert redo is not None and not redo.owned
        assert redo.error and redo.error.startswith(f"the redo journal {str(redo.path)!r} cannot be opened")
        assert redo.error in db.health().reasons
    finally:
        db.close()


def test_a_newest_backup_damaged_since_it_was_made_is_skipped_and_the_gap_reported(tmp_path):
    db = new_db(tmp_path)
    older = db.backup()
    db.execute("INSERT INTO t (id, v) VALUES (100, 'between the backups')")
    newest = db.backup()
    db.execute("INSERT INTO t (id, v) VALUES (101, 'after the newest')")
    try:
        db.connections.close()
        with CorruptFault(newest.path, part="header", seed=4), CorruptFault(db.path, part="header", seed=5):
            report = db.recover()
        assert report.backup == older.path and not report.ok
        assert report.problems[0].startswith(f"backup {newest.path} no longer passes integrity_check")
        # the journal starts after the newest backup: the transactions between are missing, the rest held back
        assert "missing from the redo journals" in report.problems[1] and "held back" in report.problems[1]
        assert db.fetch_one("SELECT count(*) FROM t") == (20,)
        listed = db.backups()  # the recovery's own re-anchoring backup, then the two older ones
        assert [b.verified for b in listed] == [True, False, True] and listed[1].path == newest.path
        db.connections.close()
        with CorruptFault(listed[0].path, part="header", seed=6), CorruptFault(db.path, part="header", seed=7):
            again = db.recover()  # the backup found damaged before is passed over without a second check
        assert again.backup == older.path
        assert not any(newest.path in p for p in again.problems), again.problems
    finally:
        db.close()


def test_a_write_the_journal_could_not_record_is_reported_after_recovery(tmp_path):
    db = new_db(tmp_path)
    db.backup()
    with FileFullFault(db.config.redo_journal_file):
        db.execute("INSERT INTO t (id, v) VALUES (100, 'not journaled')")
    try:
        db.connections.close()
        with CorruptFault(db.path, part="header", seed=7):
            report = db.recover()
        assert not report.ok
        assert any(p.startswith("redo journal write failed at seq") for p in report.problems), report.problems
        assert db.fetch_one("SELECT count(*) FROM t WHERE id = 100") == (0,)
    finally:
        db.close()


def test_a_backup_taken_by_a_second_manager_carries_the_global_sequence_for_recovery(tmp_path):
    db = new_db(tmp_path)  # a new database: its journal starts from empty
    other = DatabaseManager(fast_config(tmp_path / "app.db"))  # its own journal slot
    try:
        info = other.backup()
        assert info.last_seq is not None and info.last_seq == db.durability.redo.seq  # type: ignore[union-attr]
        other.execute("INSERT INTO t (id, v) VALUES (500, 'by the other manager')")
        expected = dict(db.fetch_all("SELECT id, v FROM t"))
        Path(f"{db.path}.restore-tmp").write_bytes(b"left by a crashed recovery")
        db.connections.close()
        with CorruptFault(db.path, part="header", seed=8):
            report = db.recover()
        assert report.ok and report.backup == info.path and report.replayed == 1, report
        assert dict(db.fetch_all("SELECT id, v FROM t")) == expected
    finally:
        other.close()
        db.close()


def test_a_journal_entry_that_fails_on_replay_stops_the_replay_there(tmp_path):
    target = tmp_path / "prepared.db"
    conn = sqlite3.connect(target, isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    conn.close()
    insert = "INSERT INTO t (id, v) VALUES (?, ?)"
    entries = [(1, [(insert, (1, "a"), False)]), (2, [(insert, (1, "again"), False)]), (3, [(insert, (3, "c"), False)])]
    replayed, problems = replay_journal(target, entries)
    assert replayed == 1 and len(problems) == 1
    assert problems[0].startswith("replay stopped at journal sequence 2: UNIQUE constraint failed")
    assert rows_of(target) == {1: "a"}
