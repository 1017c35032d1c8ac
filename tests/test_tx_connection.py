"""``with db.transaction() as conn:`` — writes through ``conn`` are journaled like ``db.execute``.

Found by the planted-bug work (issue #14, 2026-12-02): the yielded object was the raw connection, so a write
made on it was acknowledged, never journaled, and after damage ``db.recover()`` reported ``ok=True`` without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime_helpers import fast_config

from pytest_dbfault.faults import CorruptFault
from reliability import DatabaseError, DatabaseManager
from reliability.errors import ErrorKind


def test_writes_through_the_yielded_connection_survive_corruption_and_recovery(tmp_path: Path) -> None:
    db = DatabaseManager(fast_config(tmp_path / "app.db", auto_recover=False))
    try:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        db.backup()
        with db.transaction() as conn:
            conn.execute("INSERT INTO t (v) VALUES (?)", ("execute",))
            conn.executemany("INSERT INTO t (v) VALUES (?)", [("many-1",), ("many-2",)])
            cur = conn.cursor()
            cur.execute("INSERT INTO t (v) VALUES (?)", ("cursor",))
            assert cur.rowcount == 1 and cur.lastrowid == 4
            assert cur.execute("SELECT count(*) FROM t").fetchone() == (4,)
        with db.transaction() as conn, db.transaction() as inner:  # nested: a savepoint, journaled too
            inner.execute("UPDATE t SET v = v || '!' WHERE id = 1")
            conn.execute("DELETE FROM t WHERE v = 'many-2'")
        expected = db.fetch_all("SELECT id, v FROM t ORDER BY id")
        assert expected == [(1, "execute!"), (2, "many-1"), (4, "cursor")]
        db.connections.close()
        with CorruptFault(db.path, part="btree", table="t", seed=11):
            pass  # the damage stays
        report = db.recover()
        assert report.ok, report.problems
        assert db.fetch_all("SELECT id, v FROM t ORDER BY id") == expected
    finally:
        db.close()


@pytest.mark.parametrize("call", ["commit", "rollback", "close", "executescript"])
def test_what_would_end_the_transaction_behind_the_runtime_s_back_is_refused(tmp_path: Path, call: str) -> None:
    with DatabaseManager(fast_config(tmp_path / "app.db")) as db:
        db.execute("CREATE TABLE t (x)")
        with pytest.raises(DatabaseError, match=f"conn.{call}\\(\\) inside db.transaction") as info:
            with db.transaction() as conn:
                conn.execute("INSERT INTO t VALUES (1)")
                getattr(conn, call)
        assert info.value.kind is ErrorKind.MISUSE
        assert db.fetch_all("SELECT x FROM t") == []  # the error rolled the transaction back
        assert db.health().status == "healthy"


def test_the_rest_of_the_connection_is_the_live_one(tmp_path: Path) -> None:
    with DatabaseManager(fast_config(tmp_path / "app.db")) as db:
        db.execute("CREATE TABLE t (x)")
        with db.transaction() as conn:
            assert conn.in_transaction and conn.total_changes >= 0
            with conn:  # sqlite3-style block inside: the runtime's transaction decides
                conn.execute("INSERT INTO t VALUES (1)")
            assert conn.in_transaction
        assert db.fetch_one("SELECT count(*) FROM t") == (1,)
