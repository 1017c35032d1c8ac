"""The one error classifier: every sqlite3 exception → an :class:`ErrorKind` by its SQLite code.

Each kind says whether it is transient, what the runtime does about it and what a
user is told::

    try:
        conn.execute("INSERT ...")
    except sqlite3.Error as exc:
        kind = classify(exc)          # ErrorKind.BUSY
        KIND_INFO[kind].transient     # True
        KIND_INFO[kind].action        # RecoveryAction.RETRY

On Python >= 3.11 the extended code (``sqlite_errorcode``) decides; on 3.10 the
message, which SQLite derives from the same code, is matched instead. pysqlite3 gives the
primary code only, so there (as on 3.10) a kind that only an extended code names is seen as
its primary's: a stale snapshot as busy; a moved file's "readonly" is told by the file's
identity instead (:class:`ErrorHandler` ``file_moved``).
"""

from __future__ import annotations

import enum
import logging
import re
import sqlite3
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class ErrorKind(str, enum.Enum):
    """What went wrong, in terms the runtime can act on."""

    BUSY = "busy"
    BUSY_SNAPSHOT = "busy_snapshot"
    LOCKED = "locked"
    FULL = "full"
    CORRUPT = "corrupt"
    NOTADB = "notadb"
    READONLY = "readonly"
    READONLY_DBMOVED = "readonly_dbmoved"
    IOERR = "ioerr"
    IOERR_CORRUPTFS = "ioerr_corruptfs"
    CANTOPEN = "cantopen"
    INTERRUPTED = "interrupted"
    CLOSED = "closed"
    CONSTRAINT = "constraint"
    SCHEMA = "schema"
    MISUSE = "misuse"
    AUTH = "auth"
    NOMEM = "nomem"
    #: The database could not be reached within the retry budget.
    UNAVAILABLE = "unavailable"
    #: The schema does not match the known migrations; writes are refused.
    SCHEMA_MISMATCH = "schema_mismatch"
    #: SQLite rolled the transaction of a ``db.transaction()`` block back under it (a conflict clause
    #: ``OR ROLLBACK``, a trigger's ``RAISE(ROLLBACK, ...)``, a full disk …) after an error the caller swallowed:
    #: what the block ran after it, and the block, fail with this kind; nothing of it was saved.
    ROLLED_BACK = "rolled_back"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


class RecoveryAction(str, enum.Enum):
    """What the runtime does when it meets an error kind."""

    RETRY = "retry"  # run the same statement again after a backoff
    RERUN_TRANSACTION = "rerun_transaction"  # roll back, then run the whole transaction again
    RECONNECT = "reconnect"  # open a new connection, then retry
    DEGRADE = "degrade"  # keep serving what does not need the database; queue writes
    RESTORE = "restore"  # the file is damaged: recover from backup + redo journal
    RAISE = "raise"  # a caller's mistake (constraint, SQL error): report it

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class KindInfo:
    """The runtime's policy for one :class:`ErrorKind`."""

    transient: bool
    action: RecoveryAction
    user_message: str


