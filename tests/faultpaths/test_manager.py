"""DatabaseManager's error handlers, each reached while a real fault is in force."""

from __future__ import annotations

import pytest

from pytest_dbfault.faults import DiskFullFault, LockedFault
from reliability import DatabaseError, DatabaseManager, ErrorKind
from reliability.degraded import Needs


def _names(db: DatabaseManager) -> list[str]:
    return [r[0] for r in db.fetch_all("SELECT name FROM items ORDER BY id")]


def test_a_batch_that_fills_the_disk_is_rolled_back_whole(db: DatabaseManager) -> None:
    db.execute("INSERT INTO items (name) VALUES ('kept')")
    batch = [(f"row-{i}-" + "x" * 400, i) for i in range(200)]  # far more than the pages left
    with DiskFullFault(db):
        with pytest.raises(DatabaseError) as info:
            db.executemany("INSERT INTO items (name, qty) VALUES (?, ?)", batch)
        assert info.value.kind is ErrorKind.FULL and not info.value.transient
        assert not db.connection.in_transaction
        assert _names(db) == ["kept"]  # none of the batch: all or nothing
    db.executemany("INSERT INTO items (name, qty) VALUES (?, ?)", batch[:3])
    assert len(_names(db)) == 4


def test_a_direct_write_fails_while_queued_writes_cannot_be_saved_under_a_lock(db: DatabaseManager) -> None:
    db.commands.recheck_interval = 0
    db.commands.register("add", Needs.WRITE, lambda m, name: m.execute("INSERT INTO items (name) VALUES (?)",
                                                                         (name,)).lastrowid)
    with LockedFault(db.path, mode="write"):
        assert db.commands.run("add", "queued-first").status == "queued"
        with pytest.raises(DatabaseError) as info:
            db.execute("INSERT INTO items (name) VALUES ('direct')")  # may not overtake the queued write
        assert info.value.kind is ErrorKind.BUSY
        assert "1 queued write(s) must be saved first" in info.value.detail
        assert len(db.queue) == 1
    db.execute("INSERT INTO items (name) VALUES ('direct')")
    assert _names(db) == ["queued-first", "direct"] and len(db.queue) == 0
