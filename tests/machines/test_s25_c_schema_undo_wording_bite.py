"""The schema machine's rule ``roll_back_with_a_failing_down_step`` judges what the error says of the migration whose
down step failed: it is still applied (its down step's transaction changed nothing), so the error says it was not
undone, never that it "was rolled back" (session 25 surviving mutant ``schema.py:340``, the two wordings of
``_failed`` swapped). Called with fixed arguments on a fresh machine: it passes on the runtime, and fails against a
runtime that words a failed undo as a failed apply."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

import reliability.schema as schema

CASES = [(2, 4, "missing_table", False, 0, 0), (3, 0, "after_drop", True, 1, 5), (2, 1, "on_the_data", False, 2, 2)]


def run_rule(tmp_path, new, bad, how, as_folder, deeper, form) -> None:
    machine = started_machine("schema", tmp_path, frozenset({"migrate", "fault:locked"}))
    run_and_tear_down(machine, lambda m: m.roll_back_with_a_failing_down_step(new, bad, how, as_folder, deeper, form))


@pytest.mark.parametrize(("new", "bad", "how", "as_folder", "deeper", "form"), CASES)
def test_the_rule_passes_on_the_runtime(tmp_path, new, bad, how, as_folder, deeper, form):
    run_rule(tmp_path, new, bad, how, as_folder, deeper, form)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_it_bites_a_failed_undo_worded_as_rolled_back(tmp_path, monkeypatch, case):
    real = schema._failed

    def failed(m, exc, verb="applied"):
        return real(m, exc, "applied")  # (the user message too: "could not be applied")

    monkeypatch.setattr(schema, "_failed", failed)
    with pytest.raises(AssertionError, match=r"p05_\w+ violated .*the error must say it was not undone"):
        run_rule(tmp_path, *CASES[case])
