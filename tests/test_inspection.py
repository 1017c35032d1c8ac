"""Reads of the runtime's own tables on a fresh database: an empty answer, no logged or counted error."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from runtime_helpers import fast_config

from reliability import DatabaseManager, Inspector, admin


def test_reads_of_a_fresh_database_through_the_api_log_and_count_no_error(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="reliability"), \
            DatabaseManager(fast_config(tmp_path / "app.db", admin_actors="alice")) as db:
        assert admin.list_flags(db).value == []
        assert admin.get_flag(db, "beta").value is None
        assert admin.audit(db, actor="alice", caller="alice").value == []
        assert db.audit.verify().ok and db.audit.entries() == []
        assert db.health().errors == {}
    assert not [r for r in caplog.records if "no such table" in r.getMessage() or r.levelno >= logging.ERROR]


def test_the_inspector_reads_a_fresh_database_as_empty(tmp_path: Path) -> None:
    with DatabaseManager(fast_config(tmp_path / "app.db")) as db:
        db.execute("CREATE TABLE app (x)")
    with Inspector(fast_config(tmp_path / "app.db")) as view:
        assert view.flags() == [] and view.audit_entries(5) == [] and view.audit.verify().ok
        assert view.health().healthy and view.check_integrity().ok


def test_an_inspector_beside_a_live_manager_keeps_that_manager_s_locks(tmp_path: Path) -> None:
    """Closing any descriptor of a file drops every POSIX lock this process holds on it: an inspector
    opened in the process of a live manager must not read the database file with plain I/O, or another
    process takes itself for the last user and checkpoints and deletes the -wal under the manager."""
    import os
    import subprocess
    import sys

    path = tmp_path / "app.db"
    db = DatabaseManager(fast_config(path))
    try:
        db.execute("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES (1)")
        assert os.path.exists(f"{path}-wal")  # the manager's WAL connection holds a SHARED lock on the file
        with Inspector(fast_config(path)) as view:
            assert view.health() is not None
        # Another process opens and closes the database: it finds the manager's lock, so it is not the
        # last connection and leaves the -wal alone.
        subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                        "c.execute('SELECT count(*) FROM sqlite_master').fetchall(); c.close()", str(path)],
                       check=True)
        assert os.path.exists(f"{path}-wal"), "the inspector dropped the manager's lock on the database file"
        assert db.fetch_one("SELECT x FROM t") == (1,)
    finally:
        db.close()


def test_an_inspector_names_a_missing_path_and_a_directory(tmp_path):
    from reliability import DatabaseError, ErrorKind, Inspector, ReliabilityConfig

    for path, said in ((tmp_path / "nope.db", "does not exist"), (tmp_path, "is not a database file")):
        with pytest.raises(DatabaseError) as info:
            Inspector(ReliabilityConfig(db_path=str(path)))
        assert info.value.kind is ErrorKind.CANTOPEN and said in info.value.detail and str(path) in info.value.detail


def test_the_queue_summary_counts_pending_and_refused_writes_and_skips_a_garbled_line(tmp_path):
    from reliability.inspection import queue_summary

    queue = tmp_path / "app.db.queue.jsonl"
    assert queue_summary(queue, 10) == {"pending": 0, "failed": 0, "path": str(queue), "max": 10}
    queue.write_bytes(b'{"op": "put", "key": "a"}\n{"op": "put", "key": "b"}\nnot json\n{"op": "put"}\n'
                      b'{"op": "failed", "key": "b"}\n{"op": "put", "key": "c"}\n{"op": "done", "key": "c"}\n'
                      b'{"op": "put", "key": "torn')
    assert queue_summary(queue, 10) == {"pending": 1, "failed": 1, "path": str(queue), "max": 10}
