"""The fault interface every injector implements, engine-level or I/O-level.

A fault is an object with a ``name``, its ``params``, ``inject()`` / ``heal()``
and a ``records`` list saying what it did. It is also a context manager, so::

    with LockedFault(path, mode="exclusive"):
        ...  # every writer of ``path`` now gets SQLITE_BUSY

Faults act on plain paths and ``sqlite3.Connection`` objects so they serve any
SQLite application, not only our runtime.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol


class FaultCounter(Protocol):
    """Where a fault's injections are counted: :class:`pytest_dbfault.stats.Stats` is one."""

    def record_fault(self, kind: str) -> None:
        """A fault labelled ``kind`` was injected."""


@dataclass(frozen=True)
class FaultEvent:
    """One fault started (``"injected"``, right after its ``inject()`` succeeded) or ended (``"healed"``).

    The one notification of a fault's lifecycle, whoever made the fault (fixture, scenario, property
    machine, chaos, sweep or a test's own code): the stats, the ``pytest_dbfault_fault_injected`` hook
    (through the ``dbfault`` fixture's :class:`~pytest_dbfault.per_test.FaultFactory`) and the coverage
    contexts of ``--dbfault-coverage`` all subscribe to it with :func:`subscribe`.
    """

    action: Literal["injected", "healed"]
    fault: Fault

    @property
    def kind(self) -> str:
        """What the fault is labelled as: :attr:`Fault.kind`."""
        return self.fault.kind


#: ``fn(event)``: told of every :class:`FaultEvent`; keep it cheap, and let nothing escape it.
Subscriber = Callable[[FaultEvent], None]
_subscribers: list[Subscriber] = []
_subscribers_lock = threading.Lock()


def subscribe(subscriber: Subscriber) -> Subscriber:
    """Tell ``subscriber`` of every fault's start and end from now on (once, however often subscribed)."""
    with _subscribers_lock:
        if subscriber not in _subscribers:
            _subscribers.append(subscriber)
    return subscriber


def unsubscribe(subscriber: Subscriber) -> None:
    """Stop telling ``subscriber`` (unknown subscribers are ignored)."""
    with _subscribers_lock:
        if subscriber in _subscribers:
            _subscribers.remove(subscriber)


def _emit(event: FaultEvent) -> None:
    # A copy: a subscriber may unsubscribe (or another thread subscribe) while the event is delivered.
    with _subscribers_lock:
        subscribers = tuple(_subscribers)
    for subscriber in subscribers:
        subscriber(event)


@dataclass(frozen=True)
class FaultRecord:
    """One thing a fault did, kept so a failing test can say exactly what was broken."""

    fault: str
    action: str
    detail: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)


class FaultError(Exception):
    """A fault could not be injected or healed as asked (bad parameters, unsafe target...)."""


class Fault:
    """Base class for every injector.

    Subclasses set ``name`` and implement ``_inject`` and ``_heal``. ``inject`` and
    ``heal`` are idempotent: injecting an active fault or healing a healed one is a
    no-op, so a test's cleanup can always call ``heal``.
    """

    name: ClassVar[str] = "fault"
    #: False for damage that cannot be undone (corruption, crash): ``heal`` then only
    #: releases resources, it does not restore the file.
    healable: ClassVar[bool] = True
    #: Allowed values of parameters that take one of a few words (``{"mode": ("write", "exclusive")}``).
    #: Scenario files are checked against it at collection and the JSON Schema lists the values.
    param_choices: ClassVar[dict[str, tuple[Any, ...]]] = {}
    #: Inclusive ``(minimum, maximum)`` of numeric parameters (``None``: unbounded), checked the same way.
    param_bounds: ClassVar[dict[str, tuple[float | None, float | None]]] = {}

    #: A transient fault (chaos) that is gone before the code reacting to it runs: coverage contexts
    #: keep its kind in their label until the test ends instead of dropping it at ``heal()``.
    label_lingers: bool = False

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = params
        self.records: list[FaultRecord] = []
        self.active = False
        #: What the fault is labelled as in stats, coverage contexts and hooks: the name it was made under
        #: (``disconnect_rename``, ``chaos_locked``: see :func:`~.registry.make_fault`), else :attr:`name`.
        self.kind: str = self.name
        #: The stats its injections are counted in (``None``: not counted), set by whoever made it.
        self.counted_in: FaultCounter | None = None

    def inject(self) -> Fault:
        """Make the fault happen. Returns ``self`` so calls can chain."""
        if not self.active:
            self._inject()
            self.active = True
            self.record("inject", **self.params)
            _emit(FaultEvent("injected", self))
        return self

    def heal(self) -> None:
        """Undo the fault where possible and release anything it holds."""
        if self.active:
            self._heal()
            self.active = False
            self.record("heal")
            _emit(FaultEvent("healed", self))

    def record(self, action: str, **detail: Any) -> None:
        """Append a :class:`FaultRecord` to :attr:`records`."""
        self.records.append(FaultRecord(self.name, action, dict(detail)))

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary: name, parameters, state and records."""
        return {
            "name": self.name,
            "params": {k: _jsonable(v) for k, v in self.params.items()},
            "active": self.active,
            "records": [{"action": r.action, "detail": {k: _jsonable(v) for k, v in r.detail.items()}}
                        for r in self.records],
        }

    def _inject(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _heal(self) -> None:
        """Default: nothing to undo."""

    def __enter__(self) -> Fault:
        return self.inject()

    def __exit__(self, *exc: object) -> None:
        self.heal()

    def __repr__(self) -> str:
        # Never fails: pytest and debuggers show ``self`` of a constructor that raised before
        # ``params`` was set, and a parameter whose own repr breaks must not hide the fault.
        params = getattr(self, "params", None)
        if not isinstance(params, dict):
            return f"<{type(self).__name__} {self.name} (not initialised)>"
        args = ", ".join(f"{k}={_safe_repr(v)}" for k, v in params.items())
        return f"<{type(self).__name__} {self.name}({args}) {'active' if getattr(self, 'active', False) else 'idle'}>"


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a target whose __repr__ raises (a half-closed wrapper...)
        return f"<{type(value).__name__}: repr failed: {type(exc).__name__}>"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)
