"""Chaos fault names, levels, defaults and the parsing of their settings, importable without loading
sqlite3 or the faults: the options table (:mod:`pytest_dbfault.options`) checks chaos values with them
while pytest parses the command line, and an inert run must stay light."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

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


class ChaosUsageError(ValueError):
    """A chaos setting was given a value it cannot take; ``setting`` and ``value`` name it."""

    def __init__(self, message: str, setting: str = "", value: Any = None) -> None:
        super().__init__(message)
        self.setting = setting
        self.value = value


def parse_rate(raw: Any, where: str = "--dbfault-chaos-rate") -> float:
    """A probability in ``(0, 1]`` (``"0.05"`` or ``"5%"``)."""
    text = str(raw).strip()
    try:
        rate = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ChaosUsageError(f"{where}: invalid value {raw!r}; expected a probability such as 0.05 or 5%",
                              where, raw) from None
    if not 0 < rate <= 1:
        raise ChaosUsageError(f"{where}: invalid value {raw!r}; expected a probability above 0 and at most 1",
                              where, raw)
    return rate


def parse_kinds(raw: str | None, where: str = "--dbfault-chaos-faults") -> tuple[str, ...]:
    """``"locked, busy_commit"`` → the tuple; ``None``/``"default"``/``"contention"`` → :data:`CONTENTION`.

    Level names (:data:`LEVELS`: ``contention``, ``hard``, ``all``) and kind names mix
    (``"contention,io_error"``); an unknown name raises :class:`ChaosUsageError`.
    """
    if raw is None or not raw.strip():
        return DEFAULT_KINDS
    kinds: list[str] = []
    for name in (n for n in re.split(r"[,\s]+", raw) if n):
        if name in LEVELS:
            kinds.extend(LEVELS[name])
        elif name in CHAOS_KINDS:
            kinds.append(name)
        else:
            raise ChaosUsageError(f"{where}: unknown chaos fault {name!r}; known: {', '.join(LEVELS)}, "
                                  f"{', '.join(CHAOS_KINDS)}", where, name)
    return tuple(dict.fromkeys(kinds))


def describe_kinds(kinds: Iterable[str]) -> str:
    """The shortest name for ``kinds``: a level (``contention``, ``all``) or the comma-separated kinds."""
    kinds = tuple(kinds)
    for level in ("contention", "hard", "all"):
        if set(kinds) == set(LEVELS[level]):
            return level
    return ",".join(kinds)
