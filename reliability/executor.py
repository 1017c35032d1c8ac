"""One SQL call: file identity -> the driver -> the observers; on failure, one slow path.

The success path is kept tiny on purpose (the runtime must stay within 1.15x of raw sqlite3):
a lock, two clock reads, the observers (health counters, operation log). Everything else happens
only after a failure, in :meth:`Executor.failed`: the first failure is asked about once
(:func:`~reliability.errors.decide` may say the call never ran: reopen and run it), then the
shared :class:`~reliability.retry.RetryPolicy` runs the call under ``decide`` (each failure wrapped
and classified once), and whatever ends it goes through :meth:`Executor.surface`, the one place an
error is logged, counted and told to the observers.

The executor is built by :class:`~reliability.manager.DatabaseManager` and knows nothing of it:
what it needs from the facade comes in as callables (``drop`` the connection, ``surface`` an error,
run a journaled ``autocommit`` write), so a subclass of the facade still changes them. Writes
queued while the database was unavailable come in as a :class:`Backlog` port: before a direct
write outside a transaction the executor asks it whether anything must be replayed first; the
replay runs its own transactions through a call that never asks again (one direction, no guard).
"""

from __future__ import annotations

import itertools
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from .connection import ConnectionState
from .errors import Action, DatabaseError, ErrorHandler, ErrorKind, decide
from .observers import Observer
from .redo import statement_kind
from .retry import RetryExhausted, RetryPolicy
from .transaction import ended_transaction

if TYPE_CHECKING:
    from .connection import ConnectionManager
    from .health import HealthMonitor
    from .observers import Observers
    from .transaction import TransactionManager

log = logging.getLogger("reliability")


class Backlog(Protocol):
    """Writes accepted earlier that a direct write may not overtake (the commands' write queue)."""

    def waiting(self) -> bool:
        """True while such writes wait."""

    def replay_first(self) -> None:
        """Replay them now, in order, through a call that does not ask :meth:`waiting` again.

        :raises DatabaseError: when they cannot be saved now (the direct write then fails too).
        """


