"""Power loss (the VFS shim's ``power_loss``) in the middle of journaled commits (issue #17's proof).

The shim drops every write SQLite did not sync. The redo journal is written with plain ``pwrite`` +
``fdatasync`` outside SQLite's VFS, so it survives as written, except the abort marker of the commit the
power cut (written after the cut, so it is taken away here: the worst case, an orphan record of a
transaction SQLite never committed). After the reboot: every acknowledged write is there, the failed
one is not, the orphan is marked aborted at the unclean start, and recovery from corruption agrees.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from pytest_dbfault.vfs.faults import PowerLossFault
from reliability import DatabaseError, DatabaseManager, ReliabilityConfig
from reliability.redo import _Encoder, journal_files, read_journal


def config(path: Path) -> ReliabilityConfig:
    return ReliabilityConfig(db_path=str(path), synchronous="FULL", backup_interval=0, quick_check_interval=0,
                             integrity_check_interval=0, health_check_interval=0, busy_timeout_ms=200,
                             retry_attempts=1, auto_recover=False)


def drop_trailing_abort_markers(journal: Path) -> int:
    """Remove abort markers at the end of a journal copy (they were written after the power went)."""
    data = journal.read_bytes()
    dropped = 0
    while True:
        state = read_journal(journal)
        marker = _Encoder().record(("abort", state.aborted[-1])) if state.aborted else b""
        if not marker or not data.endswith(marker):
            return dropped
        data = data[:-len(marker)]
        journal.write_bytes(data)
        dropped += 1


@pytest.mark.parametrize("after_syncs", [2, 5, 9])
def test_power_loss_mid_commit_keeps_every_acknowledged_write_and_no_failed_one(needs_vfs, tmp_path, after_syncs,
                                                                                 caplog):
    live = tmp_path / "live"
    live.mkdir()
    path = live / "app.db"
    with DatabaseManager(config(path)) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        db.backup()
    acked: list[int] = []
    failed: list[int] = []
    with PowerLossFault(path, after_syncs=after_syncs, dest=tmp_path / "image") as power:
        db = DatabaseManager(config(path))  # opened after inject(): every SQLite file operation goes through the shim
        for i in range(1, 16):
            try:
                db.execute("INSERT INTO t (id, v) VALUES (?, ?)", (i, f"row {i}"))
                acked.append(i)
            except DatabaseError:
                failed.append(i)
                break
        assert power.recorder.crashed, "the power cut never happened: the test would prove nothing"
        journals = [(p.name, p.read_bytes()) for _slot, p in journal_files(live / "app.db.redo")]
        try:
            db.close()
        except Exception:  # noqa: BLE001 - the power is gone: closing may fail, as after a real cut
            pass
    assert failed, "no write failed at the power cut"
    after = tmp_path / "after"
    after.mkdir()
    for original, image in power.images.items():
        shutil.copy(image, after / os.path.basename(original))
    for name, data in journals:  # the journals as they were when the power went
        (after / name).write_bytes(data)
    shutil.copytree(live / "app.db.backups", after / "app.db.backups")
    dropped = sum(drop_trailing_abort_markers(after / name) for name, _ in journals)
    assert dropped == 1  # the failed commit's record was written before COMMIT: now an orphan
    with sqlite3.connect(after / "app.db") as probe:
        present = [r[0] for r in probe.execute("SELECT id FROM t ORDER BY id")]
    assert set(acked) <= set(present) and failed[0] not in present  # what SQLite itself kept
    # The reboot: an unclean start reconciles the journals with the database before anything else.
    with caplog.at_level("WARNING", "reliability.redo"):
        db = DatabaseManager(config(after / "app.db"))
    assert any("never committed as aborted" in r.getMessage() for r in caplog.records)
    try:
        assert [r[0] for r in db.fetch_all("SELECT id FROM t ORDER BY id")] == present
        db.execute("INSERT INTO t (id, v) VALUES (100, 'after the reboot')")
        db.connections.close()
        with open(after / "app.db", "r+b") as f:
            f.write(b"\x00" * 16)  # then the file is damaged for real
        report = db.recover()
        assert report.ok, report
        ids = [r[0] for r in db.fetch_all("SELECT id FROM t ORDER BY id")]
        assert ids == present + [100]  # every acknowledged write, never the failed one, no orphan replayed
    finally:
        db.close()
