"""The machines judge what runs on a timer: the health machine the scheduled maintenance (``quick_check_interval``,
``integrity_check_interval``, ``health_check_interval``; rule ``scheduled_maintenance``), the config machine the
reload timer (``config_reload_interval``; rule ``reload_on_the_timer``). Each check they make there fails against a
runtime with one realistic defect in its timer."""

from __future__ import annotations

import threading

import pytest
from bite_settings import bite_settings, run_streams

from pytest_dbfault.machines import MACHINES, run_machine
from reliability.durability import verdict
from reliability.durability.upkeep import Upkeep
from reliability.errors import DatabaseError
from reliability.health import retryable_in_maintenance

BITE = bite_settings(max_examples=60, steps=15)


def on_the_schedule() -> bool:
    return threading.current_thread().name == "reliability-maintenance"


def test_it_bites_a_scheduled_full_check_that_runs_the_quick_one(tmp_path, monkeypatch):
    # The calls are right (check_integrity(full=True) runs integrity_check); the schedule's task passes full=False.
    real = Upkeep.check_integrity
    monkeypatch.setattr(Upkeep, "check_integrity",
                        lambda self, full=False: real(self, full and not on_the_schedule()))
    with pytest.raises(AssertionError, match=r"index_entry damage .*not flagged by the scheduled integrity_check"):
        run_streams(MACHINES["health_integrity"], settings_=BITE, base_dir=str(tmp_path), enforce={11})


def test_it_bites_a_scheduled_check_that_takes_a_lock_for_damage(tmp_path, monkeypatch):
    # A transient error made a verdict, only on the schedule (where nobody sees the exception).
    real = Upkeep.check_integrity

    def check(self, full=False):
        try:
            return real(self, full)
        except DatabaseError as exc:
            if on_the_schedule() and retryable_in_maintenance(exc):
                verdict.seen_damaged(self.parts, [f"the check could not run: {exc.detail}"], "a scheduled check")
            raise

    monkeypatch.setattr(Upkeep, "check_integrity", check)
    with pytest.raises(AssertionError, match=r"scheduled \w+ under a held lock marked an intact file damaged"):
        run_streams(MACHINES["health_integrity"], settings_=BITE, base_dir=str(tmp_path), enforce={11})


def test_it_bites_a_schedule_that_reads_the_wrong_interval(tmp_path, monkeypatch):
    # The quick check scheduled with the full check's interval (0 in the machines: off), a copy-paste slip.
    real = Upkeep.__init__

    def init(self, parts, scheduler, backups, recover):
        real(self, parts, scheduler, backups, recover)
        every = parts.config.integrity_check_interval
        scheduler.tasks = [(n, every if n == "quick_check" else i, f) for n, i, f in scheduler.tasks
                           if n != "quick_check" or every > 0]

    monkeypatch.setattr(Upkeep, "__init__", init)
    with pytest.raises(AssertionError, match=r"quick_check_interval=0.02: the scheduled quick_check did not run"):
        run_machine(MACHINES["health_integrity"], settings_=BITE, base_dir=str(tmp_path), enforce={11})


def test_it_bites_a_watcher_that_does_not_follow_a_reloaded_interval(tmp_path, monkeypatch):
    # config_reload_interval reloaded is stored but the watcher's thread is never started for it.
    from reliability.reload import ConfigWatcher

    monkeypatch.setattr(ConfigWatcher, "_follow_interval", lambda self, interval: setattr(self, "interval", interval))
    with pytest.raises(AssertionError, match=r"config_reload_interval=0.02 in the watched file, .*not applied within"):
        run_machine(MACHINES["config"], settings_=BITE, base_dir=str(tmp_path), enforce={16})
