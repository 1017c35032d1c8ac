"""The degradation machine judges the whole count of a queue replay (session 26, surviving mutant
``degraded/commands.py:581``: every applied write was also counted "already applied").

``db.commands.replay()`` answers a :class:`~reliability.degraded.commands.ReplayReport`: applied, skipped (already
applied), failed (set aside), remaining. Rule ``refused_writes_queued_during_a_lock`` (``via="replay"``) now judges
that every write the replay met is counted once: applied + skipped + failed is the number queued. Called directly
(no Hypothesis search): a burst of new and refused claims during a lock, replayed by ``replay()``."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from pytest_dbfault.stats import property_id
from reliability.degraded import commands as commands_module


def burst_replayed(tmp_path, plan=("new", "taken", "new"), param: int = 0) -> None:
    machine = started_machine("degradation_queue", tmp_path, frozenset({"fault:locked"}))
    run_and_tear_down(machine, lambda m: m.refused_writes_queued_during_a_lock(list(plan), param, "replay"))


@pytest.mark.parametrize("plan", [("new",), ("new", "taken", "new"), ("null", "again")])
def test_the_real_runtime_counts_each_replayed_write_once(tmp_path, plan):
    burst_replayed(tmp_path, plan)


def test_it_bites_a_report_that_counts_applied_writes_as_already_applied(tmp_path, monkeypatch):
    # The report's skipped count is taken from the applied one (the replay itself is right: the file holds what it
    # must), so a script reading the report is told its writes were already there.
    real = commands_module.ReplayReport

    def report(applied, skipped, failed, *rest, **kw):
        return real(applied, skipped + applied, failed, *rest, **kw)

    monkeypatch.setattr(commands_module, "ReplayReport", report)
    with pytest.raises(AssertionError, match=f"{property_id(14)}.*the replay reported"):
        burst_replayed(tmp_path)
