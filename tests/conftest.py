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
