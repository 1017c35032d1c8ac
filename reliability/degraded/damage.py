"""The one rule for the writes the runtime makes on its own behalf: none into a database seen damaged.

Example::

    reason = db.write_gate.refusal()   # None: writes may go in; else why they wait
    if reason is None:
        db.audit.reconcile()

The audit log's fallback file and the durable write queue hold entries and writes that are safe
where they are. Moving them into a file the runtime has *seen damaged* (a statement failed with
``corrupt``/``notadb``, or an integrity check failed) is a loss waiting to happen: the damaged file's
intact tables still take writes, the fallback or queue entry is then removed, and a recovery that
restores a backup drops the file with them (all of them when the redo journal is off or lost).
So every path that moves or adds such writes asks one :class:`DamageGate` first: the audit log's
``record``, ``reconcile`` and ``reanchor``, a command's write (``db.commands.run``, ``admin.set_flag``,
the CLI and scenario steps all end there) and the replay of the write queue (commands registered or
not). While the gate refuses, entries stay in the fallback file and writes in the queue.

What is "seen damaged" is the runtime's one verdict on the file, ``monitor.integrity_ok is False``:
set by a corruption error (durability's corruption watch) or a failed integrity check, cleared by a
recovery that installed a file or quarantined the damaged one, or by a clean integrity result. The gate
keeps no flag of its own, so health ("marked corrupt") and the gate never disagree. While the verdict
stands, the gate runs the runtime's integrity check when asked, one thread at a time, at most once per
``recheck_interval`` and never more than a tenth of the time (a check reads the whole file: a big one is
checked less often): a clean result clears the verdict (and with ``auto_recover`` a failed one starts
recovery, as any failed check does).

The verdict is shared by every manager on the file, in every process (the usual deployment is several
web workers, one manager each): whoever reaches it writes the marker ``<db>.damaged`` and whoever clears it
removes it (:mod:`reliability.damage_mark`, :mod:`reliability.durability.verdict`). The gate refuses while
either says damaged: its own process's verdict, or the marker (one ``lstat``, only when the runtime is about
to write on its own behalf, never per statement). A marker found by a manager that did not see the damage
itself makes its gate run the same check: a failed one makes the verdict its own, a clean one removes the
marker (a process that crashed with its marker there does not hold the writes back for ever).
A lock or a one-off I/O error met by that check is no result either way (the check raises instead of
reporting, see :func:`reliability.health.check_integrity`): the verdict stands, the marker stays and
nothing is written. A transient error is never a verdict of damage: only ``integrity_ok`` and the marker
are read, which busy and locked errors never set or write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import DatabaseError, ErrorKind

log = logging.getLogger("reliability.degraded")


class Verdict(Protocol):
    """Where the runtime keeps its verdict on the file (:class:`~reliability.health.HealthMonitor`)."""

    #: False once the file was seen damaged, until a recovery (None) or a clean check (True).
    integrity_ok: bool | None
    #: What was found, for the message.
    integrity_problems: list[str]


class SharedVerdict(Protocol):
    """The verdict other processes reached on the file (:class:`~reliability.damage_mark.DamageMarker`)."""

    def present(self) -> bool:
        """True while the file is marked damaged (cheap: no content read)."""

    def read(self) -> Any:
        """The mark (``describe()`` says who marked it, when and why), or None."""


class DamageGate:
    """Says whether the runtime may write into its database on its own behalf (see the module docstring).

    :param verdict: the runtime's verdict on the file (``db.monitor``).
    :param check: the runtime's integrity check (``durability.check_integrity``, called with ``full``): it
        updates ``verdict``
        and raises :class:`~reliability.errors.DatabaseError` when a lock keeps it from a result.
    :param recheck_interval: seconds between two checks while the verdict stands (a check reads the
        whole file; 0 checks at every question).
    :param clock: monotonic seconds (a fake one in tests).
    :param shared: the verdict of every manager on the file (the marker ``<db>.damaged``); None: this
        process's verdict only.
    """

    def __init__(self, verdict: Verdict, check: Callable[..., Any], *, recheck_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, shared: SharedVerdict | None = None) -> None:
        self.verdict = verdict
        self.shared = shared
        self.check = check
        self.recheck_interval = recheck_interval
        self.clock = clock
        self._next_check = float("-inf")
        self._checking = threading.Lock()

    @property
    def seen_damaged(self) -> bool:
        """True while the runtime's verdict, here or in another process, says the file is damaged (no check
        is run; the marker is looked for, not read)."""
        return self.verdict.integrity_ok is False or (self.shared is not None and self.shared.present())

    def refusal(self) -> str | None:
        """None when writes may go into the database; else why they must wait (they stay where they are)."""
        if not self.seen_damaged:
            return None
        if self.clock() < self._next_check:
            return self._reason("not checked again yet")
        if not self._checking.acquire(blocking=False):
            return self._reason("another thread is checking it")
        try:
            problem = self._check()
        finally:
            self._checking.release()
        if not self.seen_damaged:  # a clean result, or the recovery a failed one started (auto_recover)
            log.info("the database passes its integrity check again: writes held back may go in")
            return None
        return self._reason(problem or "the integrity check still fails")

    def look(self) -> None:
        """Run the integrity check now, whatever the verdict: for a runtime that starts, writes once and
        exits (the CLI), which has met nothing of the file yet. A lock keeps the verdict as it was."""
        with self._checking:
            problem = self._check()
        if problem is not None:
            log.info("the integrity check before a write could not run now (%s)", problem)

    def _check(self) -> str | None:
        """Run the check (it updates the verdict); why it gave no result, or None when it did."""
        start = self.clock()
        try:
            # The full check while a verdict stands: a clean quick_check clears none (see verdict.seen_sound).
            self.check(full=self.seen_damaged)
        except DatabaseError as err:  # a lock or a one-off I/O error outlasted the policy: no result either way
            self._next_check = self.clock() + self.recheck_interval
            return f"the check could not run now: {err.kind}"
        self._next_check = self.clock() + max(self.recheck_interval, 9 * (self.clock() - start))
        return None

    def ensure_writable(self, what: str) -> None:
        """Raise :class:`~reliability.errors.DatabaseError` (``corrupt``) naming ``what`` when :meth:`refusal` says no.

        Callers that keep what they would write where it is on any database error use this form.
        """
        reason = self.refusal()
        if reason is not None:
            raise DatabaseError(ErrorKind.CORRUPT, f"{what} not written: {reason}")

    def _reason(self, state: str) -> str:
        if self.verdict.integrity_ok is False:
            problems = "; ".join(self.verdict.integrity_problems[:2]) or "no detail"
            seen = f"the database was seen damaged ({problems})"
        else:
            mark = self.shared.read() if self.shared is not None else None
            seen = (f"the database was {mark.describe()}" if mark is not None
                    else "the database was marked damaged by another process")
        return f"{seen} and no recovery or clean integrity check has cleared it since ({state})"
