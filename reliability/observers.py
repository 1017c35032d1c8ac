"""Everything that watches a call the runtime runs, through one protocol.

The executor tells :class:`Observers` once per finished call: ``succeeded`` with its duration and
rows, or ``failed`` with the :class:`~reliability.errors.DatabaseError` the caller sees. The health
counters, the operation log and the error listeners are observers; a new one is added with
:meth:`Observers.add`, never by inlining another observe-and-record block::

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
from typing import Any, Protocol

from .errors import DatabaseError, RecoveryAction


class Observer(Protocol):
    """Told about each call the executor finished (statements, transactions, maintenance)."""

    def succeeded(self, op: str, sql: str | None, seconds: float, rows: int, attempts: int) -> None:
        """``op`` (``"execute"``, ``"fetch_one"``, ``"transaction"`` …) finished after ``attempts`` tries."""

    def failed(self, op: str, sql: str | None, err: DatabaseError, seconds: float, attempts: int) -> None:
        """``op`` failed; ``err`` is what its caller sees."""


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


class Listeners:
    """Callbacks given each error that reaches a caller: ``corruption`` first for a damaged file
    (the error's action is RESTORE: recovery registers there), then ``errors`` (degradation)."""

    def __init__(self) -> None:
        self.corruption: list[Callable[[DatabaseError], None]] = []
        self.errors: list[Callable[[DatabaseError], None]] = []

    def succeeded(self, op: str, sql: str | None, seconds: float, rows: int, attempts: int) -> None:
        """Nothing: listeners hear only about errors."""

    def failed(self, op: str, sql: str | None, err: DatabaseError, seconds: float, attempts: int) -> None:
        """Tell the corruption listeners (when the file is damaged), then the error listeners."""
        if err.action is RecoveryAction.RESTORE:
            for fn in list(self.corruption):
                fn(err)
        for fn in list(self.errors):
            fn(err)


class Observers:
    """The observers of one runtime, told in the order they were added (the executor's one hook)."""

    def __init__(self, *observers: Observer) -> None:
        self._all: list[Observer] = []
        self._succeeded: list[Callable[..., None]] = []
        for observer in observers:
            self.add(observer)

    def add(self, observer: Observer) -> None:
        """Tell ``observer`` about every call from now on."""
        self._all.append(observer)
        self.refresh()

    def remove(self, observer: Observer) -> None:
        """Stop telling ``observer``."""
        self._all.remove(observer)
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the hot path after an observer became active or inactive (``active``, default True)."""
        # Successes are the hot path (a point read is ~5 us): keep only the observers that do
        # something with them, and with exactly one, call it directly instead of looping.
        fns: list[Callable[..., None]] = [o.succeeded for o in self._all
                                          if type(o).succeeded not in _SILENT and getattr(o, "active", True)]
        self._succeeded = fns
        if len(fns) == 1:
            self.succeeded = fns[0]  # type: ignore[method-assign,assignment]
        else:
            self.__dict__.pop("succeeded", None)

    def succeeded(self, op: str, sql: str | None, seconds: float, rows: int, attempts: int = 1) -> None:
        """``op`` finished: tell every observer."""
        for fn in self._succeeded:
            fn(op, sql, seconds, rows, attempts)

    def failed(self, op: str, sql: str | None, err: DatabaseError, seconds: float, attempts: int = 1) -> None:
        """``op`` failed with ``err`` (what the caller sees): tell every observer."""
        for observer in list(self._all):
            observer.failed(op, sql, err, seconds, attempts)


#: ``succeeded`` methods known to do nothing (left out of the hot path).
_SILENT = (Listeners.succeeded,)
