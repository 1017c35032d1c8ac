"""What scenario files need beyond dbfault itself, checked before anything imports it.

Scenario files are read with PyYAML and their data made with Faker, both in the ``plugin`` extra
(``pip install 'dbfault[plugin]'``). Without them ``pytest --dbfault`` with a scenario file present
stops with one line saying what to install and a usage error, not an ``ImportError`` traceback.
This module imports nothing heavy so the check itself cannot fail the same way.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

#: Import name → distribution name of what reading and running a scenario file needs.
NEEDED = {"yaml": "PyYAML", "faker": "Faker"}


def missing_modules() -> list[str]:
    """Distribution names of the needed modules that cannot be imported here."""
    missing = []
    for module, dist in NEEDED.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken or blocked installation counts as missing
            found = False
        if not found:
            missing.append(dist)
    return missing


def require_plugin_extra(file_path: Path, config: Any) -> bool:
    """True when scenario files can be read here; else arrange a usage error naming what to install.

    The error is raised when collection finishes (exit code 4, one ``ERROR:`` line): raised from
    ``pytest_collect_file`` itself, pytest would report any exception, ``UsageError`` included, as a
    collection error with a traceback. The file is not collected meanwhile.
    """
    missing = missing_modules()
    if not missing:
        return True
    if not config.pluginmanager.has_plugin(_PLUGIN_NAME):
        config.pluginmanager.register(_MissingExtra(file_path, missing), _PLUGIN_NAME)
    return False


_PLUGIN_NAME = "dbfault-missing-extra"


class _MissingExtra:
    """Turns the first scenario file found without the extra into a usage error after collection."""

    def __init__(self, file_path: Path, missing: list[str]) -> None:
        self.message = (f"{file_path.name}: scenario files need {' and '.join(missing)}, from the plugin extra: "
                        f"pip install 'dbfault[plugin]'")

    def pytest_collection_finish(self, session: Any) -> None:
        import pytest

        raise pytest.UsageError(self.message)
