"""Chaos fault names and defaults, importable without loading sqlite3 or the faults (option help)."""

from __future__ import annotations

#: Every chaos fault kind, with what it does (see the module docstring).
CHAOS_KINDS: dict[str, str] = {
    "locked": "a write meets a lock held past the connection's busy timeout (SQLITE_BUSY)",
    "busy_commit": "rollback journal: a reader's SHARED lock makes COMMIT fail (SQLITE_BUSY, txn stays open)",
    "busy_snapshot": "WAL: another connection commits during a read transaction (SQLITE_BUSY_SNAPSHOT)",
    "io_error": "one failed write I/O through the VFS shim (SQLITE_IOERR_WRITE)",
    "closed": "the connection is closed before a statement (ProgrammingError)",
}
#: Kinds used when none are named: everything transient (``closed`` is opt-in: no app can reuse a
#: closed ``Connection`` object, so it breaks every suite that keeps one).
DEFAULT_KINDS: tuple[str, ...] = ("locked", "busy_commit", "busy_snapshot", "io_error")
#: Default share of eligible statements (writes and commits) that meet a fault.
DEFAULT_RATE = 0.05
