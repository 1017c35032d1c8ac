"""The startup check for lost commits reads the database after the journals, never before.

Seen in the README's test run under load (tests/test_redo_multiprocess.py, 2026-12-02): a worker starting while
another finished its last transfers read the database's sequence, then found the finished worker's journal
unlocked with five commits past it, took them for transactions a removed ``-wal`` had lost, and refused the
database for its whole life. A manager that stopped committed everything in its file before it released the
file's lock, so a database read made after the lock was seen free holds all of it.
"""

from __future__ import annotations

from pathlib import Path

from redo_worker import config as worker_config

from reliability import DatabaseManager
from reliability.durability.lost_commits import find_lost_commits
from reliability.redo import committed_by_slot


def test_a_manager_finishing_between_the_two_reads_is_not_taken_for_lost_commits(tmp_path: Path) -> None:
    path = str(tmp_path / "app.db")
    first = DatabaseManager(worker_config(path))
    first.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    first.execute("INSERT INTO t (v) VALUES ('before')")
    conn = first.connections.live_connection()
    base = first.durability.redo.base_path  # type: ignore[union-attr]

    other = DatabaseManager(worker_config(path))  # a second journal slot, like another worker process

    def finish_other() -> None:
        for i in range(5):
            other.execute("INSERT INTO t (v) VALUES (?)", (f"other-{i}",))
        other.close()  # its file is unlocked now; all five are committed

    try:
        # Read in the old order: the database first, then the other manager finishes, then the journals.
        stale = committed_by_slot(conn)
        finish_other()
        wrongly = find_lost_commits(base, stale, own=first.durability.redo.slot)  # type: ignore[union-attr]
        assert wrongly is not None and len(wrongly.sequences) == 5  # the false incident, from a stale read

        # The startup check's order: the journals, then the database (a function read after them).
        again = DatabaseManager(worker_config(path))
        try:
            assert again.health().status == "healthy", again.health().reasons
            assert again.fetch_one("SELECT count(*) FROM t") == (6,)
        finally:
            again.close()
        slot = first.durability.redo.slot  # type: ignore[union-attr]
        assert find_lost_commits(base, lambda: committed_by_slot(conn), own=slot) is None
    finally:
        first.close()
