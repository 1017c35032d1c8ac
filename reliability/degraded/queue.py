"""The durable write queue: writes accepted while the database is unavailable, kept until replayed.

A JSON-lines file of ``put``/``done``/``failed`` events; a write is appended and fsynced *before*
its caller hears "queued". The queue knows nothing of the database: what replays it and how each
write is made exactly-once is :class:`~reliability.degraded.commands.CommandRegistry`'s business.

Several processes may share one queue file (every manager of a database uses ``<db>.queue.jsonl`` by
default: the workers of one application, and the ``reliability`` command line beside them). Each
change to the file is made under an exclusive ``flock`` on it, after reading what the others appended
since, so a compaction never rewrites away a write another process queued (before this, a running
application's replay emptied the file under the command line's queued ``flags set``: acknowledged with
exit 5, then lost without a word).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: one process per queue file
    fcntl = None  # type: ignore[assignment]

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
    #: Which queue accepted it (:attr:`WriteQueue.origin`): this runtime's own writes, or another process's
    #: (another worker, the command line) or an earlier run's. None in files written before it was recorded.
    origin: str | None = None


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
        #: the file read so far: its (device, inode) and how many bytes of it
        self._ident: tuple[int, int] | None = None
        self._offset = self._lines = 0
        #: why the file could not be read when :meth:`refresh_if_changed` last tried (logged once), else None
        self._unreadable: str | None = None
        #: this queue's id in the file's ``put`` records: the writes it accepted itself
        self.origin = uuid.uuid4().hex
        self.refresh()

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
        key = key or uuid.uuid4().hex
        record: dict[str, Any] = {"op": "put", "key": key, "seq": 0, "command": command, "args": list(args),
                                  "kwargs": dict(kwargs or {}), "queued_at": time.time(), "origin": self.origin}
        if auth is not None:
            record["auth"] = auth
        try:  # before the file is touched: a write that cannot be stored leaves no trace
            json.dumps(record, ensure_ascii=False, allow_nan=False).encode("utf-8")  # (a lone surrogate fails here)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the arguments of command {command!r} cannot be queued: {exc}") from None
        with self._exclusive(create=True) as fd:
            if key in self._pending:
                return self._pending[key]  # the same write offered twice is queued once
            if len(self._pending) >= self.max_entries:
                raise QueueFullError(
                    f"the write queue {self.path} is full ({self.max_entries} writes waiting, "
                    f"RELIABILITY_WRITE_QUEUE_MAX); the write was not accepted")
            record["seq"] = self._seq + 1  # under the lock: after every other process's last one
            entry = QueuedWrite(key, record["seq"], command, record["args"], record["kwargs"], record["queued_at"],
                                auth, self.origin)
            line = json.dumps(record, ensure_ascii=False, allow_nan=False)
            self._append(fd, line)
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
        with self._exclusive(create=True) as fd:
            self._append(fd, json.dumps({"op": "done", "key": key}), sync=False)
            self._pending.pop(key, None)

    def mark_failed(self, key: str, reason: str) -> None:
        """Record durably that the database refused ``key`` for good (it will not be replayed)."""
        with self._exclusive(create=True) as fd:
            self._append(fd, json.dumps({"op": "failed", "key": key, "reason": reason}, ensure_ascii=False))
            self._pending.pop(key, None)
            self._failed[key] = reason

    def compact(self) -> bool:
        """Rewrite the file when nothing is waiting (atomic replace), keeping only failed writes' records.

        "Nothing" includes what other processes appended: the file is read to its end under the lock first.
        """
        with self._exclusive(create=False) as fd:
            if fd is None or self._pending:
                return False
            data = "".join(json.dumps({"op": "failed", "key": key, "reason": reason}, ensure_ascii=False) + "\n"
                           for key, reason in self._failed.items()).encode("utf-8")
            files.write_atomic(self.path, data, what="write queue (write_queue_path)")
            st = os.stat(self.path, follow_symlinks=False)
            # (Others wait on the old file's lock; each finds it replaced and locks this one instead.)
            self._ident, self._offset, self._lines = (st.st_dev, st.st_ino), len(data), len(self._failed)
            return True

    def refresh(self) -> None:
        """Read what other processes appended to the file since this queue last looked (a replay calls it
        first, so their writes are replayed too). Changes nothing but a torn last line (see :meth:`_catch_up`)."""
        with self._exclusive(create=False):
            pass

    def refresh_if_changed(self) -> bool:
        """Catch up with the file when another process changed it since this queue last read it; True when it
        was. One ``stat`` when nothing changed (a direct write asks this every time: no lock, no read then).

        "Changed": another file at the path (compacted elsewhere, removed) or another length than read so far.

        A path that cannot be read (e.g. a link planted there) is logged once per episode: once while it stays
        unreadable, and again when it turns unreadable after this queue found it readable (or absent) between.
        """
        if self._ident is None and not os.access(self.path, os.F_OK, follow_symlinks=False):
            self._unreadable = None  # (nothing there to read: an unreadable episode, if any, is over)
            return False  # (no file before, none now: the common case, answered without an exception)
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:  # dbfault: no fault (removed since we read it: read anew below)
            pass
        except OSError:  # dbfault: no fault (an unusable path: put() and replay() report it, a write goes on)
            return False
        else:
            if (st.st_dev, st.st_ino) == self._ident and st.st_size == self._offset:
                self._unreadable = None  # (the file read so far is back: an unreadable episode is over)
                return False
        try:
            self.refresh()
        except OSError as exc:  # dbfault: no fault (e.g. a link planted at the path: refused, reported once)
            if self._unreadable != str(exc):
                log.error("write queue %s cannot be read: %s", self.path, exc)
            self._unreadable = str(exc)
            return False
        self._unreadable = None
        return True

    @contextlib.contextmanager
    def _exclusive(self, *, create: bool) -> Iterator[int | None]:
        """Hold this process's lock and an exclusive ``flock`` on the queue file, caught up with its content;
        yields the descriptor (opened for appending), or None when the file does not exist and ``create`` is
        false. A file replaced while we waited (another process compacted it) is locked anew."""
        with self._lock:
            while True:
                created = create and not os.path.lexists(self.path)
                if created:
                    self.path.parent.mkdir(mode=files.DIR_MODE, parents=True, exist_ok=True)
                writable = True
                try:
                    fd = files.open_private(self.path, os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0),
                                            what="write queue (write_queue_path)")
                except FileNotFoundError:  # dbfault: no fault (no queue file yet: nothing to read)
                    self._ident, self._offset, self._lines = None, 0, 0
                    yield None
                    return
                except OSError as exc:  # dbfault: no fault (a read-only file or mount: it can still be read)
                    if create or exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                        raise
                    fd = files.open_private(self.path, os.O_RDONLY, what="write queue (write_queue_path)")
                    writable = False
                if created:
                    fsync_dir(self.path.parent)
                try:
                    if fcntl is not None:
                        fcntl.flock(fd, fcntl.LOCK_EX if writable else fcntl.LOCK_SH)
                    held = os.fstat(fd)
                    try:
                        now = os.stat(self.path, follow_symlinks=False)
                    except FileNotFoundError:  # dbfault: no fault (moved away while we waited)
                        now = None
                    if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                        self._catch_up(fd, held, cut_torn=writable)
                        yield fd if writable else None
                        return
                finally:
                    os.close(fd)  # (closing drops the flock)

    def _append(self, fd: int | None, line: str, *, sync: bool = True) -> None:
        if fd is None:  # (only when the file could not be opened for writing, which raised already)
            raise OSError(f"write queue {self.path} is not open for writing")
        data = (line + "\n").encode("utf-8")
        files.write_all(fd, data)
        if sync:
            os.fsync(fd)
        self._offset += len(data)
        self._lines += 1  # (a damaged line another process appends later is named by its number in the file)

    def _catch_up(self, fd: int, held: os.stat_result, *, cut_torn: bool = True) -> None:
        """Apply the events written since :attr:`_offset` (all of them when the file is another one now).

        Under the exclusive lock every writer has finished its line, so a last line without its newline is
        a crash's torn append: it is cut off (the write it held was never acknowledged); read-only, it is
        only left unread."""
        ident = (held.st_dev, held.st_ino)
        if ident != self._ident or held.st_size < self._offset:  # another file, or cut shorter by hand: from the top
            self._ident, self._offset, self._lines = ident, 0, 0
            self._pending, self._failed = {}, {}
        data = b""
        if held.st_size > self._offset:
            os.lseek(fd, self._offset, os.SEEK_SET)  # (appends ignore the position: O_APPEND)
            data = files.read_to_end(fd)
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning("write queue %s ends with a torn entry (%d bytes); ignoring it", self.path, len(data) - end)
            if cut_torn:
                os.ftruncate(fd, self._offset + end)
                os.fsync(fd)
        self._apply_events(data[:end])
        self._offset += end

    def _apply_events(self, data: bytes) -> None:
        added = False
        for raw in data.splitlines():
            self._lines += 1
            n = self._lines
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
                op, key = event["op"], event["key"]
                if op == "put":
                    auth = event.get("auth")
                    origin = event.get("origin")
                    entry = QueuedWrite(key, int(event["seq"]), event["command"], list(event["args"]),
                                        dict(event["kwargs"]), float(event["queued_at"]),
                                        dict(auth) if isinstance(auth, dict) else None,
                                        origin if isinstance(origin, str) else None)
                    self._pending[key] = entry
                    self._seq = max(self._seq, entry.seq)
                    added = True
                elif op == "done":
                    self._pending.pop(key, None)
                elif op == "failed":
                    self._pending.pop(key, None)
                    self._failed[key] = str(event.get("reason", ""))
            except (ValueError, KeyError, TypeError) as exc:  # dbfault: no fault (line garbled outside the runtime)
                log.error("write queue %s line %d is unreadable (%s); skipping it", self.path, n, exc)
        if added:
            self._pending = dict(sorted(self._pending.items(), key=lambda kv: kv[1].seq))
