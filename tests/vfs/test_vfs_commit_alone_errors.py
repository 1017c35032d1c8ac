"""Real I/O errors on the path of a manager committing alone (synchronous NORMAL, issue #17).

Each test makes the error with the VFS shim on the runtime's own connection: a COMMIT that fails
writes no journal record, and a backup whose sequence publication fails copies nothing and leaves
the manager committing alone (no sequence number is left out for it later).
"""

from __future__ import annotations

import logging

import pytest
from redo_worker import config
from runtime_helpers import SQLITE_MODULE_NAME

from pytest_dbfault.faults import make_fault
from pytest_dbfault.vfs.faults import IoErrorFault
from reliability import DatabaseError, DatabaseManager
from reliability.redo import read_journal


@pytest.fixture
def normal(tmp_path):
    # (On the build the tox cell names, as runtime_through_vfs expects: the faults go into that build's SQLite.)
    db = DatabaseManager(config(str(tmp_path / "app.db")).replace(synchronous="NORMAL", retry_attempts=1,
                                                                  sqlite_module=SQLITE_MODULE_NAME))
    db.execute("CREATE TABLE t (x INTEGER)")
    db.execute("INSERT INTO t VALUES (1)")
    yield db
    db.close()


def journal_seqs(db: DatabaseManager) -> list[int]:
    return [seq for seq, _ops in read_journal(db.config.redo_journal_file).entries]


def test_a_commit_alone_that_fails_writes_no_record_and_changes_nothing(runtime_through_vfs, normal):
    db = normal
    assert db._redo is not None and db._redo.claim is not None, "this manager commits alone"
    # A rule that never fires keeps the shim installed while the next connection opens through it; that
    # connection's first commit claims the right to commit alone again, so the failing one below is alone.
    with IoErrorFault(db.path, ops="write", nth=10**9):
        db._drop_connection()
        db.execute("INSERT INTO t VALUES (2)")
        assert db._redo.alone(db.connections.connection), "the next commit on this connection is alone"
        before = journal_seqs(db)
        with IoErrorFault(db.path, ops="write", nth=1) as fault:
            with pytest.raises(DatabaseError) as info:
                with db.transaction():
                    db.execute("INSERT INTO t VALUES (3)")
        assert fault.fired == 1
    assert str(info.value.kind) == "ioerr"
    assert journal_seqs(db) == before, "a failed COMMIT left a journal record a replay would apply"
    db.execute("INSERT INTO t VALUES (4)")
    assert db.fetch_all("SELECT x FROM t ORDER BY x") == [(1,), (2,), (4,)]


def test_a_backup_whose_sequence_cannot_be_published_copies_nothing_and_leaves_no_gap(
        runtime_through_vfs, normal, caplog):
    db = normal
    count = len(db.backups())
    with IoErrorFault(db.path, ops="write", nth=1) as fault:
        db._drop_connection()
        with pytest.raises(DatabaseError, match="cannot record the sequence"):
            db.backup()
    assert fault.fired == 1
    assert len(db.backups()) == count
    caplog.set_level(logging.WARNING, logger="reliability")
    db.execute("INSERT INTO t VALUES (2)")
    info = db.backup()
    assert info.verified
    assert "left out" not in caplog.text, "the failed publication made the live owner look dead"


def test_a_recovery_that_cannot_fence_writers_out_installs_nothing(tmp_path):
    cfg = config(str(tmp_path / "app.db")).replace(retry_attempts=2, retry_budget=0.5, busy_timeout_ms=50)
    db = DatabaseManager(cfg)
    try:
        db.execute("CREATE TABLE t (x INTEGER)")
        db.execute("INSERT INTO t VALUES (1)")
        db.backup()
        inode = (tmp_path / "app.db").stat().st_ino
        with make_fault("locked", db, mode="write"):
            with pytest.raises(DatabaseError, match="no verdict") as info:
                db.recover()
        assert str(info.value.kind) in ("busy", "locked")
        assert (tmp_path / "app.db").stat().st_ino == inode, "a file was installed while a writer held it"
        assert not list(tmp_path.glob("*quarantine*"))
        assert db.fetch_all("SELECT x FROM t") == [(1,)]
    finally:
        db.close()
