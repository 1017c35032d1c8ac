"""A closed ``DatabaseManager`` serves nothing (found by a helper of session 27).

``close()`` releases the redo journal's slot and closes the journal; a call after it used to reopen the connection
and commit with no journal (a later recovery by another manager could not bring that write back) while health
said healthy. Now every call after ``close()`` is refused as the caller's bug (``misuse``), nothing reaches the
file, and health says unavailable with why."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from runtime_helpers import fast_config

from reliability import DatabaseError, DatabaseManager, ErrorKind


def test_a_closed_manager_refuses_every_call_and_health_says_why(tmp_path: Path) -> None:
    db_path = tmp_path / "app.db"
    db = DatabaseManager(fast_config(db_path))
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    db.execute("INSERT INTO t VALUES (1)")
    db.close()
    for call in (lambda: db.execute("INSERT INTO t VALUES (2)"), lambda: db.fetch_all("SELECT id FROM t"),
                 lambda: db.fetch_one("SELECT id FROM t"),
                 lambda: db.run_in_transaction(lambda: db.execute("INSERT INTO t VALUES (3)"))):
        with pytest.raises(DatabaseError) as caught:
            call()
        assert caught.value.kind is ErrorKind.MISUSE and "closed" in caught.value.detail
    report = db.health()
    assert str(report.status) == "unavailable" and any("closed" in r for r in report.reasons), report.reasons
    db.close()  # (safe to call twice)
    conn = sqlite3.connect(db_path)
    try:
        assert [r[0] for r in conn.execute("SELECT id FROM t")] == [1]  # nothing after close() reached the file
    finally:
        conn.close()
