"""The machines' step watchdog (``pytest_dbfault.hang``, on the plugin's one hang watchdog
``pytest_dbfault.hang``): a step that never returns fails where it hangs instead of keeping the main job running
until CI's own limit kills it with no verdict."""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time

import pytest

from pytest_dbfault.hang import (
    DEFAULT_STEP_SECONDS,
    STEP_SECONDS_ENV,
    StepHung,
    rearm,
    step_seconds,
    step_watchdog,
)


def test_the_bound_comes_from_the_environment():
    assert step_seconds({}) == DEFAULT_STEP_SECONDS
    assert step_seconds({STEP_SECONDS_ENV: " 7.5 "}) == 7.5
    assert step_seconds({STEP_SECONDS_ENV: "0"}) == step_seconds({STEP_SECONDS_ENV: "OFF"}) == 0.0


@pytest.mark.parametrize("raw", ["-1", "nan", "inf", "soon"])
def test_a_bad_bound_is_refused_naming_the_variable(raw):
    with pytest.raises(ValueError, match=rf"{STEP_SECONDS_ENV}=.*positive number of seconds"):
        step_seconds({STEP_SECONDS_ENV: raw})


def watchdog_threads():
    return [t for t in threading.enumerate() if t.name == "dbfault-step-watchdog"]


def test_a_step_waiting_on_a_flock_its_own_process_holds_fails_where_it_hangs(tmp_path):
    # The shape of a leaked descriptor: the lock is still held through it, so the next flock of the same process
    # on a new descriptor of the file waits forever (a real system call, interrupted by the watchdog's signal).
    path = tmp_path / "queue"
    path.write_bytes(b"")
    held = os.open(path, os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)
    again = os.open(path, os.O_RDWR)
    try:
        with step_watchdog("the demo machine", seconds=0.3), \
                pytest.raises(StepHung, match="a step of the demo machine did not return within"):
            rearm()
            fcntl.flock(again, fcntl.LOCK_EX)
    finally:
        os.close(again)
        os.close(held)
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL  # put back as it was
    for thread in watchdog_threads():
        thread.join(5)
    assert not watchdog_threads()


def spin() -> None:
    j = 0
    while j < 10:  # the defect: an index that never moves
        j += 0


def test_a_python_loop_that_never_ends_fails_where_it_hangs():
    # (The loop is in a function of its own, as a runtime's is: CPython 3.13.0 does not find the handlers of the
    # frame whose loop a signal handler interrupts; its callers' it finds.)
    with step_watchdog("the demo machine", seconds=0.3), pytest.raises(StepHung) as caught:
        rearm()
        spin()
    # (the innermost frame is the handler that raised; the one it interrupted is the loop's)
    assert [e.name for e in caught.traceback[-2:]] == ["spin", "_on_signal"]


def test_steps_that_return_in_time_are_left_alone():
    with step_watchdog("the demo machine", seconds=3.0):
        for _ in range(4):  # each step well inside the bound (a loaded machine may stretch a sleep), together past it
            rearm()
            time.sleep(0.8)


def test_someone_elses_handler_of_the_signal_is_left_alone():
    # (chaos mode's own watchdog holds the signal during a chaos run: its per-test timeout stands.)
    def theirs(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGUSR2, theirs)
    try:
        with step_watchdog("the demo machine", seconds=0.1):
            rearm()
            assert signal.getsignal(signal.SIGUSR2) is theirs
            assert not watchdog_threads()
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_after_a_hang_later_steps_of_the_run_get_a_bound_measured_on_the_run(monkeypatch):
    # Hypothesis shrinks a hung example and replays it: each candidate that hangs again must not cost the whole
    # bound. After the first hang the bound is AFTER_HANG_FACTOR x the longest step that returned (here ~0.1 s),
    # at least AFTER_HANG_FLOOR (lowered for the test): the second hang is cut within seconds, not at the run's 60 s.
    from pytest_dbfault import hang

    monkeypatch.setattr(hang, "AFTER_HANG_FLOOR", 1.0)
    with step_watchdog("the demo machine", seconds=60.0):
        watchdog = hang._ARMED[0]
        watchdog.timeout = 2.0  # (the first hang cut at 2 s to keep the test short; the run's bound stays 60 s)
        rearm()
        time.sleep(0.1)  # a step that returns
        rearm()
        with pytest.raises(StepHung, match="within 2 s"):
            spin()
        rearm()  # the next step, as Hypothesis starts a shrink candidate: the shorter bound
        assert watchdog.hung and watchdog.longest >= 0.1
        assert watchdog.timeout == max(1.0, hang.AFTER_HANG_FACTOR * watchdog.longest) < 60.0
        with pytest.raises(StepHung) as caught:
            spin()
        # (The message names the bound that cut the step: the shorter one, not the run's 60 s.)
        assert f"did not return within {watchdog.timeout:g} s" in str(caught.value)


def test_steps_of_a_run_with_no_hang_keep_the_whole_bound():
    from pytest_dbfault import hang

    with step_watchdog("the demo machine", seconds=60.0):
        watchdog = hang._ARMED[0]
        for _ in range(3):
            rearm()
            time.sleep(0.05)
        assert not watchdog.hung and watchdog.timeout == 60.0
