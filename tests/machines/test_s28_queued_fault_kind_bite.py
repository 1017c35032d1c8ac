"""The degradation machine judges which fault a queued write command names (session 28, surviving mutant
``degraded/commands.py:421``: ``self.fault or UNAVAILABLE`` made ``and``, so every queued answer said "unavailable"
whatever the registry was degraded by, and its message told a user waiting out a lock that the database was gone).

Rules ``refused_writes_queued_during_a_lock`` / ``refused_writes_queued_while_unavailable`` now want each ``queued``
answer to name the fault ``db.commands.fault`` holds; ``a_read_refused_degrades_the_registry`` wants the write queued
after a refused read to name the fault the read named. Called directly (no Hypothesis search)."""

from __future__ import annotations

import dataclasses

import pytest
from bite_settings import run_and_tear_down, started_machine

from pytest_dbfault.stats import property_id
from reliability.degraded import commands as commands_module


def burst(tmp_path, outage: str = "locked", plan=("new", "taken", "new")) -> None:
    machine = started_machine("degradation_queue", tmp_path, frozenset({f"fault:{outage}"}))
    if outage == "locked":
        run_and_tear_down(machine, lambda m: m.refused_writes_queued_during_a_lock(list(plan), 0, "replay"))
    else:
        run_and_tear_down(machine,
                          lambda m: m.refused_writes_queued_while_unavailable(outage, list(plan), 0, "command"))


@pytest.mark.parametrize(("outage", "plan"), [("locked", ("new",)), ("locked", ("new", "taken", "new")),
                                              ("disk_full", ("new", "null")), ("disconnect_rename", ("new",))])
def test_the_real_runtime_names_the_fault_in_force(tmp_path, outage, plan):
    burst(tmp_path, outage, plan)


def test_it_bites_a_queued_answer_that_always_says_unavailable(tmp_path, monkeypatch):
    # The answer is built from a generic kind instead of the one the registry degraded by.
    real = commands_module.CommandRegistry._enqueue

    def enqueue(self, cmd, args, kwargs, key):
        result = real(self, cmd, args, kwargs, key)
        return dataclasses.replace(result, fault="unavailable") if result.status == "queued" else result

    monkeypatch.setattr(commands_module.CommandRegistry, "_enqueue", enqueue)
    with pytest.raises(AssertionError, match=f"{property_id(14)}.*must name that fault"):
        burst(tmp_path)
