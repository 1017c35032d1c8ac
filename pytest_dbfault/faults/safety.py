"""Path guard: injectors only damage, lock, chmod or delete files under allowed roots.

A typo in a test (``CorruptFault("app.db")`` run from the project directory) or a path
shared with another program (``/tmp/app.db``) must not destroy a real database. The
allowed roots depend on where the fault runs:

* **in a pytest session** (the dbfault plugin is loaded): the session's ``basetemp`` only —
  every ``tmp_path`` lies under it, other sessions' and other programs' files do not. More
  roots only through ``--dbfault-allow-root DIR`` (repeatable) or the ini key
  ``dbfault_allowed_roots`` (one directory per line);
* **outside pytest** (plain library use: scripts, benchmarks, a machine run in a child
  process): pytest's per-user temporary root (``<tmp>/pytest-of-<user>``, private to the
  user, where every pytest ``tmp_path`` lives), plus the directories listed in the
  environment variable ``DBFAULT_ALLOWED_ROOTS`` (separated by ``os.pathsep``);
* **always**: roots registered in code with :func:`allow_root`, and dbfault's own scratch
  directories — directories directly under the system temp dir named ``dbfault-*``, owned by
  this user and private (mode 0700: what ``tempfile.mkdtemp(prefix="dbfault-...")`` makes,
  as the property machines and the VFS sweep do).

Opt out per call with ``allow_unsafe=True`` or for the whole process with the environment
variable ``DBFAULT_ALLOW_ANY_PATH=1``. Paths are resolved first, so a symlink under an
allowed root that points outside it is refused too.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from .. import _guard_state
from .base import FaultError

#: Environment variable that disables the guard for the whole process when set to ``1``.
ALLOW_ANY_PATH_ENV = "DBFAULT_ALLOW_ANY_PATH"
#: Environment variable listing extra allowed roots for plain library use (``os.pathsep``-separated).
ALLOWED_ROOTS_ENV = "DBFAULT_ALLOWED_ROOTS"
#: The pytest option and ini key that add allowed roots in a pytest session.
ALLOW_ROOT_OPTION = _guard_state.ALLOW_ROOT_OPTION
ALLOWED_ROOTS_INI = _guard_state.ALLOWED_ROOTS_INI
#: Name prefix of dbfault's own scratch directories under the system temp dir.
SCRATCH_PREFIX = "dbfault-"

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


def set_session_roots(basetemp: str | os.PathLike[str] | Callable[[], str | os.PathLike[str]],
                      extra: Iterable[str | os.PathLike[str]] = ()) -> None:
    """Called by the pytest plugin: faults act under ``basetemp`` and the configured ``extra`` roots only.

    ``basetemp`` may be a function returning it (called the first time a path is checked).
    """
    first = basetemp if callable(basetemp) else Path(basetemp).resolve()
    _guard_state.session = (first, [Path(p).expanduser().resolve() for p in extra])


def clear_session_roots() -> None:
    """Called by the pytest plugin at the end of the session: back to the plain-library rule."""
    _guard_state.session = None


def in_pytest_session() -> bool:
    """True while the dbfault pytest plugin has set the session's roots."""
    return _guard_state.session is not None


def _session_roots() -> list[Path] | None:
    # The basetemp is asked for lazily: a run that never injects a fault creates none.
    state = _guard_state.session
    if state is None:
        return None
    basetemp, extra = state
    if callable(basetemp):
        basetemp = Path(basetemp()).resolve()
        _guard_state.session = (basetemp, extra)
    return [basetemp, *extra]


def allowed_roots() -> list[Path]:
    """The roots faults may act under now (see the module docstring); scratch directories are not listed."""
    session = _session_roots()
    if session is not None:
        base = session
    else:
        base = [_pytest_user_root()]
        base += [Path(p).expanduser().resolve() for p in os.environ.get(ALLOWED_ROOTS_ENV, "").split(os.pathsep)
                 if p.strip()]
    return base + [r for r in _extra_roots if r not in base]


def is_allowed(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` lies under an allowed root or a dbfault scratch directory (or the env override is set)."""
    if os.environ.get(ALLOW_ANY_PATH_ENV) == "1":
        return True
    resolved = Path(path).resolve()
    return any(resolved.is_relative_to(root) for root in allowed_roots()) or _in_scratch_dir(resolved)


def check_path(path: str | os.PathLike[str], *, action: str, allow_unsafe: bool = False) -> Path:
    """Return ``path`` resolved, or raise :class:`FaultError` if a fault may not ``action`` it.

    ``action`` is a verb phrase used in the message, e.g. ``"corrupt"`` or ``"lock"``.
    """
    resolved = Path(path).resolve()
    if allow_unsafe or is_allowed(resolved):
        return resolved
    roots = ", ".join(str(r) for r in allowed_roots())
    if _guard_state.session is not None:
        how = (f"Use a file under tmp_path, add the directory with {ALLOW_ROOT_OPTION}=DIR or the ini key "
               f"{ALLOWED_ROOTS_INI}, register it with pytest_dbfault.faults.allow_root(), pass "
               f"allow_unsafe=True, or set {ALLOW_ANY_PATH_ENV}=1.")
        where = "the allowed roots of this pytest session"
    else:
        how = (f"Outside pytest, list the directory in {ALLOWED_ROOTS_ENV}, register it with "
               f"pytest_dbfault.faults.allow_root(), create it with tempfile.mkdtemp(prefix='{SCRATCH_PREFIX}'), "
               f"pass allow_unsafe=True, or set {ALLOW_ANY_PATH_ENV}=1.")
        where = "the allowed roots"
    raise FaultError(f"refusing to {action} {resolved}: it is outside {where} ({roots}). {how}")


def _pytest_user_root() -> Path:
    """``<tmp>/pytest-of-<user>``: where pytest puts every session's basetemp for this user."""
    try:
        import getpass

        user = getpass.getuser()
    except (ImportError, KeyError, OSError):  # no user name (containers without passwd entries)
        user = "unknown"
    return (Path(tempfile.gettempdir()) / f"pytest-of-{user}").resolve()


def _in_scratch_dir(resolved: Path) -> bool:
    """True for a path inside ``<tmp>/dbfault-*`` that this user created private (0700) — dbfault's own."""
    tmp = Path(tempfile.gettempdir()).resolve()
    if not resolved.is_relative_to(tmp) or resolved == tmp:
        return False
    top = tmp / resolved.relative_to(tmp).parts[0]
    if not top.name.startswith(SCRATCH_PREFIX):
        return False
    try:
        st = os.lstat(top)
    except OSError:
        return False
    owned = not hasattr(os, "geteuid") or st.st_uid == os.geteuid()
    return stat.S_ISDIR(st.st_mode) and owned and stat.S_IMODE(st.st_mode) & 0o077 == 0
