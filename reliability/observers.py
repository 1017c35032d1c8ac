"""Everything that watches what the runtime runs, through one protocol.

The executor tells :class:`Observers` once per finished call: ``succeeded`` with its duration and
rows, or ``failed`` with the :class:`~reliability.errors.DatabaseError` the caller sees. The
transaction manager tells them about the outermost transaction: ``before_commit`` (may raise to
abort it), ``committed``, ``rolled_back``. The health counters, the operation log, the corruption
listeners, the commands' degraded mode (errors), the file-identity check and the redo journal's
discard (transactions) and the audit anchor (commits, and a file the runtime itself rewound: ``rewound``)
are observers; a new one is added with
:meth:`Observers.add`, never by inlining another observe-and-record block or another callback
list. An observer defines the events it watches (subclass :class:`Observer` for no-op defaults)::

    class Slow:
        def succeeded(self, op, sql, seconds, rows, attempts):
            if seconds > 0.1:
                print("slow", op, sql)

        def failed(self, op, sql, err, seconds, attempts):
            pass

    db.observers.add(Slow())

Errors are *counted* (``monitor.errors``) by the executor, not here: an error raised inside a
transaction is counted once when the transaction ends (see ``Executor.count_errors``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import DatabaseError, RecoveryAction


class Observer:
    """The observer protocol, every event a no-op: subclass it and define the events you watch
    (an object with some of these methods and no base class works too)."""

    # -- calls (the executor) ------------------------------------------------------------------
    def succeeded(self, op: str, sql: str | None, seconds: float, rows: int, attempts: int) -> None:
        """``op`` (``"execute"``, ``"fetch_one"``, ``"transaction"`` …) finished after ``attempts`` tries."""

    def failed(self, op: str, sql: str | None, err: DatabaseError, seconds: float, attempts: int) -> None:
        """``op`` failed; ``err`` is what its caller sees."""

    # -- the outermost transaction (the transaction manager) -----------------------------------
    def before_commit(self, conn: Any) -> None:
        """Just before COMMIT on ``conn``; raising aborts the transaction (it is rolled back)."""

    def committed(self) -> None:
        """COMMIT succeeded; the caller is not told yet."""

    def rolled_back(self) -> None:
        """The transaction rolled back (also when ROLLBACK itself failed on a dead handle: it is gone)."""

    # -- the file (durability) ------------------------------------------------------------------
    def rewound(self, reason: str) -> None:
        """The runtime put another file in place on purpose (a restore, a recovery from a backup):
        what the database held after that backup may be gone, and ``reason`` says why."""


#: The events of the protocol, each told to the observers that define it (in the order they were added).
EVENTS = ("succeeded", "failed", "before_commit", "committed", "rolled_back", "rewound")


class Metrics:
    """The health counters (``HealthMonitor``): operations by type and their latencies."""

    def __init__(self, monitor: Any) -> None:
        self.monitor = monitor

    def succeeded(self, op: str, sql: str | None, seconds: float, rows: int, attempts: int) -> None:
        """Count the operation and keep its latency."""
        monitor = self.monitor
        monitor.operations[op] += 1
        monitor.latencies.append(seconds)

    def failed(self, op: str, sql: str | None, err: DatabaseError, seconds: float, attempts: int) -> None:
        """Nothing: errors are counted once per failed call by the executor (transactions defer them)."""


class OperationRecords:
    """The operation log (:mod:`reliability.oplog`); ``log`` is None while logging is off (a reload swaps it)."""

    def __init__(self, log: Any = None) -> None:
        self.log = log

    @property
    def active(self) -> bool:
        """False while logging is off: the hot path leaves this observer out (see :meth:`Observers.refresh`)."""
        return self.log is not None

    def succeeded(self, op: str, sql: str | None, seconds: float, rows: int, attempts: int) -> None:
        """One ``ok`` record."""
        log = self.log
        if log is not None:
            log.record(op, sql, seconds, rows, attempts, "ok", None)

    def failed(self, op: str, sql: str | None, err: DatabaseError, seconds: float, attempts: int) -> None:
        """One ``error`` record naming the error's kind."""
        log = self.log
        if log is not None:
            log.record(op, sql, seconds, 0, attempts, "error", str(err.kind))


class Listeners(Observer):
    """Callbacks given each error that says the file is damaged (the error's action is RESTORE:
    recovery registers in ``corruption``)."""

    def __init__(self) -> None:
        self.corruption: list[Callable[[DatabaseError], None]] = []

    def failed(self, op: str, sql: str | None, err: DatabaseError, seconds: float, attempts: int) -> None:
        """Tell the corruption listeners when the file is damaged."""
        if err.action is RecoveryAction.RESTORE:
            for fn in list(self.corruption):
                fn(err)


class Observers:
    """The observers of one runtime, told in the order they were added (the executor's and the
    transaction manager's one hook)."""

    def __init__(self, *observers: Any) -> None:
        self._all: list[Any] = []
        self._succeeded: list[Callable[..., None]] = []
        self._failed: list[Callable[..., None]] = []
        self._before_commit: list[Callable[..., None]] = []
        self._committed: list[Callable[[], None]] = []
        self._rolled_back: list[Callable[[], None]] = []
        self._rewound: list[Callable[[str], None]] = []
        for observer in observers:
            self.add(observer)

    def add(self, observer: Any) -> None:
        """Tell ``observer`` about every call from now on."""
        self._all.append(observer)
        self.refresh()

    def remove(self, observer: Any) -> None:
        """Stop telling ``observer``."""
        self._all.remove(observer)
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the hot path after an observer became active or inactive (``active``, default True)."""
        # Successes are the hot path (a point read is ~5 us): keep only the observers that do
        # something with them, and with exactly one, call it directly instead of looping.
        fns: list[Callable[..., None]] = [o.succeeded for o in self._all
                                          if _watches(o, "succeeded") and getattr(o, "active", True)]
        self._succeeded = fns
        if len(fns) == 1:
            self.succeeded = fns[0]  # type: ignore[method-assign,assignment]
        else:
            self.__dict__.pop("succeeded", None)
        for event in EVENTS[1:]:
            setattr(self, f"_{event}", [getattr(o, event) for o in self._all if _watches(o, event)])

    def succeeded(self, op: str, sql: str | None, seconds: float, rows: int, attempts: int = 1) -> None:
        """``op`` finished: tell every observer."""
        for fn in self._succeeded:
            fn(op, sql, seconds, rows, attempts)

    def failed(self, op: str, sql: str | None, err: DatabaseError, seconds: float, attempts: int = 1) -> None:
        """``op`` failed with ``err`` (what the caller sees): tell every observer."""
        for fn in self._failed:
            fn(op, sql, err, seconds, attempts)

    def before_commit(self, conn: Any) -> None:
        """Just before the outermost COMMIT: tell every observer (one raising aborts the transaction)."""
        for fn in self._before_commit:
            fn(conn)

    def committed(self) -> None:
        """The outermost COMMIT succeeded: tell every observer."""
        for fn in self._committed:
            fn()

    def rolled_back(self) -> None:
        """The outermost transaction rolled back: tell every observer."""
        for fn in self._rolled_back:
            fn()

    def rewound(self, reason: str) -> None:
        """Another file was put in place on purpose (restore, recovery): tell every observer."""
        for fn in self._rewound:
            fn(reason)


def _watches(observer: Any, event: str) -> bool:
    """True when ``observer`` does something on ``event`` (the base class's no-ops are left out)."""
    fn = getattr(observer, event, None)
    return fn is not None and getattr(fn, "__func__", fn) is not getattr(Observer, event)
