"""Read-only inspection of a database and the runtime's files beside it (what ``reliability health`` uses).

Example::

    from reliability import Inspector, ReliabilityConfig

    with Inspector(ReliabilityConfig(db_path="app.db")) as view:
        view.health().status            # healthy / degraded / unavailable
        view.check_integrity().ok       # quick_check + foreign_key_check
        view.flags()                    # [Flag(...)]
        view.audit.verify().ok          # the audit chain, read through the same AuditLogger code

Unlike :class:`~reliability.manager.DatabaseManager`, an ``Inspector`` changes nothing: the
database is opened with a ``mode=ro`` URI, so no journal-mode switch, no redo journal, no backup,
no recovery, no migration, no queue replay. A missing database is an error naming the path; it is
never created.

One SQLite detail needs care: a WAL database at rest (no ``-wal``/``-shm`` beside it) gets both
files created by any reader, read-only or not, and a read-only connection cannot remove them when
it closes. When this inspector created them, it lets SQLite itself remove them: it opens one more
connection with ``query_only`` on, whose close runs SQLite's ordinary last-connection cleanup under
SQLite's own locks (a no-op checkpoint of an empty WAL, then the deletion). If another process
opened the database in between, SQLite keeps the files, as it must. A file this process may not
write is opened ``immutable`` instead (nobody here can change it, and no sidecar is made).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, TypeVar
from urllib.request import pathname2url

from . import files
from .config import ReliabilityConfig
from .connection import load_sqlite_module
from .damage_mark import DamageMarker
from .degraded.places import PLACES_TABLE, count_lines, current_places, left_behind, queue_summary
from .durability.backup import BackupInfo, BackupManager
from .errors import Action, DatabaseError, ErrorHandler, ErrorKind, decide, out_of_service
from .health import (
    HealthReport,
    HealthStatus,
    IntegrityReport,
    confirmed_problems,
    file_problems,
    integrity_problems,
    wal_size,
)
from .observers import Observers
from .retry import RetryExhausted, RetryPolicy

T = TypeVar("T")
log = logging.getLogger("reliability.inspection")

#: The 16 bytes every SQLite 3 database file starts with.
SQLITE_MAGIC = b"SQLite format 3\x00"


def is_sqlite_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a regular file starting with SQLite's header (an empty file is not one).

    Read without closing a descriptor of the file (:func:`~reliability.files.read_database_head`):
    ``path`` may be a database this process has open, and a plain close would drop its locks.
    """
    try:
        return files.read_database_head(path, 16) == SQLITE_MAGIC
    except OSError:  # dbfault: no fault (not a readable file: not a database)
        return False


def _wal_header(path: str) -> bool:
    # Bytes 18 and 19 of the header are 2 for a WAL database. Never a plain open()/close(): in a
    # rollback-journal database there is never a -wal/-shm, so this read meets connections of this
    # process in the middle of their transactions, and a close would drop their locks.
    try:
        head = files.read_database_head(path, 20)
    except OSError:  # dbfault: no fault (unreadable: SQLite's own open reports why)
        return False
    return len(head) == 20 and head[:16] == SQLITE_MAGIC and head[18] == 2 and head[19] == 2


