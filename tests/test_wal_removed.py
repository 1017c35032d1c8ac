"""A ``-wal`` removed on its own while rows committed in it were not yet checkpointed (issue #15).

SQLite says nothing either way (checked here for real): with no connection open the database opens
as of the last checkpoint, integrity ``ok``, every later commit gone; with a connection open that
connection keeps using the unlinked WAL while every other one sees the old state or a disk I/O error.
At a restart the runtime finds the loss in the redo journals, refuses the database naming the missing
sequences, and recovery brings every acknowledged write back; never silently. (A -wal removed under running
managers: tests/test_wal_removed_live.py.)
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from redo_worker import ACCOUNTS
from redo_worker import config as worker_config

from reliability import DatabaseError, DatabaseManager
from reliability.errors import ErrorKind

BANK_WORKER = str(Path(__file__).with_name("redo_worker.py"))


def _bank(path: Path) -> None:
    with DatabaseManager(worker_config(str(path))) as db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
        db.execute("CREATE TABLE transfers (id TEXT PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER)")
        db.executemany("INSERT INTO accounts (id, balance) VALUES (?, 1000)", [(i,) for i in range(1, ACCOUNTS + 1)])
        db.backup()


def _acked(acks: Path) -> set[str]:
    return {ln for ln in acks.read_text().splitlines() if ln and not ln.startswith("armed")}


def _transfers(path: Path) -> tuple[set[str], int]:
    conn = sqlite3.connect(path)
    try:
        ids = {r[0] for r in conn.execute("SELECT id FROM transfers")}
        (total,) = conn.execute("SELECT sum(balance) FROM accounts").fetchone()
    finally:
        conn.close()
    return ids, total


def _crash_after_writes(tmp_path: Path, count: int = 20) -> tuple[Path, set[str]]:
    """A worker process acknowledges ``count`` transfers and is killed -9 in the next one (after its COMMIT):
    nothing checkpoints, the rows stay in the -wal."""
    path = tmp_path / "bank.db"
    _bank(path)
    acks = tmp_path / "acks"
    done = subprocess.run([sys.executable, BANK_WORKER, "bank", str(path), "1", str(count), str(acks), "after_commit"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr[-2000:]
    assert os.path.getsize(f"{path}-wal") > 0
    return path, _acked(acks)


@pytest.mark.parametrize("shm", ["kept", "removed"])
def test_a_wal_removed_after_a_crash_is_found_at_restart_and_recovery_brings_every_write_back(tmp_path, shm):
    path, acked = _crash_after_writes(tmp_path)
    os.unlink(f"{path}-wal")
    if shm == "removed":
        os.unlink(f"{path}-shm")
    assert _transfers(path)[0] == set()  # what SQLite alone gives: the file as of the last checkpoint, silently
    db = DatabaseManager(worker_config(str(path)))  # auto_recover=False
    try:
        with pytest.raises(DatabaseError) as caught:
            db.fetch_all("SELECT id FROM transfers")
        assert caught.value.kind is ErrorKind.UNAVAILABLE
        assert "committed transaction(s)" in caught.value.detail and "sequence" in caught.value.detail
        health = db.health()
        assert str(health.status) == "unavailable" and any("-wal was removed" in r for r in health.reasons)
        with pytest.raises(DatabaseError):
            db.execute("INSERT INTO transfers (id, src, dst, amount) VALUES ('new', 1, 1, 0)")
        report = db.recover()
        assert report.ok, report.problems
        ids = {r[0] for r in db.fetch_all("SELECT id FROM transfers")}
        assert acked <= ids and len(acked) == 20
        assert str(db.health().status) == "healthy"
    finally:
        db.close()
    ids, total = _transfers(path)
    assert acked <= ids and total == ACCOUNTS * 1000


def test_with_auto_recover_a_wal_removed_after_a_crash_is_recovered_at_startup(tmp_path):
    path, acked = _crash_after_writes(tmp_path)
    os.unlink(f"{path}-wal")
    with DatabaseManager(worker_config(str(path)).replace(auto_recover=True)) as db:
        ids = {r[0] for r in db.fetch_all("SELECT id FROM transfers")}
        assert acked <= ids
        assert db.monitor.recoveries == 1 and db.monitor.last_recovery["ok"]
        assert str(db.health().status) == "healthy"


def test_a_crash_without_a_removed_wal_is_no_incident(tmp_path):
    """The detection does not fire on a plain crash: the WAL is replayed by SQLite, nothing is missing."""
    path, acked = _crash_after_writes(tmp_path)
    with DatabaseManager(worker_config(str(path))) as db:
        ids = {r[0] for r in db.fetch_all("SELECT id FROM transfers")}
        assert acked <= ids
        assert db.connections.refused is None and str(db.health().status) == "healthy"