_R = RecoveryAction
KIND_INFO: dict[ErrorKind, KindInfo] = {
    ErrorKind.BUSY: KindInfo(True, _R.RETRY, "The database is busy right now. Please try again in a moment."),
    ErrorKind.BUSY_SNAPSHOT: KindInfo(
        True, _R.RERUN_TRANSACTION, "The data changed while your request ran. Please try again."),
    ErrorKind.LOCKED: KindInfo(True, _R.RETRY, "The database is busy right now. Please try again in a moment."),
    ErrorKind.FULL: KindInfo(
        False, _R.DEGRADE, "The storage is full, so changes cannot be saved right now. Contact your administrator."),
    ErrorKind.CORRUPT: KindInfo(
        False, _R.RESTORE, "The database is damaged and is being repaired. Please try again shortly."),
    ErrorKind.NOTADB: KindInfo(
        False, _R.RESTORE, "The database is damaged and is being repaired. Please try again shortly."),
    ErrorKind.READONLY: KindInfo(
        False, _R.DEGRADE, "The database is read-only right now, so changes cannot be saved."),
    ErrorKind.READONLY_DBMOVED: KindInfo(
        False, _R.RECONNECT, "The database was moved. Reconnecting; please try again shortly."),
    ErrorKind.IOERR: KindInfo(
        False, _R.RECONNECT, "The storage reported an error. Please try again shortly."),
    ErrorKind.IOERR_CORRUPTFS: KindInfo(
        False, _R.RESTORE, "The storage is damaged and the database is being repaired. Please try again shortly."),
    ErrorKind.CANTOPEN: KindInfo(
        False, _R.RECONNECT, "The database cannot be opened right now. Please try again shortly."),
    ErrorKind.INTERRUPTED: KindInfo(False, _R.RAISE, "The request was cancelled before it finished."),
    ErrorKind.CLOSED: KindInfo(
        False, _R.RECONNECT, "The connection to the database was lost. Reconnecting; please try again."),
    ErrorKind.CONSTRAINT: KindInfo(
        False, _R.RAISE, "The change conflicts with existing data (for example a duplicate entry)."),
    ErrorKind.SCHEMA: KindInfo(False, _R.RAISE, "The request does not match the database structure."),
    ErrorKind.MISUSE: KindInfo(
        False, _R.RAISE, "The request could not be carried out. This is a bug; please report it."),
    ErrorKind.AUTH: KindInfo(False, _R.RAISE, "You are not allowed to do that."),
    ErrorKind.NOMEM: KindInfo(False, _R.RAISE, "The server is out of memory. Please try again later."),
    ErrorKind.UNAVAILABLE: KindInfo(
        False, _R.DEGRADE, "The database is unavailable right now. Please try again later."),
    ErrorKind.SCHEMA_MISMATCH: KindInfo(
        False, _R.RAISE, "The database structure is not the expected version, so changes are refused."),
    # Not "try again later": the error that made SQLite roll back (often a conflict) meets a retry the same way.
    ErrorKind.ROLLED_BACK: KindInfo(
        False, _R.RAISE, "Your change was not saved: one of its steps failed and the database undid the whole "
                         "change. Sending the same change again fails the same way unless what made that step fail "
                         "(for example conflicting data) has changed."),
    ErrorKind.UNKNOWN: KindInfo(False, _R.RAISE, "Something went wrong with the database. Please try again later."),
}

#: Extended result codes (exact match first) and primary codes (``code & 0xFF``).
_BY_EXTENDED: dict[int, ErrorKind] = {
    517: ErrorKind.BUSY_SNAPSHOT,  # SQLITE_BUSY_SNAPSHOT
    1032: ErrorKind.READONLY_DBMOVED,  # SQLITE_READONLY_DBMOVED
    8458: ErrorKind.IOERR_CORRUPTFS,  # SQLITE_IOERR_CORRUPTFS
    3338: ErrorKind.IOERR,  # SQLITE_IOERR_NOMEM is a memory problem reported as I/O
}
_BY_PRIMARY: dict[int, ErrorKind] = {
    5: ErrorKind.BUSY,
    6: ErrorKind.LOCKED,
    13: ErrorKind.FULL,
    11: ErrorKind.CORRUPT,
    26: ErrorKind.NOTADB,
    8: ErrorKind.READONLY,
    10: ErrorKind.IOERR,
    14: ErrorKind.CANTOPEN,
    9: ErrorKind.INTERRUPTED,
    19: ErrorKind.CONSTRAINT,
    20: ErrorKind.CONSTRAINT,  # SQLITE_MISMATCH: a value of the wrong type for its column (datatype mismatch)
    17: ErrorKind.SCHEMA,
    21: ErrorKind.MISUSE,
    23: ErrorKind.AUTH,
    7: ErrorKind.NOMEM,
    1: ErrorKind.UNKNOWN,  # SQLITE_ERROR: an SQL mistake; refined by message below
}

#: Messages that name no SQLite result code: Python's own errors about a handle or parameters, and
#: SQLITE_ERROR's specific texts for SQL mistakes. (Messages fixed per code are read as codes by
#: :func:`sqlite_code`, which the classifier uses first.)
_BY_MESSAGE: list[tuple[re.Pattern[str], ErrorKind]] = [
    (re.compile(p, re.I), k)
    for p, k in [
        # sqlean raises a bare ValueError (the stdlib a ProgrammingError) for parameters that are no sequence.
        (r"^parameters are of unsupported type", ErrorKind.MISUSE),
        (r"closed database|closed cursor", ErrorKind.CLOSED),
        (r"^no such table|^no such column|^table .* already exists|^index .* already exists"
         r"|^near \"|syntax error|has no column named", ErrorKind.SCHEMA),
    ]
]


