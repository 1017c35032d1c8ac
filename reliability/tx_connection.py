"""The connection ``with db.transaction() as conn:`` hands out: its writes go through the runtime.

Before, ``db.transaction()`` yielded the raw ``sqlite3.Connection``. ``conn.execute("INSERT ...")`` on it
committed with the transaction and was acknowledged, but never reached the redo journal, the operation
log or the error counts: after damage, ``db.recover()`` restored the backup, replayed the journal and
reported ``ok=True`` with the row gone. ``with conn:``-style code is the natural way to use a yielded
connection, so the yielded object now routes every statement through the manager (journaled, logged,
classified) and refuses what would end the runtime's transaction behind its back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .errors import DatabaseError, ErrorKind

Params = Sequence[Any] | dict[str, Any]

_ENDS = ("commit", "rollback", "close", "executescript")


class TransactionConnection:
    """A ``sqlite3.Connection`` look-alike bound to one open ``db.transaction()``.

    ``execute``/``executemany`` and cursors made by ``cursor()`` run through the manager's ``execute`` /
    ``executemany`` (given, not the manager); ``commit``, ``rollback``, ``close`` and ``executescript``
    (which commits first) raise :class:`~reliability.errors.DatabaseError` (``misuse``) naming what to do
    instead. Every other attribute (``row_factory``, ``create_function``, ``total_changes``,
    ``in_transaction``…) is the live connection's.
    """

    __slots__ = ("_execute", "_executemany", "_raw")

    def __init__(self, raw: sqlite3.Connection, execute: Callable[[str, Params], sqlite3.Cursor],
                 executemany: Callable[[str, Iterable[Params]], sqlite3.Cursor]) -> None:
        self._raw = raw
        self._execute = execute
        self._executemany = executemany

    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        """``db.execute``: journaled and logged as part of the open transaction."""
        return self._execute(sql, params)

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> sqlite3.Cursor:
        """``db.executemany`` inside the open transaction."""
        return self._executemany(sql, seq_of_params)

    def cursor(self) -> TransactionCursor:
        """A cursor whose statements go through the runtime too."""
        return TransactionCursor(self)

    def __getattr__(self, name: str) -> Any:
        if name in _ENDS:
            raise DatabaseError(
                ErrorKind.MISUSE,
                f"conn.{name}() inside db.transaction(): the transaction ends when the with-block ends (commit) "
                "or raises (rollback); use conn.execute for each statement instead of executescript")
        return getattr(self._raw, name)

    def __enter__(self) -> TransactionConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        # ``with conn:`` inside ``db.transaction()``: the runtime's transaction decides, not this block.
        return None


class TransactionCursor:
    """A cursor of :class:`TransactionConnection`: ``execute`` runs through the runtime, results are read
    from the cursor that call returned."""

    def __init__(self, conn: TransactionConnection) -> None:
        self.connection = conn
        self._last: sqlite3.Cursor | None = None
        self.arraysize = 1

    def execute(self, sql: str, params: Params = ()) -> TransactionCursor:
        """Run one statement through the runtime; this cursor then reads its rows."""
        self._last = self.connection.execute(sql, params)
        return self

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> TransactionCursor:
        """Run one statement per parameter set through the runtime."""
        self._last = self.connection.executemany(sql, seq_of_params)
        return self

    def _cursor(self) -> sqlite3.Cursor:
        if self._last is None:
            raise sqlite3.ProgrammingError("no statement executed on this cursor yet")
        return self._last

    def fetchone(self) -> Any:
        """The next row, or None."""
        return self._cursor().fetchone()

    def fetchmany(self, size: int | None = None) -> list[Any]:
        """Up to ``size`` rows (``arraysize`` by default)."""
        return self._cursor().fetchmany(self.arraysize if size is None else size)

    def fetchall(self) -> list[Any]:
        """Every remaining row."""
        return self._cursor().fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor())

    @property
    def rowcount(self) -> int:
        """Rows changed by the last statement (-1 before any)."""
        return -1 if self._last is None else self._last.rowcount

    @property
    def lastrowid(self) -> int | None:
        """The rowid of the last inserted row."""
        return None if self._last is None else self._last.lastrowid

    @property
    def description(self) -> Any:
        """Column descriptions of the last query."""
        return None if self._last is None else self._last.description

    def close(self) -> None:
        """Close the cursor that holds the last result."""
        if self._last is not None:
            self._last.close()
