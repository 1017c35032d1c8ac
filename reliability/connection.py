"""Connections with explicit transaction control, best-practice pragmas, health checks and file identity.

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
import struct
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.request import pathname2url

from . import files
from .config import ReliabilityConfig
from .errors import DatabaseError, ErrorKind, classify

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

    It never retries: whoever fails a call asks :func:`~reliability.errors.decide` and, told to
    reconnect, closes the connection; the next use reopens it through :meth:`open`.
    """

    def __init__(self, config: ReliabilityConfig) -> None:
        self.config = config
        self.module = load_sqlite_module(config.sqlite_module)
        self.state = ConnectionState.CLOSED
        self.reconnects = 0
        self._conn: sqlite3.Connection | None = None
        self._wal_mode = False
        self._identity: tuple[int, int] | None = None
        #: Database file identity -> identity of the -wal SQLite used with it (see _remember_wal).
        self._wal_of: dict[tuple[int, int], tuple[int, int]] = {}
        #: Identity of the -shm (the WAL index) beside the file when the connection opened it (see index_removed).
        self._shm: tuple[int, int] | None = None
        # A file already there when the manager starts has existed: if it vanishes before the first
        # open, opening must report it (mode=rw), not let SQLite create an empty one in its place.
        self._existed = os.path.exists(config.db_path)
        self._lock = threading.RLock()
        #: Called with each newly opened connection (after the pragmas); may raise to refuse it.
        self.on_open: list[Callable[[sqlite3.Connection], None]] = []
        #: Why opening is refused, or None: set while a database the runtime managed before is
        #: missing (see :meth:`refuse`), so SQLite never creates an empty file in its place.
        self.refused: str | None = None
        #: Set by the owning manager's ``close()``: nothing opens again (a call after it is the caller's bug; it
        #: used to reopen and write with the redo journal closed and its slot released, so a later recovery by
        #: another manager could not bring such a write back, while health said healthy).
        self.closed_for_good = False
        self._refused_user_message: str | None = None
        #: (device, inode) of the ``-wal`` the open connection uses, taken when it opened (None: closed,
        #: or not in WAL mode). SQLite keeps that file open until the handle closes, so a ``-wal`` at the
        #: path that is another file (or none) means this one was removed under the handle.
        self._conn_wal: tuple[int, int] | None = None
        #: (device, inode) of the ``-shm`` when the connection opened (see :meth:`rescue_removed_wal`).
        self._conn_shm: tuple[int, int] | None = None
        #: Fingerprint of the ``-wal`` the connection used, taken as the connection closed when another file
        #: had replaced its database at the path while that ``-wal`` stayed (see :func:`_wal_left_behind`):
        #: the old file's WAL beside the new one, proved by the handle itself, not by inodes recorded earlier.
        self._left_wal: tuple[int, int, int, int] | None = None
        #: How many times a ``-wal`` removed under the open connection was checkpointed from its handle.
        self.wal_rescues = 0
        #: What a ``-wal`` removed under the open connection left missing (None: nothing; see
        #: :meth:`rescue_removed_wal`). While set, opening is refused (:attr:`refused`) until a recovery.
        self.wal_loss: str | None = None
        #: Asked after a handle on a removed ``-wal`` was dropped without checkpointing it (another WAL
        #: was in use at the path): given a connection on the file at the path, returns None when that
        #: file holds every commit this manager acknowledged, else what is missing. None: nothing can
        #: tell (the redo journal is off), so the database is refused until a recovery.
        self.verify_commits: Callable[[sqlite3.Connection], str | None] | None = None
        #: Where this manager's redo journal stands, for the report of a loss no connection can check
        #: (``"its last committed transaction is sequence N (journal slot S)"``), or None.
        self.journal_note: Callable[[], str] | None = None
        #: Called (no arguments) when another manager of this process has put another file at this path (a
        #: restore or recovery, see :meth:`replaced_here`): the executor then checks the path on its next read
        #: instead of at the end of its identity-check interval.
        self.on_replaced_here: list[Callable[[], None]] = []
        _MANAGERS.add(self)

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

    @property
    def current(self) -> sqlite3.Connection | None:
        """The connection if one is open, else None (never opens one)."""
        return self._conn

    def in_transaction(self) -> bool:
        """True while the open handle is inside a transaction; False with no handle, or a handle closed behind
        the runtime's back (asking a closed sqlite3 connection raises ProgrammingError). Never opens one."""
        conn = self._conn
        if conn is None:
            return False
        try:
            return conn.in_transaction
        except self.module.ProgrammingError:
            return False

    def transaction_ended(self) -> bool:
        """Asked inside ``db.transaction()``: True when SQLite has no transaction open on the handle (it rolled the
        block's transaction back). A closed handle answers False, unlike :meth:`in_transaction`'s "not inside": a
        statement on it fails as any statement on a closed handle does (a lost connection, said as such)."""
        conn = self._conn
        if conn is None:
            return False
        try:
            return not conn.in_transaction
        except self.module.ProgrammingError:
            return False

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

    def connection_at_path(self) -> sqlite3.Connection:
        """:meth:`live_connection`, reopened first when the path no longer names its file.

        For maintenance that writes (migrations): in WAL mode a handle on a deleted or replaced file
        keeps accepting writes that nobody will see, and between statements nothing else has looked
        yet. A missing file fails to open (``mode=rw``) instead of being written to.
        """
        conn = self.live_connection()
        if self.file_moved():
            conn = self.open()
        return conn

    def open(self) -> sqlite3.Connection:
        """Open (or reopen) the connection and apply the pragmas.

        Once the database has existed, reopening uses ``mode=rw`` so that a vanished
        file is reported (SQLITE_CANTOPEN) instead of silently replaced by an empty one.
        """
        with self._lock:
            if self.closed_for_good:
                raise DatabaseError(ErrorKind.MISUSE, f"the DatabaseManager of {self.path} was closed (close()): "
                                                      "a closed manager opens nothing; make a new one")
            if self.refused is not None:
                # Not retried (UNAVAILABLE is no transient kind): waiting does not bring a file back.
                raise DatabaseError(ErrorKind.UNAVAILABLE, self.refused, user_message=self._refused_user_message)
            replaced = self._identity is not None and _file_identity(self.path) not in (None, self._identity)
            # A handle on a removed -wal: save its frames first (or learn that it cannot), before it closes.
            removed = self.wal_removed()
            unsaved = removed and not self._checkpoint_removed_wal()
            if removed and not unsaved and _file_identity(self.path + "-shm") != self._conn_shm:
                self._release_removed_index()
            if unsaved and not self._others_hold_the_file():
                self._park_unsaved_handle()  # raises UNAVAILABLE (refused until a recovery)
            _close_parked(self.path)
            self._close_quietly()
            if replaced:
                set_aside_foreign_wal(self.path, self._wal_of, self.module, left_by=self._left_wal)
            self._left_wal = None
            if _parked_on(self.path):
                # Not retried (UNAVAILABLE): the parked handle stays until a recovery puts another file in place.
                raise DatabaseError(ErrorKind.UNAVAILABLE, _READS_THROUGH_PARKED.format(path=self.path),
                                    user_message="Recent changes are missing from the database. An administrator "
                                                 "must restore them (`reliability recover`).")
            conn = self._connect()
            for hook in self.on_open:
                try:
                    hook(conn)
                except BaseException:
                    conn.close()
                    raise
            if unsaved:
                self._verify_after_removed_wal(conn)  # raises UNAVAILABLE (and refuses) when commits are missing
            if self.state in (ConnectionState.RECONNECTING, ConnectionState.UNAVAILABLE):
                self.reconnects += 1  # a handle the runtime dropped after a failure, opened again
            self._conn = conn
            self._existed = True
            self._identity = _file_identity(self.path)
            self._remember_wal(conn)
            self._shm = _file_identity(self.path + "-shm")
            self.state = ConnectionState.CONNECTED
            return conn

    # -- a -wal removed under the open connection ---------------------------------------------------
    def wal_removed(self) -> bool:
        """True when the open connection's ``-wal`` is no longer at the path (deleted, or another file
        there) while the database file still is: frames committed in it since the last checkpoint are
        then reachable only through this handle (and the other handles opened before the removal)."""
        wal = self._conn_wal
        if wal is None or self._conn is None:
            return False
        if _file_identity(self.path + "-wal") == wal or _file_identity(self.path) != self._identity:
            return False  # (a moved database file is file_moved's business: its -wal moved with it)
        try:
            self._conn.total_changes  # noqa: B018  (a handle closed elsewhere: SQLite dealt with its WAL itself)
        except self.module.ProgrammingError:  # dbfault: no fault (disconnect_close closed it: nothing to save)
            return False
        return True

    def rescue_removed_wal(self) -> str | None:
        """Save what a ``-wal`` removed under the open connection holds, or say what is missing.

        SQLite never notices its ``-wal`` deleted (checked for real, tests/test_wal_removed_live.py): the
        handle keeps reading and writing the unlinked file, connections opened since get a disk I/O
        error (or, with the ``-shm`` gone too, the database as of the last checkpoint), and the frames are
        copied into the database only if this handle closes as the last connection; a crash, or a close
        while a connection opened since holds the file, loses every transaction committed since the last
        checkpoint. So as soon as the runtime sees it (before a commit, on a read's path check, in
        ``health``, at close) the handle is dropped, and first:

        * when no other connection started a WAL of its own at the path (no ``-wal`` there, or an empty
          one beside the same ``-shm``), a checkpoint through this handle copies every frame of the
          removed file (every connection opened before the removal wrote into that same file) into the
          database, as SQLite's own last close would; TRUNCATE then resets the shared index so no
          handle reads frames of the next WAL through the old file;
        * otherwise a checkpoint could apply the old frames over pages written since through the new WAL
          (or through an index that now describes another file): nothing is checkpointed, and the file at
          the path is asked whether it holds every commit this manager acknowledged
          (:attr:`verify_commits`: the redo journal against the sequence the database records). If it
          does (another handle saved them), the runtime goes on; if not, or when nothing can tell,
          opening is refused (UNAVAILABLE, health says which commits) until ``reliability recover``
          brings them back from the redo journals.

        Returns None when nothing was removed or nothing is missing, else what is missing
        (:attr:`wal_loss`). Not inside a transaction (its COMMIT's own check sees the removal).
        """
        with self._lock:
            conn = self._conn
            if conn is None or conn.in_transaction or not self.wal_removed():
                return None
            try:
                self.open()
            except DatabaseError as exc:  # (the disconnect fault's remove_wal modes reach it)
                if self.wal_loss is None:
                    return f"the -wal of {self.path!r} was removed under the open connection: {exc.detail}"
            except self.module.Error as exc:
                # Reopening read through the removed WAL's index (another manager of this process still holds
                # it, and another process started a new -shm): the driver's error is an answer here, never a
                # raw exception out of health() (found by the data-loss machine's remove_wal_live).
                if self.wal_loss is None:
                    return (f"the -wal of {self.path!r} was removed under the open connection and reopening the "
                            f"database failed: {exc}")
            return self.wal_loss

    def _checkpoint_removed_wal(self) -> bool:
        """Checkpoint the removed ``-wal`` through the open handle when that is safe; True when saved."""
        conn = self._conn
        assert conn is not None
        try:
            if conn.in_transaction:  # never committed into the removed WAL now (and no checkpoint runs inside one)
                conn.rollback()
            wal_st = files.file_stat(self.path + "-wal")
            if wal_st is not None and (wal_st.st_size > 0 or _file_identity(self.path + "-shm") != self._conn_shm):
                log.error("the -wal of %s was removed under the open connection and another connection has started "
                          "a new one since: its frames cannot be checkpointed safely", self.path)
                return False
            # FULL: waits (busy handler) for the other handles' readers and writers; says how many frames it copied.
            busy, frames, done = conn.execute("PRAGMA wal_checkpoint(FULL)").fetchone()
            if busy or frames != done:
                log.error("the -wal of %s was removed under the open connection; %d of %d frame(s) could not be "
                          "checkpointed from it (busy=%d)", self.path, max(frames - done, 0), frames, busy)
                return False
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except self.module.Error as exc:  # dbfault: no fault (a lock or I/O error: then verified, never silent)
            log.error("the -wal of %s was removed under the open connection; checkpointing it failed: %s",
                      self.path, exc)
            return False
        self.wal_rescues += 1
        log.warning("the -wal of %s was removed under the open connection; its %d frame(s) were checkpointed into "
                    "the database from this handle (nothing lost)", self.path, frames)
        return True

    def _others_hold_the_file(self) -> bool:
        """Does another connection hold the database file open (so closing this handle is not the last close)?

        SQLite's last close checkpoints the WAL *it* holds and deletes the ``-wal`` at the path: for a handle
        on a removed WAL that applies the old frames over a file another connection has written to since
        through a new WAL, and deletes that new WAL with its commits (seen for real). Another connection of
        this runtime in this process on the same file, or a lock another process holds on it (Linux: its
        POSIX locks are listed in ``/proc/locks``; elsewhere nothing can tell, so no), makes the close safe.
        """
        identity = self._identity
        if any(other is not self and other._conn is not None and other._identity == identity
               and not _closed_under_its_manager(other._conn) for other in list(_MANAGERS)):
            return True
        return identity is not None and bool(_lock_holders(identity))

    def _release_removed_index(self) -> None:
        """The ``-shm`` was removed too: close the other handles of this process on the file, so none keeps the
        removed index alive (SQLite shares one index per database file within a process: a connection opened
        here while any of them stays would map the removed one, while other processes build a new one from
        the path, two indexes of one WAL). Called once the removed WAL was checkpointed: their frames are in
        the database. A handle in a transaction, or of a manager busy in another thread, is left (said).
        """
        for other in list(_MANAGERS):
            if other is self or other._conn is None or other._identity != self._identity:
                continue
            if not other._lock.acquire(blocking=False):
                log.warning("the -shm of %s was removed: a connection busy in another thread keeps the old index "
                            "until it reopens", self.path)
                continue
            try:
                conn = other._conn
                if conn is None or (not _closed_under_its_manager(conn) and conn.in_transaction):
                    continue
                other._close_quietly()
                other.state = ConnectionState.RECONNECTING  # its next call opens the file afresh
            finally:
                other._lock.release()

    def _park_unsaved_handle(self) -> None:
        """Keep the handle on a removed ``-wal`` open (never closed while the file is at the path), refuse.

        Closing it would be the last close (see :meth:`_others_hold_the_file`), and no connection of this
        process could check the file meanwhile (SQLite shares one WAL index per database file within a
        process, so a new one would read through the removed WAL's). It is closed once the path names
        another file (a recovery installed one): then SQLite neither checkpoints nor deletes anything.
        """
        conn, self._conn = self._conn, None
        self._conn_wal = self._conn_shm = None
        if conn is not None and self._identity is not None:
            _PARKED.append((self.path, self._identity, conn))
        self.state = ConnectionState.CLOSED
        self.wal_loss = (f"the -wal of {self.path!r} was removed under the open connection and another connection "
                         "started a new one before its frames were checkpointed: transactions committed since the "
                         "last checkpoint may be missing from the database file"
                         + (f" ({self.journal_note()})" if self.journal_note is not None else "")
                         + "; the redo journals hold every acknowledged one: `reliability recover` restores the "
                         "newest verified backup and replays them")
        log.error("%s", self.wal_loss)
        self.refuse(self.wal_loss, "Recent changes are missing from the database. An administrator must "
                                   "restore them (`reliability recover`).")
        raise DatabaseError(ErrorKind.UNAVAILABLE, self.wal_loss, user_message=self._refused_user_message)

    def _verify_after_removed_wal(self, conn: sqlite3.Connection) -> None:
        """After dropping a handle on a removed ``-wal`` unsaved: refuse unless the file holds our commits."""
        verify = self.verify_commits
        try:
            missing = ("no redo journal can tell which committed transactions the database file lacks"
                       if verify is None else verify(conn))
        except Exception as exc:  # noqa: BLE001  # dbfault: no fault (an unreadable file cannot prove anything)
            missing = f"the database file could not be checked for them ({exc})"
        if missing is None:
            log.warning("the -wal of %s was removed under the open connection; the database file holds every "
                        "transaction this manager committed (saved through another handle)", self.path)
            return
        conn.close()
        self.wal_loss = (f"the -wal of {self.path!r} was removed under the open connection before its frames were "
                         f"checkpointed, and {missing}; `reliability recover` restores the newest verified backup "
                         "and replays every redo journal")
        log.error("%s", self.wal_loss)
        self.refuse(self.wal_loss, "Recent changes are missing from the database. An administrator must "
                                   "restore them (`reliability recover`).")
        raise DatabaseError(ErrorKind.UNAVAILABLE, self.wal_loss, user_message=self._refused_user_message)

    def _remember_wal(self, conn: sqlite3.Connection) -> None:
        """Record which WAL file SQLite uses with the database file just opened (the identity record).

        While any connection holds a WAL-mode database open SQLite never deletes or replaces its
        ``-wal`` (it only rewrites it in place), so this (database inode, WAL inode) pair stays true
        until the files are moved; :func:`set_aside_foreign_wal` trusts a pair it finds here.
        """
        identity = self._identity
        if identity is None:
            return
        wal = _file_identity(self.path + "-wal")
        # (In WAL mode the first read opened it: this very connection holds that file until it closes.)
        self._conn_wal = wal if self._wal_mode else None
        self._conn_shm = _file_identity(self.path + "-shm") if self._wal_mode else None
        if wal is not None:
            self._wal_of.pop(identity, None)
            for other in [db for db, w in self._wal_of.items() if w == wal]:
                del self._wal_of[other]  # one WAL, one file: an older entry for it is a freed, reused number
            self._wal_of[identity] = wal
            while len(self._wal_of) > 16:  # the files this manager opened lately are all it needs
                self._wal_of.pop(next(iter(self._wal_of)))

    def refuse(self, detail: str | None, user_message: str | None = None) -> None:
        """Refuse every open with ``detail`` (an UNAVAILABLE error), or accept opens again (``None``)."""
        with self._lock:
            self.refused = detail
            self._refused_user_message = user_message
            if detail is not None:
                self._close_quietly()
                self.state = ConnectionState.CLOSED
            else:
                self.wal_loss = None  # (a recovery installed a file holding them, or they were reported)

    def _connect(self) -> sqlite3.Connection:
        cfg = self.config
        mode = "rw" if self._existed else "rwc"
        try:
            files.prepare_database(cfg.db_path, create=mode == "rwc")  # no link followed, created 0600
        except files.UnsafePathError as exc:  # dbfault: no fault (a planted symlink: a setup, never retried)
            raise DatabaseError(ErrorKind.MISUSE, str(exc), user_message="The database file cannot be used "
                                "safely (its path is a link); an administrator must check it.") from exc
        if cfg.journal_mode.lower() == "wal":
            _refuse_a_second_index(cfg.db_path)
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
            # A read now: a new WAL-mode database gets its -wal on the first read (the identity record,
            # _remember_wal, needs it), and a damaged schema page shows at once.
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except BaseException:
            conn.close()
            raise
        self._wal_mode = str(mode_now).lower() == "wal"
        return conn

    def close(self) -> None:
        """Close the connection; the manager can reopen later.

        A handle on a removed ``-wal`` is first saved or reported (:meth:`rescue_removed_wal`): closed
        while a connection opened since holds the database, SQLite would not checkpoint it."""
        with self._lock:
            conn = self._conn
            if conn is not None and self.wal_removed():
                try:
                    if conn.in_transaction:  # (rolled back by the close anyway; the rescue needs none open)
                        conn.rollback()
                except self.module.Error:  # dbfault: no fault (a dead handle: nothing to save through it)
                    pass
                self.rescue_removed_wal()
            self._close_quietly()
            self.state = ConnectionState.CLOSED

    def _close_quietly(self) -> None:
        conn, self._conn = self._conn, None
        wal, self._conn_wal, self._conn_shm = self._conn_wal, None, None
        if conn is not None:
            # Looked at while the handle still holds its -wal open, so that file cannot have been freed and its
            # inode number handed to another file: what is found at the path now is provably that very -wal.
            self._left_wal = (_wal_left_behind(self.path, self._identity, wal)
                              if wal is not None and not _closed_under_its_manager(conn) else None)
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
        found = self.diagnose()
        return None if found is None else found[0]

    def diagnose(self) -> tuple[ErrorKind, str | None] | None:
        """:meth:`check` with what it found in words, when there is more to say than the kind: a refusal's own
        detail (what is missing, what to do) or the driver's error. Health gives it as the reason."""
        conn = self._conn
        if conn is None:
            return ErrorKind.CLOSED, None
        if self.wal_removed():
            if conn.in_transaction:
                return ErrorKind.READONLY_DBMOVED, None  # (its COMMIT refuses; the rescue follows the rollback)
            lost = self.rescue_removed_wal()
            if lost is not None or self._conn is None:
                return ErrorKind.UNAVAILABLE, lost or self.refused  # commits are missing, or opening is refused
            conn = self._conn
        identity = _file_identity(self.path)
        if identity is None or identity != self._identity:
            # Deleted, renamed or replaced: the handle now points at a file nobody else sees.
            return ErrorKind.READONLY_DBMOVED, None
        try:
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            if conn.execute("PRAGMA query_only").fetchone()[0]:
                return ErrorKind.READONLY, None
        except Exception as exc:
            return classify(exc), str(exc)
        return None

    @property
    def identity(self) -> tuple[int, int] | None:
        """(device, inode) of the file this manager's connection last opened (kept after it closes)."""
        return self._identity

    def identity_at_path(self) -> tuple[int, int] | None:
        """(device, inode) of the file the path names now, or None when there is none."""
        return _file_identity(self.path)

    def reads_through_removed_index(self) -> bool:
        """Would a connection opened now in this process read the file at the path through a removed WAL's index?

        SQLite shares one WAL index per database file within a process, kept alive by every handle open on it.
        While a handle on a ``-wal`` removed from under this file stays open (one parked by
        :meth:`_park_unsaved_handle`, or one of a manager of this process that has not looked yet), a new
        connection here maps the frame numbers of the removed WAL onto whatever ``-wal`` is at the path now:
        a disk I/O error when that file is shorter, and otherwise *another page*, read without complaint as the
        one asked for (found by the data-loss machine: the rows of a user table read as the redo sequence
        registry). Another process builds its index from the files at the path and reads what is there.
        """
        identity = _file_identity(self.path)
        if identity is None:
            return False
        if any(entry[1] == identity for entry in list(_PARKED)):
            return True
        return any(m._identity == identity and m.wal_removed() for m in list(_MANAGERS))

    def file_moved(self) -> bool:
        """True when the path no longer names the file this connection opened (deleted, moved, replaced)."""
        if self._conn is None:
            return False
        # _file_identity() inlined: this runs before every autocommit write and every COMMIT.
        try:
            st = os.stat(self.path)
        except OSError:
            return self._identity is not None
        if (st.st_dev, st.st_ino) != self._identity:
            return True
        # Its -wal removed counts as moved too: a commit would go into the unlinked WAL, which no connection
        # opened since sees and which is lost unless this handle checkpoints it. The caller reopens, and
        # opening saves the old WAL first (rescue_removed_wal). (One stat more per write.)
        return self._conn_wal is not None and _file_identity(self.path + "-wal") != self._conn_wal

    def replaced_here(self) -> None:
        """This manager has just put another file at its path (a restore or a recovery): every other manager of
        this process on that path follows it on its next read.

        Reads check that the path still names their file only every ``identity_check_interval`` (a stat per
        read is not free), so a manager of another process may serve the replaced file for that long. In this
        process nothing needs guessing: the replacement is known the moment it happens, and a read right after
        it through a second manager must not serve the quarantined file (found by the data-loss machine: a
        recovery by one manager, then another manager's read within 50 ms served a database without a row
        another process had committed to the new file). Writes check the path before every commit already.
        """
        here = os.path.realpath(self.path)
        for other in list(_MANAGERS):
            if other is not self and os.path.realpath(other.path) == here:
                for hook in list(other.on_replaced_here):
                    hook()

    def index_removed(self) -> bool:
        """True when the ``-shm`` (WAL index) this connection opened is no longer the one beside the file.

        SQLite never removes or replaces the ``-shm`` while a connection has the database open in
        WAL mode; someone else did (a cleanup script). This process's connections keep the old,
        unlinked index mapped, while every other process builds a new one: two indexes of one
        WAL, and a commit here then overwrites WAL frames another process committed (measured:
        40 of 80 acknowledged rows gone, ``quick_check`` ok). A connection of this process cannot
        join the new index while any connection of its SQLite library in this process keeps the old
        one, so the runtime refuses instead of writing (see :meth:`refuse_after_index_removed`).
        """
        if self._conn is None or self._shm is None:
            return False  # no WAL index was open (rollback journal, exclusive locking): nothing to lose
        return _file_identity(self.path + "-shm") != self._shm

    def refuse_after_index_removed(self) -> None:
        """Refuse every use (UNAVAILABLE, the reason in health) and raise: see :meth:`index_removed`."""
        detail = (f"the WAL index {self.path + '-shm'!r} was removed while this process had the database open: "
                  "its connections and other processes now use different indexes of one WAL, and a commit here "
                  "would overwrite theirs; the runtime refuses to serve it. Stop every process using the "
                  "database, then `reliability recover` (it reports any acknowledged write it cannot restore)")
        log.error("%s", detail)
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                _keep_orphaned(conn)
            self.refuse(detail, "The database was disturbed while in use (its -shm file was removed). An "
                                "administrator must restart the services using it and run `reliability recover`.")
        raise DatabaseError(ErrorKind.UNAVAILABLE, detail)

    def file_replaced(self) -> bool:
        """True when the path names another file than the one this connection opened.

        Narrower than :meth:`file_moved`: a deleted or renamed file is still the real data and
        an open handle may keep reading it; a *replaced* one is not, and reads must follow the path.
        """
        if self._conn is None:
            return False
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        if (st.st_dev, st.st_ino) != self._identity:
            return True
        # Its -wal removed: reads must not go on through the handle on the removed file either (see file_moved).
        return self._conn_wal is not None and _file_identity(self.path + "-wal") != self._conn_wal


