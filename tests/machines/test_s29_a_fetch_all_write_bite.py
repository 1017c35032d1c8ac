"""The data-loss machine books a quarter of its transfers with ``fetch_all("INSERT … RETURNING id")`` inside the
transfer's transaction (another quarter with ``fetch_one``): the call returns the row it wrote, and damage and
``recover()`` bring every acknowledged transfer back (P13).

Called directly with fixed arguments: passes on the runtime, and bites a runtime whose ``fetch_all`` runs a write on
the read path (outside the block's redo record, so recovery replays the balances without the row) and one whose
``fetch_all`` of a write loses a returned row.
"""

from __future__ import annotations

import zlib

import pytest
from bite_settings import run_and_tear_down, started_machine

import reliability.executor as executor_module


def transfers_then_recovery(machine) -> None:
    for n in range(6):
        machine.transfer(0, 1 + n % 3, 2 + n % 3, 5)
    assert any(zlib.crc32(t.encode()) % 4 == 3 for t in machine.acked), "no transfer took the fetch_all form"
    machine.corrupt_and_recover("btree", 0, "none", 0, 7)


def test_passes_on_the_runtime(tmp_path):
    run_and_tear_down(started_machine("dataloss", tmp_path, frozenset({"fault:corruption"})), transfers_then_recovery)


def test_bites_fetch_all_of_a_write_on_the_read_path(tmp_path, monkeypatch):
    real = executor_module.reads_only
    monkeypatch.setattr(executor_module.Executor, "fetch_all", _fetch_all_reading(real))
    machine = started_machine("dataloss", tmp_path, frozenset({"fault:corruption"}))
    with pytest.raises(AssertionError, match="p13_corruption_recovery violated.*acknowledged transfer"):
        run_and_tear_down(machine, transfers_then_recovery)


def test_bites_fetch_all_of_a_write_losing_a_row(tmp_path, monkeypatch):
    real = executor_module.Executor.fetch_all

    def fetch_all(self, sql, params=()):
        rows = real(self, sql, params)
        return rows[1:] if not executor_module.reads_only(sql) else rows

    monkeypatch.setattr(executor_module.Executor, "fetch_all", fetch_all)
    machine = started_machine("dataloss", tmp_path, frozenset({"fault:corruption"}))
    with pytest.raises(AssertionError, match=r"p13_\w+ violated.*RETURNING id through fetch_one/fetch_all"):
        run_and_tear_down(machine, transfers_then_recovery)


def _fetch_all_reading(real_reads_only):
    """``Executor.fetch_all`` as if it took every statement for a read (``fetch_one`` keeps the real routing)."""
    real = executor_module.Executor.fetch_all

    def fetch_all(self, sql, params=()):
        executor_module.reads_only = lambda s: True
        try:
            return real(self, sql, params)
        finally:
            executor_module.reads_only = real_reads_only

    return fetch_all
