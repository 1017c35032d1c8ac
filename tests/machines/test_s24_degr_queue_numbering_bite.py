"""The degradation machine judges the write queue's numbering (rules ``refused_writes_queued_during_a_lock`` /
``refused_writes_queued_while_unavailable``, through ``judge_queue_numbering``): each write acknowledged as queued
comes last in ``db.commands.queue.pending()``, whose numbers (``seq``) rise strictly oldest first, as the ``put``
records of the queue file do. The rule is called with fixed arguments on a fresh machine: it passes on the runtime
and fails against a runtime with one realistic defect of that class."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.degraded.queue import WriteQueue

NUMBERING = (r"p14_command_continuity violated \(faults: locked\): 'claim' of .* the write just queued must come "
             r"last, and the numbers rise strictly")
CASES = [(["new", "taken"], 0, "replay"), (["null", "new", "again"], 3, "command"), (["new"], 1, "replay")]


def run_rule(tmp_path, plan, param, via):
    machine = started_machine("degradation_queue", tmp_path, frozenset({"commands", "outage", "fault:locked"}))

    def call(m):
        m.refused_writes_queued_during_a_lock(plan, param, via)
        m.p14_command_continuity()

    run_and_tear_down(machine, call)


@pytest.mark.parametrize(("plan", "param", "via"), CASES)
def test_the_rule_passes_on_the_runtime(tmp_path, plan, param, via):
    run_rule(tmp_path, plan, param, via)


def test_it_bites_a_queue_that_does_not_advance_its_number(tmp_path, monkeypatch):
    # The number of the last write this queue appended itself is not remembered (only the ones read from the file
    # are): two writes queued in a row by one runtime get the same seq.
    real = WriteQueue.put

    def put(self, *args, **kwargs):
        before = self._seq
        entry = real(self, *args, **kwargs)
        self._seq = before
        return entry

    monkeypatch.setattr(WriteQueue, "put", put)
    with pytest.raises(AssertionError, match=NUMBERING):
        run_rule(tmp_path, ["new", "taken"], 0, "replay")


def test_it_bites_a_queue_listed_newest_first(tmp_path, monkeypatch):
    # pending() lists the waiting writes newest first (a stack where a FIFO is promised).
    monkeypatch.setattr(WriteQueue, "pending", lambda self: list(reversed(self._pending.values())))
    with pytest.raises(AssertionError, match=NUMBERING):
        run_rule(tmp_path, ["null", "new"], 2, "command")
