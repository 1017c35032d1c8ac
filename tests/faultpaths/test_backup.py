"""Backups meeting real faults: a full disk, a damaged or vanished backup, a missing manifest."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from runtime_helpers import sqlite_module

from pytest_dbfault.faults import CorruptFault, DisconnectFault
from pytest_dbfault.vfs import vfs_available
from pytest_dbfault.vfs.faults import IoErrorFault
from reliability.durability.backup import BackupError, BackupManager, check_pragma, install, verify_file
from reliability.errors import ErrorKind


def source_db(path: Path, rows: int = 50) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"row-{i}" * 5,) for i in range(rows)])
    return conn


@pytest.fixture
def needs_vfs() -> None:
    ok, reason = vfs_available()
    if not ok:
        pytest.skip(f"VFS shim unavailable here: {reason}")


def test_a_read_error_on_the_database_mid_backup_leaves_no_file_behind_and_says_why(tmp_path, needs_vfs):
    source_db(tmp_path / "app.db").close()
    manager = BackupManager(tmp_path / "backups", module=sqlite_module())
    # Scoped to the database's files: a VFS fault on every file would also hit coverage's own data file.
    with IoErrorFault(tmp_path / "app.db", ops="read", nth=2, persistent=True):  # connect() reads once
        # The runtime's build: a VFS fault given a path is injected into that build's SQLite.
        src = sqlite_module().connect(str(tmp_path / "app.db"), isolation_level=None)  # opened while the disk fails
        try:
            with pytest.raises(BackupError) as info:
                manager.create(src, last_seq=3)
        finally:
            src.close()
    assert info.value.kind is ErrorKind.IOERR
    assert "failed: disk I/O error" in info.value.detail and manager.last_error == info.value.detail
    assert list((tmp_path / "backups").iterdir()) == []  # no copy, no journal, no manifest
    src = sqlite_module().connect(str(tmp_path / "app.db"), isolation_level=None)
    try:
        assert manager.create(src).verified and manager.last_error is None  # the disk reads again
    finally:
        src.close()


def test_quick_check_reports_a_backup_whose_header_is_damaged_instead_of_raising(tmp_path):
    src = source_db(tmp_path / "app.db")
    info = BackupManager(tmp_path / "backups").create(src)
    src.close()
    conn = sqlite3.connect(info.path)
    try:
        with CorruptFault(info.path, part="header", seed=3):
            problems = check_pragma(conn)
        assert len(problems) == 1 and problems[0].startswith("integrity_check failed: file is not a database")
        assert problems[0].endswith("(notadb)")
    finally:
        conn.close()


def test_verify_file_reports_a_backup_deleted_under_it(tmp_path):
    src = source_db(tmp_path / "app.db")
    info = BackupManager(tmp_path / "backups").create(src)
    src.close()
    with DisconnectFault(info.path, mode="delete"):
        problems = verify_file(info.path)
    assert len(problems) == 1 and problems[0].startswith(f"cannot open {info.path!r}")


def test_a_backup_whose_manifest_was_deleted_is_listed_as_unverified_and_never_chosen(tmp_path):
    src = source_db(tmp_path / "app.db")
    manager = BackupManager(tmp_path / "backups")
    older = manager.create(src)
    newer = manager.create(src)
    src.close()
    with DisconnectFault(newer.path + ".json", mode="delete"):
        listed = {b.path: b.verified for b in manager.list()}
        assert listed == {older.path: True, newer.path: False}
        assert manager.newest_verified().path == older.path  # type: ignore[union-attr]
        manager.mark_unverified(newer.path, "checked by hand")  # nothing to mark: no manifest, no error
        assert manager.find(newer.path).verified is False


def test_a_backup_linked_from_a_volume_that_went_away_is_skipped_by_the_listing(tmp_path):
    src = source_db(tmp_path / "app.db")
    manager = BackupManager(tmp_path / "backups")
    kept = manager.create(src)
    src.close()
    # An operator keeps an older backup on another volume and links it into the backup folder.
    elsewhere = tmp_path / "volume" / "backup-20000101T000000.000000Z.sqlite"
    elsewhere.parent.mkdir()
    os.link(kept.path, elsewhere)
    link = Path(manager.directory) / elsewhere.name
    link.symlink_to(elsewhere)
    assert len(manager.list()) == 2
    with DisconnectFault(elsewhere, mode="rename"):
        assert [b.path for b in manager.list()] == [kept.path]
    assert len(manager.list()) == 2  # the volume is back


# -- paths no fault reaches, covered plainly ---------------------------------------------------------------
def test_a_copy_left_by_a_crash_mid_backup_is_removed_and_a_stale_directory_only_logged(tmp_path, caplog):
    src = source_db(tmp_path / "app.db")
    manager = BackupManager(tmp_path / "backups")
    manager.directory.mkdir()
    stale = manager.directory / ".backup-20000101T000000.000000Z.sqlite.tmp"
    stale.write_bytes(b"half a copy")
    odd = manager.directory / ".backup-20000101T000000.000001Z.sqlite.tmp-dir"
    odd.mkdir()  # not a file: unlink refuses it, and a backup is still made
    for left in (stale, odd):  # left an hour ago (a fresh one may be another process's copy in progress)
        os.utime(left, (0, 0))
    fresh = manager.directory / ".backup-20000101T000000.000002Z.sqlite.tmp"
    fresh.write_bytes(b"another process copying right now")
    try:
        info = manager.create(src)
    finally:
        src.close()
    assert info.verified and not stale.exists() and odd.is_dir() and fresh.exists()
    assert f"could not remove {odd}" in caplog.text


def test_two_backups_in_the_same_microsecond_get_distinct_names(tmp_path):
    manager = BackupManager(tmp_path)
    first = manager._new_path(1_700_000_000.25)
    first.touch()
    second = manager._new_path(1_700_000_000.25)
    assert second != first and second.name.endswith("-1.sqlite")


def test_find_accepts_a_bare_name_and_describes_an_outside_file_as_unverified(tmp_path):
    src = source_db(tmp_path / "app.db")
    manager = BackupManager(tmp_path / "backups")
    try:
        info = manager.create(src, last_seq=7)
    finally:
        src.close()
    assert manager.find(Path(info.path).name) == info
    outside = tmp_path / "copy.sqlite"
    outside.write_bytes(Path(info.path).read_bytes())
    found = manager.find(outside)
    assert (found.path, found.verified, found.last_seq) == (str(outside), False, 7)


def test_install_refuses_while_a_wal_is_left_beside_the_target(tmp_path):
    prepared = tmp_path / "prepared.db"
    source_db(prepared).close()
    (tmp_path / "app.db-wal").write_bytes(b"")
    with pytest.raises(BackupError, match=r"app\.db-wal' still exists") as info:
        install(prepared, tmp_path / "app.db")
    assert info.value.kind is ErrorKind.MISUSE and prepared.exists()


def test_a_backup_blocked_by_an_exclusive_lock_gives_up_after_the_busy_timeout(tmp_path: Path) -> None:
    # Python's Connection.backup() retries a BUSY step for ever; with the manager's lock held meanwhile,
    # every other operation would wait too. The backup must fail (transient BUSY) and leave nothing behind.
    from runtime_helpers import fast_config

    from pytest_dbfault.faults import LockedFault
    from reliability import DatabaseManager
    from reliability.errors import DatabaseError

    with DatabaseManager(fast_config(tmp_path / "app.db", journal_mode="DELETE", busy_timeout_ms=50)) as db:
        db.execute("CREATE TABLE t (v)")
        db.execute("INSERT INTO t VALUES (1)")
        with LockedFault(db, mode="exclusive"):
            with pytest.raises(DatabaseError) as info:
                db.backup()
        assert info.value.kind is ErrorKind.BUSY and info.value.transient
        assert "locked" in info.value.detail  # (the sequence table's read or the copy: whichever meets it first)
        assert db.backups() == [] and not list(db.config.backup_directory.glob(".*tmp*"))
        assert db.backup().verified  # the lock gone, the next attempt works


def test_a_lock_taken_during_the_copy_outlasts_the_policy_as_busy_and_leaves_nothing(tmp_path: Path) -> None:
    """The copy's own retry: a lock another connection takes after the backup opened the database (a real
    ``BEGIN EXCLUSIVE`` in a rollback journal, injected as the copy starts) is retried, then reported busy."""
    from runtime_helpers import fast_config

    from pytest_dbfault.faults import LockedFault
    from reliability import DatabaseManager

    with DatabaseManager(fast_config(tmp_path / "app.db", journal_mode="DELETE", busy_timeout_ms=50)) as db:
        db.execute("CREATE TABLE t (v)")
        db.execute("INSERT INTO t VALUES (1)")
        store = db.durability.backups
        real_create = store.create
        faults: list[LockedFault] = []

        def create_under_a_lock(*args, **kwargs):  # type: ignore[no-untyped-def]
            if not faults:
                faults.append(LockedFault(db, mode="exclusive"))
                faults[0].inject()
            return real_create(*args, **kwargs)

        store.create = create_under_a_lock  # type: ignore[method-assign]
        try:
            with pytest.raises(BackupError) as info:
                db.backup()
        finally:
            store.create = real_create  # type: ignore[method-assign]
            for fault in faults:
                fault.heal()
        assert faults, "the copy never started: the lock was not met where this test means it"
        assert info.value.transient and "locked" in info.value.detail
        assert db.backups() == [] and not list(db.config.backup_directory.glob(".*tmp*"))
        assert db.backup().verified
