"""resolve_target: paths, connections and DatabaseManager-like objects all name a database."""

from __future__ import annotations

import sqlite3

import pytest

from pytest_dbfault.faults import DiskFullFault, FaultError, LockedFault, resolve_target


class FakeManager:
    """The shape of reliability.manager.DatabaseManager: `path` and a lazy `connection`."""

    def __init__(self, path):
        self.path = str(path)
        self._conn = None
        self.opened = 0

    @property
    def connection(self):
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, timeout=0.02)
            self.opened += 1
        return self._conn


def test_a_path_resolves_without_a_connection(make_db):
    path = make_db()
    target = resolve_target(str(path))
    assert target.path == path and target.connection is None


def test_a_connection_resolves_to_its_file(make_db, connect):
    path = make_db()
    conn = connect(path)
    target = resolve_target(conn)
    assert target.path == path and target.connection is conn


def test_a_manager_is_used_by_duck_typing_and_opened_only_when_needed(make_db):
    path = make_db()
    manager = FakeManager(path)
    with LockedFault(manager):
        assert manager.opened == 0  # a lock needs only the path
    with DiskFullFault(manager):
        assert manager.opened == 1
        with pytest.raises(sqlite3.OperationalError, match="full"):
            manager.connection.execute("INSERT INTO items (name, payload) VALUES (1, randomblob(20000))")
    manager.connection.close()


def test_an_in_memory_connection_has_no_file_for_file_faults():
    conn = sqlite3.connect(":memory:")
    try:
        with pytest.raises(FaultError, match="in-memory or temporary database"):
            LockedFault(conn)
    finally:
        conn.close()


def test_an_unsupported_target_says_what_is_accepted():
    with pytest.raises(FaultError, match="expected a database path, a sqlite3.Connection"):
        resolve_target(42)
