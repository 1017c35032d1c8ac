"""Graceful degradation under real faults: reads refused, writes queued or rejected, replay that waits."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_helpers import fast_config

from pytest_dbfault.faults import LockedFault
from reliability import DatabaseManager
from reliability.degraded import Needs, WriteQueue


def _add(db: DatabaseManager, name: object) -> int:
    return db.execute("INSERT INTO items (name, qty) VALUES (?, 1)", (str(name),)).lastrowid


@pytest.fixture
def app(tmp_path: Path) -> Iterator[DatabaseManager]:
    # Rollback journal: an exclusive lock keeps readers out too, so reads fail for real.
    db = DatabaseManager(fast_config(tmp_path / "app.db", journal_mode="DELETE", write_queue_max=2))
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, qty INTEGER)")
    db.commands.recheck_interval = 0
    db.commands.register("count", Needs.READ, lambda db: db.fetch_one("SELECT count(*) FROM items")[0])
    db.commands.register("add", Needs.WRITE, _add)
    yield db
    db.close()


def _names(db: DatabaseManager) -> list[str]:
    return [r[0] for r in db.fetch_all("SELECT name FROM items ORDER BY id")]


def test_a_read_command_reports_unavailable_while_an_exclusive_lock_keeps_readers_out(app: DatabaseManager) -> None:
    with LockedFault(app.path, mode="exclusive"):
        result = app.commands.run("count")
        assert result.status == "unavailable" and result.fault == "busy" and result.value is None
        assert result.message  # the user-facing text, not a traceback
        assert app.commands.fault is not None and app.commands.degraded
    result = app.commands.run("count")
    assert result.ok and result.value == 0 and app.commands.fault is None


def test_a_write_beyond_the_queue_limit_is_rejected_and_not_saved(app: DatabaseManager) -> None:
    with LockedFault(app.path, mode="write"):
        assert [app.commands.run("add", n).status for n in ("a", "b")] == ["queued", "queued"]
        rejected = app.commands.run("add", "c")
        assert rejected.status == "rejected" and rejected.fault == "busy" and rejected.pending == 2
        assert "NOT saved" in rejected.message
        assert [w.args for w in app.queue.pending()] == [["a"], ["b"]]
    report = app.commands.replay()
    assert report.applied == 2 and report.remaining == 0 and _names(app) == ["a", "b"]


def test_a_write_whose_arguments_cannot_be_queued_is_rejected_with_the_reason(app: DatabaseManager) -> None:
    with LockedFault(app.path, mode="write"):
        result = app.commands.run("add", {1, 2})  # a set has no JSON form
        assert result.status == "rejected" and result.fault == "busy"
        assert "'add'" in result.message and "cannot be queued" in result.message
        assert len(app.queue) == 0 and not app.queue.path.exists()


def test_a_replay_while_the_lock_is_still_held_stops_and_keeps_the_backlog(app: DatabaseManager) -> None:
    with LockedFault(app.path, mode="write"):
        assert app.commands.run("add", "queued-1").status == "queued"
        report = app.commands.replay()
        assert report.error == "busy" and report.applied == 0 and report.remaining == 1
        assert app.commands.fault is not None and [w.args for w in app.queue.pending()] == [["queued-1"]]
    report = app.commands.replay()
    assert (report.applied, report.remaining, report.error) == (1, 0, None)
    assert _names(app) == ["queued-1"]


def test_an_unreadable_queue_line_is_skipped_and_the_others_still_load(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "queue.jsonl"
    good = {"op": "put", "key": "k1", "seq": 1, "command": "add", "args": ["x"], "kwargs": {}, "queued_at": 1.0}
    path.write_text(json.dumps(good) + "\n" + '{"op": "put", "key": "k2"}\n' + "not json\n")
    with caplog.at_level(logging.ERROR, logger="reliability.degraded"):
        queue = WriteQueue(path)
    assert [w.key for w in queue.pending()] == ["k1"]
    assert sum("unreadable" in r.getMessage() for r in caplog.records) == 2


def test_the_queue_file_round_trips_failed_and_duplicate_writes(tmp_path: Path) -> None:
    path = tmp_path / "queue.jsonl"
    queue = WriteQueue(path)
    first = queue.put("add", ["x"], key="k1")
    assert queue.put("add", ["other"], key="k1") is first  # the same write offered twice is queued once
    queue.put("add", ["y"], key="k2")
    queue.mark_failed("k2", "constraint: UNIQUE")
    with open(path, "a") as fh:
        fh.write("\n")  # a blank line is ignored
    again = WriteQueue(path)
    assert [w.key for w in again.pending()] == ["k1"] and again.failed == {"k2": "constraint: UNIQUE"}


def test_registry_edges_unknown_queued_command_bad_names_and_refused_reads(app: DatabaseManager) -> None:
    assert str(Needs.READ) == "read"
    with pytest.raises(ValueError, match="non-empty string"):
        app.commands.register(" ", Needs.NONE, lambda db: None)

    @app.commands.command("broken", Needs.READ)
    def broken(db: DatabaseManager) -> object:
        """Reads a table that does not exist."""
        return db.fetch_all("SELECT * FROM missing")

    assert app.commands.get("broken").help == "Reads a table that does not exist."
    refused = app.commands.run("broken")
    assert refused.status == "error" and refused.fault == "schema"
    seen: list[str] = []
    mark_done = app.queue.mark_done
    app.queue.mark_done = lambda key: (seen.append(key), mark_done(key))  # type: ignore[method-assign]
    app.queue.put("vanished", ["x"], key="v1")
    report = app.commands.replay()
    assert "'vanished' is not registered" in (report.error or "") and report.remaining == 1
    assert report.to_dict()["remaining"] == 1 and seen == []
    app.commands.register("vanished", Needs.WRITE, _add)
    assert app.commands.replay().applied == 1 and seen == ["v1"]
