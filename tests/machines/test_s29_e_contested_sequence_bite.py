"""The data-loss machine's ``cut_tail_unreadable_sequence`` after a worker process killed -9 between its journal record
of a transfer and its COMMIT (``after_record``: an orphan nobody marked aborted, since no manager opened after it).
Manager 1's next transfer reuses the orphan's sequence ``G``; then manager 0 writes ``G + 1``, manager 1 ``G + 2``,
manager 1's journal loses those two records (cut at a record boundary) and the database header is damaged. A later
sequence shows ``G`` committed, but the cut journal may have held its record: recovery must not replay the orphan in
its place and must count ``G`` missing; before the fix it said one transaction missing where two acknowledged ones
were gone (P13: "it says how many and which"). Found in session 29 by ``KilledWorkersOnly``'s search
(tests/machines/test_dataloss_bite.py) once ``another_application_opens_after_removal`` moved it.

Called directly with the arguments the search drew: passes on the runtime, and bites a replay that takes the orphan
for ``G``'s committed record (``redo.contested`` saying no).
"""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

import reliability.redo as redo_module

DRAWN = {"backup_keep": 4, "redo_journal": False, "retry_budget": 5.0, "synchronous": "FULL", "retry_base_delay": 0.01,
         "retry_attempts": 1, "journal_mode": "TRUNCATE", "retry_max_delay": 0.04}


def orphan_then_a_cut_journal(machine) -> None:
    machine.use_processes = True
    machine.cut_tail_unreadable_sequence(amount=29, entries=1, last=0, part="page_size", seed=2005, who=1)
    machine.worker_process(count=1, kill="after_record")
    assert machine.maybe, "the worker was not killed in a transfer"
    machine.transfer(amount=15, dst=4, src=2, who=1)
    machine.cut_tail_unreadable_sequence(amount=4, entries=2, last=1, part="header", seed=149, who=0)


def run(tmp_path) -> None:
    # (synchronous FULL: at NORMAL the worker commits alone, and its record then follows its COMMIT: never in doubt)
    machine = started_machine("dataloss", tmp_path, frozenset({"fault:corruption"}), **DRAWN)
    run_and_tear_down(machine, orphan_then_a_cut_journal)


def test_passes_on_the_runtime(tmp_path):
    run(tmp_path)


def test_bites_a_replay_that_takes_the_orphan_for_the_lost_commit(tmp_path, monkeypatch):
    monkeypatch.setattr(redo_module, "contested", lambda slot, journals: False)
    with pytest.raises(AssertionError, match="acknowledged transactions are missing but recovery reports only"):
        run(tmp_path)
