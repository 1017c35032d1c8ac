"""Recovery and backup verification use the runtime's own SQLite build, never the stdlib's behind its back.

An application on ``sqlean`` or ``pysqlite3`` writes SQL for that build: a newer SQLite's functions
(``concat()`` is 3.44, ``unistr()`` 3.50; this machine's stdlib has 3.40) or an extension's. Before the fix the
redo journal was replayed and backups were checked through the stdlib's ``sqlite3``: replay stopped at the first
such statement ("no such function: concat") and every acknowledged write after the backup was lost (measured on
pysqlite3 3.51: 2 of 2 writes lost, ``ok=False``); a backup whose schema uses such a function failed its check
("unknown function") and was never verified. These tests stand for such a build with a DB-API module whose
``connect`` adds one SQL function, so they run on every tox cell.
"""

from __future__ import annotations

import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest
from runtime_helpers import fast_config

from pytest_dbfault.faults import CorruptFault
from reliability import DatabaseManager
from reliability.durability.backup import verify_file

BUILD = textwrap.dedent('''
    """A SQLite "build" with one function the stdlib lacks (as sqlean's extensions or a newer SQLite's)."""
    import sqlite3
    from sqlite3 import *  # noqa: F403  (the DB-API: Error, Row, constants...)


    def connect(*args, **kwargs):
        conn = sqlite3.connect(*args, **kwargs)
        conn.create_function("app_slug", 1, lambda s: None if s is None else s.lower().replace(" ", "-"),
                             deterministic=True)
        return conn
''')


@pytest.fixture
def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    folder = tmp_path / "build"
    folder.mkdir()
    (folder / "app_sqlite_build.py").write_text(BUILD)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "app_sqlite_build", raising=False)
    return "app_sqlite_build"


def test_replay_after_corruption_runs_on_the_runtime_s_build(tmp_path: Path, build: str) -> None:
    db = DatabaseManager(fast_config(tmp_path / "app.db", sqlite_module=build))
    try:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, slug TEXT NOT NULL)")
        db.backup()
        for i, title in enumerate(["Hello World", "Second Post", "Third"]):
            db.execute("INSERT INTO t (id, slug) VALUES (?, app_slug(?))", (i, title))
        expected = db.fetch_all("SELECT id, slug FROM t ORDER BY id")
        assert expected[0] == (0, "hello-world")
        db.connections.close()
        with CorruptFault(db.path, part="btree", table="t", seed=5):
            pass  # the damage stays (no backup_before)
        report = db.recover()
        assert report.ok, report.problems
        assert db.fetch_all("SELECT id, slug FROM t ORDER BY id") == expected
    finally:
        db.close()


def test_a_backup_whose_schema_uses_the_build_s_function_is_verified_and_restored(tmp_path: Path,
                                                                                 build: str) -> None:
    db = DatabaseManager(fast_config(tmp_path / "app.db", sqlite_module=build))
    try:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, title TEXT, "
                   "slug TEXT GENERATED ALWAYS AS (app_slug(title)) VIRTUAL)")
        db.execute("INSERT INTO t (title) VALUES ('Hello World')")
        info = db.backup()
        assert info.verified
        db.execute("INSERT INTO t (title) VALUES ('After The Backup')")
        expected = db.fetch_all("SELECT id, slug FROM t ORDER BY id")
        db.connections.close()
        with CorruptFault(db.path, part="btree", table="t", seed=7):
            pass
        # Recovery checks the backup again before restoring it.
        report = db.recover()
        assert report.ok, report.problems
        assert db.fetch_all("SELECT id, slug FROM t ORDER BY id") == expected
        assert verify_file(info.path, module=db.connections.module) == []
        # What the stdlib sees in the same file: this is why the build must be the runtime's.
        stdlib_view = verify_file(info.path)
        assert stdlib_view and "app_slug" in stdlib_view[0]
    finally:
        db.close()


def _runtime_build() -> object:
    from runtime_helpers import sqlite_module

    return sqlite_module()


NEWER_BUILD = _runtime_build().sqlite_version_info >= (3, 44, 0) > sqlite3.sqlite_version_info  # type: ignore[attr-defined]


@pytest.mark.skipif(not NEWER_BUILD,
                    reason="needs a runtime SQLite build with concat() (3.44+) beside an older stdlib SQLite: the "
                           "py313-pysqlite3 tox cell has one")
def test_schema_validation_compares_with_the_migrations_run_on_the_runtime_s_build(tmp_path: Path) -> None:
    """The validator replays the applied migrations on a scratch database to know the expected shape; on the
    stdlib's older SQLite a migration using concat() failed there and its table was left out of the check."""
    from reliability.schema import Migration

    build = _runtime_build()
    migration = Migration(1, "people", "CREATE TABLE people (id INTEGER PRIMARY KEY, first TEXT, last TEXT, "
                                       "full TEXT GENERATED ALWAYS AS (concat(first, ' ', last)) VIRTUAL)")
    db = DatabaseManager(fast_config(tmp_path / "app.db"), migrations=[migration])
    try:
        assert db.validate_schema().ok
        db.connections.close()
        conn = build.connect(str(tmp_path / "app.db"), isolation_level=None)  # type: ignore[attr-defined]
        conn.execute("ALTER TABLE people RENAME TO people_old")
        conn.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, first TEXT)")  # 'last' and 'full' gone
        conn.close()
        report = db.validate_schema()
        assert not report.ok and any("people" in p for p in report.problems), report.problems
    finally:
        db.close()
