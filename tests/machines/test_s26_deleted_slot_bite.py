"""The data-loss machine's CI failure of session 26, replayed by direct calls: writer processes journal through slot
0, slot 0's journal is deleted, every manager dies and a fresh one takes slot 0 on the damaged file (its anchoring
fails, so its journal has no header): recovery must not say ok while those processes' transfers are gone (P13).

Before, the fresh manager's own slot was never counted missing (its headerless file was taken for a journal that
never took a write, a fix of the same session), and recovery said ok without seven acknowledged transfers.
"""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

import reliability.durability.recovery as recovery_module

ENABLED = frozenset({"schema_damage", "nested", "power_loss", "recover", "reload", "outage", "backup", "transfer",
                     "migrate", "heal_mid_call", "audit", "restart", "fault:locked", "fault:disk_full", "integrity",
                     "commands"})
DRAWN = {"retry_attempts": 4, "retry_base_delay": 0.01, "redo_journal": True, "synchronous": "NORMAL",
         "backup_keep": 3, "journal_mode": "WAL", "retry_max_delay": 0.08, "retry_budget": 5.0}


def the_failing_example(machine) -> None:
    machine.delete_database(stopped=False, write=False)
    machine.solo_writer_process(count=1, part="btree", seed=0, who=0)
    machine.corrupt_and_recover(cut="none", part="btree", pick=0, seed=859, who=0)
    machine.delete_database(stopped=True, write=True)
    machine.delete_database(stopped=False, write=False)
    machine.queue_from_another_process(count=4, gap=0.0, who=0)
    machine.queue_from_another_process(count=3, gap=0.0, who=1)
    machine.transient_in_maintenance(moment=True, what="backup")
    machine.corrupt_and_recover(cut="delete", part="header", pick=1, seed=6576, who=2)


def test_passes_on_the_runtime(tmp_path):
    run_and_tear_down(started_machine("dataloss", tmp_path, ENABLED, **DRAWN), the_failing_example)


def test_bites_a_recovery_that_never_counts_its_own_slot(tmp_path, monkeypatch):
    real = recovery_module._missing_journal_files

    def own_never_counted(base, registries, own, own_blank=False, after=0):
        return real(base, registries, own, False, after)

    monkeypatch.setattr(recovery_module, "_missing_journal_files", own_never_counted)
    machine = started_machine("dataloss", tmp_path, ENABLED, **DRAWN)
    with pytest.raises(AssertionError, match="p13_corruption_recovery violated.*acknowledged transfer"):
        run_and_tear_down(machine, the_failing_example)
