"""Proof that the property machines bite: each finds the violation in a deliberately broken runtime.

Every broken variant below is a ``DatabaseManager`` subclass with one reliability mechanism
taken out (rollback, reconnect, backoff, verification, logging...). The machine of that
property runs against it with only that property enforced, and Hypothesis must report a
violation naming the property. A machine that cannot fail checks nothing.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bite_settings import bite_settings, first_violation
from hypothesis import seed, settings

from pytest_dbfault.machines import MACHINES, run_machine
from pytest_dbfault.stats import property_id
from reliability import DatabaseError, DatabaseManager, RetryPolicy
from reliability.degraded import CommandResult
from reliability.durability.recovery import RecoveryReport
from reliability.health import IntegrityReport
from reliability.schema import SchemaReport, _ensure_table, applied_versions, split_sql

BITE = bite_settings(max_examples=60, steps=15)

# Tests of the harness's checks (each case runs in a fresh interpreter): .ci/run runs them once, in the README's
# test command; the coverage gate and the tox cells deselect them (-m "not bite"): coverage does not measure a
# subprocess, and what a cell checks is the runtime and the faults on its SQLite build.
pytestmark = pytest.mark.bite



# -- broken runtimes ----------------------------------------------------------------------------
class NoReconnect(DatabaseManager):
    """Retries on the same dead handle: a closed connection is never replaced (P1)."""

    def _drop_connection(self) -> None:
        pass


class RawErrors(DatabaseManager):
    """Lets the driver's exceptions escape instead of DatabaseError (P2)."""

    def execute(self, sql: str, params: Any = ()) -> Any:
        try:
            return super().execute(sql, params)
        except DatabaseError as err:
            raise (err.__cause__ or err) from None


class TrustingValidator(DatabaseManager):
    """Reports any schema as fine (P3)."""

    def validate_schema(self, migrations: Any = None) -> SchemaReport:
        return SchemaReport(True, [], 0, 0)


class SkipsLastMigration(DatabaseManager):
    """Applies every pending migration but the last one (P4)."""

    def migrate(self, migrations: Any) -> Any:
        migrations = list(migrations)
        with self._lock:
            done = applied_versions(self.connection)
        pending = [m for m in migrations if m.version not in done]
        if len(pending) > 1:
            migrations = [m for m in migrations if m is not pending[-1]]
        return super().migrate(migrations)


class MigratesWithoutTransaction(DatabaseManager):
    """Runs each migration statement in autocommit: a failure half way leaves half a migration (P5)."""

    def migrate(self, migrations: Any) -> Any:
        migrations = list(migrations)
        with self._lock:
            conn = self.connection
            _ensure_table(conn)
            done = applied_versions(conn)
            for m in migrations:
                if m.version in done:
                    continue
                for statement in split_sql(m.up):
                    try:
                        conn.execute(statement)
                    except Exception as exc:
                        raise self.errors.wrap(exc, operation_id=self.new_operation_id()) from exc
                conn.execute("INSERT INTO _reliability_migrations (version, name, checksum, applied_at, duration) "
                             "VALUES (?, ?, ?, '2000-01-01T00:00:00Z', 0)", (m.version, m.name, m.checksum))
        return super().migrate(migrations)


class AutocommitTransactions(DatabaseManager):
    """``run_in_transaction`` without BEGIN: every statement commits on its own (P6)."""

    def run_in_transaction(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)


class NoRollback(DatabaseManager):
    """Never issues ROLLBACK: a failed transaction stays open, holding the write lock (P7)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transactions._rollback = lambda *a, **k: None  # type: ignore[method-assign]


class SqlInUserMessages(DatabaseManager):
    """Puts the failing SQL into the message shown to users (P8)."""

    def _surface(self, op: str, exc: BaseException, op_id: str, sql: str | None, *args: Any, **kw: Any) -> Any:
        err = super()._surface(op, exc, op_id, sql, *args, **kw)
        err.user_message = f"{err.user_message} [{sql}]"
        return err


class SilentErrors(DatabaseManager):
    """Drops the technical record of errors (P9)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.errors.log = lambda *a, **k: None  # type: ignore[method-assign]


class UncountedScans(DatabaseManager):
    """Forgets to count full reads in the health counters (P10)."""

    def fetch_all(self, sql: str, params: Any = ()) -> list[Any]:
        rows = super().fetch_all(sql, params)
        self.monitor.operations["fetch_all"] -= 1  # the hot path counts inline: take that count back
        return rows


