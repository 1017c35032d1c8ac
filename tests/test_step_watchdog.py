"""The machines' step watchdog (``pytest_dbfault.machines.watchdog``): a step that never returns fails where it
hangs instead of keeping the main job running until CI's own limit kills it with no verdict."""

from __future__ import annotations

import fcntl
import os
import signal
import time

import pytest

from pytest_dbfault.machines.watchdog import (
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


def test_a_step_waiting_on_a_flock_its_own_process_holds_fails_where_it_hangs(tmp_path):
    # The shape of a leaked descriptor: the lock is still held through it, so the next flock of the same process
    # on a new descriptor of the file waits forever (a real syscall, interrupted by the alarm).
    path = tmp_path / "queue"
    path.write_bytes(b"")
    held = os.open(path, os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)
    again = os.open(path, os.O_RDWR)
    t0 = time.monotonic()
    try:
        with step_watchdog("demo", seconds=0.3), pytest.raises(StepHung, match="demo machine did not return within"):
            rearm()
            fcntl.flock(again, fcntl.LOCK_EX)
    finally:
        os.close(again)
        os.close(held)
    assert time.monotonic() - t0 < 30
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL  # put back as it was
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_step_that_returns_in_time_is_left_alone():
    with step_watchdog("demo", seconds=0.5):
        for _ in range(4):  # each step well inside the bound, together past it
            rearm()
            time.sleep(0.2)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_someone_elses_alarm_handler_is_left_alone():
    # (pytest-timeout's signal method owns SIGALRM: its timeout stands instead of ours.)
    def theirs(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, theirs)
    try:
        with step_watchdog("demo", seconds=0.1):
            rearm()
            assert signal.getsignal(signal.SIGALRM) is theirs
            assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.signal(signal.SIGALRM, previous)
