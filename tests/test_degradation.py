"""Graceful degradation: commands keep working through real faults; queued writes replay exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from runtime_helpers import LockHolder, fast_config

from reliability import DatabaseError, DatabaseManager, admin
from reliability.degraded import Needs, WriteQueue


def _add(db: DatabaseManager, name: str) -> int:
    return db.execute("INSERT INTO items (name, qty) VALUES (?, 1)", (name,)).lastrowid


def _names(db: DatabaseManager) -> list[str]:
    return [r[0] for r in db.fetch_all("SELECT name FROM items ORDER BY id")]


def _setup(db: DatabaseManager) -> DatabaseManager:
    db.commands.recheck_interval = 0
    db.commands.register("ping", Needs.NONE, lambda db: "pong")
    db.commands.register("count", Needs.READ, lambda db: db.fetch_one("SELECT count(*) FROM items")[0])
    db.commands.register("add", Needs.WRITE, _add)
    return db


@pytest.fixture
def app(db: DatabaseManager) -> DatabaseManager:
    return _setup(db)


def test_commands_run_normally_while_the_database_is_healthy(app: DatabaseManager) -> None:
    assert app.commands.run("add", "a").ok
    assert app.commands.run("count").value == 1
    assert app.commands.run("ping").value == "pong"
    assert len(app.queue) == 0 and not app.queue.path.exists()


def test_a_write_is_queued_while_the_file_is_locked_and_replayed_once_released(app: DatabaseManager) -> None:
    with LockHolder(app.path):
        result = app.commands.run("add", "during-lock")
        assert result.status == "queued" and result.fault == "busy"
        assert "accepted" in result.message and "1 change waiting" in result.message
        assert app.commands.run("ping").value == "pong"
        assert app.commands.run("count").value == 0  # WAL: readers still served while a writer holds the lock
        health = app.health()
        assert health.extra["write_queue"]["pending"] == 1
        assert any("queued" in r for r in health.reasons) and str(health.status) == "degraded"
        # Durable before the caller heard "queued": the entry is in the file already.
        events = [json.loads(line) for line in app.queue.path.read_text().splitlines()]
        assert [(e["op"], e["command"], e["args"]) for e in events] == [("put", "add", ["during-lock"])]
    assert app.commands.run("add", "after").ok
    assert _names(app) == ["during-lock", "after"]
    assert len(app.queue) == 0 and app.health().extra["write_queue"]["pending"] == 0


def test_reads_get_the_fault_message_when_a_lock_blocks_readers(db_path: Path) -> None:
    with DatabaseManager(fast_config(db_path, journal_mode="DELETE")) as db:
        _setup(db)
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, qty INTEGER)")
        with LockHolder(db_path):
            result = db.commands.run("count")
            assert result.status == "unavailable" and result.fault == "busy"
            assert result.message == "The database is busy right now. Please try again in a moment."
            assert db.commands.run("ping").ok
        assert db.commands.run("count").value == 0


def test_writes_are_queued_while_the_disk_is_full(app: DatabaseManager) -> None:
    conn = app.connection
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    big = "x" * 20000
    result = app.commands.run("add", big)
    assert result.status == "queued" and result.fault == "full"
    assert result.message.startswith("The storage is full")
    assert app.commands.run("count").value == 0  # reads are still served
    assert app.commands.run("add", "small").status == "queued"  # keeps the order behind the first
    conn.execute("PRAGMA max_page_count = 1073741823")
    report = app.commands.recover(force=True)
    assert report is not None and report.applied == 2 and report.remaining == 0
    assert _names(app) == [big, "small"]


def test_writes_are_queued_while_the_database_is_read_only(app: DatabaseManager) -> None:
    app.connection.execute("PRAGMA query_only = 1")
    result = app.commands.run("add", "ro")
    assert result.status == "queued" and result.fault == "readonly"
    assert app.commands.run("count").ok
    app.connection.execute("PRAGMA query_only = 0")
    assert app.commands.run("add", "rw").ok
    assert _names(app) == ["ro", "rw"]


def test_commands_continue_while_the_file_is_moved_away_and_replay_when_it_is_back(app: DatabaseManager) -> None:
    app.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    moved = app.path + ".moved"
    os.rename(app.path, moved)
    try:
        result = app.commands.run("add", "while-gone")
        assert result.status == "queued" and result.fault in ("unavailable", "readonly_dbmoved")
        read = app.commands.run("count")
        assert read.status == "unavailable"
        assert read.message in ("The database is unavailable right now. Please try again later.",
                                "The database cannot be opened right now. Please try again shortly.")
        assert app.commands.run("ping").value == "pong"
    finally:
        os.rename(moved, app.path)
    assert app.commands.run("count").value == 1
    assert _names(app) == ["while-gone"]


def test_a_full_queue_refuses_the_write_clearly(db_path: Path) -> None:
    with DatabaseManager(fast_config(db_path, write_queue_max=2)) as db:
        _setup(db).execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, qty INTEGER)")
        with LockHolder(db_path):
            assert [db.commands.run("add", n).status for n in "ab"] == ["queued", "queued"]
            refused = db.commands.run("add", "c")
        assert refused.status == "rejected" and "NOT saved" in refused.message
        assert [e.args for e in db.queue.pending()] == [["a"], ["b"]]


def test_a_constraint_error_is_reported_not_queued(app: DatabaseManager) -> None:
    app.commands.run("add", "dup")
    result = app.commands.run("add", "dup")
    assert result.status == "error" and result.fault == "constraint" and len(app.queue) == 0


def test_a_queued_write_the_database_refuses_on_replay_is_set_aside(app: DatabaseManager) -> None:
    app.commands.run("add", "x")
    app.queue.put("add", ["x"])  # will violate UNIQUE on replay
    app.queue.put("add", ["y"])
    report = app.commands.replay()
    assert (report.applied, report.failed, report.remaining) == (1, 1, 0)
    assert _names(app) == ["x", "y"] and len(app.queue.failed) == 1
    assert app.health().extra["write_queue"]["failed"] == 1


def test_an_unknown_command_is_rejected_with_the_known_names(app: DatabaseManager) -> None:
    result = app.commands.run("nope")
    assert result.status == "rejected" and "add" in result.message and "ping" in result.message


def test_the_same_idempotency_key_applies_once(app: DatabaseManager) -> None:
    assert app.commands.run("add", "k", idempotency_key="req-1").ok
    again = app.commands.run("add", "k", idempotency_key="req-1")
    assert again.ok and "already" in again.message
    assert _names(app) == ["k"]


def test_the_queue_survives_a_restart(db_path: Path) -> None:
    with DatabaseManager(fast_config(db_path)) as db:
        _setup(db).execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, qty INTEGER)")
        with LockHolder(db_path):
            assert db.commands.run("add", "persisted").status == "queued"
    with DatabaseManager(fast_config(db_path)) as db:
        assert len(db.queue) == 1
        _setup(db)
        assert db.commands.run("count").value == 1  # the backlog is replayed before serving
        assert _names(db) == ["persisted"]


def test_a_torn_last_queue_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    queue = WriteQueue(path)
    queue.put("add", ["a"])
    with open(path, "ab") as fh:
        fh.write(b'{"op": "put", "key": "zz", "se')
    reloaded = WriteQueue(path)
    assert [e.args for e in reloaded.pending()] == [["a"]]
    reloaded.put("add", ["b"])
    assert [e.args for e in WriteQueue(path).pending()] == [["a"], ["b"]]


def test_arguments_that_cannot_be_stored_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be queued"):
        WriteQueue(tmp_path / "q.jsonl").put("add", [object()])


_CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from runtime_helpers import fast_config
    from reliability import DatabaseManager
    from reliability.degraded import Needs

    kill_at = int(sys.argv[1])
    db = DatabaseManager(fast_config({path!r}))
    db.commands.register("add", Needs.WRITE,
                         lambda db, n: db.execute("INSERT INTO items (name, qty) VALUES (?, 1)", (n,)))
    seen = []
    mark_done = db.queue.mark_done

    def crash(key):
        seen.append(key)
        if len(seen) == kill_at:   # committed, not yet marked done: the worst moment
            os.kill(os.getpid(), signal.SIGKILL)
        mark_done(key)

    db.queue.mark_done = crash
    db.commands.replay()
""")


