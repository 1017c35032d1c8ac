"""``DatabaseManager``: the facade an application embeds; it builds the parts and delegates.

Example::

    from reliability import DatabaseManager, ReliabilityConfig

    with DatabaseManager(ReliabilityConfig(db_path="app.db")) as db:
        db.execute("CREATE TABLE IF NOT EXISTS flags (name TEXT PRIMARY KEY, value TEXT)")
        with db.transaction():
            db.execute("INSERT INTO flags VALUES (?, ?)", ("beta", "on"))
        db.fetch_one("SELECT value FROM flags WHERE name = ?", ("beta",))   # ('on',)

Single statements outside a transaction are retried on transient errors and after a
lost connection (:mod:`reliability.executor`); whole transactions are rerun by
:meth:`run_in_transaction`. What to do about a failure is decided in one place,
:func:`reliability.errors.decide`. Every error that reaches the caller is a
:class:`~reliability.errors.DatabaseError` with a user-facing message; the technical record
goes to the ``reliability`` logger.

The parts: :class:`~reliability.connection.ConnectionManager` (the connection),
:class:`~reliability.transaction.TransactionManager`, :class:`~reliability.executor.Executor`
(one SQL call), :class:`~reliability.observers.Observers` (metrics, operation log, corruption
listeners, degraded mode, transaction events), :class:`~reliability.durability.Durability`, the write
queue and commands (:mod:`reliability.degraded`) and the audit log. The redo journal's commit protocol
(``_journaled_commit``) lives here, next to the transactions it commits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any, TypeVar

from .audit import AuditLogger
from .config import ReliabilityConfig
from .connection import ConnectionManager, ConnectionState
from .damage_mark import DamageMarker
from .degraded import CommandParts, CommandRegistry, DamageGate, WriteQueue
from .degraded.places import LeftBehind, current_places, remember, waiting_in
from .durability import Durability, RecoveryReport, RuntimeParts
from .durability.backup import BackupInfo
from .errors import DatabaseError, ErrorHandler, ErrorKind, classify, out_of_service
from .executor import Executor, FileIdentity, RedoRollback
from .health import HealthMonitor, HealthReport, HealthStatus, IntegrityReport, run_maintenance, wal_size
from .observers import Listeners, Metrics, Observers, OperationRecords
from .oplog import OperationLog
from .redo import ensure_sequence_table, statement_kind
from .retry import RetryExhausted, RetryPolicy
from .schema import Migration, MigrationResult, SchemaReport
from .transaction import TransactionManager
from .tx_connection import TransactionConnection

T = TypeVar("T")
log = logging.getLogger("reliability")
#: Statements journaled although they changed no rows (see :func:`~reliability.redo.statement_kind`).
_JOURNALED_UNCHANGED = frozenset({"ddl", "dml"})

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
        # A constructor that fails part way (a start it cannot complete, e.g. a journal folder that refuses the
        # anchoring reset) lets go of everything it took: the journal's slot and flock, the connection, the
        # operation log's file and thread, the schedule, the listener on the caller's policy. Kept, another manager
        # could not take slot 0 for the process's life (a raw descriptor has no finalizer).
        try:
            self.config = config if config is not None else ReliabilityConfig.from_env()
            self.logger = logger or log
            self.policy = policy or RetryPolicy.from_config(self.config)
            self.errors = ErrorHandler(self.logger, show_params=self.config.log_sql_params)
            self.connections = ConnectionManager(self.config)
            self.errors.file_moved = self.connections.file_moved  # (a moved file's READONLY is READONLY_DBMOVED)
            self._lock = threading.RLock()
            self.monitor = HealthMonitor()
            # Every retry the policy makes for this runtime is counted once, wherever it happens (statements,
            # transactions, integrity checks, backups, replay); removed at close().
            self.policy.listeners.append(self.monitor.count_retry)
            self._id_prefix = os.urandom(3).hex()
            self._records = OperationRecords(OperationLog.from_config(self.config, prefix=self._id_prefix))
            self._listeners = Listeners()
            #: Everything that watches a finished call or a transaction (see :mod:`reliability.observers`); the
            #: listeners are added after durability's corruption watch, so recovery runs before they hear of a
            #: damaged file.
            self.observers = Observers(Metrics(self.monitor), self._records)
            self.transactions = TransactionManager(self.connections, self.policy, self.errors, self._lock,
                                                   self.observers)
            #: Called with the DatabaseError when corruption is detected (after durability has acted on it).
            self.corruption_listeners: list[Callable[[DatabaseError], None]] = self._listeners.corruption
            #: One SQL call (see :mod:`reliability.executor`); what it asks of the facade it gets as
            #: callables, so a subclass overriding ``_drop_connection`` or ``_surface`` changes what it does.
            self.executor = executor = Executor(self.connections, self.transactions, self._lock, self.policy,
                                                 self.errors, self.monitor, self.observers, self._id_prefix)
            executor.drop = self._drop_connection
            executor.surface = self._surface
            executor.autocommit = self._autocommit_journaled
            executor.write = self.execute  # (a write given to fetch_one/fetch_all: waited for like any write)
            # Reads are the hottest path (~5 us): unless a subclass changes them, hand them straight to the
            # executor (saves a call per read; benchmarks/runtime_overhead.py).
            for name in ("fetch_one", "fetch_all"):
                if getattr(type(self), name) is getattr(DatabaseManager, name):
                    setattr(self, name, getattr(executor, name))
            self.closed = False
            self.observers.add(FileIdentity(executor))  # (before COMMIT: the path still names the file)
            self.transactions.committer = self._journaled_commit
            #: Per thread: commits whose journal flush the current public call waits for before returning.
            self._acks = _Acks()
            #: Drops the redo journal's capture of a rolled-back transaction (an observer).
            self._after_rollback = RedoRollback(executor)
            self.observers.add(self._after_rollback)
            #: Backups, redo journal, schema trust, integrity checks, recovery (:mod:`reliability.durability`),
            #: built from the parts, never from this facade.
            self.durability = durability = Durability(RuntimeParts(
                connections=self.connections, lock=self._lock, transactions=self.transactions, executor=executor,
                policy=self.policy, errors=self.errors, monitor=self.monitor, records=self._records,
                closed=lambda: self.closed), migrations)
            self.observers.add(durability.watch)
            self.observers.add(self._listeners)
            self.connections.on_open.append(durability.block.apply)
            executor.write_block = lambda: durability.block.reason
            self.transactions.refine = executor.refused_for_schema
            #: Whether the runtime may write on its own behalf (audit reconcile, command writes, replay): not into
            #: a file seen damaged until a recovery or a clean integrity check (:mod:`reliability.degraded.damage`).
            self.write_gate = DamageGate(self.monitor, durability.check_integrity,
                                         shared=DamageMarker(lambda: self.connections.config.db_path))
            #: The tamper-evident audit log (see :mod:`reliability.audit`).
            self.audit = AuditLogger(self, gate=self.write_gate)
            # (After the audit log's: the journal's savepoint follows the same order as before.)
            self.transactions.savepoint_hooks.append(durability.journal.savepoint_event)
            #: Durable queue of writes accepted while the database was unavailable.
            self.queue = WriteQueue.from_config(self.config)
            #: Commands served with graceful degradation (see :mod:`reliability.degraded`): they run on
            #: this facade, replay through ``_transact`` (which never replays first: no re-entry).
            self.commands = CommandRegistry(CommandParts(self, self._transact, self.audit, self._lock, self.write_gate),
                                            self.queue)
            self.observers.add(self.commands)  # an error that makes the database unavailable degrades it
            executor.backlog = self.commands  # queued writes replay before a direct one
            #: Who adds health fields and reasons (``fn() -> (extra dict, reasons)``), asked in this order;
            #: any reason turns a healthy report into a degraded one.
            self._health_parts: tuple[Callable[[], tuple[dict[str, Any], list[str]]], ...] = (
                self.commands.health_extra, self.audit.health_extra, durability.health)
            self._watcher: Any = None
            # The background health check (``health_check_interval``; 0 = off): what only a look finds (a -wal
            # removed under an idle connection, a file replaced at the path, a stale backup) is found and logged
            # even when the application makes no call for a while.
            self._last_health: HealthStatus | None = None
            durability.scheduler.add("health_check", self.config.health_check_interval, self._scheduled_health)
            durability.start()
            #: Old places of the write queue or audit fallback that still hold work this runtime does not read
            #: (a restart with another path; see :mod:`reliability.degraded.places`).
            self.places_left: list[LeftBehind] = self._remember_places()
            self._health_parts += (self._places_health,)
        # (The faults act on SQLite's files, which a start survives; a start fails on the runtime's own files, e.g. a
        # directory where the journal's temporary goes: tests/test_s26_failed_start.py.)
        except BaseException:  # dbfault: no fault (see above)
            self._abandon()
            raise

    def _abandon(self) -> None:
        """Release what a constructor that failed had taken (see ``__init__``); each part only if it was built.

        Never raises: the constructor's own error is what the caller must see.
        """
        self.closed = True
        got = self.__dict__
        steps: list[tuple[str, Callable[[], None]]] = []
        policy, monitor = got.get("policy"), got.get("monitor")
        if policy is not None and monitor is not None and monitor.count_retry in policy.listeners:
            steps.append(("the retry listener", lambda: policy.listeners.remove(monitor.count_retry)))
        if "durability" in got:
            steps.append(("the schedule and the redo journal", got["durability"].abandon))
        records = got.get("_records")
        if records is not None and records.log is not None:
            steps.append(("the operation log", records.log.close))
        if "connections" in got:
            steps.append(("the connection", got["connections"].close))
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001  # dbfault: no fault (the constructor's error is the one raised)
                log.warning("a manager that failed to start could not release %s: %s", what, exc)

    def _remember_places(self) -> list[LeftBehind]:
        """Remember where this runtime keeps waiting work; name the old places that still hold some."""
        if self.connections.refused is not None:
            return []
        current = current_places(self.config)

        def remember_now() -> list[LeftBehind]:
            with self._lock:
                return remember(self.connections.live_connection(), current)

        try:
            left = run_maintenance(remember_now, self.policy, "the look for writes waiting in an old place")
        except Exception as exc:  # no verdict: the database may be down at start; the next start looks again
            detail = exc.detail if isinstance(exc, DatabaseError) else f"{type(exc).__name__}: {exc}"
            log.warning("could not look for writes waiting in an old place of the queue or audit fallback: %s",
                        detail)
            return []
        for place in left:
            log.error("%s", place.reason())
        return left

    def _places_health(self) -> tuple[dict[str, Any], list[str]]:
        # Looked at again each time (read only), so moving the file clears the reason without a restart.
        left = [LeftBehind(p.setting, p.path, n, p.now) for p in self.places_left
                if (n := waiting_in(p.setting, Path(p.path)))]
        if not left:
            return {}, []
        return {"left_behind": [{"setting": p.setting, "path": p.path, "waiting": p.waiting} for p in left]}, [
            p.reason() for p in left]

    def _scheduled_health(self) -> None:
        """One background health check; a change of status is logged (WARNING unless healthy)."""
        if self.closed:
            return
        report = self.health()
        if report.status != self._last_health:
            level = logging.INFO if report.status is HealthStatus.HEALTHY else logging.WARNING
            log.log(level, "health of %s is %s: %s", self.path, report.status.value,
                    "; ".join(report.reasons) or "no problem found")
            self._last_health = report.status

    # -- identity ------------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The database file."""
        return self.config.db_path

    @property
    def connection(self) -> sqlite3.Connection:
        """The live ``sqlite3.Connection`` (opened on first use). Faults and tests may use it."""
        return self.connections.connection

    @property
    def id_prefix(self) -> str:
        """The prefix of this manager's operation ids (``<prefix>-<n>``), shared by the operation log."""
        return self._id_prefix

    def new_operation_id(self) -> str:
        """A fresh id for the technical log (``<manager>-<n>``)."""
        return self.executor.new_operation_id()

    @property
    def identity_check_interval(self) -> float:
        """Seconds between the checks reads make that the path still names their file (0 = every read)."""
        return self.executor.identity_check_interval

    @identity_check_interval.setter
    def identity_check_interval(self, seconds: float) -> None:
        self.executor.identity_check_interval = seconds

    @property
    def oplog(self) -> Any:
        """The operation logger (see :mod:`reliability.oplog`); None when operation logging is off."""
        return self._records.log

    @oplog.setter
    def oplog(self, oplog: Any) -> None:
        self._records.log = oplog
        self.observers.refresh()  # on or off: the hot path follows

    _oplog = oplog  # the name the property machines read

    @property
    def redo_journal(self) -> Any:
        """The redo journal this manager writes its commits to (a :class:`~reliability.redo.RedoJournal`,
        see :mod:`reliability.redo`), or None: ``redo_journal`` is off, the journal could not be opened (an
        unusable path, every slot taken by other live managers), or the manager is closed.

        For inspection (its ``path``, ``seq``, ``seen``, ``slot``) and for tools that model a crash at a
        point of the commit path by wrapping its methods; writing to it directly breaks recovery.
        """
        return self.executor.redo

    @property
    def _redo(self) -> Any:
        """Same as :attr:`redo_journal` (the name older tests use; settable for them)."""
        return self.executor.redo

    @_redo.setter
    def _redo(self, redo: Any) -> None:
        self.executor.redo = redo

    # -- statements (run by the executor) --------------------------------------------------------
    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        """Run one statement; retried on transient errors when not inside a transaction."""
        acks = self._acks
        if acks.defer:  # inside another call that waits for durability itself
            return self.executor.execute(sql, params)
        acks.defer = True
        try:
            return self.executor.execute(sql, params)
        finally:
            acks.defer = False
            if acks.tickets:
                self._await_durable(acks)

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> sqlite3.Cursor:
        """Run one statement for each parameter set (atomically: in a transaction if none is open)."""
        params = seq_of_params if isinstance(seq_of_params, list) else list(seq_of_params)
        with self._lock:
            if not self.transactions.depth and not self.connections.in_transaction():
                # executemany in autocommit mode commits row by row; a failure mid-way would
                # leave half the batch in. Wrap it so the batch is all or nothing. (Inside a transaction
                # opened with db.execute("BEGIN") it belongs to that one: a second BEGIN would fail.)
                return self.run_in_transaction(self.executemany, sql, params)
            return self.executor.executemany(sql, params)

    def fetch_one(self, sql: str, params: Params = ()) -> Any:
        """The first row of a query, or None."""
        return self.executor.fetch_one(sql, params)

    def fetch_all(self, sql: str, params: Params = ()) -> list[Any]:
        """Every row of a query."""
        return self.executor.fetch_all(sql, params)

    def follow_the_path(self) -> None:
        """The next read checks that the path still names the file the connection reads (see
        :meth:`~reliability.executor.Executor.follow_the_path`)."""
        self.executor.follow_the_path()

    def reconnect(self) -> None:
        """Close the live connection now; the next call opens a fresh one (counted in
        ``health().reconnects``).

        For a change under the connection that the application knows of and SQLite cannot see: the
        SQLite build's VFS was swapped, or the database file was put back by a tool outside the
        runtime. Waits for a call running on another thread; inside ``db.transaction()`` on this
        thread it raises :class:`RuntimeError` (closing the handle would roll the transaction back).
        """
        with self._lock:
            if self.transactions.active:
                raise RuntimeError("reconnect() inside db.transaction(): finish the transaction first")
            self._drop_connection()

    # -- failures: what the executor asks of the facade (a subclass may change them) -------------
    def _drop_connection(self) -> None:
        self.executor.drop_connection()

    def _surface(self, op: str, exc: BaseException, op_id: str, sql: str | None, *args: Any,
                 **kwargs: Any) -> DatabaseError:
        """The DatabaseError the caller sees for ``exc`` (see ``Executor.surface_error``)."""
        return self.executor.surface_error(op, exc, op_id, sql, *args, **kwargs)

    # -- the redo journal's commit protocol -----------------------------------------------------
    def _autocommit_journaled(self, conn: sqlite3.Connection, sql: str, params: Any) -> Any:
        """One write outside a transaction, journaled: its own transaction with a sequence and a record."""
        redo = self._redo
        if conn.in_transaction:  # a COMMIT/END issued through execute() after a BEGIN issued the same way
            try:
                self.executor.check_identity(conn)  # (the executor leaves the check of a journaled write to us)
                self._journaled_commit(conn)
            except BaseException:  # dbfault: no fault (a COMMIT issued through execute() failing: same path as below)
                redo.discard()
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return _NO_ROWS
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Again under the write lock: a recovery in another process holds that lock while it installs a
            # new file (durability.recovery.writers_fenced), so a file swapped since the check above is seen here.
            self.executor.check_identity(conn)
            before = conn.total_changes
            cur: Any = conn.execute(sql, params)
            if cur.description is not None:  # INSERT … RETURNING: step it to the end before COMMIT
                cur = _Rows(cur)
            if conn.total_changes != before or statement_kind(sql) in _JOURNALED_UNCHANGED:
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
        if redo.solo_conn is conn and redo.alone(conn):
            # The only writer (synchronous NORMAL/OFF): no sequence row, i.e. no extra page per commit.
            redo.commit_alone(conn)
            return
        try:
            seq = redo.allocate(conn)
        except self.connections.module.OperationalError as exc:  # dbfault: no fault (first journaled write)
            if "no such table" not in str(exc):
                raise
            ensure_sequence_table(conn)  # first journaled write on this database (inside the transaction)
            seq = redo.allocate(conn)
        written = redo.write_record(seq, sync=False)
        # The journal's fdatasync runs on the writer thread while SQLite commits (and syncs) here; under EXTRA
        # it runs after COMMIT instead, so that one flush covers the record and its committed mark.
        ticket = redo.start_sync() if written and not redo.sync_marks else None
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
        if written:
            # Before anyone is told (the flush wait below, or the deferred one): a record followed by this mark
            # committed, even where the database lost it later; one without it was never acknowledged.
            redo.mark_committed(seq)
            if redo.sync_marks:
                ticket = redo.start_sync()
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

    @contextlib.contextmanager
    def transaction(self) -> Iterator[TransactionConnection]:
        """``with db.transaction() as conn:`` — BEGIN IMMEDIATE (SAVEPOINT when nested), commit or roll back.

        ``conn`` runs its statements through this manager (journaled and logged like ``db.execute``);
        see :class:`~reliability.tx_connection.TransactionConnection`. Errors are re-raised as
        :class:`DatabaseError`; the connection stays usable.
        """
        if not self.transactions.depth:
            self.executor.replay_backlog("transaction", None, None)
        t0 = perf_counter()
        acks = self._acks
        outer = not acks.defer
        acks.defer = True
        try:
            try:
                with self._lock, self.transactions.transaction(self.new_operation_id()) as conn:
                    yield TransactionConnection(conn, self.execute, self.executemany)
            except DatabaseError as err:
                if self.transactions.depth:
                    raise
                self.executor.raise_tx_error(err, t0)
            except BaseException:  # dbfault: no fault (the caller's own exception ends its transaction)
                if not self.transactions.depth:
                    self.executor.count_errors(None)  # count the errors it saw inside
                raise
        finally:
            if outer:
                acks.defer = False
                if acks.tickets:
                    self._await_durable(acks)
        if not self.transactions.depth:
            if self.executor.tx_errors:
                self.executor.count_errors(None)  # errors the caller caught inside the transaction
            self.executor.done("transaction", None, t0, 0)

    def run_in_transaction(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in a transaction; on busy/locked/busy-snapshot, roll back and rerun it.

        ``fn`` uses this manager (``db.execute`` …) inside; it may run more than once, so
        it must not have side effects outside the database. Writes queued while the database was
        unavailable are replayed first.
        """
        if not self.transactions.depth:
            self.executor.replay_backlog("transaction", None, None)
        return self._transact(fn, *args, **kwargs)

    def _transact(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """:meth:`run_in_transaction` without replaying the backlog first: the write queue's replay
        runs each queued write through it, so a replay never starts another."""
        t0 = perf_counter()
        executor = self.executor

        def before_retry(exc: BaseException) -> None:
            # (The retry is counted by the policy's listener, as every retry is.)
            # The error that made us rerun the transaction is a retry, not an error the caller saw.
            executor.tx_errors = [e for e in executor.tx_errors if e is not exc]

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
                self.executor.raise_tx_error(err, t0)
            except RetryExhausted as exc:
                # Every rerun failed: a lock that outlasted the budget stays BUSY, a lost connection
                # becomes UNAVAILABLE (see _surface).
                raise self._surface("transaction", exc.last, self.new_operation_id(), None, None, exc.attempts, t0,
                                    exhausted=True) from exc.last
            except Exception as exc:
                if not self.transactions.depth and isinstance(exc, self.connections.module.Error):
                    raise self._surface("transaction", exc, self.new_operation_id(), None, None, 1, t0) from exc
                if not self.transactions.depth:
                    self.executor.count_errors(None)  # the caller's own exception ended it; count what it saw
                raise
        if not self.transactions.depth:
            if self.executor.tx_errors:
                self.executor.count_errors(None)  # errors the caller caught inside the transaction
            self.executor.done("transaction", None, t0, 0)
        return result

    # -- health --------------------------------------------------------------------------------
    def health(self) -> HealthReport:
        """A typed report: status (healthy / degraded / unavailable), reasons and counters."""
        reasons: list[str] = []
        with self._lock:
            state = self.connections.state
            found = self.connections.diagnose() if state is ConnectionState.CONNECTED else None
            if (found is not None and found[0] is ErrorKind.READONLY_DBMOVED and not self.transactions.depth
                    and not self.connections.in_transaction() and self.connections.file_replaced()):
                # Another file is at the path (a restore or recovery by another manager, an operator's replace):
                # the next read follows the path (Executor.reads_follow_the_path) and the next write reopens, so
                # health judges the file the next call serves, not the handle left on the replaced one (it said
                # unavailable, "readonly_dbmoved", until some other call happened to reopen).
                self._drop_connection()
                state, found = ConnectionState.CLOSED, None  # (reopened and checked below)
            if state is ConnectionState.CLOSED and not self.closed and self.connections.refused is None:
                try:
                    self.connections.open()
                    state = self.connections.state
                    found = self.connections.diagnose()
                except Exception as exc:
                    found = classify(exc), exc.detail if isinstance(exc, DatabaseError) else str(exc)
        status = HealthStatus.HEALTHY
        if state is ConnectionState.UNAVAILABLE:
            status = HealthStatus.UNAVAILABLE
            reasons.append("the database could not be reached within the retry budget")
        if found is not None:
            problem, detail = found
            # UNAVAILABLE from the connection is a refusal (a removed -wal or -shm, reads through a parked handle's
            # index): nothing is served, every call fails so, until a recovery. Its own detail says what is missing
            # and what to do; the kind alone ("unavailable") told an operator neither, and "degraded" understated it.
            refused = problem is ErrorKind.UNAVAILABLE
            status = HealthStatus.UNAVAILABLE if refused or out_of_service(problem) else HealthStatus.DEGRADED
            said = detail and detail != self.connections.refused  # (the refusal in force is given below)
            reasons.append(f"connection check found: {problem}" + (f": {detail}" if said else ""))
        if self.closed:
            status = HealthStatus.UNAVAILABLE
            reasons.append("this manager was closed (close()): it serves nothing; make a new one")
        if self.connections.refused is not None:
            # A database the runtime managed is missing and opening is refused (see durability.journal).
            status = HealthStatus.UNAVAILABLE
            reasons.append(self.connections.refused)
        if self.monitor.integrity_ok is False:
            status = HealthStatus.UNAVAILABLE
            reasons.append("the database is marked corrupt: " + "; ".join(self.monitor.integrity_problems[:3]))
        extra: dict[str, Any] = {}
        for contribute in self._health_parts:
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
        """Take a verified backup now (see :mod:`reliability.durability.backup`)."""
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
        if self.monitor.count_retry in self.policy.listeners:
            self.policy.listeners.remove(self.monitor.count_retry)
        if self._watcher is not None:
            self._watcher.stop()
        self.durability.close()
        with self._lock:
            if self._oplog is not None:
                self._oplog.close()
            self.connections.close()
            self.connections.closed_for_good = True

    def __enter__(self) -> DatabaseManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DatabaseManager {self.path!r} {self.connections.state}>"


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
        # One row returned per row inserted, updated or deleted (SQLite's RETURNING): the count does not depend on
        # the driver (pysqlite3's cursor said 1 for a three-row INSERT … RETURNING; the stdlib's said 3).
        self.rowcount = len(self._rows)
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
