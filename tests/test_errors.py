"""The error classifier against errors SQLite really raises, each fault produced for real."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from runtime_helpers import LockHolder, sqlite_module

from reliability.errors import (
    KIND_INFO,
    Action,
    DatabaseError,
    ErrorHandler,
    ErrorKind,
    RecoveryAction,
    classify,
    decide,
    error_name,
    is_transient,
    redact,
)

#: Errors are produced with the SQLite build the runtime uses (a tox cell may pick another one), so
#: the lock helpers and the victims contend in one library's lock table.
db_api = sqlite_module()


def make_db(path: Path, journal: str = "WAL") -> Path:
    conn = db_api.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA journal_mode={journal}")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"row{i}" * 20,) for i in range(200)])
    conn.close()
    return path


def raised(fn: Callable[[], object]) -> BaseException:
    try:
        fn()
    except Exception as exc:  # the real error SQLite raised
        return exc
    raise AssertionError("no error was raised")


def busy(tmp: Path) -> BaseException:
    path = make_db(tmp / "a.db")
    victim = db_api.connect(path, timeout=0, isolation_level=None)
    with LockHolder(path):
        return raised(lambda: victim.execute("INSERT INTO t (v) VALUES ('x')"))


def busy_snapshot(tmp: Path) -> BaseException:
    path = make_db(tmp / "a.db")
    a = db_api.connect(path, timeout=0, isolation_level=None)
    b = db_api.connect(path, timeout=0, isolation_level=None)
    b.execute("BEGIN")
    b.execute("SELECT count(*) FROM t").fetchone()
    a.execute("INSERT INTO t (v) VALUES ('new')")
    return raised(lambda: b.execute("INSERT INTO t (v) VALUES ('late')"))


def table_locked(tmp: Path) -> BaseException:
    path = make_db(tmp / "a.db")
    conn = db_api.connect(path, isolation_level=None)
    cur = conn.execute("SELECT * FROM t")
    cur.fetchone()
    return raised(lambda: conn.execute("DROP TABLE t"))


def full(tmp: Path) -> BaseException:
    path = make_db(tmp / "a.db")
    conn = db_api.connect(path, isolation_level=None)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    return raised(lambda: conn.executemany("INSERT INTO t (v) VALUES (?)", [("y" * 3000 + str(i),) for i in range(50)]))


def notadb(tmp: Path) -> BaseException:
    path = make_db(tmp / "a.db", journal="DELETE")
    with open(path, "r+b") as f:
        f.write(b"this is not sqlite!")
    conn = db_api.connect(path)
    return raised(lambda: conn.execute("SELECT * FROM t").fetchall())


def corrupt(tmp: Path) -> BaseException:
    path = make_db(tmp / "a.db", journal="DELETE")
    size = path.stat().st_size
    os.truncate(path, size // 2)
    conn = db_api.connect(path)
    return raised(lambda: conn.execute("SELECT * FROM t").fetchall())


def readonly(tmp: Path) -> BaseException:
    path = make_db(tmp / "a.db")
    conn = db_api.connect(f"file:{path}?mode=ro", uri=True)
    return raised(lambda: conn.execute("INSERT INTO t (v) VALUES ('x')"))


def readonly_dbmoved(tmp: Path) -> BaseException:
    path = make_db(tmp / "a.db", journal="DELETE")
    conn = db_api.connect(path, isolation_level=None)
    conn.execute("SELECT count(*) FROM t").fetchone()
    os.remove(path)
    return raised(lambda: conn.execute("INSERT INTO t (v) VALUES ('x')"))


def cantopen(tmp: Path) -> BaseException:
    return raised(lambda: db_api.connect(tmp / "no" / "such" / "dir.db"))


def interrupted(tmp: Path) -> BaseException:
    path = make_db(tmp / "a.db")
    conn = db_api.connect(path)
    conn.set_progress_handler(lambda: 1, 1)
    return raised(lambda: conn.execute("SELECT count(*) FROM t a, t b").fetchone())


def closed(tmp: Path) -> BaseException:
    conn = db_api.connect(make_db(tmp / "a.db"))
    conn.close()
    return raised(lambda: conn.execute("SELECT 1"))


def constraint(tmp: Path) -> BaseException:
    conn = db_api.connect(make_db(tmp / "a.db"))
    return raised(lambda: conn.execute("INSERT INTO t (v) VALUES (?)", ("row0" * 20,)))


def schema(tmp: Path) -> BaseException:
    conn = db_api.connect(make_db(tmp / "a.db"))
    return raised(lambda: conn.execute("SELECT * FROM no_such_table"))


def misuse(tmp: Path) -> BaseException:
    conn = db_api.connect(make_db(tmp / "a.db"))
    return raised(lambda: conn.execute("SELECT * FROM t WHERE id = ?", (1, 2)))


def auth(tmp: Path) -> BaseException:
    conn = db_api.connect(make_db(tmp / "a.db"))
    conn.set_authorizer(lambda *args: db_api.SQLITE_DENY)
    return raised(lambda: conn.execute("SELECT * FROM t"))


REAL_FAULTS = {
    ErrorKind.BUSY: busy,
    ErrorKind.BUSY_SNAPSHOT: busy_snapshot,
    ErrorKind.LOCKED: table_locked,
    ErrorKind.FULL: full,
    ErrorKind.NOTADB: notadb,
    ErrorKind.CORRUPT: corrupt,
    ErrorKind.READONLY: readonly,
    ErrorKind.READONLY_DBMOVED: readonly_dbmoved,
    ErrorKind.CANTOPEN: cantopen,
    ErrorKind.INTERRUPTED: interrupted,
    ErrorKind.CLOSED: closed,
    ErrorKind.CONSTRAINT: constraint,
    ErrorKind.SCHEMA: schema,
    ErrorKind.MISUSE: misuse,
    ErrorKind.AUTH: auth,
}


@pytest.mark.parametrize("kind", list(REAL_FAULTS), ids=str)
def test_each_real_fault_is_classified_by_its_sqlite_code(kind: ErrorKind, tmp_path: Path) -> None:
    exc = REAL_FAULTS[kind](tmp_path)
    # Builds that leave extended result codes off (sqlean.py, pysqlite3-binary) report the primary code
    # only: an extended kind then shows as its primary one, as with the message fallback below.
    expected = kind if extended_codes(tmp_path) else _MESSAGE_SEES.get(kind, kind)
    assert classify(exc) is expected, f"{type(exc).__name__}: {exc} ({getattr(exc, 'sqlite_errorname', None)})"


def extended_codes(tmp: Path) -> bool:
    """Whether the SQLite build in use reports extended result codes (a UNIQUE violation as 2067)."""
    probe = tmp / "extended-codes-probe"
    probe.mkdir(exist_ok=True)
    return (getattr(constraint(probe), "sqlite_errorcode", None) or 0) > 0xFF


# On Python 3.10 there is no sqlite_errorcode; the message (fixed per code by SQLite) must say the same.
# BUSY_SNAPSHOT and READONLY_DBMOVED share their primary code's text, so 3.10 sees the primary kind.
_MESSAGE_SEES = {ErrorKind.BUSY_SNAPSHOT: ErrorKind.BUSY, ErrorKind.READONLY_DBMOVED: ErrorKind.READONLY}


@pytest.mark.parametrize("kind", list(REAL_FAULTS), ids=str)
def test_the_message_fallback_agrees_with_the_code(kind: ErrorKind, tmp_path: Path) -> None:
    exc = REAL_FAULTS[kind](tmp_path)
    without_code = type(exc)(*exc.args)  # same class and SQLite's own message, no code attributes
    assert getattr(without_code, "sqlite_errorcode", None) is None
    assert classify(without_code) is _MESSAGE_SEES.get(kind, kind)


#: The primary code name SQLite's message tells for each real fault; None where Python raised the error itself
#: (closed, wrong bindings) or SQLITE_ERROR's message names the SQL mistake rather than the code.
_PRIMARY_NAME: dict[ErrorKind, str | None] = {
    ErrorKind.BUSY: "SQLITE_BUSY", ErrorKind.BUSY_SNAPSHOT: "SQLITE_BUSY", ErrorKind.LOCKED: "SQLITE_LOCKED",
    ErrorKind.FULL: "SQLITE_FULL", ErrorKind.NOTADB: "SQLITE_NOTADB", ErrorKind.CORRUPT: "SQLITE_CORRUPT",
    ErrorKind.READONLY: "SQLITE_READONLY", ErrorKind.READONLY_DBMOVED: "SQLITE_READONLY",
    ErrorKind.CANTOPEN: "SQLITE_CANTOPEN", ErrorKind.INTERRUPTED: "SQLITE_INTERRUPT", ErrorKind.CLOSED: None,
    ErrorKind.CONSTRAINT: "SQLITE_CONSTRAINT", ErrorKind.SCHEMA: None, ErrorKind.MISUSE: None,
    ErrorKind.AUTH: "SQLITE_AUTH",
}


@pytest.mark.parametrize("kind", list(REAL_FAULTS), ids=str)
def test_the_code_name_read_from_the_message_is_the_primary_of_the_real_one(kind: ErrorKind, tmp_path: Path) -> None:
    exc = REAL_FAULTS[kind](tmp_path)
    without_code = type(exc)(*exc.args)  # what Python 3.10 raises: SQLite's message, no code attributes
    assert error_name(without_code) == _PRIMARY_NAME[kind], str(exc)
    real = getattr(exc, "sqlite_errorname", None)
    if real is None:  # Python 3.10: the message is all there is
        assert error_name(exc) == _PRIMARY_NAME[kind]
    else:  # Python >= 3.11 names the code itself, extended where the build reports extended codes
        assert error_name(exc) == real
        assert _PRIMARY_NAME[kind] in (None, "_".join(real.split("_")[:2])), real


def test_an_io_error_from_a_real_file_size_limit_is_ioerr(tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes write() fail with EFBIG: SQLite answers SQLITE_IOERR_WRITE (FAULTS.md).
    script = textwrap.dedent(f"""
        import resource, signal, sqlite3, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
        from reliability.errors import classify
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        conn = sqlite3.connect({str(tmp_path / "f.db")!r}, isolation_level=None)
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("CREATE TABLE t (v BLOB)")
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        try:
            for _ in range(100):
                conn.execute("INSERT INTO t VALUES (randomblob(8000))")
        except sqlite3.Error as exc:
            print(classify(exc).value, getattr(exc, "sqlite_errorname", ""))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "ioerr"