#: Connections whose WAL index was removed under them (see ConnectionManager.index_removed), never closed here.
_ORPHANED: list[sqlite3.Connection] = []


def _keep_orphaned(conn: sqlite3.Connection) -> None:
    """Keep ``conn`` open for the life of the process instead of closing it.

    Closing the last connection of this process on a database runs SQLite's last-user cleanup:
    when no other process has the file open, it checkpoints *with this connection's stale index*
    (which knows none of the frames other processes committed through the new one) and then
    deletes the ``-wal`` and the new ``-shm`` by name, and every one of those commits is gone
    (seen: 20 of 20). Open, it does nothing. Where the build allows it (``setconfig``, Python 3.12+)
    its checkpoint-on-close is switched off too, so that even the close at interpreter exit
    deletes nothing; elsewhere that last close keeps the hazard, which only a restart of the
    process before the other processes stop avoids (the refusal message says to restart them).
    """
    try:
        if conn.in_transaction:
            conn.rollback()  # nothing of ours is written through the stale index (before_commit refused it)
    except Exception:  # noqa: BLE001  # dbfault: no fault (a broken handle refuses even ROLLBACK: nothing to undo)
        pass
    setconfig = getattr(conn, "setconfig", None)
    option = getattr(sqlite3, "SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE", None)
    if setconfig is not None and option is not None:
        try:
            setconfig(option, True)
        except Exception:  # noqa: BLE001  # dbfault: no fault (an old SQLite without the option: kept open anyway)
            pass
    _ORPHANED.append(conn)


