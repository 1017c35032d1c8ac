"""What the redo journal makes durable follows SQLite's ``synchronous`` level, at start and after a reload.

Seen through the power-loss model of the runtime's own files (:mod:`pytest_dbfault.machines.powerloss`): it
observes the real ``fsync``/``fdatasync`` calls and says what a power loss right after the acknowledgement
would leave of the journal file.

* FULL: every acknowledged record is durable; its committed mark only when the record's flush, started before
  COMMIT, happens to run after it (else it becomes durable with the next record's flush).
* EXTRA: the committed mark is durable before the acknowledgement too. That closes the one case FULL leaves
  undecided (README, "A ``-wal`` removed on its own"): a power loss right after a commit drops the mark, the
  ``-wal`` holding that one transaction is removed before the restart, and the unmarked record is taken for an
  orphan. The end-to-end test below builds exactly that state.
* A reload from NORMAL to FULL used to leave the journal as it started: no flush at all, and still committing
  alone (the record written after COMMIT, unsynced), while SQLite synced every commit.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pytest_dbfault.machines.powerloss import PowerLossModel, supported
from reliability import DatabaseManager, ReliabilityConfig
from reliability.redo import read_journal

pytestmark = pytest.mark.skipif(not supported(), reason="the power-loss model reads fd paths from /proc/self/fd")


def config(db: Path, **kw: Any) -> ReliabilityConfig:
    values: dict[str, Any] = dict(db_path=str(db), backup_interval=0, health_check_interval=0,
                                  quick_check_interval=0, integrity_check_interval=0, config_reload_interval=0,
                                  busy_timeout_ms=200, retry_attempts=2, auto_recover=False)
    values.update(kw)
    return ReliabilityConfig(**values)


def durable_journal(view: dict[str, bytes], db: DatabaseManager, where: Path) -> Any:
    """The journal file as a power loss now would leave it, parsed."""
    name = Path(db.redo_journal.path).name
    where.write_bytes(view.get(name, b""))
    return read_journal(where)


def commit_one(db: DatabaseManager, tmp_path: Path, value: str) -> tuple[int, Any]:
    """One acknowledged insert under the model: (its sequence, the journal a power loss right after leaves)."""
    model = PowerLossModel(str(tmp_path))
    with model.observing():
        db.execute("INSERT INTO t (v) VALUES (?)", (value,))
        view = model.durable_view()
    seq = db.redo_journal.seq
    return seq, durable_journal(view, db, tmp_path / "durable.redo")


@pytest.mark.parametrize("level", ["FULL", "EXTRA"])
def test_the_acknowledged_record_is_durable_and_its_mark_only_under_extra(tmp_path: Path, level: str) -> None:
    (tmp_path / "run").mkdir()
    with DatabaseManager(config(tmp_path / "run" / "app.db", synchronous=level)) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        seq, durable = commit_one(db, tmp_path / "run", "one")
    assert seq in [s for s, _ops in durable.entries], "an acknowledged record would be lost with power"
    if level == "EXTRA":  # (under FULL it may be durable too: the record's flush may start after the mark)
        assert seq in durable.marked, durable.marked


def test_a_reload_from_normal_to_full_flushes_every_acknowledged_record_from_the_next_commit(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    env = run / ".env"
    env.write_text("RELIABILITY_SYNCHRONOUS=NORMAL\n")
    with DatabaseManager(config(run / "app.db", synchronous="NORMAL")) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.execute("INSERT INTO t (v) VALUES ('under normal')")
        assert db.redo_journal.claim is not None, "NORMAL commits alone: this test would not see the claim go"
        watcher = db.watch_env(env, interval=0)
        env.write_text("RELIABILITY_SYNCHRONOUS=FULL\n")
        watcher.check_now()
        assert db.config.synchronous == "FULL"
        seq, durable = commit_one(db, run, "under full")
        assert db.redo_journal.claim is None
        extra_env = "RELIABILITY_SYNCHRONOUS=EXTRA\n"
        env.write_text(extra_env)
        watcher.check_now()
        marked_seq, marked = commit_one(db, run, "under extra")
        assert db.fetch_all("SELECT v FROM t ORDER BY id") == [("under normal",), ("under full",), ("under extra",)]
    assert seq in [s for s, _ops in durable.entries], "after the reload to FULL an acknowledged record is not durable"
    assert marked_seq in marked.marked, "after the reload to EXTRA the committed mark is not durable"


def test_under_extra_a_power_loss_then_a_removed_wal_loses_no_acknowledged_transaction(tmp_path: Path) -> None:
    """The state a power loss right after the acknowledgement leaves, then the ``-wal`` removed before the restart.

    Built from the real files: the database file as of the last checkpoint (so the acknowledged transaction
    exists only in the ``-wal``, which is then gone), the journal as the power-loss model says it would be left,
    the backups as they are. The restarted runtime must find the transaction missing, refuse the database, and
    recovery must bring it back; under FULL the mark would be gone and it would be taken for an orphan.
    """
    run = tmp_path / "run"
    run.mkdir()
    db = DatabaseManager(config(run / "app.db", synchronous="EXTRA"))
    try:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.execute("INSERT INTO t (v) VALUES ('before')")
        db.backup()
        db.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the database file holds everything so far
        model = PowerLossModel(str(run))
        with model.observing():
            db.execute("INSERT INTO t (v) VALUES ('acknowledged')")  # only in the -wal from here
            view = model.durable_view()
        after = tmp_path / "after"
        shutil.copytree(run, after, ignore=shutil.ignore_patterns("*-wal", "*-shm", "app.db.redo*"))
        for name, data in view.items():
            if name.startswith("app.db.redo"):
                (after / name).write_bytes(data)
    finally:
        db.close()
    with contextlib.closing(sqlite3.connect(after / "app.db")) as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [("before",)]  # the -wal and its transaction are gone
    restarted = DatabaseManager(config(after / "app.db", synchronous="EXTRA"))
    try:
        health = restarted.health()
        assert health.status.value == "unavailable", health
        assert any("missing" in r and "committed transaction" in r for r in health.reasons), health.reasons
        report = restarted.recover()
        assert report.ok, report
        assert restarted.fetch_all("SELECT v FROM t ORDER BY id") == [("before",), ("acknowledged",)]
    finally:
        restarted.close()
