"""The dataloss machine's rules in which another live process acts at the same moment as this one:

* ``queue_from_another_process``: another process appends writes to the shared durable write queue while this
  runtime replays it: every write acknowledged as queued is applied exactly once, none lost;
* ``temps_of_a_live_process``: a manager's start sweeps the temporaries crashes left, never one of a live process.

Each rule is called directly with fixed arguments (no Hypothesis search), so adding rules to the machine does not
move these bites."""

from __future__ import annotations

import random

import pytest

import reliability.degraded.queue as queue_module
from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from reliability import files


def run_rule(tmp_path, call, times: int = 1) -> str:
    """``call(machine)`` up to ``times`` times on a fresh example (the first value of every setting): the first
    violation, or ""."""
    machine = bind(MACHINES["dataloss"], None, base_dir=str(tmp_path), enforce={11, 13, 14})()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()}, frozenset())
    try:
        machine.transfer(0, 1, 2, 5)
        for _ in range(times):
            call(machine)
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    finally:
        machine.teardown()
    return ""


class NoFlock:
    """The queue file's ``flock`` dropped in this process (the other process still locks it)."""

    LOCK_EX = 2
    LOCK_SH = 1

    @staticmethod
    def flock(fd: int, operation: int) -> None:
        pass


@pytest.mark.parametrize(("count", "gap", "who"), [(12, 0.001, 0), (8, 0.0, 1), (5, 0.003, 0)])
def test_queue_real_runtime_passes(tmp_path, count, gap, who):
    assert run_rule(tmp_path, lambda m: m.queue_from_another_process(count, gap, who), times=3) == ""


@pytest.mark.parametrize(("count", "gap", "who"), [(12, 0.001, 0), (12, 0.0, 1)])
def test_queue_bites_a_replay_that_does_not_lock_the_shared_file(tmp_path, monkeypatch, count, gap, who):
    monkeypatch.setattr(queue_module, "fcntl", NoFlock)
    found = run_rule(tmp_path, lambda m: m.queue_from_another_process(count, gap, who), times=10)
    assert "p14_command_continuity violated" in found and "lost" in found, found


@pytest.mark.parametrize(("tag", "age", "odd"), [("create", 2, "no_tid"), ("damaged", 1000, "not_a_pid"),
                                                  ("create", 30, "not_a_pid")])
def test_sweep_real_runtime_passes(tmp_path, tag, age, odd):
    assert run_rule(tmp_path, lambda m: m.temps_of_a_live_process(tag, age, odd), times=2) == ""


@pytest.mark.parametrize(("tag", "number"), [("create", "p13"), ("damaged", "p11")])
def test_sweep_bites_one_that_trusts_age_alone(tmp_path, monkeypatch, tag, number):
    monkeypatch.setattr(files, "_process_alive", lambda pid: False)
    found = run_rule(tmp_path, lambda m: m.temps_of_a_live_process(tag, 2, "no_tid"))
    assert f"{number}_" in found and "removed that process's temporary" in found, found


def sloppy_sweep(path, tag, *, now=None):
    """The sweep with its name check joined by ``and`` (a name that is no temporary of the runtime is swept)."""
    import os
    import time
    from pathlib import Path

    base = Path(path)
    prefix = f"{base.name}.{tag}-"
    now = time.time() if now is None else now
    removed = []
    for name in [n for n in os.listdir(base.parent) if n.startswith(prefix)]:
        pid, dash, tid = name[len(prefix):].partition("-")
        if pid.isdigit() and (int(pid) == os.getpid() or files._process_alive(int(pid))):
            continue
        leftover = base.with_name(name)
        if now - os.lstat(leftover).st_mtime < files.LEFTOVER_AGE:
            continue
        os.unlink(leftover)
        removed.append(leftover)
    return removed


def test_sweep_bites_one_that_takes_any_name_for_a_temporary(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "remove_leftover_temps", sloppy_sweep)
    found = run_rule(tmp_path, lambda m: m.temps_of_a_live_process("create", 2, "no_tid"))
    assert "p13_" in found and "must leave" in found, found
