"""The fault path guard's session state, kept apart so the pytest plugin can set it without importing the
injectors (an inert run imports none of them). Read by :mod:`pytest_dbfault.faults.safety`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .options import OPTIONS

#: The pytest option and ini key that add allowed roots in a pytest session (declared in the options table).
ALLOW_ROOT_OPTION = str(OPTIONS["allow_root"].cli)
ALLOWED_ROOTS_INI = str(OPTIONS["allow_root"].ini)

#: ``(basetemp or a function giving it, configured roots)`` while a pytest session runs; None otherwise.
session: tuple[Path | Callable[[], str | os.PathLike[str]], list[Path]] | None = None
#: Sessions nested in this process (pytester's in-process runs): ``(owner, state)``, innermost last. When
#: the inner one ends, the outer one's roots are back in force.
stack: list[tuple[object, tuple[Path | Callable[[], str | os.PathLike[str]], list[Path]]]] = []


def push(owner: object, state: tuple[Path | Callable[[], str | os.PathLike[str]], list[Path]]) -> None:
    """A session starts: its roots are in force until :func:`pop`."""
    global session
    stack.append((owner, state))
    session = state


def pop(owner: object) -> None:
    """The session of ``owner`` ended: the enclosing session's roots (or none) are in force again."""
    global session
    stack[:] = [(o, s) for o, s in stack if o is not owner]
    session = stack[-1][1] if stack else None