@pytest.mark.parametrize("kill_at", [1, 4, 8])
def test_a_replay_killed_mid_way_resumes_without_duplicates(db_path: Path, kill_at: int) -> None:
    with DatabaseManager(fast_config(db_path)) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER)")
    queue = WriteQueue(fast_config(db_path).write_queue_file)
    for i in range(8):
        queue.put("add", [f"w{i}"])
    script = db_path.parent / "child.py"
    script.write_text(_CHILD.format(tests=str(Path(__file__).parent), path=str(db_path)))
    proc = subprocess.run([sys.executable, str(script), str(kill_at)], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    with DatabaseManager(fast_config(db_path)) as db:
        assert len(db.queue) == 8 - kill_at + 1  # the killed entry committed but was not marked done
        _setup(db)
        report = db.commands.replay()
        assert report.skipped == 1 and report.applied == 8 - kill_at
        assert _names(db) == [f"w{i}" for i in range(8)]
        assert len(db.queue) == 0


def test_a_direct_write_never_overtakes_queued_ones(app: DatabaseManager) -> None:
    # Found by the chaos machine: a write queued during a lock replayed after a later direct
    # write to the same row and overwrote it. Direct writes now replay the backlog first.
    with LockHolder(app.path):
        assert app.commands.run("add", "first").status == "queued"
        with pytest.raises(DatabaseError):
            app.execute("INSERT INTO items (name) VALUES ('second')")  # may not overtake 'first'
    app.execute("INSERT INTO items (name) VALUES ('third')")
    assert _names(app) == ["first", "third"]
    assert len(app.commands.queue) == 0


# -- the backlog's one-way path (issue #16) ---------------------------------------------------------------
def test_a_backlog_from_an_earlier_run_waits_for_its_commands_and_does_not_block_direct_writes(db_path: Path) -> None:
    with DatabaseManager(fast_config(db_path)) as db:
        _setup(db).execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, qty INTEGER)")
        with LockHolder(db_path):
            assert db.commands.run("add", "queued-before-restart").status == "queued"
    with DatabaseManager(fast_config(db_path)) as db:
        # No command is registered yet: a direct write must not try (and fail) to replay the backlog.
        db.execute("INSERT INTO items (name, qty) VALUES ('direct', 1)")
        assert len(db.queue) == 1 and _names(db) == ["direct"]
        _setup(db)
        report = db.commands.replay()
        assert (report.applied, report.remaining) == (1, 0)
        assert _names(db) == ["direct", "queued-before-restart"]