class Executor:
    """Runs the statements of one runtime on its connection, under its lock.

    :param connections: the connection (opened on first use).
    :param transactions: the transaction state (``depth``) and hooks.
    :param lock: the runtime's lock, held for each call.
    :param policy: the shared retry policy.
    :param errors: the shared error handler (wraps and logs).
    :param monitor: the health counters (errors are counted here, once per failed call).
    :param observers: told about each finished call.
    :param id_prefix: the prefix of this runtime's operation ids.
    """

    def __init__(self, connections: ConnectionManager, transactions: TransactionManager, lock: threading.RLock,
                 policy: RetryPolicy, errors: ErrorHandler, monitor: HealthMonitor, observers: Observers,
                 id_prefix: str) -> None:
        self.connections = connections
        self.transactions = transactions
        self.lock = lock
        self.policy = policy
        self.errors = errors
        self.monitor = monitor
        self.observers = observers
        self._id_prefix = id_prefix
        self._op_seq = itertools.count(1)
        #: Redo journal capturing committed writes (see :mod:`reliability.redo`); None when off.
        self.redo: Any = None
        #: Writes queued while the database was unavailable (the commands, wired by the runtime):
        #: asked before a direct write so they replay first and a later write is never overwritten
        #: by an earlier queued one. None: nothing is ever queued.
        self.backlog: Backlog | None = None
        #: What must run before the next direct write outside a transaction, before the backlog's replay too (a redo
        #: journal that takes no records anchors on a file installed since: see ``durability.journal``), or None.
        #: Its owner sets it and clears it; a None costs the write one attribute read.
        self.before_write: Callable[[], None] | None = None
        # Seconds between the checks reads make that the path still names their file (a stat costs
        # ~1 us against ~5 us for a point read, so not every read; 0 = every read).
        self._identity_interval = 0.05
        self._identity_due = 0.0
        # Another manager of this process replacing the file (a restore, a recovery) is known at once: follow it.
        connections.on_replaced_here.append(self.follow_the_path)
        #: Errors raised to the caller inside the open transaction, not counted yet: an error that
        #: leaves the transaction is the same error, and one that made run_in_transaction rerun it
        #: is a retry (see count_errors).
        self.tx_errors: list[DatabaseError] = []
        #: Why writes are refused on an untrusted schema (None: they are not); set by schema trust.
        self.write_block: Callable[[], str | None] = lambda: None
        #: What the facade does (a subclass may change them): drop the connection after a failure,
        #: turn a failure into the error the caller sees, run one journaled autocommit write.
        self.drop: Callable[[], None] = self.drop_connection
        self.surface: Callable[..., DatabaseError] = self.surface_error
        self.autocommit: Callable[[sqlite3.Connection, str, Any], Any] | None = None
        #: How ``fetch_one``/``fetch_all`` run a statement that writes (``INSERT … RETURNING``): as every write,
        #: through the facade's ``execute`` (journaled, checked, retried, waited for), never the read path.
        self.write: Callable[[str, Any], Any] = self.execute

    def new_operation_id(self) -> str:
        """A fresh id for the technical log (``<runtime>-<n>``)."""
        return f"{self._id_prefix}-{next(self._op_seq)}"

    # -- the success paths -----------------------------------------------------------------------
    def execute(self, sql: str, params: Any) -> sqlite3.Cursor:
        """Run one statement; retried on transient errors when not inside a transaction."""
        backlog = self.backlog
        if not self.transactions.depth and (self.before_write is not None
                                            or (backlog is not None and backlog.waiting())):
            self.replay_backlog("execute", sql, params)
        t0 = perf_counter()
        with self.lock:
            conn = self.connections._conn
            if conn is not None:
                if self.transactions.depth and self.connections.transaction_ended():  # (see ended_transaction)
                    return self.failed("execute", _execute, sql, params, ended_transaction(), t0)
                try:
                    before = conn.total_changes
                    if not self.transactions.depth:
                        if self.redo is not None and route(sql, conn.in_transaction):
                            # (It checks the file itself, under SQLite's write lock: one stat per write, #17.)
                            cur = self.autocommit(conn, sql, params)  # type: ignore[misc]  # captured, committed
                            before = -1
                        else:
                            # An autocommit write commits at once: make sure it goes to the real file.
                            self.check_identity(conn)
                            cur = conn.execute(sql, params)
                    else:
                        cur = conn.execute(sql, params)
                    if before < 0:
                        pass
                    elif conn.total_changes != before:
                        self.wrote(conn, sql, params, False)
                    elif self.redo is not None:
                        self.redo_statement(conn, sql, params, False)
                except Exception as exc:
                    return self.failed("execute", _execute, sql, params, exc, t0)
                self.observers.succeeded("execute", sql, perf_counter() - t0, cur.rowcount, 1)
                return cur
            return self.failed("execute", _execute, sql, params, None, t0)

    def executemany(self, sql: str, params: list[Any]) -> sqlite3.Cursor:
        """Run one statement for each parameter set, inside the open transaction."""
        t0 = perf_counter()
        with self.lock:
            conn = self.connections.connection
            if self.transactions.depth and self.connections.transaction_ended():
                return self.failed("executemany", _executemany, sql, params, ended_transaction(), t0)
            try:
                before = conn.total_changes
                cur = conn.executemany(sql, params)
                if conn.total_changes != before:
                    self.wrote(conn, sql, params, True)
                elif self.redo is not None:
                    self.redo_statement(conn, sql, params, True)
            except Exception as exc:
                return self.failed("executemany", _executemany, sql, params, exc, t0)
            self.observers.succeeded("executemany", sql, perf_counter() - t0, cur.rowcount, 1)
            return cur

    def fetch_one(self, sql: str, params: Any = ()) -> Any:
        """The first row of a query, or None (of a write with ``RETURNING``: its first row, see :func:`reads_only`)."""
        if not reads_only(sql):
            return self.write(sql, params).fetchone()
        t0 = perf_counter()
        # Reads are the hottest path: acquire/release instead of ``with`` saves ~0.3 us of a ~5 us
        # point read (benchmarks/runtime_overhead.py).
        lock = self.lock
        lock.acquire()
        try:
            conn = self.connections._conn
            if conn is not None and (t0 < self._identity_due or self.reads_follow_the_path(t0)):
                if self.transactions.depth and self.connections.transaction_ended():
                    return self.failed("fetch_one", _fetch_one, sql, params, ended_transaction(), t0)
                try:
                    row = conn.execute(sql, params).fetchone()
                except Exception as exc:
                    return self.failed("fetch_one", _fetch_one, sql, params, exc, t0)
                self.observers.succeeded("fetch_one", sql, perf_counter() - t0, 0 if row is None else 1, 1)
                return row
            return self.failed("fetch_one", _fetch_one, sql, params, None, t0)
        finally:
            lock.release()

    def fetch_all(self, sql: str, params: Any = ()) -> list[Any]:
        """Every row of a query (of a write with ``RETURNING``: its rows, see :func:`reads_only`)."""
        if not reads_only(sql):
            return self.write(sql, params).fetchall()
        t0 = perf_counter()
        lock = self.lock  # same shape as fetch_one (hot path)
        lock.acquire()
        try:
            conn = self.connections._conn
            if conn is not None and (t0 < self._identity_due or self.reads_follow_the_path(t0)):
                if self.transactions.depth and self.connections.transaction_ended():
                    return self.failed("fetch_all", _fetch_all, sql, params, ended_transaction(), t0)
                try:
                    rows = conn.execute(sql, params).fetchall()
                except Exception as exc:
                    return self.failed("fetch_all", _fetch_all, sql, params, exc, t0)
                self.observers.succeeded("fetch_all", sql, perf_counter() - t0, len(rows), 1)
                return rows
            return self.failed("fetch_all", _fetch_all, sql, params, None, t0)
        finally:
            lock.release()

    @property
    def identity_check_interval(self) -> float:
        """Seconds between the checks reads make that the path still names their file (0 = every read)."""
        return self._identity_interval

    @identity_check_interval.setter
    def identity_check_interval(self, seconds: float) -> None:
        # A new interval counts from the last check, not from the next: set shorter (0: every read), it takes
        # effect at once instead of after the long one has run out; set longer, the look due soon waits for it too
        # (an hour set right after a read means no look for an hour). Due 0 (no look yet, or one asked for by
        # follow_the_path) stays due.
        if self._identity_due:
            self._identity_due += seconds - self._identity_interval
        self._identity_interval = seconds

    def reads_follow_the_path(self, t0: float) -> bool:
        """Every ``identity_check_interval`` seconds a read checks that the path still names the file
        it reads (writes check every time). False after dropping a connection to a replaced file:
        the read then opens the file the path names, never keeps serving a stand-in."""
        self._identity_due = t0 + self._identity_interval
        if self.transactions.depth:
            return True  # never drop a transaction's connection: its COMMIT checks the file (before_commit)
        if self.connections.file_replaced():
            self.drop()
            return False
        return True

    def follow_the_path(self) -> None:
        """The next read checks that the path still names the file it reads, whatever the interval says.

        For reads whose result is a verdict on the file (the audit log's ``verify()``): a file put back at
        the path within the interval (a restore) must be judged, not the unlinked one the handle still reads.
        """
        self._identity_due = 0.0

    def done(self, op: str, sql: str | None, t0: float, rows: int, attempts: int = 1) -> None:
        """``op`` started at ``t0`` finished: tell the observers."""
        self.observers.succeeded(op, sql, perf_counter() - t0, rows, attempts)

    # -- writes: moved-file detection and redo capture -------------------------------------------
    def check_identity(self, conn: sqlite3.Connection) -> None:
        """Refuse to commit into a file the path no longer names (a before-commit check)."""
        # In WAL mode SQLite keeps writing into a deleted or replaced file without error, and a
        # renamed file takes writes nobody else sees: check before anything is committed.
        if self.connections.file_moved():
            raise DatabaseError(ErrorKind.READONLY_DBMOVED,
                                "the database file was deleted, moved or replaced under the open connection")
        if self.connections.index_removed():  # a commit would overwrite another process's WAL frames
            self.connections.refuse_after_index_removed()

    def wrote(self, conn: sqlite3.Connection, sql: str, params: Any, many: bool) -> None:
        """A statement changed rows: capture it for the redo journal. Outside a transaction it is
        already committed."""
        redo = self.redo
        if self.transactions.depth or conn.in_transaction:  # (a BEGIN issued through execute() counts)
            if redo is not None:
                redo.capture(sql, params, many)
            return
        if redo is not None:
            redo.unrecorded += 1  # (also while an error is already set: recovery must report it, see lost_writes)
        if redo is not None and redo.error is None:
            # A statement routed as a read changed rows and committed on its own (a function with
            # side effects): it has no sequence and no record, so recovery could not bring it back.
            redo.error = (f"a statement committed outside the journal ({sql[:60]!r}); writes since the "
                          "last verified backup may not be replayable")
            log.error("%s", redo.error)

    def redo_statement(self, conn: sqlite3.Connection, sql: str, params: Any, many: bool) -> None:
        """A statement changed no rows: journal DDL and DML all the same (see :func:`~reliability.redo.statement_kind`:
        whether it changes rows at replay is the replayed file's business), follow COMMIT/ROLLBACK issued through
        execute()."""
        kind = statement_kind(sql)
        if kind == "ddl" or kind == "dml":
            self.wrote(conn, sql, params, many)
        elif not self.transactions.depth and self.redo is not None and kind == "rollback":
            self.redo.discard()

    # -- failures --------------------------------------------------------------------------------
    def failed(
        self,
        op: str,
        call: Callable[[sqlite3.Connection, str, Any], Any],
        sql: str,
        params: Any,
        first: BaseException | None,
        t0: float,
    ) -> Any:
        """Slow path: ask decide() about the first failure, then retry under the policy, then surface."""
        op_id = self.new_operation_id()
        in_tx = self.transactions.depth > 0
        pending = [first] if first is not None else []
        #: The last failure, wrapped once (classified once per attempt; reused to decide, log and surface it).
        seen: list[DatabaseError] = []
        if first is not None:
            seen.append(self.errors.wrap(first, operation_id=op_id, log=False))
            # (Reads are not checked against the path before they run, to keep them cheap: a read that
            # met a stand-in file after a healed replace is asked about with file_replaced.)
            if decide(seen[0], in_tx, first_try=True, file_replaced=not in_tx and
                      self.connections.file_replaced()) is Action.REOPEN:
                self.drop()
                pending.clear()
        attempts = 0

        def once() -> Any:
            nonlocal attempts
            attempts += 1
            if pending:
                raise pending.pop()
            conn = self.connections.connection
            if in_tx and self.connections.transaction_ended():
                # (A handle reopened inside the block, or one SQLite rolled back: running the statement now would
                # autocommit it on its own.)
                raise ended_transaction()
            before = conn.total_changes
            if not in_tx and call is not _fetch_one and call is not _fetch_all:
                self.check_identity(conn)
                if call is _execute and self.redo is not None and route(sql, conn.in_transaction):
                    return self.autocommit(conn, sql, params)  # type: ignore[misc]
            result = call(conn, sql, params)
            if conn.total_changes != before:
                self.wrote(conn, sql, params, op == "executemany")
            elif self.redo is not None and (call is _execute or call is _executemany):
                self.redo_statement(conn, sql, params, op == "executemany")
            return result

        def decide_attempt(exc: BaseException) -> Action:
            if not (seen and (seen[0] is exc or seen[0].__cause__ is exc)):  # (the first one is wrapped)
                seen[:] = [self.errors.wrap(exc, operation_id=op_id, log=False)]
            return decide(seen[0], in_tx)  # in a transaction: SURFACE (its owner may rerun all of it)

        def on_retry(attempt: int, delay: float, exc: BaseException) -> None:
            self.errors.log(seen[0], sql=sql, params=params, attempt=attempt, elapsed=perf_counter() - t0,
                            level=logging.WARNING, exc=exc)

        try:
            result = self.policy.call(once, decide=decide_attempt, on_retry=on_retry, reconnect=self.drop)
        except RetryExhausted as exc:
            self._end_failed_commit(op, sql, in_tx)
            raise self.surface(op, exc.last, op_id, sql, params, exc.attempts, t0, exhausted=True,
                               wrapped=seen[0] if seen else None) from exc.last
        except Exception as exc:
            self._end_failed_commit(op, sql, in_tx)
            raise self.surface(op, exc, op_id, sql, params, attempts, t0,
                               wrapped=seen[0] if seen else None) from exc
        if attempts > 1 and self.connections.state is ConnectionState.CONNECTED:
            log.info("operation %s succeeded after %d attempts", op_id, attempts,
                     extra={"operation_id": op_id, "attempt": attempts})
        rows = len(result) if isinstance(result, list) else (result.rowcount if hasattr(result, "rowcount")
                                                             else int(result is not None))
        self.done(op, sql, t0, rows, attempts)
        return result

    def _end_failed_commit(self, op: str, sql: str, in_tx: bool) -> None:
        """Roll back a transaction whose COMMIT/END, issued through ``execute()``, failed for good (a deferred
        foreign key; a lock that outlasted the retries), as the journaled commit path does.

        SQLite keeps such a transaction open, so that the rows can be fixed and COMMIT run again; an application
        that goes on with ``db.execute`` would then write into it, each write acknowledged and never committed
        (with the redo journal off the COMMIT went to SQLite as it is, and that is what happened; found by the
        transactions machine). The caller learns of the failure from the error and can rerun the transaction.
        With the journal on, the journaled commit path has already rolled it back, at once: the journal's record
        of it is discarded there, and a retried COMMIT must not commit the transaction without one.
        """
        if op != "execute" or in_tx or self.redo is not None or statement_kind(sql) != "commit":
            return
        conn = self.connections._conn
        if conn is None or not self.connections.in_transaction():  # (a handle closed meanwhile: nothing open)
            return
        try:
            conn.execute("ROLLBACK")
        except Exception as exc:  # dbfault: no fault (a dead handle: the transaction went with it)
            log.warning("rollback after a failed COMMIT failed: %s", exc)

    def replay_backlog(self, op: str, sql: str | None, params: Any) -> None:
        """Before a direct write outside a transaction: run :attr:`before_write`, then replay queued writes
        first; if they cannot be saved, fail this one too."""
        before = self.before_write
        if before is not None:
            before()  # (raises nothing: what it could not do, it says in health and tries again later)
        backlog = self.backlog
        if backlog is None or not backlog.waiting():
            return
        t0 = perf_counter()
        counted = sum(self.monitor.errors.values())
        try:
            backlog.replay_first()
        except DatabaseError as err:
            # The replay's own failure was counted when it surfaced; this write fails because of it,
            # so the caller's one failed call is one error, not two.
            again = sum(self.monitor.errors.values()) == counted
            raise self.surface(op, err, err.operation_id or self.new_operation_id(), sql, params, 1, t0,
                               count=again) from err.__cause__

    def drop_connection(self) -> None:
        """Close the connection after a failure; the next call reopens it (counted as a reconnect)."""
        self.connections.close()
        self.connections.state = ConnectionState.RECONNECTING

    def surface_error(
        self,
        op: str,
        exc: BaseException,
        op_id: str,
        sql: str | None,
        params: Any,
        attempts: int,
        t0: float,
        exhausted: bool = False,
        count: bool = True,
        wrapped: DatabaseError | None = None,
    ) -> DatabaseError:
        """Turn ``exc`` into the DatabaseError the caller sees; log it, count it (unless ``count`` is
        False: already counted), tell the observers. ``wrapped``: ``exc`` already wrapped by the slow path."""
        elapsed = perf_counter() - t0
        if isinstance(exc, DatabaseError):
            err = exc
            err.operation_id = err.operation_id or op_id
            err.attempts = max(attempts, err.attempts)
        else:
            if wrapped is not None and wrapped.__cause__ is exc:
                err = wrapped
            else:
                err = self.errors.wrap(exc, operation_id=op_id, log=False)
            err.attempts = max(attempts, 1)
        reconnect = decide(err) is Action.RECONNECT  # asked as the transaction's owner would
        if reconnect and not self.transactions.depth:
            # Whatever retries were left, never keep a dead handle: the next call reopens
            # (with retry_attempts=1 no retry ever got to reconnect).
            self.drop()
        if exhausted and reconnect:
            # The database could not be reached within the budget: say so plainly.
            cause = err
            err = DatabaseError(ErrorKind.UNAVAILABLE, f"gave up after {attempts} attempt(s): {cause.detail}",
                                operation_id=op_id, code=cause.code, code_name=cause.code_name, attempts=attempts)
            err.__cause__ = exc
            self.connections.state = ConnectionState.UNAVAILABLE
        err = self.refused_for_schema(err)
        self.errors.log(err, sql=sql, params=params, attempt=max(attempts, 1), elapsed=elapsed, exc=exc)
        if count and self.transactions.depth:
            self.tx_errors.append(err)  # counted when the transaction ends, once
        elif count:
            self.count_errors(err)
        self.observers.failed(op, sql, err, elapsed, max(attempts, 1))
        return err

    def refused_for_schema(self, err: DatabaseError) -> DatabaseError:
        """READONLY because writes are blocked on an untrusted schema: say that, with the reason."""
        if err.kind is not ErrorKind.READONLY:
            return err
        block = self.write_block()
        if not block:
            return err
        out = DatabaseError(ErrorKind.SCHEMA_MISMATCH, block, operation_id=err.operation_id,
                            code=err.code, code_name=err.code_name, attempts=err.attempts)
        out.__cause__ = err.__cause__ or err
        return out

    # -- transactions: each failed one reported once ---------------------------------------------
    def raise_tx_error(self, err: DatabaseError, t0: float) -> NoReturn:
        """An outermost transaction failed: report it once, raise what the caller sees."""
        shown = self.refused_for_schema(err)
        self.report_tx_error(shown, t0)
        if shown is err:
            raise err
        raise shown from err

    def report_tx_error(self, err: DatabaseError, t0: float) -> None:
        """Count a failed transaction's error and tell the observers (already logged when wrapped)."""
        if decide(err) is Action.RECONNECT:
            self.drop()  # never keep a dead handle for the next call
        self.count_errors(err)
        self.observers.failed("transaction", None, err, perf_counter() - t0, err.attempts)

    def count_errors(self, final: DatabaseError | None) -> None:
        """Count in ``monitor.errors`` each error the caller saw, exactly once.

        A statement's error inside a transaction is raised to the caller and then usually carried
        out of the transaction as the same object: counting it at both places made 10 failed
        transactions read ``{'constraint': 20}``. Errors raised inside a transaction wait in
        ``tx_errors`` until the outermost transaction ends, then each distinct one is counted.
        """
        with self.lock:  # (a transaction's errors are appended under it)
            pending, self.tx_errors = self.tx_errors, []
        if final is not None:
            # ``final`` may be the pending error itself, or (a lost connection past every rerun) the
            # UNAVAILABLE error made from it: either way one failure.
            pending = [e for e in pending if e is not final and e is not final.__cause__] + [final]
        for err in pending:
            self.monitor.observe_error(str(err.kind), err.detail)


