"""pytest glue for the fault path guard: the session's basetemp is the allowed root (see :mod:`.faults.safety`).

:mod:`.plugin` calls :func:`addoption` and registers :class:`SafetyRoots`. Extra roots come only from
``--dbfault-allow-root DIR`` (repeatable, relative to the invocation directory) or the ini key
``dbfault_allowed_roots`` (one directory per line, relative to the ini file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from . import session_roots
from .session_roots import ALLOW_ROOT_OPTION, ALLOWED_ROOTS_INI


def addoption(parser: pytest.Parser, group: Any) -> None:
    """Add ``--dbfault-allow-root`` and the ini key ``dbfault_allowed_roots``."""
    group.addoption(ALLOW_ROOT_OPTION, action="append", dest="dbfault_allow_root", metavar="DIR",
                    default=[], help="also let faults act on files under DIR (repeatable; by default only the "
                                     "session's basetemp, where every tmp_path lies). Ini: "
                                     f"{ALLOWED_ROOTS_INI}.")
    parser.addini(ALLOWED_ROOTS_INI, type="paths", default=[],
                  help=f"directories (one per line) faults may act on besides the session's basetemp "
                       f"(also {ALLOW_ROOT_OPTION})")


class SafetyRoots:
    """Sets the fault guard's roots for the session (basetemp + configured roots) and clears them after."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def roots(self) -> list[Path]:
        """The extra roots from the command line and the ini file, resolved."""
        here = Path(self.config.invocation_params.dir)
        given = [here / Path(p).expanduser() for p in self.config.getoption("dbfault_allow_root") or []]
        return given + [Path(p) for p in self.config.getini(ALLOWED_ROOTS_INI)]

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        factory = getattr(self.config, "_tmp_path_factory", None)  # set by pytest's tmp_path plugin
        if factory is None:  # pragma: no cover - only with -p no:tmpdir: nothing to anchor the guard to
            return
        # session_roots, not faults.safety: an inert plugin loads no fault module (nor sqlite3).
        session_roots.push(factory.getbasetemp, self.roots())

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # Pop at the end of the session it pushed for: an in-process pytester session inside a test gives
        # the outer session its roots back.
        if getattr(self.config, "_tmp_path_factory", None) is not None:
            session_roots.pop()
