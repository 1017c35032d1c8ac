"""Where faults may act during a pytest session: the names of the settings and the session's roots.

Plain Python (no pytest, no sqlite3), so the plugin can set the roots at session start without
loading a fault module: an inert ``pytest`` run (no ``--dbfault``) imports nothing heavy.
:mod:`pytest_dbfault.faults.safety` reads them.

Sessions nest: a pytester run in-process inside a test starts its own session, and ending it
must give the outer session its roots back, not clear them. So the roots are a stack.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

#: Environment variable that disables the guard for the whole process when set to ``1``.
ALLOW_ANY_PATH_ENV = "DBFAULT_ALLOW_ANY_PATH"
#: Environment variable listing extra allowed roots for plain library use (``os.pathsep``-separated).
ALLOWED_ROOTS_ENV = "DBFAULT_ALLOWED_ROOTS"
#: The pytest option and ini key that add allowed roots in a pytest session.
ALLOW_ROOT_OPTION = "--dbfault-allow-root"
ALLOWED_ROOTS_INI = "dbfault_allowed_roots"

BaseTemp = Path | Callable[[], "str | os.PathLike[str]"]

#: One entry per running session, innermost last: ``[basetemp or a function giving it, extra roots]``.
#: The basetemp is asked for lazily: a run that never injects a fault creates none.
_stack: list[list[object]] = []


def push(basetemp: str | os.PathLike[str] | Callable[[], str | os.PathLike[str]],
         extra: Iterable[str | os.PathLike[str]] = ()) -> None:
    """A session starts: faults act under its ``basetemp`` and ``extra`` roots until :func:`pop`."""
    first = basetemp if callable(basetemp) else Path(basetemp).resolve()
    _stack.append([first, [Path(p).expanduser().resolve() for p in extra]])


def pop() -> None:
    """The innermost session ended: the enclosing one's roots apply again (none outside pytest)."""
    if _stack:
        _stack.pop()


def active() -> bool:
    """True while a pytest session with the dbfault plugin runs in this process."""
    return bool(_stack)


def current() -> list[Path] | None:
    """The innermost session's roots (basetemp first), or None outside pytest."""
    if not _stack:
        return None
    entry = _stack[-1]
    basetemp = entry[0]
    if callable(basetemp):
        basetemp = Path(basetemp()).resolve()
        entry[0] = basetemp
    extra = entry[1]
    assert isinstance(basetemp, Path) and isinstance(extra, list)
    return [basetemp, *extra]