#: The two magic numbers of a WAL header (the low bit says in which byte order its checksums are).
_WAL_MAGIC = (0x377F0682, 0x377F0683)
_WAL_FORMAT = 3007000
_WAL_HEADER = 32
_WAL_FRAME_HEADER = 24


@dataclass(frozen=True)
class WalHeader:
    """What a ``-wal`` file's 32-byte header says (https://www.sqlite.org/fileformat.html#the_write_ahead_log).

    ``frames`` is True when the first frame carries the header's salts: only then can SQLite
    replay anything from the file (it stops at the first frame whose salts or checksum differ).
    """

    page_size: int
    checkpoint_seq: int
    salt1: int
    salt2: int
    frames: bool
    #: The header's checksum: the first frame's checksum continues from it.
    checksum: tuple[int, int] = (0, 0)
    #: The byte order the magic number names for every checksum in the file.
    big_endian: bool = False


def read_wal_header(path: str | os.PathLike[str]) -> WalHeader | None:
    """The header of the WAL at ``path``; None when there is none or SQLite would not accept it
    (short file, wrong magic or format version, header checksum mismatch): then nothing in it replays."""
    try:
        with open(path, "rb") as f:
            head = f.read(_WAL_HEADER + _WAL_FRAME_HEADER)
    except OSError:  # dbfault: no fault (no WAL at that path: the caller checks first, so only a race)
        return None
    if len(head) < _WAL_HEADER:
        return None
    magic, version, page_size, ckpt, salt1, salt2, sum1, sum2 = struct.unpack(">8I", head[:_WAL_HEADER])
    if magic not in _WAL_MAGIC or version != _WAL_FORMAT:
        return None
    if _wal_checksum(head[:24], big_endian=bool(magic & 1)) != (sum1, sum2):
        return None
    frames = len(head) == _WAL_HEADER + _WAL_FRAME_HEADER and struct.unpack(">2I", head[40:48]) == (salt1, salt2)
    return WalHeader(page_size, ckpt, salt1, salt2, frames, (sum1, sum2), bool(magic & 1))


