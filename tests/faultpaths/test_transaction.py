"""TransactionManager's error handlers, each reached while a real fault breaks the connection."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from runtime_helpers import fast_config

from pytest_dbfault.faults import DisconnectFault, DiskFullFault
from reliability import DatabaseError, DatabaseManager, ErrorKind, TransactionError


def _names(db: DatabaseManager) -> list[str]:
    return [r[0] for r in db.fetch_all("SELECT name FROM items ORDER BY id")]


def test_a_transaction_on_a_handle_closed_since_the_last_call_reopens_and_commits(db: DatabaseManager) -> None:
    db.execute("INSERT INTO items (name) VALUES ('before')")
    old = db.connection
    with DisconnectFault(db, mode="close"):
        with db.transaction() as conn:  # nothing had begun: reopening is safe
            conn.execute("INSERT INTO items (name) VALUES ('inside')")
        assert db.connection is not old
    assert _names(db) == ["before", "inside"]
    assert db.transactions.commits == 1 and db.health().status == "healthy"


def test_a_handle_closed_mid_transaction_rolls_it_all_back_and_the_next_one_reopens(
        db: DatabaseManager, caplog: pytest.LogCaptureFixture) -> None:
    fault = DisconnectFault(db, mode="close")
    try:
        with caplog.at_level(logging.WARNING, logger="reliability.transaction"):
            with pytest.raises(DatabaseError) as info:
                with db.transaction():
                    db.execute("INSERT INTO items (name) VALUES ('lost with the handle')")
                    fault.inject()  # healed only after the outer level has tried to roll back
                    # A savepoint cannot be reopened elsewhere: the outer work is gone with the handle.
                    with db.transaction():
                        pytest.fail("a savepoint began on a closed handle")
    finally:
        fault.heal()
    assert info.value.kind is ErrorKind.CLOSED
    assert any("rollback failed (closed" in r.getMessage() for r in caplog.records)
    assert db.transactions.depth == 0 and db.transactions.rollbacks == 1
    assert _names(db) == []  # closing the handle rolled the open transaction back
    db.execute("INSERT INTO items (name) VALUES ('after')")
    assert _names(db) == ["after"]


def test_a_closed_handle_whose_file_was_moved_is_not_reopened_to_begin(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with DatabaseManager(fast_config(path, retry_attempts=1)) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        with DisconnectFault(db, mode="rename"), DisconnectFault(db, mode="close"):
            with pytest.raises(DatabaseError) as info:
                with db.transaction():
                    pytest.fail("a transaction began although the file was moved away")
            assert info.value.kind is ErrorKind.CLOSED
            assert not path.exists()  # nothing was created in the moved file's place
        db.execute("INSERT INTO items (name) VALUES ('back')")
        assert _names(db) == ["back"]


_BIG = [(f"big-{i}-" + "x" * 2000,) for i in range(100)]


def test_a_savepoint_that_swallowed_a_disk_full_error_does_not_pretend_to_release(db: DatabaseManager) -> None:
    db.execute("INSERT INTO items (name) VALUES ('before')")
    with pytest.raises(TransactionError) as info:
        with db.transaction():
            db.execute("INSERT INTO items (name) VALUES ('outer')")
            with DiskFullFault(db):
                with db.transaction():
                    try:
                        db.executemany("INSERT INTO items (name) VALUES (?)", _BIG)
                    except DatabaseError as err:  # swallowed by the caller...
                        assert err.kind is ErrorKind.FULL
    # ...but SQLite had rolled the whole transaction back: nothing of it may look committed.
    assert "rolled back by SQLite" in info.value.detail
    assert _names(db) == ["before"] and db.transactions.depth == 0


def test_disk_full_inside_a_savepoint_rolls_back_every_level(db: DatabaseManager) -> None:
    savepoints: list[tuple[str, int]] = []
    db.transactions.savepoint_hooks.append(lambda event, level: savepoints.append((event, level)))
    with DiskFullFault(db):
        with pytest.raises(DatabaseError) as info:
            with db.transaction():
                db.execute("INSERT INTO items (name) VALUES ('outer')")
                with db.transaction():
                    db.executemany("INSERT INTO items (name) VALUES (?)", _BIG)
        assert info.value.kind is ErrorKind.FULL
        assert not db.connection.in_transaction
    assert savepoints == [("begin", 1), ("rollback", 1)]  # the redo journal is told, though SQLite rolled back
    assert _names(db) == [] and db.transactions.rollbacks == 1
