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

The key: ``RELIABILITY_AUDIT_HMAC_KEY`` when configured (it always wins); otherwise a random
256-bit key generated at first start into ``audit_key_path`` (``<db>.audit-key``, 0600,
published with a hard link so two processes starting together agree on one key). ``health``
says which one is in force.

Key rotation: every entry records the *key id* of the key that chained it (:func:`key_id`, the first
8 bytes of ``HMAC(key, "dbfault-audit-key-id")`` in hex: names the key, reveals nothing), and that
id is covered by the entry's hash. New entries always use the current key; the retired keys listed
in ``audit_previous_keys`` (``RELIABILITY_AUDIT_PREVIOUS_KEYS``, comma-separated) are only used to
verify. :meth:`AuditLogger.verify` checks each entry with the key its id names. An entry whose key
is not configured is neither passed nor called tampered: the report's verdict is ``unverifiable``
("cannot be verified: key <id> not configured"), not ok. Entries written before key ids (an empty
``key_id``) are checked against the current key and then the retired ones. The anchor and the
fallback file's lines carry the key id too, so a rotation leaves neither looking forged.

Tail truncation: a chain alone cannot tell "the last entries were deleted" from "there were
no more entries". So after each commit that extends the chain, its head (sequence number =
count of entries, and last MAC) is written to a keyed *anchor* file beside the database
(``<db>.audit-anchor``, 0600, atomic replace with fsync of file and directory). Whoever can
delete rows through SQL cannot reach the file, and cannot forge its MAC without the key;
:meth:`AuditLogger.verify` reports a log that ends before its anchored head. The anchor only
ever moves forward along the chain: if the anchored entry is gone, it stays put (the evidence
is kept) until an administrator calls :meth:`AuditLogger.reanchor`. A row in the database
could not do this job: the same ``DELETE`` that removes entries can remove it. The anchor lags
by at most the transactions whose process died between commit and anchor write, which is safe
(a lagging anchor never reports a false truncation).

Fallback entries carry their own MAC, written with the line; an entry edited in the fallback
file is rejected at reconcile (kept in ``<fallback>.rejected`` and noted in the log), never
chained as genuine.

A database seen damaged takes no entry (the runtime's one rule, :mod:`reliability.degraded.damage`):
its intact audit table would, and a recovery that restores a backup would then drop the entries with
the file after they left the fallback. So while the write gate refuses, :meth:`AuditLogger.record`
writes to the fallback file and :meth:`AuditLogger.reconcile` leaves it in place; entries leave the
fallback only once they are committed into a database known sound.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import files
from .errors import DatabaseError, ErrorKind
from .names import printable, surrogate_problem
from .observers import Observer
from .ports import AuditHost  # (a structural type: the runtime's surface this module uses)

if TYPE_CHECKING:
    from .degraded.damage import DamageGate

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the thread lock still serializes one process
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("reliability.audit")

GENESIS = "0" * 64
#: Longest actor and action names in an entry (as :data:`reliability.names.MAX_ACTOR`).
MAX_NAME = 200
#: Longest target of an entry.
MAX_TARGET = 1000
AUDIT_TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS reliability_audit ("
    "seq INTEGER PRIMARY KEY, entry_id TEXT NOT NULL UNIQUE, ts REAL NOT NULL, actor TEXT NOT NULL, "
    "action TEXT NOT NULL, target TEXT NOT NULL, details TEXT NOT NULL, prev_hash TEXT NOT NULL, "
    "hash TEXT NOT NULL)"
)
#: The column naming each entry's key (added to a table of an older version when it is next written).
KEY_ID_COLUMN_SQL = "ALTER TABLE reliability_audit ADD COLUMN key_id TEXT NOT NULL DEFAULT ''"
_COLUMNS = "seq, entry_id, ts, actor, action, target, details, prev_hash, hash, key_id"
#: What a key id is an HMAC of (see :func:`key_id`).
KEY_ID_LABEL = b"dbfault-audit-key-id"


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
    #: The id of the key that chained it (:func:`key_id`); "" for an entry written before key ids, None
    #: while not stored.
    key_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"entry_id": self.entry_id, "ts": self.ts, "actor": self.actor, "action": self.action,
                "target": self.target, "details": self.details, "seq": self.seq, "hash": self.hash,
                "pending": self.pending, "key_id": self.key_id}


