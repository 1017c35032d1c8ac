"""A reliable, tamper-evident audit log.

Example::

    db.audit.record("alice", "flag.set", "beta", {"value": "on"})
    db.audit.entries(limit=20, actor="alice")      # newest first
    db.audit.verify().ok                           # False once a stored entry was altered

Each entry is written in a transaction through ``db.run_in_transaction`` (so the shared
retry policy governs it, every attempt logged). If the database stays unavailable the
entry goes to a fallback JSON-lines file (fsynced, mode 0600) and is reconciled into the
database, in order and exactly once (idempotent by entry id), when it is back.

Entries form a keyed hash chain: ``hash = HMAC(key, canonical JSON of [prev_hash, id, ts,
actor, action, target, details])``. The head is read and extended inside the
``BEGIN IMMEDIATE`` transaction, i.e. under SQLite's write lock, so concurrent writers
cannot fork the chain. Without the key, an altered or deleted entry cannot be re-chained.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DatabaseError, ErrorKind

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the thread lock still serializes one process
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .manager import DatabaseManager

log = logging.getLogger("reliability.audit")

GENESIS = "0" * 64
AUDIT_TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS reliability_audit ("
    "seq INTEGER PRIMARY KEY, entry_id TEXT NOT NULL UNIQUE, ts REAL NOT NULL, actor TEXT NOT NULL, "
    "action TEXT NOT NULL, target TEXT NOT NULL, details TEXT NOT NULL, prev_hash TEXT NOT NULL, "
    "hash TEXT NOT NULL)"
)
_COLUMNS = "seq, entry_id, ts, actor, action, target, details, prev_hash, hash"


@dataclass(frozen=True)
class AuditEntry:
    """One audit entry. ``seq``/``hash`` are set once stored; ``pending`` marks a not yet reconciled one."""

    entry_id: str
    ts: float
    actor: str
    action: str
    target: str
    details: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None
    hash: str | None = None
    pending: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"entry_id": self.entry_id, "ts": self.ts, "actor": self.actor, "action": self.action,
                "target": self.target, "details": self.details, "seq": self.seq, "hash": self.hash,
                "pending": self.pending}


@dataclass(frozen=True)
class VerifyReport:
    """The result of :meth:`AuditLogger.verify`: the first broken link, if any."""

    ok: bool
    checked: int
    first_broken_seq: int | None = None
    first_broken_id: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": self.ok, "checked": self.checked, "first_broken_seq": self.first_broken_seq,
                "first_broken_id": self.first_broken_id, "reason": self.reason}


def _canonical_details(details: dict[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def chain_hash(key: bytes, prev: str, entry_id: str, ts: float, actor: str, action: str, target: str,
               details_json: str) -> str:
    """The HMAC-SHA256 link of one entry to the previous one."""
    message = json.dumps([prev, entry_id, ts, actor, action, target, details_json], ensure_ascii=False)
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


class AuditLogger:
    """Writes and reads the audit log of one :class:`DatabaseManager` (``db.audit``).

    :param db: the database manager.
    :param key: the HMAC key; default ``config.audit_hmac_key`` (read at each write, so a hot
        reload applies). With no key configured the chain still detects accidental damage,
        but not a deliberate rewrite: configure ``RELIABILITY_AUDIT_HMAC_KEY``.
    :param fallback_path: default ``config.audit_fallback_file``.
    """

    def __init__(self, db: DatabaseManager, *, key: str | bytes | None = None,
                 fallback_path: str | os.PathLike[str] | None = None) -> None:
        self.db = db
        self._key = key.encode() if isinstance(key, str) else key
        self._fallback = Path(fallback_path) if fallback_path else None
        self._lock = threading.RLock()
        self._warned_no_key = False

    @property
    def key(self) -> bytes:
        """The HMAC key in force."""
        if self._key is not None:
            return self._key
        configured = self.db.config.audit_hmac_key
        if not configured and not self._warned_no_key:
            self._warned_no_key = True
            log.warning("RELIABILITY_AUDIT_HMAC_KEY is not set: the audit chain detects damage but not forgery")
        return configured.encode("utf-8")

    @property
    def fallback_path(self) -> Path:
        """The fallback JSON-lines file."""
        return self._fallback or self.db.config.audit_fallback_file

    # -- writing -------------------------------------------------------------------------------
    def record(self, actor: str, action: str, target: str = "", details: dict[str, Any] | None = None) -> AuditEntry:
        """Store one entry: in the database (with retries) or, if it stays unavailable, the fallback file.

        Returns the entry; ``pending`` is True when it went to the fallback file. Never loses
        the entry for a database fault; raises ``ValueError`` for invalid input.
        """
        entry = self.new_entry(actor, action, target, details)
        with self._lock:
            if self._fallback_files():
                try:
                    self.reconcile()
                except DatabaseError as err:
                    log.warning("audit fallback not reconciled yet (%s); appending to it to keep order", err.kind)
                    return self._to_fallback(entry)
            try:
                stored = self.db.run_in_transaction(self.append, entry)
            except DatabaseError as err:
                log.error("audit entry %s could not be stored in the database (%s: %s); written to %s",
                          entry.entry_id, err.kind, err.detail, self.fallback_path)
                return self._to_fallback(entry)
            return stored

    @staticmethod
    def new_entry(actor: str, action: str, target: str = "", details: dict[str, Any] | None = None,
                  ) -> AuditEntry:
        """A validated entry with a fresh id and timestamp (not stored)."""
        problems = []
        for name, value in (("actor", actor), ("action", action)):
            if not isinstance(value, str) or not value.strip():
                problems.append(f"{name} must be a non-empty string, got {value!r}")
        if not isinstance(target, str):
            problems.append(f"target must be a string, got {type(target).__name__}")
        details = {} if details is None else details
        if not isinstance(details, dict):
            problems.append(f"details must be a dict, got {type(details).__name__}")
        else:
            try:
                _canonical_details(details)
            except (TypeError, ValueError) as exc:  # dbfault: no fault (caller's details not JSON-serializable)
                problems.append(f"details must be JSON-serializable: {exc}")
        if problems:
            raise ValueError("invalid audit entry: " + "; ".join(problems))
        return AuditEntry(uuid.uuid4().hex, time.time(), actor, action, target, dict(details))

    def append(self, entry: AuditEntry) -> AuditEntry:
        """Chain and insert ``entry`` inside the caller's transaction (idempotent by entry id).

        Use it to write an audit entry atomically with other changes::

            db.run_in_transaction(lambda: (db.execute(...), db.audit.append(db.audit.new_entry(...))))
        """
        return self._append(entry)[0]

    def _append(self, entry: AuditEntry) -> tuple[AuditEntry, bool]:
        db = self.db
        db.execute(AUDIT_TABLE_SQL)
        row = db.fetch_one(f"SELECT {_COLUMNS} FROM reliability_audit WHERE entry_id = ?", (entry.entry_id,))
        if row is not None:
            return _row_to_entry(row), False
        head = db.fetch_one("SELECT hash FROM reliability_audit ORDER BY seq DESC LIMIT 1")
        prev = head[0] if head else GENESIS
        details_json = _canonical_details(entry.details)
        digest = chain_hash(self.key, prev, entry.entry_id, entry.ts, entry.actor, entry.action, entry.target,
                            details_json)
        cur = db.execute(
            "INSERT INTO reliability_audit (entry_id, ts, actor, action, target, details, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (entry.entry_id, entry.ts, entry.actor, entry.action, entry.target, details_json, prev, digest))
        return AuditEntry(entry.entry_id, entry.ts, entry.actor, entry.action, entry.target, entry.details,
                          cur.lastrowid, digest), True

    # -- fallback ------------------------------------------------------------------------------
    def _reconciling_path(self) -> Path:
        return self.fallback_path.with_name(self.fallback_path.name + ".reconciling")

    def _fallback_files(self) -> list[Path]:
        return [p for p in (self._reconciling_path(), self.fallback_path) if p.exists() and p.stat().st_size]

    def _to_fallback(self, entry: AuditEntry) -> AuditEntry:
        line = json.dumps(entry.to_dict() | {"pending": True}, ensure_ascii=False) + "\n"
        path = self.fallback_path
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    # A reconciler may have renamed the file while we waited: write to the new one.
                    if os.fstat(fd).st_ino != _inode(path):
                        continue
                os.fchmod(fd, 0o600)
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
                break
            finally:
                os.close(fd)
        return AuditEntry(entry.entry_id, entry.ts, entry.actor, entry.action, entry.target, entry.details,
                          pending=True)

    def pending(self) -> list[AuditEntry]:
        """Entries in the fallback file(s) not yet reconciled, oldest first."""
        out: list[AuditEntry] = []
        for path in self._fallback_files():
            try:
                data = path.read_text(encoding="utf-8")
            except FileNotFoundError:  # dbfault: no fault (race: a concurrent reconcile removed the listed file)
                continue
            for n, line in enumerate(data.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                    out.append(AuditEntry(d["entry_id"], float(d["ts"]), d["actor"], d["action"], d["target"],
                                          dict(d["details"]), pending=True))
                except (ValueError, KeyError, TypeError) as exc:  # dbfault: no fault (line torn by a crash)
                    # Only a torn last line (crash mid-append) is expected here.
                    log.warning("audit fallback %s line %d unreadable (%s); skipped", path, n, exc)
        return out

    def reconcile(self) -> int:
        """Move fallback entries into the database, in order, exactly once; returns how many were new.

        :raises DatabaseError: when the database is still unavailable (the entries stay in the file).
        """
        with self._lock:
            working = self._reconciling_path()
            if not working.exists() and self.fallback_path.exists():
                # Take the file away from appenders first (atomic rename under its lock), so an
                # entry appended while we reconcile is never deleted unreconciled.
                fd = os.open(self.fallback_path, os.O_RDONLY)
                try:
                    if fcntl is not None:
                        fcntl.flock(fd, fcntl.LOCK_EX)
                    os.replace(self.fallback_path, working)
                finally:
                    os.close(fd)
            entries = self.pending()
            if not entries:
                working.unlink(missing_ok=True)
                return 0

            def move_all() -> int:
                return sum(self._append(e)[1] for e in entries)

            new = self.db.run_in_transaction(move_all)
            working.unlink(missing_ok=True)
            if self.fallback_path.exists() and self.fallback_path.stat().st_size:
                new += self.reconcile()  # entries appended during the reconcile
            log.info("reconciled %d audit entries from the fallback file", new)
            return new

    def try_reconcile(self) -> int | None:
        """:meth:`reconcile` if there is anything to reconcile; None when the database is still unavailable."""
        if not self._fallback_files():
            return 0
        try:
            return self.reconcile()
        except DatabaseError as err:
            log.info("audit fallback not reconciled yet (%s)", err.kind)
            return None

    # -- reading -------------------------------------------------------------------------------
    def entries(self, limit: int = 100, *, actor: str | None = None, action: str | None = None,
                since: float | None = None, include_pending: bool = True) -> list[AuditEntry]:
        """Entries newest first (fallback entries not yet reconciled come first, marked ``pending``).

        :param since: only entries with ``ts >= since`` (seconds since the epoch).
        """
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"limit must be a positive whole number, got {limit!r}")
        out: list[AuditEntry] = []
        if include_pending:
            out = [e for e in reversed(self.pending()) if _matches(e, actor, action, since)][:limit]
        if len(out) >= limit:
            return out
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("actor", actor), ("action", action)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        sql = f"SELECT {_COLUMNS} FROM reliability_audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        params.append(limit - len(out))
        seen = {e.entry_id for e in out}
        rows = self._read(sql, params)
        return out + [e for e in map(_row_to_entry, rows) if e.entry_id not in seen]

    def _read(self, sql: str, params: list[Any]) -> list[Any]:
        try:
            return self.db.fetch_all(sql, params)
        except DatabaseError as err:
            if err.kind is ErrorKind.SCHEMA and "no such table" in err.detail:
                return []  # nothing was ever recorded
            raise

    def verify(self) -> VerifyReport:
        """Recompute the chain; report the first entry whose link or content does not match."""
        rows = self._read(f"SELECT {_COLUMNS} FROM reliability_audit ORDER BY seq", [])
        key = self.key
        prev = GENESIS
        for n, (seq, entry_id, ts, actor, action, target, details, prev_hash, digest) in enumerate(rows):
            if prev_hash != prev:
                return VerifyReport(False, n, seq, entry_id, "the link to the previous entry is broken "
                                    "(an entry before it was removed, inserted or altered)")
            if not hmac.compare_digest(chain_hash(key, prev, entry_id, ts, actor, action, target, details), digest):
                return VerifyReport(False, n, seq, entry_id, "the entry's content does not match its hash")
            prev = digest
        return VerifyReport(True, len(rows))


def _matches(e: AuditEntry, actor: str | None, action: str | None, since: float | None) -> bool:
    return ((actor is None or e.actor == actor) and (action is None or e.action == action)
            and (since is None or e.ts >= since))


def _row_to_entry(row: Any) -> AuditEntry:
    seq, entry_id, ts, actor, action, target, details, _prev, digest = row
    try:
        parsed = json.loads(details)
    except ValueError:  # dbfault: no fault (a row edited outside the runtime; verify() reports it)
        parsed = {"_unparseable": details}
    return AuditEntry(entry_id, ts, actor, action, target, parsed, seq, digest)


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None
