"""The runtime's verdict on its file, set in one place and shared with every manager on it.

The verdict itself is ``monitor.integrity_ok`` (this process); the shared one is the marker
``<db>.damaged`` (:mod:`reliability.damage_mark`). Durability reaches a verdict in three places (a
statement met damage, an integrity check, a recovery) and each goes through these functions, so the
marker is written whenever this process sees the file damaged and removed whenever it sees it sound.
An error writing or removing the marker is logged and kept for health (``monitor.damage_mark_error``):
it never hides the verdict in this process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..damage_mark import DamageMark, DamageMarker, error_text
from .parts import RuntimeParts

log = logging.getLogger("reliability.damage")


def marker(parts: RuntimeParts) -> DamageMarker:
    """The marker of the database in force."""
    return DamageMarker(parts.path)


def seen_damaged(parts: RuntimeParts, problems: list[str], found_by: str) -> None:
    """This process saw the file damaged (``found_by``): set its verdict and mark the file for the others."""
    m = parts.monitor
    m.integrity_ok = False
    m.integrity_problems = list(problems)
    file = parts.connections.identity or parts.connections.identity_at_path()
    try:
        marker(parts).write(found_by, problems, file)
    except OSError as exc:
        _failed(parts, "written", exc)
    else:
        m.damage_mark_error = None


def seen_sound(parts: RuntimeParts, ok: bool | None, *, since: float | None = None,
               keep: Callable[[DamageMark], bool] | None = None) -> None:
    """This process saw the file sound (``ok`` True: a clean check; None: a recovery installed a file).

    The marker is removed unless it was written after ``since`` (``time.time()`` when the check began:
    a later mark may be about damage the check did not see) or ``keep`` says to keep it.
    """
    m = parts.monitor
    m.integrity_ok = ok
    m.integrity_problems = []
    try:
        marker(parts).clear(written_before=since, keep=keep)
    except OSError as exc:  # dbfault: no fault (a link planted at the marker, a directory made read-only: setups)
        _failed(parts, "removed", exc)
    else:
        m.damage_mark_error = None


def now() -> float:
    """Wall-clock seconds, the marker's clock (``since`` of :func:`seen_sound`)."""
    return time.time()


def _failed(parts: RuntimeParts, what: str, exc: OSError) -> None:
    message = (f"the damage marker {marker(parts).path} could not be {what}, so other processes on the file "
               f"may not share this verdict: {error_text(exc)}")
    log.error("%s", message)
    parts.monitor.damage_mark_error = message
