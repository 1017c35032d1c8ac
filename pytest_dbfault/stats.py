"""Counters behind the property × fault report, shared by machines, scenarios and the plugin.

Plain Python: a machine or scenario calls :func:`record_check` each time it checks
a property, with the faults active at that moment; the plugin turns the totals into
the terminal summary and the JSON report, merging xdist workers' copies.

Every check carries exactly one kind of label: ``none`` (no fault before), a fault kind ``K``
(checked while K was in force) or ``after:K`` (checked after K healed, no fault in force; see
:func:`after`). The report groups kinds into the :data:`FAMILIES` of the property x fault matrix.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .faults.base import FaultEvent, subscribe

#: The 17 reliability properties, number → slug (used in names like ``p06_transaction_atomicity``).
PROPERTIES: dict[int, str] = {
    1: "connection_recovery",
    2: "graceful_degradation",
    3: "schema_validation",
    4: "migration_application",
    5: "migration_rollback",
    6: "transaction_atomicity",
    7: "transaction_rollback",
    8: "user_friendly_errors",
    9: "technical_logging",
    10: "health_monitoring",
    11: "integrity_checking",
    12: "automatic_backup",
    13: "corruption_recovery",
    14: "command_continuity",
    15: "audit_retry",
    16: "config_hot_reload",
    17: "operation_logging",
}

NO_FAULT = "none"
#: Prefix of the label of a check made after fault kind K was healed, with no fault in force: ``after:K``.
AFTER_PREFIX = "after:"

#: The fault families of the property x fault matrix (the four the mission names), family -> kinds.
FAMILIES: dict[str, frozenset[str]] = {
    "locked": frozenset({"locked", "busy_commit", "busy_snapshot"}),
    "disk_full": frozenset({"disk_full", "enospc", "file_full"}),
    "corrupt": frozenset({"corrupt", "short_read", "io_error_corruptfs"}),
    "disconnect": frozenset({"disconnect", "disconnect_close", "disconnect_rename", "disconnect_delete",
                             "disconnect_replace", "disconnect_remove_wal", "disconnect_remove_wal_shm"}),
}
_FAMILY_OF = {kind: name for name, kinds in FAMILIES.items() for kind in kinds}
#: Kinds that are an instant, not a state: a process killed (``crash``: the crash fault and the restart machine's
#: kill -9, ``kill``: the commit-path machine's, ``worker_killed``: the data-loss machine's). Nothing runs while
#: they are "in force", so their checks are the ones made after them; the report says so instead of warning.
#: (``power_loss`` is not one: the scenarios' VFS fault of that name is in force while writes go unsynced.)
INSTANT_KINDS = frozenset({"crash", "kill", "worker_killed"})


def family(kind: str) -> str | None:
    """The matrix family of fault ``kind`` (``"busy_commit"`` -> ``"locked"``), or ``None`` for other kinds.

    An ``after:K`` label has the family of ``K``.
    """
    return _FAMILY_OF.get(split_label(kind)[1] or "")


def after(kind: str) -> str:
    """The label of a check made after ``kind`` was healed: ``"after:disk_full"``."""
    return AFTER_PREFIX + kind


def split_label(label: str) -> tuple[str, str | None]:
    """``"none"`` -> ``("none", None)``; ``"locked"`` -> ``("under", "locked")``; ``"after:locked"`` ->
    ``("after", "locked")``. Every check label is exactly one of the three."""
    if label == NO_FAULT:
        return "none", None
    if label.startswith(AFTER_PREFIX):
        return "after", label[len(AFTER_PREFIX):]
    return "under", label


def property_id(number: int) -> str:
    """``6`` → ``"p06_transaction_atomicity"``."""
    return f"p{number:02d}_{PROPERTIES[number]}"


@dataclass
class Stats:
    """Checks, injected faults and violations, keyed by property id and fault kind."""

    checks: Counter = field(default_factory=Counter)  # (property_id, fault) -> n
    violations: Counter = field(default_factory=Counter)  # (property_id, fault) -> n
    faults: Counter = field(default_factory=Counter)  # fault -> n injected
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record_check(self, number: int, active_faults: Iterable[str] = ()) -> None:
        """Property ``number`` was checked while ``active_faults`` (names) were in force."""
        pid = property_id(number)
        with self._lock:
            kinds = list(active_faults) or [NO_FAULT]
            for kind in kinds:
                self.checks[(pid, kind)] += 1

    def record_violation(self, number: int, active_faults: Iterable[str] = ()) -> None:
        """Property ``number`` was found violated."""
        pid = property_id(number)
        with self._lock:
            for kind in list(active_faults) or [NO_FAULT]:
                self.violations[(pid, kind)] += 1

    def record_fault(self, kind: str) -> None:
        """A fault of ``kind`` was injected."""
        with self._lock:
            self.faults[kind] += 1

    def to_json(self) -> dict[str, Any]:
        """Serializable form (also what xdist workers send to the controller)."""
        return {
            "checks": [[p, f, n] for (p, f), n in sorted(self.checks.items())],
            "violations": [[p, f, n] for (p, f), n in sorted(self.violations.items())],
            "faults": dict(sorted(self.faults.items())),
        }

    def merge_json(self, data: dict[str, Any]) -> None:
        """Add a worker's :meth:`to_json` output into this object."""
        with self._lock:
            for p, f, n in data.get("checks", []):
                self.checks[(p, f)] += n
            for p, f, n in data.get("violations", []):
                self.violations[(p, f)] += n
            for kind, n in data.get("faults", {}).items():
                self.faults[kind] += n

    def reset(self) -> None:
        with self._lock:
            self.checks.clear()
            self.violations.clear()
            self.faults.clear()


#: The process-wide collector the plugin reports from.
STATS = Stats()


def count_injection(event: FaultEvent) -> None:
    """The stats' subscription to the fault lifecycle: an injected fault is counted under its kind in the
    stats its maker chose (``make_fault(..., counted_in=STATS)``); faults made without one are not counted."""
    if event.action == "injected" and event.fault.counted_in is not None:
        event.fault.counted_in.record_fault(event.kind)


subscribe(count_injection)


def record_check(number: int, active_faults: Iterable[str] = ()) -> None:
    """Shortcut for ``STATS.record_check``."""
    STATS.record_check(number, active_faults)


def record_violation(number: int, active_faults: Iterable[str] = ()) -> None:
    """Shortcut for ``STATS.record_violation``."""
    STATS.record_violation(number, active_faults)


def record_fault(kind: str) -> None:
    """Shortcut for ``STATS.record_fault``."""
    STATS.record_fault(kind)
