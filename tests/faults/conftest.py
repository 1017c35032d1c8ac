"""Helpers for the fault-injector tests: small real databases and connections that get closed."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reliability.errors import error_name as sqlite_error_name


def build_db(path: Path, *, journal_mode: str = "delete", rows: int = 20, payload: int = 50) -> Path:
    """A small database with table ``items`` (indexed on ``name``) holding ``rows`` rows."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA journal_mode = {journal_mode}")
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, payload BLOB)")
        conn.execute("CREATE INDEX items_name ON items (name)")
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO items (name, payload) VALUES (?, randomblob(?))",
                         [(f"item-{i:05d}", payload) for i in range(rows)])
        conn.execute("COMMIT")
    finally:
        conn.close()
    return path


def _error_name(exc: BaseException) -> str:
    return sqlite_error_name(exc) or f"no SQLite code in {type(exc).__name__}: {exc}"


def _extended_name(exc: BaseException, name: str) -> str:
    if getattr(exc, "sqlite_errorcode", None) is not None:
        return name
    return "_".join(name.split("_")[:2])  # SQLITE_IOERR_FSTAT -> SQLITE_IOERR: primary names hold one "_"


@pytest.fixture
def error_name() -> Callable[[BaseException], str]:
    """``error_name(exc)``: the extended code name where Python gives it (>= 3.11), else the primary one.

    Python 3.10 gives no code: ``reliability.errors.error_name`` reads the primary code from SQLite's
    message. A fixture rather than an importable helper so no test module imports ``conftest``.
    """
    return _error_name


@pytest.fixture
def extended_name() -> Callable[[BaseException, str], str]:
    """``extended_name(exc, "SQLITE_IOERR_FSTAT")``: that name when ``exc`` carries a code (Python >= 3.11),
    else its primary ``"SQLITE_IOERR"``, all that SQLite's message tells on Python 3.10."""
    return _extended_name


@pytest.fixture
def make_db(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_db("name.db", journal_mode="wal", rows=20)`` builds a database under tmp_path."""
    def make(name: str = "app.db", **options: object) -> Path:
        return build_db(tmp_path / name, **options)  # type: ignore[arg-type]
    return make


@pytest.fixture
def connect() -> Iterator[Callable[..., sqlite3.Connection]]:
    """Factory for connections with a short busy timeout, all closed after the test."""
    opened: list[sqlite3.Connection] = []

    def open_(path: Path, timeout: float = 0.02, **options: object) -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=timeout, **options)  # type: ignore[arg-type]
        opened.append(conn)
        return conn

    yield open_
    for conn in opened:
        conn.close()
