"""The fault path guard's session state, kept apart so the pytest plugin can set it without importing the
injectors (an inert run imports none of them). Read by :mod:`pytest_dbfault.faults.safety`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

#: The pytest option and ini key that add allowed roots in a pytest session.
ALLOW_ROOT_OPTION = "--dbfault-allow-root"
ALLOWED_ROOTS_INI = "dbfault_allowed_roots"

#: ``(basetemp or a function giving it, configured roots)`` while a pytest session runs; None otherwise.
session: tuple[Path | Callable[[], str | os.PathLike[str]], list[Path]] | None = None
