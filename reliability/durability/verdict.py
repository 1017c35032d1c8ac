"""The runtime's verdict on its file, set in one place and shared with every manager on it.

The verdict itself is ``monitor.integrity_ok`` (this process); the shared one is the marker
``<db>.damaged`` (:mod:`reliability.damage_mark`). Durability reaches a verdict in five places (a
statement met damage, an integrity check, a recovery, a start that finds damage without a check
(:func:`damage_at_start`) and a close that finds its ``-wal`` damaged (:func:`wal_at_close`)) and each
goes through these functions, so the marker is written whenever this process sees the file damaged and
removed whenever it sees it sound.
An error writing or removing the marker is logged and kept for health (``monitor.damage_mark_error``):
it never hides the verdict in this process.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from .. import files
from ..connection import db_page_size
from ..damage_mark import DamageMark, DamageMarker, error_text
from ..health import cut_off_problems, may_hide, sticky_mark_problems, wal_problems
from .parts import RuntimeParts

log = logging.getLogger("reliability.damage")


def marker(parts: RuntimeParts) -> DamageMarker:
    """The marker of the database in force."""
    return DamageMarker(parts.path)


def seen_damaged(parts: RuntimeParts, problems: list[str], found_by: str) -> None:
    """This process saw the file damaged (``found_by``): set its verdict and mark the file for the others.

    The mark is sticky (only a recovery removes it) when a problem is damage a checkpoint can hide
    (:func:`~reliability.health.may_hide`).
    """
    m = parts.monitor
    m.integrity_ok = False
    m.integrity_problems = list(problems)
    file = parts.connections.identity or parts.connections.identity_at_path()
    try:
        marker(parts).write(found_by, problems, file, sticky=may_hide(problems))
    except OSError as exc:
        _failed(parts, "written", exc)
    else:
        m.damage_mark_error = None


def seen_sound(parts: RuntimeParts, ok: bool | None, *, since: float | None = None,
               keep: Callable[[DamageMark], bool] | None = None, quick: bool = False) -> None:
    """This process saw the file sound (``ok`` True: a clean check; None: a recovery installed a file).

    The marker is removed unless it was written after ``since`` (``time.time()`` when the check began:
    a later mark may be about damage the check did not see) or ``keep`` says to keep it.
    ``quick``: the clean result is a ``quick_check``'s. It changes nothing while a verdict stands, here
    (``integrity_ok`` False) or in the marker: quick_check does not compare an index with its rows, so it
    passes a file whose index entry was changed in place, which the full check, a statement, or another
    process found damaged. Clearing that verdict let writes go through the wrong index entry onto
    another row (recovery_fuzz seed 906). Only a clean full check or a recovery clears a verdict.
    """
    m = parts.monitor
    if quick and (m.integrity_ok is False or marker(parts).present()):
        log.info("a clean quick_check leaves the damage verdict on %s in place: only the full integrity check "
                 "(or a recovery) clears it", parts.path)
        return
    m.integrity_ok = ok
    m.integrity_problems = []
    try:
        marker(parts).clear(written_before=since, keep=keep)
    except OSError as exc:  # dbfault: no fault (a link planted at the marker, a directory made read-only: setups)
        _failed(parts, "removed", exc)
    else:
        m.damage_mark_error = None


def installed_by_another(parts: RuntimeParts) -> None:
    """Another manager of this process put a file at the path (a restore or a recovery): this manager's own verdict
    that the file is damaged was about the file now set aside, so it goes (``integrity_ok`` None: not known to be
    damaged, the next check will tell). Left standing, health said "marked corrupt" (unavailable) about a file no
    longer in use until this manager's next full check. The shared marker is the installing manager's business
    (it keeps a mark written about the new file, see ``recovery._installed_since``)."""
    m = parts.monitor
    if m.integrity_ok is False:
        log.info("another manager of this process installed a file at %s: the damage verdict on the file it replaced "
                 "no longer stands here", parts.path)
        m.integrity_ok = None
        m.integrity_problems = []


def damage_at_start(parts: RuntimeParts, recover: Callable[[str], object],
                    check: Callable[[], object] | None = None) -> bool:
    """What a start sees without an integrity check: a file cut inside a page, or a sticky damage mark.

    A file that ends inside a page reads its missing bytes as zeros, with no error from any statement or
    PRAGMA: without this look a start served the zero-filled rows as data (recovery_fuzz seed 1024's file).
    Only a file at rest is judged: a hot rollback journal puts the file's old size back when SQLite rolls it
    back, and a checkpoint rewrites its tail from the ``-wal``'s frames. A sticky mark on this file says a
    damaged ``-wal`` frame may have been checkpointed into it, where no check sees it (recovery_fuzz seeds
    628, 1122: a value came back undecodable after the last close). Either is the verdict at once and, with
    ``auto_recover``, recovery runs (``recover``) before the journals are compared with the file or an
    anchoring backup copies it. Returns True when damage was found.

    Any other mark on this file is another process's verdict (a statement met damage there, or an integrity
    check failed) that this manager would otherwise not act on: its statements would run, and a write through
    an index entry changed in place lands on another row (recovery_fuzz seed 906: a writer started after a full
    check had marked the file overwrote an acknowledged row). ``check`` (the full integrity check) runs then;
    its result is the verdict (a clean one removes the mark; a failed one, with ``auto_recover``, recovers).
    A lock that keeps it from a result leaves the mark standing, as the write gate's check does.
    """
    path = parts.path
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return False
    at_rest = not any(files.file_size(path + side) for side in ("-journal", "-wal"))
    page_size = db_page_size(path, parts.connections.module) if at_rest else None
    problems = (cut_off_problems(path, page_size) if page_size else []) + sticky_mark_problems(path)
    if not problems:
        if check is not None and _marked_here(parts):
            return _check_marked_file(parts, check)
        return False
    seen_damaged(parts, problems, "a look at the database file at startup")
    if parts.config.auto_recover:
        recover(f"damage at startup: {problems[0]}")
    return True


def _marked_here(parts: RuntimeParts) -> bool:
    mark = marker(parts).read() if marker(parts).present() else None
    return mark is not None and (mark.file is None or mark.file == files.file_identity(parts.path))


def _check_marked_file(parts: RuntimeParts, check: Callable[[], object]) -> bool:
    from ..errors import DatabaseError

    try:
        check()
    except DatabaseError as exc:  # a lock or a one-off I/O error: no result, the mark stands
        log.warning("a start on %s marked damaged could not check it now (%s): the mark stands", parts.path,
                    exc.detail)
        return True
    return parts.monitor.integrity_ok is False


def wal_at_close(parts: RuntimeParts) -> None:
    """Before the manager's connection closes: is a committed frame of the ``-wal`` damaged?

    SQLite's last close checkpoints the frames through the WAL index without checking them, and the damaged
    page then passes every check. Found now, the file is marked damaged with a sticky mark (only a recovery
    removes it), so the next start, check or ``reliability recover`` recovers instead of serving it.
    """
    problems = wal_problems(parts.path)
    if not problems:
        return
    log.error("closing %s with a damaged -wal: %s", parts.path, problems[0])
    seen_damaged(parts, problems, "a damaged -wal found by the manager's close")


def now() -> float:
    """Wall-clock seconds, the marker's clock (``since`` of :func:`seen_sound`)."""
    return time.time()


def _failed(parts: RuntimeParts, what: str, exc: OSError) -> None:
    message = (f"the damage marker {marker(parts).path} could not be {what}, so other processes on the file "
               f"may not share this verdict: {error_text(exc)}")
    log.error("%s", message)
    parts.monitor.damage_mark_error = message
