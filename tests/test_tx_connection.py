"""``with db.transaction() as conn:`` — writes through ``conn`` are journaled like ``db.execute``.

Found by the planted-bug work (issue #14, 2026-12-02): the yielded object was the raw connection, so a write
made on it was acknowledged, never journaled, and after damage ``db.recover()`` reported ``ok=True`` without it.
"""

from __future__ import annotations

import sqlite3
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


def test_a_cursor_of_the_yielded_connection_reads_like_a_sqlite3_cursor(tmp_path: Path) -> None:
    with DatabaseManager(fast_config(tmp_path / "app.db")) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        with db.transaction() as conn:
            cur = conn.cursor()
            assert cur.rowcount == -1 and cur.lastrowid is None and cur.description is None
            with pytest.raises(sqlite3.ProgrammingError, match="no statement executed on this cursor yet"):
                cur.fetchone()
            cur.executemany("INSERT INTO t (v) VALUES (?)", [("a",), ("b",), ("c",)])
            cur.execute("SELECT id, v FROM t ORDER BY id")
            assert [d[0] for d in cur.description] == ["id", "v"]
            assert cur.fetchmany() == [(1, "a")]
            cur.arraysize = 2
            assert cur.fetchmany() == [(2, "b"), (3, "c")]
            assert list(cur.execute("SELECT v FROM t WHERE id > ?", (1,))) == [("b",), ("c",)]
            cur.close()
        assert db.fetch_one("SELECT count(*) FROM t") == (3,)


def test_rows_returned_by_a_journaled_write_read_like_a_cursor(tmp_path: Path) -> None:
    """``INSERT ... RETURNING`` in autocommit runs in its own journaled transaction; its rows are read before
    COMMIT and handed back in a cursor-like object."""
    with DatabaseManager(fast_config(tmp_path / "app.db")) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        rows = db.execute("INSERT INTO t (v) VALUES ('a'), ('b'), ('c'), ('d') RETURNING id, v")
        assert [d[0] for d in rows.description] == ["id", "v"]
        assert rows.fetchone() == (1, "a")
        assert rows.fetchmany(2) == [(2, "b"), (3, "c")]
        assert list(rows) == [(4, "d")]
        assert rows.fetchone() is None and rows.fetchall() == []


def test_the_head_of_something_that_is_not_a_regular_file_is_empty(tmp_path: Path) -> None:
    from reliability.files import read_database_head

    assert read_database_head(tmp_path) == b""  # a directory: nothing SQLite would lock, nothing kept open
    db_file = tmp_path / "x.db"
    db_file.write_bytes(b"SQLite format 3\x00" + b"\x00" * 84)
    assert read_database_head(db_file, 16) == b"SQLite format 3\x00"
    assert read_database_head(db_file, 6) == b"SQLite"  # the same file again: the kept descriptor