def test_a_thread_holding_the_runtime_lock_replays_the_backlog_itself(app: DatabaseManager) -> None:
    # The replay holds the runtime's lock from its first write to its last; a caller that holds that
    # lock already (a maintenance step, executemany) replays on its own thread instead of waiting.
    with LockHolder(app.path):
        assert app.commands.run("add", "q1").status == "queued"
        assert app.commands.run("add", "q2").status == "queued"
    with app._lock:
        app.executemany("INSERT INTO items (name, qty) VALUES (?, 1)", [("d1",), ("d2",)])
    assert _names(app) == ["q1", "q2", "d1", "d2"] and len(app.queue) == 0


def test_audit_entries_written_during_the_outage_precede_those_of_the_replayed_writes(app: DatabaseManager) -> None:
    admin.register(app)  # (the admin commands turn on reconciling the audit fallback before a replay)

    def audited(db: DatabaseManager, name: str) -> None:
        _add(db, name)
        db.audit.append(db.audit.new_entry("app", "item.added", name))

    app.commands.register("audited", Needs.WRITE, audited)
    with LockHolder(app.path):
        assert app.audit.record("alice", "outage.noted", "during").pending
        assert app.commands.run("audited", "late").status == "queued"
    app.execute("INSERT INTO items (name, qty) VALUES ('direct', 1)")  # replays the backlog first
    actions = [e.action for e in reversed(app.audit.entries())]
    assert actions == ["outage.noted", "item.added"] and not app.audit.pending()
    assert _names(app) == ["late", "direct"]


def test_a_direct_write_behind_a_backlog_and_an_audit_fallback_spends_one_retry_series(db_path: Path) -> None:
    # Found by the under-fault machine (P2): the replay reconciled the audit fallback (one retry series
    # under the lock) and then tried the queued write (a second series) for one direct call.
    with DatabaseManager(fast_config(db_path, retry_attempts=3)) as db:
        admin.register(db)
        _setup(db).execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, qty INTEGER)")
        with LockHolder(db_path):
            assert db.audit.record("alice", "outage.noted").pending
            assert db.commands.run("add", "queued").status == "queued"
            retries = db.monitor.retries
            with pytest.raises(DatabaseError) as info:
                db.execute("INSERT INTO items (name, qty) VALUES ('direct', 1)")
            assert info.value.kind.value in ("busy", "locked")
            assert db.monitor.retries - retries <= 3 - 1  # one series, not one per step of the replay
            assert len(db.queue) == 1 and db.audit.pending()
        db.execute("INSERT INTO items (name, qty) VALUES ('direct', 1)")
        assert _names(db) == ["queued", "direct"] and not db.audit.pending()
