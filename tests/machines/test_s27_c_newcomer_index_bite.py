"""The data-loss machine's rule ``remove_wal_live`` with the ``-shm`` removed and a new worker process starting first
(session 27 surviving mutant ``connection.py:442``, the WAL-mode guard of ``_refuse_a_second_index`` inverted): the
check is there, the draw is rare (a process example, ``shm`` true, ``newcomer`` first). A newcomer process that opens
the database while the managers here hold the removed index builds a second one and commits into a history they never
see: the recovery that follows cannot bring every acknowledged transfer back (P13).

The rule is called directly with those arguments (no Hypothesis search), once against the real runtime (it passes)
and once against a runtime that no longer refuses to build a second index."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from pytest_dbfault.machines import dataloss


def newcomer(tmp_path, count: int = 1) -> None:
    machine = started_machine("dataloss", tmp_path)
    machine.use_processes = True  # (drawn per example: PROCESS_SHARE)
    run_and_tear_down(machine, lambda m: m.remove_wal_live(True, "newcomer", count))


def test_the_real_runtime_refuses_a_second_index(tmp_path):
    newcomer(tmp_path)


def test_it_bites_a_runtime_that_opens_beside_the_removed_index(tmp_path, monkeypatch):
    # The newcomer's runtime opens the database whatever holds it: the check made only outside WAL mode (or not at
    # all), so with the -shm gone it serves the last checkpoint and commits on a new WAL of its own.
    # (The newcomer is another process: its script gets the defect.)
    monkeypatch.setattr(dataloss, "WORKER", "import reliability.connection as _c\n_c._refuse_a_second_index = "
                        "lambda path: None\n" + dataloss.WORKER)
    with pytest.raises(AssertionError, match=r"p1[03]_\w+ violated .*(removed|-wal)"):
        newcomer(tmp_path)
