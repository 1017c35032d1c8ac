"""Path guard: injectors only damage, lock, chmod or delete files under allowed roots.

A typo in a test (``CorruptFault("app.db")`` run from the project directory) must not
destroy a real database. By default the allowed roots are the system temp directory
(which holds pytest's ``tmp_path`` unless ``--basetemp`` moves it) plus any root
registered with :func:`allow_root` — the pytest plugin registers its basetemp.

Opt out per call with ``allow_unsafe=True`` or for the whole process with the
environment variable ``DBFAULT_ALLOW_ANY_PATH=1``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .base import FaultError

#: Environment variable that disables the guard for the whole process when set to ``1``.
ALLOW_ANY_PATH_ENV = "DBFAULT_ALLOW_ANY_PATH"

_extra_roots: list[Path] = []


def allow_root(path: str | os.PathLike[str]) -> Path:
    """Allow faults to act on files under ``path`` (resolved); returns the resolved root."""
    root = Path(path).resolve()
    if root not in _extra_roots:
        _extra_roots.append(root)
    return root


def forget_root(path: str | os.PathLike[str]) -> None:
    """Undo :func:`allow_root` (unknown roots are ignored)."""
    root = Path(path).resolve()
    if root in _extra_roots:
        _extra_roots.remove(root)


def allowed_roots() -> list[Path]:
    """The system temp directory followed by every root registered with :func:`allow_root`."""
    return [Path(tempfile.gettempdir()).resolve(), *_extra_roots]


def is_allowed(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` lies under an allowed root (or the env override is set)."""
    if os.environ.get(ALLOW_ANY_PATH_ENV) == "1":
        return True
    resolved = Path(path).resolve()
    return any(resolved.is_relative_to(root) for root in allowed_roots())


def check_path(path: str | os.PathLike[str], *, action: str, allow_unsafe: bool = False) -> Path:
    """Return ``path`` resolved, or raise :class:`FaultError` if a fault may not ``action`` it.

    ``action`` is a verb phrase used in the message, e.g. ``"corrupt"`` or ``"lock"``.
    """
    resolved = Path(path).resolve()
    if allow_unsafe or is_allowed(resolved):
        return resolved
    roots = ", ".join(str(r) for r in allowed_roots())
    raise FaultError(
        f"refusing to {action} {resolved}: it is outside the allowed roots ({roots}). "
        f"Use a file under tmp_path, register its directory with "
        f"pytest_dbfault.faults.allow_root(), pass allow_unsafe=True, "
        f"or set {ALLOW_ANY_PATH_ENV}=1."
    )
