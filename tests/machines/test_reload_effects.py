"""The reload-effects machine (P16 for settings that need a new connection) passes on the runtime and bites."""

from __future__ import annotations

import re

import pytest
from bite_settings import bite_settings, run_streams, violations_raised
from hypothesis import settings

from pytest_dbfault.machines import run_machine
from pytest_dbfault.machines.reload_effects import ReloadEffectsMachine, gives_extended_codes
from pytest_dbfault.stats import property_id


def _runtime_module():
    import importlib
    import os

    return importlib.import_module(os.environ.get("RELIABILITY_SQLITE_MODULE", "").strip() or "sqlite3")


BITE = bite_settings(max_examples=30, steps=10)
#: For a check one rule of many makes (the machine has nine of its own besides the workload's).
WIDE = bite_settings(max_examples=80, steps=10)


def test_the_machine_passes_on_the_runtime(tmp_path):
    run_machine(ReloadEffectsMachine, settings_=settings(BITE, max_examples=6), base_dir=str(tmp_path))


def test_the_machine_bites_a_reload_that_keeps_the_old_connection(tmp_path, monkeypatch):
    # The planted bug p16_reload_keeps_the_connection: the config is swapped, the open connection kept,
    # so the next call runs with the old foreign_keys / busy_timeout.
    monkeypatch.setattr("reliability.reload.RECONNECT_KEYS", frozenset())
    with pytest.raises(AssertionError, match=property_id(16)):
        run_streams(ReloadEffectsMachine, settings_=BITE, base_dir=str(tmp_path), enforce={16})


def test_the_machine_bites_a_queue_limit_the_reload_does_not_change(tmp_path, monkeypatch):
    # The planted bug p16_queue_limit_not_reloaded: the queue keeps the limit it was built with.
    from reliability.degraded.queue import WriteQueue

    monkeypatch.setattr(WriteQueue, "max_entries", property(lambda self: 10_000, lambda self, value: None),
                        raising=False)
    with pytest.raises(AssertionError, match="write_queue_max reloaded"):
        run_streams(ReloadEffectsMachine, settings_=BITE, base_dir=str(tmp_path), enforce={16})


def test_the_machine_bites_a_wal_size_read_from_the_database_file(tmp_path, monkeypatch):
    # The planted bug p10_wal_size_of_the_database: health() reports the database file's size as the WAL's.
    import os

    monkeypatch.setattr("reliability.manager.wal_size", lambda path: os.path.getsize(path))
    with pytest.raises(AssertionError, match="wal_size is"):
        run_streams(ReloadEffectsMachine, settings_=BITE, base_dir=str(tmp_path), enforce={10})


@pytest.mark.skipif(not gives_extended_codes(_runtime_module()),
                    reason="this SQLite module gives no extended codes (Python 3.10's sqlite3, pysqlite3): the "
                           "runtime sees SQLITE_BUSY_SNAPSHOT as busy by design, so there is no 517 to lose")
def test_the_machine_bites_a_classifier_that_loses_busy_snapshot(tmp_path, monkeypatch):
    # The planted bug p02_busy_snapshot_retried_as_statement: code 517 falls back to its primary code (busy).
    from reliability import errors

    monkeypatch.delitem(errors._BY_EXTENDED, 517)
    with pytest.raises(AssertionError, match="stale snapshot failed as busy"):
        run_streams(ReloadEffectsMachine, settings_=WIDE, base_dir=str(tmp_path), enforce={2})


def test_the_machine_bites_a_journal_that_ignores_a_synchronous_reload(tmp_path, monkeypatch):
    # The planted bug p16_journal_ignores_synchronous_reload (the runtime's own defect until session 9): SQLite
    # follows the reloaded level, the redo journal keeps flushing (or not) as it started.
    from reliability.redo import RedoJournal

    real = RedoJournal.follow_synchronous
    started: set[int] = set()

    def only_at_start(self, level: str) -> None:
        if id(self) not in started:
            started.add(id(self))
            real(self, level)

    monkeypatch.setattr(RedoJournal, "follow_synchronous", only_at_start)
    # (It needs a start at NORMAL, a journal, and this rule among many: the search is wider than the others'.
    # Under FULL -> EXTRA whether the mark is flushed anyway is a race, so a replay may differ, and the error
    # Hypothesis raises then need not hold the violation: what counts is that the check failed.)
    raised = violations_raised(ReloadEffectsMachine, monkeypatch)
    with pytest.raises(BaseException):  # noqa: B017,PT011 - an AssertionError, or Hypothesis' flaky-replay errors
        run_machine(ReloadEffectsMachine, settings_=bite_settings(max_examples=600, steps=10), base_dir=str(tmp_path),
                    enforce={16})
    assert any(re.search("synchronous reloaded to (FULL|EXTRA)", m) for m in raised), raised[:1]


def test_the_machine_bites_a_backup_keep_the_reload_does_not_change(tmp_path, monkeypatch):
    # The planted bug p16_backup_keep_not_reloaded (the runtime's own defect until session 9): the backups keep
    # the count they were built with; everything else a reload reaches still follows it.
    from reliability.durability import Durability

    real = Durability.follow_config

    def all_but_keep(self, new):
        keep = self.backups.keep
        real(self, new)
        self.backups.keep = keep

    monkeypatch.setattr(Durability, "follow_config", all_but_keep)
    with pytest.raises(AssertionError, match="backup_keep reloaded"):
        run_streams(ReloadEffectsMachine, settings_=BITE, base_dir=str(tmp_path), enforce={16})


def test_the_machine_bites_a_schedule_the_reload_does_not_change(tmp_path, monkeypatch):
    # The planted bug p16_schedule_not_reloaded (the runtime's own defect until session 9): the schedule keeps
    # the intervals it was built with.
    from reliability.durability.upkeep import Scheduler

    monkeypatch.setattr(Scheduler, "set_interval", lambda self, name, interval: False)
    with pytest.raises(AssertionError, match="_interval reloaded"):
        run_streams(ReloadEffectsMachine, settings_=BITE, base_dir=str(tmp_path), enforce={16})
