"""Shared fixtures for the runtime's own tests: real files under tmp_path, fast settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from runtime_helpers import fast_config

from reliability import DatabaseManager

# The plugin's own tests (tests/plugin) run pytest inside pytest; pytest only accepts
# pytest_plugins in a top-level conftest.
pytest_plugins = ["pytester"]

settings.register_profile("default", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("ci", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "app.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[DatabaseManager]:
    manager = DatabaseManager(fast_config(db_path))
    manager.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, qty INTEGER)")
    yield manager
    manager.close()


@pytest.fixture
def runtime_through_vfs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The VFS faults of the test go into the runtime's SQLite build (``RELIABILITY_SQLITE_MODULE``): faults at a
    bare path act on the build ``DBFAULT_SQLITE_MODULE`` names. Skips where the shim cannot live in that build."""
    from pytest_dbfault.faults.target import MODULE_ENV
    from pytest_dbfault.vfs import vfs_available

    module = os.environ.get("RELIABILITY_SQLITE_MODULE", "").strip() or "sqlite3"
    ok, reason = vfs_available(module)
    if not ok:
        pytest.skip(f"the VFS shim cannot be registered in the SQLite of {module} (the runtime's build): {reason}")
    monkeypatch.setenv(MODULE_ENV, module)
