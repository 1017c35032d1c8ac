"""The fault-path tests break the runtime's own database: faults aimed at its path use its SQLite build."""

from __future__ import annotations

import pytest
from runtime_helpers import SQLITE_MODULE_NAME

from pytest_dbfault.faults.target import MODULE_ENV


@pytest.fixture(autouse=True)
def _faults_use_the_runtimes_sqlite_build(monkeypatch: pytest.MonkeyPatch) -> None:
    # A lock taken through another copy of SQLite in this process would go unseen (tox cells run the
    # runtime on sqlean or pysqlite3); the tests of the fault injectors themselves use stdlib victims.
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)
