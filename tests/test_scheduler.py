"""The maintenance scheduler's two promises about its thread (reliability/durability/upkeep.py, ``Scheduler``):
``stop()`` waits for a task in progress (so ``close()`` returns with no backup or check still running against a
closed manager), and the thread never keeps the interpreter alive (an application that forgets ``close()`` still
exits). Found unjudged by the seventh mutant sample (a dropped ``join``, a non-daemon thread)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from reliability.durability.upkeep import Scheduler


def test_stop_waits_for_the_task_in_progress() -> None:
    started, finished = threading.Event(), threading.Event()

    def slow_task() -> None:
        started.set()
        time.sleep(0.2)  # (a backup in progress)
        finished.set()

    scheduler = Scheduler([("slow", 0.001, slow_task)])
    scheduler.start()
    assert started.wait(10), "the task never started"
    scheduler.stop()
    assert finished.is_set(), "stop() returned while the task was still running"
    assert not scheduler.running


def test_the_thread_never_keeps_the_interpreter_alive() -> None:
    # A task due only in an hour: the thread waits on its stop event, and nobody calls stop().
    script = ("from reliability.durability.upkeep import Scheduler\n"
              "s = Scheduler([('later', 3600, lambda: None)])\n"
              "s.start()\n"
              "assert s.running\n"
              "print('exiting', flush=True)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == "exiting", done.stderr[-500:]