def _execute(conn: sqlite3.Connection, sql: str, params: Any) -> sqlite3.Cursor:
    return conn.execute(sql, params)


def _executemany(conn: sqlite3.Connection, sql: str, params: Iterable[Any]) -> sqlite3.Cursor:
    return conn.executemany(sql, params)


def _fetch_one(conn: sqlite3.Connection, sql: str, params: Any) -> Any:
    return conn.execute(sql, params).fetchone()


def _fetch_all(conn: sqlite3.Connection, sql: str, params: Any) -> list[Any]:
    return conn.execute(sql, params).fetchall()


#: First words of statements that run as they are outside a transaction (reads, transaction control,
#: statements SQLite refuses inside a transaction). Everything else is a write to journal.
_RAW_WORDS = frozenset({"SELECT", "VALUES", "EXPLAIN", "PRAGMA", "BEGIN", "ROLLBACK", "SAVEPOINT", "RELEASE",
                        "VACUUM", "ATTACH", "DETACH"})
_ROUTES: dict[str, str] = {}


def route(sql: str, in_transaction: bool) -> bool:
    """True when a statement outside ``db.transaction()`` must take the journaled path."""
    kind = _ROUTES.get(sql)
    if kind is None:
        words = _strip_sql(sql).split(None, 1)
        first = words[0].upper().rstrip(";") if words else ""
        kind = "commit" if first in ("COMMIT", "END") else "raw" if first in _RAW_WORDS or not first else "write"
        if len(_ROUTES) > 4096:
            _ROUTES.clear()
        _ROUTES[sql] = kind
    if kind == "write":
        return not in_transaction
    return kind == "commit" and in_transaction


