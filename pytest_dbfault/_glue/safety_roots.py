"""pytest glue for the fault path guard: the session's basetemp is the allowed root (see :mod:`..faults.safety`).

:mod:`pytest_dbfault.plugin` registers :class:`SafetyRoots`. Extra roots come only from
``--dbfault-allow-root DIR`` (repeatable, relative to the invocation directory) or the ini key
``dbfault_allowed_roots`` (one directory per line, relative to the ini file); both are declared in
:data:`pytest_dbfault.options.OPTIONS`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .. import _guard_state as state
from ..options import OPTIONS
from .pytest_internals import session_tmp_path_factory

_ALLOW = OPTIONS["allow_root"]


class SafetyRoots:
    """Sets the fault guard's roots for the session (basetemp + configured roots) and clears them after."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def roots(self) -> list[Path]:
        """The extra roots from the command line and the ini file, resolved."""
        here = Path(self.config.invocation_params.dir)
        given = [here / Path(p).expanduser() for p in self.config.getoption(_ALLOW.dest) or []]
        return given + [Path(p) for p in self.config.getini(str(_ALLOW.ini))]

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        factory = session_tmp_path_factory(self.config)
        if factory is None:  # pragma: no cover - only with -p no:tmpdir: nothing to anchor the guard to
            return
        # What faults.safety.set_session_roots does, without importing the injectors (inert runs stay light).
        state.push(self, (factory.getbasetemp, [p.expanduser().resolve() for p in self.roots()]))

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        state.pop(self)
