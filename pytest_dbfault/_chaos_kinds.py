"""Chaos fault names, levels and defaults, importable without loading sqlite3 or the faults (option help)."""

from __future__ import annotations

#: Every chaos fault kind, with what it does (see :mod:`pytest_dbfault.chaos`).
CHAOS_KINDS: dict[str, str] = {
    "locked": "BEGIN IMMEDIATE or a transaction's first write meets a write lock held past the busy "
              "timeout (SQLITE_BUSY)",
    "busy_commit": "rollback journal: a reader's SHARED lock makes COMMIT fail (SQLITE_BUSY, txn stays open)",
    "busy_snapshot": "WAL: another connection commits during a read transaction (SQLITE_BUSY_SNAPSHOT)",
    "io_error": "one failed write I/O through the VFS shim (SQLITE_IOERR_WRITE)",
    "disk_full": "one write I/O through the VFS shim finds the disk full (SQLITE_FULL)",
    "closed": "the connection is closed before a statement (ProgrammingError)",
}
#: Transient lock contention: what a robust application is expected to survive (retry, or report a
#: transient error). The default.
CONTENTION: tuple[str, ...] = ("locked", "busy_commit", "busy_snapshot")
#: Hard faults: an application may legitimately give up on them, so they are opt-in.
HARD: tuple[str, ...] = ("io_error", "disk_full", "closed")
#: Names usable in ``--dbfault-chaos-faults`` besides the kinds themselves.
LEVELS: dict[str, tuple[str, ...]] = {
    "contention": CONTENTION,
    "default": CONTENTION,
    "hard": HARD,
    "all": tuple(CHAOS_KINDS),
}
DEFAULT_LEVEL = "contention"
#: Kinds used when none are named.
DEFAULT_KINDS: tuple[str, ...] = CONTENTION
#: Default share of eligible statements that meet a fault.
DEFAULT_RATE = 0.05
#: Default seconds a test may run under chaos before the watchdog calls it hung.
DEFAULT_TIMEOUT = 60.0
