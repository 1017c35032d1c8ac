"""Durability for a :class:`~reliability.manager.DatabaseManager`: backups, redo journal, schema trust,
scheduled integrity checks, and corruption recovery that loses no acknowledged write.

Recovery (``db.recover()``, or automatic when corruption is detected):

1. close the runtime's connection;
2. pick the newest backup that was verified when made *and* still passes ``quick_check``;
3. copy it beside the database and replay the transactions of every process's redo journal
   (merged by the global commit sequence, see :mod:`reliability.redo`) whose sequence is above
   the one recorded in the backup, in order, in batches; each batch records the last applied
   sequence in the same transaction, so replay is idempotent (a recovery interrupted half-way
   can simply run again). A sequence with no record anywhere (a journal cut short, deleted or
   damaged) is reported with ``ok=False``, and replay stops before it;
4. fsync the prepared file, rename the damaged database with its ``-wal``/``-shm`` to
   ``<db>.quarantine-<time>`` (never deleted), rename the prepared file into place;
5. reopen, then take a fresh backup so the journal starts over from it.

What "no acknowledged write lost" means here depends on ``synchronous`` (see
:mod:`reliability.redo`): FULL/EXTRA survive power loss, NORMAL/OFF survive a process crash.
The :class:`RecoveryReport` lists anything that could not be brought back (a journal gap, a
damaged journal line, a statement that failed on replay) and then ``ok`` is False.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar

from .. import files
from ..errors import DatabaseError, ErrorKind, RecoveryAction
from ..health import IntegrityReport, Scheduler, check_integrity, retryable_in_maintenance, run_maintenance
from ..recovered_elsewhere import RECOVERED_BY_ANOTHER, recovered_by_another
from ..redo import (
    WRITERS_TABLE,
    JournalState,
    RedoJournal,
    committed_by_slot,
    ensure_sequence_table,
    journal_files,
    plan_replay,
    prepare_backup,
    read_committed,
    read_journal,
    reconcile_orphans,
    register_unjournaled,
    set_sequence,
    slot_path,
    unjournaled_writers,
    unregister_unjournaled,
)
from ..retry import RetryExhausted, RetryPolicy
from ..schema import (
    Migration,
    MigrationError,
    MigrationResult,
    SchemaReport,
    SchemaValidator,
    applied_versions,
    apply_migrations,
    coerce_migrations,
    has_user_data,
    revert_migrations,
)
from .backup import (
    BackupError,
    BackupInfo,
    BackupManager,
    copy_for_install,
    fsync_file,
    install,
    move_aside,
    read_sequence,
    record_sequence,
)

try:  # POSIX; elsewhere recoveries in two processes are not serialized (said in install_lock)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from ..ports import DurabilityHost

log = logging.getLogger("reliability.recovery")

#: Journal entries replayed per transaction (fewer fsyncs; a failing batch is redone one by one).
REPLAY_BATCH = 500
#: After a failed automatic recovery, wait this long before trying again on the next error.
AUTO_RECOVERY_COOLDOWN = 10.0
#: Seconds between background retries of a startup schema check a lock kept from running.
SCHEMA_RECHECK_INTERVAL = 1.0


@dataclass(frozen=True)
class RecoveryReport:
    """What a recovery did. ``ok`` means the database is back and no journaled write is missing."""

    ok: bool
    quarantined: list[str]
    backup: str | None
    replayed: int
    duration: float
    problems: list[str] = field(default_factory=list)
    reason: str = ""
    #: Set when nothing was done because another process had recovered the database meanwhile.
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = dataclasses.asdict(self)
        data["duration"] = round(self.duration, 6)
        return data


F = TypeVar("F", bound=Callable[..., Any])


def _maintenance(kind: str) -> Callable[[F], F]:
    """Wrap a maintenance operation (migration, backup, check, recovery) like a statement.

    It gets an operation id; a raw driver error becomes a logged :class:`DatabaseError`
    (never a bare ``sqlite3`` exception to the caller); a DatabaseError raised inside is
    logged with that id; and the operation log gets its one record.
    """

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def run(self: Durability, *args: Any, **kwargs: Any) -> Any:
            db = self.db
            t0 = perf_counter()
            try:
                result = method(self, *args, **kwargs)
            except DatabaseError as err:
                if not err.operation_id:
                    err.operation_id = db.new_operation_id()
                    db.errors.log(err, elapsed=perf_counter() - t0)
                _record(db, kind, t0, 0, "error", str(err.kind))
                raise
            except db.connections.module.Error as exc:
                wrapped = db.errors.wrap(exc, operation_id=db.new_operation_id(), elapsed=perf_counter() - t0)
                _record(db, kind, t0, 0, "error", str(wrapped.kind))
                raise wrapped from exc
            rows = getattr(result, "replayed", None)
            if rows is None:
                rows = len(getattr(result, "applied", ()) or ())
            # The operation ran: "ok" even when its report found problems (those are in the report and logs),
            # except a recovery that could not bring everything back: its record says "incomplete".
            if getattr(result, "ok", True) is False and isinstance(result, RecoveryReport):
                _record(db, kind, t0, rows, "incomplete", "incomplete_recovery")
            else:
                _record(db, kind, t0, rows, "ok", None)
            return result

        return run  # type: ignore[return-value]

    return wrap


def _record(db: DurabilityHost, kind: str, t0: float, rows: int, outcome: str, error_kind: str | None) -> None:
    oplog = db._oplog
    if oplog is not None:
        oplog.record(kind, None, perf_counter() - t0, rows, 1, outcome, error_kind)


class Durability:
    """Everything that keeps one manager's data safe; the manager's facade methods delegate here.

    :param db: the manager (its lock, connection and hooks are used).
    :param migrations: known migrations, validated at :meth:`start` (auto-applied when
        ``config.auto_migrate``).
    """

    def __init__(self, db: DurabilityHost,
                 migrations: Sequence[Migration] | str | os.PathLike[str] | None = None) -> None:
        self.db = db
        cfg = db.config
        self.backups = BackupManager(cfg.backup_directory, cfg.backup_keep, db.connections.module,
                                     busy_timeout=cfg.busy_timeout_ms / 1000.0, policy=db.policy)
        self.migrations = coerce_migrations(migrations) if migrations is not None else None
        self.redo: RedoJournal | None = None
        self.schema_report: SchemaReport | None = None
        #: Why writes are refused (an untrusted schema), or None.
        self.write_block: str | None = None
        self._recovering = False
        #: The startup schema check met a lock that outlasted the retry policy: checked again later.
        self._schema_unchecked = False
        #: This manager writes without a journal to a journaled database (see redo.register_unjournaled).
        self._unjournaled_slot: int | None = None
        self._last_failed_recovery = 0.0
        self.scheduler = Scheduler([
            ("backup", cfg.backup_interval, self._scheduled_backup),
            ("quick_check", cfg.quick_check_interval, lambda: self.check_integrity(full=False)),
            ("integrity_check", cfg.integrity_check_interval, lambda: self.check_integrity(full=True)),
        ])
        db.corruption_listeners.append(self._on_corruption)
        db.connections.on_open.append(self._on_open)
        db.health_contributors.append(self._health)
        newest = self.backups.newest_verified()
        if newest is not None:
            db.monitor.last_backup_at = newest.created_at

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Open the redo journal, validate (and maybe migrate) the schema, start the schedule."""
        if self.db.config.redo_journal:
            self.redo = RedoJournal(self.db.config.redo_journal_file,
                                    fsync=self.db.config.synchronous.upper() in ("FULL", "EXTRA"))
            try:
                state = self.redo.open()
            except OSError as exc:  # dbfault: no fault (journal location unusable: missing folder, a setup error)
                self.redo.error = f"the redo journal {str(self.redo.path)!r} cannot be opened: {exc}"
                log.error("%s; writes are not journaled", self.redo.error)
                state = None
            if state is not None and self.redo.owned:
                self.db._redo = self.redo
                self.db.transactions.savepoint_hooks.append(self._savepoint_event)
                self._reconcile(state)
                self._register_slot()
                self._anchor(state)
        if self.db.connections.refused is None and _database_missing(self.db.path):
            # The journal is off or could not be opened, so _anchor did not look: a missing
            # database is still an incident when backups or a journal show it held data.
            journal = self.db.config.redo_journal_file if self.db.config.redo_journal else None
            self._missing_at_start(read_journal(journal) if journal is not None and os.path.exists(journal)
                                   else None)
        if self.db._redo is None and self.db.connections.refused is None and not _database_missing(self.db.path):
            # Other processes journal this database but this manager does not: say so in the database
            # itself, so a recovery anywhere knows writes exist that no journal can bring back.
            try:
                with self.db._lock:
                    self._unjournaled_slot = register_unjournaled(self.db.connections.live_connection())
            except Exception as exc:  # noqa: BLE001  # dbfault: no fault (a read-only or damaged file)
                log.warning("could not record that this manager writes without a redo journal: %s", exc)
        if self.migrations is not None and self.db.connections.refused is None:
            self._startup_schema()
        self.scheduler.start()

    def close(self) -> None:
        """Stop the schedule and close the journal (called by ``db.close()``)."""
        self.scheduler.stop()
        with self.db._lock:
            if self.redo is not None:
                self.redo.close()
                self.db._redo = None
            if self._unjournaled_slot is not None:
                try:
                    unregister_unjournaled(self.db.connections.live_connection(), self._unjournaled_slot)
                except Exception as exc:  # noqa: BLE001  # dbfault: no fault (stays registered: recovery stays cautious)
                    log.warning("could not remove this manager's unjournaled-writer record: %s", exc)

    def _savepoint_event(self, event: str, level: int) -> None:
        redo = self.redo
        if redo is not None:
            if event == "begin":
                redo.savepoint(level)
            else:
                redo.rollback_savepoint(level)

    def _reconcile(self, state: JournalState) -> None:
        """Before anything else runs: mark aborted every journal record the database never committed.

        A process killed between writing its record and COMMIT (this one, if the journal was not
        closed cleanly, or any other whose journal nobody holds now) left a record SQLite rolled back.
        """
        redo = self.redo
        assert redo is not None
        if not os.path.exists(self.db.path) or os.path.getsize(self.db.path) == 0:
            return  # nothing committed to compare with (and opening would create the file)
        try:
            with self.db._lock:
                committed = committed_by_slot(self.db.connections.live_connection())
        except Exception as exc:  # noqa: BLE001  # dbfault: no fault (an unreadable database: recovery decides)
            log.warning("could not read the committed sequences to reconcile the redo journals: %s", exc)
            return
        if committed is None:
            return
        if not state.clean and redo.reconcile(committed):
            # The aborted records' sequences were adopted from the file at open; they never committed,
            # so recovery must not wait for them (it would report a committed transaction missing).
            redo.seq = max(redo._live_before, redo.base)
            redo.seen = redo.seq
        reconcile_orphans(redo.base_path, committed, fsync=redo.fsync)
        redo.seen = max([redo.seen, *committed.values()])

    def _register_slot(self) -> None:
        """Record this manager's journal slot in the database before the anchoring backup is taken.

        Every backup from then on names the slot, so a recovery that finds its journal file gone (deleted
        while the database was damaged beyond reading) knows writes may be missing instead of reporting ok.
        Seq 0 means "nothing committed yet", which is what an absent row meant before.
        """
        redo = self.redo
        assert redo is not None
        if _database_missing(self.db.path):
            return
        try:
            with self.db._lock:
                conn = self.db.connections.live_connection()
                ensure_sequence_table(conn)
                conn.execute(f"INSERT OR IGNORE INTO {WRITERS_TABLE} (slot, seq) VALUES (?, 0)", (redo.slot,))
        except Exception as exc:  # noqa: BLE001  # dbfault: no fault (a read-only or damaged file: recovery decides)
            log.warning("could not record redo journal slot %d in the database: %s", redo.slot, exc)

    def _anchor(self, state: JournalState) -> None:
        """Make the journal continue from a state recovery can rebuild (see module docstring)."""
        redo = self.redo
        assert redo is not None
        db_missing = _database_missing(self.db.path)
        if state.header and state.clean and not state.problems and not db_missing:
            return  # a clean shutdown: the journal and the last backup still describe the database
        # (A database deleted or emptied while the service was down is not a clean state, even after a
        # clean shutdown: opening it would silently start from an empty file.)
        if db_missing:
            if not self._missing_at_start(state):
                redo.reset(redo.seq, from_empty=True)
            return
        # The database may hold writes the journal never saw (a crash between COMMIT and the
        # journal append: never acknowledged, but later writes may build on them). Re-anchor.
        try:
            self.backup()
        except DatabaseError as exc:
            log.error("could not anchor the redo journal with a backup at startup: %s", exc.detail)
            if redo._end < 0 and redo.error is None:
                # A new journal file has no header until a backup anchors it, and takes no records before:
                # writes would go unjournaled while health said healthy. Say so until a backup succeeds.
                redo.error = (f"the redo journal {str(redo.path)!r} could not be anchored at startup ({exc.detail}); "
                              "writes are not journaled until a backup succeeds")
            if exc.action is RecoveryAction.RESTORE \
                    and self.db.config.auto_recover:
                self._auto_recover(f"startup backup failed: {exc.detail}")

    def _missing_at_start(self, state: JournalState | None) -> bool:
        """The database file is missing (or empty) at startup. Returns False when that is a fresh start.

        When backups, manifests or a journal show the runtime managed this database before, it is an
        incident, never a fresh start: with ``auto_recover`` the newest verified backup is restored and
        the journal replayed; whatever is not brought back that way leaves opening refused (no empty
        file is created, writes and reads fail as UNAVAILABLE, health is ``unavailable``) with a message
        saying what exists and which command restores it.
        """
        history = self._history(state)
        if not history:
            return False
        path = self.db.path
        backup = self.backups.newest_verified()
        detail = (f"the database file {path!r} is missing or empty although {' and '.join(history)} show that "
                  "it held data; the runtime refuses to start from an empty database")
        if backup is not None:
            detail += (f"; restore the newest verified backup ({backup.path}) and replay the redo journal with "
                       "`reliability recover`, or put back the backup alone with `reliability restore`")
            user = ("The database is missing. A backup exists: an administrator can restore it with "
                    "`reliability recover` (backup and every write since) or `reliability restore` (backup only).")
        else:
            detail += "; no verified backup exists: rebuild it from the redo journal with `reliability recover`"
            user = ("The database is missing and no verified backup exists. An administrator must restore it "
                    "(`reliability recover`).")
        log.error("%s", detail)
        # Refuse before recovering: a recovery that fails half-way reopens the connection, and that must
        # not create an empty file either. Installing a database lifts the refusal (_database_back).
        self.db.connections.refuse(detail, user)
        if self.db.config.auto_recover:
            self._auto_recover("database file missing at startup")
        return True

    def _history(self, state: JournalState | None) -> list[str]:
        """What shows the runtime managed this database before: backups (any, with or without manifest),
        a redo journal that holds writes or continues from a backup. A journal that only says "started
        from an empty database, nothing written since" shows nothing: that database was empty."""
        found = []
        if self.backups.has_any():
            found.append(f"backups in {str(self.backups.directory)!r}")
        if state is not None and (state.entries or state.base > 0 or state.problems
                                  or (state.header and not state.from_empty)):
            found.append("the redo journal")
        return found

    def _database_back(self) -> None:
        """A database was installed at the path (restore or recovery): accept opens again."""
        if self.db.connections.refused is None:
            return
        self.db.connections.refuse(None)
        log.warning("the database %s is back in place; it is served again", self.db.path)
        if self.migrations is not None:
            self._startup_schema()

    # -- schema --------------------------------------------------------------------------------
    def _startup_schema(self) -> None:
        def check_and_migrate() -> None:
            report = self.validate_schema()
            only_pending = report.pending and all(p.startswith("pending migration") for p in report.problems)
            if only_pending and self.db.config.auto_migrate:
                self.migrate(self.migrations or [])

        try:
            # A lock held by another process at startup is no verdict on the schema: retried under the
            # shared policy (it used to leave writes refused for the process's whole life).
            run_maintenance(check_and_migrate, self.db.policy, "the schema check")
            self._schema_unchecked = False
        except Exception as exc:
            detail = exc.detail if isinstance(exc, DatabaseError) else f"{type(exc).__name__}: {exc}"
            self._schema_unchecked = isinstance(exc, DatabaseError) and retryable_in_maintenance(exc)
            later = " yet (checked again in the background)" if self._schema_unchecked else ""
            self._set_trust(SchemaReport(False, [f"the schema could not be checked{later}: {detail}"], 0, 0))
            log.error("schema check at startup failed: %s", detail)
            if self._schema_unchecked and not any(n == "schema_recheck" for n, _, _ in self.scheduler.tasks):
                # Until it can be checked, writes stay refused (an unchecked schema is not trusted).
                self.scheduler.tasks.append(("schema_recheck", SCHEMA_RECHECK_INTERVAL, self._recheck_schema))
                if self.scheduler.running:  # the loop reads its tasks when it starts
                    self.scheduler.stop()
                    self.scheduler.start()

    def _recheck_schema(self) -> None:
        if self._schema_unchecked and not self.db.closed:
            self._startup_schema()

    @_maintenance("schema_check")
    def validate_schema(self, migrations: Sequence[Migration] | str | os.PathLike[str] | None = None) -> SchemaReport:
        """Compare the database with ``migrations`` (default: the known ones). With the known ones,
        the result also decides whether writes are served."""
        known = migrations is None
        validator = SchemaValidator(migrations if migrations is not None else self.migrations)
        with self.db._lock:
            report = validator.validate(self.db.connections.live_connection())
        if known and self.migrations is not None and report.complete:
            self._set_trust(report)
        return report

    def _set_trust(self, report: SchemaReport) -> None:
        self.schema_report = report
        if report.ok:
            if self.write_block is not None:
                log.info("schema trusted again; writes are served")
            self.write_block = None
        else:
            self.write_block = ("writes are refused because the database schema cannot be trusted: "
                                + "; ".join(report.problems))
            log.error("%s", self.write_block)
        conn = self.db.connections._conn
        if conn is not None:
            self._on_open(conn)

    def _on_open(self, conn: sqlite3.Connection) -> None:
        # query_only makes SQLite itself refuse every write on this connection (the manager turns
        # the READONLY error into SCHEMA_MISMATCH with the reason); reads keep working.
        conn.execute(f"PRAGMA query_only = {1 if self.write_block else 0}")

    @_maintenance("migration")
    def migrate(self, migrations: Sequence[Migration] | str | os.PathLike[str]) -> MigrationResult:
        """Apply pending migrations (see :mod:`reliability.schema`), backing up a non-empty database first."""
        items = coerce_migrations(migrations)

        def expected(_: list[int]) -> list[Migration]:
            known = self.migrations
            if known is None or max((m.version for m in items), default=0) >= max(
                    (m.version for m in known), default=0):
                return items  # the list just applied is what this program knows now (a later release adds to it)
            return known

        return self._change_schema(
            "migrate()", "migrating", "updating the database", "migrations applied",
            pending=lambda before: [m.version for m in items if m.version not in before],
            run=lambda conn: apply_migrations(conn, items, foreign_keys=self.db.config.foreign_keys),
            expected=expected)

    @_maintenance("migration")
    def rollback_migration(self, to: int, migrations: Sequence[Migration] | str | os.PathLike[str] | None = None
                           ) -> MigrationResult:
        """Undo recorded migrations above version ``to`` by their ``down`` steps (see ``schema.revert_migrations``),
        backing up a non-empty database first; ``migrations`` defaults to the known ones."""
        items = coerce_migrations(migrations) if migrations is not None else list(self.migrations or [])
        return self._change_schema(
            "rollback_migration()", "rolling back", "undoing the database update", "migrations rolled back",
            pending=lambda before: [v for v in before if v > to],
            run=lambda conn: revert_migrations(conn, items, to, foreign_keys=self.db.config.foreign_keys),
            # What this program expects is now the versions still applied: otherwise startup validation
            # would call the database out of date and block writes.
            expected=lambda _: [m for m in items if m.version <= to])

    def _change_schema(self, call: str, doing: str, user_doing: str, why: str, *,
                       pending: Callable[[dict[int, tuple[str, str]]], list[int]],
                       run: Callable[[sqlite3.Connection], list[int]],
                       expected: Callable[[list[int]], list[Migration]]) -> MigrationResult:
        """The one path of every schema change: outside a transaction, on the file at the path, a backup
        first when the database holds data, the write block lifted only while the change runs, the redo
        journal re-anchored after DDL it did not see, and the schema trusted again by what is expected now."""
        db = self.db
        backup_path: str | None = None
        with db._lock:
            if db.transactions.depth:
                raise MigrationError(ErrorKind.MISUSE, f"{call} cannot run inside a transaction")
            conn = db.connections.connection_at_path()  # DDL lands in the file at the path
            before = applied_versions(conn)
            if not pending(before):
                return MigrationResult([], max(before, default=0))
            if has_user_data(conn):
                try:
                    backup_path = self.backup().path
                except DatabaseError as exc:
                    detail = f"no backup could be taken before {doing}, so nothing was changed: {exc.detail}"
                    raise MigrationError(exc.kind, detail, user_message=f"No backup could be taken before "
                                         f"{user_doing}, so nothing was changed. Please try again later.") from exc
            conn.execute("PRAGMA query_only = 0")
            try:
                done = run(conn)
            except BaseException:
                # A batch that failed part way leaves the steps before the failure in place: what this
                # program knows must follow them, or the next validation calls an applied version
                # "unknown" (or a reverted one missing) and refuses every write.
                self.migrations = self._known_after(before, applied_versions(conn), expected([]))
                raise
            finally:
                after = applied_versions(conn)
                self._on_open(conn)
                if len(after) != len(before) and self.redo is not None:
                    # DDL ran outside the journal: a backup must cover it before new writes build on it.
                    self._reanchor(why)
            self.migrations = expected(done)
            self._set_trust(SchemaValidator(self.migrations).validate(conn))
        log.info("%s %s; schema version %d", why, done, max(after, default=0))
        return MigrationResult(done, max(after, default=0), backup_path)

    def _known_after(self, before: dict[int, Any], after: dict[int, Any], offered: Sequence[Migration]
                     ) -> list[Migration] | None:
        """The migrations known after a partly done change: known before, plus those applied now, minus
        those reverted now (``offered``: the change's own list, where the applied ones come from).
        A runtime that knew none (``None``: it checks no versions) keeps knowing none."""
        if self.migrations is None:
            return None  # no expectations before (no migrations given): none after a failure either
        pool = {m.version: m for m in offered}
        pool.update({m.version: m for m in self.migrations or []})
        keep = {m.version for m in self.migrations or []} | (set(after) - set(before))
        keep -= set(before) - set(after)
        return [pool[v] for v in sorted(keep) if v in pool]

    # -- backups -------------------------------------------------------------------------------
    @_maintenance("backup")
    def backup(self) -> BackupInfo:
        """Take a verified backup now (under the manager's lock, outside any transaction)."""
        db = self.db
        m = db.monitor
        with db._lock:
            if db.transactions.depth:
                raise BackupError(ErrorKind.MISUSE, "backup() cannot run inside a transaction: "
                                  "the copy would include uncommitted changes")
            redo = self.redo if self.redo is not None and self.redo.owned else None
            seq: int | None = None
            try:
                try:
                    # The file at the path: after another process's recovery or restore this manager's handle
                    # may still be on the file set aside, and a copy of that is no backup of the database.
                    conn = db.connections.connection_at_path()
                except Exception as exc:
                    raise BackupError(db.errors.wrap(exc, log=False).kind,
                                      f"cannot open the database to back it up: {exc}") from exc
                # The write block (an untrusted schema: query_only) refuses the application's writes, not
                # the runtime's own bookkeeping: the backup before a migration must record the sequence too.
                conn.execute("PRAGMA query_only = 0")
                try:
                    if redo is not None:
                        try:  # the copy must carry the global sequence (every process's journal continues from it)
                            ensure_sequence_table(conn)
                        except db.connections.module.Error:  # dbfault: no fault (a read-only file)
                            seq = redo.seq  # a read-only file: the best this process knows
                    # (Then the commits of a manager committing alone, this one or another: reliability.redo.)
                    try:
                        prepare_backup(conn, db.config.redo_journal_file, redo)
                    except db.connections.module.Error as exc:  # dbfault: no fault (read-only, busy or damaged file)
                        raise BackupError(db.errors.wrap(exc, log=False).kind, "cannot record the sequence of a "
                                          f"manager committing alone before the copy (it would be too old): {exc}"
                                          ) from exc
                finally:
                    self._on_open(conn)
                try:
                    # A lock or one-off I/O error is no reason to give up (nor a verdict on the copy):
                    # the shared policy retries; the error that outlasts it is reported as it is.
                    # (seq None: the copy's own sequence, read from the copied snapshot, reliability.redo.)
                    info = db.policy.call(lambda: self.backups.create(conn, last_seq=seq),
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

    def _scheduled_backup(self) -> None:
        try:
            self.backup()
        except BackupError as exc:
            if exc.action is RecoveryAction.RESTORE:
                self.check_integrity(full=False)  # a bad copy may mean a bad source: find out
            raise

    def _reanchor(self, why: str) -> None:
        try:
            self.backup()
        except DatabaseError as exc:
            redo = self.redo
            if redo is not None and redo.owned:
                redo.reset(redo.seq)
                redo.error = f"{why} but no backup covers it yet ({exc.detail}); recovery cannot replay past it"
            log.error("could not re-anchor the redo journal after %s: %s", why, exc.detail)

    @_maintenance("restore")
    def restore(self, path: str | os.PathLike[str] | None = None) -> BackupInfo:
        """Put a backup (newest verified, or ``path``) in place of the database.

        The current database and its ``-wal``/``-shm`` are renamed aside (``<db>.replaced-<time>``),
        never deleted, and never left beside the restored file. Writes made after the backup are
        deliberately dropped (that is what restoring means); the journal is re-anchored.
        """
        db = self.db
        with db._lock:
            if db.transactions.depth:
                raise BackupError(ErrorKind.MISUSE, "restore() cannot run inside a transaction")
            with install_lock(db.path), writers_fenced(db):
                return self._restore_locked(path)

    def _restore_locked(self, path: str | os.PathLike[str] | None) -> BackupInfo:
        db = self.db
        info = self.backups.find(path) if path is not None else self.backups.newest_verified()
        if info is None:
            raise BackupError(ErrorKind.CANTOPEN, f"no verified backup in {str(self.backups.directory)!r}",
                              user_message="There is no verified backup to restore.")
        problems = self.backups.verify(info.path)  # a lock that outlasts the policy raises: no verdict
        if problems:
            self.backups.mark_unverified(info.path, problems[0])
            raise BackupError(ErrorKind.CORRUPT, f"backup {info.path!r} fails quick_check, not restored: "
                              + "; ".join(problems[:5]))
        db.connections.close()
        try:
            tmp = copy_for_install(info.path, db.path)
            fsync_file(tmp)
            moved = move_aside(db.path, "replaced")
            install(tmp, db.path)
            self._database_back()
        finally:
            db.connections.open()
        log.warning("restored %s from %s; previous files kept as %s", db.path, info.path, moved)
        if self.redo is not None:
            # Writes after the backup were dropped on purpose: the restored file must neither make a
            # later recovery look for them as missing nor reuse their sequence numbers, so its
            # sequence moves past every one this manager saw (the re-anchoring backup carries it).
            try:
                set_sequence(db.connections.live_connection(), max(self.redo.seen, self.redo.seq))
            except db.connections.module.Error as exc:  # dbfault: no fault (a read-only restored file)
                log.warning("could not move the restored database's sequence past dropped writes: %s", exc)
            self._reanchor("a restore")
        return info

    # -- integrity -----------------------------------------------------------------------------
    @_maintenance("check")
    def check_integrity(self, full: bool = False) -> IntegrityReport:
        """quick_check (integrity_check when ``full``) + foreign_key_check on a separate connection.

        A failed check marks the database corrupt in the health report and, with
        ``config.auto_recover``, starts recovery.
        """
        db = self.db
        if not os.path.exists(db.path):
            return IntegrityReport(False, [f"database file {db.path!r} does not exist"],
                                   "full" if full else "quick", 0.0)
        timeout = db.config.busy_timeout_ms / 1000.0
        # A lock outlasting the retry policy raises (logged by _maintenance): integrity_ok stays as it was.
        report = check_integrity(db.path, full=full, timeout=timeout, module=db.connections.module,
                                 policy=db.policy)
        m = db.monitor
        m.last_integrity_check_at = time.time()
        m.integrity_ok = report.ok
        m.integrity_problems = list(report.problems)
        if not report.ok:
            log.error("%s integrity check of %s failed: %s", report.kind, db.path, "; ".join(report.problems[:5]))
            if db.config.auto_recover and not db.closed:
                self._auto_recover(f"{report.kind} integrity check failed")
        return report

    # -- corruption ----------------------------------------------------------------------------
    def _on_corruption(self, err: DatabaseError) -> None:
        db = self.db
        db.monitor.integrity_ok = False
        if err.detail and err.detail not in db.monitor.integrity_problems:
            db.monitor.integrity_problems = [err.detail]
        if not db.config.auto_recover or db.closed or db.transactions.depth:
            # Inside a transaction the error reaches the top-level handler again at depth 0.
            return
        self._auto_recover(f"{err.kind} error: {err.detail}")

    def _auto_recover(self, reason: str) -> RecoveryReport | None:
        if self._recovering or time.monotonic() - self._last_failed_recovery < AUTO_RECOVERY_COOLDOWN:
            return None
        try:
            report = self.recover(reason=reason)
        except Exception:
            log.exception("automatic recovery failed")
            self._last_failed_recovery = time.monotonic()
            return None
        if not report.ok and not report.backup and not report.quarantined:
            self._last_failed_recovery = time.monotonic()
        return report

    @_maintenance("recovery")
    def recover(self, reason: str = "requested") -> RecoveryReport:
        """Quarantine the damaged database, restore the newest verified backup, replay the journal."""
        db = self.db
        t0 = perf_counter()
        with db._lock:
            if db.transactions.depth:
                raise DatabaseError(ErrorKind.MISUSE, "recover() cannot run inside a transaction")
            if self._recovering:
                raise DatabaseError(ErrorKind.MISUSE, "a recovery is already running")
            self._recovering = True
            seen = db.connections.identity or db.connections.identity_at_path()  # the file seen damaged
            try:
                with install_lock(db.path), writers_fenced(db):
                    # Another process may have recovered it while this one waited for the lock.
                    elsewhere = recovered_by_another(db, self.redo, seen)
                    report = self._recover_locked(reason, t0) if elsewhere is None else RecoveryReport(
                        not elsewhere, [], None, 0, perf_counter() - t0, elsewhere, reason, RECOVERED_BY_ANOTHER)
            finally:
                self._recovering = False
        m = db.monitor
        m.recoveries += 1
        m.last_recovery = report.to_dict()
        if report.backup is not None or report.quarantined:
            m.integrity_ok = None  # not known to be damaged any more; the next check will tell
            m.integrity_problems = []
        level = logging.WARNING if report.ok else logging.ERROR
        log.log(level, "recovery of %s (%s): ok=%s, backup=%s, replayed %d write transaction(s) in %.3fs, "
                "quarantined %s%s", db.path, reason, report.ok, report.backup, report.replayed, report.duration,
                report.quarantined, "; problems: " + "; ".join(report.problems) if report.problems else "",
                extra={"recovery": report.to_dict()})
        return report

    def _recover_locked(self, reason: str, t0: float) -> RecoveryReport:
        db = self.db
        problems: list[str] = []
        chosen: BackupInfo | None = None
        unchecked: list[str] = []
        for info in self.backups.list():
            if not info.verified:
                continue
            try:
                bad = self.backups.verify(info.path)
            except DatabaseError as exc:
                # Locked (or unreadable for a moment) beyond the retry policy: no verdict. It stays
                # verified for the next recovery; this one tries the next backup.
                log.warning("backup %s could not be checked now, skipped (still verified): %s", info.path,
                            exc.detail)
                unchecked.append(f"backup {info.path} could not be checked now ({exc.kind}); it was skipped, "
                                 "not marked bad: try again")
                continue
            if not bad:
                chosen = info
                break
            self.backups.mark_unverified(info.path, bad[0])
            problems.append(f"backup {info.path} no longer passes quick_check: {bad[0]}")
        state: JournalState | None = None
        if self.redo is not None:
            state = read_journal(self.redo.path)
            if not state.header and self.redo.owned:
                # Ours always starts with a header (reset() at startup): the file was deleted or
                # replaced under us, so what it held since the backup is unknown, not "nothing".
                problems.append(f"the redo journal {str(self.redo.path)!r} is missing or lost its header; "
                                "writes after the backup may not be replayed")
            if self.redo.error:
                problems.append(self.redo.error)
        elif db.config.redo_journal:
            problems.append("the redo journal was not available; writes after the backup cannot be replayed")
        else:
            problems.append("the redo journal is off (redo_journal=False); writes after the backup are lost")

        # Every process's journal, merged by the global sequence (see reliability.redo).
        plan = None
        from_empty = False
        if state is not None:
            assert self.redo is not None
            base = self.redo.base_path
            from_empty = any(read_journal(p).from_empty and read_journal(p).base == 0 for _s, p in journal_files(base))
            committed = read_committed(db.path)  # the damaged file may still say how far it got
            backup_seq = chosen.last_seq if chosen is not None else 0
            unjournaled = unjournaled_writers(committed, backup_seq)
            if chosen is not None:
                unjournaled += unjournaled_writers(read_committed(chosen.path), backup_seq)
            problems += [f"{what}: its writes after the backup cannot be replayed and may be missing"
                         for what in sorted(set(unjournaled))]
            problems += _missing_journal_files(base, [committed, read_committed(chosen.path) if chosen else None],
                                               own=self.redo.slot if self.redo.owned else None)
            alive = frozenset({self.redo.slot}) if self.redo.owned else frozenset()

            def merged(start: int) -> Any:
                return plan_replay(base, start, seen=self.redo.seen if self.redo else 0,
                                   committed=committed, alive=alive)

            if chosen is not None and chosen.last_seq is not None:
                plan = merged(chosen.last_seq)
                if plan.missing and from_empty:
                    whole = merged(0)
                    if not whole.missing:
                        chosen, plan = None, whole  # the journals alone rebuild everything
            elif chosen is None and from_empty:
                plan = merged(0)
            elif chosen is not None:
                problems.append(f"backup {chosen.path} records no redo sequence: writes after it cannot be replayed")
        start_empty = chosen is None and from_empty
        if chosen is None and not start_empty:
            problems[:0] = ["no verified backup to restore from; the damaged database was left in place"] + unchecked
            return RecoveryReport(False, [], None, 0, perf_counter() - t0, problems, reason)
        if plan is not None:
            if unchecked and plan.missing:
                # A newer backup was skipped only because it could not be checked *now* (a lock): the older
                # one leaves a gap the skipped one may cover. Installing it would turn a transient error
                # into lost writes (the database in place may hold them too), so nothing is installed.
                return RecoveryReport(False, [], None, 0, perf_counter() - t0, [
                    "nothing was installed: the backups that would restore every write could not be checked "
                    "now, and the older one leaves a gap; try again", *unchecked, *plan.problems], reason)
            problems += plan.problems
        db.connections.close()
        tmp = Path(f"{db.path}.restore-tmp")
        if start_empty:
            for p in (tmp, Path(f"{tmp}-journal")):
                if p.exists():
                    p.unlink()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        else:
            assert chosen is not None
            tmp = copy_for_install(chosen.path, db.path)
        replayed = 0
        try:
            if plan is not None:
                replayed, replay_problems = replay_journal(tmp, plan.entries, foreign_keys=db.config.foreign_keys,
                                                           policy=db.policy, final_seq=plan.top)
                problems += replay_problems
                if self.redo is not None:
                    self.redo.seen = max(self.redo.seen, plan.top)
            fsync_file(tmp)
            quarantined = move_aside(db.path, "quarantine")
            install(tmp, db.path)
            self._database_back()
        finally:
            try:
                db.connections.open()
            except Exception as exc:  # reported below; the manager reconnects on next use
                problems.append(f"reopening after recovery failed: {exc}")
        if self.redo is not None:
            self._reanchor("a recovery")
        backup_name = chosen.path if chosen is not None else None
        return RecoveryReport(not problems, quarantined, backup_name, replayed, perf_counter() - t0,
                              problems, reason)

    # -- health --------------------------------------------------------------------------------
    def _health(self) -> tuple[dict[str, Any], list[str]]:
        db = self.db
        m = db.monitor
        reasons: list[str] = []
        cfg = db.config
        if m.last_backup_error:
            reasons.append(f"the last backup failed: {m.last_backup_error}")
        if cfg.backup_interval > 0 and m.last_backup_at is not None \
                and time.time() - m.last_backup_at > 2 * cfg.backup_interval:
            reasons.append("the last verified backup is older than twice the backup interval")
        if self.redo is not None and self.redo.error:
            reasons.append(self.redo.error)
        if self.write_block:
            reasons.append(self.write_block)
        last = m.last_recovery
        if last is not None and not last.get("ok"):
            reasons.append("the last recovery was incomplete: " + "; ".join(last.get("problems") or []))
        extra: dict[str, Any] = {
            "last_backup_error": m.last_backup_error,
            "integrity_problems": list(m.integrity_problems),
            "recoveries": m.recoveries,
            "last_recovery": last,
            "redo": None if self.redo is None else {
                "seq": self.redo.seq, "base": self.redo.base, "size": self.redo.size(),
                "owned": self.redo.owned, "error": self.redo.error, "slot": self.redo.slot,
                "path": str(self.redo.path)},
            "schema": None if self.schema_report is None else self.schema_report.to_dict(),
        }
        return extra, reasons


#: Suffix of the lock file next to the database that serializes recovery and restore across processes.
INSTALL_LOCK_SUFFIX = ".install-lock"


@contextmanager
def install_lock(db_path: str) -> Iterator[None]:
    """Hold the exclusive cross-process lock of ``<db>.install-lock`` while a recovery or restore runs.

    Two processes recovering at once would each quarantine the file the other just installed and
    install copies planned from journals the other was re-anchoring; with this lock the second waits
    and then runs on what the first left. A lock *file* rather than SQLite's lock on the database: the
    file being recovered may be damaged beyond SQLite's locking (a bad header) or gone. Opened
    ``O_NOFOLLOW``, mode 0600 (a planted link is refused); an ``flock``, so a process that dies
    releases it. Without ``fcntl`` (Windows) recoveries in two processes are not serialized.
    """
    fd = files.open_private(db_path + INSTALL_LOCK_SUFFIX, os.O_RDWR | os.O_CREAT, what="recovery lock file")
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # dbfault: no fault (another recovery runs: wait for it to finish)
                log.warning("another process is recovering or restoring %s; waiting for it", db_path)
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


@contextmanager
def writers_fenced(db: DurabilityHost) -> Iterator[None]:
    """Hold SQLite's write lock on the file at the path while recovery plans and installs its replacement.

    A write another manager commits after the journals were read but before the new file is in place
    would land in the file being quarantined: acknowledged, then gone. With the write lock held,
    other writers wait (their busy timeout and the retry policy); once the new file is installed they
    get the old file's lock, and their identity check before COMMIT sees the path now names another
    file, so they reopen and rerun on it. A file SQLite cannot lock (missing, or damaged beyond
    reading its header) has no writers to fence: recovery goes on without.
    """
    conn = None
    if os.path.exists(db.path):
        module = db.connections.module
        try:
            conn = module.connect(f"file:{Path(db.path).resolve().as_posix()}?mode=rw", uri=True,
                                  timeout=db.config.busy_timeout_ms / 1000.0, isolation_level=None)
        except module.Error as exc:  # dbfault: no fault (cannot open: no writer can either)
            log.warning("recovery could not fence writers out of %s: %s", db.path, exc)
            conn = None
    if conn is not None:
        try:
            # A lock held by a writer is waited for under the shared policy; one that outlasts it
            # fails the recovery as BUSY (no verdict, nothing installed).
            run_maintenance(lambda: conn.execute("BEGIN IMMEDIATE"), db.policy, "waiting for writers to finish")
        except DatabaseError as exc:
            conn.close()
            if retryable_in_maintenance(exc.__cause__ or exc):
                raise
            log.warning("recovery could not fence writers out of %s: %s", db.path, exc.detail)
            conn = None
        except module.Error as exc:  # dbfault: no fault (a damaged file: its writers fail on it too)
            conn.close()
            log.warning("recovery could not fence writers out of %s: %s", db.path, exc)
            conn = None
    try:
        yield
    finally:
        if conn is not None:
            try:
                conn.execute("ROLLBACK")
            except Exception:  # noqa: BLE001  # dbfault: no fault (the fence only held a lock)
                pass
            conn.close()


def _missing_journal_files(base: Path, registries: list[dict[int, int] | None], own: int | None) -> list[str]:
    """Journal slots the database (or the backup) names whose file is gone: their writes cannot be replayed."""
    slots = {slot for reg in registries if reg for slot in reg if slot >= 0 and slot != own}
    return [f"the redo journal of slot {slot} ({str(slot_path(base, slot))!r}) is missing; the writes that manager "
            "made after the backup cannot be replayed and may be missing"
            for slot in sorted(slots) if not os.path.lexists(slot_path(base, slot))]


def _database_missing(path: str) -> bool:
    """No database file, or an empty one with no WAL content beside it (a new database in WAL mode
    may hold everything in its ``-wal`` until the first checkpoint)."""
    try:
        if os.path.getsize(path) > 0:
            return False
    except OSError:
        return True
    try:
        return os.path.getsize(path + "-wal") == 0
    except OSError:
        return True


def replay_journal(
    path: str | os.PathLike[str],
    entries: list[tuple[Any, ...]],
    *,
    foreign_keys: bool = True,
    policy: RetryPolicy | None = None,
    final_seq: int | None = None,
) -> tuple[int, list[str]]:
    """Replay journal ``entries`` into the database at ``path``; returns (transactions replayed, problems).

    ``entries`` are ``(seq, ops)`` or ``(seq, ops, slot)`` (merged journals: the slot's last
    committed sequence is recorded too, as the live commit does). Entries at or below the
    sequence recorded in the database are skipped; each batch records its last sequence in the
    same transaction, so running this twice applies everything once. ``final_seq``: the
    sequence the database continues from afterwards (past anything held back or missing, so a
    new transaction never reuses the sequence of a record still in some journal).
    A lock or one-off I/O error on a batch reruns it under ``policy``; one that outlasts it raises
    :class:`DatabaseError` (nothing is installed, the next recovery starts again) instead of
    cutting the replay short as if the journal ended there.
    """
    conn = sqlite3.connect(str(path), isolation_level=None)
    problems: list[str] = []
    replayed = 0
    def prepare() -> None:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a lock shows here, not as "no sequence"

    try:
        run_maintenance(prepare, policy, "preparing the redo journal replay")
        done = read_sequence(conn) or 0
        todo = [entry for entry in entries if entry[0] > done]
        i = 0
        while i < len(todo):
            batch = todo[i:i + REPLAY_BATCH]
            try:
                run_maintenance(functools.partial(_apply_batch, conn, batch), policy, "replaying the redo journal")
                replayed += len(batch)
                i += len(batch)
                continue
            except sqlite3.Error:
                pass  # find the exact entry below, one transaction each
            for entry in batch:
                try:
                    run_maintenance(functools.partial(_apply_batch, conn, [entry]), policy,
                                    "replaying the redo journal")
                except sqlite3.Error as exc:
                    problems.append(f"replay stopped at journal sequence {entry[0]}: {exc}; later writes were "
                                    "not replayed")
                    return replayed, problems
                replayed += 1
            i += len(batch)
        if final_seq is not None and final_seq > (read_sequence(conn) or 0):
            record_sequence(conn, final_seq)
    finally:
        conn.close()
    return replayed, problems


def _apply_batch(conn: sqlite3.Connection, batch: list[tuple[Any, ...]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for entry in batch:
            for sql, params, many in entry[1]:
                if many:
                    conn.executemany(sql, params)
                else:
                    conn.execute(sql, params)
            if len(entry) > 2:
                set_sequence(conn, entry[0], entry[2])
        record_sequence(conn, batch[-1][0])
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