#: SQLite's fixed text of each primary result code (sqlite3ErrStr; the specific messages, such as
#: "UNIQUE constraint failed: t.v", keep its wording) → (code, name), for Python 3.10 which gives no code.
_PRIMARY_BY_MESSAGE: list[tuple[re.Pattern[str], int, str]] = [
    (re.compile(p, re.I), c, n)
    for p, c, n in [
        (r"^SQL logic error", 1, "SQLITE_ERROR"),
        (r"^database is locked", 5, "SQLITE_BUSY"),
        (r"^database table is locked|^database schema is locked", 6, "SQLITE_LOCKED"),
        (r"^out of memory", 7, "SQLITE_NOMEM"),
        (r"^attempt to write a readonly database", 8, "SQLITE_READONLY"),
        (r"^interrupted", 9, "SQLITE_INTERRUPT"),
        (r"^disk I/O error", 10, "SQLITE_IOERR"),
        (r"^database disk image is malformed|^malformed database schema", 11, "SQLITE_CORRUPT"),
        (r"^database or disk is full", 13, "SQLITE_FULL"),
        (r"^unable to open database file", 14, "SQLITE_CANTOPEN"),
        (r"^locking protocol", 15, "SQLITE_PROTOCOL"),
        (r"^database schema has changed", 17, "SQLITE_SCHEMA"),
        (r"^string or blob too big", 18, "SQLITE_TOOBIG"),
        (r"constraint failed", 19, "SQLITE_CONSTRAINT"),
        (r"^datatype mismatch", 20, "SQLITE_MISMATCH"),
        (r"^bad parameter or other API misuse|^library routine called out of sequence", 21, "SQLITE_MISUSE"),
        (r"^not authorized|^authorization denied", 23, "SQLITE_AUTH"),
        (r"^column index out of range", 25, "SQLITE_RANGE"),
        (r"^file is not a database|^file is encrypted or is not a database", 26, "SQLITE_NOTADB"),
    ]
]


