"""The backup machine judges backups damaged on disk (rule ``damage_backups_then_repair``: pages overwritten at the
same size, cut short, deleted) and what ``db.recover()`` and ``db.restore()`` make of them, and every field of the
record ``db.backup()`` returns against its file, manifest and ``db.backups()`` (``check_backup_info``). Each check
fails against a runtime with one realistic defect of that kind."""

from __future__ import annotations

import json
import time

import pytest
from bite_settings import bite_settings, run_streams

from pytest_dbfault.machines import MACHINES
from reliability.durability import backup as backup_module
from reliability.durability.backup import BackupManager

BITE = bite_settings(max_examples=40, steps=15)


def test_it_bites_a_failed_check_that_is_never_recorded(tmp_path, monkeypatch):
    # The re-verification verdict is logged but its manifest update was lost in a refactor: a backup that failed
    # integrity_check stays listed verified, and the next restore or recovery picks it again.
    monkeypatch.setattr(BackupManager, "mark_unverified",
                        lambda self, path, reason: backup_module.log.error("backup %s failed: %s", path, reason))
    # (db.restore() meets it first when every backup left is that one: refused again as damaged, where "no verified
    # backup" is owed.)
    with pytest.raises(AssertionError, match=r"(damaged on disk and examined by it, are .*still listed verified"
                                             r"|db\.restore\(\) with every verified backup damaged or gone .*"
                                             r"refused: .*\[corrupt\].*it must say there is no verified backup)"):
        run_streams(MACHINES["backup_recovery"], settings_=BITE, base_dir=str(tmp_path), enforce={12, 13})


def test_it_bites_a_verification_that_trusts_the_manifest(tmp_path, monkeypatch):
    # "The manifest already says verified and the size matches": the re-check before a restore or a recovery is
    # skipped, so a backup whose pages were overwritten in place is installed.
    monkeypatch.setattr(BackupManager, "verify", lambda self, path: [])
    with pytest.raises(AssertionError, match=r"(recovery restored .*still passes integrity_check is"
                                             r"|db\.restore\(.*damaged on disk .*must refuse it"
                                             r"|damaged on disk and examined by it, are "
                                             r"\['still listed verified'(, '[^']*')*\])"):
        run_streams(MACHINES["backup_recovery"], settings_=BITE, base_dir=str(tmp_path), enforce={12, 13})


def test_it_bites_a_restore_that_takes_the_oldest_backup(tmp_path, monkeypatch):
    # db.restore() with no argument: "the first verified one" of a listing read oldest first.
    monkeypatch.setattr(BackupManager, "newest_verified",
                        lambda self: next((b for b in reversed(self.list()) if b.verified), None))
    # (Met either way: it restores an older backup where the next newest was owed, or where the newest, damaged on
    # disk, had to be refused; session 24's weight on older_copy_put_in_place moved the search to the second.)
    with pytest.raises(AssertionError, match=r"db\.restore\(\) (.*expected the next newest verified one"
                                             r"|with the newest verified backup .* damaged on disk \(restored )"):
        run_streams(MACHINES["backup_recovery"], settings_=BITE, base_dir=str(tmp_path), enforce={12})


def test_it_bites_a_manifest_stamped_with_a_second_clock_read(tmp_path, monkeypatch):
    # The manifest is stamped when it is written, not with the time the backup call recorded: db.backups() and the
    # record db.backup() returned disagree on when the backup was made.
    real = backup_module._write_manifest

    def write_manifest(backup, info, check="integrity_check ok"):
        real(backup, info, check)
        path = backup_module._manifest_path(backup)
        doc = json.loads(path.read_text(encoding="utf-8"))
        doc["created_at"] = time.time() + 0.5
        path.write_text(json.dumps(doc), encoding="utf-8")

    monkeypatch.setattr(backup_module, "_write_manifest", write_manifest)
    with pytest.raises(AssertionError, match=r"db\.backup\(\) returned BackupInfo\(.*db\.backups\(\) lists"):
        run_streams(MACHINES["backup_recovery"], settings_=BITE, base_dir=str(tmp_path), enforce={12})


def test_it_bites_a_backup_that_runs_inside_a_transaction(tmp_path, monkeypatch):
    # The "not inside a transaction" guards dropped from backup() (it runs on a connection of its own, so "it is
    # safe"): neither the runtime's transaction depth nor the connection's open transaction (a BEGIN through
    # execute()) is looked at, so the call is no longer refused as a misuse; it copies under the caller's own write
    # lock (in WAL mode a backup the open transaction's caller never asked for, in a rollback mode a lock wait it
    # cannot end).
    from reliability.durability.backup import BackupTaker

    real = BackupTaker.backup

    def backup(self):
        tx, connections = self.parts.transactions, self.parts.connections
        depth, tx.depth = tx.depth, 0
        connections.in_transaction = lambda: False  # (the instance's, for this call only)
        try:
            return real(self)
        finally:
            tx.depth = depth
            del connections.in_transaction

    monkeypatch.setattr(BackupTaker, "backup", backup)
    with pytest.raises(AssertionError, match=r"db\.backup\(\) inside a transaction (ran|failed as .*not as misuse)"):
        run_streams(MACHINES["backup_recovery"], settings_=BITE, base_dir=str(tmp_path), enforce={12})


def test_it_bites_a_start_that_compares_the_journals_only_after_a_crash(tmp_path, monkeypatch):
    # "After a clean stop the database holds every commit": the start no longer compares the redo journals with the
    # file, so a copy of the newest backup installed over the database by hand serves the older state, and the
    # writes acknowledged since it (in the journal only) are silently gone.
    from reliability.durability import lost_commits

    monkeypatch.setattr(lost_commits, "find_lost_commits", lambda *args, **kwargs: None)
    with pytest.raises(AssertionError, match=r"installed over the database by hand.* the first read after the start "
                                             r"(returned other rows|was served from the older copy)"):
        run_streams(MACHINES["backup_recovery"], settings_=BITE, base_dir=str(tmp_path), enforce={13})
