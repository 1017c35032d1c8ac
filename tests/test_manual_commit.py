"""A transaction the application opens and ends itself through ``db.execute`` (``BEGIN`` … ``COMMIT``).

Found by the transactions machine (session 20), with the redo journal off: a ``COMMIT`` that failed on a deferred
foreign key left the transaction open (SQLite keeps it, so that the rows can be fixed and COMMIT run again), and
every later ``db.execute`` write went into it, acknowledged and never committed: lost at close. The journaled
commit path rolled it back; now both do. And ``db.executemany`` inside such a transaction tried to open one of its
own ("cannot start a transaction within a transaction").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime_helpers import fast_config, sqlite_module

from reliability import DatabaseError, DatabaseManager

SCHEMA = ["CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
          "CREATE TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY)",
          "CREATE TABLE IF NOT EXISTS child (id INTEGER PRIMARY KEY, "
          "parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"]


def manager(db_path: Path, redo: bool) -> DatabaseManager:
    db = DatabaseManager(fast_config(db_path, redo_journal=redo))
    for ddl in SCHEMA:
        db.execute(ddl)
    return db


def stored(db_path: Path) -> dict[str, str]:
    conn = sqlite_module().connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT k, v FROM kv"))
    finally:
        conn.close()


@pytest.mark.parametrize("redo", [False, True], ids=["journal_off", "journal_on"])
@pytest.mark.parametrize("end", ["COMMIT", "END"])
def test_a_commit_failing_on_a_deferred_foreign_key_rolls_the_transaction_back(tmp_path: Path, redo: bool,
                                                                              end: str) -> None:
    db_path = tmp_path / "app.db"
    db = manager(db_path, redo)
    try:
        db.execute("BEGIN")
        db.execute("INSERT INTO kv VALUES ('a', 'in the failed transaction')")
        db.execute("INSERT INTO child VALUES (1, 42)")  # no parent 42: found at COMMIT
        with pytest.raises(DatabaseError) as caught:
            db.execute(end)
        assert caught.value.kind.value == "constraint", caught.value
        assert not db.connection.in_transaction  # rolled back, not left open
        db.execute("INSERT INTO kv VALUES ('b', 'next write')")  # acknowledged: committed now
        assert stored(db_path) == {"b": "next write"}  # another connection reads it at once
    finally:
        db.close()
    assert stored(db_path) == {"b": "next write"}


@pytest.mark.parametrize("redo", [False, True], ids=["journal_off", "journal_on"])
def test_executemany_inside_a_transaction_opened_with_execute_belongs_to_it(tmp_path: Path, redo: bool) -> None:
    db_path = tmp_path / "app.db"
    db = manager(db_path, redo)
    try:
        db.execute("BEGIN")
        db.executemany("INSERT INTO kv VALUES (?, ?)", [("a", "1"), ("b", "2")])
        assert stored(db_path) == {}  # not committed on its own
        db.execute("ROLLBACK")
        assert stored(db_path) == {}
        db.execute("BEGIN")
        db.executemany("INSERT INTO kv VALUES (?, ?)", [("c", "3"), ("d", "4")])
        db.execute("COMMIT")
        assert stored(db_path) == {"c": "3", "d": "4"}
    finally:
        db.close()
    if redo:  # and the journal has them: a recovery would replay them
        db = manager(db_path, redo)
        try:
            report = db.recover()
            assert report.ok, report.problems
        finally:
            db.close()
        assert stored(db_path) == {"c": "3", "d": "4"}


@pytest.mark.parametrize("redo", [False, True], ids=["journal_off", "journal_on"])
def test_executemany_on_a_handle_closed_behind_the_runtime_reopens_it(tmp_path: Path, redo: bool) -> None:
    """Asking a closed sqlite3 connection whether it is in a transaction raises ProgrammingError: the check that
    lets executemany join a transaction opened with execute() must not turn a closed handle into that error
    (the property machines met it at once under the real ``disconnect`` fault's ``close``)."""
    from pytest_dbfault.faults import DisconnectFault

    db_path = tmp_path / "app.db"
    db = manager(db_path, redo)
    try:
        db.execute("SELECT 1")  # (a handle is open)
        fault = DisconnectFault(db, mode="close")
        fault.inject()
        db.executemany("INSERT INTO kv VALUES (?, ?)", [("a", "1"), ("b", "2")])  # reopened, not ProgrammingError
        fault.heal()
        assert stored(db_path) == {"a": "1", "b": "2"}
    finally:
        db.close()
