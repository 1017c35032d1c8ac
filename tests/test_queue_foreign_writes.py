"""A queued write this runtime leaves for another one does not hold this runtime's own writes back.

Another program on the same file (or an earlier run) queued a write of a command this runtime does not register:
it waits in the shared queue for a runtime that has the command (README). Found by the degradation machine's
rule for it (session 20): while it waited, every write command of this runtime was queued too, and its caller
told "The database is unavailable right now", although the database was fine; health called the foreign write
one "queued while the database was unavailable". A write command must be served at once, and health must say
what the waiting write is.
"""

from __future__ import annotations

from pathlib import Path

from runtime_helpers import LockHolder, fast_config

from reliability import DatabaseManager


def store(db: DatabaseManager, k: str, v: str) -> None:
    db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (k, v))


def manager(db_path: Path, *commands: str) -> DatabaseManager:
    db = DatabaseManager(fast_config(db_path, retry_attempts=1, busy_timeout_ms=0))
    db.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
    for name in commands:
        db.commands.register(name, "write", store)
    return db


def rows(db: DatabaseManager) -> dict[str, str]:
    return dict(db.fetch_all("SELECT k, v FROM kv"))


def test_a_write_command_is_served_while_another_runtimes_write_waits_in_the_queue(tmp_path: Path) -> None:
    db_path = tmp_path / "app.db"
    other = manager(db_path, "legacy", "store")  # another program on the file: it has the `legacy` command
    mine = manager(db_path, "store")
    try:
        with LockHolder(db_path):
            queued = other.commands.run("legacy", "theirs", "1")
        assert queued.status == "queued", queued
        other.close()  # (gone: its write waits in the shared file for a runtime that has `legacy`)

        result = mine.commands.run("store", "mine", "2")
        assert result.status == "ok", result  # served, not queued behind a write it cannot run
        assert rows(mine) == {"mine": "2"}
        health = mine.health()
        assert not any("while the database was unavailable" in r for r in health.reasons), health.reasons
        assert any("wait for another runtime" in r for r in health.reasons), health.reasons
        assert health.extra["write_queue"]["pending"] == 1, health.extra  # (still there, for `legacy`'s runtime)
    finally:
        mine.close()

    # The runtime that has the command applies it, once.
    again = manager(db_path, "legacy", "store")
    try:
        report = again.commands.replay()
        assert (report.applied, report.remaining, report.error) == (1, 0, None), report
        assert rows(again) == {"mine": "2", "theirs": "1"}
    finally:
        again.close()


def test_this_runtimes_own_queued_write_still_goes_first(tmp_path: Path) -> None:
    """The change leaves the order rule alone: a write of this runtime's own still waiting is replayed before a
    new one lands (a new write never overtakes an earlier accepted one)."""
    db_path = tmp_path / "app.db"
    mine = manager(db_path, "store")
    try:
        with LockHolder(db_path):
            first = mine.commands.run("store", "k", "first")
        assert first.status == "queued", first
        mine.commands.recheck_interval = 0  # (the database is back: the next command may try at once)
        second = mine.commands.run("store", "k", "second")
        assert second.status == "ok", second
        assert rows(mine) == {"k": "second"}  # the queued one first, then the new one over it
    finally:
        mine.close()
