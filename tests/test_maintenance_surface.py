"""How a failed maintenance operation surfaces (issue #16): once in the log, once in the operation log, and
never as a verdict on the database (no corruption watch, no listener, no recovery started by it)."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest
from runtime_helpers import fast_config, sqlite_module

from reliability import DatabaseError, DatabaseManager, ErrorKind


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _damage_table_page(path: str) -> None:
    """Overwrite the root page of table ``t`` of a closed file with garbage (real damage on disk)."""
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 't'").fetchone()[0]
    conn.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xff" * page_size)


def _manager(tmp_path: Path) -> tuple[DatabaseManager, Path]:
    ops = tmp_path / "ops.jsonl"
    db = DatabaseManager(fast_config(tmp_path / "app.db", operation_log=True, operation_log_path=str(ops),
                                     log_json=True))
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    db.execute("INSERT INTO t (v) VALUES ('kept')")
    return db, ops


def test_a_damaged_backup_refused_by_restore_is_no_verdict_on_the_database(tmp_path, caplog):
    db, ops = _manager(tmp_path)
    heard: list[DatabaseError] = []
    # Every error that reaches a caller, as degraded mode hears it (an observer of failures).
    db.observers.add(SimpleNamespace(failed=lambda op, sql, err, seconds, attempts: heard.append(err)))
    db.corruption_listeners.append(heard.append)
    try:
        info = db.backup()
        _damage_table_page(info.path)
        with caplog.at_level(logging.ERROR, logger="reliability"), pytest.raises(DatabaseError) as caught:
            db.restore(info.path)
        err = caught.value
        assert err.kind is ErrorKind.CORRUPT and "fails integrity_check" in err.detail
        # The damage is the backup's: the database is not marked corrupt and no recovery starts from it.
        assert heard == []
        assert db.monitor.integrity_ok is not False and db.monitor.recoveries == 0
        assert db.fetch_all("SELECT v FROM t") == [("kept",)]
        logged = [r for r in caplog.records if getattr(r, "operation_id", None) == err.operation_id]
        assert err.operation_id and len(logged) == 1  # logged once, with the id the caller sees
    finally:
        db.close()
    failed = [r for r in _records(ops) if r["kind"] == "restore"]
    assert [(r["outcome"], r["error_kind"]) for r in failed] == [("error", "corrupt")]  # recorded once


def test_a_maintenance_call_refused_inside_a_transaction_is_logged_and_recorded_once(tmp_path, caplog):
    db, ops = _manager(tmp_path)
    try:
        with caplog.at_level(logging.ERROR, logger="reliability"), db.transaction():
            with pytest.raises(DatabaseError) as caught:
                db.backup()
        err = caught.value
        assert err.kind is ErrorKind.MISUSE
        logged = [r for r in caplog.records if getattr(r, "operation_id", None) == err.operation_id]
        assert err.operation_id and len(logged) == 1
    finally:
        db.close()
    # (A backup taken at startup to anchor the new redo journal is its own "ok" record.)
    failed = [(r["kind"], r["error_kind"]) for r in _records(ops) if r["outcome"] != "ok"]
    assert failed == [("backup", "misuse")]


def test_a_maintenance_call_failing_under_a_lock_records_the_tries_it_made(tmp_path, caplog):
    # A real lock (another connection's BEGIN EXCLUSIVE) outlasting the policy: the caller's error says how many
    # tries were made; the ERROR record and the operation record must say the same (they said 1). A rollback
    # journal, so the exclusive lock keeps the check's reads out too.
    ops = tmp_path / "ops.jsonl"
    db = DatabaseManager(fast_config(tmp_path / "app.db", operation_log=True, operation_log_path=str(ops),
                                     log_json=True, journal_mode="DELETE"))
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    # (the runtime's own SQLite build: two builds in one process do not see each other's POSIX locks)
    holder = sqlite_module().connect(str(tmp_path / "app.db"), isolation_level=None, timeout=0)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with caplog.at_level(logging.ERROR, logger="reliability"), pytest.raises(DatabaseError) as caught:
            db.check_integrity()
        err = caught.value
        assert err.attempts >= 2, err  # the shared policy retried the lock
        logged = [r for r in caplog.records if getattr(r, "operation_id", None) == err.operation_id
                  and r.levelno == logging.ERROR]
        assert [r.attempt for r in logged] == [err.attempts]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        db.close()
    checks = [r for r in _records(ops) if r["kind"] == "check"]
    assert [(r["outcome"], r["attempts"]) for r in checks] == [("error", err.attempts)]
