"""The durable write queue: writes accepted while the database is unavailable, kept until replayed.

A JSON-lines file of ``put``/``done``/``failed`` events; a write is appended and fsynced *before*
its caller hears "queued". The queue knows nothing of the database: what replays it and how each
write is made exactly-once is :class:`~reliability.degraded.commands.CommandRegistry`'s business.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import files
from ..files import fsync_dir

log = logging.getLogger("reliability.degraded")


class QueueFullError(Exception):
    """The write queue holds ``write_queue_max`` entries already; the write was not accepted."""


@dataclass(frozen=True)
class QueuedWrite:
    """One write waiting in the queue."""

    key: str
    seq: int
    command: str
    args: list[Any]
    kwargs: dict[str, Any]
    queued_at: float
    #: For an admin command: the authorization decided when the write was accepted
    #: (``{"actor": ..., "mac": ...}``, the MAC keyed with the audit key), kept for replay.
    auth: dict[str, str] | None = None


@dataclass(frozen=True)
class ReplayReport:
    """What a replay of the queue did (:meth:`~reliability.degraded.commands.CommandRegistry.replay`)."""

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
            key: str | None = None, auth: dict[str, str] | None = None) -> QueuedWrite:
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
            entry = QueuedWrite(key, self._seq + 1, command, list(args), dict(kwargs or {}), time.time(), auth)
            record = {"op": "put", "key": key, "seq": entry.seq, "command": command,
                      "args": entry.args, "kwargs": entry.kwargs, "queued_at": entry.queued_at}
            if auth is not None:
                record["auth"] = auth
            try:
                line = json.dumps(record, ensure_ascii=False, allow_nan=False)
                line.encode("utf-8")  # a lone surrogate would fail later, when the line is written
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
            lines = [json.dumps({"op": "failed", "key": key, "reason": reason}, ensure_ascii=False) + "\n"
                     for key, reason in self._failed.items()]
            files.write_atomic(self.path, "".join(lines).encode("utf-8"), what="write queue (write_queue_path)")
            return True

    def _append(self, line: str, *, sync: bool = True) -> None:
        created = not os.path.lexists(self.path)
        if created:
            self.path.parent.mkdir(mode=files.DIR_MODE, parents=True, exist_ok=True)
        fd = files.open_private(self.path, what="write queue (write_queue_path)")
        try:
            os.write(fd, (line + "\n").encode("utf-8"))
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)

    def _load(self) -> None:
        data = files.read_private(self.path, what="write queue (write_queue_path)")
        if data is None:  # no queue file yet: the normal first start
            return
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning("write queue %s ends with a torn entry (%d bytes); ignoring it", self.path, len(data) - end)
            fd = files.open_private(self.path, os.O_WRONLY, what="write queue (write_queue_path)")
            try:
                os.ftruncate(fd, end)
                os.fsync(fd)
            finally:
                os.close(fd)
        for n, raw in enumerate(data[:end].splitlines(), 1):
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
                op, key = event["op"], event["key"]
                if op == "put":
                    auth = event.get("auth")
                    entry = QueuedWrite(key, int(event["seq"]), event["command"], list(event["args"]),
                                        dict(event["kwargs"]), float(event["queued_at"]),
                                        dict(auth) if isinstance(auth, dict) else None)
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


