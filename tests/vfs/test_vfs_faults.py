"""The I/O faults give the exact SQLite errors of FAULTS.md, through real SQLite and real files."""

from __future__ import annotations

import sqlite3

import pytest

from pytest_dbfault.faults.base import FaultError
from pytest_dbfault.faults.registry import get_fault_class, make_fault
from pytest_dbfault.vfs.faults import EnospcFault, IoErrorFault, PowerLossFault, ShortReadFault


def _commit_one(conn: sqlite3.Connection, value: str = "x") -> None:
    conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
    conn.commit()


def test_the_four_faults_are_registered_under_their_names():
    assert get_fault_class("io_error") is IoErrorFault
    assert get_fault_class("enospc") is EnospcFault
    assert get_fault_class("short_read") is ShortReadFault
    assert get_fault_class("power_loss") is PowerLossFault


@pytest.mark.parametrize(("ops", "error", "code", "name", "message", "still_in_txn"), [
    ("write", "io_error", 778, "SQLITE_IOERR_WRITE", "disk I/O error", False),
    ("sync", "io_error", 1034, "SQLITE_IOERR_FSYNC", "disk I/O error", False),
    # The first read is the header probe inside connect(): the error comes from connect itself.
    ("read", "io_error", 266, "SQLITE_IOERR_READ", "disk I/O error", None),
    ("read", "corrupt_fs", 8458, "SQLITE_IOERR_CORRUPTFS", "disk I/O error", None),
    # READONLY is not an I/O error: SQLite leaves the transaction open (the app must roll back).
    ("write", "read_only", 8, "SQLITE_READONLY", "attempt to write a readonly database", True),
])
def test_an_io_error_gives_the_sqlite_error_of_the_failed_operation(
        needs_vfs, make_db, connect, ops, error, code, name, message, still_in_txn):
    db = make_db()
    with IoErrorFault(db, ops=ops, error=error) as fault:
        with pytest.raises(sqlite3.Error, match=message) as exc:
            conn = connect(db)
            _commit_one(conn)
        if still_in_txn is not None:
            assert conn.in_transaction is still_in_txn
            conn.rollback()
    if hasattr(exc.value, "sqlite_errorcode"):
        assert (exc.value.sqlite_errorcode, exc.value.sqlite_errorname) == (code, name)
    assert fault.fired == 1
    failed = [r.detail for r in fault.records if r.action == "failed"]
    assert failed and failed[0]["op"] == ops and failed[0]["code"] == code


def test_a_transient_write_error_leaves_earlier_commits_and_lets_the_retry_succeed(needs_vfs, make_db, connect):
    db = make_db()
    with IoErrorFault(db, ops="write"):
        conn = connect(db)
        with pytest.raises(sqlite3.OperationalError):
            _commit_one(conn, "lost")
        _commit_one(conn, "kept")
    assert connect(db).execute("SELECT v FROM t WHERE id > 3").fetchall() == [("kept",)]


def test_a_persistent_sync_error_keeps_failing_until_healed(needs_vfs, make_db, connect):
    db = make_db()
    with IoErrorFault(db, ops="sync", persistent=True) as fault:
        conn = connect(db)
        for attempt in range(3):
            with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
                _commit_one(conn, f"try-{attempt}")
    assert fault.fired == 3
    _commit_one(conn, "after heal")
    assert [r[0] for r in connect(db).execute("PRAGMA integrity_check")] == ["ok"]


def test_enospc_fills_the_disk_for_every_connection_and_every_file_journal_and_wal(
        needs_vfs, make_db, connect):
    rollback, wal = make_db("r.db"), make_db("w.db", journal_mode="wal")
    with EnospcFault() as fault:
        for path in (rollback, wal):
            for conn in (connect(path), connect(path)):
                with pytest.raises(sqlite3.OperationalError, match="database or disk is full") as exc:
                    _commit_one(conn)
                if hasattr(exc.value, "sqlite_errorcode"):
                    assert exc.value.sqlite_errorcode == 13
                assert not conn.in_transaction
    kinds = {r.detail["kind"] for r in fault.records if r.action == "failed"}
    assert kinds == {"journal", "wal"}  # the first write of a commit goes to the journal / WAL
    for path in (rollback, wal):
        check = connect(path)
        assert check.execute("SELECT count(*) FROM t").fetchone() == (3,)  # earlier commits intact
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_enospc_after_some_writes_fails_the_rest(needs_vfs, make_db, connect):
    db = make_db()
    with EnospcFault(db, nth=3) as fault:
        conn = connect(db)
        with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
            for i in range(50):
                _commit_one(conn, f"v{i}")
    assert fault.rule.calls >= 3 and fault.fired >= 1


def test_a_short_read_of_page_one_makes_sqlite_report_a_malformed_database(needs_vfs, make_db, connect):
    db = make_db()
    # Read 1 is the 100-byte header probe, which SQLite tolerates short; read 2 is page 1.
    with ShortReadFault(db, nth=2):
        with pytest.raises(sqlite3.DatabaseError, match="malformed") as exc:
            connect(db).execute("SELECT * FROM t").fetchall()
    if hasattr(exc.value, "sqlite_errorcode"):
        assert exc.value.sqlite_errorname == "SQLITE_CORRUPT"
    assert connect(db).execute("SELECT count(*) FROM t").fetchone() == (3,)  # nothing was damaged


def test_a_connection_opened_before_inject_is_not_seen(needs_vfs, make_db, connect):
    db = make_db()
    early = connect(db)
    early.execute("SELECT 1 FROM t").fetchall()
    with IoErrorFault(db, ops="write", persistent=True) as fault:
        _commit_one(early)  # documented limit: only files opened while the shim is installed
    assert fault.fired == 0


def test_bad_parameters_name_the_fault_and_the_value():
    with pytest.raises(FaultError, match="io_error: FailRule ops .*'fsync'"):
        make_fault("io_error", ops="fsync")
    with pytest.raises(FaultError, match="power loss mode 'melt' unknown"):
        make_fault("power_loss", "x.db", mode="melt")
    with pytest.raises(FaultError, match="after_syncs=-1 must be >= 0"):
        make_fault("power_loss", "x.db", after_syncs=-1)
