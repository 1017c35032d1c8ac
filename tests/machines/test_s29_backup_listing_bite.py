"""The backup machine's ``recover_past_an_unverified_backup``: a backup that stopped being verified is still listed.

``db.backups()`` is "every backup in the directory, newest first", ``verified`` False for one whose manifest is
missing or no longer matches its size (``BackupManager.list``). Session 29's mutant sample found that a runtime
leaving a backup without a manifest out of the listing altogether went unseen: the rule judged only that it was not
listed *verified*. An operator choosing a backup by hand must still see it. Called directly: passes on the runtime;
bites a runtime that skips a file without a manifest.
"""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.durability import backup as backup_module


def machine(tmp_path):
    return started_machine("backup_recovery", tmp_path, frozenset({"recover", "fault:corrupt"}))


@pytest.mark.parametrize("how", ["manifest_lost", "marked_unverified", "extended"])
def test_passes_on_the_runtime(tmp_path, how):
    run_and_tear_down(machine(tmp_path), lambda m: m.recover_past_an_unverified_backup(how, "header", 7, [1, 2]))


def test_bites_a_backup_without_a_manifest_left_out_of_the_listing(tmp_path, monkeypatch):
    real = backup_module.BackupManager.list

    def listing(self):
        return [b for b in real(self) if backup_module._read_manifest(backup_module.Path(b.path)) is not None]

    monkeypatch.setattr(backup_module.BackupManager, "list", listing)
    with pytest.raises(AssertionError, match=r"p12_automatic_backup violated.*\(manifest_lost\) is not in "
                                             r"db\.backups\(\) at all"):
        run_and_tear_down(machine(tmp_path), lambda m: m.recover_past_an_unverified_backup("manifest_lost", "header",
                                                                                           7, [1, 2]))
