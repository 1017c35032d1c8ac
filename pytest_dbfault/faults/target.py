"""Resolve what a fault acts on: a database path, a live connection, or both.

Every injector accepts any of

* a path (``str`` / ``os.PathLike``) to the database file;
* a ``sqlite3.Connection`` (its file is read from ``PRAGMA database_list``), or a connection of
  another build of the same DB-API module (``sqlean``, ``pysqlite3.dbapi2``);
* any object with a ``path`` attribute and a ``connection`` property, such as
  ``reliability.manager.DatabaseManager`` — matched by duck typing so this wing
  never imports the runtime.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .base import FaultError

#: What a fault may be pointed at.
TargetLike = Any  # str | os.PathLike[str] | sqlite3.Connection | a manager-like object


@dataclass(frozen=True)
class Target:
    """A resolved fault target. ``connection`` is fetched lazily from a manager."""

    path: Path | None
    source: Any

    @property
    def module(self) -> ModuleType:
        """The DB-API module to open helper connections with: the victim's own build of SQLite.

        Two SQLite libraries in one process do not see each other's locks, so a lock meant for a
        connection made by ``sqlean`` must be taken through ``sqlean``. A bare path gets the module
        named by ``DBFAULT_SQLITE_MODULE`` (``sqlite3`` when unset): set it when the application
        under test uses another build.
        """
        if is_connection(self.source):
            return dbapi_module(self.source)
        if _is_manager(self.source):
            # reliability's DatabaseManager says which module it uses without opening a connection;
            # other managers are not opened just to ask (their faults may need only the path).
            module = getattr(getattr(self.source, "connections", None), "module", None)
            if module is not None and callable(getattr(module, "connect", None)):
                return module  # type: ignore[no-any-return]
        return path_module()

    @property
    def connection(self) -> sqlite3.Connection | None:
        """The live connection, if the target has one (a manager may open it now)."""
        if is_connection(self.source):
            return self.source  # type: ignore[no-any-return]
        if _is_manager(self.source):
            conn = self.source.connection
            if not is_connection(conn):
                raise FaultError(
                    f"{type(self.source).__name__}.connection returned {type(conn).__name__}, "
                    f"expected a sqlite3.Connection"
                )
            return conn
        return None

    def need_path(self, fault: str) -> Path:
        """The database file path, or a :class:`FaultError` saying ``fault`` needs one."""
        if self.path is None:
            raise FaultError(
                f"fault {fault!r} needs a database file, but its target {self.source!r} is an "
                f"in-memory or temporary database; use a file under tmp_path"
            )
        return self.path

    def need_connection(self, fault: str) -> sqlite3.Connection:
        """The live connection, or a :class:`FaultError` saying ``fault`` needs one."""
        conn = self.connection
        if conn is None:
            raise FaultError(
                f"fault {fault!r} acts on a live connection, but its target {self.source!r} is "
                f"only a path; pass the sqlite3.Connection (or DatabaseManager) to break"
            )
        return conn


def resolve_target(target: TargetLike) -> Target:
    """Turn a path, connection or manager into a :class:`Target`.

    >>> resolve_target("/tmp/app.db").path
    PosixPath('/tmp/app.db')
    """
    if isinstance(target, (str, os.PathLike)):
        text = os.fspath(target)
        if text in ("", ":memory:") or text.startswith("file:"):
            raise FaultError(
                f"fault target {text!r} is not a plain database file path; pass a filesystem path "
                f"or the open sqlite3.Connection"
            )
        return Target(Path(text).absolute(), target)
    if is_connection(target):
        return Target(connection_path(target), target)
    if _is_manager(target):
        raw = target.path
        if not isinstance(raw, (str, os.PathLike)):
            raise FaultError(f"{type(target).__name__}.path is {raw!r}, expected a file path")
        return Target(Path(os.fspath(raw)).absolute(), target)
    raise FaultError(
        f"cannot break {target!r} ({type(target).__name__}): expected a database path, a "
        f"sqlite3.Connection, or an object with `path` and `connection` (like DatabaseManager)"
    )


def connection_path(conn: sqlite3.Connection) -> Path | None:
    """The main database file of ``conn``; ``None`` for in-memory/temporary databases."""
    try:
        rows = conn.execute("PRAGMA database_list").fetchall()
    except Exception as exc:  # the DB-API ProgrammingError of whichever module made conn (closed handle)
        raise FaultError(f"cannot find the file of connection {conn!r}: {exc}") from exc
    for _seq, name, file in rows:
        if name == "main":
            return Path(file) if file else None
    return None  # pragma: no cover - every connection has a main schema


#: Top-level packages of the DB-API sqlite modules whose connections are fault targets.
_SQLITE_PACKAGES = frozenset({"sqlite3", "_sqlite3", "sqlean", "pysqlite3", "pysqlite2"})


def is_connection(obj: Any) -> bool:
    """True for a connection of ``sqlite3`` or of another build of it (``sqlean``, ``pysqlite3``)."""
    return _connection_class(obj) is not None


def dbapi_module(conn: Any) -> ModuleType:
    """The DB-API module that made ``conn`` (``sqlite3``, ``sqlean.dbapi2``, ``pysqlite3.dbapi2``...)."""
    cls = _connection_class(conn)
    module = sys.modules.get(cls.__module__) if cls is not None else None
    if module is None or not callable(getattr(module, "connect", None)):
        raise FaultError(f"cannot tell which sqlite module made {conn!r}")
    return module


#: Environment variable naming the DB-API module faults use for a bare path (default ``sqlite3``).
MODULE_ENV = "DBFAULT_SQLITE_MODULE"


def path_module() -> ModuleType:
    """The DB-API module for helper connections to a bare path: ``$DBFAULT_SQLITE_MODULE`` or ``sqlite3``."""
    name = os.environ.get(MODULE_ENV, "").strip() or "sqlite3"
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise FaultError(f"{MODULE_ENV}={name!r}: cannot import it ({exc})") from None
    if not callable(getattr(module, "connect", None)):
        raise FaultError(f"{MODULE_ENV}={name!r} is not a DB-API sqlite module (it has no connect())")
    return module


def _connection_class(obj: Any) -> type | None:
    for cls in type(obj).__mro__:
        if cls.__name__ == "Connection" and cls.__module__.split(".")[0] in _SQLITE_PACKAGES:
            return cls
    return None


def _is_manager(obj: Any) -> bool:
    # Look at the class (or instance dict), not ``obj.connection``: reading a lazy property
    # would open a connection just to classify the target.
    return hasattr(obj, "path") and (
        hasattr(type(obj), "connection") or "connection" in getattr(obj, "__dict__", {})
    )


def sidecars(path: Path) -> list[Path]:
    """The journal files SQLite keeps next to ``path`` (whether or not they exist)."""
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


def journal_mode(path: Path, timeout: float = 1.0, module: ModuleType = sqlite3) -> str:
    """The journal mode stored for ``path`` (``"wal"`` or a rollback mode), read on a fresh connection.

    ``module``: the victim's SQLite build. A connection of another copy of SQLite in this process does
    not see the victim's locks, and its unlock and close drop them (POSIX locks belong to the process).
    """
    conn = module.connect(str(path), timeout=timeout, isolation_level=None)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    finally:
        conn.close()
