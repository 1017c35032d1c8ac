"""The data-loss machine's ``remove_wal``: a worker process acknowledges transfers and is killed -9 after its journal
record of the next one and before its COMMIT (``after_record``: a last record without its committed mark), then the
``-wal`` is removed and the service starts again. The database provably lost commits before that record, so the
refusal must count the lost ones and name the record in doubt apart (README: "*possibly* missing (named apart in
the refusal, and replayed ...)"): every missing transfer a journal holds is accounted for (P13).

Called directly with fixed arguments: passes on the runtime, and bites a runtime whose refusal leaves the record in
doubt out.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from bite_settings import run_and_tear_down, started_machine

import reliability.durability.lost_commits as lost_commits


def killed_after_record_then_removed_wal(machine) -> None:
    machine.use_processes = True
    machine.transfer(0, 1, 2, 5)
    machine.remove_wal(False, 2, "after_record")
    assert machine.maybe, "the worker was not killed in a transfer"


def run(tmp_path) -> None:
    # (synchronous FULL: at NORMAL the worker commits alone, and its record then follows its COMMIT: never in doubt)
    machine = started_machine("dataloss", tmp_path, frozenset({"fault:corruption"}), synchronous="FULL")
    run_and_tear_down(machine, killed_after_record_then_removed_wal)


def test_passes_on_the_runtime(tmp_path):
    run(tmp_path)


def test_bites_a_refusal_that_leaves_the_record_in_doubt_out(tmp_path, monkeypatch):
    real = lost_commits.LostCommits.describe
    monkeypatch.setattr(lost_commits.LostCommits, "describe", lambda self, path: real(replace(self, possibly=()), path))
    with pytest.raises(AssertionError, match=r"p13_\w+ violated.*refuses the database but accounts for 2 committed "
                                             r"transaction\(s\) and 0 that may have committed"):
        run(tmp_path)