class BlindIntegrityCheck(DatabaseManager):
    """An integrity check that never looks (P11)."""

    def check_integrity(self, full: bool = False) -> IntegrityReport:
        return IntegrityReport(True, [], "quick", 0.0)


class UnverifiedBackup(DatabaseManager):
    """Keeps a copy that missed the last committed row, never comparing it with the source (P12)."""

    def backup(self) -> Any:
        info = super().backup()
        copy = sqlite3.connect(info.path, isolation_level=None)
        try:
            copy.execute("DELETE FROM kv WHERE rowid = (SELECT max(rowid) FROM kv)")
        finally:
            copy.close()
        return info


class RestoreWithoutReplay(DatabaseManager):
    """"Recovers" by restoring the newest backup, forgetting the writes made since (P13)."""

    def recover(self) -> RecoveryReport:
        info = self.restore()
        return RecoveryReport(True, [], str(info.path), 0, 0.0)


class NoContinuity(DatabaseManager):
    """Refuses every command while degraded, even those that need no database (P14)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        run = self.commands.run

        def refusing(name: str, *a: Any, **k: Any) -> CommandResult:
            if self.commands.degraded or self.commands.fault is not None:
                return CommandResult("unavailable", "The service is unavailable.")
            return run(name, *a, **k)

        self.commands.run = refusing  # type: ignore[method-assign]


class AnyoneIsAdmin(DatabaseManager):
    """Lets every actor run the admin commands (P14: an entry point that forgets the rule)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands.is_authorized = lambda actor, command: True  # type: ignore[method-assign]


class UnauditedDenials(DatabaseManager):
    """Denies an unauthorized admin command but leaves no ``admin.denied`` entry (P14)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        record = self.audit.record

        def record_all_but_denials(actor: str, action: str, *a: Any, **k: Any) -> Any:
            if action == "admin.denied":
                return None
            return record(actor, action, *a, **k)

        self.audit.record = record_all_but_denials  # type: ignore[method-assign]


class TrustsTheQueueFile(DatabaseManager):
    """Replays a queued admin write without checking its authorization record (P14: an edited queue file)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands._replay_authorized = lambda cmd, entry: None  # type: ignore[method-assign]


class BlindToOtherProcessesQueues(DatabaseManager):
    """Never notices what another process (the ``reliability`` command line) appended to the shared queue file
    until it degrades itself or restarts (P14: a change the command line acknowledged as queued waits unsaved,
    and a later direct change of the same flag is overwritten by it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue.refresh_if_changed = lambda: False  # type: ignore[method-assign]


def queued_cli_exits_0(config: Any) -> DatabaseManager:
    """The machine's runtime, unbroken; the command line beside it is: ``reliability flags set`` exits 0 (saved)
    for a change it only queued (P14: a script reading the exit code goes on as if the flag were in force).
    The case runs in a process of its own, so the edit of the CLI's table ends with it."""
    from reliability import cli

    cli._RESULT_EXIT["queued"] = cli.EXIT_OK
    return DatabaseManager(config)


class TrustingVerify(DatabaseManager):
    """Checks the audit chain's links but not each entry's content (P15: an edited entry verifies)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from reliability.audit import VerifyReport

        real = self.audit.verify

        def links_only() -> Any:
            report = real()
            if not report.ok and "content" in (report.reason or ""):
                return VerifyReport(True, report.checked)
            return report

        self.audit.verify = links_only  # type: ignore[method-assign]


class NoIdempotency(DatabaseManager):
    """Records each write's idempotency key but never looks it up: a write sent again applies again (P14)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from reliability.degraded.commands import APPLIED_TABLE_SQL

        def apply_always(cmd: Any, entry: Any) -> tuple[bool, Any]:
            self.execute(APPLIED_TABLE_SQL)
            value = cmd.fn(self, *entry.args, **entry.kwargs)
            self.execute("INSERT OR REPLACE INTO reliability_applied_writes (key, command, applied_at) "
                         "VALUES (?, ?, 0)", (entry.key, entry.command))
            return True, value

        self.commands._apply = apply_always  # type: ignore[method-assign]


class FlatBackoff(RetryPolicy):
    """Waits up to max_delay from the first retry: no exponential growth (P15)."""

    def ceiling(self, attempt: int) -> float:
        return self.max_delay


def flat_backoff_runtime(config: Any) -> DatabaseManager:
    return DatabaseManager(config, policy=FlatBackoff.from_config(config))


class IgnoresReload(DatabaseManager):
    """Watches the .env file but never applies a change (P16)."""

    def watch_env(self, path: Any = ".env", *, interval: float | None = None) -> Any:
        watcher = super().watch_env(path, interval=interval)
        watcher.check_now = lambda force=False: ()  # type: ignore[method-assign]
        return watcher