def test_transient_kinds_are_exactly_the_retryable_codes() -> None:
    transient = {k for k, info in KIND_INFO.items() if info.transient}
    assert transient == {ErrorKind.BUSY, ErrorKind.BUSY_SNAPSHOT, ErrorKind.LOCKED}
    assert KIND_INFO[ErrorKind.BUSY_SNAPSHOT].action is RecoveryAction.RERUN_TRANSACTION
    for fatal in (ErrorKind.CORRUPT, ErrorKind.NOTADB, ErrorKind.IOERR_CORRUPTFS):
        assert KIND_INFO[fatal].action is RecoveryAction.RESTORE


def test_every_kind_has_a_policy() -> None:
    assert set(KIND_INFO) == set(ErrorKind)


@pytest.mark.parametrize("kind", list(ErrorKind), ids=str)
def test_user_messages_hold_no_sql_paths_or_codes(kind: ErrorKind) -> None:
    message = KIND_INFO[kind].user_message
    assert message and message[0].isupper() and message.endswith(".")
    for leak in ("SELECT", "INSERT", "sqlite", "SQLITE", "/", "Traceback", "errno"):
        assert leak not in message


def test_decide_on_real_errors_retries_a_lock_reopens_a_closed_handle_and_surfaces_a_mistake(
        tmp_path: Path) -> None:
    for name in ("1", "2", "3"):
        (tmp_path / name).mkdir()
    lock, gone, dup = busy(tmp_path / "1"), closed(tmp_path / "2"), constraint(tmp_path / "3")
    assert decide(lock) is Action.RETRY and str(Action.RETRY) == "retry"
    assert decide(lock, in_transaction=True) is Action.SURFACE  # only the transaction's owner reruns
    assert decide(gone) is Action.RECONNECT
    assert decide(gone, first_try=True) is Action.REOPEN  # the statement never ran: no attempt spent
    assert decide(gone, in_transaction=True, first_try=True) is Action.SURFACE
    assert decide(dup) is Action.SURFACE and decide(dup, first_try=True) is Action.SURFACE
    assert decide(dup, first_try=True, file_replaced=True) is Action.REOPEN  # it met a stand-in file
    # A wrapped error is decided the same way as the driver's exception it wraps.
    assert decide(ErrorHandler().wrap(lock, log=False)) is Action.RETRY


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_decide_follows_each_kinds_policy(kind: ErrorKind) -> None:
    err = DatabaseError(kind)
    info = KIND_INFO[kind]
    expected = (Action.RECONNECT if info.action is RecoveryAction.RECONNECT
                else Action.RETRY if info.transient else Action.SURFACE)
    assert decide(err) is expected
    assert decide(err, in_transaction=True) is Action.SURFACE
    # Maintenance opens its own connection per try: a lock or a one-off I/O error is waited out, the rest
    # is a verdict about the file (never a reconnect).
    assert decide(err, maintenance=True) is (
        Action.RETRY if info.transient or kind is ErrorKind.IOERR else Action.SURFACE)


