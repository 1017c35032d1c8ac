"""``DatabaseManager``: the facade an application embeds.

Example::

    from reliability import DatabaseManager, ReliabilityConfig

    with DatabaseManager(ReliabilityConfig(db_path="app.db")) as db:
        db.execute("CREATE TABLE IF NOT EXISTS flags (name TEXT PRIMARY KEY, value TEXT)")
        with db.transaction():
            db.execute("INSERT INTO flags VALUES (?, ?)", ("beta", "on"))
        db.fetch_one("SELECT value FROM flags WHERE name = ?", ("beta",))   # ('on',)

Single statements outside a transaction are retried on transient errors and after a
lost connection; whole transactions are rerun by :meth:`run_in_transaction`. Every
error that reaches the caller is a :class:`~reliability.errors.DatabaseError` with a
user-facing message; the technical record goes to the ``reliability`` logger.

The success path is kept tiny on purpose (the runtime must stay within 1.15x of raw
sqlite3): a lock, two clock reads, two counter updates. Everything else (retries,
classification, reconnects, logging of errors) happens only after a failure.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from time import perf_counter
from typing import Any, NoReturn, TypeVar

from .audit import AuditLogger
from .backup import BackupInfo
from .config import ReliabilityConfig
from .connection import ConnectionManager, ConnectionState
from .degradation import CommandRegistry, WriteQueue
from .errors import KIND_INFO, Action, DatabaseError, ErrorHandler, ErrorKind, RecoveryAction, classify, decide
from .health import HealthMonitor, HealthReport, HealthStatus, IntegrityReport, wal_size
from .oplog import OperationLog
from .recovery import Durability, RecoveryReport
from .redo import allocate_sequence, ensure_sequence_table, statement_kind
from .retry import RetryExhausted, RetryPolicy
from .schema import Migration, MigrationResult, SchemaReport
from .transaction import TransactionManager

T = TypeVar("T")
log = logging.getLogger("reliability")

Params = Sequence[Any] | dict[str, Any]


class DatabaseManager:
    """The reliability runtime for one SQLite database.

    :param config: settings; defaults to ``ReliabilityConfig.from_env()`` when omitted.
    :param policy: the retry policy shared by every component (built from ``config`` if omitted;
        pass one with a fake clock/sleep in tests).
    :param logger: where technical records go (default ``logging.getLogger("reliability")``).
    :param migrations: the known migrations (a list or a folder of ``.sql`` files), validated at
        startup and applied when ``config.auto_migrate``; writes are refused on a schema that
        cannot be trusted (see :mod:`reliability.schema`).
    """

    def __init__(
        self,
        config: ReliabilityConfig | None = None,
        *,
        policy: RetryPolicy | None = None,
        logger: logging.Logger | None = None,
        migrations: Sequence[Migration] | str | os.PathLike[str] | None = None,
    ) -> None:
        self.config = config if config is not None else ReliabilityConfig.from_env()
        self.logger = logger or log
        self.policy = policy or RetryPolicy.from_config(self.config)
        self.errors = ErrorHandler(self.logger, show_params=self.config.log_sql_params)
        self.connections = ConnectionManager(self.config, self.policy, self.errors)
        self._lock = threading.RLock()
        self.transactions = TransactionManager(self.connections, self.policy, self.errors, self._lock)
        self.monitor = HealthMonitor()
        self._op_seq = itertools.count(1)
        self._id_prefix = os.urandom(3).hex()
        #: Operation logger (see :mod:`reliability.oplog`); None when operation logging is off.
        self._oplog: Any = OperationLog.from_config(self.config, prefix=self._id_prefix)
        #: Redo journal capturing committed writes (see :mod:`reliability.backup`); None when off.
        self._redo: Any = None
        #: Set by the write queue while writes wait in it: called before a direct write so the
        #: backlog replays first and a later write is never overwritten by an earlier queued one.
        self._backlog: Callable[[], None] | None = None
        #: Called with the DatabaseError when corruption is detected (recovery registers here).
        self.corruption_listeners: list[Callable[[DatabaseError], None]] = []
        #: Called with each DatabaseError that reaches a caller (degradation registers here).
        self.error_listeners: list[Callable[[DatabaseError], None]] = []
        self.closed = False
        #: Errors raised to the caller inside the open transaction, not counted yet: an error that
        #: leaves the transaction is the same error, and one that made run_in_transaction rerun it
        #: is a retry (see _count_errors).
        self._tx_errors: list[DatabaseError] = []
        #: Seconds between the checks reads make that the path still names their file (a stat costs
        #: ~1 us against ~5 us for a point read, so not every read; 0 = every read).
        self.identity_check_interval = 0.05
        self._identity_due = 0.0
        self.transactions.before_commit.append(self._check_identity)
        self.transactions.committer = self._journaled_commit
        #: Per thread: commits whose journal flush the current public call waits for before returning.
        self._acks = _Acks()
        self.transactions.after_rollback.append(self._after_rollback)
        #: Extra health fields and reasons from feature modules: ``fn() -> (extra dict, reasons)``;
        #: any reason turns a healthy report into a degraded one.
        self.health_contributors: list[Callable[[], tuple[dict[str, Any], list[str]]]] = []
        #: Durable queue of writes accepted while the database was unavailable.
        self.queue = WriteQueue.from_config(self.config)
        #: Commands served with graceful degradation (see :mod:`reliability.degradation`).
        self.commands = CommandRegistry(self, self.queue)
        self.health_contributors.append(self.commands.health_extra)
        #: The tamper-evident audit log (see :mod:`reliability.audit`).
        self.audit = AuditLogger(self)
        self._watcher: Any = None
        #: Backups, redo journal, schema trust, integrity checks, recovery (:mod:`reliability.recovery`).
        self.durability = Durability(self, migrations)
        self.durability.start()

    # -- identity ------------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The database file."""
        return self.config.db_path

    @property
    def connection(self) -> sqlite3.Connection:
        """The live ``sqlite3.Connection`` (opened on first use). Faults and tests may use it."""
        return self.connections.connection

    def new_operation_id(self) -> str:
        """A fresh id for the technical log (``<manager>-<n>``)."""
        return f"{self._id_prefix}-{next(self._op_seq)}"

    # -- statements ----------------------------------------------------------------------------
    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        """Run one statement; retried on transient errors when not inside a transaction."""
        acks = self._acks
        if acks.defer:  # inside another call that waits for durability itself
            return self._execute(sql, params)
        acks.defer = True
        try:
            return self._execute(sql, params)
        finally:
            acks.defer = False
            if acks.tickets:
                self._await_durable(acks)

    def _execute(self, sql: str, params: Params) -> sqlite3.Cursor:
        if self._backlog is not None and not self.transactions.depth:
            self._drain_backlog("execute", sql, params)
        t0 = perf_counter()
        with self._lock:
            conn = self.connections._conn
            if conn is not None:
                try:
                    before = conn.total_changes
                    if not self.transactions.depth:
                        # An autocommit write commits at once: make sure it goes to the real file.
                        self._check_identity(conn)
                        if self._redo is not None and _route(sql, conn.in_transaction):
                            cur = self._autocommit_journaled(conn, sql, params)  # captured and committed
                            before = -1
                        else:
                            cur = conn.execute(sql, params)
                    else:
                        cur = conn.execute(sql, params)
                    if before < 0:
                        pass
                    elif conn.total_changes != before:
                        self._wrote(conn, sql, params, False)
                    elif self._redo is not None and cur.description is None:
                        self._redo_statement(conn, sql, params)
                except Exception as exc:
                    return self._failed("execute", _execute, sql, params, exc, t0)
                dt = perf_counter() - t0  # _done() inlined (hot path, as in fetch_one)
                monitor = self.monitor  # observe() inlined
                monitor.operations["execute"] += 1
                monitor.latencies.append(dt)
                oplog = self._oplog
                if oplog is not None:
                    oplog.record("execute", sql, dt, cur.rowcount, 1, "ok", None)
                return cur
            return self._failed("execute", _execute, sql, params, None, t0)

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> sqlite3.Cursor:
        """Run one statement for each parameter set (atomically: in a transaction if none is open)."""
        params = seq_of_params if isinstance(seq_of_params, list) else list(seq_of_params)
        t0 = perf_counter()
        with self._lock:
            if not self.transactions.depth:
                # executemany in autocommit mode commits row by row; a failure mid-way would
                # leave half the batch in. Wrap it so the batch is all or nothing.
                return self.run_in_transaction(self.executemany, sql, params)
            conn = self.connections.connection
            try:
                before = conn.total_changes
                cur = conn.executemany(sql, params)
                if conn.total_changes != before:
                    self._wrote(conn, sql, params, True)
            except Exception as exc:
                return self._failed("executemany", _executemany, sql, params, exc, t0)
            self._done("executemany", sql, t0, cur.rowcount)
            return cur

    def fetch_one(self, sql: str, params: Params = ()) -> Any:
        """The first row of a query, or None."""
        t0 = perf_counter()
        # Reads are the hottest path: acquire/release instead of ``with`` and _done() inlined
        # save ~0.3 us of a ~5 us point read (benchmarks/runtime_overhead.py).
        lock = self._lock
        lock.acquire()
        try:
            conn = self.connections._conn
            if conn is not None and (t0 < self._identity_due or self._reads_follow_the_path(t0)):
                try:
                    row = conn.execute(sql, params).fetchone()
                except Exception as exc:
                    return self._failed("fetch_one", _fetch_one, sql, params, exc, t0)
                dt = perf_counter() - t0
                monitor = self.monitor  # observe() inlined
                monitor.operations["fetch_one"] += 1
                monitor.latencies.append(dt)
                oplog = self._oplog
                if oplog is not None:
                    oplog.record("fetch_one", sql, dt, 0 if row is None else 1, 1, "ok", None)
                return row
            return self._failed("fetch_one", _fetch_one, sql, params, None, t0)
        finally:
            lock.release()

    def fetch_all(self, sql: str, params: Params = ()) -> list[Any]:
        """Every row of a query."""
        t0 = perf_counter()
        lock = self._lock  # same shape as fetch_one (hot path)
        lock.acquire()
        try:
            conn = self.connections._conn
            if conn is not None and (t0 < self._identity_due or self._reads_follow_the_path(t0)):
                try:
                    rows = conn.execute(sql, params).fetchall()
                except Exception as exc:
                    return self._failed("fetch_all", _fetch_all, sql, params, exc, t0)
                dt = perf_counter() - t0
                monitor = self.monitor  # observe() inlined
                monitor.operations["fetch_all"] += 1
                monitor.latencies.append(dt)
                oplog = self._oplog
                if oplog is not None:
                    oplog.record("fetch_all", sql, dt, len(rows), 1, "ok", None)
                return rows
            return self._failed("fetch_all", _fetch_all, sql, params, None, t0)
        finally:
            lock.release()

    def _reads_follow_the_path(self, t0: float) -> bool:
        """Every ``identity_check_interval`` seconds a read checks that the path still names the file
        it reads (writes check every time). False after dropping a connection to a replaced file:
        the read then opens the file the path names, never keeps serving a stand-in."""
        self._identity_due = t0 + self.identity_check_interval
        if self.transactions.depth:
            return True  # never drop a transaction's connection: its COMMIT checks the file (before_commit)
        if self.connections.file_replaced():
            self._drop_connection()
            return False
        return True

    def _done(self, op: str, sql: str | None, t0: float, rows: int, attempts: int = 1) -> None:
        dt = perf_counter() - t0
        self.monitor.observe(op, dt)
        oplog = self._oplog
        if oplog is not None:
            oplog.record(op, sql, dt, rows, attempts, "ok", None)

    # -- writes: moved-file detection and redo capture ------------------------------------------
    def _wrote(self, conn: sqlite3.Connection, sql: str, params: Any, many: bool) -> None:
        """A statement changed rows. Outside a transaction it is already committed."""
        redo = self._redo
        if self.transactions.depth or conn.in_transaction:  # (a BEGIN issued through execute() counts)
            if redo is not None:
                redo.capture(sql, params, many)
            return
        if redo is not None and redo.error is None:
            # A statement routed as a read changed rows and committed on its own (a function with
            # side effects): it has no sequence and no record, so recovery could not bring it back.
            redo.error = (f"a statement committed outside the journal ({sql[:60]!r}); writes since the "
                          "last verified backup may not be replayable")
            log.error("%s", redo.error)

    def _autocommit_journaled(self, conn: sqlite3.Connection, sql: str, params: Any) -> Any:
        """One write outside a transaction, journaled: its own transaction with a sequence and a record."""
        redo = self._redo
        if conn.in_transaction:  # a COMMIT/END issued through execute() after a BEGIN issued the same way
            try:
                self._journaled_commit(conn)
            except BaseException:  # dbfault: no fault (a COMMIT issued through execute() failing: same path as below)
                redo.discard()
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return _NO_ROWS
        conn.execute("BEGIN IMMEDIATE")
        try:
            before = conn.total_changes
            cur = conn.execute(sql, params)
            if cur.description is not None:  # INSERT … RETURNING: step it to the end before COMMIT
                cur = _Rows(cur)
            if conn.total_changes != before or statement_kind(sql) == "ddl":
                redo.capture(sql, params, False)
            self._journaled_commit(conn)
        except BaseException:
            redo.discard()
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except Exception as exc:  # dbfault: no fault (a dead handle: the transaction is gone with it)
                    log.warning("rollback after a failed write failed: %s", exc)
            raise
        return cur

    def _journaled_commit(self, conn: sqlite3.Connection) -> None:
        """COMMIT the open transaction so that no acknowledged write is missing from the journal.

        Allocate the global sequence inside the transaction, write the record (and its fsync),
        COMMIT; a failed COMMIT gets a durable abort marker before the error goes up. See
        :mod:`reliability.redo` for why this order.
        """
        redo = self._redo
        if redo is None or not redo._pending:
            conn.execute("COMMIT")
            return
        try:
            seq = allocate_sequence(conn, redo.slot)
        except self.connections.module.OperationalError as exc:  # dbfault: no fault (first journaled write)
            if "no such table" not in str(exc):
                raise
            ensure_sequence_table(conn)  # first journaled write on this database (inside the transaction)
            seq = allocate_sequence(conn, redo.slot)
        written = redo.write_record(seq, sync=False)
        # The journal's fdatasync runs on the writer thread while SQLite commits (and syncs) here.
        ticket = redo.start_sync() if written else None
        try:
            conn.execute("COMMIT")
        except BaseException:
            if ticket is not None:
                ticket.wait()  # (the marker below is flushed by itself)
            if written:
                redo.abort(seq)
            else:
                redo.discard()
            raise
        if ticket is not None:
            acks = self._acks
            if acks.defer:
                # Group commit: the caller waits for the flush after the manager's lock is released, so
                # the next transaction's COMMIT overlaps this flush; a later flush of the same file
                # covers this record too. The caller is told only after the wait (see execute()).
                acks.tickets.append((ticket, seq))
                redo.committed(seq)
                return
            failed = ticket.wait()
            if failed is not None:  # committed in SQLite, not durable in the journal: say so, keep serving
                redo._fail(f"redo journal fsync failed at seq {seq}: {failed}")
                written = False
        if written:
            redo.committed(seq)
        else:
            redo.discard()
            redo.seen = max(redo.seen, seq)  # committed without a record: recovery must know it existed

    def _await_durable(self, acks: _Acks) -> None:
        """Wait for the journal flushes of this thread's commits (outside the manager's lock)."""
        tickets, acks.tickets = acks.tickets, []
        for ticket, seq in tickets:
            failed = ticket.wait()
            redo = self._redo
            if failed is not None and redo is not None:  # committed in SQLite: keep serving, say so
                with self._lock:
                    redo._fail(f"redo journal fsync failed at seq {seq}: {failed}")

    def _check_identity(self, conn: sqlite3.Connection) -> None:
        # In WAL mode SQLite keeps writing into a deleted or replaced file without error, and a
        # renamed file takes writes nobody else sees: check before anything is committed.
        if self.connections.file_moved():
            raise DatabaseError(ErrorKind.READONLY_DBMOVED,
                                "the database file was deleted, moved or replaced under the open connection")

    def _after_rollback(self) -> None:
        if self._redo is not None:
            self._redo.discard()

    def _redo_statement(self, conn: sqlite3.Connection, sql: str, params: Any) -> None:
        """A non-query changed no rows: journal DDL, follow COMMIT/ROLLBACK issued through execute()."""
        kind = statement_kind(sql)
        if kind == "ddl":
            self._wrote(conn, sql, params, False)
        elif not self.transactions.depth and self._redo is not None and kind == "rollback":
            self._redo.discard()

    # -- failures ------------------------------------------------------------------------------
    def _failed(
        self,
        op: str,
        call: Callable[[sqlite3.Connection, str, Any], Any],
        sql: str,
        params: Any,
        first: BaseException | None,
        t0: float,
    ) -> Any:
        """Slow path: retry (outside transactions), reconnect, classify, log, raise."""
        op_id = self.new_operation_id()
        in_tx = self.transactions.depth > 0
        pending = [first] if first is not None else []
        # (Reads are not checked against the path before they run, to keep them cheap: a read that
        # met a stand-in file after a healed replace is asked about with file_replaced.)
        if first is not None and decide(first, in_tx, first_try=True, file_replaced=not in_tx and
                                        self.connections.file_replaced()) is Action.REOPEN:
            self._drop_connection()
            pending.clear()
        attempts = 0
        #: The last failure, wrapped once (classified once per attempt; reused to log and surface it).
        seen: list[DatabaseError] = []

        def once() -> Any:
            nonlocal attempts
            attempts += 1
            if pending:
                raise pending.pop()
            conn = self.connections.connection
            before = conn.total_changes
            if not in_tx and call is not _fetch_one and call is not _fetch_all:
                self._check_identity(conn)
                if call is _execute and self._redo is not None and _route(sql, conn.in_transaction):
                    return self._autocommit_journaled(conn, sql, params)
            result = call(conn, sql, params)
            if conn.total_changes != before:
                self._wrote(conn, sql, params, op == "executemany")
            elif self._redo is not None and call is _execute and result.description is None:
                self._redo_statement(conn, sql, params)
            return result

        def decide_attempt(exc: BaseException) -> Action:
            err = self.errors.wrap(exc, operation_id=op_id, log=False)
            seen[:] = [err]
            return decide(err, in_tx)  # in a transaction: SURFACE (its owner may rerun all of it)

        def on_retry(attempt: int, delay: float, exc: BaseException) -> None:
            self.monitor.retries += 1
            self.errors.log(seen[0], sql=sql, params=params, attempt=attempt, elapsed=perf_counter() - t0,
                            level=logging.WARNING, exc=exc)

        try:
            result = self.policy.call(once, decide=decide_attempt, on_retry=on_retry,
                                      reconnect=self._drop_connection)
        except RetryExhausted as exc:
            raise self._surface(op, exc.last, op_id, sql, params, exc.attempts, t0, exhausted=True,
                                wrapped=seen[0] if seen else None) from exc.last
        except Exception as exc:
            raise self._surface(op, exc, op_id, sql, params, attempts, t0,
                                wrapped=seen[0] if seen else None) from exc
        if attempts > 1 and self.connections.state is ConnectionState.CONNECTED:
            log.info("operation %s succeeded after %d attempts", op_id, attempts,
                     extra={"operation_id": op_id, "attempt": attempts})
        rows = len(result) if isinstance(result, list) else (result.rowcount if hasattr(result, "rowcount")
                                                             else int(result is not None))
        self._done(op, sql, t0, rows, attempts)
        return result

    def _drain_backlog(self, op: str, sql: str | None, params: Any) -> None:
        """Replay queued writes before a direct write; if they cannot be saved, fail this one too."""
        t0 = perf_counter()
        backlog = self._backlog
        if backlog is None:
            return
        counted = sum(self.monitor.errors.values())
        try:
            backlog()
        except DatabaseError as err:
            # The replay's own failure was counted when it surfaced; this write fails because of it,
            # so the caller's one failed call is one error, not two.
            again = sum(self.monitor.errors.values()) == counted
            raise self._surface(op, err, err.operation_id, sql, params, 1, t0, count=again) from err.__cause__

    def _drop_connection(self) -> None:
        self.connections.close()
        self.connections.state = ConnectionState.RECONNECTING

    def _surface(
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
        False: already counted), notify listeners. ``wrapped``: ``exc`` already wrapped by the slow path."""
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
            self._drop_connection()
        if exhausted and reconnect:
            # The database could not be reached within the budget: say so plainly.
            cause = err
            err = DatabaseError(ErrorKind.UNAVAILABLE, f"gave up after {attempts} attempt(s): {cause.detail}",
                                operation_id=op_id, code=cause.code, code_name=cause.code_name, attempts=attempts)
            err.__cause__ = exc
            self.connections.state = ConnectionState.UNAVAILABLE
        err = self._refused_for_schema(err)
        self.errors.log(err, sql=sql, params=params, attempt=max(attempts, 1), elapsed=elapsed, exc=exc)
        if count and self.transactions.depth:
            self._tx_errors.append(err)  # counted when the transaction ends, once
        elif count:
            self._count_errors(err)
        oplog = self._oplog
        if oplog is not None:
            oplog.record(op, sql, elapsed, 0, max(attempts, 1), "error", str(err.kind))
        if err.action is RecoveryAction.RESTORE:
            for fn in list(self.corruption_listeners):
                fn(err)
        for fn in list(self.error_listeners):
            fn(err)
        return err

    # -- transactions --------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``with db.transaction():`` — BEGIN IMMEDIATE (SAVEPOINT when nested), commit or roll back.

        Errors are re-raised as :class:`DatabaseError`; the connection stays usable.
        """
        if self._backlog is not None and not self.transactions.depth:
            self._drain_backlog("transaction", None, None)
        t0 = perf_counter()
        acks = self._acks
        outer = not acks.defer
        acks.defer = True
        try:
            try:
                with self._lock, self.transactions.transaction(self.new_operation_id()) as conn:
                    yield conn
            except DatabaseError as err:
                if self.transactions.depth:
                    raise
                self._raise_tx_error(err, t0)
            except BaseException:  # dbfault: no fault (the caller's own exception ends its transaction)
                if not self.transactions.depth:
                    self._count_errors(None)  # count the errors it saw inside
                raise
        finally:
            if outer:
                acks.defer = False
                if acks.tickets:
                    self._await_durable(acks)
        if not self.transactions.depth:
            if self._tx_errors:
                self._count_errors(None)  # errors the caller caught inside the transaction
            self._done("transaction", None, t0, 0)

    def run_in_transaction(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in a transaction; on busy/locked/busy-snapshot, roll back and rerun it.

        ``fn`` uses this manager (``db.execute`` …) inside; it may run more than once, so
        it must not have side effects outside the database.
        """
        if self._backlog is not None and not self.transactions.depth:
            self._drain_backlog("transaction", None, None)
        t0 = perf_counter()

        def before_retry(exc: BaseException) -> None:
            self.monitor.retries += 1
            # The error that made us rerun the transaction is a retry, not an error the caller saw.
            self._tx_errors = [e for e in self._tx_errors if e is not exc]

        acks = self._acks
        if acks.defer:
            return self._run_in_transaction(fn, args, kwargs, before_retry, t0)
        acks.defer = True
        try:
            return self._run_in_transaction(fn, args, kwargs, before_retry, t0)
        finally:
            acks.defer = False
            if acks.tickets:
                self._await_durable(acks)

    def _run_in_transaction(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any],
                            before_retry: Callable[[BaseException], None], t0: float) -> T:
        with self._lock:
            try:
                result = self.transactions.run(fn, args, kwargs, operation_id=self.new_operation_id(),
                                               before_retry=before_retry, reconnect=self._drop_connection)
            except DatabaseError as err:
                if self.transactions.depth:
                    raise
                self._raise_tx_error(err, t0)
            except RetryExhausted as exc:
                # Every rerun failed: a lock that outlasted the budget stays BUSY, a lost connection
                # becomes UNAVAILABLE (see _surface).
                raise self._surface("transaction", exc.last, self.new_operation_id(), None, None, exc.attempts, t0,
                                    exhausted=True) from exc.last
            except Exception as exc:
                if not self.transactions.depth and isinstance(exc, self.connections.module.Error):
                    raise self._surface("transaction", exc, self.new_operation_id(), None, None, 1, t0) from exc
                if not self.transactions.depth:
                    self._count_errors(None)  # the caller's own exception ended it; count what it saw
                raise
        if not self.transactions.depth:
            if self._tx_errors:
                self._count_errors(None)  # errors the caller caught inside the transaction
            self._done("transaction", None, t0, 0)
        return result

    def _refused_for_schema(self, err: DatabaseError) -> DatabaseError:
        """READONLY because writes are blocked on an untrusted schema: say that, with the reason."""
        if err.kind is not ErrorKind.READONLY or not self.durability.write_block:
            return err
        out = DatabaseError(ErrorKind.SCHEMA_MISMATCH, self.durability.write_block, operation_id=err.operation_id,
                            code=err.code, code_name=err.code_name, attempts=err.attempts)
        out.__cause__ = err.__cause__ or err
        return out

    def _raise_tx_error(self, err: DatabaseError, t0: float) -> NoReturn:
        """An outermost transaction failed: report it once, raise what the caller sees."""
        shown = self._refused_for_schema(err)
        self._report_tx_error(shown, t0)
        if shown is err:
            raise err
        raise shown from err

    def _report_tx_error(self, err: DatabaseError, t0: float) -> None:
        # Already logged by the handler when wrapped; count it and notify listeners once.
        if decide(err) is Action.RECONNECT:
            self._drop_connection()  # never keep a dead handle for the next call
        self._count_errors(err)
        oplog = self._oplog
        if oplog is not None:
            oplog.record("transaction", None, perf_counter() - t0, 0, err.attempts, "error", str(err.kind))
        if err.action is RecoveryAction.RESTORE:
            for fn in list(self.corruption_listeners):
                fn(err)
        for fn in list(self.error_listeners):
            fn(err)

    def _count_errors(self, final: DatabaseError | None) -> None:
        """Count in ``monitor.errors`` each error the caller saw, exactly once.

        A statement's error inside a transaction is raised to the caller and then usually carried
        out of the transaction as the same object: counting it at both places made 10 failed
        transactions read ``{'constraint': 20}``. Errors raised inside a transaction wait in
        ``_tx_errors`` until the outermost transaction ends, then each distinct one is counted.
        """
        with self._lock:  # (a transaction's errors are appended under it)
            pending, self._tx_errors = self._tx_errors, []
        if final is not None:
            # ``final`` may be the pending error itself, or (a lost connection past every rerun) the
            # UNAVAILABLE error made from it: either way one failure.
            pending = [e for e in pending if e is not final and e is not final.__cause__] + [final]
        for err in pending:
            self.monitor.observe_error(str(err.kind), err.detail)

    # -- health --------------------------------------------------------------------------------
    def health(self) -> HealthReport:
        """A typed report: status (healthy / degraded / unavailable), reasons and counters."""
        reasons: list[str] = []
        with self._lock:
            state = self.connections.state
            problem = self.connections.check() if state is ConnectionState.CONNECTED else None
            if state is ConnectionState.CLOSED and not self.closed and self.connections.refused is None:
                try:
                    self.connections.open()
                    state = self.connections.state
                    problem = self.connections.check()
                except Exception as exc:
                    problem = classify(exc)
        status = HealthStatus.HEALTHY
        if state is ConnectionState.UNAVAILABLE:
            status = HealthStatus.UNAVAILABLE
            reasons.append("the database could not be reached within the retry budget")
        if problem is not None:
            info = KIND_INFO[problem]
            status = HealthStatus.UNAVAILABLE if info.action in (RecoveryAction.RESTORE,
                                                                 RecoveryAction.RECONNECT) else HealthStatus.DEGRADED
            reasons.append(f"connection check found: {problem}")
        if self.connections.refused is not None:
            # A database the runtime managed is missing and opening is refused (see Durability.start).
            status = HealthStatus.UNAVAILABLE
            reasons.append(self.connections.refused)
        if self.monitor.integrity_ok is False:
            status = HealthStatus.UNAVAILABLE
            reasons.append("the database is marked corrupt: " + "; ".join(self.monitor.integrity_problems[:3]))
        extra: dict[str, Any] = {}
        for contribute in list(self.health_contributors):
            more, why = contribute()
            extra.update(more)
            reasons.extend(why)
            if why and status is HealthStatus.HEALTHY:
                status = HealthStatus.DEGRADED
        m = self.monitor
        return HealthReport(
            status=status,
            reasons=tuple(reasons),
            connection_state=str(state),
            operations=dict(m.operations),
            errors=dict(m.errors),
            retries=m.retries,
            reconnects=self.connections.reconnects,
            latency_ms=m.latency_percentiles(),
            last_error=m.last_error,
            wal_size=wal_size(self.path),
            last_backup_at=m.last_backup_at,
            last_integrity_check_at=m.last_integrity_check_at,
            integrity_ok=m.integrity_ok,
            extra=extra,
        )

    def watch_env(self, path: str | os.PathLike[str] = ".env", *, interval: float | None = None) -> Any:
        """Hot-reload settings from the ``.env`` file at ``path``; returns the ``ConfigWatcher``.

        Checked in the background every ``config_reload_interval`` seconds (or ``interval``);
        nothing is added to operations. See :mod:`reliability.reload`.
        """
        from .reload import ConfigWatcher

        if self._watcher is not None:
            self._watcher.stop()
        self._watcher = ConfigWatcher(self, path, interval=interval)
        return self._watcher

    # -- durability: schema, integrity, backups, recovery -------------------------------------
    def migrate(self, migrations: Sequence[Migration] | str | os.PathLike[str]) -> MigrationResult:
        """Apply pending migrations, each in its own transaction with its bookkeeping row.

        ``migrations`` is a list of :class:`~reliability.schema.Migration` or a folder of numbered
        ``.sql`` files. A non-empty database is backed up first. A failing migration is rolled
        back entirely and raises :class:`~reliability.schema.MigrationError` naming it.
        """
        return self.durability.migrate(migrations)

    def rollback_migration(self, to: int, migrations: Sequence[Migration] | str | os.PathLike[str] | None = None
                           ) -> MigrationResult:
        """Undo every applied migration above version ``to`` by its ``down`` step, newest first.

        ``migrations`` defaults to the ones this runtime knows (``migrate`` or startup). A non-empty
        database is backed up first. Every version to undo must have a ``down`` step and be unchanged
        since it was applied, or nothing is done; each reversal is its own transaction, and a failure
        raises :class:`~reliability.schema.MigrationError` naming the migration. ``result.applied``
        lists the versions undone.
        """
        return self.durability.rollback_migration(to, migrations)

    def validate_schema(self, migrations: Sequence[Migration] | str | os.PathLike[str] | None = None
                        ) -> SchemaReport:
        """Compare recorded versions, checksums and live tables with ``migrations`` (default: the known ones)."""
        return self.durability.validate_schema(migrations)

    def check_integrity(self, full: bool = False) -> IntegrityReport:
        """``quick_check`` (``integrity_check`` when ``full``) + ``foreign_key_check``; recovery starts on failure
        when ``config.auto_recover``."""
        return self.durability.check_integrity(full)

    def backup(self) -> BackupInfo:
        """Take a verified backup now (see :mod:`reliability.backup`)."""
        return self.durability.backup()

    def backups(self) -> list[BackupInfo]:
        """Every backup, newest first, with time, size and whether it is verified."""
        return self.durability.backups.list()

    def restore(self, path: str | os.PathLike[str] | None = None) -> BackupInfo:
        """Replace the database with the newest verified backup (or ``path``); the old files are kept aside."""
        return self.durability.restore(path)

    def recover(self) -> RecoveryReport:
        """Quarantine the damaged database, restore the newest verified backup, replay the redo journal."""
        return self.durability.recover()

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection and flush anything pending. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        if self._watcher is not None:
            self._watcher.stop()
        self.durability.close()
        with self._lock:
            if self._oplog is not None:
                self._oplog.close()
            self.connections.close()

    def __enter__(self) -> DatabaseManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DatabaseManager {self.path!r} {self.connections.state}>"


def _execute(conn: sqlite3.Connection, sql: str, params: Any) -> sqlite3.Cursor:
    return conn.execute(sql, params)


def _executemany(conn: sqlite3.Connection, sql: str, params: Any) -> sqlite3.Cursor:
    return conn.executemany(sql, params)


def _fetch_one(conn: sqlite3.Connection, sql: str, params: Any) -> Any:
    return conn.execute(sql, params).fetchone()


def _fetch_all(conn: sqlite3.Connection, sql: str, params: Any) -> list[Any]:
    return conn.execute(sql, params).fetchall()


class _Acks(threading.local):
    """Per-thread: is a public call waiting for journal flushes (``defer``), and which (``tickets``)."""

    defer = False

    def __init__(self) -> None:
        self.tickets: list[tuple[Any, int]] = []


class _Rows:
    """The rows of a write with ``RETURNING`` run in its own journaled transaction, read before COMMIT."""

    def __init__(self, cur: sqlite3.Cursor) -> None:
        self.description = cur.description
        self._rows = cur.fetchall()
        self.rowcount = cur.rowcount
        self.lastrowid = cur.lastrowid

    def fetchone(self) -> Any:
        """The next row, or None."""
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[Any]:
        """Every remaining row."""
        rows, self._rows = self._rows, []
        return rows

    def fetchmany(self, size: int = 1) -> list[Any]:
        """Up to ``size`` remaining rows."""
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class _NoRows(_Rows):
    def __init__(self) -> None:
        self.description = None
        self._rows = []
        self.rowcount = -1
        self.lastrowid = None


_NO_ROWS = _NoRows()
#: First words of statements that run as they are outside a transaction (reads, transaction control,
#: statements SQLite refuses inside a transaction). Everything else is a write to journal.
_RAW_WORDS = frozenset({"SELECT", "VALUES", "EXPLAIN", "PRAGMA", "BEGIN", "ROLLBACK", "SAVEPOINT", "RELEASE",
                        "VACUUM", "ATTACH", "DETACH"})
_ROUTES: dict[str, str] = {}


def _route(sql: str, in_transaction: bool) -> bool:
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


def _strip_sql(sql: str) -> str:
    # Leading comments do not decide what a statement is.
    text = sql.lstrip()
    while text.startswith("--") or text.startswith("/*"):
        if text.startswith("--"):
            text = text.split("\n", 1)[1].lstrip() if "\n" in text else ""
        else:
            text = text.split("*/", 1)[1].lstrip() if "*/" in text else ""
    return text
