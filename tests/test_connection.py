"""ConnectionManager: pragmas, explicit transactions, health checks and reconnect against real files."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from runtime_helpers import fast_config

from reliability.connection import ConnectionManager, ConnectionState
from reliability.errors import ErrorKind


def manager(path: Path, **kw: object) -> ConnectionManager:
    return ConnectionManager(fast_config(path, **kw))


def test_it_applies_the_configured_pragmas(tmp_path: Path) -> None:
    cm = manager(tmp_path / "a.db", busy_timeout_ms=1234)
    conn = cm.connection
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
    assert cm.state is ConnectionState.CONNECTED


def test_the_sqlite_module_never_begins_transactions_implicitly(tmp_path: Path) -> None:
    conn = manager(tmp_path / "a.db").connection
    conn.execute("CREATE TABLE t (v)")
    conn.execute("INSERT INTO t VALUES (1)")
    assert not conn.in_transaction
    # Visible to another connection at once: it was committed by SQLite, not held open by Python.
    assert sqlite3.connect(tmp_path / "a.db").execute("SELECT count(*) FROM t").fetchone()[0] == 1


def test_a_healthy_connection_passes_the_check(tmp_path: Path) -> None:
    cm = manager(tmp_path / "a.db")
    cm.connection.execute("CREATE TABLE t (v)")
    assert cm.check() is None


def test_the_check_detects_a_closed_handle(tmp_path: Path) -> None:
    cm = manager(tmp_path / "a.db")
    cm.connection.close()
    assert cm.check() is ErrorKind.CLOSED


@pytest.mark.parametrize("how", ["delete", "rename", "replace"])
def test_the_check_detects_a_file_changed_under_the_connection(tmp_path: Path, how: str) -> None:
    path = tmp_path / "a.db"
    cm = manager(path)
    cm.connection.execute("CREATE TABLE t (v)")
    if how == "delete":
        os.remove(path)
    elif how == "rename":
        os.rename(path, tmp_path / "moved.db")
    else:
        other = tmp_path / "other.db"
        sqlite3.connect(other).execute("CREATE TABLE x (v)").connection.commit()
        os.replace(other, path)
    assert cm.file_moved()
    assert cm.check() is ErrorKind.READONLY_DBMOVED


def test_the_check_detects_a_read_only_connection(tmp_path: Path) -> None:
    cm = manager(tmp_path / "a.db")
    cm.connection.execute("PRAGMA query_only = 1")
    assert cm.check() is ErrorKind.READONLY


def test_close_then_use_reopens(tmp_path: Path) -> None:
    cm = manager(tmp_path / "a.db")
    cm.connection.execute("CREATE TABLE t (v)")
    cm.close()
    assert cm.state is ConnectionState.CLOSED
    assert cm.connection.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_a_sqlite_module_named_by_its_import_path_is_used(tmp_path: Path) -> None:
    cm = manager(tmp_path / "a.db", sqlite_module="sqlite3.dbapi2")
    assert cm.module.connect is sqlite3.connect
    assert cm.connection.execute("SELECT 1").fetchone() == (1,)


def test_closing_mid_transaction_rolls_the_transaction_back(tmp_path: Path) -> None:
    cm = manager(tmp_path / "a.db")
    cm.connection.execute("CREATE TABLE t (v)")
    cm.connection.execute("BEGIN IMMEDIATE")
    cm.connection.execute("INSERT INTO t VALUES ('uncommitted')")
    cm.close()
    assert cm.connection.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_a_manager_that_never_opened_reports_closed_and_not_moved(tmp_path: Path) -> None:
    cm = manager(tmp_path / "a.db")
    assert cm.check() is ErrorKind.CLOSED and not cm.file_moved()


def test_a_replacement_files_own_live_wal_is_kept_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    cm = manager(path)
    cm.connection.execute("CREATE TABLE t (v)")
    cm.close()
    other = tmp_path / "other.db"
    seed = sqlite3.connect(other, isolation_level=None)
    seed.execute("PRAGMA journal_mode = WAL")
    seed.execute("CREATE TABLE t (v)")
    seed.close()
    os.replace(other, path)
    writer = sqlite3.connect(path, isolation_level=None)  # keeps the new file's WAL alive
    writer.execute("INSERT INTO t VALUES ('in the new file''s WAL')")
    try:
        conn = cm.open()  # replaced, but the WAL beside it is newer than the file: it is the new file's
        assert conn.execute("SELECT v FROM t").fetchall() == [("in the new file's WAL",)]
        assert not [p for p in tmp_path.iterdir() if ".stale-" in p.name]
    finally:
        writer.close()


@pytest.mark.parametrize("mode", ["DELETE", "TRUNCATE", "WAL"])
def test_a_write_in_a_transaction_on_a_moved_rollback_journal_file_reconnects_not_degrades(tmp_path: Path,
                                                                                         mode: str) -> None:
    # A real rename (the disconnect fault's rename mode) while a transaction is about to write. SQLite 3.40
    # answers the write with SQLITE_READONLY_DBMOVED, 3.51 (pysqlite3) with plain SQLITE_READONLY, Python 3.10
    # shows only the primary code: the runtime knows the file moved, so the kind is readonly_dbmoved (reconnect)
    # and never readonly (degrade to read-only), whatever the build says.
    from runtime_helpers import fast_config

    from pytest_dbfault.faults import make_fault
    from reliability import DatabaseError, DatabaseManager

    path = tmp_path / "app.db"
    with DatabaseManager(fast_config(path, journal_mode=mode, retry_attempts=1)) as db:
        db.execute("CREATE TABLE t (v)")
        db.execute("INSERT INTO t VALUES (1)")
        fault = make_fault("disconnect", str(path), mode="rename")
        with pytest.raises(DatabaseError) as err:
            with db.transaction() as tx:
                fault.inject()
                tx.execute("INSERT INTO t VALUES (2)")
        fault.heal()
        assert err.value.kind in (ErrorKind.READONLY_DBMOVED, ErrorKind.CANTOPEN), err.value
        assert db.fetch_one("SELECT count(*) FROM t")[0] == 1  # nothing of it stored; served again
