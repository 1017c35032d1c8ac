"""Graceful degradation: commands keep working while the database is unavailable; writes are queued.

Example::

    db.commands.register("ping", Needs.NONE, lambda db: "pong")
    db.commands.register("count", Needs.READ, lambda db: db.fetch_one("SELECT count(*) FROM t")[0])
    db.commands.register("add", Needs.WRITE, lambda db, x: db.execute("INSERT INTO t VALUES (?)", (x,)))

    result = db.commands.run("add", 42)
    result.status     # "ok", or "queued" while the disk is full / the file is locked, read-only, gone
    result.message    # what to tell the user

A write command runs in one transaction. When it fails because the database is
unavailable it goes to the :class:`WriteQueue`: a JSON-lines file appended and fsynced
*before* the caller hears "queued". When health returns, queued writes are replayed in
order, each in a transaction that also records its idempotency key in
``reliability_applied_writes`` — so a replay interrupted by a crash resumes without
running any write twice.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import KIND_INFO, DatabaseError, ErrorKind, RecoveryAction
from .redo import fsync_dir

if TYPE_CHECKING:
    from .manager import DatabaseManager

log = logging.getLogger("reliability.degradation")

APPLIED_TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS reliability_applied_writes ("
    "key TEXT PRIMARY KEY, command TEXT NOT NULL, applied_at REAL NOT NULL)"
)


class Needs(str, enum.Enum):
    """What a command needs from the database."""

    NONE = "none"
    READ = "read"
    WRITE = "write"

    def __str__(self) -> str:
        return self.value


class QueueFullError(Exception):
    """The write queue holds ``write_queue_max`` entries already; the write was not accepted."""


@dataclass(frozen=True)
class Command:
    """A registered command: ``fn(db, *args, **kwargs)`` and what it needs from the database."""

    name: str
    needs: Needs
    fn: Callable[..., Any]
    help: str = ""


@dataclass(frozen=True)
class CommandResult:
    """The outcome of :meth:`CommandRegistry.run`.

    ``status`` is ``ok``, ``queued`` (accepted, saved later), ``unavailable`` (a read could not
    be served), ``rejected`` (not accepted: unknown command, bad input, queue full, refused)
    or ``error`` (the database refused it, e.g. a constraint).
    """

    status: str
    message: str
    value: Any = None
    queue_key: str | None = None
    fault: str | None = None
    pending: int = 0

    @property
    def ok(self) -> bool:
        """True when the command ran now."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"status": self.status, "message": self.message, "value": self.value,
                "queue_key": self.queue_key, "fault": self.fault, "pending": self.pending}


@dataclass(frozen=True)
class QueuedWrite:
    """One write waiting in the queue."""

    key: str
    seq: int
    command: str
    args: list[Any]
    kwargs: dict[str, Any]
    queued_at: float


@dataclass(frozen=True)
class ReplayReport:
    """What :meth:`CommandRegistry.replay` did."""

    applied: int
    skipped: int
    failed: int
    remaining: int
    error: str | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"applied": self.applied, "skipped": self.skipped, "failed": self.failed,
                "remaining": self.remaining, "error": self.error, "failures": self.failures}


