"""A file this process puts at the path (a restore, a recovery) is read at once by every manager of the process.

Reads check that the path still names their file only every ``identity_check_interval`` (writes check before every
commit). Within one process nothing needs that interval: the manager that installs the file tells the others on
the same path, and their next read follows it (found by the data-loss machine: right after one manager's recovery,
a second manager's read served the quarantined file, without a row another process had committed to the new one).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from runtime_helpers import SQLITE_MODULE_NAME, fast_config, sqlite_module

from pytest_dbfault.faults import DisconnectFault, make_fault
from pytest_dbfault.faults.target import MODULE_ENV
from reliability import DatabaseManager


def two_managers(tmp_path: Path) -> tuple[DatabaseManager, DatabaseManager]:
    db_path = tmp_path / "app.db"
    first = DatabaseManager(fast_config(db_path, backup_dir=str(tmp_path / "backups")))
    first.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    first.execute("INSERT INTO t VALUES (1)")
    # The same file named another way (relative to the working directory, which the test set): the same path.
    second = DatabaseManager(fast_config("app.db", backup_dir=str(tmp_path / "backups")))
    second.identity_check_interval = 3600  # (left alone, its reads would not look at the path for an hour)
    return first, second


def ids(db: DatabaseManager) -> list[int]:
    return [r[0] for r in db.fetch_all("SELECT id FROM t ORDER BY id")]


def insert_outside(db_path: Path, value: int) -> None:
    """Another connection (the runtime's SQLite build) commits ``value`` into the file the path names."""
    conn = sqlite_module().connect(str(db_path), isolation_level=None, timeout=5)
    try:
        conn.execute("INSERT INTO t VALUES (?)", (value,))
    finally:
        conn.close()


def put_a_copy_with_a_new_row(db_path: Path) -> None:
    """The file deleted and a copy of it put back (another file than the one a handle has open), then a row 2
    committed into the copy from outside."""
    fault = DisconnectFault(db_path, mode="delete", backup_before=True)
    fault.inject()
    fault.heal()
    insert_outside(db_path, 2)


def test_a_restore_by_one_manager_is_read_at_once_by_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first, second = two_managers(tmp_path)
    try:
        first.backup()
        first.execute("INSERT INTO t VALUES (2)")
        assert ids(second) == [1, 2]  # (its path is checked now, and by the interval not again for an hour)
        first.restore()
        assert ids(second) == [1], "a read right after a restore by another manager served the replaced file"
        assert second.connections.identity == second.connections.identity_at_path()
    finally:
        second.close()
        first.close()


def test_a_recovery_by_one_manager_is_read_at_once_by_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first, second = two_managers(tmp_path)
    try:
        first.backup()
        first.execute("INSERT INTO t VALUES (2)")
        assert ids(second) == [1, 2]
        report = first.recover()  # (a sound file: recovered all the same, from the backup and the redo journal)
        assert report.quarantined, report
        # Another connection commits to the file recovery put at the path: a manager here must serve it.
        insert_outside(tmp_path / "app.db", 3)
        assert ids(second) == [1, 2, 3], "a read right after a recovery by another manager served the old file"
    finally:
        second.close()
        first.close()


def test_a_shorter_identity_check_interval_takes_effect_at_once(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Set shorter (here 0: every read), the interval counts from the last check: the next read looks at the path,
    not only once the hour set before has run out."""
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)  # (the fault's copy uses the runtime's SQLite build)
    db_path = tmp_path / "app.db"
    db = DatabaseManager(fast_config(db_path))
    try:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        db.execute("INSERT INTO t VALUES (1)")
        db.identity_check_interval = 3600
        assert ids(db) == [1]  # (the path is checked now, and by the interval not again for an hour)
        put_a_copy_with_a_new_row(db_path)
        assert ids(db) == [1]  # (the hour holds: the unlinked file is still read; the documented interval)
        db.identity_check_interval = 0
        assert ids(db) == [1, 2], "the read after setting the interval to 0 did not look at the path"
    finally:
        db.close()


def test_a_longer_identity_check_interval_counts_from_the_last_check(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Set longer right after a read looked at the path, the interval counts from that look too: no read looks again
    within the hour, not even once the default 50 ms have passed. (It used to keep the look due 50 ms after the read,
    which left the data-loss machine's held path checks looking on their own on a loaded machine.)"""
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)  # (the fault's copy uses the runtime's SQLite build)
    db_path = tmp_path / "app.db"
    db = DatabaseManager(fast_config(db_path))
    try:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        db.execute("INSERT INTO t VALUES (1)")
        db.follow_the_path()
        assert ids(db) == [1]  # (this read looks at the path: the default interval counts from here)
        db.identity_check_interval = 3600
        put_a_copy_with_a_new_row(db_path)
        time.sleep(0.06)  # past the default interval since the look
        assert ids(db) == [1], "a read within the hour set after the last look looked at the path"
        db.follow_the_path()
        assert ids(db) == [1, 2]  # (asked for, a look happens whatever the interval)
    finally:
        db.close()


def test_a_damage_verdict_goes_when_another_manager_installs_a_file(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Manager B judged the file damaged (its startup check); manager A recovers: B's verdict was about the file now
    set aside, and its health no longer says "marked corrupt" (before: unavailable until B's next full check)."""
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)
    cfg = fast_config(tmp_path / "app.db", backup_dir=str(tmp_path / "backups"), auto_recover=False)
    a = DatabaseManager(cfg)
    b = None
    try:
        a.execute("CREATE TABLE t (id TEXT PRIMARY KEY, pad TEXT)")
        a.backup()
        for i in range(30):
            a.execute("INSERT INTO t VALUES (?, ?)", (f"a{i}", "x" * 200))
        make_fault("corrupt", str(tmp_path / "app.db"), part="btree", table="t", seed=1).inject()
        logging.disable(logging.CRITICAL)  # (B's startup complaints about the damaged file are expected)
        try:
            b = DatabaseManager(cfg)
        finally:
            logging.disable(logging.NOTSET)
        assert any("marked corrupt" in r for r in b.health().reasons)  # (B's own verdict on the damaged file)
        assert a.recover().ok
        reasons = b.health().reasons
        assert not any("marked corrupt" in r for r in reasons), reasons
        assert len(b.fetch_all("SELECT id FROM t")) == 30
    finally:
        if b is not None:
            b.close()
        a.close()


def test_health_right_after_another_managers_recovery_judges_the_installed_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Health judges the file the next call serves: right after another manager of this process recovered the
    database, a second manager's health is healthy (it said unavailable, "readonly_dbmoved", for as long as no read or
    write happened to reopen), and a read then serves the installed file."""
    monkeypatch.chdir(tmp_path)
    first, second = two_managers(tmp_path)
    try:
        assert ids(second) == [1]
        first.backup()
        assert first.recover().ok
        first.execute("INSERT INTO t VALUES (2)")  # (into the installed file)
        report = second.health()
        assert str(report.status) == "healthy", report.reasons
        assert second.connections.identity == second.connections.identity_at_path()
        assert ids(second) == [1, 2]
    finally:
        second.close()
        first.close()


def test_health_after_an_outside_replace_and_a_delete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another sound database put at the path from outside: health follows it, as the next read would. The file
    deleted with nothing put back: health is not healthy (there is nothing to follow)."""
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)
    db_path = tmp_path / "app.db"
    db = DatabaseManager(fast_config(db_path))
    try:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        db.execute("INSERT INTO t VALUES (1)")
        db.identity_check_interval = 3600
        assert ids(db) == [1]
        fault = DisconnectFault(db_path, mode="delete", backup_before=True)
        fault.inject()
        gone = db.health()
        assert str(gone.status) != "healthy" and any("readonly_dbmoved" in r for r in gone.reasons), gone.reasons
        fault.heal()  # a copy is back at the path: another file than the one the handle has open
        insert_outside(db_path, 2)
        report = db.health()
        assert str(report.status) == "healthy", report.reasons
        assert ids(db) == [1, 2]  # (within the hour: health's look is the one that followed the path)
    finally:
        db.close()
