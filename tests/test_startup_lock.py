"""A lock another process holds while the runtime starts is never a state for the process's life.

Several processes opening one database at the same moment is the usual deployment (web workers, job
runners). While one of them opens the file, it holds SQLite's lock before its ``-shm`` exists, and the
runtime's own check (``connection._refuse_a_second_index``) answers busy. Each startup step (compare the
journals with the database, reconcile orphans, record the journal's slot, take the anchoring backup) used
to give up at that first busy: measured with ``benchmarks/targets.py``'s 8 bank processes and reproduced
below with a 0.5 s lock, the manager stayed ``degraded`` with "writes are not journaled until a backup
succeeds" for good, and the lost-commit and orphan checks were silently skipped.

The holder here is a real SQLite connection in another process: ``locking_mode=EXCLUSIVE`` on a WAL
database reads it without a ``-shm`` and keeps its lock, which is the state the runtime sees during
another process's first open. The retry policy's ``sleep`` is where a test lifts it, so nothing depends
on timing (as in ``test_transient_maintenance.py``).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

from runtime_helpers import fast_config, wait_for

from reliability import DatabaseManager
from reliability.redo import WRITERS_TABLE, read_journal
from reliability.retry import RetryPolicy

HOLDER = r"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA locking_mode = EXCLUSIVE")  # WAL without a -shm, the lock kept
conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
print("held", flush=True)
sys.stdin.read()
conn.close()
"""


class Holder:
    """Another process holding the database with no ``-shm`` until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "held"
        assert not Path(str(path) + "-shm").exists()

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(30)


class ReleaseOnSleep:
    """A retry policy's sleep that releases the holder the first time the policy backs off."""

    def __init__(self, holder: Holder) -> None:
        self.holder = holder
        self.sleeps = 0

    def __call__(self, seconds: float) -> None:
        self.sleeps += 1
        self.holder.release()


def closed_wal_database(path: Path) -> None:
    """A WAL database closed cleanly: no -wal, no -shm (the next opener creates them)."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO t VALUES (1, 'before')")


def rows(path: str | Path) -> list[tuple[int, str]]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT id, v FROM t ORDER BY id").fetchall()


def test_a_start_while_another_process_opens_the_database_ends_healthy_with_the_journal_anchored(tmp_path):
    path = tmp_path / "app.db"
    closed_wal_database(path)
    holder = Holder(path)
    try:
        sleep = ReleaseOnSleep(holder)
        cfg = fast_config(path, synchronous="FULL", retry_attempts=5)
        db = DatabaseManager(cfg, policy=RetryPolicy.from_config(cfg, sleep=sleep))
    finally:
        holder.release()
    try:
        health = db.health()
        assert health.status == "healthy", health
        assert sleep.sleeps >= 1, "the holder was never met: this test did not reproduce the race"
        assert db._redo.error is None
        assert read_journal(db._redo.path).header, "the journal was never anchored"
        assert db.backups(), "no anchoring backup was taken"
        slots = db.fetch_all(f"SELECT slot FROM {WRITERS_TABLE}")
        assert (db._redo.slot,) in [tuple(r) for r in slots], "the journal's slot was not recorded"
    finally:
        db.close()


def test_a_lock_outlasting_the_policy_at_startup_defers_the_checks_and_the_writes_meanwhile_are_backed_up(tmp_path):
    path = tmp_path / "app.db"
    closed_wal_database(path)
    holder = Holder(path)
    try:
        cfg = fast_config(path, synchronous="FULL", retry_attempts=2)
        db = DatabaseManager(cfg, policy=RetryPolicy.from_config(cfg, sleep=lambda s: None))
        health = db.health()
        assert health.status == "degraded", health
        assert "could not be compared with the database at startup" in (db._redo.error or "")
    finally:
        holder.release()
    try:
        # Written while the checks wait: in no journal, so the deferred run must anchor with a backup after it.
        db.execute("INSERT INTO t VALUES (2, 'while deferred')")
        assert wait_for(lambda: db._redo.error is None, timeout=60), db._redo.error
        assert db.health().status == "healthy"
        newest = max(db.backups(), key=lambda b: b.created_at)
        assert (2, "while deferred") in rows(newest.path)
        db.execute("INSERT INTO t VALUES (3, 'after')")
        db.connections.close()
        with contextlib.closing(sqlite3.connect(path)) as conn:  # real damage: the header's magic
            conn.execute("PRAGMA journal_mode = DELETE")
        with open(path, "r+b") as f:
            f.write(b"garbage garbage!")
        report = db.recover()
        assert report.ok, report
        assert [r[0] for r in db.fetch_all("SELECT id FROM t ORDER BY id")] == [1, 2, 3]
    finally:
        db.close()


def test_a_registered_lock_fault_at_startup_in_a_rollback_journal_defers_the_checks_until_it_heals(tmp_path):
    """The same through the plugin's own fault (``LockedFault``, a real ``BEGIN EXCLUSIVE`` in another process):
    in a rollback journal mode it keeps even the startup's reads out, so the journal checks are deferred."""
    from pytest_dbfault.faults import LockedFault

    path = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    fault = LockedFault(path, mode="exclusive", holder="subprocess")
    fault.inject()
    try:
        cfg = fast_config(path, journal_mode="DELETE", synchronous="FULL", retry_attempts=2)
        db = DatabaseManager(cfg, policy=RetryPolicy.from_config(cfg, sleep=lambda s: None))
        assert "could not be compared with the database at startup" in (db._redo.error or "")
        assert db.health().status != "healthy"
    finally:
        fault.heal()
    try:
        assert wait_for(lambda: db._redo.error is None, timeout=60), db._redo.error
        db.execute("INSERT INTO t VALUES (1, 'journaled')")
        assert db.health().status == "healthy", db.health()
        assert read_journal(db._redo.path).entries, "the journal took no record after the deferred checks ran"
    finally:
        db.close()



