"""Connections with explicit transaction control, best-practice pragmas, health checks and reconnect.

SQLite reports some failures late or not at all: a database file deleted under an
open WAL connection keeps accepting writes into the unlinked inode, and a renamed
file stays readable. :meth:`ConnectionManager.check` therefore compares the file's
identity (device, inode) with the one it opened, besides pinging the handle.
"""

from __future__ import annotations

import enum
import importlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from types import ModuleType
from urllib.request import pathname2url

from . import files
from .config import ReliabilityConfig
from .errors import DatabaseError, ErrorHandler, ErrorKind, classify
from .retry import RetryExhausted, RetryPolicy

log = logging.getLogger("reliability.connection")


class ConnectionState(str, enum.Enum):
    """Where the manager's connection stands."""

    CLOSED = "closed"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    UNAVAILABLE = "unavailable"

    def __str__(self) -> str:
        return self.value


def load_sqlite_module(name: str) -> ModuleType:
    """Import the DB-API module named in the config (``sqlite3``, ``sqlean``, ``pysqlite3.dbapi2``)."""
    if name == "sqlite3":
        return sqlite3
    try:
        module = importlib.import_module(name)
    except ImportError as exc:  # dbfault: no fault (sqlite_module not installed: config)
        raise DatabaseError(ErrorKind.MISUSE, f"sqlite_module {name!r} cannot be imported: {exc}") from exc
    # sqlean exposes the DB-API at top level; pysqlite3 under .dbapi2.
    return getattr(module, "dbapi2", module) if not hasattr(module, "connect") else module