class DropsScanRecords(DatabaseManager):
    """Leaves full reads out of the operation log (P17)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        record = self._oplog.record
        self._oplog.record = lambda op, *a: None if op == "fetch_all" else record(op, *a)


class ZeroFirstRetry(RetryPolicy):
    """Retries the first failure at once (a zero delay): backoff violated from below (P1, P15)."""

    def delay(self, attempt: int) -> float:
        return 0.0 if attempt == 1 else super().delay(attempt)


def zero_first_retry_runtime(config: Any) -> DatabaseManager:
    return DatabaseManager(config, policy=ZeroFirstRetry.from_config(config))


class GivesUpEarly(RetryPolicy):
    """Stops one attempt before ``retry_attempts`` (P1: it gave up while retries were left)."""

    def call(self, fn: Callable[[], Any], **kwargs: Any) -> Any:
        attempts, self.attempts = self.attempts, max(1, self.attempts - 1)
        try:
            return super().call(fn, **kwargs)
        finally:
            self.attempts = attempts


def gives_up_early_runtime(config: Any) -> DatabaseManager:
    return DatabaseManager(config, policy=GivesUpEarly.from_config(config))


class UnorderedLatency(DatabaseManager):
    """Reports latency percentiles from unsorted samples (P10: p50 > p99 happens)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.monitor.latency_percentiles = lambda: {"p50": 5.0, "p95": 1.0, "p99": 2.0}  # type: ignore[method-assign]


class HealthyWhenCorrupt(DatabaseManager):
    """Ignores a failed integrity check in ``health().status`` (P10 under corruption)."""

    def health(self) -> Any:
        import dataclasses

        from reliability.health import HealthStatus

        report = super().health()
        if report.integrity_ok is False:
            return dataclasses.replace(report, status=HealthStatus.HEALTHY, reasons=())
        return report


class KeepsOneTooFew(DatabaseManager):
    """Rotates backups down to ``backup_keep - 1`` (P12 retention; with keep 1 it keeps 1)."""

    def backup(self) -> Any:
        info = super().backup()
        verified = [b for b in self.backups() if b.verified]
        for old in verified[max(1, self.config.backup_keep - 1):]:
            Path(old.path).unlink()
            Path(old.path + ".json").unlink(missing_ok=True)
        return info


class SavepointWithoutRollback(DatabaseManager):
    """A failing nested ``db.transaction()`` releases its savepoint without rolling it back (P6)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        rollback = self.transactions._rollback

        def release_only(conn: Any, level: int, name: str) -> None:
            if level == 0:
                rollback(conn, level, name)
            elif conn.in_transaction:
                conn.execute(f"RELEASE {name}")

        self.transactions._rollback = release_only  # type: ignore[method-assign]


class MissingFileIsIntact(DatabaseManager):
    """Answers ok when the database file is not there at all (P11 under disconnect)."""

    def check_integrity(self, full: bool = False) -> IntegrityReport:
        if not Path(self.path).exists():
            return IntegrityReport(True, [], "quick", 0.0)
        return super().check_integrity(full)


class UncountedReopenAfterGivingUp(DatabaseManager):
    """Opens a handle it gave up as unavailable again without counting the reconnect in ``health()`` (P10)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from reliability.connection import ConnectionState

        connections = self.connections
        counted_open = connections.open

        def open_uncounted() -> Any:
            state, reconnects = connections.state, connections.reconnects
            conn = counted_open()
            if state is ConnectionState.UNAVAILABLE:
                connections.reconnects = reconnects
            return conn

        connections.open = open_uncounted  # type: ignore[method-assign]


class FlagAuditSaysNewAsPrevious(DatabaseManager):
    """Audits a flag change with the new value as the ``previous`` one (P15: the log must tell the history)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        new_entry = self.audit.new_entry

        def wrong_previous(actor: str, action: str, target: str = "", details: Any = None) -> Any:
            if action == "flag.set" and details:
                details = {**details, "previous": details.get("value")}
            return new_entry(actor, action, target, details)

        self.audit.new_entry = wrong_previous  # type: ignore[method-assign]


def foreign_key_rows_ignored(config: Any) -> DatabaseManager:
    """The integrity check reads ``foreign_key_check``'s rows and drops them: an orphan row passes (P11)."""
    import reliability.health as health

    problems = health.integrity_problems
    health.integrity_problems = lambda check_rows, foreign_key_rows: problems(check_rows, [])  # type: ignore
    return DatabaseManager(config)