class Inspector:
    """A read-only view of the database ``config.db_path`` (see the module docstring).

    :param config: the settings (path, SQLite module, busy timeout, retry policy, side files).
    :raises DatabaseError: ``CANTOPEN`` naming the path when the database does not exist or is
        not a file; ``MISUSE`` when ``config.sqlite_module`` cannot be imported.
    """

    def __init__(self, config: ReliabilityConfig, *, policy: RetryPolicy | None = None) -> None:
        self.config = config
        self.path = config.db_path
        self.module = load_sqlite_module(config.sqlite_module)
        self.policy = policy or RetryPolicy.from_config(config)
        self._errors = ErrorHandler(log)
        if not os.path.exists(self.path):
            raise DatabaseError(ErrorKind.CANTOPEN, f"the database {self.path!r} does not exist",
                                user_message=f"The database {self.path!r} does not exist.")
        if not os.path.isfile(self.path):
            raise DatabaseError(ErrorKind.CANTOPEN, f"{self.path!r} is not a database file",
                                user_message=f"{self.path!r} is not a database file.")
        self._conn: Any = None
        self._opened: tuple[int, int] | None = None  # the file the connection reads (files.file_identity)
        # Whether our open may create -wal/-shm that were not there (see the module docstring). The
        # header is read last, only for a file with no -wal/-shm: a plain read closes a descriptor of the
        # file, and that drops every POSIX lock this process holds on it, so beside a live manager in this
        # process (its WAL connection holds a SHARED lock) another process would take itself for the last
        # user and checkpoint and delete the -wal under it.
        self._at_rest_wal = (not os.path.exists(self.path + "-wal") and not os.path.exists(self.path + "-shm")
                             and _wal_header(self.path))
        # A file (or folder) this process may not write: nobody here can add a WAL, and SQLite could
        # neither create the -wal/-shm it wants nor remove them (see the module docstring).
        self._immutable = self._at_rest_wal and not (
            os.access(self.path, os.W_OK) and os.access(os.path.dirname(os.path.abspath(self.path)), os.W_OK))
        # The parts of DatabaseManager that AuditLogger hooks into when it is built; an inspector never
        # writes, so nothing is ever called through them.
        self.observers = Observers()
        self.transactions = SimpleNamespace(savepoint_hooks=[])
        #: The audit log, read through :class:`~reliability.audit.AuditLogger` (reads only; the key is
        #: passed in so that no key file is ever generated by an inspection).
        from .audit import AuditLogger

        self.audit = AuditLogger(self, key=self._audit_key())  # type: ignore[arg-type]

    def _audit_key(self) -> bytes:
        """The audit key as the runtime would use it, read only: configured, else the key file's.

        No key file means no generated key ever signed an entry; an empty key then lets ``verify()``
        say whether the stored chain is consistent without creating a file.
        """
        if self.config.audit_hmac_key:
            return self.config.audit_hmac_key.encode("utf-8")
        try:
            data = files.read_private(self.config.audit_key_file, what="audit key file (audit_key_path)")
        except OSError as exc:  # dbfault: no fault (a link or unreadable file where the key should be)
            log.error("audit key file unusable for inspection: %s", exc)
            return b""
        return (data or b"").decode("ascii", "replace").strip().encode("ascii", "replace")

    # -- connection ------------------------------------------------------------------------------
    def _uri(self, mode: str) -> str:
        uri = f"file:{pathname2url(os.path.abspath(self.path))}?mode={mode}"
        return uri + ("&immutable=1" if self._immutable and mode == "ro" else "")

    @property
    def connection(self) -> Any:
        """The read-only connection (opened on first use)."""
        if self._conn is None:
            # (the identity first: a file put at the path after it is one the next follow_the_path() sees)
            self._opened = files.file_identity(self.path)
            self._conn = self.module.connect(self._uri("ro"), uri=True, isolation_level=None,
                                             timeout=self.config.busy_timeout_ms / 1000.0,
                                             check_same_thread=False)
        return self._conn

    def close(self) -> None:
        """Close the connection; remove the ``-wal``/``-shm`` our read created (through SQLite). Idempotent."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        if self._at_rest_wal and not self._immutable and (
                os.path.exists(self.path + "-wal") or os.path.exists(self.path + "-shm")):
            try:
                cleaner = self.module.connect(self._uri("rw"), uri=True, isolation_level=None,
                                              timeout=self.config.busy_timeout_ms / 1000.0)
                try:
                    cleaner.execute("PRAGMA query_only = 1")
                    cleaner.execute("SELECT count(*) FROM sqlite_master").fetchone()
                finally:
                    cleaner.close()  # the last connection's close: SQLite removes the empty -wal and -shm
            except self.module.Error as exc:  # dbfault: no fault (a file we may not reopen: the files stay)
                log.info("could not let SQLite remove the -wal/-shm a read created beside %s: %s", self.path, exc)

    def __enter__(self) -> Inspector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads (the duck-typed part of DatabaseManager that AuditLogger's readers use) -----------
    def _retry(self, fn: Callable[[], T]) -> T:
        """Run a read under the shared retry policy: a lock is waited out, never reported as a verdict."""
        def transient(exc: BaseException) -> bool:
            return isinstance(exc, self.module.Error) and decide(exc) is Action.RETRY

        try:
            return self.policy.call(fn, should_retry=transient)
        except RetryExhausted as exc:
            err = self._errors.wrap(exc.last, log=False)
            err.attempts = exc.attempts
            raise err from exc.last
        except self.module.Error as exc:
            raise self._errors.wrap(exc, log=False) from exc

    def fetch_all(self, sql: str, params: Any = ()) -> list[Any]:
        """Every row of a query, on the read-only connection (errors are DatabaseError, not logged)."""
        return self._retry(lambda: self.connection.execute(sql, params).fetchall())

    def follow_the_path(self) -> None:
        """Drop the connection when the path no longer names the file it reads; the next read opens what is there.

        Called before every report (health, integrity, the audit log's ``verify()``): a handle keeps reading a
        deleted or replaced file (in rollback-journal mode with no error at all), and a report on that file
        would call a database healthy and sound that is gone from the path.
        """
        if self._conn is not None and files.file_identity(self.path) != self._opened:
            conn, self._conn = self._conn, None
            conn.close()

    def fetch_one(self, sql: str, params: Any = ()) -> Any:
        """The first row of a query, or None."""
        return self._retry(lambda: self.connection.execute(sql, params).fetchone())

    def committed_sequences(self) -> dict[int, int] | None:
        """The committed sequences of the file as a starting runtime reads them
        (:func:`~reliability.durability.lost_commits.committed_or_none_at_all`), read-only, a lock waited out under
        the policy."""
        from .durability.lost_commits import committed_or_none_at_all  # (loaded only by the commands that compare)

        return self._retry(lambda: committed_or_none_at_all(self.connection))

    def has_table(self, name: str) -> bool:
        """Whether table ``name`` exists (so reads of a fresh database never provoke 'no such table')."""
        return self.fetch_one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)) is not None

    def hot_journal(self, err: DatabaseError) -> DatabaseError | None:
        """When ``err`` is SQLite refusing to read because an interrupted transaction's rollback journal
        must be rolled back first (a write our read-only connection may not do), the error that says so."""
        journal = self.path + "-journal"
        if err.kind is not ErrorKind.READONLY or not os.path.exists(journal) or not os.path.getsize(journal):
            return None
        out = DatabaseError(
            ErrorKind.READONLY, f"an interrupted transaction left a hot rollback journal {journal!r}; it must be "
            "rolled back before the database can be read", code=err.code, code_name=err.code_name,
            user_message="An interrupted transaction must be rolled back before the database can be inspected: "
            f"run 'reliability --db {self.path} recover' (SQLite rolls it back) or start the application.")
        out.__cause__ = err
        return out

    def journal_mode(self) -> str:
        """``PRAGMA journal_mode`` as stored in the file (a query: it changes nothing)."""
        return str(self.fetch_one("PRAGMA journal_mode")[0]).lower()

    # -- reports ---------------------------------------------------------------------------------
    def check_integrity(self, full: bool = False, max_problems: int = 100) -> IntegrityReport:
        """``quick_check`` (``integrity_check`` when ``full``) + ``foreign_key_check``; no recovery.

        A file SQLite cannot read at all (not a database, malformed) is reported as a problem; a
        lock that outlasts the retry policy raises (it says nothing about the file's integrity).
        """
        pragma = "integrity_check" if full else "quick_check"
        t0 = time.perf_counter()

        def once() -> list[str]:
            self.follow_the_path()
            try:
                rows = self.fetch_all(f"PRAGMA {pragma}")
                return (integrity_problems(rows, self.fetch_all("PRAGMA foreign_key_check"))
                        + file_problems(self.path, self.fetch_one("PRAGMA page_size")[0]))
            except DatabaseError as err:
                if err.transient or err.kind is ErrorKind.UNKNOWN:
                    raise
                hot = self.hot_journal(err)
                if hot is not None:
                    raise hot from err  # not a verdict on integrity: the file is mid-transaction until rolled back
                return [f"{pragma} could not read the database: {err.detail} ({err.kind})"]

        def fresh() -> None:  # the second read on a new connection, as the runtime's check makes it
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

        problems = confirmed_problems(once, f"the {pragma} of {self.path}", fresh)
        if len(problems) > max_problems:
            problems = problems[:max_problems] + [f"... and {len(problems) - max_problems} more"]
        return IntegrityReport(not problems, problems, "full" if full else "quick", time.perf_counter() - t0)

    def backups(self) -> list[BackupInfo]:
        """The backups in ``config.backup_directory``, newest first (nothing is created or rotated)."""
        return BackupManager(self.config.backup_directory, self.config.backup_keep, self.module).list()

    def write_queue(self) -> dict[str, Any]:
        """How many writes wait in the durable queue and how many were refused (the file is only read)."""
        return queue_summary(self.config.write_queue_file, self.config.write_queue_max)

    def remembered_places(self) -> list[tuple[str, str]] | None:
        """Where runtimes of this database kept their queue and audit fallback (:mod:`reliability.degraded.places`)."""
        if self.fetch_one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (PLACES_TABLE,)) is None:
            return None
        rows = self.fetch_all(f"SELECT setting, path FROM {PLACES_TABLE}")
        return [(str(setting), str(path)) for setting, path in rows]

    def health(self) -> HealthReport:
        """The health of the database as the files show it now (no counters: nothing ran in this process)."""
        reasons: list[str] = []
        status = HealthStatus.HEALTHY
        state = "connected"
        last_error = None
        extra: dict[str, Any] = {"inspection": "read-only"}
        self.follow_the_path()
        try:
            self.fetch_one("SELECT count(*) FROM sqlite_master")
            extra["journal_mode"] = self.journal_mode()
        except DatabaseError as err:
            if err.transient:
                raise
            state = "unavailable"
            err = self.hot_journal(err) or err
            last_error = f"{err.kind}: {err.detail}"
            status = HealthStatus.UNAVAILABLE if out_of_service(err.kind) else HealthStatus.DEGRADED
            reasons.append(f"the database cannot be read: {err.detail} ({err.kind})")
        queue = self.write_queue()
        extra["write_queue"] = queue
        if queue["pending"]:
            reasons.append(f"{queue['pending']} write(s) queued while the database was unavailable")
        if queue["failed"]:
            reasons.append(f"{queue['failed']} queued write(s) were refused on replay")
        fallback = self.config.audit_fallback_file
        waiting = count_lines(fallback)
        extra["audit_fallback"] = {"path": str(fallback), "pending": waiting}
        if waiting:
            reasons.append(f"{waiting} audit entr{'ies' if waiting != 1 else 'y'} wait in {str(fallback)!r}")
        try:
            left = left_behind(self.remembered_places(), current_places(self.config))
        except DatabaseError as err:
            if err.transient:
                raise  # a lock is no answer, as above
            left = []  # (unreadable: said above)
        if left:
            extra["left_behind"] = [{"setting": p.setting, "path": p.path, "waiting": p.waiting} for p in left]
            reasons.extend(p.reason() for p in left)
        last_backup_at = None
        directory = self.config.backup_directory
        if directory.exists() and not directory.is_dir():
            reasons.append(f"the backup folder {str(directory)!r} is not a folder (RELIABILITY_BACKUP_DIR)")
        else:
            infos = self.backups()
            newest = next((b for b in infos if b.verified), None)
            last_backup_at = newest.created_at if newest is not None else None
            extra["backups"] = {"count": len(infos), "verified": sum(b.verified for b in infos),
                                "directory": str(directory)}
        mark = DamageMarker(self.path).read()  # (read only: inspection never writes or removes the marker)
        extra["damage_mark"] = None if mark is None else mark.to_dict()
        if mark is not None:
            reasons.append(f"the database is {mark.describe()}: the runtime's own writes wait until a recovery or a "
                           "clean integrity check clears it")
        redo = self.config.redo_journal_file
        extra["redo"] = {"path": str(redo), "size": redo.stat().st_size if redo.exists() else None}
        if reasons and status is HealthStatus.HEALTHY:
            status = HealthStatus.DEGRADED
        return HealthReport(status=status, reasons=tuple(reasons), connection_state=state, operations={},
                            errors={}, retries=0, reconnects=0, latency_ms={"p50": 0.0, "p95": 0.0, "p99": 0.0},
                            last_error=last_error, wal_size=wal_size(self.path), last_backup_at=last_backup_at,
                            extra=extra)

    def flags(self, name: str | None = None) -> list[Any]:
        """Every feature flag (or the one called ``name``), as :class:`~reliability.admin.Flag`."""
        from .admin import Flag

        if not self.has_table("reliability_flags"):
            return []
        sql = "SELECT name, value, updated_at, updated_by FROM reliability_flags"
        rows = (self.fetch_all(sql + " WHERE name = ?", (name,)) if name is not None
                else self.fetch_all(sql + " ORDER BY name"))
        return [Flag(n, json.loads(v), at, by) for n, v, at, by in rows]

    def audit_entries(self, limit: int = 50, *, actor: str | None = None, action: str | None = None,
                      since: float | None = None) -> list[Any]:
        """Audit entries newest first (fallback entries not yet reconciled first), read-only."""
        return self.audit.entries(limit, actor=actor, action=action, since=since)
