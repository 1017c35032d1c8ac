"""The data-loss machine already judges a journal whose owner died between its record and its COMMIT (session 26,
surviving mutant ``redo.py:1194``: an owner counted as gone only when the caller said so, never when nobody holds
its file's lock). The default run did not draw the history (a worker process in a third of the examples, killed
after its record, then a write here and ``corrupt_and_recover`` by this process's manager); this calls it directly.

Without the dead owner recognised, its last record is no orphan: the sequence it took is claimed twice (the
worker's record, and the write this process made next) and recovery fails "with every journal intact"."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from pytest_dbfault.stats import property_id
from reliability import redo


def orphan_then_recover(tmp_path, synchronous: str = "FULL") -> None:
    machine = started_machine("dataloss", tmp_path, frozenset({"fault:locked"}), synchronous=synchronous)
    machine.use_processes = True

    def call(m):
        m.transfer(0, 1, 2, 5)
        m.worker_process(2, "after_record")
        m.transfer(0, 2, 3, 7)
        m.corrupt_and_recover("btree", 0, "none", 0, 3)

    run_and_tear_down(machine, call)


def test_the_real_runtime_recovers_past_a_dead_owners_orphan(tmp_path):
    orphan_then_recover(tmp_path)


def test_it_bites_a_lock_probe_that_takes_every_owner_for_alive(tmp_path, monkeypatch):
    # The probe of a journal file's lock answers "held" whatever holds it (as a probe of this process's own
    # descriptors would): a worker killed -9 looks alive, and its last record is never taken for an orphan.
    monkeypatch.setattr(redo, "_locked_by_someone", lambda path: True)
    with pytest.raises(AssertionError, match=f"{property_id(13)}.*recovery failed with every journal intact"):
        orphan_then_recover(tmp_path)
