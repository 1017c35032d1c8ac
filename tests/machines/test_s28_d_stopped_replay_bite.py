"""The dataloss machine's ``corrupt_and_recover`` holds a stopped replay's report to its own arithmetic (P13,
loss_report.py): a replay stops at the first missing sequence, so from there to the last sequence the journals reach
each one is either missing or held back, never both, never neither: "N missing" plus "H held back" is that span.

Session 28 surviving mutant ``redo.py:1366`` (the merge of consecutive missing sequences with ``==`` made ``!=``):
with two managers writing in turn and one's journal deleted (two gaps, the pinned history of
``test_s26_e_loss_ranges_bite.py``) it joined the first gap to the second over the journaled sequence between them
and reported one transaction more missing, in order and self-consistent, so the count/ranges check passed. Direct
calls, no Hypothesis search: the rule passes on the runtime and bites that merge."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine
from test_s26_e_loss_ranges_bite import plant_plan_replay, two_gaps

# (The pass on the runtime is test_s26_e_loss_ranges_bite.py::test_the_rule_passes_with_two_gaps: the same history.)


def test_it_bites_a_merge_over_a_journaled_sequence(tmp_path, monkeypatch):
    plant_plan_replay(monkeypatch, "if plan.missing and plan.missing[-1][1] == seq - 1:",
                      "if plan.missing and plan.missing[-1][1] != seq - 1:")
    with pytest.raises(AssertionError, match=r"p13_corruption_recovery violated .*the report's count and sequences "
                                             r"disagree: \['it says \d+ missing and \d+ held back"):
        run_and_tear_down(started_machine("dataloss", tmp_path, frozenset()), two_gaps)
