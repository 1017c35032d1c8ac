"""The data-loss machine's ``remove_wal_live`` with the ``-shm`` removed: since session 28 (rare draws) a newcomer
process acts first whenever one is drawn, and stands in for the example's worker process when that one is spent or
the example has none (a draw of ``worker_goes_on`` / ``worker_killed``), instead of the case waiting for a process
example with its worker unspent (planted bug ``s27_c_second_index_outside_wal``, missed by default runs). The rule is
called directly (no Hypothesis search): it passes on the runtime, and bites a newcomer runtime that opens beside the
removed index, in an example without processes."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from pytest_dbfault.machines import dataloss

CASES = [("newcomer", False), ("worker_goes_on", False), ("worker_killed", False), ("newcomer", True)]


def remove(tmp_path, first: str, processes: bool, shm: bool = True) -> None:
    machine = started_machine("dataloss", tmp_path)
    machine.use_processes = processes
    run_and_tear_down(machine, lambda m: m.remove_wal_live(shm, first, 1))


@pytest.mark.parametrize(("first", "processes"), CASES)
def test_the_rule_passes_on_the_runtime(tmp_path, first, processes):
    remove(tmp_path, first, processes)


def test_a_kept_shm_still_falls_back_to_a_write(tmp_path, monkeypatch):
    # (-shm kept: the newcomer reads the managers' own index; without a process to spare the case stays a write)
    monkeypatch.setattr(dataloss, "WORKER", "raise SystemExit('no worker process expected')\n")
    remove(tmp_path, "newcomer", False, shm=False)


@pytest.mark.parametrize(("first", "processes"), CASES)
def test_it_bites_a_newcomer_that_opens_beside_the_removed_index(tmp_path, monkeypatch, first, processes):
    # The newcomer's runtime opens the database whatever holds it (the check made only outside WAL mode): with the
    # -shm gone it serves the last checkpoint and commits on a new WAL of its own.
    monkeypatch.setattr(dataloss, "WORKER", "import reliability.connection as _c\n_c._refuse_a_second_index = "
                        "lambda path: None\n" + dataloss.WORKER)
    with pytest.raises(AssertionError, match=r"p1[03]_\w+ violated .*(removed|-wal)"):
        remove(tmp_path, first, processes)
