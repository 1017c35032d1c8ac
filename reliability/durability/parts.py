"""The runtime parts every durability part is built from (never the facade).

:class:`~reliability.manager.DatabaseManager` builds one :class:`RuntimeParts` from the parts it
already has and hands it to :class:`~reliability.durability.Durability`; each durability part
(journal, trust, backups, recovery, upkeep) keeps it and the few peer parts it needs, passed at
construction. Nothing here reaches back into the facade: what the facade owns and may swap (the
configuration on a reload, the operation log, whether it is closed) is read through the part
that holds it (``connections.config``, ``records.log``) or a callable.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import DatabaseError
from ..health import run_maintenance

if TYPE_CHECKING:
    from ..config import ReliabilityConfig
    from ..connection import ConnectionManager
    from ..errors import ErrorHandler
    from ..executor import Executor
    from ..health import HealthMonitor
    from ..observers import OperationRecords
    from ..retry import RetryPolicy
    from ..transaction import TransactionManager


@dataclass(frozen=True)
class RuntimeParts:
    """What durability works with: the connection, the lock, the statements, the policy and the counters.

    :param connections: the runtime's connection (its ``config`` is the configuration in force: a reload
        swaps it there).
    :param lock: the runtime's lock (held by every statement and every maintenance step).
    :param transactions: the transaction state (``depth``: maintenance refuses to run inside one).
    :param executor: one SQL call; holds the live redo journal (``executor.redo``) that the commit path
        writes to, and hands out operation ids.
    :param policy: the shared retry policy.
    :param errors: the shared error handler (wraps and logs).
    :param monitor: the health counters (last backup, integrity, recoveries).
    :param records: the operation log holder (``records.log`` is None while logging is off).
    :param closed: True once the runtime is closed.
    """

    connections: ConnectionManager
    lock: threading.RLock
    transactions: TransactionManager
    executor: Executor
    policy: RetryPolicy
    errors: ErrorHandler
    monitor: HealthMonitor
    records: OperationRecords
    closed: Callable[[], bool]

    @property
    def config(self) -> ReliabilityConfig:
        """The settings in force (a reload swaps them into the connection manager)."""
        return self.connections.config

    @property
    def path(self) -> str:
        """The database file."""
        return self.connections.config.db_path

    @property
    def redo(self) -> Any:
        """The live redo journal the commit path writes to (None when off or not owned)."""
        return self.executor.redo

    def new_operation_id(self) -> str:
        """A fresh id for the technical log."""
        return self.executor.new_operation_id()

    def on_live_connection(self, what: str, fn: Callable[[Any], T]) -> T:
        """``fn(live connection)`` under the runtime's lock, rerun under the shared retry policy while it
        fails with a transient error (see :func:`~reliability.health.run_maintenance`: one that outlasts
        the policy is raised saying ``what`` could not run, never as a verdict).

        The runtime's own bookkeeping at startup goes through here. Another process opening the same
        database at the same moment holds it for a few milliseconds (while its ``-shm`` does not exist
        yet, opening here is refused as busy); each of these steps used to give up at the first busy and
        leave a state for the process's life (the journal unanchored, orphans unreconciled). The lock is
        taken per attempt, so this manager's other threads run between them.
        """
        def once() -> T:
            with self.lock:
                return fn(self.connections.live_connection())

        return run_maintenance(once, self.policy, what)


F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def maintenance(kind: str) -> Callable[[F], F]:
    """Wrap a maintenance operation (migration, backup, check, restore, recovery) like a statement.

    It gets an operation id; a raw driver error becomes a :class:`DatabaseError` wrapped and logged by
    the runtime's one error handler (never a bare ``sqlite3`` exception to the caller); a DatabaseError
    raised inside is logged once with that id; and the operation log gets its one record through the
    same observer the executor tells (``parts.records``). The error is not told to the error or
    corruption listeners and not counted as a statement's: a maintenance error is never a verdict on
    the file (a transient one outlasting the policy says "could not run"; damage is what an integrity
    result finds, and that part acts on it itself).
    The wrapped method's object has ``parts`` (:class:`RuntimeParts`).
    """

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            parts: RuntimeParts = self.parts
            t0 = perf_counter()
            try:
                result = method(self, *args, **kwargs)
            except DatabaseError as err:
                # (the tries the shared policy made: the record says what the caller's error says)
                attempts = max(err.attempts or 1, 1)
                if not err.operation_id:
                    err.operation_id = parts.new_operation_id()
                    parts.errors.log(err, attempt=attempts, elapsed=perf_counter() - t0)
                parts.records.failed(kind, None, err, perf_counter() - t0, attempts)
                raise
            except parts.connections.module.Error as exc:
                wrapped = parts.errors.wrap(exc, operation_id=parts.new_operation_id(), elapsed=perf_counter() - t0)
                parts.records.failed(kind, None, wrapped, perf_counter() - t0, 1)
                raise wrapped from exc
            rows = getattr(result, "replayed", None)
            if rows is None:
                rows = len(getattr(result, "applied", ()) or ())
            # The operation ran: "ok" even when its report found problems (those are in the report and logs),
            # except a recovery that could not bring everything back: its record says "incomplete".
            if getattr(result, "incomplete", False):
                log = parts.records.log
                if log is not None:
                    log.record(kind, None, perf_counter() - t0, rows, 1, "incomplete", "incomplete_recovery")
            else:
                parts.records.succeeded(kind, None, perf_counter() - t0, rows, 1)
            return result

        return run  # type: ignore[return-value]

    return wrap


class WriteBlock:
    """Why the application's writes are refused (an untrusted schema), or None; set by schema trust.

    Enforced by SQLite itself: every connection the runtime opens gets ``PRAGMA query_only`` from
    :meth:`apply` (the executor turns the READONLY error into SCHEMA_MISMATCH with :attr:`reason`).
    The runtime's own bookkeeping (a backup's sequence, a migration) lifts it on its connection for
    the step and calls :meth:`apply` again after.
    """

    def __init__(self) -> None:
        self.reason: str | None = None

    def apply(self, conn: Any) -> None:
        """Refuse writes on ``conn`` while blocked, allow them otherwise."""
        conn.execute(f"PRAGMA query_only = {1 if self.reason else 0}")
