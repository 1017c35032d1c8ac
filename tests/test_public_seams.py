"""The public seams the property machines use instead of the facade's private names (issue #14).

The machines test what an application can see: where they need to get at the redo journal (to kill
the process at a point of its commit path), to drop the connection (after swapping the SQLite build's
VFS) or to migrate, they go through public, documented names of :class:`DatabaseManager`. The last
test keeps it that way: no machine reaches into ``db._x``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from runtime_helpers import fast_config

from reliability import DatabaseManager
from reliability.redo import read_journal

ROOT = Path(__file__).resolve().parent.parent
MACHINES = ROOT / "pytest_dbfault" / "machines"


# -- redo_journal ------------------------------------------------------------------------------------
def test_redo_journal_is_none_when_the_journal_is_off(tmp_path: Path) -> None:
    with DatabaseManager(fast_config(tmp_path / "app.db", redo_journal=False)) as db:
        assert db.redo_journal is None


def test_redo_journal_is_the_journal_the_commits_go_to(tmp_path: Path) -> None:
    # (FULL: every commit writes its record; a manager committing alone at NORMAL publishes lazily)
    cfg = fast_config(tmp_path / "app.db", redo_journal=True, synchronous="FULL")
    db = DatabaseManager(cfg)
    try:
        redo = db.redo_journal
        assert redo is not None and redo.owned
        assert redo.base_path == Path(cfg.redo_journal_file)
        db.execute("CREATE TABLE t (x)")
        before = redo.seq
        db.execute("INSERT INTO t VALUES (1)")
        with db.transaction():
            db.execute("INSERT INTO t VALUES (2)")
        assert redo.seq == before + 2, "one sequence per committed write, on the object the property returns"
        assert db._redo is redo  # the older private name is the same object
    finally:
        db.close()
    assert db.redo_journal is None, "a closed manager writes no journal"
    assert read_journal(redo.path).last_seq == before + 2


# -- reconnect -----------------------------------------------------------------------------------------
def test_reconnect_opens_a_fresh_handle_on_the_next_call(tmp_path: Path) -> None:
    with DatabaseManager(fast_config(tmp_path / "app.db")) as db:
        db.execute("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES (1)")
        old = db.connection
        reconnects = db.health().reconnects
        db.reconnect()
        with pytest.raises(Exception, match="closed"):
            old.execute("SELECT 1")  # the handle is really closed, not just forgotten
        assert db.fetch_one("SELECT count(*) FROM t")[0] == 1
        assert db.connection is not old
        assert db.health().reconnects == reconnects + 1, "counted as a reconnect"
        db.execute("INSERT INTO t VALUES (2)")
        assert db.fetch_one("SELECT count(*) FROM t")[0] == 2


def test_reconnect_sees_a_file_put_back_by_a_tool_outside_the_runtime(tmp_path: Path) -> None:
    """The case it is for: the file at the path was replaced; after reconnect the runtime reads the new one."""
    import os
    import sqlite3

    path = tmp_path / "app.db"
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES ('put back')")
    conn.commit()
    conn.close()
    with DatabaseManager(fast_config(path, journal_mode="DELETE")) as db:
        db.execute("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES ('original')")
        os.replace(other, path)
        db.reconnect()
        assert db.fetch_all("SELECT x FROM t") == [("put back",)]


def test_reconnect_inside_a_transaction_is_refused_and_the_transaction_survives(tmp_path: Path) -> None:
    with DatabaseManager(fast_config(tmp_path / "app.db")) as db:
        db.execute("CREATE TABLE t (x)")
        with db.transaction() as conn:
            conn.execute("INSERT INTO t VALUES (1)")
            with pytest.raises(RuntimeError, match="inside db.transaction"):
                db.reconnect()
            conn.execute("INSERT INTO t VALUES (2)")
        assert db.fetch_one("SELECT count(*) FROM t")[0] == 2


# -- no machine reaches into the facade's private names ------------------------------------------------
FACADE = frozenset({"db", "old", "other", "runtime", "manager"})


def facade_private_names(source: str, filename: str = "<src>") -> list[str]:
    """``db._x``, ``self.db._x`` and ``getattr(db, "_x")`` in ``source`` (dunders are not reaches)."""

    def is_facade(node: ast.AST) -> bool:
        if isinstance(node, ast.Name):
            return node.id in FACADE
        return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self" \
            and node.attr in FACADE

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    def reach(node: ast.AST) -> bool:
        if isinstance(node, ast.Attribute):
            return private(node.attr) and is_facade(node.value)
        return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) >= 2 \
            and is_facade(node.args[0]) and isinstance(node.args[1], ast.Constant) \
            and isinstance(node.args[1].value, str) and private(node.args[1].value)

    found = [f"{filename}:{node.lineno} {ast.unparse(node)}" for node in ast.walk(ast.parse(source, filename))
             if reach(node)]
    return sorted(found)


def test_the_finder_sees_every_spelling_of_a_private_reach() -> None:
    """Bite: the three spellings are found; the machine's own privates and dunders are not."""
    source = ("with db._lock:\n    self.db._redo = None\nx = getattr(self.db, '_oplog', None)\n"
              "self._mine = db.__class__\ny = getattr(self.db, 'oplog', None)\n")
    assert facade_private_names(source) == [
        "<src>:1 db._lock", "<src>:2 self.db._redo", "<src>:3 getattr(self.db, '_oplog', None)"]


def test_no_machine_reaches_into_the_facade_s_private_names() -> None:
    files = sorted(MACHINES.glob("*.py"))
    assert len(files) >= 10
    bad = [r for p in files for r in facade_private_names(p.read_text(encoding="utf-8"), p.name)]
    assert not bad, bad


def test_a_call_after_the_database_was_unavailable_counts_its_reconnect(tmp_path: Path) -> None:
    """The file moved away until a write gave up as unavailable, then put back: the next call opens a new
    handle, and health() counts it as a reconnect (the handle was dropped as unavailable, not closed by the
    application)."""
    import os

    from reliability import DatabaseError

    path = tmp_path / "app.db"
    with DatabaseManager(fast_config(path, retry_attempts=2)) as db:
        db.execute("CREATE TABLE t (x)")
        reconnects = db.health().reconnects
        os.rename(path, tmp_path / "away.db")
        with pytest.raises(DatabaseError) as failed:
            db.execute("INSERT INTO t VALUES (1)")
        assert failed.value.kind.value == "unavailable"
        os.rename(tmp_path / "away.db", path)
        assert db.fetch_one("SELECT count(*) FROM t")[0] == 0
        assert db.health().reconnects == reconnects + 1
