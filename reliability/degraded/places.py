"""Where writes wait while the database is down, and the places a restart left behind.

The write queue (``write_queue_path``) and the audit fallback (``audit_fallback_path``) hold acknowledged
work until the database takes it. A restart with another path reads only the new file, so whatever
waited in the old one would never reach the database, and nothing would say so. The database therefore
remembers every place its runtimes kept such a file (``_reliability_places``), and a start, health and
``reliability health`` name an old place that still holds something: how many writes or entries, where,
and which setting moved. The old file is only read (never followed through a link, never written): moving
what waits there is the operator's decision, as the README says.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import files

PLACES_TABLE = "_reliability_places"
#: The settings that name a place where acknowledged work waits, and what waits there.
WAITING = {"write_queue_path": "queued write", "audit_fallback_path": "audit entry"}


def queue_summary(path: Path, max_entries: int) -> dict[str, Any]:
    """Pending and refused writes in a write-queue file, read without repairing it (a torn tail is ignored)."""
    pending: set[str] = set()
    failed: set[str] = set()
    data = _read(path)
    for raw in data[: data.rfind(b"\n") + 1].splitlines():
        try:
            event = json.loads(raw)
            op, key = event["op"], event["key"]
        except (ValueError, KeyError, TypeError):  # dbfault: no fault (a line garbled outside the runtime)
            continue
        if op == "put":
            pending.add(key)
        else:
            pending.discard(key)
            if op == "failed":
                failed.add(key)
    return {"pending": len(pending), "failed": len(failed), "path": str(path), "max": max_entries}


def count_lines(path: Path) -> int:
    """The non-empty lines of an audit fallback file (each one entry waiting); 0 when there is no file."""
    return sum(1 for line in _read(path).splitlines() if line.strip())


def waiting_in(setting: str, path: Path) -> int:
    """How many writes (``write_queue_path``) or audit entries (``audit_fallback_path``) wait at ``path``."""
    if setting == "write_queue_path":
        return int(queue_summary(path, 0)["pending"])
    # An audit reconcile renames the file aside while it works: what is there waits too.
    return count_lines(path) + count_lines(path.with_name(path.name + ".reconciling"))


def _read(path: Path) -> bytes:
    # Only a regular file is read, never through a link: an old place is not ours to follow any more.
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:  # dbfault: no fault (no file, or a link: nothing of ours waits there)
        return b""
    try:
        # (Not files.read_private: that narrows a loose mode to 0600, and a look at an old place changes nothing.)
        return files.read_to_end(fd) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    finally:
        os.close(fd)


@dataclass(frozen=True)
class LeftBehind:
    """An old place of ``setting`` that still holds ``waiting`` writes or entries the runtime no longer reads."""

    setting: str
    path: str
    waiting: int
    now: str

    def reason(self) -> str:
        """The health reason: what waits where, and what to do."""
        one = self.waiting == 1
        plural = {"queued write": "queued write" if one else "queued writes",
                  "audit entry": "audit entry" if one else "audit entries"}[WAITING[self.setting]]
        return (f"{self.waiting} {plural} {'waits' if one else 'wait'} in {self.path!r}, which this runtime "
                f"does not read ({self.setting} is now {self.now!r}): move them to the new place, or set it "
                "back, and restart")


def current_places(config: Any) -> dict[str, str]:
    """The places ``config`` names, as absolute paths."""
    return {"write_queue_path": str(Path(config.write_queue_file).absolute()),
            "audit_fallback_path": str(Path(config.audit_fallback_file).absolute())}


def remembered(conn: Any) -> list[tuple[str, str]] | None:
    """The ``(setting, path)`` pairs this database remembers; None when it never remembered any."""
    try:
        return [tuple(row) for row in conn.execute(f"SELECT setting, path FROM {PLACES_TABLE}").fetchall()]
    except Exception as exc:
        if "no such table" in str(exc):
            return None
        raise


def left_behind(rows: Iterable[tuple[str, str]] | None, current: Mapping[str, str]) -> list[LeftBehind]:
    """Of the remembered places ``rows``, those other than ``current`` that still hold something (reads files)."""
    out = []
    for setting, path in sorted(rows or ()):
        if setting in WAITING and path != current.get(setting):
            waiting = waiting_in(setting, Path(path))
            if waiting:
                out.append(LeftBehind(setting, path, waiting, current.get(setting, "")))
    return out


def remember(conn: Any, current: Mapping[str, str]) -> list[LeftBehind]:
    """Remember ``current`` next to every place remembered before; return the old places that hold something.

    An old place is never forgotten, even when it holds nothing at this start: in a rolling restart another
    worker still running with the old path may keep a write or an audit entry there later (a lock, then it dies),
    and a place forgotten meanwhile would never be named again, its entry dropped in silence. Remembering costs a
    look at each old place per start; it writes only when ``current`` names a place not yet remembered (a start
    with known paths reads one table and writes nothing).
    """
    known = remembered(conn)
    behind = left_behind(known, current)
    wanted = set(current.items())
    if known is not None and wanted <= set(known):
        return behind
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {PLACES_TABLE} "
                     "(setting TEXT NOT NULL, path TEXT NOT NULL, PRIMARY KEY (setting, path))")
        conn.executemany(f"INSERT OR IGNORE INTO {PLACES_TABLE} (setting, path) VALUES (?, ?)", sorted(wanted))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return behind
