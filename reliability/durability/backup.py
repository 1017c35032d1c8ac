"""Verified online backups: one-step copy, ``integrity_check``, fsync, atomic rename, rotation.

Example::

    info = db.backup()           # BackupInfo(path='app.db.backups/backup-20250101T120000.000001Z.sqlite', ...)
    db.backups()                 # newest first, each with created_at, size, verified
    db.restore()                 # put the newest verified backup back in place

Why the one-step form: ``Connection.backup(pages=N)`` restarts whenever another connection
writes, so under steady writes it never finishes (FAULTS.md measured 44k restarts in 10 s);
``pages=-1`` copies everything under one read lock in a fraction of a second.

A backup only becomes visible under its final name after it passed ``PRAGMA integrity_check``
and was fsynced. The full check, not ``quick_check``: an index entry that no longer matches its row
passes ``quick_check``, and a backup that copied one would bring the damage back at every restore (on
a 78 MB file the full check took 0.25 s beside quick_check's 0.07 s and the copy's 0.15 s). Its
manifest (``<backup>.json``, written first) records size, time and the redo-journal sequence it
covers. A copy that fails verification is deleted and reported.
Backups and manifests are created with mode 0600 in a 0700 directory.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import logging
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .. import files
from ..errors import DatabaseError, ErrorKind, classify, sqlite_errors
from ..health import cut_off_problems, persistent_ioerr, retryable_in_maintenance, run_maintenance
from ..redo import WRITERS_TABLE, ensure_sequence_table, fsync_dir, prepare_backup, set_sequence
from ..retry import RetryExhausted, RetryPolicy
from .parts import RuntimeParts, WriteBlock, maintenance

log = logging.getLogger("reliability.backup")
#: The runtime's durability records (re-anchoring) keep the logger name they always had.
_durability_log = logging.getLogger("reliability.recovery")

#: The table inside each backup recording the last redo-journal sequence the copy contains.
REDO_STATE_TABLE = "_reliability_redo_state"
_PREFIX = "backup-"
#: Seconds after which a temporary backup copy nobody finished is removed (see _prepare_directory).
STALE_TMP_AGE = 3600.0
_SUFFIX = ".sqlite"


class BackupError(DatabaseError):
    """A backup could not be made, verified or restored; nothing was replaced."""


@dataclass(frozen=True)
class BackupInfo:
    """One backup file: where, when, how big, and whether it passed verification."""

    path: str
    created_at: float
    size: int
    verified: bool
    last_seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


def resolve_backup_name(directory: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """The backup file ``path`` names, the one rule of every entry point (``db.restore(path)``, ``reliability
    restore PATH``): an absolute path as given; a relative one from the working directory or in the backup
    ``directory``, whichever holds a file by that name.

    When both do and they are different files, the name is refused rather than one taken silently: a restore
    replaces the database, so which backup it puts back must not depend on where the command happened to run.
    The error names both files; give the full path of the one meant.

    :raises BackupError: ``cantopen`` when no file has that name, ``misuse`` when two different files do.
    """
    given = Path(path)
    found: list[Path] = []
    for candidate in (given,) if given.is_absolute() else (given, Path(directory) / given):
        if candidate.is_file() and all(candidate.resolve() != f.resolve() for f in found):
            found.append(candidate)
    if not found:
        raise BackupError(ErrorKind.CANTOPEN, f"backup {str(path)!r} does not exist",
                          user_message=f"The backup {str(path)!r} does not exist.")
    if len(found) > 1:
        here, there = (str(f.absolute()) for f in found)
        raise BackupError(ErrorKind.MISUSE, f"backup name {str(path)!r} is ambiguous: both {here!r} (from the "
                          f"working directory) and {there!r} (in the backup directory) exist and are different "
                          "files; give the full path of the one to restore",
                          user_message=f"The backup name {str(path)!r} matches two different files; give the full "
                                       "path of the one to restore.")
    return found[0]


_BUSY_STEPS = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED: what a backup step answers while another connection locks


def _stop_when_locked(status: int, remaining: int, total: int) -> None:
    """``Connection.backup`` progress callback: end this attempt on a step still BUSY/LOCKED.

    The step already waited the source connection's busy timeout inside SQLite (measured: a step
    against an EXCLUSIVE lock returns BUSY after exactly ``timeout``), and Python's ``backup()``
    would repeat it for ever. Whether to try again is the shared retry policy's decision
    (``BackupTaker.backup``), not a second deadline loop here.
    """
    if status in _BUSY_STEPS:
        raise BackupError(ErrorKind.BUSY, "the database stayed locked by another connection beyond the busy "
                                          "timeout; no backup was taken (retried later)")


class BackupManager:
    """Makes, lists, rotates and restores the backups of one database.

    :param directory: where backups live (``config.backup_directory``).
    :param keep: how many verified backups to keep (the newest is never deleted).
    :param busy_timeout: seconds a verification waits on a lock held by another connection
        (``config.busy_timeout_ms``; a copy waits the source connection's own busy timeout).
    :param policy: the shared retry policy; a backup whose verification meets a lock is checked
        again under it, and one that stays locked is skipped, never marked bad.
    """

    def __init__(self, directory: str | os.PathLike[str], keep: int = 5, module: Any = sqlite3,
                 busy_timeout: float = 5.0, policy: RetryPolicy | None = None) -> None:
        self.directory = Path(directory)
        self.keep = max(1, keep)
        self.busy_timeout = busy_timeout
        self.policy = policy
        #: The DB-API module of the source connections: the backup API only copies between
        #: connections of the same SQLite library.
        self.module = module
        #: Why the last backup failed (None after a success).
        self.last_error: str | None = None

    # -- making --------------------------------------------------------------------------------
    def create(self, source: sqlite3.Connection, *, last_seq: int | None = None) -> BackupInfo:
        """Copy ``source`` (a live connection, outside any transaction) into a new verified backup.

        ``last_seq`` (the redo journal's sequence at copy time) is recorded inside the copy so
        replay after a restore skips what the backup already holds.
        """
        try:
            self._prepare_directory()
        except OSError as exc:  # dbfault: no fault (backup_dir names a file, a link or an unwritable place)
            self.last_error = (f"the backup directory {str(self.directory)!r} (RELIABILITY_BACKUP_DIR) is not "
                               f"usable: {exc.strerror or exc}")
            log.error("backup failed: %s", self.last_error)
            raise BackupError(ErrorKind.CANTOPEN, self.last_error, user_message=(
                "Backups cannot be made: the backup directory (RELIABILITY_BACKUP_DIR) is not usable. "
                "The database keeps working; an administrator must fix the setting.")) from exc
        created = time.time()
        final = self._new_path(created)
        tmp = final.with_name("." + final.name + ".tmp")
        try:
            _create_private(tmp)
            dest = self.module.connect(str(tmp), isolation_level=None)
            try:
                # The copy is fsynced once below before it gets its name: SQLite's own syncs would only
                # add time. mmap makes the check read the fresh pages without copying them again.
                dest.execute("PRAGMA synchronous = OFF")
                dest.execute(f"PRAGMA mmap_size = {1 << 30}")
                # pages=-1: one step, finishes under steady writes. Python's backup() retries a BUSY
                # or LOCKED step for ever (found with an exclusive lock held in rollback mode, while
                # the manager's lock was held too): the progress callback ends the attempt.
                source.backup(dest, progress=_stop_when_locked, sleep=0.05)
                # A self-contained file: no -wal beside it, so copying or renaming it is safe.
                dest.execute("PRAGMA journal_mode = DELETE")
                if last_seq is not None:
                    record_sequence(dest, last_seq)
                else:  # the global sequence the copied snapshot itself holds (journals of every process)
                    last_seq = read_sequence(dest)
                problems = check_pragma(dest)
            finally:
                dest.close()
            if problems:
                raise BackupError(ErrorKind.CORRUPT, "the backup copy failed integrity_check and was discarded: "
                                  + "; ".join(problems[:5]))
            _fsync_file(tmp)
            size = tmp.stat().st_size
            info = BackupInfo(str(final), created, size, True, last_seq)
            _write_manifest(final, info)
            os.replace(tmp, final)
            fsync_dir(self.directory)
        except BaseException as exc:
            _remove_quietly(tmp, Path(str(tmp) + "-journal"), _manifest_path(final))
            err = exc if isinstance(exc, BackupError) else BackupError(
                classify(exc),  # UNKNOWN for anything that is not a database error
                f"backup to {str(final)!r} failed: {exc}")
            self.last_error = err.detail
            log.error("backup failed: %s", err.detail)
            if isinstance(exc, Exception):
                raise err from exc
            raise
        self.last_error = None
        log.info("backup %s verified (%d bytes)", final, size)
        self.rotate()
        return info

    def _prepare_directory(self) -> None:
        files.ensure_private_dir(self.directory, what="backup directory (backup_dir)")  # never a planted link
        for stale in self.directory.glob(f".{_PREFIX}*.tmp*"):
            # A copy left by a crash mid-backup: never verified. Only an old one: another process on
            # this database may be writing its own copy right now (each manager takes backups).
            try:
                if time.time() - stale.stat().st_mtime > STALE_TMP_AGE:
                    _remove_quietly(stale)
            except OSError:  # dbfault: no fault (gone already: its owner finished or removed it)
                pass

    def _new_path(self, created: float) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(created)) + f".{int(created % 1 * 1e6):06d}Z"
        path = self.directory / f"{_PREFIX}{stamp}{_SUFFIX}"
        n = 1
        while path.exists() or _manifest_path(path).exists():
            path = self.directory / f"{_PREFIX}{stamp}-{n}{_SUFFIX}"
            n += 1
        return path

    # -- listing -------------------------------------------------------------------------------
    def list(self) -> list[BackupInfo]:
        """Every backup in the directory, newest first. ``verified`` is False for a file whose
        manifest is missing or no longer matches its size."""
        if not self.directory.is_dir() or self.directory.is_symlink():  # never restore from a planted link
            return []
        out = []
        for path in self.directory.glob(f"{_PREFIX}*{_SUFFIX}"):
            try:  # one stat: another process's rotation may remove the file between two
                st = path.stat()
            except OSError:
                continue
            size = st.st_size
            manifest = _read_manifest(path)
            if manifest is None:
                out.append(BackupInfo(str(path), st.st_mtime, size, False, None))
                continue
            verified = bool(manifest.get("verified")) and manifest.get("size") == size
            seq = manifest.get("last_seq")
            out.append(BackupInfo(str(path), float(manifest.get("created_at", 0.0)), size, verified,
                                  int(seq) if seq is not None else None))
        out.sort(key=lambda b: (b.created_at, b.path), reverse=True)
        return out

    def has_any(self) -> bool:
        """True when the directory holds any backup or manifest, verified or not (a trace of history)."""
        if not self.directory.is_dir():
            return False
        return any(self.directory.glob(f"{_PREFIX}*{_SUFFIX}")) or any(self.directory.glob(f"{_PREFIX}*.json"))

    def newest_verified(self) -> BackupInfo | None:
        """The newest backup that passed verification, or None."""
        return next((b for b in self.list() if b.verified), None)

    def find(self, path: str | os.PathLike[str]) -> BackupInfo:
        """The :class:`BackupInfo` for ``path`` (a name in the backup directory or any path; see
        :func:`resolve_backup_name`: a relative name two different files answer to is refused)."""
        candidate = resolve_backup_name(self.directory, path)
        for info in self.list():
            if Path(info.path).resolve() == candidate.resolve():
                return info
        return BackupInfo(str(candidate), candidate.stat().st_mtime, candidate.stat().st_size, False,
                          read_sequence(candidate, self.module))

    def verify(self, path: str | os.PathLike[str]) -> builtins.list[str]:
        """:func:`verify_file` under this manager's retry policy and busy timeout ([] when sound).

        :raises DatabaseError: when a lock or I/O error outlasted the policy: no verdict either way.
        """
        return verify_file(path, policy=self.policy, timeout=self.busy_timeout, module=self.module)

    def mark_unverified(self, path: str | os.PathLike[str], reason: str) -> None:
        """Record that a backup failed a later check, so it is never chosen as the latest again."""
        backup = Path(path)
        manifest = _read_manifest(backup)
        if manifest is None:
            return
        manifest.update(verified=False, check=reason)
        info = BackupInfo(str(backup), float(manifest.get("created_at", 0.0)), int(manifest.get("size", 0)),
                          False, manifest.get("last_seq"))
        _write_manifest(backup, info, check=reason)
        fsync_dir(backup.parent)  # else a power loss brings the old manifest (verified) back
        log.error("backup %s failed re-verification and is no longer used: %s", backup, reason)

    # -- rotating ------------------------------------------------------------------------------
    def rotate(self) -> builtins.list[str]:  # (`list` here is the method above)
        """Delete verified backups beyond ``keep`` (oldest first); returns the deleted paths.

        The newest verified backup is never deleted, and unverified files are left for a human.
        """
        verified = [b for b in self.list() if b.verified]
        deleted = []
        for info in verified[self.keep:]:
            _remove_quietly(Path(info.path), _manifest_path(Path(info.path)))
            deleted.append(info.path)
        if deleted:  # else a power loss brings them back: more than `keep` again
            fsync_dir(self.directory)
        return deleted


class BackupTaker:
    """The runtime's backups: take one now (under the runtime's lock, outside any transaction), re-anchor
    the redo journal after a change it did not see. Restore lives with recovery (one install path).

    :param parts: the runtime's parts (the owned redo journal is ``parts.redo``).
    :param block: the write block (lifted on the backup's connection while the sequence is recorded).
    :param store: the backup files (:class:`BackupManager`).
    """

    def __init__(self, parts: RuntimeParts, block: WriteBlock, store: BackupManager) -> None:
        self.parts = parts
        self.block = block
        self.store = store
        newest = store.newest_verified()
        if newest is not None:
            parts.monitor.last_backup_at = newest.created_at

    @maintenance("backup")
    def backup(self) -> BackupInfo:
        """Take a verified backup now (under the runtime's lock, outside any transaction)."""
        parts = self.parts
        m = parts.monitor
        module = parts.connections.module
        with parts.lock:
            if parts.transactions.depth:
                raise BackupError(ErrorKind.MISUSE, "backup() cannot run inside a transaction: "
                                  "the copy would include uncommitted changes")
            if parts.connections.in_transaction():
                raise BackupError(ErrorKind.MISUSE, "backup() cannot run while a transaction begun with "
                                  "execute('BEGIN') is open: COMMIT or ROLLBACK it first")
            redo = parts.redo

            def open_for_backup() -> tuple[Any, int | None]:
                # The file at the path: after another process's recovery or restore this manager's handle
                # may still be on the file set aside, and a copy of that is no backup of the database.
                conn = parts.connections.connection_at_path()
                if redo is None:
                    return conn, None
                # The write block (an untrusted schema: query_only) refuses the application's writes, not
                # the runtime's own bookkeeping: the backup before a migration must record the sequence too.
                conn.execute("PRAGMA query_only = 0")
                try:  # the copy must carry the global sequence (every process's journal continues from it)
                    ensure_sequence_table(conn)
                except module.Error as exc:  # dbfault: no fault (a read-only file; a lock is retried)
                    self.block.apply(conn)
                    if retryable_in_maintenance(exc):
                        raise  # a lock says nothing about the file: retried, never taken for a read-only file
                    return conn, redo.seq  # a read-only file: the best this process knows
                return conn, None

            try:
                try:
                    # Another process opening the database at this moment holds it for a few milliseconds (no
                    # -shm yet, see connection._refuse_a_second_index): retried under the shared policy like the
                    # copy below. Both steps are idempotent.
                    conn, seq = run_maintenance(open_for_backup, parts.policy,
                                                "opening the database and its sequence table to back it up")
                except Exception as exc:
                    raise BackupError(parts.errors.wrap(exc, log=False).kind,
                                      f"cannot open the database to back it up: {exc}") from exc
                conn.execute("PRAGMA query_only = 0")
                try:
                    # (Then the commits of a manager committing alone, this one or another: reliability.redo.)
                    try:
                        prepare_backup(conn, parts.config.redo_journal_file, redo)
                    except module.Error as exc:  # dbfault: no fault (read-only, busy or damaged file)
                        raise BackupError(parts.errors.wrap(exc, log=False).kind, "cannot record the sequence of "
                                          "a manager committing alone before the copy (it would be too old): "
                                          f"{exc}") from exc
                finally:
                    self.block.apply(conn)
                try:
                    # A lock or one-off I/O error is no reason to give up (nor a verdict on the copy):
                    # the shared policy retries; the error that outlasts it is reported as it is.
                    # (seq None: the copy's own sequence, read from the copied snapshot, reliability.redo.)
                    info = parts.policy.call(lambda: self.store.create(conn, last_seq=seq),
                                             should_retry=retryable_in_maintenance)
                except RetryExhausted as exc:
                    raise exc.last from exc.last.__cause__
            except DatabaseError as exc:
                m.last_backup_error = exc.detail
                raise
            if redo is not None and info.last_seq is not None:
                redo.reset(info.last_seq)
        m.last_backup_at = info.created_at
        m.last_backup_error = None
        return info

    def reanchor(self, why: str) -> None:
        """Take a backup after ``why`` (DDL, a restore, a recovery) so the journal continues from it; when
        none can be taken, the journal says so (health) instead of replaying past what it never saw."""
        try:
            self.backup()
        except DatabaseError as exc:
            redo = self.parts.redo
            if redo is not None:
                redo.reset(redo.seq)
                redo.error = f"{why} but no backup covers it yet ({exc.detail}); recovery cannot replay past it"
            _durability_log.error("could not re-anchor the redo journal after %s: %s", why, exc.detail)


# -- single-file helpers (used by restore and recovery) ----------------------------------------------
def check_pragma(conn: sqlite3.Connection, *, full: bool = True) -> list[str]:
    """Problems reported by ``PRAGMA integrity_check`` (``quick_check`` when not ``full``); [] when ok.

    A lock or an I/O error that may pass is raised, not reported: it is no integrity result
    (the caller retries, see :func:`~reliability.health.run_maintenance`).
    """
    pragma = "integrity_check" if full else "quick_check"
    try:
        rows = conn.execute(f"PRAGMA {pragma}").fetchall()
    except sqlite_errors() as exc:  # conn may come from the runtime's sqlean/pysqlite3
        if retryable_in_maintenance(exc):
            raise
        return [f"{pragma} failed: {exc} ({classify(exc)})"]
    problems: list[str] = []
    for (row,) in rows:
        if row != "ok":
            problems += [line for line in str(row).splitlines() if line and not line.startswith("*** in database")]
    return problems


def verify_file(path: str | os.PathLike[str], *, policy: RetryPolicy | None = None,
                timeout: float = 5.0, module: ModuleType | None = None) -> list[str]:
    """``integrity_check`` (and a size in whole pages) of a database file opened read-only, by ``module`` (the
    runtime's SQLite build; default the stdlib's: an older SQLite may not parse a schema a newer one wrote);
    [] when it is sound.

    Only a real result is returned: a lock held on the file (another process reading or
    restoring it) or a one-off I/O error is retried under ``policy``; when it outlasts the
    policy a :class:`DatabaseError` is raised, so no caller can take it for a damaged file.
    An I/O error that persists means the file cannot be read, and is reported as a problem.
    """

    def once() -> list[str]:
        try:
            conn = (module or sqlite3).connect(f"file:{Path(path).resolve().as_posix()}?mode=ro", uri=True,
                                               timeout=timeout)
        except sqlite_errors() as exc:
            if retryable_in_maintenance(exc):
                raise
            return [f"cannot open {str(path)!r}: {exc}"]
        try:
            # (a copy cut inside its last page passes every PRAGMA: see cut_off_problems)
            return check_pragma(conn) + cut_off_problems(str(path), conn.execute("PRAGMA page_size").fetchone()[0])
        finally:
            conn.close()

    try:
        return run_maintenance(once, policy, f"verifying backup {str(path)!r}")
    except DatabaseError as err:
        if not persistent_ioerr(err):
            raise
        return [f"integrity_check failed: {err.detail} (ioerr)"]


def record_sequence(conn: sqlite3.Connection, seq: int) -> None:
    """Store ``seq`` as the last applied redo sequence in ``conn``'s database (autocommit or in a txn)."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS {REDO_STATE_TABLE} "
                 "(id INTEGER PRIMARY KEY CHECK (id = 1), last_seq INTEGER NOT NULL)")
    conn.execute(f"INSERT OR REPLACE INTO {REDO_STATE_TABLE} (id, last_seq) VALUES (1, ?)", (seq,))
    set_sequence(conn, seq)  # the global sequence (reliability.redo) continues from here too


def read_sequence(path_or_conn: str | os.PathLike[str] | sqlite3.Connection,
                  module: ModuleType | None = None) -> int | None:
    """The redo sequence recorded in a database (None when it has none); a path is opened by ``module``."""
    # A path is str or path-like; anything else is a connection of whichever build the runtime uses.
    conn: Any
    own = isinstance(path_or_conn, (str, os.PathLike))
    if isinstance(path_or_conn, (str, os.PathLike)):
        conn = (module or sqlite3).connect(f"file:{Path(path_or_conn).resolve().as_posix()}?mode=ro", uri=True)
    else:
        conn = path_or_conn
    try:
        try:
            row = conn.execute(f"SELECT last_seq FROM {REDO_STATE_TABLE} WHERE id = 1").fetchone()
        except sqlite_errors():  # dbfault: no fault (no such table: a database never journaled)
            row = None
        try:  # the global sequence of the multi-process journals (reliability.redo)
            top = conn.execute(f"SELECT max(seq) FROM {WRITERS_TABLE}").fetchone()
        except sqlite_errors():  # dbfault: no fault (no such table: journaled by an older version or never)
            top = None
        values = [int(r[0]) for r in (row, top) if r and r[0] is not None]
        return max(values) if values else None
    finally:
        if own:
            conn.close()


def sidecar_paths(db_path: str | os.PathLike[str]) -> list[Path]:
    """The database file and the files SQLite keeps beside it (``-wal``, ``-shm``, ``-journal``)."""
    base = str(db_path)
    return [Path(base), Path(base + "-wal"), Path(base + "-shm"), Path(base + "-journal")]


def move_aside(db_path: str | os.PathLike[str], label: str) -> list[str]:
    """Rename the database and its ``-wal``/``-shm``/``-journal`` to ``<db>.<label>-<time>[-wal…]``.

    Nothing is deleted: the renamed set can still be opened and inspected. Returns the new paths.
    """
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"
    target = f"{db_path}.{label}-{stamp}"
    n = 1
    while Path(target).exists():
        target = f"{db_path}.{label}-{stamp}-{n}"
        n += 1
    moved = []
    for src, suffix in zip(sidecar_paths(db_path), ("", "-wal", "-shm", "-journal"), strict=True):
        if src.exists():
            os.replace(src, target + suffix)
            moved.append(target + suffix)
    fsync_dir(Path(db_path).resolve().parent)
    return moved


def install(prepared: str | os.PathLike[str], db_path: str | os.PathLike[str]) -> None:
    """Atomically rename a prepared, fsynced database file to ``db_path`` (its sidecars must be gone)."""
    for stale in sidecar_paths(db_path)[1:]:
        if stale.exists():
            # A -wal left beside a restored file would be replayed into it and corrupt it.
            raise BackupError(ErrorKind.MISUSE, f"{str(stale)!r} still exists; move it aside before installing")
    os.replace(prepared, db_path)
    fsync_dir(Path(db_path).resolve().parent)


def copy_for_install(backup: str | os.PathLike[str], db_path: str | os.PathLike[str]) -> Path:
    """Copy a backup next to the database (same filesystem, so the final rename is atomic)."""
    tmp = Path(f"{db_path}.restore-tmp")
    _remove_quietly(tmp, Path(str(tmp) + "-journal"), Path(str(tmp) + "-wal"), Path(str(tmp) + "-shm"))
    _create_private(tmp)
    with open(backup, "rb") as src, open(tmp, "r+b") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return tmp


def fsync_file(path: str | os.PathLike[str]) -> None:
    """fsync one file's contents."""
    _fsync_file(Path(path))


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_private(path: Path) -> None:
    os.close(files.create_temp(path, what="backup temporary"))  # O_EXCL | O_NOFOLLOW, 0600


def _manifest_path(backup: Path) -> Path:
    return backup.with_name(backup.name + ".json")


def _write_manifest(backup: Path, info: BackupInfo, check: str = "integrity_check ok") -> None:
    path = _manifest_path(backup)
    tmp = path.with_name("." + path.name + ".tmp")
    fd = files.create_temp(tmp, what="backup manifest temporary")
    try:
        body = dict(info.to_dict(), path=Path(info.path).name, check=check)
        os.write(fd, json.dumps(body, sort_keys=True).encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read_manifest(backup: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(_manifest_path(backup).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _remove_quietly(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # dbfault: no fault (unlink refused: read-only mount/permissions; tests run as root)
            log.warning("could not remove %s: %s", path, exc)