#: First words of statements that only read (a ``WITH`` is looked into: see :func:`reads_only`).
_READ_WORDS = frozenset({"SELECT", "VALUES", "EXPLAIN", "PRAGMA"})
_WRITE_IN_CTE = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
_READS: dict[str, bool] = {}


def reads_only(sql: str) -> bool:
    """True when a statement given to ``fetch_one``/``fetch_all`` only reads; False for a write such as
    ``INSERT … RETURNING`` (or a statement that is not a query at all), which must take the write path: on the
    read path it committed with no redo record (inside a block it was left out of the block's record), and a
    recovery then reported ok without it (found by a helper's scripts, session 26). A ``WITH`` counts as a write
    when an INSERT, UPDATE, DELETE or REPLACE word appears in it: a read taken for a write only costs the write
    path's lock, never a row. Cached by statement text, as :func:`route` is."""
    ok = _READS.get(sql)
    if ok is None:
        text = _strip_sql(sql)
        words = text.split(None, 1)
        first = words[0].upper().rstrip(";") if words else ""
        ok = first in _READ_WORDS or (first == "WITH" and not _WRITE_IN_CTE.search(text))
        if len(_READS) > 4096:
            _READS.clear()
        _READS[sql] = ok
    return ok


def _strip_sql(sql: str) -> str:
    # Leading comments do not decide what a statement is.
    text = sql.lstrip()
    while text.startswith("--") or text.startswith("/*"):
        if text.startswith("--"):
            text = text.split("\n", 1)[1].lstrip() if "\n" in text else ""
        else:
            text = text.split("*/", 1)[1].lstrip() if "*/" in text else ""
    return text


class FileIdentity(Observer):
    """Before the outermost COMMIT: refuse to commit into a file the path no longer names."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def before_commit(self, conn: Any) -> None:
        """See :meth:`Executor.check_identity`."""
        self.executor.check_identity(conn)


class RedoRollback(Observer):
    """After the outermost transaction rolled back: drop what the redo journal captured for it."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def rolled_back(self) -> None:
        """Discard the captured writes (a rolled-back write must never be replayed by recovery)."""
        redo = self.executor.redo
        if redo is not None:
            redo.discard()
