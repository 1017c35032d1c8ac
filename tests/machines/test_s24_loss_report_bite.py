"""P13's "it says how many and which": a report's count of missing committed transactions must agree with the
sequences it lists (``pytest_dbfault.machines.loss_report``), in the backup machine's refusal of an older copy put
in place by hand (where the machine knows the count exactly) and in the data-loss machine's recovery from a cut
journal. The rules are called directly with fixed arguments (no Hypothesis search); each bite plants a defect of
the kind a refactor makes in how the runtime counts or lists what it lost."""

from __future__ import annotations

import random
import re

import pytest
from bite_settings import run_and_tear_down, started_machine

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from pytest_dbfault.machines.loss_report import disagreements, loss_statements, reported_loss
from reliability import redo
from reliability.durability import lost_commits, recovery


def test_statements_are_read_in_every_phrasing():
    assert loss_statements("3 committed transaction(s) are missing from the redo journals (sequence 4-6; the "
                           "journals reach 9)") == [(3, [(4, 6)])]
    assert loss_statements("the database file 'a.db' is missing 21 committed transaction(s) that the redo "
                           "journal(s) hold (sequence 4-23, 30; journal slot(s) 0, 1)") == [(21, [(4, 23), (30, 30)])]
    assert loss_statements("2 committed transaction(s) of the redo journal(s) are missing (sequence 8, 9; journal "
                           "slot(s) 0)") == [(2, [(8, 8), (9, 9)])]
    assert loss_statements("its last committed transaction (sequence 7, journal slot 1) is missing") == []


@pytest.mark.parametrize(("text", "why"), [
    ("11 committed transaction(s) are missing from the redo journals (sequence 4-6; x)", "says 11 .* lists 3"),
    ("2 committed transaction(s) that the redo journal(s) hold (sequence 5-4, 6; x)", "runs backwards"),
    ("3 committed transaction(s) that the redo journal(s) hold (sequence 6, 4-5; x)", "out of order"),
    ("3 committed transaction(s) that the redo journal(s) hold (sequence 4-5, 5; x)", "overlap"),
])
def test_a_count_and_its_sequences_that_disagree_are_told(text, why):
    found = disagreements(text)
    assert len(found) == 1 and re.search(why, found[0]), found


def test_statements_that_hold_together_pass():
    assert disagreements("21 committed transaction(s) that the redo journal(s) hold (sequence 4-23, 30; x); and "
                         "1 committed transaction(s) are missing from the redo journals (sequence 40; x)") == []
    assert reported_loss(["2 committed transaction(s) are missing from the redo journals (sequence 4-5; x); 3 "
                          "later journaled transaction(s) were held back"]) == 5


def ranges_that_restart_each_run(self):
    # A refactor of LostCommits.ranges() that moves the start of the open range instead of its end.
    out: list[list[int]] = []
    for seq in self.sequences:
        if out and out[-1][1] == seq - 1:
            out[-1][0] = seq
        else:
            out.append([seq, seq])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in out)


def older_copy(tmp_path, auto: bool = False) -> None:
    machine = started_machine("backup_recovery", tmp_path, frozenset())
    run_and_tear_down(machine, lambda m: m.older_copy_put_in_place([1, 2, 3], auto))


def test_an_older_copy_put_in_place_passes_on_the_runtime(tmp_path):
    older_copy(tmp_path)


def test_it_bites_ranges_that_do_not_list_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(lost_commits.LostCommits, "ranges", ranges_that_restart_each_run)
    with pytest.raises(AssertionError, match=r"p13_corruption_recovery violated.*runs backwards"):
        older_copy(tmp_path)


def test_it_bites_a_refusal_that_counts_one_too_few(tmp_path, monkeypatch):
    real = lost_commits.LostCommits.describe

    def one_short(self, path):
        # The count taken from the ranges' ends (b - a, not b - a + 1): one short per range.
        text = real(self, path)
        return text.replace(f"{len(self.sequences)} committed", f"{len(self.sequences) - 1} committed", 1)

    monkeypatch.setattr(lost_commits.LostCommits, "describe", one_short)
    with pytest.raises(AssertionError, match=r"p13_corruption_recovery violated.*the refusal says 2 committed"):
        older_copy(tmp_path)


def cut_journal_recovery(tmp_path) -> str:
    """The data-loss machine's ``cut_tail_unreadable_sequence`` once: its first violation, or ""."""
    machine = bind(MACHINES["dataloss"], None, base_dir=str(tmp_path), enforce={10, 13})()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()}, frozenset())
    try:
        machine.transfer(0, 1, 2, 5)
        machine.cut_tail_unreadable_sequence(1, 0, 2, "header", 7, 3)
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    finally:
        machine.teardown()
    return ""


def test_a_cut_journal_recovery_passes_on_the_runtime(tmp_path):
    assert cut_journal_recovery(tmp_path) == ""


def test_it_bites_a_replay_plan_that_adds_the_ends_of_its_ranges(tmp_path, monkeypatch):
    real = redo.plan_replay
    said: list[str] = []

    def counts_wrong(*args, **kwargs):
        # The count of missing transactions written as sum(b + a + 1) instead of sum(b - a + 1).
        plan = real(*args, **kwargs)
        if plan.missing:
            good = sum(b - a + 1 for a, b in plan.missing)
            bad = sum(b + a + 1 for a, b in plan.missing)
            plan.problems = [p.replace(f"{good} committed", f"{bad} committed", 1) for p in plan.problems]
            said.extend(plan.problems)
        return plan

    monkeypatch.setattr(recovery, "plan_replay", counts_wrong)  # (recovery imports it by name)
    message = cut_journal_recovery(tmp_path)
    assert said, "the cut journal left no transaction missing: the bite met nothing to count"
    assert "p13_corruption_recovery violated" in message and "count and sequences disagree" in message, message