def test_a_write_lock_outlasting_the_policy_at_startup_defers_only_the_anchor_until_it_heals(tmp_path):
    """WAL: the plugin's ``LockedFault`` keeps writers out but not readers, so the journals are compared with
    the database; recording the slot and the anchoring backup meet the lock, and the backup (with the slot) is
    taken in the background once it heals."""
    from pytest_dbfault.faults import LockedFault

    path = tmp_path / "app.db"
    closed_wal_database(path)
    fault = LockedFault(path, mode="exclusive", holder="subprocess")
    fault.inject()
    try:
        cfg = fast_config(path, synchronous="FULL", retry_attempts=2)
        db = DatabaseManager(cfg, policy=RetryPolicy.from_config(cfg, sleep=lambda s: None))
        assert "could not be anchored at startup" in (db._redo.error or ""), db._redo.error
        assert db.health().status != "healthy"
        assert db.backups() == []
    finally:
        fault.heal()
    try:
        assert wait_for(lambda: db._redo.error is None, timeout=60), db._redo.error
        assert db.backups(), "the deferred anchor took no backup"
        slots = [tuple(r) for r in db.fetch_all(f"SELECT slot FROM {WRITERS_TABLE}")]
        assert (db._redo.slot,) in slots, "the slot was not recorded with the deferred anchor"
        db.execute("INSERT INTO t VALUES (2, 'journaled')")
        assert read_journal(db._redo.path).entries
        assert db.health().status == "healthy", db.health()
    finally:
        db.close()


def test_a_lock_between_the_lost_commit_check_and_the_orphan_reconcile_defers_the_reconcile(tmp_path, monkeypatch,
                                                                                           caplog):
    """The orphan reconcile reads the committed sequences again. A lock taken by another process just after
    the lost-commit check (a real ``BEGIN EXCLUSIVE`` through the plugin's ``LockedFault``, in a rollback
    journal mode where it keeps readers out) used to make the reconcile log a warning and skip: the dead
    worker's record stayed unmarked while health said healthy. It is deferred like the check before it."""
    from redo_worker import ACCOUNTS
    from redo_worker import config as worker_config

    from pytest_dbfault.faults import LockedFault
    from reliability.durability import journal as journal_module

    path = tmp_path / "bank.db"
    with DatabaseManager(worker_config(str(path))) as setup:
        setup.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
        setup.execute("CREATE TABLE transfers (id TEXT PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER)")
        setup.executemany("INSERT INTO accounts (id, balance) VALUES (?, 1000)",
                          [(i,) for i in range(1, ACCOUNTS + 1)])
        setup.backup()
    worker = subprocess.Popen([sys.executable, str(Path(__file__).with_name("redo_worker.py")), "bank", str(path),
                               "1", "2", str(tmp_path / "acks"), "after_record"], stderr=subprocess.PIPE)
    assert worker.wait(120) == -9  # killed between its durable record and COMMIT: an orphan record

    def orphans_marked() -> list[str]:  # (the anchoring backup then starts the journal afresh: the log tells)
        return [r.getMessage() for r in caplog.records if "never committed as aborted" in r.getMessage()]

    caplog.set_level(logging.WARNING, "reliability.redo")
    fault = LockedFault(path, mode="exclusive", holder="subprocess")
    real_check = journal_module.lost_commits_at_start

    def check_then_lock(*args, **kwargs):  # another process takes the lock right after the first check
        answer = real_check(*args, **kwargs)
        if not taken:
            taken.append(True)
            fault.inject()
        return answer

    taken: list[bool] = []

    monkeypatch.setattr(journal_module, "lost_commits_at_start", check_then_lock)
    try:
        cfg = fast_config(path, journal_mode="DELETE", synchronous="FULL", retry_attempts=2)
        db = DatabaseManager(cfg, policy=RetryPolicy.from_config(cfg, sleep=lambda s: None))
        assert taken and fault.active, "the lock was never taken: this test did not reach the reconcile"
        assert "could not be compared with the database at startup" in (db._redo.error or ""), db._redo.error
        assert db.health().status != "healthy"
        assert orphans_marked() == []
    finally:
        fault.heal()
    try:
        assert wait_for(lambda: db._redo.error is None, timeout=60), db._redo.error
        assert len(orphans_marked()) == 1, "the dead worker's record was never reconciled"
        assert db.health().status == "healthy", db.health()
    finally:
        db.close()
