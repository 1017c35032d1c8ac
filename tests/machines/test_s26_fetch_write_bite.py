"""The data-loss machine books half its transfers with ``fetch_one("INSERT … RETURNING id")`` inside the transfer's
transaction: damage and ``recover()`` must bring every acknowledged transfer back (P13).

Called directly with fixed arguments: passes on the runtime, and bites a runtime that runs a write given to a
read call on the read path (outside the block's redo record, so recovery replays the balances without the row).
"""

from __future__ import annotations

import zlib

import pytest
from bite_settings import run_and_tear_down, started_machine

import reliability.executor as executor_module


def transfers_then_recovery(machine) -> None:
    for n in range(4):
        machine.transfer(0, 1 + n % 3, 2 + n % 3, 5)
    assert any(zlib.crc32(t.encode()) % 2 for t in machine.acked), "no transfer took the RETURNING form"
    machine.corrupt_and_recover("btree", 0, "none", 0, 7)


def test_passes_on_the_runtime(tmp_path):
    run_and_tear_down(started_machine("dataloss", tmp_path, frozenset({"fault:corruption"})), transfers_then_recovery)


def test_bites_a_write_run_on_the_read_path(tmp_path, monkeypatch):
    monkeypatch.setattr(executor_module, "reads_only", lambda sql: True)
    machine = started_machine("dataloss", tmp_path, frozenset({"fault:corruption"}))
    with pytest.raises(AssertionError, match="p13_corruption_recovery violated"):
        run_and_tear_down(machine, transfers_then_recovery)
