"""pytest glue for the fault path guard: the session's basetemp is the allowed root (see :mod:`.faults.safety`).

:mod:`.plugin` calls :func:`addoption` and registers :class:`SafetyRoots`. Extra roots come only from
``--dbfault-allow-root DIR`` (repeatable, relative to the invocation directory) or the ini key
``dbfault_allowed_roots`` (one directory per line, relative to the ini file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from . import _guard_state as state


def addoption(parser: pytest.Parser, group: Any) -> None:
    """Add ``--dbfault-allow-root`` and the ini key ``dbfault_allowed_roots``."""
    group.addoption(state.ALLOW_ROOT_OPTION, action="append", dest="dbfault_allow_root", metavar="DIR",
                    default=[], help="also let faults act on files under DIR (repeatable; by default only the "
                                     "session's basetemp, where every tmp_path lies). Ini: "
                                     f"{state.ALLOWED_ROOTS_INI}.")
    parser.addini(state.ALLOWED_ROOTS_INI, type="paths", default=[],
                  help=f"directories (one per line) faults may act on besides the session's basetemp "
                       f"(also {state.ALLOW_ROOT_OPTION})")


class SafetyRoots:
    """Sets the fault guard's roots for the session (basetemp + configured roots) and clears them after."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def roots(self) -> list[Path]:
        """The extra roots from the command line and the ini file, resolved."""
        here = Path(self.config.invocation_params.dir)
        given = [here / Path(p).expanduser() for p in self.config.getoption("dbfault_allow_root") or []]
        return given + [Path(p) for p in self.config.getini(state.ALLOWED_ROOTS_INI)]

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        factory = getattr(self.config, "_tmp_path_factory", None)  # set by pytest's tmp_path plugin
        if factory is None:  # pragma: no cover - only with -p no:tmpdir: nothing to anchor the guard to
            return
        # What faults.safety.set_session_roots does, without importing the injectors (inert runs stay light).
        state.push(self, (factory.getbasetemp, [p.expanduser().resolve() for p in self.roots()]))

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        state.pop(self)
