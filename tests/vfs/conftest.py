"""Fixtures for the VFS shim tests: skip where the shim cannot exist, small real databases."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_dbfault.vfs import Shim, get_shim, vfs_available


@pytest.fixture
def shim() -> Iterator[Shim]:
    """The process-wide shim, installed for the test (skips, with the reason, where impossible)."""
    ok, reason = vfs_available()
    if not ok:
        pytest.skip(f"VFS shim unavailable here: {reason}")
    with get_shim().installed() as installed:
        installed.reset_counters()
        yield installed
    assert not installed.rules, "a test left a FailRule active"


@pytest.fixture
def needs_vfs() -> None:
    """Skip (with the reason) where the shim cannot be registered; the shim is left uninstalled."""
    ok, reason = vfs_available()
    if not ok:
        pytest.skip(f"VFS shim unavailable here: {reason}")


@pytest.fixture
def make_db(tmp_path: Path) -> Callable[..., str]:
    """``make_db("a.db", journal_mode="wal", rows=3)``: a table ``t(id, v)`` with ``rows`` rows."""
    def make(name: str = "app.db", *, journal_mode: str = "delete", rows: int = 3) -> str:
        path = tmp_path / name
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute(f"PRAGMA journal_mode = {journal_mode}")
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"row-{i}",) for i in range(rows)])
        finally:
            conn.close()
        return str(path)
    return make


@pytest.fixture
def connect() -> Iterator[Callable[..., sqlite3.Connection]]:
    """Connections closed after the test, even when a fault made the test fail."""
    opened: list[sqlite3.Connection] = []

    def open_(path: str, **options: object) -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=0.05, **options)  # type: ignore[arg-type]
        opened.append(conn)
        return conn

    yield open_
    for conn in opened:
        conn.close()
