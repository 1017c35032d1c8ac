"""The maintenance scheduler under a real fault: a failing periodic task is logged and rescheduled, never fatal."""

from __future__ import annotations

import logging
import time

import pytest
from runtime_helpers import wait_for

from pytest_dbfault.faults import LockedFault
from reliability import DatabaseManager
from reliability.durability.upkeep import Scheduler


def test_a_periodic_write_that_meets_a_lock_is_logged_and_runs_again_once_released(
        db: DatabaseManager, caplog: pytest.LogCaptureFixture) -> None:
    def tick() -> None:
        db.execute("INSERT INTO items (name, qty) VALUES (?, 1)", (f"tick-{time.monotonic_ns()}",))

    scheduler = Scheduler([("tick", 0.01, tick)], name="test-ticks")
    try:
        with caplog.at_level(logging.ERROR, logger="reliability.health"):
            with LockedFault(db.path, mode="write"):
                scheduler.start()
                assert wait_for(lambda: scheduler.runs["tick"] >= 2)  # failed, rescheduled, failed again
                assert scheduler.running
                assert db.fetch_one("SELECT count(*) FROM items")[0] == 0
        failures = [r for r in caplog.records if r.getMessage() == "scheduled tick failed"]
        assert len(failures) >= 2 and all(r.exc_info for r in failures)
        assert wait_for(lambda: db.fetch_one("SELECT count(*) FROM items")[0] >= 1)
        assert scheduler.running
    finally:
        scheduler.stop()
    assert not scheduler.running

