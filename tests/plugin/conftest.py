"""Fixtures for the plugin's tests, which run pytest inside pytest with ``pytester``.

``pytester`` itself is enabled in tests/conftest.py (pytest accepts ``pytest_plugins`` only
in a top-level conftest).
"""

from __future__ import annotations

import pytest

#: A real third-party fault, registered through the hook: the worked example of docs/plugin.md.
QUERY_ONLY_CONFTEST = '''
import sqlite3

from pytest_dbfault.faults.base import Fault


class QueryOnlyFault(Fault):
    """The connection refuses every write (PRAGMA query_only) until healed."""

    name = "query_only"

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__()
        self.conn = conn

    def _inject(self) -> None:
        self.conn.execute("PRAGMA query_only = 1")

    def _heal(self) -> None:
        self.conn.execute("PRAGMA query_only = 0")


def pytest_dbfault_register_faults(register):
    register(QueryOnlyFault)
'''


@pytest.fixture(autouse=True)
def _no_dbfault_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The inner runs must not inherit dbfault settings from the shell running these tests."""
    for name in ("DBFAULT", "DBFAULT_FAULTS", "DBFAULT_SEED", "DBFAULT_REPORT", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def query_only_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester project whose conftest registers the ``query_only`` fault."""
    pytester.makeconftest(QUERY_ONLY_CONFTEST)
    return pytester

@pytest.fixture(autouse=True)
def _restore_hypothesis_seed():  # type: ignore[no-untyped-def]
    """In-process pytester runs with --dbfault pass a seed to Hypothesis' own plugin, which sets a
    process-wide forced seed and never resets it: put it back so later tests keep their own seeds."""
    from hypothesis import core

    saved = core.global_force_seed
    yield
    core.global_force_seed = saved
