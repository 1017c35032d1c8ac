"""The one "did you mean" helper of both wings (the runtime's settings, the plugin's faults, commands and
scenario keys): which known name a mistyped one most likely means, and the phrase that says so.

Internal, and free of any import of the plugin, so ``pytest_dbfault`` may use it too::

    did_you_mean("disk_ful", ["disk_full", "locked"])   # "; did you mean 'disk_full'?"
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable


def closest(name: object, known: Iterable[str]) -> str | None:
    """The entry of ``known`` that ``name`` most likely misspells, or ``None`` (also for a non-string)."""
    if not isinstance(name, str):
        return None
    close = difflib.get_close_matches(name, sorted(k for k in known if isinstance(k, str)), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: object, known: Iterable[str], spell: Callable[[str], str] = repr) -> str:
    """``"; did you mean 'disk_full'?"`` for a near miss of ``name`` among ``known``, else ``""``.

    :param spell: how the suggestion is written (default quoted; e.g. as an environment variable name).
    """
    close = closest(name, known)
    return f"; did you mean {spell(close)}?" if close else ""


def unknown_name_message(what: str, name: str, known: Iterable[str]) -> str:
    """``unknown fault 'disk_ful'; did you mean 'disk_full'? (known: ...)``."""
    known = sorted(known)
    return f"unknown {what} {name!r}{did_you_mean(name, known)} (known: {', '.join(known)})"
