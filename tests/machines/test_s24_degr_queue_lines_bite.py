"""The degradation machine's rule ``tamper_with_a_queued_flag`` also damages one line of the write queue file (a
record cut off, at a drawn place) while the runtime is stopped: the restart reads the file from the top, skips that
line, and its ERROR record names the file and the line's number, counted from 1. The rule is called with fixed
arguments on a fresh machine: it passes on the runtime and fails against a runtime with one realistic defect of that
class."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.degraded.queue import WriteQueue

MISNUMBERED = (r"p14_command_continuity violated \(faults: [^)]*\): line \d+ of the write queue file .* is no JSON; "
               r"the restart that read it logged")
CASES = [(0, 3, "value", 0), (1, 5, "actor", 1), (2, 7, "name", 2), (3, 1, "value", 5)]


def run_rule(tmp_path, n, value, edit, param):
    machine = started_machine("degradation_queue", tmp_path, frozenset({"commands", "outage", "fault:locked"}))

    def call(m):
        m.tamper_with_a_queued_flag(n, value, edit, param)
        m.p14_command_continuity()

    run_and_tear_down(machine, call)


@pytest.mark.parametrize(("n", "value", "edit", "param"), CASES)
def test_the_rule_passes_on_the_runtime(tmp_path, n, value, edit, param):
    run_rule(tmp_path, n, value, edit, param)


def test_it_bites_line_numbers_counted_from_zero(tmp_path, monkeypatch):
    # The line counter is bumped after the line is judged, not before: every damaged line is named one too early
    # (the first line of the file as line 0).
    real = WriteQueue._apply_events

    def apply_events(self, data):
        self._lines -= 1
        real(self, data)
        self._lines += 1

    monkeypatch.setattr(WriteQueue, "_apply_events", apply_events)
    with pytest.raises(AssertionError, match=MISNUMBERED):
        run_rule(tmp_path, 1, 5, "actor", 1)


def test_it_bites_a_fresh_read_that_starts_at_line_one(tmp_path, monkeypatch):
    # A file read from the top (at start, or replaced) starts the count at 1 instead of 0, then bumps it before
    # each line: every damaged line is named one too late.
    real = WriteQueue._apply_events

    def apply_events(self, data):
        if self._offset == 0 and self._lines == 0:
            self._lines = 1
        real(self, data)

    monkeypatch.setattr(WriteQueue, "_apply_events", apply_events)
    with pytest.raises(AssertionError, match=MISNUMBERED):
        run_rule(tmp_path, 2, 7, "name", 2)