class WriteQueue:
    """A durable, bounded FIFO of writes (a JSON-lines file of ``put``/``done``/``failed`` events).

    ``put`` and ``failed`` events are appended and fsynced before the method returns (``done``
    events are not: see :meth:`mark_done`). A torn last line
    (a crash mid-append) is ignored and cut off on load.

    :param path: the queue file.
    :param max_entries: the most writes that may wait at once (0 means none may).
    """

    def __init__(self, path: str | os.PathLike[str], max_entries: int = 10000) -> None:
        self.path = Path(path)
        self.max_entries = max_entries
        self._lock = threading.RLock()
        self._pending: dict[str, QueuedWrite] = {}
        self._failed: dict[str, str] = {}
        self._seq = 0
        self._load()

    @classmethod
    def from_config(cls, config: Any) -> WriteQueue:
        """The queue at ``config.write_queue_file`` bounded by ``config.write_queue_max``."""
        return cls(config.write_queue_file, config.write_queue_max)

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def failed(self) -> dict[str, str]:
        """Keys of writes that the database refused on replay, with the reason (kept for inspection)."""
        return dict(self._failed)

    def pending(self) -> list[QueuedWrite]:
        """The waiting writes, oldest first."""
        with self._lock:
            return list(self._pending.values())

    def put(self, command: str, args: list[Any] | tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None,
            key: str | None = None) -> QueuedWrite:
        """Append a write durably and return it.

        :raises QueueFullError: when ``max_entries`` writes are already waiting.
        :raises ValueError: when the arguments cannot be stored as JSON.
        """
        with self._lock:
            key = key or uuid.uuid4().hex
            if key in self._pending:
                return self._pending[key]  # the same write offered twice is queued once
            if len(self._pending) >= self.max_entries:
                raise QueueFullError(
                    f"the write queue {self.path} is full ({self.max_entries} writes waiting, "
                    f"RELIABILITY_WRITE_QUEUE_MAX); the write was not accepted")
            entry = QueuedWrite(key, self._seq + 1, command, list(args), dict(kwargs or {}), time.time())
            try:
                line = json.dumps({"op": "put", "key": key, "seq": entry.seq, "command": command,
                                   "args": entry.args, "kwargs": entry.kwargs, "queued_at": entry.queued_at},
                                  ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"the arguments of command {command!r} cannot be queued: {exc}") from None
            self._append(line)
            self._seq = entry.seq
            self._pending[key] = entry
            return entry

    def mark_done(self, key: str) -> None:
        """Record that ``key`` was applied.

        Not fsynced: what makes replay exactly-once is the key committed in the database's
        ``reliability_applied_writes`` in the same transaction as the write. A ``done`` line lost
        to a crash only means the next replay finds the key there and skips it; an fsync here
        would halve replay throughput for nothing (benchmarks/backup_recovery.py).
        """
        with self._lock:
            self._append(json.dumps({"op": "done", "key": key}), sync=False)
            self._pending.pop(key, None)

    def mark_failed(self, key: str, reason: str) -> None:
        """Record durably that the database refused ``key`` for good (it will not be replayed)."""
        with self._lock:
            self._append(json.dumps({"op": "failed", "key": key, "reason": reason}, ensure_ascii=False))
            self._pending.pop(key, None)
            self._failed[key] = reason

    def compact(self) -> bool:
        """Rewrite the file when nothing is waiting (atomic replace), keeping only failed writes' records."""
        with self._lock:
            if self._pending or not self.path.exists():
                return False
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "wb") as fh:
                for key, reason in self._failed.items():
                    line = json.dumps({"op": "failed", "key": key, "reason": reason}, ensure_ascii=False)
                    fh.write((line + "\n").encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)
            return True

    def _append(self, line: str, *, sync: bool = True) -> None:
        created = not self.path.exists()
        if created:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode("utf-8"))
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:  # dbfault: no fault (no queue file yet: the normal first start)
            return
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning("write queue %s ends with a torn entry (%d bytes); ignoring it", self.path, len(data) - end)
            with open(self.path, "r+b") as fh:
                fh.truncate(end)
                os.fsync(fh.fileno())
        for n, raw in enumerate(data[:end].splitlines(), 1):
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
                op, key = event["op"], event["key"]
                if op == "put":
                    entry = QueuedWrite(key, int(event["seq"]), event["command"], list(event["args"]),
                                        dict(event["kwargs"]), float(event["queued_at"]))
                    self._pending[key] = entry
                    self._seq = max(self._seq, entry.seq)
                elif op == "done":
                    self._pending.pop(key, None)
                elif op == "failed":
                    self._pending.pop(key, None)
                    self._failed[key] = str(event.get("reason", ""))
            except (ValueError, KeyError, TypeError) as exc:  # dbfault: no fault (line garbled outside the runtime)
                log.error("write queue %s line %d is unreadable (%s); skipping it", self.path, n, exc)
        self._pending = dict(sorted(self._pending.items(), key=lambda kv: kv[1].seq))