def test_is_transient_on_real_errors(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    assert is_transient(busy(tmp_path / "1"))
    assert not is_transient(constraint(tmp_path / "2"))


def test_the_handler_wraps_and_logs_a_technical_record(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    exc = constraint(tmp_path)
    handler = ErrorHandler(logging.getLogger("reliability.test"))
    with caplog.at_level(logging.ERROR, logger="reliability.test"):
        err = handler.wrap(exc, operation_id="op-1", sql="INSERT INTO t (v) VALUES (?)", params=("secret",),
                           attempt=2, elapsed=0.5)
    assert isinstance(err, DatabaseError) and err.__cause__ is exc
    assert err.kind is ErrorKind.CONSTRAINT and not err.transient
    code, name = (2067, "SQLITE_CONSTRAINT_UNIQUE") if extended_codes(tmp_path) else (19, "SQLITE_CONSTRAINT")
    assert err.code == code and err.code_name == name
    (record,) = caplog.records
    assert record.operation_id == "op-1" and record.attempt == 2 and record.db_kind == "constraint"
    assert record.db_code == code and record.params == ["?"]
    assert "secret" not in record.getMessage() and "secret" not in str(record.__dict__)
    assert "IntegrityError" in record.db_traceback


def test_parameters_are_redacted_unless_configured() -> None:
    assert redact(("a", 1)) == ["?", "?"]
    assert redact({"name": "x"}) == {"name": "?"}
    assert redact(("a",), show=True) == ("a",)
    assert redact(None) is None


def test_a_parameter_of_an_unsupported_type_is_misuse_in_every_sqlite_build() -> None:
    # The stdlib raises ProgrammingError, pysqlite3 InterfaceError: both are the caller's mistake.
    conn = db_api.connect(":memory:")
    exc = raised(lambda: conn.execute("SELECT ?", (object(),)))
    conn.close()
    assert classify(exc) is ErrorKind.MISUSE and not is_transient(exc)
