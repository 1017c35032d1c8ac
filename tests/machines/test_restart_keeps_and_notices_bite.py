"""The restart machine judges what a clean restart keeps and what a start must see (rules
``clean_restart_keeps_durable_health`` and ``damaged_while_stopped``). Each check fails against a runtime with one
realistic defect of that kind."""

from __future__ import annotations

import os

import pytest
from bite_settings import bite_settings

from pytest_dbfault.machines import MACHINES, run_machine
from reliability.durability import backup as backup_module
from reliability.durability import verdict

BITE = bite_settings(max_examples=150, steps=15)  # (60 until session 22: its rules moved the searches)


def test_it_bites_a_start_that_reports_the_oldest_backup(tmp_path, monkeypatch):
    # The start reads the wrong end of the listing (newest first): health names the oldest verified backup.
    real = backup_module.BackupTaker.__init__

    def init(self, parts, block, store):
        real(self, parts, block, store)
        verified = [b for b in store.list() if b.verified]
        parts.monitor.last_backup_at = verified[-1].created_at if verified else None

    monkeypatch.setattr(backup_module.BackupTaker, "__init__", init)
    with pytest.raises(AssertionError, match=r"after a clean restart health\(\)\.last_backup_at is"):
        run_machine(MACHINES["restart"], settings_=BITE, base_dir=str(tmp_path), enforce={10})


def test_it_bites_a_start_that_only_looks_for_a_cut(tmp_path, monkeypatch):
    # "Cut off" read as "shorter than the header's page count": bytes appended after the last page pass.
    def only_cut(path, page_size):
        with open(path, "rb") as fh:
            pages = int.from_bytes(fh.read(100)[28:32], "big")
        size = os.path.getsize(path)
        return ["the database file is shorter than its pages"] if size < pages * page_size else []

    monkeypatch.setattr(verdict, "cut_off_problems", only_cut)
    with pytest.raises(AssertionError, match=r"while no runtime ran, auto_recover o(ff|n)"):
        run_machine(MACHINES["restart"], settings_=BITE, base_dir=str(tmp_path), enforce={11, 13})