def sqlite_code(exc: BaseException) -> tuple[int | None, str | None]:
    """``(code, code name)`` of a sqlite3 exception, ``(None, None)`` when neither Python nor the message says.

    The extended code where Python gives it (>= 3.11: ``SQLITE_CONSTRAINT_UNIQUE``); on Python 3.10 the
    primary code read from SQLite's message (``SQLITE_CONSTRAINT``), as builds without extended codes report.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code, getattr(exc, "sqlite_errorname", None)
    if _dbapi_classes(exc):  # only SQLite's own errors carry its fixed texts
        message = str(exc)
        for pattern, primary, name in _PRIMARY_BY_MESSAGE:
            if pattern.search(message):
                return primary, name
    return None, None


def error_name(exc: BaseException) -> str | None:
    """The SQLite code name of ``exc`` (``"SQLITE_BUSY_SNAPSHOT"``; on Python 3.10 the primary ``"SQLITE_BUSY"``)."""
    return sqlite_code(exc)[1]


def classify(exc: BaseException) -> ErrorKind:
    """The :class:`ErrorKind` of ``exc`` (any exception; non-database ones are ``UNKNOWN``)."""
    if isinstance(exc, DatabaseError):
        return exc.kind
    if isinstance(exc, MemoryError):
        return ErrorKind.NOMEM
    # The extended code where Python gives it; else (Python 3.10) the primary code SQLite's fixed
    # message names: READONLY_DBMOVED and BUSY_SNAPSHOT share their primary's text, so there they
    # are seen as READONLY and BUSY.
    code = sqlite_code(exc)[0]
    if code is not None:
        kind = _BY_EXTENDED.get(code) or _BY_PRIMARY.get(code & 0xFF)
        if kind is not None and kind is not ErrorKind.UNKNOWN:
            return kind
    message = str(exc)
    for pattern, kind in _BY_MESSAGE:
        if pattern.search(message):
            return kind
    # By DB-API class name, not the stdlib classes: sqlean and pysqlite3 define their own.
    dbapi = _dbapi_classes(exc)
    if "ProgrammingError" in dbapi or "InterfaceError" in dbapi:  # pysqlite3: unsupported parameter types
        return ErrorKind.MISUSE
    if "IntegrityError" in dbapi:
        return ErrorKind.CONSTRAINT
    return ErrorKind.UNKNOWN


def sqlite_errors() -> tuple[type[BaseException], ...]:
    """The ``Error`` classes of every sqlite DB-API module loaded in this process, for ``except``.

    ``except sqlite3.Error`` misses the errors of ``sqlean`` or ``pysqlite3`` (their own classes)
    when the runtime uses one of them (``RELIABILITY_SQLITE_MODULE``).
    """
    found: list[type[BaseException]] = [sqlite3.Error]
    for name in ("sqlean.dbapi2", "pysqlite3.dbapi2", "pysqlite2.dbapi2"):
        module = sys.modules.get(name)
        error = getattr(module, "Error", None)
        if isinstance(error, type) and issubclass(error, BaseException):
            found.append(error)
    return tuple(found)


def _dbapi_classes(exc: BaseException) -> set[str]:
    """Names of the DB-API exception classes ``exc`` is an instance of, from any sqlite3-like module."""
    return {cls.__name__ for cls in type(exc).__mro__
            if cls.__module__.split(".")[0] in _SQLITE_MODULES}


#: Top-level packages of the DB-API sqlite modules the runtime can use (RELIABILITY_SQLITE_MODULE).
_SQLITE_MODULES = frozenset({"sqlite3", "_sqlite3", "sqlean", "pysqlite3", "pysqlite2"})


def is_transient(exc: BaseException) -> bool:
    """True when retrying (after a backoff, or rerunning the transaction) may succeed."""
    return KIND_INFO[classify(exc)].transient


def out_of_service(kind: ErrorKind) -> bool:
    """True when a problem of ``kind`` leaves nothing to serve (a damaged file, a lost connection):
    health says *unavailable*; other problems leave the runtime *degraded*."""
    return KIND_INFO[kind].action in (RecoveryAction.RESTORE, RecoveryAction.RECONNECT)


class Action(str, enum.Enum):
    """What the runtime does next about one failed attempt; :func:`decide` is the only place that says."""

    RETRY = "retry"  # after a backoff, run the same call again on the same connection
    RECONNECT = "reconnect"  # after a backoff, drop the connection and run the call again on a fresh one
    REOPEN = "reopen"  # the call never ran (a handle closed while idle): reopen and run it, costing no attempt
    SURFACE = "surface"  # give up: the caller sees the error

    def __str__(self) -> str:
        return self.value


def decide(exc: BaseException, in_transaction: bool = False, *, first_try: bool = False,
           file_replaced: bool = False, maintenance: bool = False) -> Action:
    """What to do about ``exc`` (an exception or an already wrapped :class:`DatabaseError`): the one rule.

    ``in_transaction``: a statement failed inside an open transaction. Nothing is run again at that
    level: re-running one statement would break atomicity, so only the owner of the whole transaction
    (``run_in_transaction``, once it has rolled back, asking with ``in_transaction=False``) may rerun it.

    ``first_try``: the call's first attempt failed before anything began. A handle closed since the
    last call (``CLOSED``), or a statement that met a file no longer at the path (``file_replaced``:
    after a healed *replace* it ran on the stand-in), never ran on the database: it is reopened and
    run as new, which is not a retry and needs no budget (``REOPEN``).

    ``maintenance``: checks, backups and verification open their own connection for each try and
    give verdicts about a file; only what says nothing about the file is retried (a lock, a one-off
    I/O error), everything else is the verdict or the caller's error (``SURFACE``).

    Otherwise a lost or unusable connection is reopened (``RECONNECT``), a transient kind is retried
    (``RETRY``) and anything else surfaces.

    >>> decide(DatabaseError(ErrorKind.BUSY))
    <Action.RETRY: 'retry'>
    >>> decide(DatabaseError(ErrorKind.BUSY), in_transaction=True)
    <Action.SURFACE: 'surface'>
    """
    if in_transaction:
        return Action.SURFACE
    kind = exc.kind if isinstance(exc, DatabaseError) else classify(exc)  # a wrapped error: classified once
    info = KIND_INFO[kind]
    if maintenance:
        return Action.RETRY if info.transient or kind is ErrorKind.IOERR else Action.SURFACE
    if first_try and (kind is ErrorKind.CLOSED or file_replaced):
        return Action.REOPEN
    if info.action is RecoveryAction.RECONNECT:
        return Action.RECONNECT
    return Action.RETRY if info.transient else Action.SURFACE


class DatabaseError(Exception):
    """A database operation failed; ``user_message`` is safe to show, the cause holds the details.

    :param kind: what went wrong (:class:`ErrorKind`).
    :param operation_id: the id of the operation in the technical log.
    """

    def __init__(
        self,
        kind: ErrorKind,
        detail: str = "",
        *,
        operation_id: str = "",
        user_message: str | None = None,
        code: int | None = None,
        code_name: str | None = None,
        attempts: int = 1,
    ) -> None:
        self.kind = kind
        self.detail = detail
        self.operation_id = operation_id
        self.user_message = user_message or KIND_INFO[kind].user_message
        self.code = code
        self.code_name = code_name
        self.attempts = attempts
        super().__init__(f"[{kind}] {detail}" if detail else f"[{kind}] {self.user_message}")

    @property
    def transient(self) -> bool:
        """Whether trying again later may succeed."""
        return KIND_INFO[self.kind].transient

    @property
    def action(self) -> RecoveryAction:
        """What the runtime does about this kind of error."""
        return KIND_INFO[self.kind].action


class ErrorHandler:
    """Turns exceptions into :class:`DatabaseError` and logs one technical record for each.

    The record goes through stdlib ``logging`` with structured ``extra`` fields
    (``db_kind``, ``db_code``, ``db_code_name``, ``operation_id``, ``attempt``, ``elapsed``,
    ``sql``, ``params``) so a JSON formatter can ship it as is.
    """

    def __init__(self, logger: logging.Logger | None = None, *, show_params: bool = False) -> None:
        self.logger = logger or logging.getLogger("reliability")
        self.show_params = show_params
        #: Whether the path no longer names the file the runtime's connection opened (set by the manager).
        self.file_moved: Callable[[], bool] | None = None

    def wrap(
        self,
        exc: BaseException,
        *,
        operation_id: str = "",
        sql: str | None = None,
        params: Any = None,
        attempt: int = 1,
        elapsed: float = 0.0,
        log: bool = True,
    ) -> DatabaseError:
        """The :class:`DatabaseError` for ``exc`` (logged unless ``log`` is False); chain it with ``from exc``."""
        if isinstance(exc, DatabaseError):
            return exc
        kind = classify(exc)
        if kind is ErrorKind.READONLY and self.file_moved is not None and self.file_moved():
            # A write to a rollback-journal database moved from under its connection: SQLite 3.40 says
            # SQLITE_READONLY_DBMOVED, 3.51 (pysqlite3) plain SQLITE_READONLY, and Python 3.10 shows only
            # the primary code. The runtime knows the file moved: reconnect, do not degrade to read-only.
            kind = ErrorKind.READONLY_DBMOVED
        code, name = sqlite_code(exc)
        err = DatabaseError(kind, str(exc), operation_id=operation_id, code=code, code_name=name,
                            attempts=attempt)
        err.__cause__ = exc
        if log:
            self.log(err, sql=sql, params=params, attempt=attempt, elapsed=elapsed, exc=exc)
        return err

    def log(
        self,
        err: DatabaseError,
        *,
        sql: str | None = None,
        params: Any = None,
        attempt: int = 1,
        elapsed: float = 0.0,
        exc: BaseException | None = None,
        level: int = logging.ERROR,
    ) -> None:
        """Log the technical record of ``err`` (kind, codes, operation id, SQL, redacted params, traceback)."""
        if not self.logger.isEnabledFor(level):
            return
        cause = exc or err.__cause__ or err
        self.logger.log(
            level,
            "database error %s (code %s/%s) in operation %s, attempt %d after %.3fs: %s",
            err.kind, err.code, err.code_name, err.operation_id or "-", attempt, elapsed, err.detail,
            extra={
                "db_kind": str(err.kind),
                "db_code": err.code,
                "db_code_name": err.code_name,
                "operation_id": err.operation_id,
                "attempt": attempt,
                "elapsed": round(elapsed, 6),
                "sql": sql,
                "params": redact(params, self.show_params),
                "db_traceback": "".join(traceback.format_exception(type(cause), cause, cause.__traceback__)),
            },
        )


def redact(params: Any, show: bool = False) -> Any:
    """SQL parameters as safe to log: values replaced by ``'?'`` unless ``show``."""
    if params is None or show:
        return params
    if isinstance(params, dict):
        return {k: "?" for k in params}
    try:
        return ["?"] * len(params)
    except TypeError:  # dbfault: no fault (parameters without len(): the caller's input)
        return "?"
