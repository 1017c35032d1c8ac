"""The classifier's less common paths, fed with errors SQLite (or the OS) really raised."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from runtime_helpers import sqlite_module

from pytest_dbfault.faults import DisconnectFault
from reliability import DatabaseError, DatabaseManager
from reliability.errors import ErrorHandler, ErrorKind, RecoveryAction, classify, error_name, sqlite_code

db_api = sqlite_module()


def raised(fn) -> BaseException:  # type: ignore[no-untyped-def]
    try:
        fn()
    except Exception as exc:  # the real error
        return exc
    raise AssertionError("no error was raised")


def without_code(exc: BaseException) -> BaseException:
    """What Python 3.10 raises for the same failure: SQLite's message, no code attributes."""
    return type(exc)(*exc.args)


def test_a_triggers_raise_abort_is_a_constraint_whatever_its_message_says(tmp_path: Path) -> None:
    conn = db_api.connect(tmp_path / "a.db", isolation_level=None)
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.execute("CREATE TRIGGER no_empty BEFORE INSERT ON t WHEN new.v = '' "
                 "BEGIN SELECT RAISE(ABORT, 'names may not be empty'); END")
    exc = raised(lambda: conn.execute("INSERT INTO t VALUES ('')"))
    assert classify(exc) is ErrorKind.CONSTRAINT
    # Without a code the message matches no SQLite text: the DB-API class still tells.
    assert classify(without_code(exc)) is ErrorKind.CONSTRAINT
    assert sqlite_code(without_code(exc)) == (None, None)


def test_an_sql_logic_error_without_a_known_message_is_unknown(tmp_path: Path) -> None:
    conn = db_api.connect(tmp_path / "a.db", isolation_level=None)
    conn.execute("BEGIN")
    exc = raised(lambda: conn.execute("BEGIN"))  # SQLITE_ERROR: "cannot start a transaction within a transaction"
    assert classify(exc) is ErrorKind.UNKNOWN and classify(without_code(exc)) is ErrorKind.UNKNOWN
    assert error_name(without_code(exc)) is None


def test_an_error_from_outside_sqlite_is_unknown_and_has_no_code(tmp_path: Path) -> None:
    exc = raised(lambda: (tmp_path / "no-such-dir" / "f.txt").read_text())  # a real OSError
    err = ErrorHandler(logging.getLogger("reliability.test")).wrap(exc, log=False)
    assert err.kind is ErrorKind.UNKNOWN and (err.code, err.code_name) == (None, None)
    assert err.__cause__ is exc and not err.transient


def test_running_out_of_memory_in_sqlite_is_nomem(tmp_path: Path) -> None:
    # hard_heap_limit binds the whole process and a pragma can only lower it: run it in a child.
    script = textwrap.dedent(f"""
        import sqlite3, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from reliability.errors import ErrorHandler, classify
        conn = sqlite3.connect({str(tmp_path / "m.db")!r}, isolation_level=None)
        conn.execute("PRAGMA hard_heap_limit = 200000")
        try:
            conn.execute("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 2000) "
                         "SELECT length(group_concat(randomblob(1000))) FROM r").fetchone()
        except BaseException as exc:
            err = ErrorHandler().wrap(exc, log=False)
            print(type(exc).__name__, classify(exc).value, err.kind.value, err.code)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["MemoryError", "nomem", "nomem", "None"]


def test_a_query_only_connection_is_readonly(db: DatabaseManager) -> None:
    with DisconnectFault(db, mode="readonly", readonly_via="query_only"):
        with pytest.raises(DatabaseError) as info:
            db.execute("INSERT INTO items (name) VALUES ('x')")
    assert info.value.kind is ErrorKind.READONLY and info.value.action is RecoveryAction.DEGRADE
    assert info.value.code is not None and info.value.code & 0xFF == 8


def test_an_interrupt_from_another_thread_is_interrupted(db: DatabaseManager) -> None:
    db.executemany("INSERT INTO items (name) VALUES (?)", [(f"n{i}",) for i in range(300)])
    conn = db.connection
    done = threading.Event()

    def cancel() -> None:  # a request cancelled by its caller: interrupt until the query gives up
        while not done.wait(0.005):
            conn.interrupt()

    canceller = threading.Thread(target=cancel)
    canceller.start()
    try:
        exc = raised(lambda: conn.execute("SELECT count(*) FROM items a, items b, items c").fetchone())
    finally:
        done.set()
        canceller.join(5)
    assert classify(exc) is ErrorKind.INTERRUPTED and classify(without_code(exc)) is ErrorKind.INTERRUPTED
    assert error_name(without_code(exc)) == "SQLITE_INTERRUPT"


def test_parameters_of_an_unsupported_type_get_a_clear_error_and_a_redacted_log(
        db: DatabaseManager, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="reliability"):
        with pytest.raises(DatabaseError) as info:
            db.execute("SELECT ?", 5)  # type: ignore[arg-type]
    assert info.value.kind is ErrorKind.MISUSE and "unsupported type" in info.value.detail
    (record,) = [r for r in caplog.records if getattr(r, "db_kind", None) == "misuse"]
    assert record.params == "?"  # a value without len() is still never logged


def test_nothing_is_formatted_when_the_logger_is_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    quiet = logging.getLogger("reliability.test.quiet")
    quiet.setLevel(logging.CRITICAL)
    conn = db_api.connect(tmp_path / "a.db")
    exc = raised(lambda: conn.execute("SELECT * FROM missing"))
    with caplog.at_level(logging.ERROR, logger="reliability.test"):
        err = ErrorHandler(quiet).wrap(exc, sql="SELECT * FROM missing")
    assert err.kind is ErrorKind.SCHEMA and caplog.records == []


def test_recovery_actions_read_as_their_value() -> None:
    assert str(RecoveryAction.RERUN_TRANSACTION) == "rerun_transaction" and f"{RecoveryAction.RETRY}" == "retry"
