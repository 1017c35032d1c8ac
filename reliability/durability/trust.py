"""Schema trust: validate the schema against the known migrations, migrate, roll back, block writes.

Writes are served only on a schema this program can trust (see :mod:`reliability.schema`): at
startup (and after a database is installed by a restore or recovery) the known migrations are
validated, and applied when ``config.auto_migrate``; an untrusted schema sets the write block
(:class:`~reliability.durability.parts.WriteBlock`). A lock that keeps the startup check from
running is no verdict: writes stay refused and the check runs again in the background.

``auto_migrate`` acts only when every problem is a pending migration numbered above the current
version. A known migration numbered *below* an applied one (a hotfix merged after later versions
ran) is reported missing and never applied at startup: it was written against an older schema, so
running it on top of the later ones is an operator's decision. Writes stay refused until
``db.migrate()`` applies it (``migrate`` applies every unrecorded known version, gaps included).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import DatabaseError, ErrorKind
from ..health import retryable_in_maintenance, run_maintenance
from ..schema import (
    Migration,
    MigrationError,
    MigrationResult,
    SchemaReport,
    SchemaValidator,
    applied_versions,
    apply_migrations,
    check_rollback_target,
    coerce_migrations,
    has_user_data,
    revert_migrations,
)
from .backup import BackupTaker
from .journal import Journal
from .parts import RuntimeParts, WriteBlock, maintenance
from .upkeep import Scheduler

log = logging.getLogger("reliability.recovery")

#: Seconds between background retries of a startup schema check a lock kept from running.
SCHEMA_RECHECK_INTERVAL = 1.0


class Trust:
    """Whether the database's schema can be trusted, and the one path of every schema change.

    :param parts: the runtime's parts.
    :param block: the write block this part sets.
    :param journal: the redo journal (DDL it did not see is covered by a backup before new writes).
    :param backups: takes the backup before a change and re-anchors the journal after one.
    :param scheduler: the maintenance schedule (a startup check a lock kept from running is retried there).
    :param migrations: the known migrations (None: no versions are checked).
    """

    def __init__(self, parts: RuntimeParts, block: WriteBlock, journal: Journal, backups: BackupTaker,
                 scheduler: Scheduler, migrations: Sequence[Migration] | str | os.PathLike[str] | None) -> None:
        self.parts = parts
        self.block = block
        self.journal = journal
        self.backups = backups
        self.scheduler = scheduler
        self.migrations = coerce_migrations(migrations) if migrations is not None else None
        self.schema_report: SchemaReport | None = None
        #: The startup schema check met a lock that outlasted the retry policy: checked again later.
        self._schema_unchecked = False

    # -- startup ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Validate (and maybe migrate) with the known migrations, unless opening is refused."""
        if self.migrations is not None and self.parts.connections.refused is None:
            self._startup_schema()

    def _startup_schema(self) -> None:
        def check_and_migrate() -> None:
            report = self.validate_schema()
            only_pending = report.pending and all(p.startswith("pending migration") for p in report.problems)
            if only_pending and self.parts.config.auto_migrate:
                self.migrate(self.migrations or [])

        try:
            # A lock held by another process at startup is no verdict on the schema: retried under the
            # shared policy (it used to leave writes refused for the process's whole life).
            run_maintenance(check_and_migrate, self.parts.policy, "the schema check")
            self._schema_unchecked = False
        except Exception as exc:
            detail = exc.detail if isinstance(exc, DatabaseError) else f"{type(exc).__name__}: {exc}"
            self._schema_unchecked = isinstance(exc, DatabaseError) and retryable_in_maintenance(exc)
            later = " yet (checked again in the background)" if self._schema_unchecked else ""
            self._set_trust(SchemaReport(False, [f"the schema could not be checked{later}: {detail}"], 0, 0))
            log.error("schema check at startup failed: %s", detail)
            if self._schema_unchecked:
                # Until it can be checked, writes stay refused (an unchecked schema is not trusted).
                self.scheduler.add("schema_recheck", SCHEMA_RECHECK_INTERVAL, self._recheck_schema)

    def _recheck_schema(self) -> None:
        if self._schema_unchecked and not self.parts.closed():
            self._startup_schema()

    def database_back(self) -> None:
        """A database was installed at the path (restore or recovery): accept opens again, check its schema."""
        connections = self.parts.connections
        if connections.refused is None:
            return
        connections.refuse(None)
        log.warning("the database %s is back in place; it is served again", self.parts.path)
        if self.migrations is not None:
            self._startup_schema()

    # -- validation ------------------------------------------------------------------------------
    @maintenance("schema_check")
    def validate_schema(self, migrations: Sequence[Migration] | str | os.PathLike[str] | None = None) -> SchemaReport:
        """Compare the database with ``migrations`` (default: the known ones). With the known ones,
        the result also decides whether writes are served."""
        known = migrations is None
        validator = SchemaValidator(migrations if migrations is not None else self.migrations)
        with self.parts.lock:
            report = validator.validate(self.parts.connections.live_connection())
        if known and self.migrations is not None and report.complete:
            self._set_trust(report)
        return report

    def _set_trust(self, report: SchemaReport) -> None:
        self.schema_report = report
        block = self.block
        if report.ok:
            if block.reason is not None:
                log.info("schema trusted again; writes are served")
            block.reason = None
        else:
            block.reason = ("writes are refused because the database schema cannot be trusted: "
                            + "; ".join(report.problems))
            log.error("%s", block.reason)
        conn = self.parts.connections.current
        if conn is not None:
            block.apply(conn)

    # -- changes ---------------------------------------------------------------------------------
    @maintenance("migration")
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
            run=lambda conn: apply_migrations(conn, items, foreign_keys=self.parts.config.foreign_keys),
            expected=expected)

    @maintenance("migration")
    def rollback_migration(self, to: int, migrations: Sequence[Migration] | str | os.PathLike[str] | None = None
                           ) -> MigrationResult:
        """Undo recorded migrations above version ``to`` by their ``down`` steps (see ``schema.revert_migrations``),
        backing up a non-empty database first; ``migrations`` defaults to the known ones."""
        check_rollback_target(to)
        items = coerce_migrations(migrations) if migrations is not None else list(self.migrations or [])
        return self._change_schema(
            "rollback_migration()", "rolling back", "undoing the database update", "migrations rolled back",
            pending=lambda before: [v for v in before if v > to],
            run=lambda conn: revert_migrations(conn, items, to, foreign_keys=self.parts.config.foreign_keys),
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
        parts = self.parts
        backup_path: str | None = None
        with parts.lock:
            if parts.transactions.depth:
                raise MigrationError(ErrorKind.MISUSE, f"{call} cannot run inside a transaction")
            if parts.connections.in_transaction():
                # (a transaction the caller began with execute("BEGIN"): the backup taken first would fail as a
                # lock held by "another connection", which is the caller's own)
                raise MigrationError(ErrorKind.MISUSE, f"{call} cannot run while a transaction begun with "
                                     "execute('BEGIN') is open: COMMIT or ROLLBACK it first")
            conn = parts.connections.connection_at_path()  # DDL lands in the file at the path
            before = applied_versions(conn)
            if not pending(before):
                return MigrationResult([], max(before, default=0))
            if has_user_data(conn):
                try:
                    backup_path = self.backups.backup().path
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
                self.block.apply(conn)
                if len(after) != len(before) and self.journal.redo is not None:
                    # DDL ran outside the journal: a backup must cover it before new writes build on it.
                    self.backups.reanchor(why)
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
