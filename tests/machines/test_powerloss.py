"""The power-loss model of the runtime's own files (issue #14 item 4): what it drops, and what the runtime keeps.

The model tests use plain files; the runtime tests run the real runtime on real files under the
model and look at what a power loss right after an acknowledgement would leave.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_dbfault.faults import LockedFault
from pytest_dbfault.machines.powerloss import PowerLossModel, supported
from reliability import DatabaseManager, ReliabilityConfig

pytestmark = pytest.mark.skipif(not supported(), reason="the power-loss model reads fd paths from /proc/self/fd")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
