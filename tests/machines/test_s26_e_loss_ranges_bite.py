"""The dataloss machine's ``corrupt_and_recover`` holds a recovery report to its own word (P13, loss_report.py: "the
count must be the number of sequences the ranges list, every range must run upwards, and the ranges must be in order
without overlap"). The ranges are only interesting when there are several: two managers of this process writing in
turn, one's journal deleted, leave two separate gaps, the second longer than one sequence. The main job reaches that
only when its draws line the writes up so; here it is pinned with direct calls: the rule passes on the runtime and
fails against a merge of the missing sequences that extends the first gap instead of the last one (session 26,
helper E: the surviving mutant redo.py:1362 number@30)."""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import redo as redo_module
from reliability.durability import recovered_elsewhere, recovery

#: who writes each transfer: manager 0 (slot 0) and the second manager (slot 1) in turn, the second one twice in a row
WRITERS = (0, 1, 0, 1, 1, 0)


def two_gaps(machine: Any) -> None:
    machine.open_second_manager()
    for i, who in enumerate(WRITERS):
        machine.transfer(who, 1 + i % 5, 1 + (i + 1) % 5, 3)
    files = [(slot, [seq for seq, _ops in redo_module.read_journal(path).entries])
             for slot, path in redo_module.journal_files(machine.config.redo_journal_file)]
    first = files[0][1][0] - 1
    # (the second manager's journal holds the 2nd, 4th and 5th transfer: deleted, they are two gaps, 1 and 2 long)
    assert files == [(0, [first + 1, first + 3, first + 6]), (1, [first + 2, first + 4, first + 5])], files
    machine.corrupt_and_recover("btree", 0, "delete", 1, 1)  # (pick 1: the second manager's journal)


def plant_plan_replay(monkeypatch: pytest.MonkeyPatch, old: str, new: str) -> None:
    fn = redo_module.plan_replay
    source = textwrap.dedent(inspect.getsource(fn))
    assert source.count(old) == 1, f"the planted bug's site occurs {source.count(old)} times"
    namespace: dict[str, Any] = {}
    code = compile(source.replace(old, new), inspect.getsourcefile(fn) or "plan_replay", "exec",
                   flags=annotations.compiler_flag, dont_inherit=True)
    exec(code, fn.__globals__, namespace)
    for module in (redo_module, recovery, recovered_elsewhere):
        monkeypatch.setattr(module, "plan_replay", namespace["plan_replay"])


def test_the_rule_passes_with_two_gaps(tmp_path):
    run_and_tear_down(started_machine("dataloss", tmp_path, frozenset()), two_gaps)


def test_it_bites_ranges_that_extend_the_first_gap(tmp_path, monkeypatch):
    plant_plan_replay(monkeypatch, "plan.missing[-1] = (plan.missing[-1][0], seq)",
                      "plan.missing[0] = (plan.missing[-1][0], seq)")
    with pytest.raises(AssertionError, match=r"p13_corruption_recovery violated .*the report's count and sequences "
                                             r"disagree: \['the ranges are out of order or overlap"):
        run_and_tear_down(started_machine("dataloss", tmp_path, frozenset()), two_gaps)
