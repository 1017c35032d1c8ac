"""The degradation machine's rule ``a_link_planted_at_the_queue_path_is_reported_each_time`` plants a link at the
write queue path twice, the path readable between, with direct writes in each episode: the runtime must log one
ERROR record per episode (P17). The rule is called with fixed arguments on a fresh machine: it passes on the runtime
and fails against a runtime that remembers the last error across a readable period, or logs it on every write."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.degraded.queue import WriteQueue

REPORTED = r"p17_\w+ violated \(faults: [^)]*\): a link was planted at the write queue path .* the runtime logged"
CASES = [(0, "absent", 1), (3, "same_file", 2), (7, "new_file", 1), (12, "new_file", 2)]


def run_rule(tmp_path, n, between, writes):
    machine = started_machine("degradation_queue", tmp_path, frozenset({"commands", "outage"}))
    run_and_tear_down(machine, lambda m: m.a_link_planted_at_the_queue_path_is_reported_each_time(n, between, writes))


@pytest.mark.parametrize(("n", "between", "writes"), CASES)
def test_the_rule_passes_on_the_runtime(tmp_path, n, between, writes):
    run_rule(tmp_path, n, between, writes)


def test_it_bites_an_error_remembered_across_a_readable_read(tmp_path, monkeypatch):
    # A catch-up that read the file anew keeps the last error: a second episode with the same error goes unlogged.
    real = WriteQueue.refresh_if_changed

    def refresh_if_changed(self):
        before = self._unreadable
        changed = real(self)
        if changed:
            self._unreadable = before
        return changed

    monkeypatch.setattr(WriteQueue, "refresh_if_changed", refresh_if_changed)
    with pytest.raises(AssertionError, match=REPORTED):
        run_rule(tmp_path, 7, "new_file", 1)


def test_it_bites_an_error_logged_on_every_write(tmp_path, monkeypatch):
    real = WriteQueue.refresh_if_changed

    def refresh_if_changed(self):
        self._unreadable = None
        return real(self)

    monkeypatch.setattr(WriteQueue, "refresh_if_changed", refresh_if_changed)
    with pytest.raises(AssertionError, match=REPORTED):
        run_rule(tmp_path, 3, "same_file", 2)
