"""Was the database recovered by another process while this one waited for the install lock?

A manager that saw damage and then waited on ``<db>.install-lock`` (another process was
recovering or restoring) finds, once it holds the lock, a file the other process installed.
Recovering it again would quarantine a good database and rebuild it from a backup for nothing
(and, were anything left out of the journals, lose writes made since). So before recovering,
:func:`recovered_by_another` asks: is the file at the path another one than the one the damage
was seen in, does it pass a fresh ``quick_check``, and does it hold every write the journals
(every process's) say was committed? Only all three together mean "already recovered".
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..errors import DatabaseError
from ..health import check_integrity
from ..redo import UNJOURNALED_SLOTS, plan_replay, read_committed
from . import verdict
from .parts import RuntimeParts

if TYPE_CHECKING:
    from ..redo import RedoJournal

log = logging.getLogger("reliability.recovery")

#: What a recovery report says when another process had recovered the database already.
RECOVERED_BY_ANOTHER = "another process had already recovered the database (a new file that passes quick_check)"


def recovered_by_another(parts: RuntimeParts, redo: RedoJournal | None,
                         seen: tuple[int, int] | None) -> list[str] | None:
    """None when this manager must recover; else the problems of the file another process installed.

    :param seen: the identity (device, inode) of the file the damage was seen in (the one this
        manager's connection opened), taken before waiting for the install lock.

    An empty list: the new file passes ``quick_check`` and holds every journaled write (ok).
    Problems are returned (never a silent ok) when this manager cannot tell that its own writes
    are in it (no journal) or the journals report damage of their own.
    """
    current = parts.connections.identity_at_path()
    if seen is None or current is None or current == seen:
        return None
    started = verdict.now()
    try:
        report = check_integrity(parts.path, full=False, timeout=parts.config.busy_timeout_ms / 1000.0,
                                 module=parts.connections.module, policy=parts.policy)
    except DatabaseError as exc:  # locked beyond the retry policy: no verdict, recover as asked
        log.warning("could not check the file another process installed at %s: %s", parts.path, exc.detail)
        return None
    if not report.ok:
        return None  # the replacement is damaged too: recover it
    committed = read_committed(parts.path, parts.connections.module)
    problems: list[str] = []
    if redo is not None:
        top = max((s for slot, s in (committed or {}).items() if slot > UNJOURNALED_SLOTS), default=0)
        alive, gone = redo.owner_slots()
        plan = plan_replay(redo.base_path, top, seen=redo.seen, committed=committed, alive=alive, gone=gone)
        if plan.entries or plan.missing:
            return None  # journaled writes the new file lacks: recover (replay them or say what is missing)
        problems += plan.problems
        lost = redo.lost_writes()
        if lost:
            problems.append(lost)
    elif parts.config.redo_journal:
        problems.append("the redo journal was not available: whether this manager's writes are in the file "
                        "another process installed cannot be told")
    else:
        problems.append("the redo journal is off (redo_journal=False): this manager's writes after the backup "
                        "the other process restored are lost")
    parts.connections.close()  # the handle may still be on the file set aside; the next use opens the new one
    verdict.seen_sound(parts, True, since=started)  # (the marker of the file set aside goes too)
    log.warning("%s: %s; not recovering it again", parts.path, RECOVERED_BY_ANOTHER)
    return problems
