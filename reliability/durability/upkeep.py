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
from .backup import BackupError, BackupInfo, BackupTaker
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
        #: Every task ever added, also one whose interval is 0 (a reload may turn it on: :meth:`set_interval`).
        self._known: dict[str, Callable[[], Any]] = {n: fn for n, _, fn in tasks}
        #: Started by the runtime and not stopped since: a task turned on later starts the thread.
        self._wanted = False
        self._guard = threading.Lock()

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def add(self, name: str, interval: float, fn: Callable[[], Any]) -> None:
        """Schedule ``fn`` every ``interval`` seconds (0: not at all; a name already scheduled: no change)."""
        self._known.setdefault(name, fn)
        if not interval or interval <= 0 or any(n == name for n, _, _ in self.tasks):
            return
        self.tasks.append((name, float(interval), fn))
        self.runs.setdefault(name, 0)
        self._restart()

    def set_interval(self, name: str, interval: float) -> bool:
        """Run the task ``name`` every ``interval`` seconds from now on (0 turns it off); True when it changed.

        A configuration reload changes the schedule this way: a task turned on starts the thread (when the
        runtime started it), the last one turned off lets it end. Unknown names change nothing.
        """
        fn = self._known.get(name)
        current = next((i for n, i, _ in self.tasks if n == name), 0.0)
        interval = float(interval) if interval and interval > 0 else 0.0
        if fn is None or interval == current:
            return False
        self.tasks = [t for t in self.tasks if t[0] != name] + ([(name, interval, fn)] if interval else [])
        self.runs.setdefault(name, 0)
        self._restart()
        return True

    def _restart(self) -> None:
        # The loop reads its tasks when it starts. (From the maintenance thread itself, e.g. a task that
        # reloads the configuration, stop() does not join: the old loop ends after its task returns.)
        if self.running or self._wanted:
            self.stop(keep_wanted=True)
            self.start()

    def start(self) -> None:
        """Start the thread (no thread while there is nothing to run; a task added later starts it)."""
        with self._guard:
            self._wanted = True
            if not self.tasks or self.running:
                return
            self._stop = threading.Event()  # (a fresh event: an old loop still finishing keeps its own, set)
            self._thread = threading.Thread(target=self._loop, args=(self._stop,), name=self._name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0, *, keep_wanted: bool = False) -> None:
        """Ask the thread to stop and wait for it (a task in progress finishes first)."""
        with self._guard:
            self._wanted = self._wanted and keep_wanted
            self._stop.set()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _loop(self, stop: threading.Event) -> None:
        tasks = list(self.tasks)
        now = self.clock()
        due = {n: now + i for n, i, _ in tasks}
        while not stop.is_set():
            name = min(due, key=due.__getitem__)
            wait = due[name] - self.clock()
            if wait > 0 and stop.wait(wait):
                return
            interval, fn = next((i, f) for n, i, f in tasks if n == name)
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

    def backup(self) -> BackupInfo:
        """A backup (``db.backup()`` and the schedule's); a copy found damaged sends the source to the full
        integrity check: a bad copy may mean a bad source, and that check is the verdict (with ``auto_recover``,
        a recovery). Before, only the scheduled backup looked, and ``db.backup()`` refused a copy of a file whose
        index no longer matched its rows while the runtime went on calling the file sound (recovery_fuzz seed 906).
        """
        try:
            return self.backups.backup()
        except BackupError as exc:
            if exc.action is RecoveryAction.RESTORE:
                self.check_integrity(full=True)
            raise

    def scheduled_backup(self) -> None:
        """The scheduled backup (see :meth:`backup`)."""
        self.backup()

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
            verdict.seen_sound(parts, True, since=started, quick=not full)
        else:
            verdict.seen_damaged(parts, list(report.problems), f"a failed {report.kind} integrity check")
        if not report.ok:
            log.error("%s integrity check of %s failed: %s", report.kind, path, "; ".join(report.problems[:5]))
            if parts.config.auto_recover and not parts.closed():
                self.recover(f"{report.kind} integrity check failed")
        return report