def wal_damage(path: str | os.PathLike[str]) -> str | None:
    """What is damaged in the committed frames of the ``-wal`` beside the database ``path``, or None.

    SQLite checks a WAL frame's checksum only when it rebuilds the WAL index (``-shm``) from the file, after
    every connection to the database closed. While one stays open, connections read the frames through the
    index it holds without checking them, and SQLite's last close checkpoints them into the database file
    (checked for real: garbage written into the page data of a committed frame came back as an undecodable
    text value, ``quick_check`` passed, and nothing was left to tell it from data). A frame carrying the
    header's salts whose checksum fails, at or before a commit frame that carries them too, is that damage
    (a crash leaves at most a torn tail after the last commit, and a reused WAL's old frames carry other
    salts). Read with a plain ``open()``: SQLite takes no lock on the ``-wal``, so closing it drops none.
    """
    wal = os.fspath(path) + "-wal"
    header = read_wal_header(wal)
    if header is None or not header.frames:
        return None  # nothing in it replays: no frame is served from it either
    try:
        with open(wal, "rb") as f:
            f.seek(_WAL_HEADER)
            sums, frame, bad = header.checksum, 0, None
            while True:
                data = f.read(_WAL_FRAME_HEADER + header.page_size)
                if len(data) < _WAL_FRAME_HEADER + header.page_size:
                    return None
                frame += 1
                page, commit, s1, s2, c1, c2 = struct.unpack(">6I", data[:_WAL_FRAME_HEADER])
                if (s1, s2) != (header.salt1, header.salt2):
                    return None  # the end of this generation of the WAL
                if bad is None:
                    sums = _wal_checksum(data[:8] + data[_WAL_FRAME_HEADER:], big_endian=header.big_endian,
                                         start=sums)
                    if sums != (c1, c2):
                        bad = (frame, page)
                if bad is not None and commit:
                    return (f"frame {bad[0]} (page {bad[1]}) of {wal!r} fails its checksum, "
                            f"at or before commit frame {frame}: the WAL was damaged after those transactions "
                            "committed (the damaged page is served through the open connections' WAL index, and "
                            "a checkpoint would copy it into the database)")
    except OSError:  # dbfault: no fault (the -wal went since its header was read: nothing left to check)
        return None


