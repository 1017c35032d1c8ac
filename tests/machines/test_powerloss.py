"""The power-loss model of the runtime's own files (issue #14 item 4): what it drops, and what the runtime keeps.

The model tests use plain files; the runtime tests run the real runtime on real files under the
model and look at what a power loss right after an acknowledgement would leave.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_dbfault.faults import LockedFault
from pytest_dbfault.machines.powerloss import PowerLossModel, supported
from reliability import BackupManager, DatabaseManager, ReliabilityConfig
from reliability.files import fsync_dir

pytestmark = pytest.mark.skipif(not supported(), reason="the power-loss model reads fd paths from /proc/self/fd")


def test_a_file_in_a_modelled_subdirectory_needs_its_own_fsync_and_its_directory_fsync(tmp_path: Path) -> None:
    sub = tmp_path / "app.db.backups"
    sub.mkdir()
    model = PowerLossModel(str(tmp_path), subdirs=("app.db.backups",))
    with model.observing():
        with open(sub / "b1.sqlite", "wb") as fh:
            fh.write(b"copy")
            fh.flush()
            os.fsync(fh.fileno())
        assert "app.db.backups/b1.sqlite" not in model.durable_view()  # the name is not durable yet
        fsync_dir(sub)
    assert model.durable_view() == {"app.db.backups/b1.sqlite": b"copy"}


def test_a_subdirectory_created_without_a_parent_fsync_is_lost_with_its_files(tmp_path: Path) -> None:
    model = PowerLossModel(str(tmp_path), subdirs=("app.db.backups",))
    with model.observing():
        sub = tmp_path / "app.db.backups"
        sub.mkdir()
        with open(sub / "b1.sqlite", "wb") as fh:
            fh.write(b"copy")
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(sub)
        assert model.durable_view() == {}  # the directory itself is not in its parent yet
        fsync_dir(tmp_path)
    assert model.durable_view() == {"app.db.backups/b1.sqlite": b"copy"}
    model.apply(model.durable_view())
    assert (sub / "b1.sqlite").read_bytes() == b"copy"


def test_a_reused_inode_number_never_inherits_the_old_files_synced_content(tmp_path: Path) -> None:
    old = tmp_path / "app.db.queue.jsonl"
    old.write_bytes(b"old synced line\n")
    model = PowerLossModel(str(tmp_path))
    with model.observing():
        ino = old.stat().st_ino
        os.unlink(old)
        fsync_dir(tmp_path)
        # Create files until one gets the freed inode number (tmpfs and ext4 reuse it at once).
        made = []
        for i in range(50):
            p = tmp_path / f"app.db.audit-fallback.{i}.jsonl"
            p.write_bytes(b"never synced\n")
            made.append(p)
            if p.stat().st_ino == ino:
                break
        fsync_dir(tmp_path)
        view = model.durable_view()
    assert b"old synced line\n" not in view.values()
    assert all(view[p.name] == b"" for p in made)  # created and named durably, content never synced


def config(tmp_path: Path, **kw: Any) -> ReliabilityConfig:
    return ReliabilityConfig(db_path=str(tmp_path / "app.db"), synchronous="FULL", backup_interval=0,
                             health_check_interval=0, quick_check_interval=0, integrity_check_interval=0,
                             config_reload_interval=0, busy_timeout_ms=0, retry_attempts=1, **kw)


def test_an_audit_entry_in_a_new_fallback_file_survives_a_power_loss(tmp_path: Path) -> None:
    """Regression: the fallback file was created and fsynced, but its directory was not: the entry vanished."""
    db = DatabaseManager(config(tmp_path))
    try:
        db.execute("CREATE TABLE t (x)")
        model = PowerLossModel(str(tmp_path))
        with model.observing():
            with LockedFault(db.path, mode="exclusive"):
                entry = db.audit.record("alice", "flag.set", "beta", {"on": True})
            assert entry.pending
            view = model.durable_view()
    finally:
        db.close()
    fallback = "app.db.audit-fallback.jsonl"
    assert fallback in view and entry.entry_id.encode() in view[fallback]


def test_a_backup_and_its_new_directory_survive_a_power_loss(tmp_path: Path) -> None:
    """Regression: the backup directory was created without an fsync of its parent: every backup in it vanished.

    (Without the redo journal: re-anchoring the journal after a backup syncs the same parent and hid it.)
    """
    db = DatabaseManager(config(tmp_path, redo_journal=False))
    try:
        db.execute("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES (1)")
        backups = Path(db.config.backup_directory)
        if backups.exists():  # the runtime made one at start: start from no directory at all
            for p in backups.iterdir():
                p.unlink()
            backups.rmdir()
            fsync_dir(tmp_path)
        model = PowerLossModel(str(tmp_path), subdirs=(backups.name,))
        with model.observing():
            info = db.backup()
            view = model.durable_view()
    finally:
        db.close()
    name = f"{backups.name}/{Path(info.path).name}"
    assert name in view and view[name] == Path(info.path).read_bytes()
    assert f"{backups.name}/{Path(info.path).name}.json" in view  # its manifest too


#: ``os.unlink`` as Python 3.10's ``pathlib`` holds it (captured at import): calls through it bypass any hook
#: put on ``os`` later, as the runtime's backup rotation (``Path.unlink``) did under the model on Python 3.10.
_captured_unlink = os.unlink


def test_a_rotated_backup_never_comes_back_holding_the_state_of_a_newer_one(tmp_path: Path) -> None:
    """Regression (issue #14, the non-replaying P12 failure of the py310 CI-profile run): the model keyed
    synced content by inode number. Rotation unlinked an old backup where the model could not see it
    (``Path.unlink`` on Python 3.10), the next copy got the freed inode number and was fsynced, and a
    power loss before the next fsync of the backup directory brought the rotated backup's name back
    holding the new copy's bytes: "a listed backup holds another state". Whether the number was reused
    depended on the filesystem, so the failure did not replay.

    The reuse is made deterministic here: a hard link gives the new copy the old backup's inode number,
    and the old name is removed through a captured ``os.unlink`` the model does not observe.
    """
    sub = tmp_path / "app.db.backups"
    sub.mkdir()
    old = sub / "backup-1.sqlite"
    old.write_bytes(b"state of backup 1")
    (sub / "backup-1.sqlite.json").write_bytes(b'{"size": 17}')
    model = PowerLossModel(str(tmp_path), subdirs=(sub.name,))  # all of it durable
    new_tmp = sub / ".backup-2.sqlite.tmp"
    with model.observing():
        os.link(old, new_tmp)  # the new copy's inode number is the old backup's
        ino = new_tmp.stat().st_ino
        _captured_unlink(old)  # rotation, unseen by the model
        with open(new_tmp, "r+b") as fh:  # the new copy: other bytes, synced, no directory fsync yet
            fh.truncate(0)
            fh.write(b"state of backup 2")
            fh.flush()
            os.fsync(fh.fileno())
        view = model.durable_view()
    # After a power loss now the rotated name may come back (its unlink was never made durable), but only
    # with its own synced bytes, and the new copy's name is not durable yet.
    assert view["app.db.backups/backup-1.sqlite"] == b"state of backup 1"
    assert "app.db.backups/.backup-2.sqlite.tmp" not in view
    assert model.ident[ino] != model.entries["app.db.backups/backup-1.sqlite"]  # two files, one number
    assert model.reused == 1


def test_pathlib_unlinks_and_renames_are_observed_on_every_python(tmp_path: Path) -> None:
    """Python 3.10's ``pathlib`` calls the ``os`` functions it captured at import: the model hooks those too."""
    (tmp_path / "app.db.queue.jsonl").write_bytes(b"line\n")
    model = PowerLossModel(str(tmp_path))
    gone = (tmp_path / "app.db.queue.jsonl").stat().st_ino
    with model.observing():
        (tmp_path / "app.db.queue.jsonl").unlink()
        assert gone not in model.ident  # the number is free: a new file on it is a new file
        tmp = tmp_path / "app.db.audit-fallback.jsonl.tmp"
        with open(tmp, "wb") as fh:
            fh.write(b"entry\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(tmp_path / "app.db.audit-fallback.jsonl")
        ino = (tmp_path / "app.db.audit-fallback.jsonl").stat().st_ino
        assert model.where[model.ident[ino]] == "app.db.audit-fallback.jsonl"  # followed through the rename
        fsync_dir(tmp_path)
    assert model.durable_view() == {"app.db.audit-fallback.jsonl": b"entry\n"}
    assert model.reused == 0


def _backup_runtime(tmp_path: Path) -> tuple[DatabaseManager, Path]:
    db = DatabaseManager(config(tmp_path, redo_journal=False, backup_keep=1))
    db.execute("CREATE TABLE t (x)")
    db.execute("INSERT INTO t VALUES (1)")
    db.backup()  # the backup directory exists and is durable from here on
    return db, Path(db.config.backup_directory)


def _rotated_backups_after_power_loss(tmp_path: Path) -> list[str]:
    """Backups a power loss right after a rotation (backup_keep=1) would bring back, by name."""
    db, backups = _backup_runtime(tmp_path)
    try:
        model = PowerLossModel(str(tmp_path), subdirs=(backups.name,))
        with model.observing():
            before = {b.path for b in db.backups()}
            db.execute("INSERT INTO t VALUES (2)")
            db.backup()
            rotated = before - {b.path for b in db.backups()}
            assert rotated  # backup_keep=1: the older one was deleted
            view = model.durable_view()
    finally:
        db.close()
    return [p for p in rotated if f"{backups.name}/{Path(p).name}" in view]


def test_a_rotated_backup_stays_deleted_after_a_power_loss(tmp_path: Path) -> None:
    """Regression: rotation unlinked old backups and never synced the directory: after a power loss the
    directory held more than ``backup_keep`` verified backups again."""
    assert _rotated_backups_after_power_loss(tmp_path) == []


def test_bite_a_rotation_without_its_directory_fsync_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    """Planted bug: rotation deletes without the directory fsync. The model must bring the deleted backup back."""
    module = sys.modules[BackupManager.__module__]
    real_rotate = BackupManager.rotate

    def rotate_without_dir_fsync(self: Any) -> list[str]:
        with monkeypatch.context() as m:
            m.setattr(module, "fsync_dir", lambda *a, **k: None)
            return real_rotate(self)

    monkeypatch.setattr(BackupManager, "rotate", rotate_without_dir_fsync)
    assert len(_rotated_backups_after_power_loss(tmp_path)) == 1


def _manifest_after_power_loss(tmp_path: Path) -> dict[str, Any]:
    """The manifest a power loss right after ``mark_unverified`` would leave for that backup."""
    db, backups = _backup_runtime(tmp_path)
    try:
        info = db.backups()[0]
        model = PowerLossModel(str(tmp_path), subdirs=(backups.name,))
        with model.observing():
            BackupManager(backups, 1).mark_unverified(info.path, "quick_check failed (planted)")
            assert not db.backups()[0].verified
            view = model.durable_view()
    finally:
        db.close()
    return json.loads(view[f"{backups.name}/{Path(info.path).name}.json"])


def test_a_backup_marked_unverified_stays_unverified_after_a_power_loss(tmp_path: Path) -> None:
    """Regression: the manifest saying "failed re-verification" was renamed into place without a directory
    fsync: after a power loss the old manifest (verified) was back, and restore could pick a bad backup."""
    assert _manifest_after_power_loss(tmp_path)["verified"] is False


def test_bite_a_manifest_rewrite_without_its_directory_fsync_is_caught(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted bug: ``mark_unverified`` without the directory fsync. The model must bring the verified manifest back."""
    module = sys.modules[BackupManager.__module__]
    real_mark = BackupManager.mark_unverified

    def mark_without_dir_fsync(self: Any, path: Any, reason: str) -> None:
        with monkeypatch.context() as m:
            m.setattr(module, "fsync_dir", lambda *a, **k: None)
            real_mark(self, path, reason)

    monkeypatch.setattr(BackupManager, "mark_unverified", mark_without_dir_fsync)
    assert _manifest_after_power_loss(tmp_path)["verified"] is True


def test_a_file_synced_after_its_unlink_gets_no_name(tmp_path: Path) -> None:
    """The redo journal's writer thread may fsync the old journal after it was renamed over: its fd's path
    then reads ``app.db.redo (deleted)``, which is no name a power loss can bring back."""
    model = PowerLossModel(str(tmp_path))
    with model.observing():
        fd = os.open(tmp_path / "app.db.redo", os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            os.write(fd, b"record\n")
            os.unlink(tmp_path / "app.db.redo")
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(tmp_path)
    assert model.durable_view() == {} and not model.where
