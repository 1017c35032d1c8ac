"""A manager's startup looks at every stopped redo journal (to mark its orphans) and must let go of each.

A journal's ``flock`` is how every process tells a running owner from a stopped one: a startup that kept the lock
of a journal it only looked at makes that journal look alive to everyone, and no manager can take its slot again.
Reached in the commit-path machine by a second manager that wrote and closed (a second, stopped journal), then a
kill and a restart on what the kill left: the restarted manager takes the first slot and looks at the second one.
The rules and the invariant are called directly."""

from __future__ import annotations

import os
import random

from bite_settings import run_and_tear_down

import reliability.durability.journal as startup
from reliability import redo as redo_mod


def _machine(tmp_path):
    from pytest_dbfault.machines import MACHINES, bind
    from pytest_dbfault.machines.base import CONFIG_SPACE

    machine = bind(MACHINES["commit_path"], None, base_dir=str(tmp_path))()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()}, frozenset(), "FULL")
    return machine


def _call(m) -> None:
    m.second_writer()  # a second journal, closed cleanly
    m.write(keys=["k1"], point="after_commit")  # killed, restarted on the copy: slot 0 taken, slot 1 looked at
    m.journals_agree_with_the_database()


def test_every_stopped_journal_is_free_after_a_restart(tmp_path):
    run_and_tear_down(_machine(tmp_path), _call)


def test_bites_a_startup_that_keeps_the_locks_of_the_journals_it_reconciled(tmp_path, monkeypatch):
    kept: list[int] = []
    real = startup.reconcile_orphans

    def keeping(base, committed, **kwargs):
        out = real(base, committed, **kwargs)
        for _slot, path in redo_mod.journal_files(base):  # the defect: each free journal's descriptor left open
            fd = os.open(path, os.O_RDWR)
            if redo_mod._try_lock(fd):
                kept.append(fd)
            else:
                os.close(fd)
        return out

    monkeypatch.setattr(startup, "reconcile_orphans", keeping)
    try:
        try:
            run_and_tear_down(_machine(tmp_path), _call)
        except AssertionError as exc:
            assert "are locked although no manager of them is open" in str(exc)
        else:
            raise AssertionError("the machine did not see the journal locks kept by the startup")
    finally:
        for fd in kept:
            os.close(fd)
