"""Scheduled upkeep: the maintenance thread, scheduled backups and integrity checks.

Every interval comes from the configuration (``backup_interval``, ``quick_check_interval``,
``integrity_check_interval``; 0 turns a task off). The integrity check is also the one place a
verdict on the file is made in maintenance: a lock or a one-off I/O error met by a check or a
backup is retried under the shared policy and, when it outlasts it, reported as "could not run",
never as damage (see :func:`reliability.health.check_integrity`). Only a real integrity result
marks the database corrupt and starts recovery.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import RecoveryAction
from ..health import IntegrityReport, check_integrity
from . import verdict
from .backup import BackupError, BackupTaker
from .parts import RuntimeParts, maintenance

log = logging.getLogger("reliability.recovery")
# The schedule's own records keep the logger name they always had.
_schedule_log = logging.getLogger("reliability.health")


class Scheduler:
    """Runs periodic tasks on one daemon thread until :meth:`stop`.

    Each task is ``(name, interval_seconds, fn)``; an interval of 0 disables it. A task that
    raises is logged and rescheduled, never kills the thread. The thread is a daemon and waits
    on a stop event, so it neither keeps the interpreter alive nor delays ``close()``.
    """

    def __init__(self, tasks: list[tuple[str, float, Callable[[], Any]]], *, name: str = "reliability-maintenance",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tasks = [(n, float(i), fn) for n, i, fn in tasks if i and i > 0]
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._name = name
        self.runs: dict[str, int] = {n: 0 for n, _, _ in self.tasks}

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def add(self, name: str, interval: float, fn: Callable[[], Any]) -> None:
        """Schedule ``fn`` every ``interval`` seconds (0: not at all; a name already scheduled: no change)."""
        if not interval or interval <= 0 or any(n == name for n, _, _ in self.tasks):
            return
        self.tasks.append((name, float(interval), fn))
        self.runs.setdefault(name, 0)
        if self.running:  # the loop reads its tasks when it starts
            self.stop()
            self.start()

    def start(self) -> None:
        """Start the thread (no-op when there is nothing to run)."""
        if not self.tasks or self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop and wait for it (a task in progress finishes first)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _loop(self) -> None:
        now = self.clock()
        due = {n: now + i for n, i, _ in self.tasks}
        while not self._stop.is_set():
            name = min(due, key=due.__getitem__)
            wait = due[name] - self.clock()
            if wait > 0 and self._stop.wait(wait):
                return
            interval, fn = next((i, f) for n, i, f in self.tasks if n == name)
            try:
                fn()
            except Exception:
                _schedule_log.exception("scheduled %s failed", name)
            self.runs[name] = self.runs.get(name, 0) + 1
            due[name] = self.clock() + interval


class Upkeep:
    """Integrity checks (on demand and scheduled) and scheduled backups.

    :param parts: the runtime's parts.
    :param scheduler: the maintenance schedule; this part adds the backup and check tasks.
    :param backups: takes the scheduled backups.
    :param recover: starts an automatic recovery for a reason (a check found damage, ``auto_recover``).
    """

    def __init__(self, parts: RuntimeParts, scheduler: Scheduler, backups: BackupTaker,
                 recover: Callable[[str], Any]) -> None:
        self.parts = parts
        self.scheduler = scheduler
        self.backups = backups
        self.recover = recover
        cfg = parts.config
        scheduler.add("backup", cfg.backup_interval, self.scheduled_backup)
        scheduler.add("quick_check", cfg.quick_check_interval, lambda: self.check_integrity(full=False))
        scheduler.add("integrity_check", cfg.integrity_check_interval, lambda: self.check_integrity(full=True))

    def scheduled_backup(self) -> None:
        """The scheduled backup; a copy found damaged sends the source to an integrity check."""
        try:
            self.backups.backup()
        except BackupError as exc:
            if exc.action is RecoveryAction.RESTORE:
                self.check_integrity(full=False)  # a bad copy may mean a bad source: find out
            raise

    @maintenance("check")
    def check_integrity(self, full: bool = False) -> IntegrityReport:
        """quick_check (integrity_check when ``full``) + foreign_key_check on a separate connection.

        A failed check marks the database corrupt in the health report and, with
        ``config.auto_recover``, starts recovery.
        """
        parts = self.parts
        path = parts.path
        if not os.path.exists(path):
            return IntegrityReport(False, [f"database file {path!r} does not exist"],
                                   "full" if full else "quick", 0.0)
        timeout = parts.config.busy_timeout_ms / 1000.0
        started = verdict.now()
        # A lock outlasting the retry policy raises (logged by the maintenance wrapper): integrity_ok stays.
        report = check_integrity(path, full=full, timeout=timeout, module=parts.connections.module,
                                 policy=parts.policy)
        m = parts.monitor
        m.last_integrity_check_at = time.time()
        if report.ok:  # sound, here and for every other process (a mark written since it began stays)
            verdict.seen_sound(parts, True, since=started)
        else:
            verdict.seen_damaged(parts, list(report.problems), f"a failed {report.kind} integrity check")
        if not report.ok:
            log.error("%s integrity check of %s failed: %s", report.kind, path, "; ".join(report.problems[:5]))
            if parts.config.auto_recover and not parts.closed():
                self.recover(f"{report.kind} integrity check failed")
        return report
