"""Transactions: ``BEGIN IMMEDIATE`` at the outermost level, SAVEPOINTs inside, rollback on any error.

SQLite sometimes rolls a transaction back by itself (SQLITE_FULL, SQLITE_INTERRUPT,
I/O errors during commit) and sometimes leaves it open (SQLITE_BUSY at COMMIT).
The manager therefore looks at ``in_transaction`` before issuing ROLLBACK, and
treats a savepoint whose enclosing transaction is already gone as rolled back too.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import Action, DatabaseError, ErrorKind, classify, decide
from .observers import Observers

if TYPE_CHECKING:
    import sqlite3

    from .connection import ConnectionManager
    from .errors import ErrorHandler
    from .retry import RetryPolicy

T = TypeVar("T")
log = logging.getLogger("reliability.transaction")


class TransactionError(DatabaseError):
    """A transaction could not be committed or was used wrongly; the database is unchanged."""


def ended_transaction(detail: str = "", operation_id: str = "") -> TransactionError:
    """The error of a statement (or a nested block) inside ``db.transaction()`` after its transaction ended under it,
    and of the block itself (its COMMIT, a nested block's RELEASE) then.

    SQLite rolls a whole transaction back on some errors inside it (a full disk, an interrupt, an I/O error, a
    conflict clause ``OR ROLLBACK``, a trigger's ``RAISE(ROLLBACK, ...)``); a caller that swallowed that error and
    went on would run the next statement in autocommit mode: saved on its own at once, while the block then reports
    that nothing was saved. A transaction is all or nothing, so the statement is not run; the block fails as a whole.

    Its kind is ``rolled_back``, whose user message says nothing was saved and does not ask to try again later:
    the error that made SQLite roll back (the caller's to see, with its own kind) is often a conflict, which the
    same change sent again meets the same way."""
    return TransactionError(ErrorKind.ROLLED_BACK, detail or (
        "the transaction was rolled back after an error inside it (or its connection was lost); this statement was "
        "not run and nothing of the transaction was saved"), operation_id=operation_id)


class TransactionManager:
    """Begins, commits and rolls back transactions on a :class:`ConnectionManager`'s connection.

    ``lock`` is held for the whole transaction so other threads sharing the
    connection cannot slip statements into it. ``observers`` (:mod:`reliability.observers`, shared
    with the executor) are told ``before_commit`` (may raise to abort), ``committed`` and
    ``rolled_back`` about the outermost transaction.
    """

    def __init__(
        self,
        connections: ConnectionManager,
        policy: RetryPolicy,
        handler: ErrorHandler,
        lock: threading.RLock | None = None,
        observers: Observers | None = None,
    ) -> None:
        self.connections = connections
        self.policy = policy
        self.handler = handler
        self.lock = lock or threading.RLock()
        self.observers = observers if observers is not None else Observers()
        self.depth = 0
        #: Runs the outermost COMMIT (the manager's journaled commit); None: a plain ``COMMIT``.
        self.committer: Callable[[sqlite3.Connection], None] | None = None
        #: What the error a failed BEGIN raises means here (the manager passes the executor's
        #: ``refused_for_schema``: READONLY under a write block is a schema refusal).
        self.refine: Callable[[DatabaseError], DatabaseError] = lambda err: err
        #: Called with ``("begin", level)`` after a SAVEPOINT opened and ``("rollback", level)`` after
        #: it rolled back (the redo journal drops the writes captured inside it).
        self.savepoint_hooks: list[Callable[[str, int], None]] = []
        self.commits = 0
        self.rollbacks = 0

    @property
    def active(self) -> bool:
        """True inside ``transaction()`` on this thread's manager."""
        return self.depth > 0

    @contextlib.contextmanager
    def transaction(self, operation_id: str = "") -> Iterator[sqlite3.Connection]:
        """Run the block in a transaction (or a savepoint when nested); commit or roll back.

        Any exception rolls back this level and is re-raised as :class:`DatabaseError`
        (database errors) or unchanged (the caller's own exceptions).
        """
        with self.lock:
            level = self.depth
            name = f"reliability_sp{level}"
            try:
                # Opening inside the try: a vanished file must surface as DatabaseError, not a raw error.
                conn = self.connections.connection
                if level == 0 and self.connections.file_replaced():
                    # The path names another file than the handle's (a file put back after a delete):
                    # nothing has begun, so begin on the file at the path rather than fail at COMMIT's
                    # identity check and spend a retry (with retry_attempts=1, fail the transaction).
                    conn = self.connections.open()
                if level and self.connections.transaction_ended():
                    # SQLite ended the enclosing transaction (an error inside it the caller swallowed): a SAVEPOINT
                    # now would begin a new transaction of its own, and its RELEASE would commit the nested block.
                    raise ended_transaction()
                try:
                    conn.execute("BEGIN IMMEDIATE" if level == 0 else f"SAVEPOINT {name}")
                except self.connections.module.Error as begin_error:
                    # A handle closed since the last call: nothing has begun, so reopen and begin (a
                    # handle whose file moved is not reopened here: the caller's retry handles it).
                    if decide(begin_error, level > 0, first_try=True) is not Action.REOPEN \
                            or self.connections.file_moved():
                        raise
                    self.connections.close()
                    conn = self.connections.connection
                    conn.execute("BEGIN IMMEDIATE")
            except Exception as exc:
                sql = "BEGIN IMMEDIATE" if level == 0 else "SAVEPOINT"
                # Refined before it is logged: the record must name what the caller is told (a write
                # block on an untrusted schema makes BEGIN fail as READONLY; the caller sees why).
                err = self.refine(self.handler.wrap(exc, operation_id=operation_id, log=False))
                self.handler.log(err, sql=sql, exc=exc)
                raise err from exc
            self.depth += 1
            if level:
                for hook in self.savepoint_hooks:
                    hook("begin", level)
            try:
                yield conn
            except BaseException as exc:
                self.depth -= 1
                self._rollback(conn, level, name)
                if isinstance(exc, (self.connections.module.Error, DatabaseError)):
                    raise self.handler.wrap(exc, operation_id=operation_id) from exc
                raise
            self.depth -= 1
            if level == 0:
                self._commit(conn, operation_id)
            elif conn.in_transaction:
                conn.execute(f"RELEASE {name}")
            else:
                # SQLite already rolled the whole transaction back (e.g. SQLITE_FULL inside it).
                raise ended_transaction("the enclosing transaction was rolled back by SQLite", operation_id)

    def _commit(self, conn: sqlite3.Connection, operation_id: str) -> None:
        try:
            open_tx = conn.in_transaction
        except self.connections.module.Error as exc:
            # The handle was closed inside the block (a lost connection whose error the caller caught): the
            # transaction went with it, nothing was saved. Said as a DatabaseError, like every other failure.
            self._rollback(conn, 0, "")
            raise self.handler.wrap(exc, operation_id=operation_id, sql="COMMIT") from exc
        if not open_tx:
            # A statement inside failed in a way SQLite answers by rolling back, and the
            # caller swallowed the error: committing now would acknowledge lost work.
            self.rollbacks += 1
            self.observers.rolled_back()
            err = ended_transaction("SQLite rolled the transaction back after an error inside it; nothing was saved",
                                    operation_id)
            self.handler.log(err, sql="COMMIT")  # surfaced like any other error: with its technical record
            raise err
        try:
            self.observers.before_commit(conn)
            if self.committer is not None:
                self.committer(conn)
            else:
                conn.execute("COMMIT")
        except BaseException as exc:
            # BUSY at COMMIT leaves the transaction open; everything else may or may not have.
            self._rollback(conn, 0, "")
            if isinstance(exc, DatabaseError):
                if not exc.operation_id:  # raised by a before-commit hook: give it its id and its log record
                    exc.operation_id = operation_id
                    self.handler.log(exc, sql="COMMIT")
                raise
            raise self.handler.wrap(exc, operation_id=operation_id, sql="COMMIT") from exc
        self.commits += 1
        self.observers.committed()

    def _rollback(self, conn: sqlite3.Connection, level: int, name: str) -> None:
        # The hooks run whether or not ROLLBACK itself works: on a dead handle the transaction
        # is gone all the same, and what was captured for it (the redo journal) must go too.
        try:
            if level == 0:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            else:
                for hook in self.savepoint_hooks:
                    hook("rollback", level)
                if conn.in_transaction:
                    conn.execute(f"ROLLBACK TO {name}")
                    conn.execute(f"RELEASE {name}")
        except Exception as exc:  # the handle may be dead; the transaction is gone with it
            log.warning("rollback failed (%s: %s); the connection will be reopened", classify(exc), exc)
        if level == 0:
            self.rollbacks += 1
            self.observers.rolled_back()

    def run(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        operation_id: str = "",
        before_retry: Callable[[BaseException], None] | None = None,
        reconnect: Callable[[], None] | None = None,
    ) -> T:
        """Run ``fn(*args, **kwargs)`` in a transaction; on a transient error roll back and rerun it all.

        Retries follow the shared policy and :func:`~reliability.errors.decide` (``reconnect`` is called
        before a rerun after a lost connection). Only the outermost call retries: inside
        another transaction a rerun of part of the work would break atomicity.
        """
        kwargs = kwargs or {}
        if self.depth > 0:
            with self.transaction(operation_id):
                return fn(*args, **kwargs)

        def once() -> T:
            with self.transaction(operation_id):
                return fn(*args, **kwargs)

        def on_retry(attempt: int, delay: float, exc: BaseException) -> None:
            log.warning("transaction attempt %d failed (%s); rerunning in %.3fs",
                        attempt, classify(exc), delay,
                        extra={"operation_id": operation_id, "attempt": attempt, "db_kind": str(classify(exc))})

        # RetryExhausted propagates: the caller decides what the user sees (the facade turns a
        # lost connection into UNAVAILABLE and a lock into BUSY, with the attempts made).
        # The transaction has rolled back when decide() is asked: its owner may rerun all of it.
        return self.policy.call(once, decide=decide, on_retry=on_retry, before_retry=before_retry,
                                reconnect=reconnect)
