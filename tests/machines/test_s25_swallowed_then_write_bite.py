"""The surface machine's ``failed_transaction("swallowed_disk_full")``: a block whose statement meets a full disk
(SQLite rolls the whole transaction back), the caller swallows the error, space comes back and the block writes
again. That write is the block's: it must not be saved on its own (P6). The runtime once ran it in autocommit mode,
so it was saved while the block reported that nothing was saved. Called directly, each journal mode."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import executor

GROUPS = frozenset({"backup", "commands", "recover", "fault:disk_full"})


def run_rule(tmp_path, journal_mode: str) -> None:
    machine = started_machine("surface", tmp_path, GROUPS, journal_mode=journal_mode)
    run_and_tear_down(machine, lambda m: m.failed_transaction("swallowed_disk_full", 3))


@pytest.mark.parametrize("journal_mode", ["WAL", "DELETE"])
def test_the_check_passes_on_the_runtime(tmp_path, journal_mode):
    run_rule(tmp_path, journal_mode)


@pytest.mark.parametrize("journal_mode", ["WAL", "DELETE"])
def test_it_bites_a_statement_run_on_its_own_after_sqlite_rolled_the_block_back(tmp_path, monkeypatch,
                                                                                   journal_mode):
    # The defect as it was: the executor runs a statement inside the block whatever SQLite did to its transaction.
    monkeypatch.setattr(executor.Executor, "failed", _run_anyway(executor.Executor.failed))
    with pytest.raises(AssertionError, match=r"p06_transaction_atomicity violated .*a write after the swallowed "
                                             r"error\) the file holds 'later-3'"):
        run_rule(tmp_path, journal_mode)


def _run_anyway(real):
    def failed(self, op, call, sql, params, first, t0):
        if first is not None and "this statement was not run" in str(first):
            return call(self.connections.connection, sql, params)
        return real(self, op, call, sql, params, first, t0)

    return failed