def _wal_checksum(data: bytes, *, big_endian: bool, start: tuple[int, int] = (0, 0)) -> tuple[int, int]:
    # SQLite's WAL checksum: over pairs of 32-bit words, in the byte order the magic number names; each
    # frame's continues from the previous frame's (the first one's from the header's).
    words = struct.unpack((">" if big_endian else "<") + f"{len(data) // 4}I", data)
    s0, s1 = start
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def db_page_size(path: str, module: ModuleType = sqlite3) -> int | None:
    """The page size in a database file's header, or None when the file has no valid header yet.

    Read through SQLite (``immutable=1``: no lock taken, the WAL never looked at), never with a
    plain ``open()``: closing *any* descriptor of a file drops every POSIX lock this process holds
    on it, so a plain read here, while the runtime's other connections (a second manager, a
    reader) have the database open, silently released their SHARED locks. Another process then
    took itself for the last user of the database, checkpointed and deleted its ``-wal`` and
    ``-shm`` under them, and the next write through a connection still on the deleted WAL left a
    malformed database (issue #15). SQLite's own close defers closing while its connections hold
    locks on the file (for connections of the same SQLite library: pass the runtime's ``module``).
    """
    if not os.path.isfile(path) or os.path.getsize(path) < 100:
        return None  # empty (a new database) or shorter than a header: SQLite would read nothing
    uri = f"file:{pathname2url(os.path.abspath(path))}?mode=ro&immutable=1"
    try:
        conn = module.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    except module.Error:  # dbfault: no fault (vanished or not openable since the caller's stat: a race)
        return None
    try:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])
    except module.Error:  # dbfault: no fault (not a database: no header to compare with)
        return None
    finally:
        conn.close()


