"""The background health check (``health_check_interval``) runs and finds what only a look finds.

The setting was documented ("seconds between background health checks") and read by nothing: an idle manager
whose ``-wal`` was removed under it noticed only at its next call (h15-wal's finding, 2026-12-02), and until then
every other process met a disk I/O error or the database as of the last checkpoint.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from test_wal_removed_live import _seen_by_another_process, _start, _write

from reliability import DatabaseManager


def _until(condition, seconds: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    """Wait on progress (never a timing assertion): True as soon as ``condition()`` holds."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_an_idle_manager_saves_a_removed_wal_without_being_called(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    db = _start(path)
    db.close()
    db = DatabaseManager(db.config.replace(health_check_interval=0.05))
    try:
        ids = _write(db, "r", 10)
        os.remove(str(path) + "-wal")
        # No call to db from here on: only its background health check can look.
        want = ",".join(sorted(ids)) + " ok"
        assert _until(lambda: _seen_by_another_process(path) == want), _seen_by_another_process(path)
    finally:
        db.close()


def test_a_change_of_status_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "app.db"
    db = _start(path)
    db.close()
    with caplog.at_level(logging.INFO, logger="reliability"):
        db = DatabaseManager(db.config.replace(health_check_interval=0.05))
        try:
            assert _until(lambda: db.durability.scheduler.runs.get("health_check", 0) >= 3)
        finally:
            db.close()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"health of {path} is ")]
    assert lines == [f"health of {path} is healthy: no problem found"]


def test_zero_turns_it_off(tmp_path: Path) -> None:
    db = _start(tmp_path / "app.db")
    try:
        assert db.config.health_check_interval == 0 and "health_check" not in db.durability.scheduler.runs
    finally:
        db.close()
