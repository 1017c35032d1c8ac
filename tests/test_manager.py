"""DatabaseManager: statement retry, reconnect, moved-file detection, user messages, health counters."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime_helpers import LockHolder, fast_config, sqlite_module

from reliability import DatabaseError, DatabaseManager, ErrorKind, HealthStatus


def test_it_is_a_context_manager_that_closes(db_path: Path) -> None:
    with DatabaseManager(fast_config(db_path)) as db:
        db.execute("CREATE TABLE t (v)")
    assert db.closed
    db.close()  # twice is fine


def test_fetch_helpers_return_rows(db: DatabaseManager) -> None:
    db.executemany("INSERT INTO items (name, qty) VALUES (?, ?)", [("a", 1), ("b", 2)])
    assert db.fetch_one("SELECT qty FROM items WHERE name = ?", ("b",)) == (2,)
    assert db.fetch_one("SELECT qty FROM items WHERE name = ?", ("zz",)) is None
    assert db.fetch_all("SELECT name FROM items ORDER BY name") == [("a",), ("b",)]


def test_a_statement_is_retried_until_a_real_lock_is_released(db_path: Path) -> None:
    with DatabaseManager(fast_config(db_path, busy_timeout_ms=0, retry_attempts=5)) as db:
        db.execute("CREATE TABLE t (v)")
        holder = LockHolder(db_path).__enter__()
        slept: list[float] = []

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            if len(slept) == 3:
                holder.__exit__()

        db.policy.sleep = sleep
        db.execute("INSERT INTO t VALUES (1)")
        assert len(slept) == 3
        assert db.fetch_one("SELECT count(*) FROM t") == (1,)
        report = db.health()
        assert report.retries == 3 and report.errors == {}


def test_a_lock_that_outlasts_the_budget_surfaces_as_busy(db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with DatabaseManager(fast_config(db_path, busy_timeout_ms=0, retry_attempts=3)) as db:
        db.execute("CREATE TABLE t (v)")
        with LockHolder(db_path), caplog.at_level(logging.WARNING, logger="reliability"):
            with pytest.raises(DatabaseError) as info:
                db.execute("INSERT INTO t VALUES (1)")
        err = info.value
        assert err.kind is ErrorKind.BUSY and err.transient and err.attempts == 3
        assert err.user_message == "The database is busy right now. Please try again in a moment."
        assert isinstance(err.__cause__, sqlite_module().OperationalError)
        attempts = [r.attempt for r in caplog.records if getattr(r, "operation_id", None) == err.operation_id]
        assert attempts == [1, 2, 3]  # two retries logged as warnings, then the final error
        assert db.health().errors == {"busy": 1}


def test_a_closed_handle_is_reopened_transparently(db: DatabaseManager) -> None:
    db.connection.close()
    db.execute("INSERT INTO items (name) VALUES ('after close')")
    assert db.fetch_one("SELECT count(*) FROM items") == (1,)
    assert db.connections.reconnects >= 0 and db.health().status is HealthStatus.HEALTHY


def test_a_wal_write_into_a_deleted_file_is_never_acknowledged(db: DatabaseManager) -> None:
    # FAULTS.md: in WAL mode SQLite keeps writing into an unlinked file without error.
    db.execute("INSERT INTO items (name) VALUES ('kept')")
    moved = db.path + ".away"
    os.rename(db.path, moved)
    with pytest.raises(DatabaseError) as info:
        db.execute("INSERT INTO items (name) VALUES ('lost?')")
    assert info.value.kind is ErrorKind.UNAVAILABLE
    assert db.health().status is HealthStatus.UNAVAILABLE
    os.rename(moved, db.path)
    db.execute("INSERT INTO items (name) VALUES ('after')")
    names = [r[0] for r in sqlite3.connect(db.path).execute("SELECT name FROM items ORDER BY id")]
    assert names == ["kept", "after"]


def test_a_file_renamed_back_during_backoff_takes_the_write(db_path: Path) -> None:
    with DatabaseManager(fast_config(db_path, retry_attempts=5)) as db:
        db.execute("CREATE TABLE t (v)")
        away = str(db_path) + ".away"
        os.rename(db_path, away)
        slept: list[float] = []

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            if len(slept) == 2:
                os.rename(away, db_path)

        db.policy.sleep = sleep
        db.execute("INSERT INTO t VALUES ('landed')")
        assert sqlite3.connect(db_path).execute("SELECT v FROM t").fetchall() == [("landed",)]


def test_read_only_database_gives_a_plain_message(db: DatabaseManager) -> None:
    db.connection.execute("PRAGMA query_only = 1")
    with pytest.raises(DatabaseError) as info:
        db.execute("INSERT INTO items (name) VALUES ('x')")
    assert info.value.kind is ErrorKind.READONLY
    assert "read-only" in info.value.user_message
    assert db.health().status is HealthStatus.DEGRADED


def test_corruption_notifies_the_recovery_listeners(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with DatabaseManager(fast_config(path, journal_mode="DELETE")) as db:
        db.execute("CREATE TABLE t (v)")
        db.close()
    with open(path, "r+b") as f:
        f.write(b"garbage garbage!")
    seen: list[ErrorKind] = []
    with DatabaseManager(fast_config(path, journal_mode="DELETE")) as db2:
        db2.corruption_listeners.append(lambda err: seen.append(err.kind))
        with pytest.raises(DatabaseError) as info:
            db2.fetch_all("SELECT * FROM t")
    assert info.value.kind is ErrorKind.NOTADB and seen == [ErrorKind.NOTADB]
    assert "damaged" in info.value.user_message


def test_executemany_is_all_or_nothing(db: DatabaseManager) -> None:
    rows = [("a",), ("b",), ("a",), ("c",)]  # the third violates UNIQUE
    with pytest.raises(DatabaseError) as info:
        db.executemany("INSERT INTO items (name) VALUES (?)", rows)
    assert info.value.kind is ErrorKind.CONSTRAINT
    assert db.fetch_one("SELECT count(*) FROM items") == (0,)


def test_sql_and_parameters_stay_out_of_user_messages(db: DatabaseManager, caplog) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.ERROR, logger="reliability"), pytest.raises(DatabaseError) as info:
        db.execute("INSERT INTO nowhere (secret) VALUES (?)", ("hunter2",))
    assert info.value.kind is ErrorKind.SCHEMA
    assert "nowhere" not in info.value.user_message and "hunter2" not in info.value.user_message
    record = next(r for r in caplog.records if getattr(r, "operation_id", "") == info.value.operation_id)
    assert record.sql == "INSERT INTO nowhere (secret) VALUES (?)" and record.params == ["?"]


@settings(max_examples=20)
@given(st.lists(st.sampled_from(["execute", "fetch_one", "fetch_all", "transaction", "bad"]), max_size=30))
def test_health_counters_equal_the_operations_performed(tmp_path_factory, ops) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("h") / "a.db"
    with DatabaseManager(fast_config(path)) as db:
        db.monitor.reset()
        db.connection.execute("CREATE TABLE t (v)")
        for op in ops:
            if op == "execute":
                db.execute("INSERT INTO t VALUES (1)")
            elif op == "fetch_one":
                db.fetch_one("SELECT count(*) FROM t")
            elif op == "fetch_all":
                db.fetch_all("SELECT * FROM t")
            elif op == "transaction":
                with db.transaction():
                    pass
            else:
                with pytest.raises(DatabaseError):
                    db.fetch_all("SELECT * FROM missing")
        report = db.health()
        expected = {op: ops.count(op) for op in set(ops) if op != "bad"}
        assert report.operations == expected
        assert report.errors == ({"schema": ops.count("bad")} if "bad" in ops else {})


def test_with_no_retries_left_a_closed_handle_is_still_replaced_on_the_next_call(db_path: Path) -> None:
    with DatabaseManager(fast_config(db_path, retry_attempts=1)) as db:
        db.execute("CREATE TABLE t (v)")
        db.connection.close()
        db.execute("INSERT INTO t VALUES (1)")  # reopening a closed handle is not a retry
        os.rename(db_path, str(db_path) + ".away")
        db.connection.close()
        with pytest.raises(DatabaseError) as info:
            db.execute("INSERT INTO t VALUES (2)")
        assert info.value.kind is ErrorKind.UNAVAILABLE and info.value.attempts == 1
        os.rename(str(db_path) + ".away", db_path)
        db.execute("INSERT INTO t VALUES (3)")
        assert db.fetch_all("SELECT v FROM t") == [(1,), (3,)]


def test_a_transaction_on_a_vanished_file_fails_with_a_database_error_and_an_operation_id(db_path: Path) -> None:
    with DatabaseManager(fast_config(db_path, retry_attempts=1)) as db:
        db.execute("CREATE TABLE t (v)")
        db.connections.close()
        os.rename(db_path, str(db_path) + ".away")
        with pytest.raises(DatabaseError) as info:
            with db.transaction():
                db.execute("INSERT INTO t VALUES (1)")
        assert info.value.kind is ErrorKind.CANTOPEN and info.value.operation_id


def test_a_transaction_that_cannot_reach_the_file_within_the_budget_is_unavailable(db_path: Path) -> None:
    with DatabaseManager(fast_config(db_path, retry_attempts=3)) as db:
        db.execute("CREATE TABLE t (v)")
        db.connections.close()
        os.rename(db_path, str(db_path) + ".away")
        with pytest.raises(DatabaseError) as info:
            db.run_in_transaction(lambda: db.execute("INSERT INTO t VALUES (1)"))
        assert info.value.kind is ErrorKind.UNAVAILABLE and info.value.attempts == 3


def test_a_batch_that_changes_no_rows_still_reports_its_rowcount(db: DatabaseManager) -> None:
    cur = db.executemany("UPDATE items SET qty = ? WHERE name = ?", [(1, "nobody"), (2, "none")])
    assert cur.rowcount == 0 and db.fetch_one("SELECT count(*) FROM items") == (0,)
    assert repr(db).startswith("<DatabaseManager ") and repr(db).endswith(" connected>")


def test_a_failing_statement_classifies_each_failed_attempt_once(db_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The slow path wraps each failure once and decides on the wrapped error (it was 3 per attempt)."""
    import reliability.errors as errors

    calls: list[str] = []
    real = errors.classify

    def counting(exc: BaseException) -> ErrorKind:
        if not isinstance(exc, DatabaseError):  # (a wrapped error's kind is read, not classified)
            calls.append(type(exc).__name__)
        return real(exc)

    with DatabaseManager(fast_config(db_path, busy_timeout_ms=0, retry_attempts=3)) as db:
        db.execute("CREATE TABLE t (v)")
        monkeypatch.setattr(errors, "classify", counting)
        with LockHolder(db_path), pytest.raises(DatabaseError) as info:
            db.execute("INSERT INTO t VALUES (1)")
    assert info.value.kind is ErrorKind.BUSY and info.value.attempts == 3
    assert len(calls) == 3
