"""The data-loss machine's ``write_in_a_live_commit_window``: a writer process committing alone (synchronous NORMAL)
is stopped between its COMMIT and its record while a manager of this process writes; the writer's last transaction
and this one must not share a sequence, so recovery from damage is ok with every acknowledged transfer back. The
rule is called directly with fixed arguments (no Hypothesis search)."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import redo


def run_rule(tmp_path, who: int, part: str) -> None:
    machine = started_machine("dataloss", tmp_path, frozenset(), synchronous="FULL")
    machine.use_processes = True  # (drawn for 35 % of examples)

    def call(m):
        m.transfer(0, 1, 2, 5)
        m.write_in_a_live_commit_window(2, who, part, 11)

    run_and_tear_down(machine, call)


@pytest.mark.parametrize(("who", "part"), [(0, "btree"), (1, "header")])
def test_the_rule_passes_on_the_runtime(tmp_path, who, part):
    run_rule(tmp_path, who, part)


@pytest.mark.parametrize("who", [0, 1])
def test_it_bites_a_publisher_that_does_not_wait_for_the_window(tmp_path, monkeypatch, who):
    # The publisher reads the owner's journal at once, as if no window were open: the committed transaction whose
    # record is not written yet is left out of the published sequence, and this process reuses its number.
    monkeypatch.setattr(redo._SoloClaim, "wait_window", lambda self: None)
    with pytest.raises(AssertionError, match=r"p13_corruption_recovery violated"):
        run_rule(tmp_path, who, "btree")