class CommandRegistry:
    """Commands of an application, run with graceful degradation on one :class:`DatabaseManager`.

    :param db: the database manager.
    :param queue: the durable write queue (``db.queue``).
    :param recheck_interval: seconds between attempts to replay the backlog while degraded.
    """

    def __init__(self, db: DatabaseManager, queue: WriteQueue, *, recheck_interval: float = 1.0) -> None:
        self.db = db
        self.queue = queue
        self.recheck_interval = recheck_interval
        self._draining = False
        #: The fault that made the database unavailable, None while healthy.
        self.fault: ErrorKind | None = None
        #: Application-supplied permission check for admin commands: ``fn(actor, command) -> bool``.
        self.permission: Callable[[str, str], bool] | None = None
        #: Called after a queued write committed and before it is marked done (tests use it to crash there).
        self.on_applied: Callable[[QueuedWrite], None] | None = None
        #: Called before a non-empty backlog is replayed (the audit log reconciles its fallback here,
        #: so entries written during the outage precede those the replayed writes add).
        self.before_replay: list[Callable[[], object]] = []
        self._commands: dict[str, Command] = {}
        self._last_probe = float("-inf")
        self._replay_lock = threading.RLock()
        db.error_listeners.append(self._noticed)

    # -- registration --------------------------------------------------------------------------
    def register(self, name: str, needs: Needs | str, fn: Callable[..., Any], help: str = "") -> Command:
        """Register ``fn(db, *args, **kwargs)`` as command ``name`` (replacing an earlier one of that name)."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a command name must be a non-empty string, got {name!r}")
        cmd = Command(name, Needs(needs), fn, help)
        self._commands[name] = cmd
        return cmd

    def command(self, name: str, needs: Needs | str, help: str = "") -> Callable[[Callable[..., Any]], Any]:
        """Decorator form of :meth:`register`."""
        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.register(name, needs, fn, help or (fn.__doc__ or "").strip().split("\n")[0])
            return fn
        return decorate

    def get(self, name: str) -> Command | None:
        """The command called ``name``, if registered."""
        return self._commands.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._commands

    def names(self) -> list[str]:
        """Registered command names, sorted."""
        return sorted(self._commands)

    # -- running -------------------------------------------------------------------------------
    @property
    def degraded(self) -> bool:
        """True while a fault is known or writes are waiting."""
        return self.fault is not None or len(self.queue) > 0

    def run(self, name: str, *args: Any, idempotency_key: str | None = None, **kwargs: Any) -> CommandResult:
        """Run command ``name``; never raises for database faults (see :class:`CommandResult`)."""
        cmd = self._commands.get(name)
        if cmd is None:
            known = ", ".join(self.names()) or "none"
            return CommandResult("rejected", f"Unknown command {name!r}. Known commands: {known}.")
        if cmd.needs is Needs.NONE:
            return CommandResult("ok", "", cmd.fn(self.db, *args, **kwargs), pending=len(self.queue))
        if self.degraded:
            self.recover()
        if cmd.needs is Needs.READ:
            return self._read(cmd, args, kwargs)
        return self._write(cmd, args, kwargs, idempotency_key)

    def _read(self, cmd: Command, args: tuple[Any, ...], kwargs: dict[str, Any]) -> CommandResult:
        try:
            value = cmd.fn(self.db, *args, **kwargs)
        except DatabaseError as err:
            if err.action is RecoveryAction.RAISE:
                return CommandResult("error", err.user_message, fault=str(err.kind), pending=len(self.queue))
            self._degrade(err.kind)
            return CommandResult("unavailable", err.user_message, fault=str(err.kind), pending=len(self.queue))
        return CommandResult("ok", "", value, pending=len(self.queue))

    def _write(self, cmd: Command, args: tuple[Any, ...], kwargs: dict[str, Any], key: str | None) -> CommandResult:
        if len(self.queue) == 0:
            try:
                if key is None:
                    value = self.db.run_in_transaction(cmd.fn, self.db, *args, **kwargs)
                else:
                    entry = QueuedWrite(key, 0, cmd.name, list(args), dict(kwargs), time.time())
                    applied, value = self.db.run_in_transaction(self._apply, cmd, entry)
                    if not applied:
                        return CommandResult("ok", "This change was already saved.", queue_key=key)
                return CommandResult("ok", "", value)
            except DatabaseError as err:
                if err.action is RecoveryAction.RAISE:
                    return CommandResult("error", err.user_message, fault=str(err.kind))
                self._degrade(err.kind)
        # Writes already waiting go first: a new one must not overtake them.
        return self._enqueue(cmd, args, kwargs, key)

    def _enqueue(self, cmd: Command, args: tuple[Any, ...], kwargs: dict[str, Any], key: str | None) -> CommandResult:
        fault = self.fault or ErrorKind.UNAVAILABLE
        try:
            entry = self.queue.put(cmd.name, args, kwargs, key)
        except QueueFullError as exc:
            log.error("%s", exc)
            return CommandResult("rejected", "The database is unavailable and too many changes are already "
                                 "waiting, so this change was NOT saved. Please try again later.",
                                 fault=str(fault), pending=len(self.queue))
        except ValueError as exc:
            return CommandResult("rejected", str(exc), fault=str(fault), pending=len(self.queue))
        n = len(self.queue)
        self.db._backlog = self._drain_first
        return CommandResult(
            "queued",
            f"{KIND_INFO[fault].user_message} Your change was accepted and will be saved automatically "
            f"when the database is available again ({n} change{'s' if n != 1 else ''} waiting).",
            queue_key=entry.key, fault=str(fault), pending=n)

    # -- degradation and recovery --------------------------------------------------------------
    def _noticed(self, err: DatabaseError) -> None:
        # Every error that reaches a caller passes here; only "the database is not usable" ones matter.
        if err.action is not RecoveryAction.RAISE:
            self._degrade(err.kind)

    def _degrade(self, kind: ErrorKind) -> None:
        if self.fault is None:
            log.warning("database unavailable (%s): serving what does not need it, queueing writes", kind)
        self.fault = kind
        self._last_probe = time.monotonic()

    def _drain_first(self) -> None:
        """Before a direct write (``db.execute`` …) while writes wait here: replay them first, so
        an earlier queued write cannot land after, and overwrite, a later direct one."""
        if self._draining:
            return  # the replay's own writes
        report = self.replay()
        if report.error is not None and len(self.queue):
            # The backlog could not be saved (its retries are spent): the direct write may not
            # overtake it, so it fails now with the same fault instead of retrying all over again.
            kind = self.fault or ErrorKind.UNAVAILABLE
            raise DatabaseError(kind, f"{len(self.queue)} queued write(s) must be saved first and the database "
                                      f"is still unavailable ({report.error})",
                                operation_id=self.db.new_operation_id())

    def recover(self, *, force: bool = False) -> ReplayReport | None:
        """Replay the backlog if the recheck interval has passed (or ``force``); None when not tried."""
        now = time.monotonic()
        if not force and now - self._last_probe < self.recheck_interval:
            return None
        self._last_probe = now
        return self.replay()

    def replay(self) -> ReplayReport:
        """Apply the queued writes in order, exactly once each; stop at the first unavailability."""
        with self._replay_lock:
            # While replaying, the replayed writes' own calls must not start another replay.
            draining, self._draining = self._draining, True
            try:
                return self._replay_locked()
            finally:
                self._draining = draining

    def _replay_locked(self) -> ReplayReport:
        applied = skipped = failed = 0
        failures: list[tuple[str, str]] = []
        error: str | None = None
        if len(self.queue):
            for hook in list(self.before_replay):
                hook()
        for entry in self.queue.pending():
            cmd = self._commands.get(entry.command)
            if cmd is None:
                error = f"command {entry.command!r} is not registered; replay stops until it is"
                log.error("queued write %s: %s", entry.key, error)
                break
            try:
                done, _ = self.db.run_in_transaction(self._apply, cmd, entry)
            except DatabaseError as err:
                if err.action is RecoveryAction.RAISE:
                    reason = f"{err.kind}: {err.detail}"
                    log.error("queued write %s (%s) refused by the database, set aside: %s",
                              entry.key, entry.command, reason)
                    self.queue.mark_failed(entry.key, reason)
                    failures.append((entry.key, reason))
                    failed += 1
                    continue
                self._degrade(err.kind)
                error = str(err.kind)
                break
            if self.on_applied is not None:
                self.on_applied(entry)
            self.queue.mark_done(entry.key)
            applied += done
            skipped += not done
        if error is None and len(self.queue) == 0:
            self.db._backlog = None
            self.fault = None
            self.queue.compact()
            if applied or skipped:
                log.info("write queue replayed: %d applied, %d already applied, %d failed",
                         applied, skipped, failed)
        return ReplayReport(applied, skipped, failed, len(self.queue), error, failures)

    def _apply(self, cmd: Command, entry: QueuedWrite) -> tuple[bool, Any]:
        db = self.db
        db.execute(APPLIED_TABLE_SQL)
        if db.fetch_one("SELECT 1 FROM reliability_applied_writes WHERE key = ?", (entry.key,)) is not None:
            return False, None
        value = cmd.fn(db, *entry.args, **entry.kwargs)
        db.execute("INSERT INTO reliability_applied_writes (key, command, applied_at) VALUES (?, ?, ?)",
                   (entry.key, entry.command, time.time()))
        return True, value

    def health_extra(self) -> tuple[dict[str, Any], list[str]]:
        """Health fields (the backlog) and reasons to report degraded."""
        n = len(self.queue)
        reasons = []
        if n:
            reasons.append(f"{n} write(s) queued while the database was unavailable")
        if self.queue.failed:
            reasons.append(f"{len(self.queue.failed)} queued write(s) were refused on replay")
        extra = {"write_queue": {"pending": n, "failed": len(self.queue.failed), "path": str(self.queue.path),
                                 "max": self.queue.max_entries},
                 "degraded_by": str(self.fault) if self.fault else None}
        return extra, reasons

