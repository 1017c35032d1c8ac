"""LockedFault, BusySnapshotFault and BusyCommitFault against real database files."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from pytest_dbfault.faults import (
    BusyCommitFault,
    BusySnapshotFault,
    FaultError,
    LockedFault,
    arrange_busy_snapshot,
)


def _insert(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO items (name) VALUES ('new')")
    conn.commit()


def _holder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dbfault-locked")]


def test_an_exclusive_lock_makes_writers_and_rollback_readers_busy(make_db, connect, error_name):
    path = make_db(journal_mode="delete")
    with LockedFault(path, mode="exclusive"):
        victim = connect(path)
        with pytest.raises(sqlite3.OperationalError, match="database is locked") as write:
            _insert(victim)
        with pytest.raises(sqlite3.OperationalError) as read:
            victim.execute("SELECT count(*) FROM items").fetchone()
    assert error_name(write.value) == "SQLITE_BUSY"
    assert error_name(read.value) == "SQLITE_BUSY"


def test_in_wal_mode_readers_still_succeed_while_writers_are_busy(make_db, connect, error_name):
    path = make_db(journal_mode="wal")
    with LockedFault(path, mode="exclusive") as fault:
        victim = connect(path)
        assert victim.execute("SELECT count(*) FROM items").fetchone() == (20,)
        with pytest.raises(sqlite3.OperationalError) as write:
            _insert(victim)
    assert error_name(write.value) == "SQLITE_BUSY"
    held = next(r for r in fault.records if r.action == "lock held")
    assert held.detail["journal_mode"] == "wal"


def test_a_write_lock_lets_rollback_readers_read_but_not_write(make_db, connect, error_name):
    path = make_db(journal_mode="delete")
    with LockedFault(path, mode="write"):
        victim = connect(path)
        assert victim.execute("SELECT count(*) FROM items").fetchone() == (20,)
        with pytest.raises(sqlite3.OperationalError) as write:
            _insert(victim)
    assert error_name(write.value) == "SQLITE_BUSY"


def test_healing_releases_the_lock_and_joins_the_holder_thread(make_db, connect):
    path = make_db()
    fault = LockedFault(path).inject()
    assert len(_holder_threads()) == 1
    fault.heal()
    assert _holder_threads() == []
    victim = connect(path)
    _insert(victim)
    assert victim.execute("SELECT count(*) FROM items").fetchone() == (21,)
    assert [r.action for r in fault.records] == ["lock held", "inject", "lock released", "heal"]


def test_a_lock_with_a_duration_is_released_on_its_own(make_db, connect):
    path = make_db()
    fault = LockedFault(path, duration=0.05).inject()
    victim = connect(path, timeout=10)  # waits out the holder instead of failing
    _insert(victim)
    fault.heal()
    released = next(r for r in fault.records if r.action == "lock released")
    assert "elapsed" in released.detail["reason"]


def test_a_subprocess_holder_locks_across_processes_and_exits_on_heal(make_db, connect, error_name):
    path = make_db()
    fault = LockedFault(path, holder="subprocess").inject()
    proc = fault._process
    victim = connect(path)
    with pytest.raises(sqlite3.OperationalError) as write:
        _insert(victim)
    assert error_name(write.value) == "SQLITE_BUSY"
    fault.heal()
    assert proc is not None and proc.returncode == 0
    _insert(victim)


def test_inject_fails_clearly_when_the_lock_is_already_taken(make_db):
    path = make_db()
    with LockedFault(path):
        second = LockedFault(path, acquire_timeout=0.02)
        with pytest.raises(FaultError, match="could not take its exclusive lock"):
            second.inject()
        assert not second.active
    assert _holder_threads() == []


def test_an_unknown_lock_mode_is_rejected_by_name(make_db):
    with pytest.raises(FaultError, match="mode 'shared' is not one of"):
        LockedFault(make_db(), mode="shared")


def test_busy_snapshot_makes_the_next_write_fail_with_517_until_rolled_back(make_db, connect):
    path = make_db(journal_mode="wal")
    victim = connect(path)
    fault = BusySnapshotFault(victim).inject()
    with pytest.raises(sqlite3.OperationalError) as first:
        victim.execute("INSERT INTO items (name) VALUES ('x')")
    with pytest.raises(sqlite3.OperationalError) as retry:  # retrying inside the txn never works
        victim.execute("INSERT INTO items (name) VALUES ('x')")
    assert victim.in_transaction
    if hasattr(first.value, "sqlite_errorcode"):
        assert (first.value.sqlite_errorcode, first.value.sqlite_errorname) == (517, "SQLITE_BUSY_SNAPSHOT")
        assert retry.value.sqlite_errorcode == 517
    fault.heal()
    assert not victim.in_transaction
    _insert(victim)


def test_arrange_busy_snapshot_refuses_a_rollback_journal_database(make_db, connect):
    victim = connect(make_db(journal_mode="delete"))
    with pytest.raises(FaultError, match="needs a WAL database"):
        arrange_busy_snapshot(victim)


def test_busy_commit_fails_commit_but_keeps_the_transaction_open_for_a_retry(make_db, connect, error_name):
    path = make_db(journal_mode="delete")
    victim = connect(path)
    with BusyCommitFault(path):
        victim.execute("INSERT INTO items (name) VALUES ('pending')")  # RESERVED is still allowed
        with pytest.raises(sqlite3.OperationalError) as commit:
            victim.commit()
        assert error_name(commit.value) == "SQLITE_BUSY"
        assert victim.in_transaction
    victim.commit()
    check = connect(path)
    assert check.execute("SELECT count(*) FROM items WHERE name = 'pending'").fetchone() == (1,)


def test_busy_commit_refuses_a_wal_database(make_db):
    with pytest.raises(FaultError, match="needs a rollback-journal database"):
        BusyCommitFault(make_db(journal_mode="wal")).inject()


def _other_builds() -> list[str]:
    import importlib

    found = []
    for name in ("sqlean", "pysqlite3.dbapi2"):
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        found.append(name)
    return found


@pytest.mark.parametrize("module_name", _other_builds() or [pytest.param(
    "sqlean", marks=pytest.mark.skip(reason="neither sqlean.py nor pysqlite3-binary is installed here"))])
def test_locks_are_taken_with_the_victims_own_sqlite_build(make_db, module_name: str) -> None:
    # Two copies of SQLite in one process do not see each other's locks: a holder opened with the
    # stdlib would leave a sqlean victim free to write. The fault uses the victim's module.
    import importlib

    from pytest_dbfault.faults import BusyCommitFault

    module = importlib.import_module(module_name)
    path = make_db()
    victim = module.connect(str(path), timeout=0.02, isolation_level=None)
    try:
        with LockedFault(victim, mode="exclusive"):
            with pytest.raises(module.OperationalError, match="locked"):
                victim.execute("INSERT INTO items (name) VALUES ('x')")
        victim.execute("BEGIN")
        victim.execute("INSERT INTO items (name) VALUES ('y')")
        with BusyCommitFault(victim):
            with pytest.raises(module.OperationalError, match="locked"):
                victim.execute("COMMIT")
        victim.execute("COMMIT")
        assert victim.execute("SELECT count(*) FROM items WHERE name = 'y'").fetchone() == (1,)
    finally:
        victim.close()