def _wal_left_behind(path: str, identity: tuple[int, int] | None,
                     wal: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """(device, inode, size, mtime) of the ``-wal`` at ``path`` when it is ``wal`` (the WAL a handle on the file
    ``identity`` uses) while another database file is at ``path``; else None. The fingerprint lets a later look
    tell that very file, untouched since, from one that took its inode number after it was freed."""
    try:
        db_st = os.stat(path)
        wal_st = os.stat(path + "-wal")
    except OSError:  # dbfault: no fault (no file or no -wal at the path: nothing was left behind beside another)
        return None
    if (db_st.st_dev, db_st.st_ino) == identity or (wal_st.st_dev, wal_st.st_ino) != wal:
        return None
    return (wal_st.st_dev, wal_st.st_ino, wal_st.st_size, wal_st.st_mtime_ns)


def set_aside_foreign_wal(path: str, wal_of: dict[tuple[int, int], tuple[int, int]] | None = None,
                          module: ModuleType = sqlite3,
                          left_by: tuple[int, int, int, int] | None = None) -> list[str]:
    """Move aside the ``-wal``/``-shm`` at ``path`` when they do not belong to the database file there.

    Called when the file at ``path`` is not the one the runtime had open. SQLite does not tie a WAL
    to its database file: opening a replaced database next to the old file's WAL replays the old
    frames into the new file (seen: the replaced database showed the old schema). But setting aside
    a WAL that *does* belong hides every row committed in it (seen: healing a ``replace`` fault put
    the original back with its WAL, and 50 of 50 committed rows vanished). What can be proved:

    * nothing replays from a WAL whose header SQLite rejects (magic, format, checksum) or whose
      first frame does not carry the header's salts: it is left alone, harmless either way;
    * ``left_by``, the fingerprint taken as the runtime dropped its handle on the file that was at ``path``
      before (:func:`_wal_left_behind`), proves the WAL is *that* file's, left behind when another file
      took its place: set aside. Decided first: an inode number recorded earlier can have been freed and
      given to this very file since (seen: a CI run where a replaced file was served through its
      predecessor's WAL, the operator's row lost), while the fingerprint was taken with the WAL held open;
    * the runtime's identity record ``wal_of`` (database inode -> WAL inode, taken while SQLite
      had both open: it never swaps a live database's WAL) proves a pair that moved away and
      back together, as a healed ``replace`` or ``rename`` does: kept;
    * a WAL whose page size differs from the database header's cannot be that database's (the
      page size cannot change in WAL mode): set aside.

    The salts and checkpoint sequence identify a WAL *generation*, not a database (a copied pair
    carries them along, and each WAL reset rewrites them in place), so they prove nothing more.
    For any other WAL the database file format has no link at all; it is set aside only when nothing
    has happened to it since the file at ``path`` arrived: its ctime (its last write *or rename*) before
    the file's ctime (set when it was moved or written into place). Equal times are one tick of the
    kernel's clock (two renames in one go are given the same ctime): a WAL renamed since its last write
    (its ctime after its mtime) moved along with the file and is kept; one whose last change was a write
    in that tick cannot be told from a writer of the old file (a crashed writer, its backup restored
    over it at once) and is set aside, as before. Neither written by a writer
    of this file nor moved along with it: a backup restored over a crashed file leaves that file's WAL
    so. Replaying a foreign WAL corrupts the file for good, while a WAL set aside is only renamed
    (``*.stale-<pid>-<ns>``), never deleted. The WAL's ctime, not its mtime: a pair restored and then
    moved away and back (or into place, the database first) has a WAL last *written* before the
    database's rename, and judged by the mtime every row committed in it was hidden (found by a fuzzer
    of replaced, restored and renamed files: 23 of 200 sequences lost rows). Returns the new names of
    what was moved.
    """
    wal = path + "-wal"
    try:
        wal_st = os.stat(wal)
        db_st = os.stat(path)
    except OSError:
        return []
    header = read_wal_header(wal)
    if header is None or not header.frames:
        return []
    if left_by is not None and left_by == (wal_st.st_dev, wal_st.st_ino, wal_st.st_size, wal_st.st_mtime_ns):
        why = "it is the WAL of the file that was at this path before (the runtime's connection used it)"
    elif wal_of and wal_of.get((db_st.st_dev, db_st.st_ino)) == (wal_st.st_dev, wal_st.st_ino):
        log.info("the WAL beside %s is the one SQLite used with this very file: kept", path)
        return []
    else:
        db_page = db_page_size(path, module)
        if db_page is not None and db_page != header.page_size:
            why = f"its page size {header.page_size} is not the database's {db_page}"
        elif wal_st.st_ctime_ns < db_st.st_ctime_ns or (
                wal_st.st_ctime_ns == db_st.st_ctime_ns and wal_st.st_mtime_ns == wal_st.st_ctime_ns):
            why = "it was last written or moved before this database file arrived"
        else:
            return []  # written or moved since this file arrived: a writer of this file uses it, or it came along
    suffix = f".stale-{os.getpid()}-{time.time_ns()}"
    moved = []
    for extra in ("-wal", "-shm"):
        try:
            os.rename(path + extra, path + extra + suffix)
            moved.append(path + extra + suffix)
        except OSError:
            pass
    log.warning("moved aside the WAL beside the replaced database file %s (%s; kept as *%s)", path, why, suffix)
    return moved


def _closed_under_its_manager(conn: Any) -> bool:
    """Was this handle closed under its manager (a fault, an owner's teardown)? Then it holds no lock and no
    index, and asking it anything raises the driver's raw ``ProgrammingError`` (seen: another manager's rescue
    of a removed ``-wal`` failed with it)."""
    try:
        conn.in_transaction  # noqa: B018  (the cheapest call a closed handle refuses)
    except Exception:  # only a closed handle refuses it (the disconnect fault's close mode reaches it)
        return True
    return False


def _refuse_a_second_index(path: str) -> None:
    """Refuse (BUSY: retried) to open a WAL database whose ``-shm`` is gone while another process holds it open.

    In WAL mode every open connection holds a SHARED lock on the database file and maps the ``-shm`` (the
    index of the ``-wal``). With the ``-shm`` (and ``-wal``) removed under those connections, SQLite opening
    here builds a second index of its own from a new, empty WAL: it serves the database as of the last
    checkpoint as if nothing were missing and commits into a history the running connections never see
    (checked for real: tests/test_wal_removed_live.py). A rollback-journal reader mid-transaction shows the
    same locks without a ``-shm``: waiting is right for it too. The holder's runtime saves its WAL at its next
    call (ConnectionManager.rescue_removed_wal), which starts a new ``-shm`` and ends the wait.
    """
    if os.path.exists(path + "-shm"):
        return
    identity = _file_identity(path)
    if identity is None:
        return
    holders = _lock_holders(identity)
    if holders:
        raise DatabaseError(ErrorKind.BUSY, f"the -shm of {path!r} is missing while process(es) "
                            f"{', '.join(map(str, sorted(holders)))} hold the database open: opening it now would "
                            "serve the database as of its last checkpoint and split its history (a -shm removed "
                            "under running connections); waiting for them to save their WAL or close")


#: Every ConnectionManager of this process (see ConnectionManager._others_hold_the_file).
_MANAGERS: weakref.WeakSet[ConnectionManager] = weakref.WeakSet()
#: Handles on a removed -wal kept open so that their close checkpoints nothing: (path, database identity, handle).
_PARKED: list[tuple[str, tuple[int, int], Any]] = []


#: Why no connection opens in this process while a handle of it is parked on the file at the path (see _parked_on).
_READS_THROUGH_PARKED = (
    "the -wal of {path!r} was removed under a connection of this process that is kept open, unsaved, until a "
    "recovery (another manager's, refused); every connection opened in this process meanwhile reads the database "
    "through that removed WAL's index, i.e. other pages than the file's (and a write would go over another "
    "process's WAL frames): `reliability recover` restores the newest verified backup and replays every redo journal")


def _parked_on(path: str) -> bool:
    """Is a handle parked (:meth:`ConnectionManager._park_unsaved_handle`) on the file the path names now?

    SQLite shares one WAL index per database file within a process, and the parked handle keeps the removed WAL's
    alive: a connection opened here maps its frame numbers onto the ``-wal`` at the path (see
    :meth:`ConnectionManager.reads_through_removed_index`). Opened anyway, a second manager started on pages of
    another table (marking the file damaged for every process) and took its anchoring backup of that view
    (found settling a suspected false alarm: tests/test_s26_parked_recovery.py)."""
    if not _PARKED:
        return False
    now = _file_identity(path)
    return now is not None and any(entry[0] == path and entry[1] == now for entry in list(_PARKED))


def _close_parked(path: str) -> None:
    """Close the parked handles of ``path`` whose database file is no longer the one there."""
    now = _file_identity(path)
    for entry in list(_PARKED):
        if entry[0] == path and entry[1] != now:
            _PARKED.remove(entry)
            try:
                entry[2].close()  # (a file no longer at the path: SQLite skips the checkpoint and the delete)
            except Exception:  # dbfault: no fault (close() fails only on misuse)
                pass


def _lock_holders(identity: tuple[int, int]) -> set[int]:
    """The other processes holding a POSIX lock on the file ``identity`` (Linux: ``/proc/locks``; elsewhere
    nothing can tell, so none). SQLite's connections in WAL mode hold a SHARED lock on the database file for as
    long as they are open. Read from the kernel's table: opening the database file to ask (``F_GETLK``) would
    drop this process's own locks on it at the close."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            table = locks.read()
    except OSError:  # dbfault: no fault (not Linux)
        return set()
    dev, ino = identity
    where = f"{os.major(dev):02x}:{os.minor(dev):02x}:{ino}"
    mine = os.getpid()
    holders = set()
    for line in table.splitlines():
        fields = line.replace("->", "").split()
        if len(fields) > 5 and fields[1] == "POSIX" and fields[5] == where and fields[4].isdigit() \
                and int(fields[4]) != mine:
            holders.add(int(fields[4]))
    return holders


_file_identity = files.file_identity