def restart_keys_switched_live(config: Any) -> DatabaseManager:
    """A reload switches the settings read at start only (backup_dir, redo_journal...) under the running
    manager, and says nothing waits for a restart (P16)."""
    import reliability.reload as reload

    held = reload.held_for_restart
    live = ("backup_dir", "redo_journal", "write_queue_path", "audit_fallback_path")
    reload.held_for_restart = lambda old, new: tuple(k for k in held(old, new) if k not in live)  # type: ignore
    return DatabaseManager(config)


def constraint_says_busy(config: Any) -> DatabaseManager:
    """A duplicate key is told "busy, try again" (P8: the runtime's own table is wrong, so it agrees with itself)."""
    import dataclasses

    import reliability.errors as errors
    from reliability import ErrorKind

    busy = errors.KIND_INFO[ErrorKind.BUSY].user_message
    errors.KIND_INFO[ErrorKind.CONSTRAINT] = dataclasses.replace(errors.KIND_INFO[ErrorKind.CONSTRAINT],
                                                                 user_message=busy)
    return DatabaseManager(config)


class LogsAttemptOne(DatabaseManager):
    """Every technical error record says attempt 1, however many attempts were made (P9)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        log = self.errors.log

        def attempt_one(err: Any, **kw: Any) -> Any:
            kw["attempt"] = 1
            return log(err, **kw)

        self.errors.log = attempt_one  # type: ignore[method-assign]


class OperationRecordsSayOneAttempt(DatabaseManager):
    """Operation records say 1 attempt however many were made (P17). (A duration written in seconds is caught
    too, but only when it rounds to 0.0000: not the same on every replay, so not a bite case.)"""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        oplog = self.oplog
        if oplog is not None:
            record = oplog.record

            def wrong(op: str, sql: Any, duration: float, rows: int, attempts: int, outcome: str,
                      error_kind: Any) -> None:
                record(op, sql, duration, rows, 1, outcome, error_kind)

            oplog.record = wrong  # type: ignore[method-assign]


#: Whether the running example has injected a fault yet (set by the machine of the case below, reset per example).
_FAULTED = [False]


class RefusesWritesWhileHealthy(DatabaseManager):
    """The first INSERT of a runtime is refused as read-only while its example has injected no fault (P2 with no
    fault injected yet: only the caller's own mistakes may fail). (Only then: refused under a fault, it was judged
    first by that fault's list of kinds whenever the machine's fixed stream put a fault before the first write, and
    which check bit then moved with every rule added to the machine.) Outside the case's own machine, which tells it
    of its faults, it refuses the first INSERT of every runtime, as before."""

    refused = False

    def execute(self, sql: str, params: Any = ()) -> Any:
        if not self.refused and not _FAULTED[0] and sql.lstrip().upper().startswith("INSERT"):
            from reliability import ErrorKind

            self.refused = True
            raise DatabaseError(ErrorKind.READONLY, "refused while healthy (planted)")
        return super().execute(sql, params)


def _telling_machine(base: type) -> type:
    """``base`` that tells :class:`RefusesWritesWhileHealthy` when its example injects its first fault."""

    class Telling(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            _FAULTED[0] = False
            super().__init__()

        def inject(self, *args: Any, **kwargs: Any) -> Any:
            _FAULTED[0] = True
            return super().inject(*args, **kwargs)

    Telling.__name__ = base.__name__
    return Telling


class ExecutemanyRowByRow(DatabaseManager):
    """``executemany`` outside a transaction commits row by row: a duplicate mid-batch leaves the rows before it
    (P6: the batch is all or nothing)."""

    def executemany(self, sql: str, seq_of_params: Any) -> Any:
        if not self.transactions.depth:
            return self.executor.executemany(sql, list(seq_of_params))
        return super().executemany(sql, seq_of_params)


class ReportsAVersionBehind(DatabaseManager):
    """Schema validation reports a current version one below the highest recorded (P3: the versions reported
    are the file's)."""

    def validate_schema(self, *args: Any, **kwargs: Any) -> Any:
        import dataclasses

        report = super().validate_schema(*args, **kwargs)
        if report.current_version > 0:
            report = dataclasses.replace(report, current_version=report.current_version - 1)
        return report


def patch_once(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    """Replace ``owner.name`` by ``make(original)`` once per process: a factory runs at every restart of the machine,
    and wrapping the wrapper again each time would nest one more call per restart (a RecursionError in a long
    search)."""
    current = getattr(owner, name)
    if not getattr(current, "_bite_patch", False):
        patched = make(current)
        patched._bite_patch = True
        setattr(owner, name, patched)


def untrusted_schema_writable(config: Any, migrations: Any = None) -> DatabaseManager:
    """The write block is kept in memory but never reaches SQLite: a schema the startup check could not trust still
    takes writes (P3)."""
    from reliability.durability.parts import WriteBlock

    WriteBlock.apply = lambda self, conn: conn.execute("PRAGMA query_only = 0")  # type: ignore[method-assign]
    return DatabaseManager(config, migrations=migrations)


def checksum_of_down_step(config: Any, migrations: Any = None) -> DatabaseManager:
    """A migration's checksum covers its down step when it has one: its up SQL edited after it ran goes unseen (P3)."""
    import hashlib

    from reliability import schema

    schema.Migration.checksum = property(  # type: ignore[method-assign,assignment]
        lambda m: hashlib.sha256(schema._step_text(m.down or m.up).encode("utf-8")).hexdigest())
    return DatabaseManager(config, migrations=migrations)


def skips_gap_migrations(config: Any, migrations: Any = None) -> DatabaseManager:
    """``migrate`` skips a migration numbered below the current version (a hotfix merged later) (P4)."""
    from reliability.durability import trust

    def make(apply: Any) -> Any:
        def above_current(conn: Any, items: Any, **kwargs: Any) -> Any:
            top = max(applied_versions(conn), default=0)
            return apply(conn, [m for m in items if m.version > top], **kwargs)

        return above_current

    patch_once(trust, "apply_migrations", make)
    return DatabaseManager(config, migrations=migrations)


def failed_migration_lifts_block(config: Any, migrations: Any = None) -> DatabaseManager:
    """A failed ``migrate`` leaves the write block lifted on the connection (it was lifted for the change) (P5)."""
    from reliability.durability import trust

    def make(change: Any) -> Any:
        def leaves_writable(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return change(self, *args, **kwargs)
            except Exception:
                self.parts.connections.current.execute("PRAGMA query_only = 0")
                raise

        return leaves_writable

    patch_once(trust.Trust, "_change_schema", make)
    return DatabaseManager(config, migrations=migrations)


def forgets_partial_batch(config: Any, migrations: Any = None) -> DatabaseManager:
    """After a batch failed part way, the runtime forgets the migrations of it that were applied, so it calls them
    unknown and refuses writes on a whole schema (P5)."""
    from reliability.durability import trust

    trust.Trust._known_after = lambda self, before, after, offered: self.migrations  # type: ignore[method-assign]
    return DatabaseManager(config, migrations=migrations)


# -- session 15: broken runtimes for the held-out batch's misses (one block per area) --
# (schema)
def folder_in_name_order(config: Any, migrations: Any = None) -> DatabaseManager:
    """Migrations loaded from a folder come in file-name order: ``10_x.sql`` before ``1_y.sql``, so a folder whose
    versions (not zero-padded) reach 10 cannot be migrated (P4)."""
    from reliability import schema

    def make(load: Any) -> Any:
        def name_order(folder: Any) -> Any:
            return sorted(load(folder), key=lambda m: f"{m.version}_{m.name}.sql")

        return name_order

    patch_once(schema, "load_migrations", make)
    return DatabaseManager(config, migrations=migrations)


def rollback_as_far_as_possible(config: Any, migrations: Any = None) -> DatabaseManager:
    """``rollback_migration(to)`` over a version without a down step undoes the newer ones and stops there,
    answering success, where the runtime documents that nothing is done (P5)."""
    from reliability.durability import trust

    def make(revert: Any) -> Any:
        def stops_early(conn: Any, items: Any, to: int, **kwargs: Any) -> Any:
            known = {m.version: m for m in items}
            for version in sorted((v for v in applied_versions(conn) if v > to), reverse=True):
                if version in known and known[version].down is None:
                    to = version
                    break
            return revert(conn, items, to, **kwargs)

        return stops_early

    patch_once(trust, "revert_migrations", make)
    return DatabaseManager(config, migrations=migrations)


# (backup)
def rotation_counts_unverified(config: Any, migrations: Any = None) -> DatabaseManager:
    """Rotation counts unverified (damaged) backups towards ``backup_keep``: a sound backup is deleted for a damaged
    one, and fewer than ``keep`` verified backups stay (P12)."""
    from reliability.durability import backup

    def make(rotate: Any) -> Any:
        def counts_every_file(self: Any) -> list[str]:
            deleted = []
            for info in self.list()[self.keep:]:
                backup._remove_quietly(Path(info.path), backup._manifest_path(Path(info.path)))
                deleted.append(info.path)
            return deleted

        return counts_every_file

    patch_once(backup.BackupManager, "rotate", make)
    return DatabaseManager(config, migrations=migrations)


def recovery_tried_inside_transaction(config: Any, migrations: Any = None) -> DatabaseManager:
    """Damage met inside a transaction starts the automatic recovery there: ``recover()`` refuses inside a transaction,
    the failure starts the cooldown, and the recovery due when the transaction ends is skipped (P13)."""
    from reliability.durability import recovery

    def make(on_corruption: Any) -> Any:
        def tries_inside(self: Any, err: Any) -> None:
            on_corruption(self, err)  # (marks the damage; at depth 0 it recovers)
            parts = self.parts
            if parts.config.auto_recover and not parts.closed() and parts.transactions.depth:
                self.auto_recover(f"{err.kind} error: {err.detail}")

        return tries_inside

    patch_once(recovery.Recovery, "on_corruption", make)
    return DatabaseManager(config, migrations=migrations)


# (connection and transactions)
class TransactionBeginsOnReplacedFile(DatabaseManager):
    """``db.transaction()`` begins on the handle it has although another file was put at the path: its COMMIT then
    meets the identity check and the block fails (no rerun), where the runtime documents following the path (P1)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

        class Blind:
            def __init__(self, inner: Any) -> None:
                self._inner = inner

            def file_replaced(self) -> bool:
                return bool(self._inner.wal_removed())  # (asks about the -wal only, not the file at the path)

            def __getattr__(self, name: str) -> Any:
                return getattr(self._inner, name)

        self.transactions.connections = Blind(self.transactions.connections)  # type: ignore[assignment]


class GaveUpButHealthSaysReconnecting(DatabaseManager):
    """A call that gave up as ``unavailable`` leaves the connection state ``reconnecting``: health() right after says
    healthy with no reason (P10)."""

    def _surface(self, *args: Any, **kwargs: Any) -> DatabaseError:
        from reliability.connection import ConnectionState

        err = super()._surface(*args, **kwargs)
        if self.connections.state is ConnectionState.UNAVAILABLE and self.connections.refused is None:
            self.connections.state = ConnectionState.RECONNECTING
        return err


def commit_allowed_in_transaction(config: Any, migrations: Any = None) -> DatabaseManager:
    """``conn.commit()`` on the connection ``db.transaction()`` yields commits the raw connection instead of being
    refused: the block's later failure leaves its first write behind (P6)."""
    from reliability import tx_connection

    tx_connection._ENDS = ("rollback", "close", "executescript")  # type: ignore[attr-defined]
    return DatabaseManager(config, migrations=migrations)


# (config, operation log, degradation)
def reload_file_beats_environment(config: Any) -> DatabaseManager:
    """A reload lets the watched file win over the environment for a key both give (at startup the environment
    wins) (P16)."""
    import os

    from reliability.config import read_env_file
    from reliability.reload import ConfigWatcher

    def make(load: Any) -> Any:
        def file_wins(self: Any) -> Any:
            in_file = dict(read_env_file(self.path))
            saved = self.environ
            env = os.environ if saved is None else saved
            self.environ = {k: v for k, v in env.items() if k not in in_file}
            try:
                return load(self)
            finally:
                self.environ = saved

        return file_wins

    patch_once(ConfigWatcher, "load", make)
    return DatabaseManager(config)


class CloseDropsBufferedRecords(DatabaseManager):
    """Closing the operation log stops its flusher without writing the records still buffered (P17)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        oplog = self.oplog
        if oplog is not None:
            close = oplog.close

            def dropping() -> None:
                oplog._buf.clear()
                close()

            oplog.close = dropping  # type: ignore[method-assign]


class RechecksOnlyWithinTheInterval(DatabaseManager):
    """The backlog's recheck compares the wrong way: it replays only within the recheck interval of the last
    failure, never after it, so once an outage is over every write command queues behind the backlog (P14)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        import time

        commands = self.commands

        def recover(*, force: bool = False) -> Any:
            now = time.monotonic()
            if not force and now - commands._last_probe > commands.recheck_interval:
                return None
            commands._last_probe = now
            return commands.replay()

        commands.recover = recover  # type: ignore[method-assign]




BROKEN: list[tuple[int, str, Callable[[Any], Any]]] = [
    (1, "connection", NoReconnect),
    (2, "connection", RawErrors),
    (3, "schema", TrustingValidator),
    (4, "schema", SkipsLastMigration),
    (5, "schema", MigratesWithoutTransaction),
    (6, "transactions", AutocommitTransactions),
    (7, "transactions", NoRollback),
    (8, "errors_logging", SqlInUserMessages),
    (9, "errors_logging", SilentErrors),
    (10, "health_integrity", UncountedScans),
    (11, "health_integrity", BlindIntegrityCheck),
    (12, "backup_recovery", UnverifiedBackup),
    (13, "backup_recovery", RestoreWithoutReplay),
    (14, "degradation_queue", NoContinuity),
    (15, "audit", flat_backoff_runtime),
    (16, "config", IgnoresReload),
    (17, "errors_logging", DropsScanRecords),
    # checks added for issue #14 (item 4): backoff from below, latency and status, retention, nesting
    (15, "audit", zero_first_retry_runtime),
    (1, "connection", zero_first_retry_runtime),
    (1, "connection", gives_up_early_runtime),
    (10, "health_integrity", UnorderedLatency),
    (10, "health_integrity", HealthyWhenCorrupt),
    (12, "backup_recovery", KeepsOneTooFew),
    (6, "transactions", SavepointWithoutRollback),
    (11, "health_integrity", MissingFileIsIntact),
    # session 10: the admin command's rules at every entry point, under faults
    (14, "degradation_queue", AnyoneIsAdmin),
    (14, "degradation_queue", UnauditedDenials),
    (14, "degradation_queue", TrustsTheQueueFile),
    (15, "audit", TrustingVerify),
    (14, "degradation_queue", NoIdempotency),
    # session 12: `reliability flags set` beside the running runtime, a second writer of the shared queue
    (14, "degradation_queue", BlindToOtherProcessesQueues),
    (14, "degradation_queue", queued_cli_exits_0),
    # session 13: a reopen of a given-up handle counted (a planted bug no check saw)
    (10, "connection", UncountedReopenAfterGivingUp),
    (15, "degradation_queue", FlagAuditSaysNewAsPrevious),
    (11, "health_integrity", foreign_key_rows_ignored),
    (16, "config", restart_keys_switched_live),
    (8, "errors_logging", constraint_says_busy),
    (9, "errors_logging", LogsAttemptOne),
    (17, "errors_logging", OperationRecordsSayOneAttempt),
    (2, "errors_logging", RefusesWritesWhileHealthy),
    (6, "transactions", ExecutemanyRowByRow),
    (3, "schema", ReportsAVersionBehind),
    # session 14: an application's releases (the runtime started with its migrations), a damaged restart
    (3, "schema", untrusted_schema_writable),
    (3, "schema", checksum_of_down_step),
    # (auto_migrates_first_pending_only and foreign_keys_left_off: met by calling the rule directly since session
    # 23, tests/machines/test_s23_auto_migrate_release_bite.py and test_s23_foreign_keys_release_bite.py)
    (4, "schema", skips_gap_migrations),
    (5, "schema", failed_migration_lifts_block),
    (5, "schema", forgets_partial_batch),
    # session 15: the held-out batch's misses (benchmarks/bug_finding.py h01-h17), schema
    (4, "schema", folder_in_name_order),
    (5, "schema", rollback_as_far_as_possible),
    # session 15: held-out, backup
    (12, "backup_recovery", rotation_counts_unverified),
    (13, "backup_recovery", recovery_tried_inside_transaction),
    # session 15: held-out, connection and transactions
    (1, "connection", TransactionBeginsOnReplacedFile),
    (10, "connection", GaveUpButHealthSaysReconnecting),
    (6, "transactions", commit_allowed_in_transaction),
    # session 15: held-out, config, operation log, degradation
    (16, "config", reload_file_beats_environment),
    (17, "errors_logging", CloseDropsBufferedRecords),
    (14, "degradation_queue", RechecksOnlyWithinTheInterval),
    # session 16's fuzzer find (a restored pair moved away and back): test_s24_wal_pair_moved_bite.py calls its rule
    # directly (this search stopped meeting it on Python 3.10 under load)
]


@pytest.mark.parametrize(("number", "machine", "broken"), BROKEN,
                         ids=[f"{property_id(n)}-{m}-{getattr(b, '__name__', b)}" for n, m, b in BROKEN])
def test_the_machine_finds_the_broken_property(number: int, machine: str, broken: Callable[[Any], Any],
                                               tmp_path: Any) -> None:
    # Each case runs in a fresh interpreter: in a long in-process run the schema cases (P4, P5)
    # sometimes searched differently and missed their violation (cause not found yet; the same
    # derandomized search always finds it in a fresh process).
    index = next(i for i, case in enumerate(BROKEN) if case == (number, machine, broken))
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import test_machines_bite as b; b.run_case({index}, {str(tmp_path)!r})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith(f"found {property_id(number)} violated"), out.stdout[-2000:]


def test_an_error_with_no_fault_yet_is_judged_by_its_kind(tmp_path: Any) -> None:
    """The check with no fault injected (only the caller's own mistakes fail) bites by itself: the case finds the
    planted read-only refusal as that check's violation, not through a fault's list of kinds."""
    index = next(i for i, case in enumerate(BROKEN) if case[2] is RefusesWritesWhileHealthy)
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import test_machines_bite as b; b.run_case({index}, {str(tmp_path)!r})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "with no fault injected yet" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]


#: every (property, machine) pair a case above enforces, for the control below
PAIRS: list[tuple[int, str]] = sorted({(number, machine) for number, machine, _b in BROKEN})


@pytest.mark.parametrize(("number", "machine"), PAIRS, ids=[f"{property_id(n)}-{m}" for n, m in PAIRS])
def test_the_unplanted_runtime_passes_the_same_search(number: int, machine: str, tmp_path: Any) -> None:
    """The same search (settings, streams, property enforced) on the runtime as shipped finds nothing: each
    case above finds its planted defect, not a violation the machine would report anyway (as every case of P9,
    P16 and P17 did while the cases ran with logging disabled)."""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import test_machines_bite as b; b.run_case(None, {str(tmp_path)!r}, ({number}, {machine!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "no violation found", out.stdout[-2000:]


def run_case(index: int | None, base_dir: str, control: tuple[int, str] | None = None) -> None:
    """Run one bite case; print what Hypothesis found (used by the test above, in a subprocess)."""
    number, machine, broken = BROKEN[index] if control is None else (*control, DatabaseManager)
    # Failing migrations are one draw in five of one rule, and a mid-call heal needs a retry first:
    # give P1, P4 and P5 more examples to meet one (P12: the swarm spreads the backup machine thinner).
    # P11: the health machine's checks of every entry point (session 11) shifted its fixed streams; on
    # pysqlite3 neither met "a file away, then an integrity check" in 60 examples, each did in 120.
    # P11 again (session 13): the orphan-row rule shifted the stream; "a file away, then a check" took 200.
    # P10 (session 15): the file-replace rule, kept out of WAL mode, shifted the connection machine's stream; "a
    # reconnect after giving up" was met in neither 60-example stream, within 200.
    # P4 (session 16): the schema machine's command-line rules shifted its stream; "auto_migrate with two pending,
    # then a restart" was met in neither 60-example stream.
    chosen = settings(BITE, max_examples=200) if number in (1, 4, 10, 11, 12) else BITE
    # Logging stays on: the machines read the runtime's records (P9, P16's log_sql_params, the warnings of
    # P16 and P17). With logging.disable(CRITICAL) here every such check failed for want of records, so a case of
    # those properties "found" its violation whatever the planted defect (the unplanted config machine did too).
    # Two fixed streams of examples: the derandomized one, then seed 1 if the first found nothing. The
    # machines act on real files and locks, so what one stream explores depends on the SQLite build (on
    # pysqlite3 the derandomized stream met P5's rare sequence, a failing migration then migrate with
    # no fault in force, in none of 200 examples; the stdlib's met it at the 45th).
    # A control (the runtime as shipped) searches the derandomized stream only: finding nothing takes the whole
    # stream, and a second one doubled the suite's cost of the controls.
    base = _telling_machine(MACHINES[machine]) if broken is RefusesWritesWhileHealthy else MACHINES[machine]
    for stream in ((None,) if control is not None else (None, 1)):
        cls = base if stream is None else seed(stream)(type(machine, (base,), {}))
        found = first_violation(lambda cls=cls: run_machine(cls, broken, settings_=chosen, base_dir=base_dir,
                                                            enforce={number}))
        if found:
            print(found)
            return
    print("no violation found")


def test_a_machine_passes_when_only_an_unrelated_property_is_enforced(tmp_path: Any) -> None:
    """Enforcing one property does not turn another property's violation into a failure."""
    with contextlib.suppress(AssertionError):
        run_machine(MACHINES["transactions"], NoRollback, settings_=BITE, base_dir=str(tmp_path), enforce={17})
    run_machine(MACHINES["transactions"], NoRollback, settings_=settings(BITE, max_examples=5),
                base_dir=str(tmp_path), enforce={17})