@dataclass(frozen=True)
class VerifyReport:
    """The result of :meth:`AuditLogger.verify`: the first broken link, if any.

    ``verdict`` is ``ok``, ``broken`` (an entry, link or anchor does not match: tampered or damaged) or
    ``unverifiable`` (nothing found broken, but entries, or the anchor, were written under keys that are not
    configured: ``unknown_key_ids``; ``unverified`` entries, the first ``first_unverified_seq``). Only ``ok``
    is ``ok``.
    """

    ok: bool
    checked: int
    first_broken_seq: int | None = None
    first_broken_id: str | None = None
    reason: str | None = None
    verdict: str = ""
    unverified: int = 0
    first_unverified_seq: int | None = None
    unknown_key_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.verdict:
            object.__setattr__(self, "verdict", "ok" if self.ok else "broken")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": self.ok, "verdict": self.verdict, "checked": self.checked,
                "first_broken_seq": self.first_broken_seq, "first_broken_id": self.first_broken_id,
                "reason": self.reason, "unverified": self.unverified,
                "first_unverified_seq": self.first_unverified_seq, "unknown_key_ids": list(self.unknown_key_ids)}


def _canonical_details(details: dict[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _mac(key: bytes, parts: list[Any]) -> str:
    return hmac.new(key, json.dumps(parts, ensure_ascii=False).encode("utf-8"), hashlib.sha256).hexdigest()


def _same(expected: str, stored: Any) -> bool:
    """Constant-time comparison of a computed MAC with a stored one, whatever was stored: ``compare_digest`` raises
    on a non-ASCII ``str`` (an edited hash or anchor would have made ``verify()`` and every append raise)."""
    return hmac.compare_digest(expected.encode("ascii"), str(stored).encode("utf-8", "surrogatepass"))


def key_id(key: bytes) -> str:
    """The non-secret id of an audit key: the first 8 bytes of ``HMAC(key, "dbfault-audit-key-id")``, in hex."""
    return hmac.new(key, KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


#: What to do about an item under a key not configured.
RETIRED_KEY_HINT = "if it is a retired audit key, list it in audit_previous_keys (RELIABILITY_AUDIT_PREVIOUS_KEYS)"


def _unknown_key(*kids: str) -> str:
    names = ", ".join(printable(k)[:40] for k in kids)
    return f"cannot be verified: key{'s' if len(kids) > 1 else ''} {names} not configured"


def load_or_create_key(path: str | os.PathLike[str]) -> tuple[bytes, bool]:
    """The audit key stored at ``path``, generated first (256 random bits, hex, mode 0600) if missing.

    Returns ``(key, created_now)``. The new key is written to an exclusive temporary and published
    with ``link()``, which fails if another process published first: both then use the same key.

    :raises OSError: the file cannot be read or created (:class:`~reliability.files.UnsafePathError`
        for a symlink there); :raises ValueError: the file holds no usable key.
    """
    what = "audit key file (audit_key_path)"
    path = Path(path)
    files.remove_leftover_temps(path, "tmp")  # a key temporary of a process that crashed while creating it
    data = files.read_private(path, what=what)
    created = False
    if data is None:
        tmp = files.process_temp(path, "tmp")
        fd = files.create_temp(tmp, what=what)
        try:
            os.write(fd, (secrets.token_hex(32) + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
            created = True
        except FileExistsError:  # dbfault: no fault (another process published its key first: use that one)
            pass
        finally:
            os.unlink(tmp)
        files.fsync_dir(path.parent)
        data = files.read_private(path, what=what) or b""
    text = data.decode("ascii", "replace").strip()
    if len(text) < 32:
        raise ValueError(f"the {what} {path} holds no usable key ({len(text)} characters; 32 or more expected)")
    return text.encode("ascii", "replace"), created


def chain_hash(key: bytes, prev: str, entry_id: str, ts: float, actor: str, action: str, target: str,
               details_json: str, key_id: str = "") -> str:
    """The HMAC-SHA256 link of one entry to the previous one.

    ``key_id`` (the entry's, :func:`key_id`) is covered too; "" gives the hash of an entry written before
    key ids (whose message is the JSON array alone: the two formats never share a message).
    """
    message = json.dumps([prev, entry_id, ts, actor, action, target, details_json], ensure_ascii=False)
    if key_id:
        message = f"{key_id}:{message}"
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


class AuditLogger(Observer):
    """Writes and reads the audit log of one database (``db.audit``).

    It observes the runtime's transactions (:mod:`reliability.observers`): the anchor follows a
    commit that extended the chain and is left where it was after a rollback.

    :param db: what it runs its statements through and hooks into (:class:`~reliability.ports.AuditHost`:
        the manager, or a read-only :class:`~reliability.inspection.Inspector`).
    :param key: the HMAC key; default ``config.audit_hmac_key`` (read at each write, so a hot
        reload applies). With no key configured the chain still detects accidental damage,
        but not a deliberate rewrite: configure ``RELIABILITY_AUDIT_HMAC_KEY``.
    :param fallback_path: default ``config.audit_fallback_file``.
    :param gate: the runtime's write gate (:class:`~reliability.degraded.damage.DamageGate`): while it
        refuses (the database was seen damaged), entries stay in the fallback file. None for a read-only
        host (an :class:`~reliability.inspection.Inspector` writes nothing).
    """

    def __init__(self, db: AuditHost, *, key: str | bytes | None = None,
                 fallback_path: str | os.PathLike[str] | None = None, gate: DamageGate | None = None) -> None:
        self.db = db
        self.gate = gate
        self._key = key.encode() if isinstance(key, str) else key
        self._fallback = Path(fallback_path) if fallback_path else None
        self._lock = threading.RLock()
        #: (path, key) of the generated key file in use; None until loaded.
        self._file_key: tuple[Path, bytes] | None = None
        #: Why the generated key could not be used (health reports it); None when fine.
        self.key_problem: str | None = None
        self._key_created = False
        #: Head (seq, hash) appended in the open transaction, anchored once it commits.
        self._pending_anchor: tuple[int, str] | None = None
        #: Why the anchor was not moved forward (truncation seen, anchor unreadable), for health.
        self.anchor_problem: str | None = None
        self._anchored_head_missing = False
        db.observers.add(self)
        db.transactions.savepoint_hooks.append(self._on_savepoint)
        if self._key is None and not db.config.audit_hmac_key:
            self.key  # noqa: B018 - generate the key file at first start, not at the first entry

    @property
    def key(self) -> bytes:
        """The HMAC key in force: the one passed in, the configured one, else the generated key file's."""
        if self._key is not None:
            return self._key
        configured = self.db.config.audit_hmac_key
        if configured:
            return configured.encode("utf-8")
        path = self.db.config.audit_key_file
        if self._file_key is not None and self._file_key[0] == path:
            return self._file_key[1]
        if self.db.config.db_path == ":memory:":
            self._file_key = (path, secrets.token_hex(32).encode("ascii"))  # nothing durable to protect
            return self._file_key[1]
        try:
            key, self._key_created = load_or_create_key(path)
        except (OSError, ValueError) as exc:  # dbfault: no fault (key file unusable: reported in health)
            if self.key_problem is None:
                log.error("audit key file unusable, the audit chain detects damage but not forgery: %s", exc)
            self.key_problem = str(exc)
            return b""
        if self._key_created:
            log.warning("no RELIABILITY_AUDIT_HMAC_KEY configured: generated a random audit key into %s (mode 0600)",
                        path)
        self.key_problem = None
        self._file_key = (path, key)
        return key

    @property
    def key_source(self) -> str:
        """Where the key in force comes from: ``argument``, ``config``, ``generated:<path>``, ``file:<path>``."""
        if self._key is not None:
            return "argument"
        if self.db.config.audit_hmac_key:
            return "config"
        if self.key_problem is not None:
            return "none"
        path = self._file_key[0] if self._file_key else self.db.config.audit_key_file
        return f"{'generated' if self._key_created else 'file'}:{path}"

    def keyring(self) -> dict[str, bytes]:
        """Every key this log verifies with, by key id: the current key first, then the retired keys
        (``audit_previous_keys``, read at each call so a hot reload applies). Only the current key writes."""
        current = self.key
        ring = {key_id(current): current}
        for retired in self.db.config.audit_previous_key_list:
            ring.setdefault(key_id(retired.encode("utf-8")), retired.encode("utf-8"))
        return ring

    @staticmethod
    def _keys_for(ring: dict[str, bytes], kid: str) -> list[bytes]:
        """The keys an item recorded under key id ``kid`` is checked with: the one its id names (none when not
        configured); every key, the current one first, for an item written before key ids (``kid`` "")."""
        if not kid:
            return list(ring.values())
        return [ring[kid]] if kid in ring else []

    def health_extra(self) -> tuple[dict[str, Any], list[str]]:
        """Health fields (which key signs the chain, its id, the retired keys' ids, the anchor) and reasons to
        report degraded."""
        reasons = []
        if self.key_problem is not None:
            reasons.append(f"the audit key file cannot be used ({self.key_problem}); audit entries are not "
                           "protected against forgery")
        if self.anchor_problem is not None:
            reasons.append(f"audit log: {self.anchor_problem}")
        ids = list(self.keyring())
        return {"audit": {"key_source": self.key_source, "key_id": ids[0], "previous_key_ids": ids[1:],
                          "anchor": str(self.anchor_path), "anchor_problem": self.anchor_problem}}, reasons

    @property
    def fallback_path(self) -> Path:
        """The fallback JSON-lines file."""
        return self._fallback or self.db.config.audit_fallback_file

    # -- writing -------------------------------------------------------------------------------
    def record(self, actor: str, action: str, target: str = "", details: dict[str, Any] | None = None) -> AuditEntry:
        """Store one entry: in the database (with retries) or, if it stays unavailable, the fallback file.

        Returns the entry; ``pending`` is True when it went to the fallback file (also while the
        database was seen damaged and not cleared: see the write gate). Never loses the entry for a
        database fault; raises ``ValueError`` for invalid input.
        """
        entry = self.new_entry(actor, action, target, details)
        with self._lock:
            refused = self._refusal()
            if refused is not None:
                log.warning("audit entry %s written to %s, not to the database: %s", entry.entry_id,
                            self.fallback_path, refused)
                return self._to_fallback(entry)
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
                problems.append(f"{name} must be a non-empty string, got {printable(repr(value))[:80]}")
            elif len(value) > MAX_NAME:
                problems.append(f"{name} may have at most {MAX_NAME} characters; this one has {len(value)}")
            elif surrogate_problem(name, value):
                problems.append(str(surrogate_problem(name, value)))
        if not isinstance(target, str):
            problems.append(f"target must be a string, got {type(target).__name__}")
        elif len(target) > MAX_TARGET:
            problems.append(f"target may have at most {MAX_TARGET} characters; this one has {len(target)}")
        elif surrogate_problem("target", target):
            problems.append(str(surrogate_problem("target", target)))
        details = {} if details is None else details
        if not isinstance(details, dict):
            problems.append(f"details must be a dict, got {type(details).__name__}")
        else:
            try:
                _canonical_details(details).encode("utf-8")
            except (TypeError, ValueError) as exc:  # dbfault: no fault (caller's details not JSON-serializable)
                problems.append(f"details must be JSON-serializable UTF-8 text: {exc}")
        if problems:
            raise ValueError("invalid audit entry: " + "; ".join(problems))
        return AuditEntry(uuid.uuid4().hex, time.time(), actor, action, target, dict(details))

    def append(self, entry: AuditEntry) -> AuditEntry:
        """Chain and insert ``entry`` inside the caller's transaction (idempotent by entry id).

        Use it to write an audit entry atomically with other changes::

            db.run_in_transaction(lambda: (db.execute(...), db.audit.append(db.audit.new_entry(...))))
        """
        return self._append(entry)[0]

    def _append(self, entry: AuditEntry, *, reanchoring: bool = False) -> tuple[AuditEntry, bool]:
        db = self.db
        db.execute(AUDIT_TABLE_SQL)
        if not self._has_key_id_column():  # a table of an older version (or a new one): add the column
            db.execute(KEY_ID_COLUMN_SQL)
        row = db.fetch_one(f"SELECT {_COLUMNS} FROM reliability_audit WHERE entry_id = ?", (entry.entry_id,))
        if row is not None:
            return _row_to_entry(row), False
        head = db.fetch_one("SELECT seq, hash FROM reliability_audit ORDER BY seq DESC LIMIT 1")
        prev = head[1] if head else GENESIS
        details_json = _canonical_details(entry.details)
        key = self.key  # (read once: a hot reload between the id and the hash would mislabel the entry)
        kid = key_id(key)
        digest = chain_hash(key, prev, entry.entry_id, entry.ts, entry.actor, entry.action, entry.target,
                            details_json, kid)
        cur = db.execute(
            "INSERT INTO reliability_audit (entry_id, ts, actor, action, target, details, prev_hash, hash, key_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (entry.entry_id, entry.ts, entry.actor, entry.action, entry.target, details_json, prev, digest, kid))
        if self._anchor_may_advance():
            self._pending_anchor = (int(cur.lastrowid or 0), digest)
        elif self._anchored_head_missing and not reanchoring:
            # The file at the path does not hold the head the anchor knows: another database (a file put in
            # its place) or this log cut short. An entry written here would be lost with the stand-in, or
            # chained onto a log already known to be shortened: it is refused (the transaction rolls back;
            # record() keeps it in the fallback file until the anchored log is back or re-anchored).
            raise DatabaseError(ErrorKind.UNAVAILABLE,
                                f"audit entry {entry.entry_id} not appended: {self.anchor_problem}",
                                user_message="The audit log is not available right now; the entry was kept aside.")
        return AuditEntry(entry.entry_id, entry.ts, entry.actor, entry.action, entry.target, entry.details,
                          cur.lastrowid, digest, key_id=kid), True

    def _has_key_id_column(self) -> bool:
        return self.db.fetch_one("SELECT 1 FROM pragma_table_info('reliability_audit') WHERE name = 'key_id'") \
            is not None

    # -- the anchor of the chain's head --------------------------------------------------------
    @property
    def anchor_path(self) -> Path:
        """The anchor file (``<db>.audit-anchor``)."""
        return self.db.config.audit_anchor_file

    def _read_anchor(self) -> tuple[str, int, str]:
        """``(state, seq, hash)``; state is ``ok``, ``missing`` or ``invalid`` (unreadable or wrong MAC)."""
        try:
            data = files.read_private(self.anchor_path, what="audit anchor file")
        except OSError as exc:  # dbfault: no fault (a symlink or unreadable file where the anchor should be)
            return f"invalid: {exc}", 0, ""
        if data is None:
            return "missing", 0, ""
        try:
            d = json.loads(data)
            seq, head, mac, kid = int(d["seq"]), str(d["hash"]), str(d["mac"]), str(d.get("key_id") or "")
        except (ValueError, KeyError, TypeError, AttributeError):  # dbfault: no fault (anchor file edited or garbled)
            return "invalid: the anchor file is not readable", 0, ""
        keys = self._keys_for(self.keyring(), kid)
        if not keys:
            return f"unverifiable: the anchor {_unknown_key(kid)} ({RETIRED_KEY_HINT})", seq, head
        if not any(_same(_mac(key, ["anchor", seq, head]), mac) for key in keys):
            changed = "" if kid else ", or the key changed and the old one is not in audit_previous_keys"
            return f"invalid: the anchor's MAC does not match (the file was edited{changed})", seq, head
        return "ok", seq, head

    def _anchor_may_advance(self) -> bool:
        """Inside the write transaction: True when the anchored head is still in the chain (or none exists).

        Sets :attr:`_anchored_head_missing` when the anchor is valid but its head is not in this file's chain.
        """
        self._anchored_head_missing = False
        state, seq, head = self._read_anchor()
        if state == "missing":
            return True
        if state == "ok":
            row = self.db.fetch_one("SELECT hash FROM reliability_audit WHERE seq = ?", (seq,))
            if row is not None and row[0] == head:
                return True
            state = f"the anchored entry {seq} is no longer in the chain (entries were deleted from its end)"
            self._anchored_head_missing = True
        if self.anchor_problem != state:
            log.error("audit anchor %s not moved forward: %s", self.anchor_path, state)
        shown = state.removeprefix("invalid: ").removeprefix("unverifiable: ")
        self.anchor_problem = f"anchor not moved forward: {shown}"
        return False

    def _write_anchor(self, seq: int, head: str) -> None:
        key = self.key
        body = json.dumps({"seq": seq, "hash": head, "mac": _mac(key, ["anchor", seq, head]), "key_id": key_id(key)})
        files.write_atomic(self.anchor_path, body.encode("ascii"), what="audit anchor file")

    def committed(self) -> None:
        """Observer: a transaction committed; move the anchor to the head it appended, if any."""
        pending, self._pending_anchor = self._pending_anchor, None
        if pending is None:
            return
        try:
            self._write_anchor(*pending)
        except OSError as exc:  # dbfault: no fault (anchor unwritable: a planted link, permissions; it may lag)
            # The entry is committed and a lagging anchor is safe: never fail the commit for it.
            log.error("audit anchor %s not updated (%s); it lags behind the log", self.anchor_path, exc)
            self.anchor_problem = f"the anchor could not be updated ({exc})"

    def rolled_back(self) -> None:
        """Observer: a transaction rolled back; what it appended is gone, the anchor stays."""
        self._pending_anchor = None

    def _on_savepoint(self, event: str, level: int) -> None:
        if event == "rollback":
            self._pending_anchor = None  # the entry may have been rolled back: let the anchor lag instead

    def rewound(self, reason: str) -> None:
        """Observer: the runtime itself put another file in place (a restore, a recovery from a backup).

        Its log may now end before the anchored head; that rewind was deliberate and is reported by
        the restore or the recovery, so the chain is re-anchored here with an ``audit.reanchored`` entry
        naming ``reason`` and the previous anchor (the evidence stays in the log). A file put in place
        by anyone else is not re-anchored: appends are refused until an administrator decides.
        """
        state, seq, head = self._read_anchor()
        if state != "ok":
            return  # nothing anchored yet, or an anchor only an administrator may overrule
        try:
            row = self.db.fetch_one("SELECT hash FROM reliability_audit WHERE seq = ?", (seq,))
        except DatabaseError:  # dbfault: no fault (a file put in place without the audit table)
            row = None  # (the whole log went back)
        if row is not None and row[0] == head:
            return  # every anchored entry came back (the redo journal replayed them)
        try:
            entry = self.reanchor("reliability", f"the database was rewound on purpose: {reason}")
        except DatabaseError as exc:  # dbfault: no fault (the restored file refuses writes: degraded, reported)
            log.error("audit log not re-anchored after %s: %s; new entries wait in the fallback file until "
                      "an administrator re-anchors it", reason, exc.detail)
            return
        log.warning("audit log re-anchored after %s (entry %s; previous anchor: entry %d)", reason,
                    entry.entry_id, seq)

    def reanchor(self, actor: str, reason: str) -> AuditEntry:
        """Accept the log as it is now (after a restore or an investigated truncation): record it and re-anchor.

        The entry ``audit.reanchored`` (with the old anchor and ``reason``) is appended and becomes
        the new anchored head.
        """
        state, seq, head = self._read_anchor()
        with self._lock:
            if self.gate is not None:
                self.gate.ensure_writable("the audit re-anchoring entry")

            def write() -> AuditEntry:
                entry = self.new_entry(actor, "audit.reanchored", str(self.anchor_path),
                                       {"reason": reason, "previous_anchor": {"state": state, "seq": seq,
                                                                              "hash": head}})
                stored = self._append(entry, reanchoring=True)[0]  # the one entry a missing head does not stop
                self._pending_anchor = (int(stored.seq or 0), str(stored.hash))
                return stored

            stored = self.db.run_in_transaction(write)
        self.anchor_problem = None
        return stored

    def _refusal(self) -> str | None:
        """Why the database may not take entries now (seen damaged, not cleared), or None."""
        return None if self.gate is None else self.gate.refusal()

    # -- fallback ------------------------------------------------------------------------------
    def _reconciling_path(self) -> Path:
        return self.fallback_path.with_name(self.fallback_path.name + ".reconciling")

    def _fallback_files(self) -> list[Path]:
        return [p for p in (self._reconciling_path(), self.fallback_path)
                if os.path.lexists(p) and os.lstat(p).st_size]

    def _fallback_mac(self, d: dict[str, Any], key: bytes | None = None) -> str:
        return _mac(self.key if key is None else key,
                    ["fallback", d["entry_id"], d["ts"], d["actor"], d["action"], d["target"],
                     _canonical_details(d["details"])])

    def _fallback_problem(self, d: dict[str, Any]) -> str | None:
        """None when a fallback line's MAC matches under the key its id names (or, for a line written before key
        ids, under any configured key); else why it is not chained as genuine."""
        kid = d.get("key_id") or ""
        if not isinstance(kid, str):
            raise TypeError(f"key_id must be a string, got {type(kid).__name__}")
        keys = self._keys_for(self.keyring(), kid)
        if not keys:
            return f"the entry {_unknown_key(kid)} ({RETIRED_KEY_HINT})"
        if any(_same(self._fallback_mac(d, key), d.get("mac", "")) for key in keys):
            return None
        return "the entry does not match its MAC (edited in the file)"

    def _to_fallback(self, entry: AuditEntry) -> AuditEntry:
        record = entry.to_dict() | {"pending": True}
        key = self.key
        record["key_id"] = key_id(key)  # (the key that signs the line; its entry is chained under the key then current)
        record["mac"] = self._fallback_mac(record, key)  # so an entry edited in the file is not chained as genuine
        line = json.dumps(record, ensure_ascii=False) + "\n"
        path = self.fallback_path
        path.parent.mkdir(mode=files.DIR_MODE, parents=True, exist_ok=True)
        while True:
            created = not os.path.lexists(path)
            fd = files.open_private(path, os.O_RDWR | os.O_APPEND | os.O_CREAT,
                                    what="audit fallback file (audit_fallback_path)")
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    # A reconciler may have renamed the file while we waited: write to the new one.
                    if os.fstat(fd).st_ino != _inode(path):
                        continue
                # A crash mid-append leaves a last line without its newline: end that torn fragment first,
                # or this entry would be glued onto it and read back as one unreadable line.
                torn = os.fstat(fd).st_size > 0 and os.lseek(fd, -1, os.SEEK_END) >= 0 and os.read(fd, 1) != b"\n"
                files.write_all(fd, (b"\n" if torn else b"") + line.encode("utf-8"))
                os.fsync(fd)
                if created:  # a new file's name is durable only once its directory is synced
                    files.fsync_dir(path.parent)
                break
            finally:
                os.close(fd)
        return AuditEntry(entry.entry_id, entry.ts, entry.actor, entry.action, entry.target, entry.details,
                          pending=True)

    def pending(self) -> list[AuditEntry]:
        """Entries in the fallback file(s) not yet reconciled, oldest first (entries whose MAC fails are left out)."""
        return self._read_fallback()[0]

    def _read_fallback(self) -> tuple[list[AuditEntry], list[tuple[str, str]]]:
        """``(genuine entries, rejected (line, reason))`` of the fallback file(s)."""
        out: list[AuditEntry] = []
        rejected: list[tuple[str, str]] = []
        for path in self._fallback_files():
            raw = files.read_private(path, what="audit fallback file (audit_fallback_path)")
            if raw is None:  # a concurrent reconcile removed the listed file
                continue
            # Split on the newline only: the text of a line may hold U+2028 or U+0085 (json.dumps keeps them
            # raw), which str.splitlines would take for line ends and so cut a genuine entry in two.
            lines = [ln.decode("utf-8", "replace") for ln in raw.splitlines()]
            torn_tail = not raw.endswith(b"\n")
            for n, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                    entry = AuditEntry(d["entry_id"], float(d["ts"]), d["actor"], d["action"], d["target"],
                                       dict(d["details"]), pending=True)
                    problem = self._fallback_problem(d)
                except (ValueError, KeyError, TypeError) as exc:  # dbfault: no fault (line torn by a crash)
                    if n < len(lines) or not torn_tail:  # only a torn last line (crash mid-append) is expected
                        rejected.append((line, f"line {n} unreadable ({exc})"))
                    log.warning("audit fallback %s line %d unreadable (%s); skipped", path, n, exc)
                    continue
                if problem is None:
                    out.append(entry)
                else:
                    log.error("audit fallback %s line %d (entry %s): %s; it will not be chained", path, n,
                              printable(entry.entry_id), problem)
                    rejected.append((line, f"line {n}: {problem}"))
        return out, rejected

    def reconcile(self, transact: Callable[..., Any] | None = None) -> int:
        """Move fallback entries into the database, in order, exactly once; returns how many were new.

        :param transact: runs the move in a transaction (default ``db.run_in_transaction``; the write
            queue's replay passes its own, which does not replay the queue first).
        :raises DatabaseError: when the database is still unavailable or the write gate refuses (it was
            seen damaged): the entries stay in the file.
        """
        run = transact or self.db.run_in_transaction
        with self._lock:
            if self.gate is not None and self._fallback_files():
                self.gate.ensure_writable("audit fallback entries")
            working = self._reconciling_path()
            if not working.exists() and self.fallback_path.exists():
                # Take the file away from appenders first (atomic rename under its lock), so an
                # entry appended while we reconcile is never deleted unreconciled.
                fd = files.open_private(self.fallback_path, os.O_RDONLY, what="audit fallback file")
                try:
                    if fcntl is not None:
                        fcntl.flock(fd, fcntl.LOCK_EX)
                    os.replace(self.fallback_path, working)
                finally:
                    os.close(fd)
            entries, rejected = self._read_fallback()
            # A rejected line is kept for inspection and noted in the log (id derived from the line, so a
            # reconcile interrupted and redone notes it once).
            entries += [AuditEntry(hashlib.sha256(line.encode("utf-8", "replace")).hexdigest()[:32], time.time(),
                                   "reliability", "audit.fallback_rejected", str(self.fallback_path),
                                   {"reason": reason, "line": line[:2000]}) for line, reason in rejected]
            if not entries:
                working.unlink(missing_ok=True)
                return 0

            def move_all() -> int:
                return sum(self._append(e)[1] for e in entries)

            new = run(move_all)
            if rejected:
                self._keep_rejected([line for line, _ in rejected])
            working.unlink(missing_ok=True)
            if self.fallback_path.exists() and self.fallback_path.stat().st_size:
                new += self.reconcile(transact)  # entries appended during the reconcile
            log.info("reconciled %d audit entries from the fallback file", new)
            return new

    def _keep_rejected(self, lines: list[str]) -> None:
        path = self.fallback_path.with_name(self.fallback_path.name + ".rejected")
        fd = files.open_private(path, what="rejected audit fallback entries")
        try:
            os.write(fd, "".join(line + "\n" for line in lines).encode("utf-8", "replace"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def try_reconcile(self, transact: Callable[..., Any] | None = None) -> int | None:
        """:meth:`reconcile` if there is anything to reconcile; None when the database is still unavailable."""
        if not self._fallback_files():
            return 0
        try:
            return self.reconcile(transact)
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
        sql = "SELECT {columns} FROM reliability_audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        params.append(limit - len(out))
        seen = {e.entry_id for e in out}
        rows = self._read(sql, params)
        return out + [e for e in map(_row_to_entry, rows) if e.entry_id not in seen]

    def _read(self, sql: str, params: list[Any]) -> list[Any]:
        """Rows of ``sql``, whose ``{columns}`` stands for the entry's columns (a table written before key ids has
        no ``key_id`` column: its entries read as ""; the column is added at the next write, never by a read)."""
        # Nothing recorded yet (a fresh database): no table, which is not an error to log and count.
        if self.db.fetch_one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'reliability_audit'") \
                is None:
            return []
        columns = _COLUMNS if self._has_key_id_column() else _COLUMNS.replace("key_id", "'' AS key_id")
        return self.db.fetch_all(sql.format(columns=columns), params)

    def verify(self) -> VerifyReport:
        """Recompute the chain; report the first entry whose link or content does not match.

        Each entry is checked with the key its key id names (the current key or one in
        ``audit_previous_keys``). An entry under a key not configured cannot be checked: it is counted
        (``unverified``), the chain's links are still followed past it, and the verdict is ``unverifiable``
        unless something is found broken.
        """
        # A verdict on the log in the file: one restored at the path a moment ago is the one judged, not the
        # unlinked file the handle may read for up to identity_check_interval (found by the audit machine:
        # an entry edited in a restored database verified ok 20 ms after the restore).
        self.db.follow_the_path()
        rows = self._read("SELECT {columns} FROM reliability_audit ORDER BY seq", [])
        ring = self.keyring()
        prev = GENESIS
        anchored: str | None = None
        unknown: dict[str, int] = {}  # key id -> entries under it
        first_unverified: int | None = None
        state, anchor_seq, anchor_hash = self._read_anchor()
        for n, (seq, entry_id, ts, actor, action, target, details, prev_hash, digest, kid) in enumerate(rows):
            if prev_hash != prev:
                return VerifyReport(False, n, seq, entry_id, "the link to the previous entry is broken "
                                    "(an entry before it was removed, inserted or altered)",
                                    unverified=sum(unknown.values()), first_unverified_seq=first_unverified,
                                    unknown_key_ids=tuple(unknown))
            kid = str(kid or "")
            keys = self._keys_for(ring, kid)
            if not keys:
                unknown[kid] = unknown.get(kid, 0) + 1
                first_unverified = seq if first_unverified is None else first_unverified
            elif not self._entry_matches(keys, prev, entry_id, ts, actor, action, target, details, kid, digest):
                reason = "the entry's content does not match its hash"
                if not kid:
                    reason += (" under any configured key (an entry written before key ids: edited, or chained "
                               "under a key that is neither audit_hmac_key nor in audit_previous_keys)")
                return VerifyReport(False, n, seq, entry_id, reason, unverified=sum(unknown.values()),
                                    first_unverified_seq=first_unverified, unknown_key_ids=tuple(unknown))
            if seq == anchor_seq:
                anchored = digest
            prev = digest
        # The chain is consistent; does it still reach the head recorded outside the database?
        if state == "ok" and anchored != anchor_hash:
            last = rows[-1][0] if rows else 0
            return VerifyReport(False, len(rows), anchor_seq, None,
                                f"the log was shortened: its anchor records {anchor_seq} entries ending at "
                                f"entry {anchor_seq}, but the log ends at entry {last} ({len(rows)} entries); "
                                f"entries were deleted from its end")
        if state.startswith("invalid"):
            return VerifyReport(False, len(rows), None, None, f"the anchor of the log's head is {state}")
        if state == "missing" and rows:
            return VerifyReport(False, len(rows), None, None,
                                f"the anchor of the log's head ({self.anchor_path}) is missing, so a shortened "
                                f"log cannot be ruled out; if this is expected, re-anchor with audit.reanchor()")
        if unknown or state.startswith("unverifiable"):
            # Nothing found broken, but not everything could be checked: not green, and not "tampered" either.
            count = sum(unknown.values())
            said = [f"{count} entr{'y' if count == 1 else 'ies'} (the first: entry {first_unverified}) "
                    f"{_unknown_key(*unknown)} ({RETIRED_KEY_HINT})"] if unknown else []
            if state.startswith("unverifiable"):
                said.append(state.removeprefix("unverifiable: "))
            return VerifyReport(False, len(rows), None, None, "; ".join(said), verdict="unverifiable",
                                unverified=count, first_unverified_seq=first_unverified,
                                unknown_key_ids=tuple(unknown))
        return VerifyReport(True, len(rows))

    def _entry_matches(self, keys: list[bytes], prev: str, entry_id: str, ts: float, actor: str, action: str,
                       target: str, details: str, kid: str, digest: str) -> bool:
        """True when a stored entry's hash is the one ``keys`` (those its key id names) give for its content."""
        return any(_same(chain_hash(key, prev, entry_id, ts, actor, action, target, details, kid), digest)
                   for key in keys)


def _matches(e: AuditEntry, actor: str | None, action: str | None, since: float | None) -> bool:
    return ((actor is None or e.actor == actor) and (action is None or e.action == action)
            and (since is None or e.ts >= since))


def _row_to_entry(row: Any) -> AuditEntry:
    seq, entry_id, ts, actor, action, target, details, _prev, digest, kid = row
    try:
        parsed = json.loads(details)
    except ValueError:  # dbfault: no fault (a row edited outside the runtime; verify() reports it)
        parsed = {"_unparseable": details}
    return AuditEntry(entry_id, ts, actor, action, target, parsed, seq, digest, key_id=str(kid or ""))


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None
