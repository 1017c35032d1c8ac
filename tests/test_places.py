"""A restart with another queue or audit-fallback path: what waits in the old file is named, never silently dropped."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from runtime_helpers import LockHolder, fast_config

from reliability import DatabaseManager
from reliability.degraded import Needs
from reliability.degraded.places import PLACES_TABLE, remember
from reliability.inspection import Inspector


def _app(db: DatabaseManager) -> DatabaseManager:
    db.commands.recheck_interval = 0
    db.commands.register("add", Needs.WRITE,
                         lambda db, name: db.execute("INSERT INTO items (name) VALUES (?)", (name,)).lastrowid)
    return db


def _queue_one(db_path: Path, **config: object) -> Path:
    """A runtime at ``db_path`` that queues one write under a real lock and stops; the queue file."""
    with DatabaseManager(fast_config(db_path, **config)) as db:
        _app(db).execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT)")
        with LockHolder(db_path):
            assert db.commands.run("add", "queued-before-the-move").status == "queued"
        return db.queue.path


def _names(db: DatabaseManager) -> list[str]:
    return [r[0] for r in db.fetch_all("SELECT name FROM items ORDER BY id")]


def test_a_restart_with_another_queue_path_names_the_writes_left_in_the_old_file(tmp_path, caplog):
    db_path = tmp_path / "app.db"
    old = _queue_one(db_path)
    new = tmp_path / "elsewhere" / "queue.jsonl"
    with DatabaseManager(fast_config(db_path, write_queue_path=str(new))) as db:
        _app(db)
        # The old file is only read: its write is not replayed here, and it is named, with the new place.
        assert _names(db) == [] and old.exists()
        health = db.health()
        assert str(health.status) == "degraded"
        reason = next(r for r in health.reasons if "does not read" in r)
        assert "1 queued write waits in" in reason and str(old) in reason and str(new) in reason
        assert "write_queue_path" in reason
        assert health.extra["left_behind"] == [{"setting": "write_queue_path", "path": str(old), "waiting": 1}]
        assert any("does not read" in r.getMessage() for r in caplog.records)  # said at start too
        # The operator moves the file where the runtime now reads it: the reason goes without a restart.
        new.parent.mkdir(mode=0o700, exist_ok=True)
        os.rename(old, new)
        assert not any("does not read" in r for r in db.health().reasons)
    with DatabaseManager(fast_config(db_path, write_queue_path=str(new))) as db:
        _app(db)
        assert db.commands.run("add", "after").ok
        assert _names(db) == ["queued-before-the-move", "after"]  # replayed from the new place, exactly once
        assert db.places_left == []
        # An old place that holds nothing now stays remembered (another worker may still use it: see below).
        remembered = sorted(db.fetch_all(f"SELECT setting, path FROM {PLACES_TABLE}"))
        assert ("write_queue_path", str(new)) in remembered and ("write_queue_path", str(old)) in remembered


def test_a_rolling_restart_never_forgets_a_place_another_live_worker_still_uses(tmp_path):
    # Worker A runs with the old fallback path; worker B starts with a new one while the old place is empty; A then
    # keeps an audit entry there during a lock and dies without closing; A restarts with the new path. The entry
    # must be named (it used to be dropped in silence: B's start forgot the empty old place). Found by helper C.
    db_path = tmp_path / "app.db"
    old, new = tmp_path / "fallback-old.jsonl", tmp_path / "fallback-new.jsonl"
    config = fast_config(db_path, audit_hmac_key="k", audit_fallback_path=str(old), busy_timeout_ms=0)
    a = DatabaseManager(config)
    b = DatabaseManager(config.replace(audit_fallback_path=str(new)))
    try:
        with LockHolder(db_path):
            assert a.audit.record("alice", "flag.set", "beta", {"v": 1}).pending  # kept in the old place
    finally:
        b.close()  # (A "dies": never closed)
    with DatabaseManager(config.replace(audit_fallback_path=str(new))) as again:
        assert [(p.setting, p.path, p.waiting) for p in again.places_left] == [("audit_fallback_path", str(old), 1)]
        assert str(again.health().status) == "degraded"


def test_the_command_line_health_names_the_old_place_and_changes_nothing(tmp_path):
    db_path = tmp_path / "app.db"
    old = _queue_one(db_path)
    new = tmp_path / "queue-2.jsonl"
    DatabaseManager(fast_config(db_path, write_queue_path=str(new))).close()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with Inspector(fast_config(db_path, write_queue_path=str(new))) as view:
        report = view.health()
    assert any("1 queued write waits in" in r and str(old) in r for r in report.reasons), report.reasons
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_audit_entries_left_in_the_old_fallback_file_are_named(tmp_path):
    db_path = tmp_path / "app.db"
    with DatabaseManager(fast_config(db_path, audit_hmac_key="k")) as db:
        db.audit.record("alice", "before")
        with LockHolder(db_path):
            assert db.audit.record("alice", "during-1").pending
            assert db.audit.record("alice", "during-2").pending
        old = db.audit.fallback_path
    new = tmp_path / "fallback-2.jsonl"
    with DatabaseManager(fast_config(db_path, audit_hmac_key="k", audit_fallback_path=str(new))) as db:
        reasons = db.health().reasons
        assert any("2 audit entries wait in" in r and str(old) in r and "audit_fallback_path" in r
                   for r in reasons), reasons
        assert [e.action for e in db.audit.entries(10)] == ["before"]  # not reconciled from the old place


def test_a_link_at_an_old_place_is_not_followed(tmp_path):
    db_path = tmp_path / "app.db"
    old = _queue_one(db_path)
    elsewhere = tmp_path / "not-ours.jsonl"
    os.rename(old, elsewhere)
    os.symlink(elsewhere, old)  # a link we did not create, to a file with a waiting write
    with DatabaseManager(fast_config(db_path, write_queue_path=str(tmp_path / "q2.jsonl"))) as db:
        assert db.places_left == [] and not any("does not read" in r for r in db.health().reasons)


def test_a_start_with_the_same_places_writes_nothing(tmp_path):
    db_path = tmp_path / "app.db"
    config = fast_config(db_path)
    DatabaseManager(config).close()
    from reliability.degraded.places import current_places

    # On a read-only connection: remembering what is already remembered needs no write.
    ro = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
    try:
        assert remember(ro, current_places(config)) == []
    finally:
        ro.close()
