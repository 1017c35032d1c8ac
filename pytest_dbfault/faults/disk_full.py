"""Logical disk-full: cap the victim connection's database size with ``max_page_count``."""

from __future__ import annotations

import os
from typing import Any

from .base import Fault, FaultError
from .target import TargetLike, resolve_target


class DiskFullFault(Fault):
    """Make the victim connection's writes fail with 13/SQLITE_FULL ("database or disk is full").

    Sets ``PRAGMA max_page_count = page_count + headroom`` on the victim connection, so
    any write that needs more than ``headroom`` new pages fails. SQLite rolls the *whole*
    transaction back on SQLITE_FULL (``in_transaction`` becomes False).

    The limit is **per connection and not saved in the file**: other connections, and
    a new connection to the same file, can still grow the database. :meth:`heal`
    restores the connection's previous ``max_page_count``.

    :param target: the victim ``sqlite3.Connection`` or a manager exposing one.
    :param headroom: pages the database may still grow by before writes fail (>= 0).
    """

    name = "disk_full"
    param_bounds = {"headroom": (0, None)}

    def __init__(self, target: TargetLike, *, headroom: int = 0) -> None:
        if not isinstance(headroom, int) or isinstance(headroom, bool) or headroom < 0:
            raise FaultError(f"DiskFullFault headroom must be an int >= 0 pages, got {headroom!r}")
        super().__init__(target=target, headroom=headroom)
        self.target = resolve_target(target)
        if self.target.path is not None and isinstance(target, (str, os.PathLike)):
            # Refused now, not at inject: the cap cannot reach the application's own connection
            # through a path, and a cap on a connection of our own would break nothing it uses.
            raise FaultError(
                f"fault 'disk_full' acts on a live connection (PRAGMA max_page_count caps one connection and "
                f"is not saved in the file), but its target {os.fspath(target)!r} is only a path; pass the "
                f"sqlite3.Connection or DatabaseManager whose writes should fail, e.g. dbfault.disk_full(conn). "
                f"For a full disk every connection opened afterwards sees, use enospc(path); for files the "
                f"application writes itself, file_full(path)")
        self.headroom = headroom
        self._previous: int | None = None
        self._conn: Any = None

    def _inject(self) -> None:
        conn = self.target.need_connection(self.name)
        # The cap lives on this handle only: heal exactly it, whatever the target holds by then.
        self._conn = conn
        self._previous = int(conn.execute("PRAGMA max_page_count").fetchone()[0])
        page_count = int(conn.execute("PRAGMA page_count").fetchone()[0])
        # SQLite never sets the cap below the current size; read back what it kept.
        applied = int(conn.execute(f"PRAGMA max_page_count = {page_count + self.headroom}").fetchone()[0])
        self.record("max_page_count capped", page_count=page_count, previous_max_page_count=self._previous,
                    max_page_count=applied)

    def _heal(self) -> None:
        conn = self._conn
        if conn is None or self._previous is None:
            self._conn = None
            return
        try:
            restored = int(conn.execute(f"PRAGMA max_page_count = {self._previous}").fetchone()[0])
        except Exception as exc:  # closed meanwhile (any sqlite module): the limit died with the handle
            if "closed" not in str(exc).lower():
                # Still in force (a rollback-journal database locked by someone else: the pragma needs a
                # read lock): the fault stays active, so heal() can be called again once the lock is gone.
                raise
            self._conn = None
            self.record("max_page_count not restored", reason="connection already closed")
            return
        self._conn = None
        self.record("max_page_count restored", max_page_count=restored)
