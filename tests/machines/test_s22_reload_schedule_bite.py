"""The reload machine judges the maintenance schedule's promises (issue #14, surviving mutant ``upkeep.py:94``): a
short interval reloaded is the pace of the task (it runs, never more than once per interval, not after it is turned
off or the application closed: ``reload_schedule_runs``), and no thread of the runtime dies of an unhandled exception
(the invariant ``no_runtime_thread_died``; with nothing scheduled no thread runs at all). The rules are called
directly with chosen arguments: no Hypothesis search order involved."""

from __future__ import annotations

import threading
import time

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.durability.upkeep import Scheduler

P16 = "p16_config_hot_reload violated"


def started(tmp_path):
    return started_machine("reload_effects", tmp_path)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # (the defect's own report)
def test_it_bites_a_start_that_runs_a_thread_with_nothing_to_do(tmp_path, monkeypatch):
    # start() forgets "no thread while there is nothing to run": its loop then finds no task due and dies.
    def start(self):
        with self._guard:
            self._wanted = True
            if self.running:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._loop, args=(self._stop,), name=self._name, daemon=True)
            self._thread.start()

    monkeypatch.setattr(Scheduler, "start", start)
    machine = started(tmp_path)  # (every interval 0: nothing scheduled)
    deadline = time.monotonic() + 10.0  # (waits for the thread's death, however late a loaded machine runs it)
    while not machine.thread_deaths and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(AssertionError, match=rf"{P16} .*a background thread of the runtime died of an unhandled "
                                             r"exception: \[\('reliability-maintenance'"):
        run_and_tear_down(machine, lambda m: m.no_runtime_thread_died())


@pytest.mark.parametrize("task", ["health_check", "quick_check"])
def test_it_bites_a_reschedule_that_leaves_the_old_loop_running(task, tmp_path, monkeypatch):
    # The reschedule starts a loop on the new tasks but never stops the one running: turned off, the task goes on.
    def restart(self):
        if self.running or self._wanted:
            with self._guard:
                self._thread = None
            self.start()

    monkeypatch.setattr(Scheduler, "_restart", restart)
    machine = started(tmp_path)
    with pytest.raises(AssertionError, match=rf"{P16} .*{task}_interval reloaded to 0.05 s, then reloaded to 0 "
                                             r"\(off\): the task still ran"):
        run_and_tear_down(machine, lambda m: m.reload_schedule_runs(task, 0.05, 3, "off"))


def test_it_bites_a_schedule_that_runs_twice_as_often(tmp_path, monkeypatch):
    # A unit slip in the reschedule: the interval in force is half the configured one.
    real = Scheduler.set_interval
    monkeypatch.setattr(Scheduler, "set_interval", lambda self, name, interval: real(self, name, interval / 2))
    machine = started(tmp_path)
    with pytest.raises(AssertionError, match=rf"{P16} .*health_check_interval reloaded to 0.05 s: the task ran 6 "
                                             r"times in .* more than once per interval"):
        run_and_tear_down(machine, lambda m: m.reload_schedule_runs("health_check", 0.05, 6, "restart"))


def test_it_bites_a_schedule_that_never_runs_a_task_turned_on(tmp_path, monkeypatch):
    # The reschedule records the new interval but the loop keeps the tasks it started with (none).
    monkeypatch.setattr(Scheduler, "_restart", lambda self: None)
    monkeypatch.setattr("pytest_dbfault.machines.health.SCHEDULE_WAIT", 0.5)
    machine = started(tmp_path)
    with pytest.raises(AssertionError, match=rf"{P16} .*quick_check_interval reloaded to 0.03 s: the task ran 0 "
                                             r"time\(s\)"):
        run_and_tear_down(machine, lambda m: m.reload_schedule_runs("quick_check", 0.03, 3, "off"))


@pytest.mark.parametrize("task", ["health_check", "quick_check"])
@pytest.mark.parametrize("after", ["off", "restart"])
def test_the_same_calls_pass_on_the_runtime(task, after, tmp_path):
    def calls(m):
        m.reload_schedule_runs(task, 0.03, 6, after)
        m.reload_schedule_runs(task, 0.05, 3, after)
        m.no_runtime_thread_died()

    run_and_tear_down(started(tmp_path), calls)