class ConnectionManager:
    """Owns the runtime's single connection to one database file.

    :param config: the settings (path, pragmas, busy timeout, sqlite module).
    :param policy: the shared :class:`RetryPolicy` used to reconnect.
    :param handler: the shared :class:`ErrorHandler`.
    """

    def __init__(
        self,
        config: ReliabilityConfig,
        policy: RetryPolicy | None = None,
        handler: ErrorHandler | None = None,
    ) -> None:
        self.config = config
        self.policy = policy or RetryPolicy.from_config(config)
        self.handler = handler or ErrorHandler()
        self.module = load_sqlite_module(config.sqlite_module)
        self.state = ConnectionState.CLOSED
        self.reconnects = 0
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._existed = False
        self._lock = threading.RLock()
        #: Called with each newly opened connection (after the pragmas); may raise to refuse it.
        self.on_open: list[Callable[[sqlite3.Connection], None]] = []

    # -- opening ---------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The database file's path."""
        return self.config.db_path

    @property
    def connection(self) -> sqlite3.Connection:
        """The live connection, opened on first use."""
        conn = self._conn
        if conn is None:
            conn = self.open()
        return conn

    def live_connection(self) -> sqlite3.Connection:
        """The connection, reopened first if its handle was closed (for maintenance work, not the hot path)."""
        conn = self._conn
        if conn is not None:
            try:
                conn.total_changes  # noqa: B018  (raises ProgrammingError on a closed handle)
                return conn
            except self.module.ProgrammingError:
                self._close_quietly()
        return self.connection

    def open(self) -> sqlite3.Connection:
        """Open (or reopen) the connection and apply the pragmas.

        Once the database has existed, reopening uses ``mode=rw`` so that a vanished
        file is reported (SQLITE_CANTOPEN) instead of silently replaced by an empty one.
        """
        with self._lock:
            replaced = self._identity is not None and _file_identity(self.path) not in (None, self._identity)
            self._close_quietly()
            if replaced:
                _quarantine_stale_wal(self.path)
            conn = self._connect()
            for hook in self.on_open:
                try:
                    hook(conn)
                except BaseException:
                    conn.close()
                    raise
            self._conn = conn
            self._existed = True
            self._identity = _file_identity(self.path)
            self.state = ConnectionState.CONNECTED
            return conn

    def _connect(self) -> sqlite3.Connection:
        cfg = self.config
        mode = "rw" if self._existed else "rwc"
        try:
            files.prepare_database(cfg.db_path, create=mode == "rwc")  # no link followed, created 0600
        except files.UnsafePathError as exc:  # dbfault: no fault (a planted symlink: a setup, never retried)
            raise DatabaseError(ErrorKind.MISUSE, str(exc), user_message="The database file cannot be used "
                                "safely (its path is a link); an administrator must check it.") from exc
        uri = f"file:{pathname2url(os.path.abspath(cfg.db_path))}?mode={mode}"
        conn = self.module.connect(
            uri,
            uri=True,
            timeout=cfg.busy_timeout_ms / 1000.0,
            isolation_level=None,  # explicit BEGIN only: the runtime controls every transaction
            check_same_thread=False,  # the manager serializes access with its own lock
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(cfg.busy_timeout_ms)}")
            mode_now = conn.execute(f"PRAGMA journal_mode = {cfg.journal_mode.upper()}").fetchone()[0]
            if str(mode_now).upper() != cfg.journal_mode.upper():
                log.warning("journal_mode %s requested but SQLite kept %s", cfg.journal_mode, mode_now)
            conn.execute(f"PRAGMA synchronous = {cfg.synchronous.upper()}")
            conn.execute(f"PRAGMA foreign_keys = {'ON' if cfg.foreign_keys else 'OFF'}")
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        """Close the connection; the manager can reopen later."""
        with self._lock:
            self._close_quietly()
            self.state = ConnectionState.CLOSED

    def _close_quietly(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                if conn.in_transaction:
                    conn.rollback()
            except Exception:  # a broken handle may refuse even ROLLBACK; we drop it anyway
                pass
            try:
                conn.close()
            except Exception:  # dbfault: no fault (close() fails only on misuse: a handle of another thread)
                pass

    # -- health --------------------------------------------------------------------------------
    def check(self) -> ErrorKind | None:
        """A cheap health check: None when healthy, else the kind of problem found.

        Detects a closed handle, a database file deleted, renamed or replaced under the
        open connection, a read-only connection, and a database that fails to answer.
        """
        conn = self._conn
        if conn is None:
            return ErrorKind.CLOSED
        identity = _file_identity(self.path)
        if identity is None or identity != self._identity:
            # Deleted, renamed or replaced: the handle now points at a file nobody else sees.
            return ErrorKind.READONLY_DBMOVED
        try:
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            if conn.execute("PRAGMA query_only").fetchone()[0]:
                return ErrorKind.READONLY
        except Exception as exc:
            return classify(exc)
        return None

    def file_moved(self) -> bool:
        """True when the path no longer names the file this connection opened (deleted, moved, replaced)."""
        if self._conn is None:
            return False
        # _file_identity() inlined: this runs before every autocommit write and every COMMIT.
        try:
            st = os.stat(self.path)
        except OSError:
            return self._identity is not None
        return (st.st_dev, st.st_ino) != self._identity

    def ping(self) -> bool:
        """True when :meth:`check` finds nothing wrong."""
        return self.check() is None

    # -- reconnect -----------------------------------------------------------------------------
    def reconnect(self, operation_id: str = "") -> sqlite3.Connection:
        """Reopen under the shared retry policy (backoff + jitter, attempts and time budget).

        Each attempt is logged. Raises :class:`DatabaseError` of kind ``UNAVAILABLE``
        (its cause the last error) when the budget is spent.
        """
        with self._lock:
            self.state = ConnectionState.RECONNECTING
            self._close_quietly()

            def attempt() -> sqlite3.Connection:
                conn = self.open()
                # Opening is lazy in SQLite: touch the schema so a damaged or missing file shows now.
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return conn

            def on_retry(n: int, delay: float, exc: BaseException) -> None:
                log.warning("reconnect attempt %d to %s failed (%s: %s); next try in %.3fs",
                            n, self.path, classify(exc), exc, delay,
                            extra={"attempt": n, "delay": delay, "db_kind": str(classify(exc)),
                                   "operation_id": operation_id})

            try:
                conn = self.policy.call(attempt, should_retry=_reconnectable, on_retry=on_retry)
            except RetryExhausted as exc:
                self.state = ConnectionState.UNAVAILABLE
                self._close_quietly()
                err = DatabaseError(ErrorKind.UNAVAILABLE,
                                    f"could not reconnect to the database after {exc.attempts} attempt(s) "
                                    f"in {exc.elapsed:.3f}s: {exc.last}",
                                    operation_id=operation_id, attempts=exc.attempts)
                self.handler.log(err, attempt=exc.attempts, elapsed=exc.elapsed, exc=exc.last)
                raise err from exc.last
            except Exception as exc:
                self.state = ConnectionState.UNAVAILABLE
                self._close_quietly()
                raise self.handler.wrap(exc, operation_id=operation_id) from exc
            self.reconnects += 1
            log.info("reconnected to %s", self.path, extra={"operation_id": operation_id})
            return conn


def _reconnectable(exc: BaseException) -> bool:
    # Opening fails transiently on locks, a missing file (it may be renamed back) and I/O errors;
    # a damaged file (corrupt, notadb) will not heal by waiting and goes to recovery instead.
    return classify(exc) in _RECONNECTABLE


_RECONNECTABLE = frozenset({
    ErrorKind.BUSY, ErrorKind.LOCKED, ErrorKind.CANTOPEN, ErrorKind.IOERR, ErrorKind.READONLY,
    ErrorKind.READONLY_DBMOVED, ErrorKind.CLOSED, ErrorKind.UNKNOWN,
})


def _quarantine_stale_wal(path: str) -> None:
    """Move aside a ``-wal``/``-shm`` pair left by the file that was replaced at ``path``.

    SQLite does not tie a WAL to its database file: opening a replaced database next
    to the old file's WAL would replay the old frames into the new file (seen here:
    the replaced database showed the old schema). A WAL last written before the new
    file arrived (its mtime not after the new file's ctime) belongs to the old one.
    It is renamed, never deleted, so nothing is lost.
    """
    wal = path + "-wal"
    try:
        stale = os.stat(wal).st_mtime_ns <= os.stat(path).st_ctime_ns
    except OSError:
        return
    if stale:
        suffix = f".stale-{os.getpid()}-{time.time_ns()}"
        for extra in ("-wal", "-shm"):
            try:
                os.rename(path + extra, path + extra + suffix)
            except OSError:
                pass
        log.warning("moved aside the WAL of a replaced database file %s (kept as *%s)", path, suffix)


def _file_identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)

