"""The config machine's rule ``reload_on_the_timer`` judges ``config_reload_interval`` 0 too (README: "seconds between
checks of `.env` for hot reload (0 = off)"): set to a text of zero in the watched file, the watcher's thread stops; a
later change is applied by a call only. Called with fixed arguments on a fresh machine, it passes on the runtime and
fails against a runtime with one realistic defect of that kind."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from reliability import reload as reload_module

MACHINE = MACHINES["config"]


def run_rule(base: Path, attempts: list[int]) -> None:
    base.mkdir(parents=True, exist_ok=True)
    machine = bind(MACHINE, None, base_dir=str(base), enforce={16})()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()}, frozenset({"reload"}))
    try:
        assert machine.watcher is not None
        for n in attempts:
            machine.reload_on_the_timer(n)
    finally:
        machine.teardown()


def test_the_rule_passes_on_the_runtime(tmp_path):
    run_rule(tmp_path, [1, 2, 3, 4, 5, 6])


def test_it_bites_a_watcher_that_keeps_its_thread_at_zero(tmp_path, monkeypatch):
    # The thread is stopped only for an interval below zero: at 0 it keeps running, checking the file without pause.
    def follow(self, interval):
        self.interval = interval
        alive = self._thread is not None and self._thread.is_alive() and not self._stop.is_set()
        if interval < 0 and alive:
            self.stop()
        elif interval > 0 and not alive and not self.db.closed:
            self._start_thread()

    monkeypatch.setattr(reload_module.ConfigWatcher, "_follow_interval", follow)
    with pytest.raises(AssertionError, match=r"p16_config_hot_reload violated .*config_reload_interval=0[0.]* \(off\) "
                                             r"in the watched file, then retry_attempts=3: applied without a call"):
        run_rule(tmp_path, [2])


def test_it_bites_a_watcher_that_never_stops_following_the_file(tmp_path, monkeypatch):
    # A reloaded interval only ever starts the thread or changes its pace ("stop" left to close()).
    def follow(self, interval):
        alive = self._thread is not None and self._thread.is_alive() and not self._stop.is_set()
        if interval > 0:
            self.interval = interval
            if not alive and not self.db.closed:
                self._start_thread()

    monkeypatch.setattr(reload_module.ConfigWatcher, "_follow_interval", follow)
    with pytest.raises(AssertionError, match=r"config_reload_interval=0[0.]* \(off\) in the watched file, then "
                                             r"retry_attempts=2: applied without a call"):
        run_rule(tmp_path, [1])
