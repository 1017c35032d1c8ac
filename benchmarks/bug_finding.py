"""How many realistic planted bugs does the main job (``pytest --dbfault``) catch? Catch rate per property.

Usage::

    python benchmarks/bug_finding.py                    # default profile, every bug, one at a time
    python benchmarks/bug_finding.py --profile ci       # the CI profile (CI=1)
    python benchmarks/bug_finding.py --jobs 2 --only p06_savepoint_rollback_skipped --only p12
    python benchmarks/bug_finding.py --check            # only verify every bug applies to this tree

Each bug is one small edit of ``reliability/`` of the kind a refactor introduces (a retry counted
one too many, a rollback skipped on one path, a record written at the wrong moment, a check reading
the wrong field). For each bug the tree (``reliability``, ``pytest_dbfault``, ``scenarios``,
``pyproject.toml``) is copied to a fresh temporary directory, the edit is applied there, and the
main job runs in that copy (``PYTHONPATH`` puts the copy first, so the installed package is not
used) with a per-bug timeout. *Caught* means the main job failed; a timeout is reported as such
and not counted as caught. A control run on the unmodified copy comes first: if it fails, every
figure is meaningless and the script says so (exit status 2).

No two bugs are equivalent: each entry names an input that tells it apart from the correct code
(and from the other bugs of its property). A bug whose site is gone (the runtime moved on) is
reported as ``stale``, never silently dropped.
"""

# ruff: noqa: E501  (the planted bugs are source lines quoted verbatim: they keep their length)
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The tree every run copies: a snapshot taken at start, so edits made while the benchmark runs
#: do not leak into later runs.
SNAPSHOT: list[Path] = [ROOT]
COPIED = ("reliability", "pytest_dbfault", "scenarios", "pyproject.toml")


@dataclass(frozen=True)
class Bug:
    """One planted bug: replace ``old`` (which must occur exactly once) by ``new`` in ``path``."""

    name: str
    prop: int
    path: str
    old: str
    new: str
    #: an input on which the buggy runtime and the correct one behave differently
    tells_apart: str


BUGS: tuple[Bug, ...] = (
    # -- P1 connection recovery ------------------------------------------------------------------
    Bug("p01_retry_reconnect_wrong_field", 1, "reliability/retry.py",
        "                if action is not Action.RETRY and reconnect is not None:",
        "                if action is Action.RETRY and reconnect is not None:",
        "a write on a handle closed mid-retry: the retry reuses the dead handle instead of reconnecting"),
    Bug("p01_closed_handle_costs_an_attempt", 1, "reliability/executor.py",
        "                self.drop()\n                pending.clear()",
        "                self.drop()",
        "retry_attempts=1, handle closed while idle, fault healed, then a write: must succeed (the statement "
        "never ran), the bug fails it with 'closed'"),
    Bug("p01_begin_on_closed_handle_not_reopened", 1, "reliability/transaction.py",
        "                    self.connections.close()\n                    conn = self.connections.connection\n",
        "                    conn = self.connections.connection\n",
        "`with db.transaction()` (no rerun) right after the handle was closed and healed: must commit"),
    # -- P2 graceful degradation -----------------------------------------------------------------
    Bug("p02_retry_one_too_many", 2, "reliability/retry.py",
        "                if attempt >= self.attempts:", "                if attempt > self.attempts:",
        "a write under a lock that never clears makes retry_attempts + 1 tries instead of retry_attempts"),
    Bug("p02_budget_ignores_next_sleep", 2, "reliability/retry.py",
        "                if elapsed + wait > self.budget:", "                if elapsed > self.budget:",
        "retry_budget smaller than retry_max_delay, a lasting lock: total backoff exceeds the budget"),
    Bug("p02_lock_reported_unavailable", 2, "reliability/executor.py",
        "        if exhausted and reconnect:",
        "        if exhausted:",
        "a lock outlasting the retries surfaces as 'unavailable' instead of busy/locked"),
    # -- P3 schema validation --------------------------------------------------------------------
    Bug("p03_unknown_version_ignored", 3, "reliability/schema.py",
        "                problems.append(f\"version {version} ({name}) is recorded in the database but unknown{newer}\")",
        "                log.info(\"version %s (%s) is recorded in the database but unknown%s\", version, name, newer)",
        "a database with a version row this program does not know (9999): validation must not say ok"),
    Bug("p03_checksum_compares_name", 3, "reliability/schema.py",
        "            elif m.checksum != checksum:", "            elif m.name != name:",
        "an applied migration whose recorded checksum was edited (same name): must be reported"),
    # (blind-spot probes: written after reading what the machines check for this property)
    Bug("p03_checksum_over_down_step", 3, "reliability/schema.py",
        "        return hashlib.sha256(_step_text(self.up).encode(\"utf-8\")).hexdigest()",
        "        return hashlib.sha256(_step_text(self.down or self.up).encode(\"utf-8\")).hexdigest()",
        "a migration with a down step whose up SQL is edited after it was applied: validation must report the "
        "drift; the checksum covers the down step only, so it says ok"),
    Bug("p03_live_compare_stops_at_unrunnable", 3, "reliability/schema.py",
        "                    continue\n            expected = table_columns(scratch)",
        "                    break\n            expected = table_columns(scratch)",
        "applied [1 create t1, 2 ALTER TABLE kv (a table made outside the migrations), 3 create t3], t3 dropped "
        "behind the runtime: validation must report t3 missing; the comparison stops at 2 and says ok"),
    Bug("p03_block_not_applied_to_open_connection", 3, "reliability/durability/trust.py",
        "        conn = self.parts.connections.current\n        if conn is not None:\n"
        "            block.apply(conn)\n",
        "",
        "a restart on a damaged schema (a column dropped): validate_schema() reports it, but the startup check's "
        "own connection stays writable, so an INSERT is served instead of refused as schema_mismatch"),
    Bug("p03_current_version_by_count", 3, "reliability/schema.py",
        "        current = max(recorded, default=0)",
        "        current = len(recorded)",
        "recorded versions {1, 3} with known [1, 2, 3]: 2 must be reported missing (and current_version 3); "
        "counted, current is 2, so 2 is called pending and auto_migrate applies it after 3"),
    # -- P4 migrations in order ------------------------------------------------------------------
    Bug("p04_migrations_sorted_by_name", 4, "reliability/schema.py",
        "    for migration in migrations:\n        if migration.version in done:",
        "    for migration in sorted(migrations, key=lambda m: m.name):\n        if migration.version in done:",
        "pending v2 'create_b' and v3 'column_a': applied 3 before 2"),
    Bug("p04_auto_migrate_skipped", 4, "reliability/durability/trust.py",
        "    def _startup_schema(self) -> None:\n",
        "    def _startup_schema(self) -> None:\n        return\n",
        "auto_migrate=true with a pending migration at startup: must be applied before the first call"),
    # (blind-spot probes: written after reading what the machines check for this property)
    Bug("p04_gap_migration_skipped", 4, "reliability/schema.py",
        "    for migration in migrations:\n        if migration.version in done:\n            continue",
        "    last = max(done, default=0)\n    for migration in migrations:\n"
        "        if migration.version <= last:\n            continue",
        "recorded [1, 3], migrate([1, 2, 3]) (2 merged from a branch): 2 must be applied; it is skipped as below "
        "the current version and migrate() reports nothing applied"),
    Bug("p04_trust_not_renewed_after_migrate", 4, "reliability/durability/trust.py",
        "            self._set_trust(SchemaValidator(self.migrations).validate(conn))\n",
        "",
        "start with auto_migrate and one pending migration: it is applied, but the write block set by the startup "
        "validation (pending) stays, so the first INSERT is refused as schema_mismatch"),
    Bug("p04_auto_migrate_single_pending_only", 4, "reliability/durability/trust.py",
        "            only_pending = report.pending and all(p.startswith(\"pending migration\") for p in report.problems)",
        "            only_pending = len(report.pending) == 1 and all(p.startswith(\"pending migration\") for p in report.problems)",
        "auto_migrate=true, a release adding two migrations at once: neither is applied at startup (and writes "
        "stay refused); one pending migration is applied"),
    # -- P5 failing migration changes nothing ----------------------------------------------------
    Bug("p05_keep_going_after_failure", 5, "reliability/schema.py",
        "            if applied:  # \"nothing was changed\" would be false of the batch: say what stays applied\n"
        "                raise _failed_after(exc, migration, applied) from exc\n            raise\n",
        "            continue\n",
        "pending [failing v2, good v3]: v3 must not be applied after v2 failed"),
    Bug("p05_no_rollback_on_failure", 5, "reliability/schema.py",
        "        except Exception as exc:\n            _rollback_quietly(conn)\n            raise _failed(m, exc, verb) from exc",
        "        except Exception as exc:\n            raise _failed(m, exc, verb) from exc",
        "a migration whose second statement fails: its first statement's table must not exist afterwards"),
    # (blind-spot probes: written after reading what the machines check for this property)
    Bug("p05_foreign_keys_left_off_after_failure", 5, "reliability/schema.py",
        "            record(conn)\n            conn.execute(\"COMMIT\")\n        except Exception as exc:\n"
        "            _rollback_quietly(conn)\n            raise _failed(m, exc, verb) from exc\n"
        "        except BaseException:  # dbfault: no fault (KeyboardInterrupt/SystemExit mid-migration, not a fault)\n"
        "            _rollback_quietly(conn)\n            raise\n    finally:\n        if m.foreign_keys_off:\n"
        "            conn.execute(f\"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}\")",
        "            record(conn)\n            conn.execute(\"COMMIT\")\n            if m.foreign_keys_off:\n"
        "                conn.execute(f\"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}\")\n"
        "        except Exception as exc:\n            _rollback_quietly(conn)\n"
        "            raise _failed(m, exc, verb) from exc\n"
        "        except BaseException:  # dbfault: no fault (KeyboardInterrupt/SystemExit mid-migration, not a fault)\n"
        "            _rollback_quietly(conn)\n            raise\n    finally:\n        pass",
        "a migration marked foreign_keys=off that fails (its foreign key check): it is rolled back, but foreign "
        "keys stay off on the runtime's connection, so a later INSERT naming a missing parent is accepted"),
    Bug("p05_failed_migration_lifts_write_block", 5, "reliability/durability/trust.py",
        "            finally:\n                after = applied_versions(conn)\n"
        "                self.block.apply(conn)\n",
        "            finally:\n                after = applied_versions(conn)\n",
        "auto_migrate=false, one pending migration (writes refused), db.migrate() with it failing: writes must "
        "stay refused; the block lifted for the migration is never put back, so an INSERT is served"),
    Bug("p05_partial_batch_forgotten", 5, "reliability/durability/trust.py",
        "        keep = {m.version for m in self.migrations or []} | (set(after) - set(before))",
        "        keep = {m.version for m in self.migrations or []}",
        "migrate([2 good, 3 failing]) on a runtime that knew [1]: 2 stays applied, but the runtime forgets it, so "
        "db.validate_schema() calls version 2 unknown and writes are refused at the next check"),
    # -- P6 atomicity ----------------------------------------------------------------------------
    Bug("p06_savepoint_rollback_skipped", 6, "reliability/transaction.py",
        "                    conn.execute(f\"ROLLBACK TO {name}\")\n                    conn.execute(f\"RELEASE {name}\")",
        "                    conn.execute(f\"RELEASE {name}\")",
        "nested db.transaction(): inner block raises, outer commits -> the inner rows must not be there"),
    Bug("p06_commit_after_sqlite_rollback", 6, "reliability/transaction.py",
        "        if not open_tx:\n",
        "        if False:\n",
        "a body that catches a disk-full error and returns: SQLite already rolled back, the runtime "
        "must not report a commit"),
    # (blind-spot probes: written after reading what the machines check for this property)
    Bug("p06_executemany_not_wrapped", 6, "reliability/manager.py",
        "                return self.run_in_transaction(self.executemany, sql, params)",
        "                return self.executor.executemany(sql, params)",
        "executemany of 3 rows outside a transaction whose third row is a duplicate: the first two are committed "
        "one by one instead of none"),
    # -- P7 rollback -----------------------------------------------------------------------------
    Bug("p07_commit_failure_not_rolled_back", 7, "reliability/transaction.py",
        "            self._rollback(conn, 0, \"\")\n            if isinstance(exc, DatabaseError):\n",
        "            if isinstance(exc, DatabaseError):\n",
        "the file is moved away mid-transaction: the COMMIT check refuses, the transaction must be rolled back"),
    Bug("p07_nested_rollback_skipped", 7, "reliability/transaction.py",
        "                self.depth -= 1\n                self._rollback(conn, level, name)",
        "                self.depth -= 1\n                if level == 0:\n"
        "                    self._rollback(conn, level, name)",
        "nested transaction whose inner block fails and the outer one then fails too: the savepoint is left "
        "(and the redo journal keeps the inner writes)"),
    # (blind-spot probes: written after reading what the machines check for this property)
    Bug("p07_app_exception_not_rolled_back", 7, "reliability/transaction.py",
        "                self.depth -= 1\n                self._rollback(conn, level, name)\n"
        "                if isinstance(exc, (self.connections.module.Error, DatabaseError)):\n"
        "                    raise self.handler.wrap(exc, operation_id=operation_id) from exc\n"
        "                raise",
        "                self.depth -= 1\n"
        "                if isinstance(exc, (self.connections.module.Error, DatabaseError)):\n"
        "                    self._rollback(conn, level, name)\n"
        "                    raise self.handler.wrap(exc, operation_id=operation_id) from exc\n"
        "                raise",
        "a transaction body that writes a row and then raises ValueError: the row must be rolled back; the "
        "transaction is left open (the next transaction's BEGIN fails, a later COMMIT saves the row)"),
    Bug("p07_busy_commit_left_open", 7, "reliability/transaction.py",
        "            # BUSY at COMMIT leaves the transaction open; everything else may or may not have.\n"
        "            self._rollback(conn, 0, \"\")\n",
        "            # BUSY at COMMIT leaves the transaction open: it can still be committed, keep it.\n"
        "            if classify(exc) is not ErrorKind.BUSY:\n                self._rollback(conn, 0, \"\")\n",
        "rollback-journal mode, a reader holding SHARED so COMMIT fails with SQLITE_BUSY: the transaction must be "
        "rolled back before the rerun; left open, the rerun's BEGIN fails"),
    # -- P8 user-friendly errors -----------------------------------------------------------------
    Bug("p08_detail_in_user_message", 8, "reliability/errors.py",
        "        self.user_message = user_message or KIND_INFO[kind].user_message",
        "        self.user_message = user_message or (f\"{KIND_INFO[kind].user_message} ({detail})\" if detail\n"
        "                                              else KIND_INFO[kind].user_message)",
        "a write after the file was deleted: the message names the file path"),
    Bug("p08_busy_message_with_code", 8, "reliability/errors.py",
        "    ErrorKind.BUSY: KindInfo(True, _R.RETRY, \"The database is busy right now. Please try again in a moment.\"),",
        "    ErrorKind.BUSY: KindInfo(True, _R.RETRY, \"The database is busy (SQLITE_BUSY). Please try again.\"),",
        "a write under a lasting lock: the user sees an SQLite code"),
    # (blind-spot probes: written after reading what the machines check for this property)
    Bug("p08_constraint_gets_busy_message", 8, "reliability/errors.py",
        "    ErrorKind.CONSTRAINT: KindInfo(\n"
        "        False, _R.RAISE, \"The change conflicts with existing data (for example a duplicate entry).\"),",
        "    ErrorKind.CONSTRAINT: KindInfo(\n"
        "        False, _R.RAISE, \"The database is busy right now. Please try again in a moment.\"),",
        "an INSERT of a duplicate key: the user is told the database is busy and to try again (which fails the "
        "same way forever) instead of that the change conflicts with existing data"),
    Bug("p08_schema_refusal_shows_reason", 8, "reliability/executor.py",
        "        out = DatabaseError(ErrorKind.SCHEMA_MISMATCH, block, operation_id=err.operation_id,",
        "        out = DatabaseError(ErrorKind.SCHEMA_MISMATCH, block, user_message=block, operation_id=err.operation_id,",
        "a write refused on a schema whose migration 2 was edited: the user sees the technical reason (versions, "
        "checksums, table names) instead of the plain 'structure is not the expected version' message"),
    # -- P9 technical logging --------------------------------------------------------------------
    Bug("p09_code_logged_from_wrong_field", 9, "reliability/errors.py",
        "                \"db_code\": err.code,", "                \"db_code\": err.code_name,",
        "any surfaced error: the record's db_code is the name, not the number"),
    Bug("p09_commit_hook_error_not_logged", 9, "reliability/transaction.py",
        "                    exc.operation_id = operation_id\n                    self.handler.log(exc, sql=\"COMMIT\")",
        "                    exc.operation_id = operation_id",
        "the file renamed mid-transaction: the refusal at COMMIT has no ERROR record"),
    # (blind-spot probes: written after reading what the machines check for this property)
    Bug("p09_surfaced_error_logs_attempt_1", 9, "reliability/executor.py",
        "        self.errors.log(err, sql=sql, params=params, attempt=max(attempts, 1), elapsed=elapsed, exc=exc)",
        "        self.errors.log(err, sql=sql, params=params, elapsed=elapsed, exc=exc)",
        "a write under a lasting lock that gives up after 3 attempts: its ERROR record says attempt 1"),
    Bug("p09_logged_before_schema_refinement", 9, "reliability/executor.py",
        "        err = self.refused_for_schema(err)\n"
        "        self.errors.log(err, sql=sql, params=params, attempt=max(attempts, 1), elapsed=elapsed, exc=exc)",
        "        self.errors.log(err, sql=sql, params=params, attempt=max(attempts, 1), elapsed=elapsed, exc=exc)\n"
        "        err = self.refused_for_schema(err)",
        "an INSERT refused on an untrusted schema: the caller sees schema_mismatch, the ERROR record says readonly "
        "(and lacks the reason)"),
    # -- P10 health monitoring -------------------------------------------------------------------
    Bug("p10_retry_counted_per_attempt", 10, "reliability/executor.py",
        "            nonlocal attempts\n            attempts += 1\n",
        "            nonlocal attempts\n            attempts += 1\n            if attempts > 1:\n"
        "                self.monitor.retries += 1\n",
        "one locked write that succeeds after 1 retry: health counts 2 retries"),
    Bug("p10_latency_unsorted", 10, "reliability/health.py",
        "        samples = sorted(self.latencies)", "        samples = list(self.latencies)",
        "latencies 5 ms then 1 ms: p50 reported 5 ms > p99... percentiles not ordered"),
    Bug("p10_status_ignores_failed_integrity", 10, "reliability/manager.py",
        "        if self.monitor.integrity_ok is False:\n            status = HealthStatus.UNAVAILABLE\n",
        "        if self.monitor.integrity_ok is False:\n",
        "health() after a failed integrity check (auto_recover off): status must not be healthy"),
    # -- P11 integrity ---------------------------------------------------------------------------
    Bug("p11_unreadable_file_passes", 11, "reliability/health.py",
        "        problems.append(f\"{pragma} could not read the database: {exc} ({classify(exc)})\")",
        "        log.warning(\"%s could not read the database: %s\", pragma, exc)",
        "a file whose header is overwritten (notadb): check_integrity must not answer ok"),
    Bug("p11_missing_file_passes", 11, "reliability/durability/upkeep.py",
        "            return IntegrityReport(False, [f\"database file {path!r} does not exist\"],",
        "            return IntegrityReport(True, [f\"database file {path!r} does not exist\"],",
        "check_integrity() while the database file is deleted: must not answer ok"),
    # -- P12 backups -----------------------------------------------------------------------------
    Bug("p12_rotate_deletes_newest", 12, "reliability/durability/backup.py",
        "        for info in verified[self.keep:]:", "        for info in verified[:-self.keep]:",
        "backup_keep=2, three backups: the newest one is deleted"),
    Bug("p12_keep_off_by_one", 12, "reliability/durability/backup.py",
        "        for info in verified[self.keep:]:", "        for info in verified[self.keep - 1:]:",
        "backup_keep=3, three backups: only two are kept"),
    Bug("p12_copy_not_checked", 12, "reliability/durability/backup.py",
        "                problems = check_pragma(dest)", "                problems: list[str] = []",
        "a backup taken while the database's pages are corrupt is marked verified"),
    Bug("p12_size_not_compared", 12, "reliability/durability/backup.py",
        "            verified = bool(manifest.get(\"verified\")) and manifest.get(\"size\") == size",
        "            verified = bool(manifest.get(\"verified\"))",
        "a backup file truncated after it was taken is still listed as verified"),
    # -- P13 recovery ----------------------------------------------------------------------------
    Bug("p13_redo_kept_after_rollback", 13, "reliability/transaction.py",
        "        if level == 0:\n            self.rollbacks += 1\n            self.observers.rolled_back()",
        "        if level == 0:\n            self.rollbacks += 1",
        "a rolled-back transaction, then a committed one, then corruption: recovery replays the rolled-back rows"),
    Bug("p13_replay_skips_first_entry", 13, "reliability/durability/recovery.py",
        "        todo = [entry for entry in entries if entry[0] > done]",
        "        todo = [entry for entry in entries if entry[0] > done + 1]",
        "backup, one write, corruption, recovery: the write is lost"),
    Bug("p13_redo_not_synced", 13, "reliability/manager.py",
        "        ticket = redo.start_sync() if written and not redo.sync_marks else None\n",
        "        ticket = None  # write_record() wrote it\n",
        "synchronous=FULL, a write acknowledged, power lost before the page cache is written back, "
        "then corruption: recovery lacks the write"),
    # -- P14 command continuity ------------------------------------------------------------------
    Bug("p14_replay_newest_first", 14, "reliability/degraded/commands.py",
        "        for entry in self.queue.pending():", "        for entry in reversed(self.queue.pending()):",
        "two 'store' commands for the same key during one outage: the older value wins after replay"),
    Bug("p14_full_disk_is_an_error", 14, "reliability/degraded/commands.py",
        "            except DatabaseError as err:\n                if err.action is RecoveryAction.RAISE:\n"
        "                    return CommandResult(\"error\", err.user_message, fault=str(err.kind))",
        "            except DatabaseError as err:\n                if err.action is not RecoveryAction.RECONNECT:\n"
        "                    return CommandResult(\"error\", err.user_message, fault=str(err.kind))",
        "a write command while the disk is full: answered 'error' (lost) instead of 'queued'"),
    Bug("p14_queue_not_synced", 14, "reliability/degraded/queue.py",
        "        files.write_all(fd, data)\n        if sync:\n            os.fsync(fd)",
        "        files.write_all(fd, data)",
        "a command queued (acknowledged) during an outage, then power loss: the queued write is gone"),
    # -- P15 audit retry -------------------------------------------------------------------------
    Bug("p15_first_retry_immediate", 15, "reliability/retry.py",
        "        return self.rng.uniform(0.0, self.ceiling(attempt))",
        "        return self.rng.uniform(0.0, self.ceiling(attempt)) if attempt > 1 else 0.0",
        "any retried audit entry: the first retry sleeps exactly 0"),
    Bug("p15_fallback_removed_before_move", 15, "reliability/audit.py",
        "            new = run(move_all)\n            if rejected:",
        "            working.unlink(missing_ok=True)\n            new = run(move_all)\n"
        "            if rejected:",
        "two entries during one outage, then a third while it lasts: the reconcile attempt fails and the "
        "first two are gone"),
    Bug("p15_fallback_not_synced", 15, "reliability/audit.py",
        "                files.write_all(fd, (b\"\\n\" if torn else b\"\") + line.encode(\"utf-8\"))\n"
        "                os.fsync(fd)",
        "                files.write_all(fd, (b\"\\n\" if torn else b\"\") + line.encode(\"utf-8\"))",
        "an entry written to the fallback file, then power loss: the entry is gone"),
    # -- P16 config hot reload -------------------------------------------------------------------
    Bug("p16_policy_keeps_old_value", 16, "reliability/reload.py",
        "                setattr(db.policy, attr, getattr(new, key))",
        "                setattr(db.policy, attr, getattr(old, key))",
        "reload retry_attempts 4 -> 2: the next locked write still makes 4 attempts"),
    Bug("p16_params_flag_not_applied", 16, "reliability/reload.py",
        "        db.errors.show_params = new.log_sql_params",
        "        db.errors.show_params = old.log_sql_params",
        "reload log_sql_params false -> true: the next error's record still redacts its parameters"),
    # -- P17 operation log -----------------------------------------------------------------------
    Bug("p17_fetch_all_logged_as_fetch_one", 17, "reliability/executor.py",
        "                self.observers.succeeded(\"fetch_all\", sql, perf_counter() - t0, len(rows), 1)",
        "                self.observers.succeeded(\"fetch_one\", sql, perf_counter() - t0, len(rows), 1)",
        "one fetch_all: its record says fetch_one"),
    Bug("p17_failed_transaction_not_logged", 17, "reliability/observers.py",
        "        if log is not None:\n            log.record(op, sql, seconds, 0, attempts, \"error\", str(err.kind))",
        "        if log is not None and op != \"transaction\":\n"
        "            log.record(op, sql, seconds, 0, attempts, \"error\", str(err.kind))",
        "a transaction that fails on a constraint: no record with outcome error"),
    # (blind-spot probes: written after reading what the machines check for this property)
    Bug("p17_retried_success_logs_one_attempt", 17, "reliability/executor.py",
        "        self.done(op, sql, t0, rows, attempts)",
        "        self.done(op, sql, t0, rows)",
        "a write that succeeds on its 2nd attempt after a short lock: its operation record says attempts 1"),
    Bug("p17_duration_in_seconds", 17, "reliability/oplog.py",
        "f'\"sql\": {self._quoted_sql(sql)}, \"duration_ms\": {duration * 1000.0:.4f}, \"rows\": {rows}, '",
        "f'\"sql\": {self._quoted_sql(sql)}, \"duration_ms\": {duration:.4f}, \"rows\": {rows}, '",
        "a 20 ms statement, JSON operation log: its duration_ms is 0.0200 (seconds), three orders too small"),
    # -- session 6 (h14-catch): bugs written after the 42 above were all caught, on parts of the surface
    # those 42 do not touch (the reload's reconnect and queue limit, the classifier's extended and primary
    # tables, the backup listing's order, the health report's WAL size) ----------------------------------
    Bug("p16_reload_keeps_the_connection", 16, "reliability/reload.py",
        "            db.connections.close()  # the next operation reopens with the new settings",
        "            pass  # the next operation reopens with the new settings",
        "reload foreign_keys true -> false (or busy_timeout_ms): the next operation still runs on the old "
        "connection with the old pragma"),
    Bug("p16_queue_limit_not_reloaded", 16, "reliability/reload.py",
        "            queue.max_entries = new.write_queue_max",
        "            queue.max_entries = old.write_queue_max",
        "reload write_queue_max down to 1 during an outage: a second queued command is still accepted"),
    Bug("p16_journal_ignores_synchronous_reload", 16, "reliability/reload.py",
        "            db.redo_journal.follow_synchronous(new.synchronous)",
        "            pass",
        "reload synchronous NORMAL -> FULL: SQLite syncs every commit, the redo journal still flushes nothing, so an "
        "acknowledged record would not survive a power loss (the runtime's own defect until session 9)"),
    Bug("p16_backup_keep_not_reloaded", 16, "reliability/durability/__init__.py",
        "        self.backups.keep = max(1, new.backup_keep)\n", "",
        "reload backup_keep 5 -> 1: the next backup still leaves 5 verified backups"),
    Bug("p16_schedule_not_reloaded", 16, "reliability/durability/__init__.py",
        "            self.scheduler.set_interval(name, interval)", "            pass",
        "reload backup_interval 0 -> 60: no backup is ever scheduled (and 60 -> 0 never stops them)"),
    # -- session 10: the admin commands' rules (no main-job rule ran an admin command before) ---------------
    Bug("p14_no_permission_callback_allows_everyone", 14, "reliability/degraded/commands.py",
        "        if callback is None:\n            return False",
        "        if callback is None:\n            return True",
        "flags.set by an actor not in RELIABILITY_ADMIN_ACTORS, with no permission callback: applied instead of "
        "denied"),
    Bug("p14_denial_not_audited", 14, "reliability/degraded/commands.py",
        "        self.parts.audit.record(actor, \"admin.denied\", target if isinstance(target, str) else \"\",\n"
        "                             {\"command\": cmd.name})\n",
        "",
        "flags.set by an actor who is no administrator: denied, but no admin.denied entry in the audit log"),
    Bug("p14_queued_admin_mac_omits_arguments", 14, "reliability/degraded/commands.py",
        "        message = json.dumps([key, command, args, kwargs, actor], sort_keys=True, ensure_ascii=False)",
        "        message = json.dumps([key, command, actor], sort_keys=True, ensure_ascii=False)",
        "an administrator's flags.set queued during a lock, its value edited in the queue file while the runtime is "
        "stopped: replayed with the edited value instead of set aside"),
    Bug("p14_idempotency_key_recorded_not_checked", 14, "reliability/degraded/commands.py",
        "        if db.fetch_one(\"SELECT 1 FROM reliability_applied_writes WHERE key = ?\", (entry.key,)) is not None:\n"
        "            return False, None\n"
        "        value = cmd.fn(db, *entry.args, **entry.kwargs)\n"
        "        db.execute(\"INSERT INTO reliability_applied_writes",
        "        value = cmd.fn(db, *entry.args, **entry.kwargs)\n"
        "        db.execute(\"INSERT OR REPLACE INTO reliability_applied_writes",
        "a deposit sent twice with one idempotency key: the balance grows twice"),
    Bug("p11_inspection_unreadable_file_passes", 11, "reliability/inspection.py",
        "                return [f\"{pragma} could not read the database: {err.detail} ({err.kind})\"]",
        "                return []",
        "`reliability check` on a file whose header is damaged: the runtime's check flags it, the read-only "
        "inspection answers ok"),
    # -- session 10: the audit log's tamper evidence (the invariant only ever verified an untouched log) -------
    Bug("p15_chain_hash_omits_details", 15, "reliability/audit.py",
        "    message = json.dumps([prev, entry_id, ts, actor, action, target, details_json], ensure_ascii=False)",
        "    message = json.dumps([prev, entry_id, ts, actor, action, target], ensure_ascii=False)",
        "an entry's details edited in the database file: verify() still says ok"),
    Bug("p15_shortened_log_not_detected", 15, "reliability/audit.py",
        "        if state == \"ok\" and anchored != anchor_hash:",
        "        if state == \"ok\" and anchored is not None and anchored != anchor_hash:",
        "the last entry deleted from the database file: verify() still says ok (the anchored entry is gone, "
        "so nothing is compared)"),
    Bug("p11_notadb_classified_as_ioerr", 11, "reliability/errors.py",
        "    26: ErrorKind.NOTADB,", "    26: ErrorKind.IOERR,",
        "the header overwritten: the runtime reconnects (I/O error) instead of reporting corruption and recovering"),
    Bug("p02_busy_snapshot_retried_as_statement", 2, "reliability/errors.py",
        "    517: ErrorKind.BUSY_SNAPSHOT,  # SQLITE_BUSY_SNAPSHOT\n", "",
        "a transaction whose snapshot went stale before its first write: the statement is retried on the same "
        "snapshot instead of the whole transaction being rerun"),
    Bug("p12_backups_listed_oldest_first", 12, "reliability/durability/backup.py",
        "        out.sort(key=lambda b: (b.created_at, b.path), reverse=True)",
        "        out.sort(key=lambda b: (b.created_at, b.path))",
        "two backups: backups()[0] / the one restored is the older (restore and recovery go back too far)"),
    Bug("p10_wal_size_of_the_database", 10, "reliability/health.py",
        "    return files.file_size(db_path + \"-wal\")", "    return files.file_size(db_path)",
        "health().wal_size after a TRUNCATE checkpoint: 0 expected, the database file's size reported"),
    # -- session 11: the full check against the quick one (no fault told them apart before index_entry) -------
    Bug("p11_full_check_not_passed_on", 11, "reliability/durability/upkeep.py",
        "        report = check_integrity(path, full=full, timeout=timeout,",
        "        report = check_integrity(path, timeout=timeout,",
        "the largest key of kv's primary-key index raised by one byte: check_integrity(full=True) must fail "
        "(integrity_check: row missing from index); it runs quick_check, which skips index content, and passes"),
    Bug("p11_inspection_full_is_quick", 11, "reliability/inspection.py",
        "        pragma = \"integrity_check\" if full else \"quick_check\"\n        t0 = time.perf_counter()\n\n"
        "        def once() -> list[str]:\n            self.follow_the_path()",
        "        pragma = \"quick_check\"\n        t0 = time.perf_counter()\n\n"
        "        def once() -> list[str]:\n            self.follow_the_path()",
        "the same changed index entry: `reliability check --full` (the read-only inspection) answers ok"),
    Bug("p11_cli_check_drops_full", 11, "reliability/cli.py",
        "        report = view.check_integrity(full=args.full)", "        report = view.check_integrity()",
        "the same changed index entry: Inspector.check_integrity(full=True) flags it, `reliability check --full` "
        "exits 0 (the command line never passes --full on)"),
    Bug("p11_cli_check_exits_0_on_problems", 11, "reliability/cli.py",
        "    return Outcome(EXIT_UNHEALTHY, f\"integrity: {len(report.problems)} problem(s) found\"",
        "    return Outcome(EXIT_OK, f\"integrity: {len(report.problems)} problem(s) found\"",
        "a damaged b-tree page: `reliability check` lists the problems but exits 0, so a cron job or a script "
        "reading the exit code sees a healthy file"),
    Bug("p10_cli_health_degraded_exits_0", 10, "reliability/cli.py",
        "    code = EXIT_OK if report.healthy else EXIT_UNHEALTHY",
        "    code = EXIT_OK if str(report.status) != \"unavailable\" else EXIT_UNHEALTHY",
        "a failed full integrity check marks the file damaged: `reliability health` says degraded and exits 0 "
        "(only unavailable counted as unhealthy)"),
    Bug("p15_cli_verify_audit_exits_0_when_broken", 15, "reliability/cli.py",
        "    return Outcome(EXIT_UNHEALTHY, text, report, text)", "    return Outcome(EXIT_OK, text, report, text)",
        "an audit entry edited in the file: verify() and the command's text say BROKEN, `reliability verify-audit` "
        "exits 0"),
    Bug("p14_other_process_appends_unnoticed", 14, "reliability/degraded/queue.py",
        "            if (st.st_dev, st.st_ino) == self._ident and st.st_size == self._offset:",
        "            if (st.st_dev, st.st_ino) == self._ident:",
        "`reliability flags set` queued during a lock beside a running application (same file, same queue): once "
        "the lock is gone the application's next command does not save it (only a queue file replaced is noticed, "
        "not one appended to), and a later direct change of the same flag is overwritten by it at the next replay"),
    Bug("p14_cli_queued_exits_0", 14, "reliability/cli.py",
        "_RESULT_EXIT = {\"ok\": EXIT_OK, \"queued\": EXIT_QUEUED,",
        "_RESULT_EXIT = {\"ok\": EXIT_OK, \"queued\": EXIT_OK,",
        "`reliability flags set` during a lock: the change is only queued, but the command exits 0 (saved), so a "
        "script reading the exit code goes on as if the flag were in force"),
    # -- sites in the connection, the redo journal and recovery (files no earlier bug touched) ------
    Bug("p11_foreign_key_rows_ignored", 11, "reliability/health.py",
        "    for table, rowid, parent, _fk in foreign_key_rows:\n"
        "        problems.append(f\"foreign key violation: {table} rowid {rowid} references missing {parent} row\")\n",
        "",
        "a child row whose parent row is missing (written with foreign keys off): check_integrity() must report it, "
        "the bug answers ok"),
    Bug("p15_flag_audit_records_new_as_previous", 15, "reliability/admin.py",
        'details = {"value": value, "previous": None if old is None else json.loads(old[0])}',
        'details = {"value": value, "previous": None if old is None else value}',
        "flag x set to 1, then to 2: the second audit entry must say previous 1, the bug says 2"),
    Bug("p15_audit_filters_swapped", 15, "reliability/admin.py",
        "    return db.audit.entries(limit, actor=actor, action=action, since=since)",
        "    return db.audit.entries(limit, actor=action, action=actor, since=since)",
        "admin.audit(db, action='flag.set', caller=admin) after a flag change: must list it, the bug filters on "
        "actor 'flag.set' and lists nothing"),
    Bug("p16_restart_only_setting_switched_live", 16, "reliability/reload.py",
        "            new = new.replace(**{k: getattr(old, k) for k in held})\n",
        "",
        "RELIABILITY_BACKUP_DIR changed in the watched .env of a running manager: the manager must keep the old "
        "place until restarted (a warning names it), the bug moves backups to the new folder at once"),
    Bug("p16_reload_forgets_settings_given_in_code", 16, "reliability/reload.py",
        "        base = {k: v for k, v in dataclasses.asdict(self.base).items() if ENV_PREFIX + k.upper() not in values}\n",
        "        base = {}\n",
        "a manager built with retry_attempts=2 in code, then any .env change (another key) reloaded: retry_attempts "
        "must stay 2, the bug falls back to the library default"),
    Bug("p16_pending_restart_never_said", 16, "reliability/reload.py",
        "        self.pending_restart = {k: getattr(new, k) for k in held_for_restart(self.db.config, new)}\n",
        "        self.pending_restart = {}\n",
        "RELIABILITY_REDO_JOURNAL flipped in the watched .env: watcher.pending_restart must name it, the bug says "
        "nothing is waiting for a restart"),
    Bug("p01_vanished_file_recreated", 1, "reliability/connection.py",
        '        mode = "rw" if self._existed else "rwc"\n',
        '        mode = "rwc"\n',
        "the database file deleted under a running manager, then a write: it must be refused as unavailable (the "
        "file is gone), the bug reopens with mode=rwc and writes into a new, empty database"),
    Bug("p10_reconnect_after_unavailable_uncounted", 10, "reliability/connection.py",
        "            if self.state in (ConnectionState.RECONNECTING, ConnectionState.UNAVAILABLE):\n",
        "            if self.state is ConnectionState.RECONNECTING:\n",
        "a file moved away (calls fail as unavailable) and put back, then a read: health().reconnects must grow "
        "by one, the bug leaves it as it was"),
    Bug("p06_rolled_back_savepoint_kept_in_journal", 6, "reliability/redo.py",
        "            del self._pending[mark:]\n",
        "            del self._pending[mark + 1:]\n",
        "nested db.transaction(): the inner block writes a row and raises, the outer commits; then the database is "
        "damaged and recovered from a backup plus the journal: the inner row must not come back, the bug replays it"),
    Bug("p13_replay_stops_before_the_last", 13, "reliability/redo.py",
        "    for seq in range(start + 1, top + 1):\n",
        "    for seq in range(start + 1, top):\n",
        "a backup, two acknowledged writes, damage, recover(): both must be back, the bug leaves the last one out "
        "and neither replays nor reports it"),
    # -- held-out batch (session 15): written from reliability/ and the docs alone, before reading any machine
    Bug("h01_transaction_begins_on_replaced_file", 1, "reliability/transaction.py",
        "                if level == 0 and self.connections.file_replaced():",
        "                if level == 0 and self.connections.wal_removed():",
        "another database file os.replace()d over the path under a running manager, then `with db.transaction()` "
        "inserting a row: it must begin on the file at the path and commit there; the bug begins on the old handle "
        "and the COMMIT's identity check fails it as readonly_dbmoved (db.transaction() is not rerun)"),
    Bug("h02_gave_up_state_not_recorded", 2, "reliability/executor.py",
        "            err.__cause__ = exc\n            self.connections.state = ConnectionState.UNAVAILABLE\n",
        "            err.__cause__ = exc\n",
        "the database file (with its -wal/-shm) renamed away, a write that fails as unavailable after its retries: "
        "db.health() must say unavailable ('could not be reached within the retry budget'); the bug leaves the "
        "state 'reconnecting' and health says healthy with no reason"),
    Bug("h03_live_columns_compared_backwards", 3, "reliability/schema.py",
        "            missing = [c for c in columns if c not in live[table]]",
        "            missing = [c for c in live[table] if c not in columns]",
        "migration 1 creates t (a, b), column b dropped behind the runtime (ALTER TABLE t DROP COLUMN b), restart: "
        "validation must report t missing column b and refuse writes; the bug compares the other way (extra "
        "columns), says ok and serves writes"),
    Bug("h04_migration_files_in_name_order", 4, "reliability/schema.py",
        "    for version, (name, path) in sorted(ups.items()):",
        "    for version, (name, path) in ups.items():",
        "db.migrate(folder) with 1_create_a.sql, 2_create_b.sql, 10_add_a_z.sql (numbers not zero-padded): must "
        "apply [1, 2, 10]; the files come in name order (10 first) and migrate() fails with 'migration 1 comes after "
        "version 10'"),
    Bug("h05_rollback_stops_at_missing_down_step", 5, "reliability/schema.py",
        "        if m.down is None:\n"
        "            raise _definition_error(f\"migration {m.label} has no down step, so it cannot be rolled back; \"\n"
        "                                    \"nothing was changed\")",
        "        if m.down is None:\n            break  # the older ones cannot be undone: roll back as far as possible",
        "applied [1 (no down step), 2 and 3 (with down steps)], rollback_migration(to=0): must refuse with nothing "
        "changed (tables b and c stay); the bug undoes 3 and 2, returns success at version 1, and the runtime then "
        "calls version 1 unknown and refuses writes"),
    Bug("h06_commit_allowed_inside_transaction", 6, "reliability/tx_connection.py",
        "_ENDS = (\"commit\", \"rollback\", \"close\", \"executescript\")",
        "_ENDS = (\"rollback\", \"close\", \"executescript\")",
        "`with db.transaction() as conn:` inserting 1, calling conn.commit(), inserting 2, then raising ValueError: "
        "conn.commit() must be refused (misuse) and nothing saved; the bug commits the raw connection, so both rows "
        "stay after the failed block"),
    Bug("h07_failed_autocommit_write_left_open", 7, "reliability/manager.py",
        "        except BaseException:\n            redo.discard()\n            if conn.in_transaction:\n                try:\n"
        "                    conn.execute(\"ROLLBACK\")\n"
        "                except Exception as exc:  # dbfault: no fault (a dead handle: the transaction is gone with it)\n"
        "                    log.warning(\"rollback after a failed write failed: %s\", exc)\n            raise\n"
        "        return cur",
        "        except BaseException:\n            redo.discard()\n            raise\n        return cur",
        "db.execute of a duplicate key (constraint error) outside a transaction, then an acknowledged "
        "db.execute('INSERT ... 2'): another connection must see row 2 and it must survive a restart; the bug "
        "leaves the failed write's BEGIN IMMEDIATE open, row 2 goes into it uncommitted (the write lock held) and "
        "is gone after close"),
    Bug("h08_migration_message_names_the_cause", 8, "reliability/schema.py",
        "    return MigrationError(kind, detail, user_message=f\"The database update {m.name!r} could not be {action}, \"",
        "    return MigrationError(kind, detail, user_message=f\"The database update {m.name!r} could not be {action} ({cause}), \"",
        "a migration whose SQL names a missing table: its user_message must be the plain 'could not be applied, so "
        "nothing was changed'; the bug adds the driver's text ('OperationalError: no such table: customers')"),
    Bug("h10_latency_sampled_in_ms", 10, "reliability/observers.py",
        "        monitor.latencies.append(seconds)",
        "        monitor.latencies.append(seconds * 1000.0)",
        "five reads of ~20 ms each (a SQL function that sleeps): health().latency_ms p50 must be ~20; the bug "
        "stores milliseconds and the report multiplies again: ~20000"),
    Bug("h11_notadb_retried_as_transient_in_checks", 11, "reliability/errors.py",
        "        return Action.RETRY if info.transient or kind is ErrorKind.IOERR else Action.SURFACE",
        "        return Action.RETRY if info.transient or kind in (ErrorKind.IOERR, ErrorKind.NOTADB) else Action.SURFACE",
        "the database header overwritten (auto_recover off): check_integrity() must answer ok=False ('file is not a "
        "database') and mark the file damaged; the bug retries it as a passing error and raises 'could not run ... "
        "no verdict', integrity_ok stays None (and with auto_recover nothing is recovered)"),
    Bug("h12_rotation_counts_unverified_backups", 12, "reliability/durability/backup.py",
        "        verified = [b for b in self.list() if b.verified]",
        "        verified = self.list()",
        "backup_keep=2: backups b1, b2, b2 truncated on disk (no longer verified), then b3: b1, b2, b3 must stay "
        "(two verified, the unverified one left for a human); the bug counts b2 towards keep and deletes b1, "
        "leaving one verified backup"),
    Bug("h13_recovery_tried_inside_transaction", 13, "reliability/durability/recovery.py",
        "        if not parts.config.auto_recover or parts.closed() or parts.transactions.depth:",
        "        if not parts.config.auto_recover or parts.closed():",
        "a backup, a write, a table's pages overwritten, then `with db.transaction(): db.fetch_all(...)` meeting "
        "the damage: the runtime must recover when the transaction ends (recoveries 1, every row back); the bug "
        "tries inside the transaction, recover() refuses (misuse), the 10 s cooldown then skips the recovery at "
        "depth 0, and reads keep failing as corrupt"),
    Bug("h14_replay_recheck_comparison_inverted", 14, "reliability/degraded/commands.py",
        "        if not force and now - self._last_probe < self.recheck_interval:",
        "        if not force and now - self._last_probe > self.recheck_interval:",
        "a write command queued during a lock, the lock released, 1.3 s later another write command: the queue must "
        "be replayed and the command answered ok; the bug only replays within the recheck interval, so every later "
        "command is queued behind the backlog for ever"),
    Bug("h15_backoff_ceiling_starts_doubled", 15, "reliability/retry.py",
        "        return min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))",
        "        return min(self.max_delay, self.base_delay * (2 ** attempt))",
        "audit entries recorded under a lasting lock with base_delay 0.01 and a recording sleep: the first backoff "
        "must never exceed 0.01 (ceiling(1) == base_delay); the bug's first ceiling is 0.02 (about half the first "
        "sleeps exceed base_delay)"),
    Bug("h16_reload_file_beats_environment", 16, "reliability/reload.py",
        "        values = dict(read_env_file(self.path))\n        env = os.environ if self.environ is None else self.environ\n"
        "        values.update({k: v for k, v in env.items() if k.startswith(ENV_PREFIX)})",
        "        env = os.environ if self.environ is None else self.environ\n"
        "        values = {k: v for k, v in env.items() if k.startswith(ENV_PREFIX)}\n"
        "        values.update(read_env_file(self.path))",
        "RELIABILITY_RETRY_ATTEMPTS=2 in the environment, the watched .env changed to say 7: after the reload the "
        "policy must make 2 attempts (the environment wins, as at startup); the bug lets the file win (7)"),
    Bug("h17_close_drops_buffered_records", 17, "reliability/oplog.py",
        "        try:\n            self.flush()\n        except OSError:\n"
        "            logging.getLogger(\"reliability\").exception(\"operation log: the last records could not be written\")\n",
        "",
        "operation_log_path set, six statements, then db.close() at once: the file must hold six records; the bug "
        "stops the flusher without draining the buffer and the file holds none (also lost at a reload of the log)"),
    # -- held-out batch (session 18): written by a helper from reliability/, README and docs alone, never reading the machines or tests
    Bug("x01_reads_never_follow_replaced_file", 1, "reliability/executor.py",
        "        if self.transactions.depth:\n            return True  # never drop a transaction's connection",
        "        if not self.transactions.depth:\n            return True  # never drop a transaction's connection",
        "journal_mode=DELETE, the database file replaced at its path by another database (os.replace), a read 200 ms "
        "later: must return the new file's row; the bug keeps serving the replaced file's old row"),
    Bug("x02_queue_accepts_one_past_max", 2, "reliability/degraded/queue.py",
        "            if len(self._pending) >= self.max_entries:",
        "            if len(self._pending) > self.max_entries:",
        "write_queue_max=1, two write commands while another connection holds BEGIN EXCLUSIVE: the "
        "second must be rejected (queue full); the bug queues it too (two writes waiting)"),
    Bug("x03_startup_validation_never_sets_trust", 3, "reliability/durability/trust.py",
        "        known = migrations is None",
        "        known = migrations is not None",
        "migrations=[v1 creating users], the table renamed behind the runtime's back, a new manager started: writes must "
        "be refused as schema_mismatch and health degraded; the bug accepts the write and says healthy"),
    Bug("x04_auto_migrate_despite_other_problems", 4, "reliability/durability/trust.py",
        "            only_pending = report.pending and all(p.startswith(\"pending migration\") for p in report.problems)",
        "            only_pending = report.pending and any(p.startswith(\"pending migration\") for p in report.problems)",
        "start with migration 1 edited since it was applied and migration 2 pending: auto_migrate must apply "
        "nothing (versions [1]); the bug applies 2 on top of the untrusted schema (versions [1, 2])"),
    Bug("x05_fk_check_skipped_with_foreign_keys_off", 5, "reliability/schema.py",
        "            if violations:",
        "            if violations and not m.foreign_keys_off:",
        "db.migrate() of a foreign_keys=off table rebuild that leaves an orphan row: must raise MigrationError "
        "(constraint) and record nothing; the bug commits it (version 2 recorded, the orphan row kept)"),
    Bug("x06_failed_savepoint_rolls_back_outer", 6, "reliability/transaction.py",
        "            if level == 0:\n                if conn.in_transaction:\n                    conn.execute(\"ROLLBACK\")",
        "            if level <= 1:\n                if conn.in_transaction:\n                    conn.execute(\"ROLLBACK\")",
        "db.transaction() writing a, a nested db.transaction() writing b that raises (caught), then c: a and c must commit; the "
        "bug's failed savepoint rolls the whole transaction back (a lost, c autocommitted, TransactionError)"),
    Bug("x07_base_exception_leaves_transaction_open", 7, "reliability/transaction.py",
        "            except BaseException as exc:\n                self.depth -= 1",
        "            except Exception as exc:\n                self.depth -= 1",
        "KeyboardInterrupt raised inside db.transaction() and caught outside, then db.execute(INSERT): the transaction must "
        "be rolled back and the later insert saved; the bug leaves it open and the insert is lost at close"),
    Bug("x08_refusal_shows_detail_to_user", 8, "reliability/connection.py",
        "                raise DatabaseError(ErrorKind.UNAVAILABLE, self.refused, user_message=self._refused_user_message)",
        "                raise DatabaseError(ErrorKind.UNAVAILABLE, self.refused, user_message=self.refused)",
        "database file deleted while stopped (backups exist, auto_recover off), then a read: the user message must say a "
        "backup exists and name `reliability recover`; the bug shows the technical detail with file paths"),
    Bug("x09_named_params_not_redacted", 9, "reliability/errors.py",
        "    if params is None or show:\n        return params",
        "    if not isinstance(params, (list, tuple)) or show:\n        return params",
        "a failing INSERT with named parameters ({\"email\": ...}) and log_sql_params off: the "
        "error's log record must carry {\"email\": \"?\"}; the bug logs the value"),
    Bug("x10_reason_turns_unavailable_into_degraded", 10, "reliability/manager.py",
        "            if why and status is HealthStatus.HEALTHY:",
        "            if why:",
        "database missing at start (backup exists, auto_recover off) and one write command queued: "
        "health must stay unavailable; the bug's queued-write reason turns it into degraded"),
    Bug("x11_file_checks_only_in_full_check", 11, "reliability/health.py",
        "            problems += file_problems(db_path, conn.execute(\"PRAGMA page_size\").fetchone()[0])",
        "            if full:\n                problems += file_problems(db_path, conn.execute(\"PRAGMA page_size\").fetchone()[0])",
        "100 bytes appended to the database file (not a whole page), then check_integrity() (quick): must report "
        "the file ending inside a page; the bug runs that check only with full=True and reports ok"),
    Bug("x12_backup_verified_by_quick_check", 12, "reliability/durability/backup.py",
        "                problems = check_pragma(dest)",
        "                problems = check_pragma(dest, full=False)",
        "an index redefined with writable_schema so its entries no longer match their rows (quick_check passes, "
        "integrity_check fails), then db.backup(): must raise BackupError (corrupt); the bug makes a verified backup"),
    Bug("x13_recovery_takes_oldest_sound_backup", 13, "reliability/durability/recovery.py",
        "        for info in self.store.list():\n            if not info.verified:\n                continue",
        "        for info in reversed(self.store.list()):\n            if not info.verified:\n                continue",
        "two backups, a third write journaled, the header damaged, db.recover(): must restore the newest sound backup and "
        "replay (rows 1, 2, 3, ok); the bug restores the oldest and the journal gap loses rows 2 and 3 (ok False)"),
    Bug("x14_command_read_skips_replay", 14, "reliability/degraded/commands.py",
        "        if self.degraded:\n            self.recover()\n        if cmd.needs is Needs.READ:\n            return self._read(cmd, args, kwargs)\n",
        "        if cmd.needs is Needs.READ:\n            return self._read(cmd, args, kwargs)\n        if self.degraded:\n            self.recover()\n",
        "a write command queued during a lock, the lock released, 1.2 s later a READ command: must "
        "see the queued value (the replay runs first); the bug reads the old value"),
    Bug("x15_fallback_mac_omits_target", 15, "reliability/audit.py",
        "                    [\"fallback\", d[\"entry_id\"], d[\"ts\"], d[\"actor\"], d[\"action\"], d[\"target\"],",
        "                    [\"fallback\", d[\"entry_id\"], d[\"ts\"], d[\"actor\"], d[\"action\"],",
        "an audit entry written to the fallback file during a lock, its target edited in the file, then "
        "reconcile(): must be rejected (audit.fallback_rejected); the bug chains the edited target as genuine"),
    Bug("x16_log_json_not_reloaded", 16, "reliability/reload.py",
        "        if {\"operation_log\", \"operation_log_path\", \"log_json\"} & set(changed):",
        "        if {\"operation_log\", \"operation_log_path\"} & set(changed):",
        "operation_log_path set with log_json off, .env reloaded with RELIABILITY_LOG_JSON=true: "
        "the next record must be a JSON line; the bug keeps writing text lines"),
    Bug("x17_reopened_fetch_one_logs_column_count", 17, "reliability/executor.py",
        "        rows = len(result) if isinstance(result, list) else",
        "        rows = len(result) if isinstance(result, (list, tuple)) else",
        "operation_log on, db.reconnect(), then fetch_one('SELECT 1, 2, 3'): its "
        "record must say rows=1; the bug counts the row's columns (rows=3)"),
    # -- held-out batch (session 19): written blind by a helper from reliability/, README and docs alone (never the machines,
    #    tests, scenarios or the entries above); each proven by a public-API script on a patched copy against the unmodified tree
    Bug('y01_closed_handle_not_reopened_free', 1, 'reliability/errors.py',
        '    if first_try and (kind is ErrorKind.CLOSED or file_replaced):\n',
        '    if first_try and kind is ErrorKind.CLOSED and file_replaced:\n',
        "With retry_attempts=1 and journal_mode=DELETE, after a read (identity check not due), close db.connection behind the manager and run db.fetch_one('SELECT 1'): the correct runtime reopens the idle closed handle at no cost and returns (1,); the buggy one treats it as a reconnect retry and fails with kind unavailable."),
    Bug('y02_readonly_connection_reported_unavailable', 2, 'reliability/manager.py',
        '            status = HealthStatus.UNAVAILABLE if refused or out_of_service(problem) else HealthStatus.DEGRADED\n',
        '            status = HealthStatus.DEGRADED if refused or out_of_service(problem) else HealthStatus.UNAVAILABLE\n',
        'A connection that has become read-only (PRAGMA query_only=ON on db.connection): health() must say degraded (reads still served) and a closed/lost connection unavailable; the buggy health swaps them and reports the read-only database unavailable.'),
    Bug('y03_missing_version_reported_pending', 3, 'reliability/schema.py',
        '            if version < current:\n',
        '            if version > current:\n',
        'Migrate versions 1 and 3, then validate_schema with migrations 1, 2, 3, 4: version 2 must be reported missing and 4 pending; the buggy validator reports 2 as pending and 4 as missing.'),
    Bug('y04_migration_files_in_name_order', 4, 'reliability/schema.py',
        '    for version, (name, path) in sorted(ups.items()):\n',
        '    for version, (name, path) in ups.items():\n',
        'A migrations folder with 2_a.sql and 10_b.sql (not zero-padded): the correct runtime applies 2 then 10; the buggy one lists them in file-name order (10 before 2) and db.migrate refuses with a MigrationError.'),
    Bug('y05_failed_migration_not_rolled_back', 5, 'reliability/schema.py',
        '        except Exception as exc:\n            _rollback_quietly(conn)\n            raise _failed(m, exc, verb) from exc\n',
        '        except Exception as exc:\n            raise _failed(m, exc, verb) from exc\n',
        'A migration whose first statement creates a table and whose second fails: the correct runtime rolls it back (no table, nothing recorded); the buggy one leaves its transaction open, so the half-applied table is visible and later writes land in that transaction.'),
    Bug('y06_savepoint_failure_keeps_its_writes', 6, 'reliability/transaction.py',
        '                    conn.execute(f"ROLLBACK TO {name}")\n',
        '',
        'Inside db.transaction(), a nested db.transaction() that inserts a row and then raises (caught by the caller): the outer commit must not contain the nested row; the buggy runtime only RELEASEs the savepoint, so the nested row is committed.'),
    Bug('y07_rollback_skipped_when_in_transaction', 7, 'reliability/transaction.py',
        '            if level == 0:\n                if conn.in_transaction:\n                    conn.execute("ROLLBACK")\n',
        '            if level == 0:\n                if not conn.in_transaction:\n                    conn.execute("ROLLBACK")\n',
        'An exception raised by the caller inside `with db.transaction():` after an INSERT: the correct runtime rolls back (the row is absent and the next transaction works); the buggy one skips ROLLBACK, leaving the row visible and the transaction open.'),
    Bug('y08_missing_db_hint_inverted', 8, 'reliability/cli.py',
        '        if _verified_backups(config):\n',
        '        if not _verified_backups(config):\n',
        '`reliability --db missing.db health` with no backups anywhere: the correct CLI says only that the database does not exist; the buggy one tells the user that verified backups exist and to run recover (and omits the hint when backups do exist).'),
    Bug('y09_retry_attempts_logged_as_errors', 9, 'reliability/executor.py',
        '            self.errors.log(seen[0], sql=sql, params=params, attempt=attempt, elapsed=perf_counter() - t0,\n                            level=logging.WARNING, exc=exc)\n',
        '            self.errors.log(seen[0], sql=sql, params=params, attempt=attempt, elapsed=perf_counter() - t0,\n                            exc=exc)\n',
        'A write that meets a lock held by another connection (busy_timeout_ms=0, retry_attempts=3): the technical log must hold two WARNING records for the retried attempts and one ERROR for the failure; the buggy runtime logs every retried attempt at ERROR too (three ERROR records).'),
    Bug('y10_latency_percentiles_unsorted', 10, 'reliability/health.py',
        '        samples = sorted(self.latencies)\n',
        '        samples = list(self.latencies)\n',
        'HealthMonitor.observe() with latencies 0.3, 0.1, 0.2 s: latency_percentiles() must give p50 = 200 ms; the buggy monitor indexes the samples in arrival order and gives 100 ms (health().latency_ms follows).'),
    Bug('y11_clean_quick_check_judged_damaged', 11, 'reliability/durability/upkeep.py',
        '        if report.ok:  # sound, here and for every other process (a mark written since it began stays)\n',
        '        if report.ok and full:  # sound, here and for every other process (a mark written since it began stays)\n',
        'db.check_integrity() (quick) on a sound database: the report is ok and health().integrity_ok must become True; with the bug a clean quick check falls into the failed branch and marks the database damaged (integrity_ok False, health unavailable).'),
    Bug('y12_rotation_keeps_one_extra', 12, 'reliability/durability/backup.py',
        '        for info in verified[self.keep:]:\n',
        '        for info in verified[self.keep + 1:]:\n',
        'With backup_keep=2, take four backups with db.backup(): db.backups() must list 2; the buggy rotation keeps 3.'),
    Bug('y13_recovery_uses_unverified_backup', 13, 'reliability/durability/recovery.py',
        '        for info in self.store.list():\n            if not info.verified:\n                continue\n            try:\n',
        '        for info in self.store.list():\n            try:\n',
        'Take a verified backup, write, take a second backup and delete its manifest (so it is unverified), then db.recover(): the correct runtime restores the older verified backup (report.backup names it, only its row comes back); the buggy one installs the newer unverified file (report.backup names it, its two rows come back).'),
    Bug('y14_no_db_command_queued_while_degraded', 14, 'reliability/degraded/commands.py',
        '        if cmd.needs is Needs.NONE:\n',
        '        if cmd.needs is Needs.NONE and not self.degraded:\n',
        "Register a Needs.NONE command, degrade the registry (a write command meets a lock and is queued), then run the NONE command: it must run and return its value (status ok); the buggy registry sends it down the write path and answers 'queued' without running it."),
    Bug('y15_audit_skips_reconcile_before_append', 15, 'reliability/audit.py',
        '            if self._fallback_files():\n                try:\n                    self.reconcile()\n',
        '            if not self._fallback_files():\n                try:\n                    self.reconcile()\n',
        'Record an audit entry while another connection holds an exclusive lock (it goes to the fallback file), release the lock and record a second: the correct logger reconciles the first into the database before appending the second (two entries, none pending, in order); the buggy one appends the second and leaves the first pending.'),
    Bug('y16_reload_swaps_retry_delays', 16, 'reliability/reload.py',
        '_RETRY_KEYS = {"retry_attempts": "attempts", "retry_base_delay": "base_delay", "retry_max_delay": "max_delay",\n',
        '_RETRY_KEYS = {"retry_attempts": "attempts", "retry_base_delay": "max_delay", "retry_max_delay": "base_delay",\n',
        'Hot-reload a .env that changes only RELIABILITY_RETRY_BASE_DELAY to 0.01: db.policy.base_delay must become 0.01 (max_delay stays 2.0); the buggy reload writes it into max_delay and leaves base_delay at 0.05.'),
    Bug('y17_oplog_error_kind_is_action', 17, 'reliability/observers.py',
        '            log.record(op, sql, seconds, 0, attempts, "error", str(err.kind))\n',
        '            log.record(op, sql, seconds, 0, attempts, "error", str(err.action))\n',
        'With operation_log on (a file), a statement failing on a UNIQUE constraint: its record must say error_kind=constraint; the buggy log writes the recovery action (raise) instead.'),
    # -- a fourth blind batch (session 20): written by a helper that read only reliability/, README, docs/
    #    and the Bug class, each proven by a public-API script on a patched copy (kept outside the repo)

    Bug('z01_deleted_file_not_seen_as_moved', 1, 'reliability/connection.py',
        '        except OSError:\n            return self._identity is not None\n        if (st.st_dev, st.st_ino) != self._identity:\n            return True\n        # Its -wal removed counts as moved too',
        '        except OSError:\n            return False\n        if (st.st_dev, st.st_ino) != self._identity:\n            return True\n        # Its -wal removed counts as moved too',
        'WAL database, db.execute a write, then os.remove(db_path) (the -wal stays) and db.execute another INSERT: the correct runtime refuses it (reconnect fails, error kind unavailable); the buggy one acknowledges the write into the unlinked file.'),
    Bug('z02_readonly_reported_as_caller_error', 2, 'reliability/errors.py',
        '    ErrorKind.READONLY: KindInfo(\n        False, _R.DEGRADE, "The database is read-only right now, so changes cannot be saved."),\n',
        '    ErrorKind.READONLY: KindInfo(\n        False, _R.RAISE, "The database is read-only right now, so changes cannot be saved."),\n',
        "Register a Needs.WRITE command and make the connection read-only (db.connection.execute('PRAGMA query_only = 1')), then db.commands.run it: correct returns status 'queued' (pending 1, degraded); buggy returns status 'error' and the write is not kept."),
    Bug('z03_live_columns_read_by_type', 3, 'reliability/schema.py',
        '        out[name] = [r[1] for r in conn.execute(f"PRAGMA table_info({quoted})")]\n',
        '        out[name] = [r[2] for r in conn.execute(f"PRAGMA table_info({quoted})")]\n',
        "Migrate with Migration(1, 'CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, name TEXT)'), drop column name with a plain sqlite3 connection, restart with the same migrations: correct startup report is not ok ('missing column(s) name'); buggy reports ok=True with no problems."),
    Bug('z04_live_compare_includes_pending', 4, 'reliability/schema.py',
        '        problems += self._compare_live(conn, [m for v, m in known.items() if v in recorded])\n',
        '        problems += self._compare_live(conn, list(known.values()))\n',
        "Start once with migration 1, then restart knowing migration 2 (CREATE TABLE orders) with auto_migrate on: correct applies it at startup (version 2, INSERT INTO orders works); buggy compares the pending migrations' tables with the live schema, calls them missing, so auto-migrate never runs (not even on a fresh database) and the write is refused (schema_mismatch)."),
    Bug('z05_rollback_expects_one_version_too_few', 5, 'reliability/durability/trust.py',
        '            expected=lambda _: [m for m in items if m.version <= to])\n',
        '            expected=lambda _: [m for m in items if m.version < to])\n',
        "Migrations 1 and 2 with down steps; db.rollback_migration(to=1) then an INSERT into version 1's table: correct accepts it (schema trusted); buggy forgets version 1 as expected, blocks writes (schema_mismatch) and schema_report.ok is False."),
    Bug('z06_with_conn_swallows_exception', 6, 'reliability/tx_connection.py',
        "    def __exit__(self, *exc: object) -> None:\n        # ``with conn:`` inside ``db.transaction()``: the runtime's transaction decides, not this block.\n        return None\n",
        "    def __exit__(self, *exc: object) -> bool:\n        # ``with conn:`` inside ``db.transaction()``: the runtime's transaction decides, not this block.\n        return True\n",
        'with db.transaction() as conn: with conn: conn.execute(UPDATE ...); raise ValueError: correct re-raises ValueError and rolls the update back; buggy swallows the exception and commits the half-done transaction.'),
    Bug('z07_failed_manual_commit_left_open', 7, 'reliability/manager.py',
        '            except BaseException:  # dbfault: no fault (a COMMIT issued through execute() failing: same path as below)\n                redo.discard()\n                if conn.in_transaction:\n                    conn.execute("ROLLBACK")\n                raise\n',
        '            except BaseException:  # dbfault: no fault (a COMMIT issued through execute() failing: same path as below)\n                redo.discard()\n                raise\n',
        "db.execute('BEGIN'); insert a child row violating a DEFERRABLE INITIALLY DEFERRED foreign key; db.execute('COMMIT') fails (constraint): correct rolls back (connection not in a transaction, later autocommit writes visible to other connections); buggy leaves the transaction open, so later writes are never committed."),
    Bug('z08_read_command_error_shows_driver_text', 8, 'reliability/degraded/commands.py',
        '                return CommandResult("error", err.user_message, fault=str(err.kind), pending=len(self.queue))\n',
        '                return CommandResult("error", str(err), fault=str(err.kind), pending=len(self.queue))\n',
        "Register a Needs.READ command reading a missing table and run it: correct result.message is 'The request does not match the database structure.'; buggy shows the driver text '[schema] no such table: ...'."),
    Bug('z09_failed_begin_logged_at_debug', 9, 'reliability/transaction.py',
        '                self.handler.log(err, sql=sql, exc=exc)\n',
        '                self.handler.log(err, sql=sql, exc=exc, level=logging.DEBUG)\n',
        "Another connection holds BEGIN EXCLUSIVE; with busy_timeout_ms=50, retry_attempts=1, `with db.transaction()` fails as busy: correct logs an ERROR record on the 'reliability' logger (db_kind busy, sql BEGIN IMMEDIATE, the operation id); buggy logs it at DEBUG, so at INFO there is no technical record."),
    Bug('z10_backup_error_never_cleared', 10, 'reliability/durability/backup.py',
        '        m.last_backup_at = info.created_at\n        m.last_backup_error = None\n',
        '        m.last_backup_at = info.created_at\n',
        'backup_dir names a file: db.backup() fails (cantopen); remove the file and db.backup() succeeds: correct health() is healthy with last_backup_error None; buggy stays degraded reporting the old backup failure.'),
    Bug('z11_clean_check_quick_flag_inverted', 11, 'reliability/durability/upkeep.py',
        '            verdict.seen_sound(parts, True, since=started, quick=not full)\n',
        '            verdict.seen_sound(parts, True, since=started, quick=full)\n',
        "journal_mode=DELETE, auto_recover=False: cut the file inside a page, check_integrity() fails; put the bytes back and check_integrity(full=True) passes: correct clears the verdict (integrity_ok True, healthy); buggy keeps integrity_ok False and health unavailable (and a clean quick_check would clear a full check's verdict)."),
    Bug('z12_backup_schedule_reads_quick_check_interval', 12, 'reliability/durability/upkeep.py',
        '        scheduler.add("backup", cfg.backup_interval, self.scheduled_backup)\n',
        '        scheduler.add("backup", cfg.quick_check_interval, self.scheduled_backup)\n',
        'backup_interval=0.3, quick_check_interval=0, backup_keep=100: after 2 s the correct runtime has taken several scheduled backups (db.backups() grows); the buggy one schedules backups on the quick-check interval (0 = off) and takes none.'),
    Bug('z13_replay_starts_after_first_post_backup_commit', 13, 'reliability/durability/recovery.py',
        '                plan = merged(chosen.last_seq)\n',
        '                plan = merged(chosen.last_seq + 1)\n',
        'db.backup(), then two INSERTs, close, overwrite the file header, reopen (auto_recover=False) and db.recover(): correct replays both writes (replayed 2, both rows); buggy silently skips the first write after the backup (replayed 1, ok=True, row lost).'),
    Bug('z14_foreign_unregistered_write_blocks_replay', 14, 'reliability/degraded/commands.py',
        '            return entry.origin != self.queue.origin\n',
        '            return entry.origin == self.queue.origin\n',
        "A first manager queues a write of command 'legacy' while the file is locked; a second manager without 'legacy' queues its own 'add' under a lock, then replays: correct applies 'add' and leaves 'legacy' waiting; buggy stops at 'legacy' (not registered) and applies nothing."),
    Bug('z15_reconcile_lookup_by_wrong_column', 15, 'reliability/audit.py',
        '        row = db.fetch_one(f"SELECT {_COLUMNS} FROM reliability_audit WHERE entry_id = ?", (entry.entry_id,))\n',
        '        row = db.fetch_one(f"SELECT {_COLUMNS} FROM reliability_audit WHERE hash = ?", (entry.entry_id,))\n',
        "Record an audit entry while the DB is locked (fallback), reconcile it, then leave the fallback content as '<fallback>.reconciling' (a crash after the commit) and record another entry: correct skips the already-stored entry and stores the new one (pending False, 3 entries); buggy re-inserts it, hits UNIQUE, and every new entry stays pending in the fallback."),
    Bug('z16_reload_in_transaction_marked_seen', 16, 'reliability/reload.py',
        "        try:\n            old = self.db.config\n            changed = apply_config(self.db, new)\n        except RuntimeError:  # dbfault: no fault (called inside the caller's own open transaction)\n            return ()  # inside a transaction: leave the signature so the next check applies it\n        self._signature = signature\n        self.last_error = None\n",
        "        self._signature = signature\n        try:\n            old = self.db.config\n            changed = apply_config(self.db, new)\n        except RuntimeError:  # dbfault: no fault (called inside the caller's own open transaction)\n            return ()  # inside a transaction: leave the signature so the next check applies it\n        self.last_error = None\n",
        'watch_env(interval=0); change RELIABILITY_RETRY_ATTEMPTS in .env; call watcher.check_now() inside db.transaction() (returns ()), then again after it: correct applies the change (retry_attempts 9); buggy has marked the file seen and never applies it (stays 5).'),
    Bug('z17_execute_logs_lastrowid_as_rows', 17, 'reliability/executor.py',
        '                self.observers.succeeded("execute", sql, perf_counter() - t0, cur.rowcount, 1)\n',
        '                self.observers.succeeded("execute", sql, perf_counter() - t0, cur.lastrowid, 1)\n',
        "operation_log with a JSON file: insert 3 rows, insert 1 row, update 2 rows via db.execute: correct records rows 3, 1, 2; buggy records the cursor's lastrowid (3, 4, 0)."),
    # -- a fifth blind batch (session 20, after the z batch's misses were answered): the same method as z

    Bug('w01_closed_handle_handed_to_maintenance', 1, 'reliability/connection.py',
        '                conn.total_changes  # noqa: B018  (raises ProgrammingError on a closed handle)\n',
        '',
        'Close the handle behind the runtime (db.connection.close()), then db.validate_schema(): correct sees the closed handle, reopens and reports ok True; buggy validates through the closed handle and reports ok False (\"cannot read _reliability_migrations: Cannot operate on a closed database\").'),
    Bug('w02_busy_write_command_not_queued', 2, 'reliability/degraded/commands.py',
        '                if err.action is RecoveryAction.RAISE:\n                    return CommandResult("error", err.user_message, fault=str(err.kind))\n',
        '                if err.action is not RecoveryAction.DEGRADE:\n                    return CommandResult("error", err.user_message, fault=str(err.kind))\n',
        "A write command run while another connection holds BEGIN EXCLUSIVE past the retry budget: correct returns status 'queued' and replays it later; buggy returns status 'error' (busy) and the write is lost."),
    Bug('w03_dropped_table_passes_validation', 3, 'reliability/schema.py',
        '                problems.append(f"table {table!r} is missing from the database")\n',
        '',
        'Apply a migration creating table items, drop the table outside the runtime, restart with the same migrations: correct validate_schema() reports the table missing (ok False); buggy reports ok True.'),
    Bug('w04_dash_named_migration_file_rejected', 4, 'reliability/schema.py',
        '_FILE_NAME = re.compile(r"^(?P<version>\\d+)[_\\-](?P<name>.+?)(?P<down>\\.down)?\\.sql$", re.I)\n',
        '_FILE_NAME = re.compile(r"^(?P<version>\\d+)_(?P<name>.+?)(?P<down>\\.down)?\\.sql$", re.I)\n',
        'A migrations folder with 001_init.sql and 002-add-col.sql passed to DatabaseManager(migrations=folder): correct applies both; buggy refuses 002-add-col.sql as unnumbered (MigrationError at start).'),
    Bug('w05_rollback_undoes_oldest_first', 5, 'reliability/schema.py',
        '    for version in sorted((v for v in done if v > to), reverse=True):\n',
        '    for version in sorted(v for v in done if v > to):\n',
        "Migrations 1 (create table) and 2 (create index on it), both with down steps; db.rollback_migration(0): correct undoes 2 then 1 (no versions left); buggy undoes 1 first, then 2's DROP INDEX fails and version 2 stays recorded with its table gone."),
    Bug('w06_nested_run_in_transaction_without_savepoint', 6, 'reliability/transaction.py',
        '        if self.depth > 0:\n            with self.transaction(operation_id):\n                return fn(*args, **kwargs)\n',
        '        if self.depth > 0:\n            return fn(*args, **kwargs)\n',
        'Inside db.transaction(), a nested db.run_in_transaction(fn) whose fn inserts b and then raises (the outer block catches it and goes on): correct rolls b back with the nested savepoint and commits only the outer rows; buggy commits b as well.'),
    Bug('w07_rollback_keeps_pending_audit_anchor', 7, 'reliability/audit.py',
        '        """Observer: a transaction rolled back; what it appended is gone, the anchor stays."""\n        self._pending_anchor = None\n',
        '        """Observer: a transaction rolled back; what it appended is gone, the anchor stays."""\n',
        "A db.transaction() that appends an audit entry and then raises (rolled back), followed by a committed db.transaction(): correct keeps the anchor on the last committed entry (seq 1) and db.audit.verify() is ok; buggy writes the rolled-back entry's anchor (seq 2) at that commit and verify() reports the log broken."),
    Bug('w08_no_such_column_insert_unknown', 8, 'reliability/errors.py',
        '         r"|^near \\"|syntax error|has no column named", ErrorKind.SCHEMA),\n',
        '         r"|^near \\"|syntax error", ErrorKind.SCHEMA),\n',
        "An INSERT naming a column the table lacks (`table t has no column named x`): correct gives kind schema with 'The request does not match the database structure.'; buggy classifies it unknown with the generic 'Something went wrong' message."),
    Bug('w09_traceback_of_wrapper_not_cause', 9, 'reliability/errors.py',
        '        cause = exc or err.__cause__ or err\n',
        '        cause = err\n',
        "A UNIQUE violation through db.execute: the error record's db_traceback must end with the driver's sqlite3.IntegrityError; the buggy record's traceback ends with the DatabaseError wrapper instead."),
    Bug('w10_error_count_not_incremented', 10, 'reliability/health.py',
        '        self.errors[kind] = self.errors.get(kind, 0) + 1\n',
        '        self.errors.setdefault(kind, 1)\n',
        "Two constraint errors surfaced by db.execute: health().errors['constraint'] is 2 on the correct runtime, stays 1 on the buggy one."),
    Bug('w11_cut_off_check_assumes_4096_pages', 11, 'reliability/health.py',
        '    if page_size > 0 and size % page_size:\n',
        '    if page_size > 0 and size % 4096:\n',
        'A sound database created with page_size 1024 whose size is not a multiple of 4096: correct db.check_integrity() is ok; buggy reports it cut off inside a page (ok False).'),
    Bug('w12_backup_info_names_temp_file', 12, 'reliability/durability/backup.py',
        '            info = BackupInfo(str(final), created, size, True, last_seq)\n',
        '            info = BackupInfo(str(tmp), created, size, True, last_seq)\n',
        'db.backup() returns a BackupInfo whose path must exist (the final backup file); the buggy one names the temporary file, which no longer exists after the rename.'),
    Bug('w13_bad_backup_left_verified', 13, 'reliability/durability/recovery.py',
        '            self.store.mark_unverified(info.path, bad[0])\n',
        '',
        'Newest backup damaged on disk (same size), then db.recover(): both restore the older sound backup, but correct marks the damaged one unverified in db.backups(); buggy leaves it verified (a later restore() picks it).'),
    Bug('w14_refused_queued_write_stops_replay', 14, 'reliability/degraded/commands.py',
        '                    failures.append((entry.key, reason))\n                    failed += 1\n                    continue\n',
        '                    failures.append((entry.key, reason))\n                    failed += 1\n                    break\n',
        'Queue two write commands during a lock, the first of which violates a UNIQUE constraint at replay: correct replay sets the first aside and applies the second (pending 0); buggy stops after the refused one and leaves the second waiting.'),
    Bug('w15_audit_entries_limit_ignores_pending', 15, 'reliability/audit.py',
        '        params.append(limit - len(out))\n',
        '        params.append(limit)\n',
        'With one audit entry in the fallback file (recorded under a lock) and two in the database, db.audit.entries(limit=2) must return 2 entries; the buggy query returns 3.'),
    Bug('w16_reload_error_never_cleared', 16, 'reliability/reload.py',
        '        self.last_error = None\n',
        '',
        'Write an invalid value to the watched .env (check_now raises ConfigError), then fix it and check_now(): correct clears watcher.last_error to None; buggy keeps reporting the old ConfigError after the good reload.'),
    Bug('w17_fetch_one_miss_logged_as_one_row', 17, 'reliability/executor.py',
        '                self.observers.succeeded("fetch_one", sql, perf_counter() - t0, 0 if row is None else 1, 1)\n',
        '                self.observers.succeeded("fetch_one", sql, perf_counter() - t0, 1, 1)\n',
        'db.fetch_one on a key that matches no row with the operation log on: correct logs rows=0; buggy logs rows=1.'),
    # -- a sixth blind batch (session 21): the same method as w
    Bug('v01_closed_handle_in_transaction_raises', 1, 'reliability/connection.py',
        '            return conn.in_transaction\n        except self.module.ProgrammingError:\n            return False\n',
        '            return conn.in_transaction\n        except self.module.OperationalError:\n            return False\n',
        'Close the handle behind the runtime (db.connection.close()), then db.executemany("INSERT ...", rows): correct asks in_transaction() of the closed handle, gets False, wraps the batch in a transaction that reopens and inserts the rows; buggy lets the driver\'s ProgrammingError ("Cannot operate on a closed database") escape raw from executemany and nothing is inserted.'),
    Bug('v02_gave_up_connection_reported_healthy', 2, 'reliability/manager.py',
        '        if state is ConnectionState.UNAVAILABLE:\n            status = HealthStatus.UNAVAILABLE\n',
        '        if state is ConnectionState.RECONNECTING:\n            status = HealthStatus.UNAVAILABLE\n',
        'redo_journal=False, retry_attempts=2: the database file (and -wal/-shm) deleted under the runtime, then a write fails as unavailable (state unavailable): correct health() is unavailable ("could not be reached within the retry budget"); buggy health() says healthy with no reason while every call fails.'),
    Bug('v03_pending_migration_passes_validation', 3, 'reliability/schema.py',
        '        if pending:\n            problems.append("pending migration(s) not applied: " + ", ".join(known[v].label for v in pending))\n',
        '',
        'auto_migrate=False, migrations=[1 create table items] on a fresh database: correct validate_schema() reports ok False (pending migration) and db.execute("CREATE TABLE other ...") is refused as schema_mismatch; buggy reports ok True (pending [1] but no problem) and the write goes through.'),
    Bug('v04_auto_migrate_setting_ignored', 4, 'reliability/durability/trust.py',
        '            if only_pending and self.parts.config.auto_migrate:\n',
        '            if only_pending:\n',
        'auto_migrate=False, migrations=[1 create table items] on a fresh database: correct leaves the migration pending (no table items, validate_schema().pending == [1]); buggy applies it at startup (table items exists, current_version 1).'),
    Bug('v05_failed_rollback_keeps_undone_versions_known', 5, 'reliability/durability/trust.py',
        '        keep -= set(before) - set(after)\n',
        '',
        'Migrations 1 (down fails: DROP TABLE nope), 2 and 3 (good down steps) applied, then db.rollback_migration(0): 3 and 2 are undone, 1 fails (MigrationError); correct then knows only version 1 (validate_schema ok True, writes served); buggy still expects 2 and 3 (validate_schema ok False, "pending migration(s)", and the next write is refused as schema_mismatch).'),
    Bug('v06_statement_after_dead_handle_runs_outside_transaction', 6, 'reliability/executor.py',
        '        in_tx = self.transactions.depth > 0\n',
        '        in_tx = self.connections.in_transaction()\n',
        'Inside db.transaction(): insert row A, close the handle behind the runtime (db.connection.close()), insert row B: correct surfaces the closed handle as an error and the transaction leaves nothing (0 rows); buggy takes the closed handle for "no transaction", reopens and commits B on its own, so B is saved without A (rows [(\'B\',)]) and the block ends with a raw ProgrammingError instead of a DatabaseError.'),
    Bug('v07_failed_manual_commit_left_open_without_journal', 7, 'reliability/executor.py',
        '        if op != "execute" or in_tx or self.redo is not None or statement_kind(sql) != "commit":\n',
        '        if op != "execute" or in_tx or self.redo is None or statement_kind(sql) != "commit":\n',
        'redo_journal=False, a deferred foreign key: db.execute("BEGIN"), insert an orphan child, db.execute("COMMIT") fails (constraint): correct rolls the transaction back (db.connections.in_transaction() False, a later db.execute insert is committed and seen by another manager); buggy leaves it open (in_transaction() True, the later insert is never committed).'),
    Bug('v08_cli_database_error_shows_detail', 8, 'reliability/cli.py',
        '    out = _error(EXIT_DB_ERROR, f"{exc.user_message} (error kind: {exc.kind})", str(exc.kind),\n',
        '    out = _error(EXIT_DB_ERROR, f"{exc} (error kind: {exc.kind})", str(exc.kind),\n',
        'cli.main(["--db", db, "--json", "migrate", "--migrations", dir]) with a migration "INSERT INTO nope VALUES (1)": correct message is the plain user message ("The database update \'bad\' could not be applied, so nothing was changed..."); buggy message is the technical text ("[schema] migration 1 (bad) failed and was rolled back: OperationalError: no such table: nope").'),
    Bug('v09_first_failure_logged_twice', 9, 'reliability/executor.py',
        '            seen.append(self.errors.wrap(first, operation_id=op_id, log=False))\n',
        '            seen.append(self.errors.wrap(first, operation_id=op_id))\n',
        'A duplicate-key INSERT through db.execute: correct writes one ERROR record on the reliability logger for that operation id (with sql); buggy writes two, the first with sql None (an extra record without the statement).'),
    Bug('v10_last_backup_forgotten_at_restart', 10, 'reliability/durability/backup.py',
        '        newest = store.newest_verified()\n        if newest is not None:\n            parts.monitor.last_backup_at = newest.created_at\n',
        '',
        'db.backup(), close, open a new DatabaseManager on the same files: correct health().last_backup_at is the backup\'s created_at; buggy is None (health says no backup was ever taken).'),
    Bug('v11_cut_off_file_not_seen_at_start', 11, 'reliability/durability/verdict.py',
        '    at_rest = not any(files.file_size(path + side) for side in ("-journal", "-wal"))\n',
        '    at_rest = any(files.file_size(path + side) for side in ("-journal", "-wal"))\n',
        'A database closed cleanly, then 100 stray bytes appended to the file; start DatabaseManager(auto_recover=False): correct health() is unavailable with integrity_ok False ("ends inside a page"); buggy starts healthy with integrity_ok None.'),
    Bug('v12_no_backup_before_migration', 12, 'reliability/schema.py',
        '    return any(not str(name).startswith(INTERNAL_TABLE_PREFIXES)\n',
        '    return all(not str(name).startswith(INTERNAL_TABLE_PREFIXES)\n',
        'A database holding a user table with rows (and the runtime\'s own tables), then db.migrate([new migration]): correct takes a backup first (result.backup is a path, one more entry in db.backups()); buggy takes none (result.backup None, db.backups() unchanged).'),
    Bug('v13_replay_runs_executemany_as_one_statement', 13, 'reliability/durability/recovery.py',
        '                if many:\n                    conn.executemany(sql, params)\n                else:\n                    conn.execute(sql, params)\n',
        '                conn.execute(sql, params)\n',
        'db.backup(), then db.executemany("INSERT INTO t (v) VALUES (?)", [("a",), ("b",), ("c",)]), then db.recover(): correct replays the batch (report ok, 3 rows); buggy replays it as one execute with a list of rows, the replay stops (report not ok, "replay stopped at journal sequence ..."), the 3 acknowledged rows are lost.'),
    Bug('v14_queued_write_overtaken_by_direct_write', 14, 'reliability/degraded/commands.py',
        '        n = len(self.queue)\n        self._backlogged = True\n',
        '        n = len(self.queue)\n',
        'While another connection holds BEGIN EXCLUSIVE, a write command setting flag beta=queued is queued; the lock ends, then db.execute sets beta=direct, then db.commands.recover(force=True): correct replays the queued write before the direct one (final value direct); buggy lets the direct write go first and the replay overwrites it (final value queued).'),
    Bug('v15_audit_chain_links_to_oldest_entry', 15, 'reliability/audit.py',
        '        head = db.fetch_one("SELECT seq, hash FROM reliability_audit ORDER BY seq DESC LIMIT 1")\n',
        '        head = db.fetch_one("SELECT seq, hash FROM reliability_audit ORDER BY seq LIMIT 1")\n',
        'db.audit.record three entries, then db.audit.verify(): correct ok True; buggy chains the third entry onto the first (prev_hash of seq 1), verify() reports the chain broken (ok False, verdict broken: "the link to the previous entry is broken").'),
    Bug('v16_reloaded_connection_opens_with_old_settings', 16, 'reliability/reload.py',
        '        db.config = new\n        db.connections.config = new\n',
        '        db.config = new\n',
        'foreign_keys on, a parent/child table; .env changed to RELIABILITY_FOREIGN_KEYS=false and watcher.check_now(): correct reopens with foreign keys off (PRAGMA foreign_keys 0, an orphan child insert succeeds); buggy reopens with the old setting (PRAGMA foreign_keys 1, the insert fails as constraint).'),
    Bug('v17_oplog_misses_successes', 17, 'reliability/observers.py',
        '        if len(fns) == 1:\n',
        '        if fns:\n',
        'operation_log=True with operation_log_path: a CREATE TABLE, an INSERT and a SELECT, then close: correct writes an ok record for each (execute, execute, fetch_all); buggy hands successes only to the health metrics, the log file has no record (health().operations still counts them).'),
    # -- session 22: each planted with a new check of the session (worklist rows and mutant-sample gaps) --------
    Bug("s22_full_queue_answered_as_error", 14, "reliability/degraded/commands.py",
        '            return CommandResult("rejected", "The database is unavailable and too many changes are already "',
        '            return CommandResult("error", "The database is unavailable and too many changes are already "',
        "write_queue_max=0, a write command while another connection holds BEGIN EXCLUSIVE: it must be answered "
        "'rejected' (NOT saved, pending 0); the bug answers 'error', which a caller takes for a failing database to retry"),
    Bug("s22_text_oplog_duration_in_seconds", 17, "reliability/oplog.py",
        'kind={op} duration_ms={duration * 1000.0:.4f} ',
        'kind={op} duration_ms={duration:.4f} ',
        "operation_log on, operation_log_path set, log_json=false, a 5 ms query: its text record must say duration_ms≈5; "
        "the bug writes 0.005 (the JSON form stays right)"),
    Bug("s22_oplog_installed_when_warnings_enabled", 17, "reliability/oplog.py",
        'if path is None and not (kwargs.get("logger") or oplog_logger).isEnabledFor(logging.INFO):',
        'if path is None and not (kwargs.get("logger") or oplog_logger).isEnabledFor(logging.WARNING):',
        "configure_logging with log_level=WARNING, operation_log on without a file, a refused insert: no operation record "
        "may be emitted (no operation log is installed); the bug installs one and logs 'execute error' at WARNING"),
    Bug("s22_identity_interval_floor", 1, "reliability/executor.py",
        "        self._identity_due = t0 + self._identity_interval",
        "        self._identity_due = t0 + max(self._identity_interval, 0.05)",
        "db.identity_check_interval = 0 (or 0.01), a read, another database os.replace()d over the path, a read 12 ms "
        "later: must return the new file's row; the bug keeps serving the replaced file for 50 ms"),
    Bug("s22_places_forget_audit_fallback", 15, "reliability/degraded/places.py",
        "        if setting in WAITING and path != current.get(setting):",
        '        if setting == "write_queue_path" and path != current.get(setting):',
        "two audit entries recorded during BEGIN EXCLUSIVE (in the fallback file), restart with audit_fallback_path "
        "moved: health must be degraded naming '2 audit entries wait in <old>'; the bug says healthy and drops them in "
        "silence"),
    Bug("s22_error_record_elapsed_in_ms", 9, "reliability/errors.py",
        '                "elapsed": round(elapsed, 6),',
        '                "elapsed": round(elapsed * 1000.0, 6),',
        "a write under a lock that outlasts the retries: its ERROR record's elapsed must be seconds within the call's "
        "wall time (the bug gives ~1000x)"),
    Bug("s22_maintenance_success_unlogged", 17, "reliability/durability/parts.py",
        "                parts.records.succeeded(kind, None, perf_counter() - t0, rows, 1)",
        "                pass",
        "db.check_integrity() / db.backup() with no fault: exactly one operation record of kind check/backup, outcome ok"),
    Bug("s22_audit_details_not_validated", 15, "reliability/audit.py",
        '                problems.append(f"details must be JSON-serializable UTF-8 text: {exc}")',
        "                pass",
        "db.audit.record('alice', 'flag.set', 'beta', {'roles': {'admin'}}) (or a lone surrogate in a details key): must "
        "raise ValueError('invalid audit entry: …details…') and leave the log unchanged; the bug raises TypeError / a "
        "bare UnicodeEncodeError"),
    Bug("s22_statement_damage_verdict_only_with_auto_recover", 11, "reliability/durability/recovery.py",
        "        if found is not None or m.integrity_ok is not False or not verdict.marker(parts).present():\n",
        "        if parts.config.auto_recover and (found is not None or m.integrity_ok is not False\n"
        "                                          or not verdict.marker(parts).present()):\n",
        "auto_recover=False: a database closed cleanly, the kv table's root page damaged (corrupt fault, part btree) "
        "while no runtime runs, a new DatabaseManager, db.fetch_all('SELECT * FROM kv') fails as corrupt: health() must "
        "be unavailable with integrity_ok False and <db>.damaged written; the bug stays healthy with no mark"),
    Bug("s22_start_ignores_a_checks_damage_mark", 11, "reliability/durability/verdict.py",
        "        if check is not None and _marked_here(parts):\n            return _check_marked_file(parts, check)\n",
        "",
        "auto_recover=False: one index key changed in place (corrupt fault part index_entry), check_integrity(full=True) "
        "fails (<db>.damaged written), close, a new DatabaseManager: the start must run the full check on the marked "
        "file (integrity_ok False, last_integrity_check_at from this start); the bug starts with integrity_ok None"),
    Bug("s22_health_schema_kept_only_when_untrusted", 10, "reliability/durability/trust.py",
        "        self.schema_report = report\n        block = self.block\n        if report.ok:\n"
        "            if block.reason is not None:\n                log.info(\"schema trusted again; writes are served\")\n"
        "            block.reason = None\n        else:\n",
        "        block = self.block\n        if report.ok:\n            if block.reason is not None:\n"
        "                log.info(\"schema trusted again; writes are served\")\n            block.reason = None\n"
        "        else:\n            self.schema_report = report\n",
        "DatabaseManager(config, migrations=[1 create table items]), close, start again with the same migrations: "
        "health().extra['schema'] must be {'ok': True, 'current_version': 1, ...}; the bug shows none while writes are "
        "served"),
    Bug("s22_rollback_checks_names_not_checksums", 5, "reliability/schema.py",
        "        if m.checksum != checksum:\n",
        "        if m.name != name:\n",
        "migrations 1 and 2 with down steps applied, 2's text then edited (same name); db.rollback_migration(1, edited): "
        "must refuse naming migration 2, versions [1, 2] kept; the bug runs 2's down step"),
    Bug("s22_rollback_skips_unknown_versions", 5, "reliability/schema.py",
        "        if m is None:\n            raise _definition_error(f\"migration {version} ({name}) is recorded in the "
        "database but not among \"\n                                    \"the migrations given, so it cannot be rolled "
        "back\")\n",
        "        if m is None:\n            continue\n",
        "migrations 1, 2, 3 with down steps applied; db.rollback_migration(1, [m1, m2]): must refuse naming 3; the bug "
        "undoes 2 and reports success, the file recording [1, 3]"),
    Bug("s22_rollback_accepts_a_negative_target", 5, "reliability/schema.py",
        "    if isinstance(to, bool) or not isinstance(to, int) or to < 0:\n",
        "    if isinstance(to, bool) or not isinstance(to, int):\n",
        "db.rollback_migration(-1, migrations) with versions 1, 2 applied: must refuse 'rollback target must be a "
        "version number >= 0, got -1'; the bug acts as to=0 and undoes every version"),
    Bug("s22_reload_synchronous_needs_journal", 16, "reliability/reload.py",
        '        if "synchronous" in changed and db.redo_journal is not None:\n',
        '        if "synchronous" in changed:\n',
        "a runtime started with RELIABILITY_REDO_JOURNAL=false, then RELIABILITY_SYNCHRONOUS changed in the watched .env "
        "and check_now(): the bug raises AttributeError, the real one applies it"),
    Bug("s22_scheduler_starts_with_nothing_to_run", 16, "reliability/durability/upkeep.py",
        "            if not self.tasks or self.running:\n",
        "            if self.running:\n",
        "a runtime with every schedule interval 0: the bug starts the maintenance thread anyway, which dies at once of "
        "ValueError (an unhandled exception in thread reliability-maintenance); the real one starts no thread"),
    Bug("s22_schedule_restart_keeps_old_loop", 16, "reliability/durability/upkeep.py",
        "            self.stop(keep_wanted=True)\n",
        "            self._thread = None  # (the old loop reads the new tasks when it next wakes)\n",
        "health_check_interval reloaded from 0 to 0.03 and back to 0: the bug keeps running the health check (its old "
        "loop is never stopped); the real one runs it no more"),
    Bug("s22_inspector_follows_only_a_deleted_file", 10, "reliability/inspection.py",
        "        if self._conn is not None and files.file_identity(self.path) != self._opened:\n",
        "        if self._conn is not None and not os.path.exists(self.path):\n",
        "an Inspector that read the database, then the file at its path replaced by one that is not a database: the "
        "bug's health() still says healthy (it reads the old file); the real one says unavailable"),
    Bug("s22_inspector_health_trusts_its_connection", 10, "reliability/inspection.py",
        '        extra: dict[str, Any] = {"inspection": "read-only"}\n        self.follow_the_path()\n',
        '        extra: dict[str, Any] = {"inspection": "read-only"}\n',
        "an Inspector whose health() was asked once, then the database moved away, then health() again: the bug says "
        "healthy; the real one says unavailable"),
    Bug("s22_hwm_names_the_record_before", 13, "reliability/redo.py",
        "            os.pwrite(fd, _hwm_bytes(self._hwm_count, seq), _HWM_AT[self._hwm_count & 1])\n",
        "            os.pwrite(fd, _hwm_bytes(self._hwm_count, seq - 1), _HWM_AT[self._hwm_count & 1])\n",
        "two managers write (the second last); the second's journal loses its last transaction record(s) cut at a record "
        "boundary; the database header is overwritten (its sequence unreadable); another manager recovers: the bug "
        "reports one transaction fewer missing (or ok with the last acknowledged write gone)"),
    Bug("s22_flags_set_checks_only_the_name", 14, "reliability/admin.py",
        "    problem = validate_flag_name(name) or validate_flag_value(value)\n",
        "    problem = validate_flag_name(name)\n",
        "admin.set_flag(db, 'beta', [1, 2], admin) (or db.commands.run('flags.set', ...)): the bug stores a list as the "
        "flag and answers ok; the real one answers rejected naming the flag value"),
    Bug("s22_list_flags_before_register", 14, "reliability/admin.py",
        '    register(db)\n    return db.commands.run("flags.list")\n',
        '    return db.commands.run("flags.list")\n',
        "admin.list_flags(db) as the first call on a freshly started DatabaseManager: the bug answers rejected (Unknown "
        "command 'flags.list'), the real one ok"),
    Bug("s23_failed_migration_committed", 5, "reliability/schema.py",
        '            conn.execute("ROLLBACK")',
        '            conn.execute("COMMIT")',
        "a migration 'CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1); INSERT INTO missing VALUES "
        "(1)' on a database holding a row: correct raises MigrationError and leaves neither t nor a recorded version; "
        "buggy keeps t and its row with no version recorded (half a migration in the file)"),
    Bug("s23_queue_lock_shared_for_writers", 14, "reliability/degraded/queue.py",
        "fcntl.flock(fd, fcntl.LOCK_EX if writable else fcntl.LOCK_SH)",
        "fcntl.flock(fd, fcntl.LOCK_SH)",
        "another process puts writes in the shared write queue while this runtime replays (and compacts) it: every "
        "write acknowledged as queued must be applied or still waiting; with shared locks a compaction replaces the "
        "file while the other appends, and its writes vanish"),
    Bug("s23_sweep_trusts_age_alone", 13, "reliability/files.py",
        "or int(pid) == os.getpid() or _process_alive(int(pid)):",
        "or int(pid) == os.getpid():",
        "another live process's <db>.create-<pid>-<tid> temporary, older than LEFTOVER_AGE, when a manager starts: it "
        "must be left (its operation is in progress); the bug removes it"),
    Bug("s23_solo_dead_owner_taken_for_running", 13, "reliability/redo.py",
        "    alive = running and not own and _locked_by_someone(path)\n",
        "    alive = running and not own\n",
        "a writer process at NORMAL committing alone is killed between COMMIT and its record, a manager at FULL writes "
        "on, damage + recover from the older backup: correct reports 1 missing and holds the later ones back; the bug "
        "reports ok and the balances no longer match the transfers present"),
    Bug("s23_solo_claim_kept_at_close", 13, "reliability/redo.py",
        "        claim, self.claim = self.claim, None\n        if claim is not None:\n"
        "            claim.close()  # (the database may still name this slot alone: the next writer reads this file)\n",
        "        self.claim = None  # (the database may still name this slot alone: the next writer reads this file)\n",
        "synchronous NORMAL, every manager of the process closed: another process must find <db>.redo.solo free; the "
        "bug keeps its flock until the process exits"),
    Bug("s23_queue_descriptor_leaked", 14, "reliability/degraded/queue.py",
        "                finally:\n                    os.close(fd)  # (closing drops the flock)\n",
        "                finally:\n                    pass\n",
        "any second queue operation of one process (a command queued while the database is unavailable, then its "
        "replay): the leaked descriptor still holds the file's flock, so the bug's next flock waits forever (the main "
        "job hangs; the step watchdog fails it where it hangs, in a scenario or a machine); the real one returns"),
    Bug("s23_empty_migration_list_taken_for_none", 3, "reliability/schema.py",
        "        if self.migrations is None:\n            return SchemaReport(True, [], current, current)",
        "        if not self.migrations:\n            return SchemaReport(True, [], current, current)",
        "a database recording versions 1-4, db.validate_schema([]) (or an empty migrations folder): must report "
        "ok=False, each recorded version unknown, expected_version 0, current_version 4; the bug answers ok=True, no "
        "problems, expected_version 4 (a program with no migrations is told the schema matches)"),
    Bug("s23_degraded_only_while_writes_wait", 14, "reliability/degraded/commands.py",
        "        return self.waiting() or self.fault is not None or self._own_waiting() > 0",
        "        return self.waiting() or self._own_waiting() > 0",
        "journal_mode=DELETE, another connection holds BEGIN EXCLUSIVE, nothing queued: a read command answers "
        "unavailable (busy); db.commands.degraded must then be True (fault busy, health degraded_by busy); the bug "
        "says False while fault and health name the outage"),
    Bug("s24_lost_ranges_move_the_start", 13, "reliability/durability/lost_commits.py",
        "            if out and out[-1][1] == seq - 1:\n                out[-1][1] = seq\n",
        "            if out and out[-1][1] == seq - 1:\n                out[-1][0] = seq\n",
        "the newest backup copied over the database after three acknowledged writes, auto_recover off: the refusal "
        "must list sequences 3-5 for its 3 transactions; the bug lists '4-3, 5' (a range that runs backwards)"),
    Bug("s24_replay_count_adds_range_ends", 13, "reliability/redo.py",
        "        count = sum(b - a + 1 for a, b in plan.missing)",
        "        count = sum(b + a + 1 for a, b in plan.missing)",
        "a recovery whose journal lost its last record (sequence 8): must say '1 committed transaction(s) are "
        "missing ... (sequence 8'; the bug says 17 for the same one sequence"),
    Bug("s24_alone_commits_not_counted_lost", 13, "reliability/durability/lost_commits.py",
        "        ahead = [] if first is None else [seq for seq, _ops in state.entries[first:]]",
        "        ahead = [] if first is None else [seq for seq, _ops in state.entries[first:] if seq not in state.alone]",
        "synchronous NORMAL, one writer: a backup, four commits (three written alone), the backup copied over the "
        "database: the refusal must say 4 committed transactions are missing; the bug says 1"),
    Bug("s24_window_read_at_the_wrong_byte", 13, "reliability/redo.py",
        '            while os.pread(fd, 2, 0)[1:2] == b"\\1":',
        '            while os.pread(fd, 2, 0)[0:1] == b"\\1":',
        "a manager at NORMAL commits alone and stays open, outside its commit window; another manager (or `reliability "
        "backup`) writes: it must go on at once; the bug reads the revoke byte it has just set as an open window and "
        "waits until the owner closes (a hang: the CLI's backup times out, a step hits the watchdog)"),
    Bug("s24_sticky_mark_keeps_only_new_problems", 11, "reliability/damage_mark.py",
        "            sticky, problems = True, [*old.problems[:1], *problems]",
        "            sticky, problems = True, list(problems)",
        "another process's close wrote a sticky mark about this file (first problem 'damaged -wal: frame 7 ...'), then a "
        "statement of this runtime met btree damage in the same file: the rewritten mark must stay sticky, name this "
        "file and keep 'damaged -wal: frame 7 ...' first; the bug keeps it sticky but lists only 'database disk image "
        "is malformed'"),
    Bug("s24_mark_file_read_as_tuple", 11, "reliability/damage_mark.py",
        "            file=(int(file[0]), int(file[1])) if isinstance(file, list) and len(file) == 2 else None,",
        "            file=(int(file[0]), int(file[1])) if isinstance(file, tuple) and len(file) == 2 else None,",
        "the same sticky mark, then a statement meets damage: the mark (file [dev, ino] in JSON) is read back about no "
        "file, so the statement's verdict overwrites it with a plain one (sticky False) that a later clean check "
        "removes; health's damage_mark says file None"),
    Bug("s24_marker_error_kept_after_a_clean_check", 10, "reliability/durability/verdict.py",
        "        _failed(parts, \"removed\", exc)\n    else:\n        m.damage_mark_error = None\n",
        "        _failed(parts, \"removed\", exc)\n",
        "a symlink planted at <db>.damaged, a clean full check (the marker cannot be removed: health degraded naming "
        "it), the link removed, a clean check again: health must name no marker error; the bug keeps 'the damage "
        "marker ... could not be removed' as a reason for good (status degraded)"),
    Bug("s24_rollback_not_counted", 7, "reliability/transaction.py",
        "            self.rollbacks += 1\n            self.observers.rolled_back()\n\n    def run(",
        "            self.observers.rolled_back()\n\n    def run(",
        "KeyboardInterrupt raised inside db.transaction() and caught outside it: db.transactions.rollbacks must go up "
        "by one; the bug leaves it unchanged"),
    Bug("s24_transaction_skips_backlog", 14, "reliability/manager.py",
        "        if not self.transactions.depth:\n            self.executor.replay_backlog(\"transaction\", None, None)\n"
        "        t0 = perf_counter()\n",
        "        t0 = perf_counter()\n",
        "a write command queued during a lock, the lock released, then with db.transaction() reading that row: it must "
        "read the queued value with nothing queued; the bug reads the old value and the replay later overwrites the "
        "transaction's write"),
    Bug("s24_queue_seq_not_advanced", 14, "reliability/degraded/queue.py",
        "            self._seq = entry.seq\n",
        "",
        "two write commands queued during one lock: pending() must number them 1, 2 (and the file's put records too); "
        "the bug gives both seq 1"),
    Bug("s24_queue_lines_from_one", 14, "reliability/degraded/queue.py",
        "            self._ident, self._offset, self._lines = ident, 0, 0\n",
        "            self._ident, self._offset, self._lines = ident, 0, 1\n",
        "a queue file whose line 2 is a cut-off record, read at start: the ERROR record must say 'line 2 is "
        "unreadable'; the bug says line 3"),
    Bug("s24_recover_hot_journal_not_reported", 13, "reliability/cli.py",
        "            rolled_back = True\n", "            rolled_back = False\n",
        "a writer SIGKILLed mid-transaction in a DELETE-mode database (hot -journal), then `reliability recover`: must "
        "exit 0 saying it rolled back an interrupted transaction (rolled_back true); the bug rolls it back and says "
        "'nothing to recover ... nothing was changed'"),
    # (Since session 29 such a name is refused, naming both files (resolve_backup_name): the bug takes the backup
    # folder's file silently, as the s24 bug did in the command line's own lookup, which is gone.)
    Bug("s24_restore_prefers_backup_folder", 12, "reliability/durability/backup.py",
        "    if len(found) > 1:\n        here, there",
        "    if len(found) > 1:\n        found.reverse()\n    if len(found) > 2:\n        here, there",
        "`reliability restore backup-X.sqlite` run in a folder holding the operator's own copy named backup-X.sqlite "
        "while the backup folder holds backup-X.sqlite: must be refused naming both files; the bug restores the "
        "backup folder's backup-X.sqlite"),
    Bug("s24_error_name_gives_code", 9, "reliability/errors.py",
        "    return sqlite_code(exc)[1]", "    return sqlite_code(exc)[0]",
        "a UNIQUE violation: error_name() must be 'SQLITE_CONSTRAINT_UNIQUE' (3.11+; 'SQLITE_CONSTRAINT' on 3.10); "
        "the bug gives 2067 (19 on 3.10)"),
    Bug("s24_reload_interval_zero_keeps_watching", 16, "reliability/reload.py",
        "        if interval <= 0 and alive:", "        if interval < 0 and alive:",
        "the watched file sets config_reload_interval=0.02, then 0: a later change of retry_attempts must wait for "
        "check_now(); the bug's thread keeps checking (without pause) and applies it within milliseconds"),
    Bug("s24_inspection_reads_whole_header", 11, "reliability/inspection.py",
        "        head = files.read_database_head(path, 20)", "        head = files.read_database_head(path, 100)",
        "`reliability check` on the stopped application's WAL database at rest (no -wal/-shm): must leave no sidecar "
        "files; the bug never takes the file for a WAL database at rest and leaves app.db-wal and app.db-shm behind"),
    Bug("s24_refused_replay_counts_a_skip", 14, "reliability/degraded/commands.py",
        "            return ReplayReport(0, 0, 0, len(self.queue), str(ErrorKind.CORRUPT))",
        "            return ReplayReport(0, len(self.queue), 0, len(self.queue), str(ErrorKind.CORRUPT))",
        "corruption in force and met by a statement, a write command queued, then db.commands.replay(): must report "
        "applied 0, skipped 0, failed 0, remaining 1, error 'corrupt'; the bug reports the waiting write as skipped "
        "(skipped means: found applied already)"),
    Bug("s25_b_reconcile_keeps_journal_locks", 13, "reliability/redo.py",
        "            os.close(fd)  # releases the lock\n",
        "            pass  # (the descriptor kept open, and with it the lock)\n",
        "a second manager writes and closes (a second journal), the first one is killed after a COMMIT and restarted "
        "on what the kill left: once it is open, every journal but its own must be free (flock); the bug keeps the "
        "lock of each stopped journal its startup reconciled, so it looks alive to every process"),
    Bug("s25_b_commit_check_reads_a_closed_handle", 2, "reliability/transaction.py",
        "        try:\n            open_tx = conn.in_transaction\n",
        "        open_tx = conn.in_transaction\n        try:\n            pass\n",
        "inside with db.transaction(): a write, the connection closed under the runtime, the next statement's error "
        "caught, the block left normally: it must fail with a DatabaseError; the bug lets sqlite3's raw "
        "ProgrammingError 'Cannot operate on a closed database' out of the block"),
    Bug("s25_b_removed_index_kept_by_other_handles", 13, "reliability/connection.py",
        "                other._close_quietly()\n                other.state = ConnectionState.RECONNECTING",
        "                other.state = ConnectionState.RECONNECTING",
        "two managers in this process, the -wal and -shm removed, one manager saves the removed WAL and reopens: "
        "then another process commits a row; every manager here must serve it; the bug leaves the other handle "
        "open on the removed index, shared by every connection opened here since, and they read without it"),
    Bug("s26_recovery_leaves_other_managers_on_the_old_file", 13, "reliability/durability/recovery.py",
        "    parts.connections.replaced_here()\n    installed = ",
        "    installed = ",
        "two managers in this process; manager 0 recovers (a new file at the path), another process commits a row, "
        "and manager 1 reads at once: it must serve the row; the bug leaves manager 1 reading the quarantined file "
        "until its identity-check interval runs out"),
    Bug("s26_fetch_one_write_on_the_read_path", 13, "reliability/executor.py",
        "        if not reads_only(sql):\n            return self.write(sql, params).fetchone()\n",
        "",
        "a transfer inside run_in_transaction books its row with fetch_one('INSERT ... RETURNING id'); then damage "
        "and recover(): the bug runs it on the read path, outside the block's redo record, and recovery replays "
        "the balances without the row (ok, yet an acknowledged transfer is missing)"),
    Bug("s26_unanchored_journal_reported_as_loss", 13, "reliability/redo.py",
        "        if self.error is None or (self.owned and self._end < 0 and not self.unrecorded):",
        "        if self.error is None:",
        "damage, then recover() by a manager started beside the live writers (reliability recover while the service "
        "runs): its journal never anchored and took no write; the bug reports its startup error as a loss, ok=False "
        "with every acknowledged write back"),
    Bug("s25_b_orphan_past_the_mark_kept", 13, "reliability/redo.py",
        "    if not orphans and not (state.hwm or 0) > max(live[-1] if live else 0, last):",
        "    if not orphans or not (state.hwm or 0) > max(live[-1] if live else 0, last):",
        "synchronous FULL: a process killed between writing a journal record and moving the high-water mark to it "
        "(before COMMIT), restarted: the journals must merge into what the database committed; the bug leaves the "
        "orphan record unmarked (the mark is not past it), and the journals then claim a committed sequence the "
        "database never had"),
    Bug("s25_statement_after_sqlite_rollback_runs", 6, "reliability/executor.py",
        "                if self.transactions.depth and self.connections.transaction_ended():  # (see ended_transaction)\n",
        "                if False:  # (see ended_transaction)\n",
        "with db.transaction(): a write, then a statement meets SQLITE_FULL (SQLite rolls the transaction back), the "
        "caller swallows it, space comes back, the block writes 'later': the block must fail with 'later' not in "
        "the file; the bug runs 'later' in autocommit mode, saved on its own while the block says nothing was saved"),
    Bug("s25_c_config_origin_forgets_environment", 16, "reliability/config.py",
        '    where.update({k: "environment" for k in environ if k.startswith(ENV_PREFIX)})\n', "",
        "RELIABILITY_JOURNAL_MODE=sideways in the environment, then `reliability config show`: the configuration error "
        "must say 'environment: RELIABILITY_JOURNAL_MODE=...'; the bug names no origin (or the .env line when the file "
        "sets the key too, though the environment's value is the one in force)"),
    Bug("s25_c_rejected_lines_not_synced", 15, "reliability/audit.py",
        '            os.write(fd, "".join(line + "\\n" for line in lines).encode("utf-8", "replace"))\n            os.fsync(fd)\n',
        '            os.write(fd, "".join(line + "\\n" for line in lines).encode("utf-8", "replace"))\n',
        "a fallback line edited in the file, rejected at reconcile, a later entry chained, then a power loss: the line "
        "must still be in <fallback>.rejected after the restart; the bug leaves the file there but empty"),
    Bug("s25_c_failed_undo_worded_as_rolled_back", 5, "reliability/schema.py",
        '    what = "failed and was rolled back" if verb == "applied" else "could not be undone and was left as it was"',
        '    what = "failed and was rolled back" if verb != "applied" else "could not be undone and was left as it was"',
        "db.rollback_migration(to) over a migration whose down step fails: the MigrationError must say that migration "
        "could not be undone (it is still applied); the bug says it 'failed and was rolled back'"),
    Bug("s25_c_audit_details_not_canonical", 15, "reliability/audit.py",
        '    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)',
        '    return json.dumps(details, sort_keys=False, separators=(",", ":"), ensure_ascii=False, allow_nan=False)',
        "db.audit.record(..., details={'who': 'x', 'note': 'y'}): the stored details must be the canonical JSON "
        "'{\"note\":\"y\",\"who\":\"x\"}' (keys sorted); the bug stores the caller's order, so the text and the hash "
        "depend on how the dict was built"),
    Bug("s25_a_backup_left_in_wal_mode", 12, "reliability/durability/backup.py",
        '                dest.execute("PRAGMA journal_mode = DELETE")\n',
        "",
        "db.backup() of a WAL database, then the backup opened read-only: must be a rollback-journal database "
        "(journal_mode 'delete') that leaves nothing beside it; the bug's backup is a WAL database, and the read "
        "(like the runtime's own verification before a restore) leaves <backup>-wal and <backup>-shm behind"),
    Bug("s25_a_install_not_fsynced", 13, "reliability/durability/backup.py",
        "    _fsync_file(Path(path))\n",
        "    pass\n",
        "db.recover() after damage (or db.restore()) under the power-loss model: a power loss right after it must leave "
        "the installed file's bytes at the database's path; the bug renames an unsynced copy into place, so the power "
        "loss leaves an empty file (every acknowledged write gone)"),
    Bug("s25_a_refused_copy_quick_checks_source", 12, "reliability/durability/upkeep.py",
        "                self.check_integrity(full=True)\n            raise\n",
        "                self.check_integrity(full=False)\n            raise\n",
        "auto_recover off, one index entry of kv changed in place (corrupt part index_entry), then db.backup(): the copy "
        "fails integrity_check and is refused; the real runtime's full check of the source marks it damaged (health "
        "not healthy, <db>.damaged written); the bug's quick check passes and health stays healthy"),
    Bug("s26_d_health_text_crashes", 10, "reliability/cli.py",
        '    lines = [f"status: {report.status}"] + [f"  - {safe(r)}" for r in report.reasons]',
        '    lines = [f"status: {report.status}"] + [f"  - {safe(r)}" for r in report.reasons.items()]',
        "a btree page of kv damaged at rest, then `reliability --json health`: the real command answers exit 1 "
        "(unhealthy); the bug crashes putting the reasons into words and answers exit 3 with error kind 'internal' "
        "(a bug in dbfault), which an exit-code-only check takes for the database's error"),
    Bug("s26_d_replay_counts_every_write_skipped", 14, "reliability/degraded/commands.py",
        "            skipped += not done\n",
        "            skipped += 1\n",
        "write commands 'claim' of a new name, a taken one and another new one during a lock, then db.commands."
        "replay(): the report must count 2 applied, 0 already applied, 1 set aside (3 in all, the writes queued); the "
        "bug counts every replayed write as already applied too (skipped 3)"),
    Bug("s26_d_tx_conn_attrs_from_the_class", 6, "reliability/tx_connection.py",
        "        return getattr(self._raw, name)",
        "        return getattr(type(self._raw), name)",
        "inside `with db.transaction() as conn`, after a write: conn.in_transaction must be True (the live "
        "connection's); the bug reads attributes off sqlite3.Connection's class and answers its property object"),
    Bug("s26_d_publish_leaves_the_claim", 13, "reliability/redo.py",
        "        claim.revoke()\n        claim.wait_window()",
        "        claim.wait_window()",
        "two managers of one process at synchronous NORMAL (the first holds the claim to commit alone): transfers "
        "through the first, the second, the first: the second publishes the first's run alone but the bug never "
        "revokes its claim, so the first goes on committing alone and numbers its next transfer with the sequence "
        "the second already took (a recovery then replays them in the wrong order)"),
    Bug("s27_health_stays_on_the_replaced_file", 10, "reliability/manager.py",
        "                    and not self.connections.in_transaction() and self.connections.file_replaced()):",
        "                    and not self.connections.in_transaction() and self.connections.file_replaced() and 0):",
        "two managers in this process; one recovers the database (a sound file installed, ok): the other's health, "
        "asked before any read of its own, must judge the installed file; the bug leaves it judging the handle on the "
        "quarantined file (unavailable, readonly_dbmoved) until some other call reopens"),
    Bug("s27_a_unverified_counts_keys", 15, "reliability/audit.py",
        "                unknown[kid] = unknown.get(kid, 0) + 1",
        "                unknown[kid] = 1",
        "three entries, then a restart with a new audit key and the old one not listed: verify() must count 3 "
        "unverified entries (the first: entry 1); the bug counts the keys not configured (1)"),
    Bug("s27_a_unverifiable_only_by_the_anchor", 15, "reliability/audit.py",
        '        if unknown or state.startswith("unverifiable"):',
        '        if state.startswith("unverifiable"):',
        "entries, a restart with a new audit key and the old one not listed, then db.audit.reanchor() (the anchor "
        "now under the new key): verify() must still say unverifiable naming the old key; the bug lets only the "
        "anchor decide and says ok with the old entries unchecked"),
    Bug("s27_a_fallback_rejects_the_torn_tail", 15, "reliability/audit.py",
        "                    if n < len(lines) or not torn_tail:  # only a torn last line (crash mid-append) is expected",
        "                    if True:  # only a torn last line (crash mid-append) is expected",
        "entries waiting in the fallback file during a lock, one edited by hand, and the file ending with a line torn "
        "by a crash mid-append: reconcile() must reject the edited line and only skip the torn one; the bug notes the "
        "torn line in the log as audit.fallback_rejected and keeps it in <fallback>.rejected, as if edited"),
    Bug("s27_a_queue_catch_up_from_the_top", 14, "reliability/degraded/queue.py",
        "            os.lseek(fd, self._offset, os.SEEK_SET)  # (appends ignore the position: O_APPEND)",
        "            os.lseek(fd, 0, os.SEEK_SET)  # (appends ignore the position: O_APPEND)",
        "a queued flags.set, the runtime restarted and settled (it has read the queue file), then a damaged line "
        "appended to the file by another process and WriteQueue.refresh(): one ERROR must name that line by its "
        "number in the file; the bug's catch-up reads the file again from the top and names line 3 of a 2-line file"),
    Bug("s27_c_failed_write_left_captured", 13, "reliability/manager.py",
        "        except BaseException:\n            redo.discard()\n            if conn.in_transaction:\n                try:",
        "        except BaseException:\n            if conn.in_transaction:\n                try:",
        "redo journal on, a backup, the redo sequence table's root page damaged on disk: a write outside a transaction "
        "fails at its commit (CORRUPT, no sequence); db.recover(), one acknowledged write, db.recover() again: the bug "
        "leaves the failed write's statement captured, the next record carries it and the second recovery replays a "
        "write the application was told failed"),
    Bug("s27_c_second_index_outside_wal", 13, "reliability/connection.py",
        '        if cfg.journal_mode.lower() == "wal":\n            _refuse_a_second_index(cfg.db_path)',
        '        if cfg.journal_mode.lower() != "wal":\n            _refuse_a_second_index(cfg.db_path)',
        "WAL: the -wal and -shm removed while the managers of this process hold the database open, then a new worker "
        "process starts and writes: the bug no longer refuses it (the check runs outside WAL mode only), so it builds "
        "a second index from an empty WAL, commits into a history the managers here never see, and the recovery "
        "that follows cannot bring every acknowledged transfer back"),
    Bug("s27_b_oplog_directory_not_made", 17, "reliability/oplog.py",
        "        self.path.parent.mkdir(mode=files.DIR_MODE, parents=True, exist_ok=True)\n",
        "",
        "operation_log on, operation_log_path naming a file in a directory that does not exist yet: the manager "
        "must start and write one record per statement there; the bug opens the file without making its directory "
        "(the manager does not start: FileNotFoundError)"),
    Bug("s27_b_config_action_optional", 16, "reliability/cli.py",
        'csub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")',
        'csub = config.add_subparsers(dest="config_command", required=False, metavar="ACTION")',
        "`reliability --db app.db config` with no action: a usage error, exit 2 naming ACTION; the bug lets the "
        "action be left out and the command reaches no handler (exit 3, an internal error)"),
    Bug("s27_b_rollback_open_recovers_unasked", 13, "reliability/cli.py",
        "            with _manager(config, auto_recover=False) as db:\n                try:\n",
        "            with _manager(config, auto_recover=True) as db:\n                try:\n",
        "an older copy of the stopped application's rollback-journal database put back after its last committed "
        "write, then a writer killed mid-transaction (hot journal): `reliability recover` must recover (exit 0, "
        "recovered true) and the file hold every acknowledged row; the bug's rollback opens a runtime that recovers "
        "on its own at start, and the command reports a rollback only (recovered false)"),
    Bug("s27_b_recover_refused_after_rollback", 13, "reliability/cli.py",
        "                try:\n                    db.fetch_one(\"SELECT count(*) FROM sqlite_master\")\n"
        "                except DatabaseError as refused:\n",
        "                if True:\n                    db.fetch_one(\"SELECT count(*) FROM sqlite_master\")\n"
        "                if False:\n",
        "an older copy of the stopped application's rollback-journal database put back after its last committed "
        "write, then a writer killed mid-transaction (hot journal): `reliability recover` must recover (exit 0); the "
        "bug lets the rollback's runtime refuse the file (commits missing) and the command exits 3 saying to run "
        "`reliability recover`"),
    Bug("s28_queued_answer_says_unavailable", 14, "reliability/degraded/commands.py",
        "        fault = self.fault or ErrorKind.UNAVAILABLE\n",
        "        fault = self.fault and ErrorKind.UNAVAILABLE\n",
        "a write command sent while another connection holds the write lock: it is queued and its answer must name "
        "the fault in force ('locked', what db.commands.fault says, a message asking to wait); the bug names "
        "'unavailable' (the database gone) whenever the registry is degraded, and crashes the answer when it is not"),
    Bug("s28_b_fallback_append_glued_to_torn_line", 15, "reliability/audit.py",
        '                files.write_all(fd, (b"\\n" if torn else b"") + line.encode("utf-8"))\n',
        '                files.write_all(fd, line.encode("utf-8"))\n',
        "the audit fallback file left ending with a line torn by a crash mid-append (no newline), then one more "
        "entry recorded during the outage (acknowledged as pending): it must be chained at reconcile; the bug appends "
        "it onto the torn fragment, and reconcile drops the glued last line as a crash's torn append (lost in "
        "silence)"),
    Bug("s28_c_recovered_elsewhere_not_seen", 13, "reliability/durability/recovered_elsewhere.py",
        "    if not report.ok:\n        return None  # the replacement is damaged too: recover it",
        "    if report.ok:\n        return None  # the replacement is damaged too: recover it",
        "two managers of one process on a damaged database (redo journal on, a backup), manager A recover()s, then "
        "manager B, its connection still on the file it saw damaged, recover()s: it must find the sound file A "
        "installed (ok, nothing quarantined, no backup installed); the bug reads the new file's quick_check the "
        "wrong way round, quarantines the sound database and rebuilds it from the backup (and would take a damaged "
        "replacement for a recovered one)"),
    Bug("s28_c_permission_callback_not_called", 14, "reliability/degraded/commands.py",
        "            return bool(callback(actor, command))",
        "            return bool(callback)",
        "admin.register(db, permission=fn) with fn allowing only actor 'delegate' to run flags.set, and "
        "RELIABILITY_ADMIN_ACTORS not naming 'mallory': flags.set by 'mallory' must be denied (audited, nothing "
        "changed); the bug never calls the callback, takes the function itself for a yes and lets anyone set flags"),
    Bug("s28_c_sqlite_rollback_unnoticed", 6, "reliability/connection.py",
        "            return not conn.in_transaction\n",
        "            return False\n",
        "inside `with db.transaction()`: an insert, then INSERT OR ROLLBACK of the same key (a conflict: SQLite rolls "
        "the whole transaction back), the error caught, another insert, the block left normally: the block must fail "
        "and the file hold none of its rows; the bug never notices SQLite's rollback, so the last insert runs in "
        "autocommit mode and is saved on its own while the block reports that nothing was saved"),
    Bug("s28_c_closed_manager_reopens", 2, "reliability/manager.py",
        "            self.connections.close()\n            self.connections.closed_for_good = True\n",
        "            self.connections.close()\n",
        "db.close(), then db.execute('INSERT ...') through the same manager (an application that kept a reference): it "
        "must be refused as misuse and the row must not be in the file; the bug's closed manager opens a new "
        "connection and commits the write with its redo journal closed (no recovery could bring it back)"),
    Bug("s28_c_audit_since_exclusive", 15, "reliability/audit.py",
        '            where.append("ts >= ?")',
        '            where.append("ts > ?")',
        "three audited flag changes, then admin.audit(db, action='flag.set', since=<the ts of the middle entry>, "
        "caller=<an administrator>): it must give the middle entry and the one after it (README `reliability audit "
        "--since`: at or after); the bug leaves out the entry of that very time"),
    Bug("s29_invalid_actor_is_an_administrator", 14, "reliability/degraded/commands.py",
        "        if validate_actor(actor) is not None:\n            return False\n",
        "        if validate_actor(actor) is not None:\n            return True\n",
        "admin.is_authorized(db, 'm' * 201, 'flags.set') (an actor name longer than an actor may have): must be False, "
        "as every command refuses that name; the bug says True, so an application asking the public question before "
        "its own admin action lets an invalid name through (the commands validate the name first and hide it)"),
    Bug("s29_backup_without_manifest_unlisted", 12, "reliability/durability/backup.py",
        "            if manifest is None:\n                out.append(BackupInfo(str(path), st.st_mtime, size, False, None))\n"
        "                continue\n",
        "            if manifest is None:\n                continue\n",
        "a verified backup whose manifest (<backup>.json) is then deleted: db.backups() must still list it, "
        "unverified (\"every backup in the directory\"); the bug leaves it out, so an operator never sees the copy"),
    Bug("s29_restore_keeps_its_own_sequence", 13, "reliability/durability/recovery.py",
        "        reached = self._sequence_reached() if self.redo is not None else 0\n",
        "        reached = max(self.redo.seen, self.redo.seq) if self.redo is not None else 0\n",
        "a backup, a second manager writes two rows (journaled in its own slot), the first restores the backup and "
        "writes two rows, then the database is damaged and recovered: the recovery must be ok with the two rows; the "
        "bug moves the restored file's sequence only past what the restoring manager saw, hands the second manager's "
        "numbers out again, and the recovery finds two records per sequence (not ok, the two rows lost)"),
    Bug("s29_startup_lock_never_rechecked", 3, "reliability/durability/trust.py",
        "            self._schema_unchecked = isinstance(exc, DatabaseError) and retryable_in_maintenance(exc)\n",
        "            unchecked = isinstance(exc, DatabaseError) and retryable_in_maintenance(exc)  # noqa: F841\n",
        "a runtime started with migrations (one pending, auto_migrate) while another process holds the database "
        "locked past the retry policy, then the lock released: the runtime must check the schema again in the "
        "background and serve writes; the bug never schedules the re-check, so writes stay refused until a restart"),
    Bug("s29_queue_folder_parents_not_made", 14, "reliability/degraded/queue.py",
        "self.path.parent.mkdir(mode=files.DIR_MODE, parents=True, exist_ok=True)",
        "self.path.parent.mkdir(mode=files.DIR_MODE, parents=False, exist_ok=True)",
        "write_queue_path two folders deep that do not exist yet, then a write command during a lock: it must be "
        "queued (the queue makes its folders); the bug makes only the last folder, so the first queued write fails"),
    Bug("s28_c_invalid_actor_denied", 14, "reliability/degraded/commands.py",
        '                return CommandResult("rejected", f"{problem} Nothing was changed.")',
        '                return CommandResult("denied", f"{problem} Nothing was changed.")',
        "admin.set_flag(db, 'flag-3', 1, 'm' * 201) (an actor name longer than the 200 characters an actor may "
        "have): must answer rejected (bad input, nothing changed, the name stored nowhere); the bug answers denied, "
        "as for a valid name that is merely not allowed"),
    Bug("s28_d_removed_wal_handle_counts_itself", 13, "reliability/connection.py",
        "        if any(other is not self and other._conn is not None and other._identity == identity\n",
        "        if any(other._conn is not None and other._identity == identity\n",
        "the -wal and -shm removed under a manager with acknowledged frames in the WAL, then another application "
        "(plain SQLite, another process) commits a row on the last checkpoint's state and closes: the manager must "
        "keep its handle on the removed WAL open and refuse (unavailable) until a recovery; the bug counts the "
        "handle itself as another holder of the file, closes it as the last, whose checkpoint writes the old frames "
        "over the other application's commit, and the manager says healthy without that row"),
    Bug("s28_d_gap_merged_over_a_journaled_sequence", 13, "reliability/redo.py",
        "            if plan.missing and plan.missing[-1][1] == seq - 1:\n",
        "            if plan.missing and plan.missing[-1][1] != seq - 1:\n",
        "two managers of one process writing in turn, one's redo journal deleted, then damage and a recovery: the "
        "report must say how many transactions are missing and how many later ones were held back, the two making up "
        "every sequence from the first gap to the last the journals reach; the bug merges a missing sequence into "
        "the previous gap over the journaled one between them (one more said missing) and splits consecutive ones"),
    Bug("s28_d_unreadable_inspection_without_reason", 10, "reliability/inspection.py",
        '            reasons.append(f"the database cannot be read: {err.detail} ({err.kind})")\n',
        "            pass\n",
        "the application stopped, an Inspector (what `reliability health` reads through) reads the database, then the "
        "file is moved away or replaced by one that is no database: asked again, its health must be unavailable and "
        "say why; the bug reports unavailable with no reason at all"),
    Bug("s28_block_comment_hides_the_write", 13, "reliability/executor.py",
        '            text = text.split("*/", 1)[1].lstrip() if "*/" in text else ""',
        '            text = text.split("*/", 1)[0].lstrip() if "*/" in text else ""',
        "an autocommit write whose SQL starts with a block comment (/* tag */ INSERT ...), then damage and recovery: "
        "it must be journaled and come back; the bug reads the comment as an empty statement, runs the write outside "
        "the redo journal, and the runtime says its writes may not be replayable"),
    Bug("s29_a_fetch_all_write_on_the_read_path", 13, "reliability/executor.py",
        "        if not reads_only(sql):\n            return self.write(sql, params).fetchall()\n",
        "",
        "a transfer inside run_in_transaction books its row with fetch_all('INSERT ... RETURNING id'); then damage "
        "and recover(): the bug runs it on the read path, outside the block's redo record, and recovery replays "
        "the balances without the row (ok, yet an acknowledged transfer is missing)"),
    Bug("s29_a_fetch_all_write_drops_its_first_row", 13, "reliability/executor.py",
        "            return self.write(sql, params).fetchall()\n",
        "            return self.write(sql, params).fetchall()[1:]\n",
        "a transfer books its row with fetch_all('INSERT ... RETURNING id'): the call must return that row; the bug "
        "returns the write's rows but the first (none for a one-row insert)"),
    Bug("s29_a_refusal_leaves_out_the_record_in_doubt", 13, "reliability/durability/lost_commits.py",
        "        if self.possibly:\n            parts.append(self.describe_possibly())\n",
        "",
        "at synchronous FULL a worker process acknowledges transfers and is killed -9 after its journal record of the "
        "next one, before COMMIT; the -wal is removed and the service starts again: the refusal must count the lost "
        "commits and name that last record apart (possibly missing); the bug leaves it out of the refusal"),
    Bug("s29_d_migration_with_foreign_keys_on", 4, "reliability/schema.py",
        '        conn.execute("PRAGMA foreign_keys = OFF")\n',
        "        pass\n",
        "db.migrate() of a migration marked -- reliability: foreign_keys=off that rebuilds a parent table (new table, "
        "rows copied, old one dropped, new one renamed) while a child row names a parent: it must be applied; the bug "
        "leaves foreign keys on, so dropping the parent fails and the migration is refused"),
    Bug("s29_d_stray_down_file_ignored", 5, "reliability/schema.py",
        '            raise _file_error(f"migration file {str(path)!r}: no matching up migration for version {version}",\n'
        "                              path)\n",
        "            continue\n",
        "db.migrate(folder) or db.rollback_migration(to, folder) with a folder holding 7_x.down.sql and no up file of "
        "version 7: must be refused as a schema error naming the file, nothing changed; the bug ignores the file and "
        "migrates (or rolls back) as if it were not there"),
    Bug("s29_c_no_outside_fence", 13, "reliability/durability/recovery.py",
        "            if exc.kind is ErrorKind.IOERR:\n                # This process may read",
        "            if exc.kind is ErrorKind.BUSY:\n                # This process may read",
        "the -wal and -shm removed under live managers while the tables live only in the removed WAL, another "
        "application opens the database, then recover() in the managers' process: its fence connection reads through "
        "the removed WAL's index and fails with a disk I/O error; the bug never fences from a helper process, and "
        "recover() raises ioerr (the data-loss machine's another_application_opens_after_removal)"),
    Bug("s29_c_beside_journal_never_anchors", 13, "reliability/durability/journal.py",
        "                self._register_slot()\n                self._anchor(state, backup, recover, force=True, "
        "deferred=True)\n",
        "                self._register_slot()\n",
        "a manager started on a damaged file (its anchoring backup fails the check), another manager of the process "
        "recovers, the first writes, then the same damage and a recovery: the bug records the slot but takes no "
        "anchoring backup on the recovered file, so the write goes into no journal and the recovery loses it or "
        "reports it missing with every journal intact (the data-loss machine's corrupt_and_recover, who 3, odd pick)"),
    Bug("s29_c_stale_backup_unreported", 10, "reliability/durability/__init__.py",
        "                and time.time() - m.last_backup_at > 2 * cfg.backup_interval:",
        "                and time.time() - m.last_backup_at > 3 * cfg.backup_interval:",
        "a runtime started when its newest verified backup is 2.5 times its backup_interval old (two scheduled "
        "backups missed): health must not be healthy; the bug waits for three intervals and says healthy (the "
        "restart machine's clean_restart_keeps_durable_health)"),
    Bug("s29_b_queue_unreadable_episode_forgotten", 17, "reliability/degraded/queue.py",
        "            return False\n        self._unreadable = None\n        return True\n",
        "            return False\n        return True\n",
        "a link planted at the write queue path, a direct write (an ERROR record says it cannot be read), the link "
        "replaced by another queue file (read anew), a link planted again and a direct write: a second ERROR record "
        "is due; the bug keeps the last error across the readable period and logs the second episode not at all"),
    Bug("s29_b_rolled_back_answered_try_again_later", 8, "reliability/transaction.py",
        "    return TransactionError(ErrorKind.ROLLED_BACK, detail or (\n",
        "    return TransactionError(ErrorKind.UNKNOWN, detail or (\n",
        "inside `with db.transaction()`: an insert, then INSERT OR ROLLBACK of the same key (SQLite rolls the whole "
        "transaction back), the error swallowed, another insert: it and the block must fail as rolled_back, whose "
        "message says nothing was saved and does not invite a retry; the bug answers with the generic unknown kind, "
        "'Please try again later', though a retry meets the same conflict"),
    Bug("s29_b_ambiguous_backup_name_taken", 12, "reliability/durability/backup.py",
        "    if len(found) > 1:\n",
        "    if len(found) > 2:\n",
        "`reliability restore NAME` run in a folder holding another file of the backup's name (the operator's copy "
        "of the database) while the backup folder holds the backup: it must be refused naming both files, the "
        "database untouched; the bug silently restores the working directory's file"),
    Bug("s29_e_orphan_stands_in_for_a_lost_commit", 13, "reliability/redo.py",
        "        if last < seq and (state.hwm is None or seq <= state.hwm):\n",
        "        if last < seq and state.hwm is None:\n",
        "three managers, one a worker process killed -9 between its durable record G and COMMIT (nobody opens after "
        "it), another manager commits G (acknowledged) and then G + 2, the third G + 1; the second one's journal is "
        "cut where its record G starts and the database header damaged: recovery must not replay the orphan and "
        "must count G missing (3 with the held-back G + 1); the bug asks whether a journal lost records that may "
        "have held G only of a journal whose header block is gone, not of one cut short below its high-water mark, "
        "takes the orphan for G's committed record (a later sequence exists), replays a transfer nobody was told about in place of the acknowledged one and "
        "reports one transaction missing where two acknowledged ones are gone (tests/test_s29_e_contested_sequence.py; "
        "the data-loss machine's cut_tail_unreadable_sequence after a killed worker)"),
    Bug("s29_f_reload_forgets_applied_file", 16, "reliability/reload.py",
        "        self._signature = signature\n        self.last_error = None\n",
        "        self.last_error = None\n",
        "a restart-only setting (backup_dir) changed in the watched file and applied, then check_now() again with "
        "the file unchanged: nothing is logged about the configuration; the bug rereads the file at every look and "
        "warns again that the setting waits for a restart (the config machine's reload_sweep)"),
    Bug("s29_f_unjournaled_writer_from_zero_unnamed", 13, "reliability/redo.py",
        "        if seq >= 0:\n            out.append(f\"a manager without a redo journal",
        "        if seq > 0:\n            out.append(f\"a manager without a redo journal",
        "a journaled manager takes a backup of a database still at sequence 0, a manager without a redo journal "
        "opens, writes and does not close, the file is damaged and the journaled one recovers: the report must not "
        "be ok with that write missing; the bug takes the writer registered at sequence 0 for one that closed "
        "there and says ok (the backup machine's unjournaled_writer_after_the_backup, before=0)"),
    Bug("s29_f_fresh_journal_sees_sequence_1", 13, "reliability/redo.py",
        "        self.seen = max(self.seen, state.last_seq, state.hwm or 0)\n",
        "        self.seen = max(self.seen, state.last_seq, state.hwm or 1)\n",
        "a journaled manager on a fresh database recovers before its first journaled commit: the report must name no "
        "committed transaction missing from the journals; the bug's fresh journal counts sequence 1 as seen and the "
        "recovery says it is lost (the backup machine's unjournaled_writer_after_the_backup, before=0)"),
    Bug("s29_f_audit_reconcile_past_the_gate", 13, "reliability/audit.py",
        "                self.gate.ensure_writable(\"audit fallback entries\")\n",
        "                pass\n",
        "a read meets damage with auto_recover off (the write gate refuses), an audit entry waits in the fallback "
        "file, db.audit.reconcile() is called: it must raise and leave the entry there; the bug moves it into the "
        "damaged database (the backup machine's unjournaled_writer_after_the_backup)"),
)


def apply(bug: Bug, tree: Path) -> None:
    """Apply ``bug`` to the copy at ``tree``; ValueError when its site is not there exactly once."""
    target = tree / bug.path
    text = target.read_text(encoding="utf-8")
    n = text.count(bug.old)
    if n != 1:
        raise ValueError(f"{bug.name}: the site occurs {n} times in {bug.path} (the runtime moved on?)")
    target.write_text(text.replace(bug.old, bug.new), encoding="utf-8")


def copy_tree(dest: Path, source: Path = ROOT) -> None:
    for name in COPIED:
        src = source / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
        else:
            shutil.copy2(src, dest / name)


def run_main_job(bug: Bug | None, profile: str, timeout: float, seed: int | None,
                 no_shrink: bool = False) -> tuple[str, float, str]:
    """(outcome, seconds, last line): outcome is caught / missed / timeout / stale / broken."""
    with tempfile.TemporaryDirectory(prefix="dbfault-bug-") as tmp:
        tree = Path(tmp)
        copy_tree(tree, SNAPSHOT[0])
        if bug is not None:
            try:
                apply(bug, tree)
            except ValueError as exc:
                return "stale", 0.0, str(exc)
        env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
        env.pop("CI", None)
        env.pop("HYPOTHESIS_PROFILE", None)
        if profile == "ci":
            env["CI"] = "1"
        if no_shrink:
            env["DBFAULT_NO_SHRINK"] = "1"
        cmd = [sys.executable, "-m", "pytest", "--dbfault", "-q", "-p", "no:cacheprovider", "-x"]
        if seed is not None:
            cmd.append(f"--dbfault-seed={seed}")
        t0 = time.monotonic()
        try:
            proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout", time.monotonic() - t0, f"no verdict within {timeout:.0f}s"
        dt = time.monotonic() - t0
        out = (proc.stdout + proc.stderr).strip().splitlines()
        violated = [ln.strip()[2:].strip() for ln in out if ln.startswith("E ") and " violated (faults:" in ln]
        last = violated[0][:110] if violated else (out[-1][:110] if out else "")
        # Only a failed test is a catch: the main job also exits 1 when a declared matrix cell is empty
        # (EMPTY CELLS in the footer), which says nothing about the planted bug.
        failed_test = any(ln.startswith("FAILED ") for ln in out)
        if proc.returncode == 0 or (proc.returncode == 1 and not failed_test):
            return "missed", dt, last
        if proc.returncode in (1,):
            return "caught", dt, last
        return "broken", dt, f"exit {proc.returncode}: {last}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=("default", "ci"), default="default")
    parser.add_argument("--jobs", type=int, default=1, help="bugs run at once (default 1; the machine is shared)")
    parser.add_argument("--only", action="append", default=[],
                        help="a bug name or a prefix (p06, p12_keep); repeatable")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per main-job run")
    parser.add_argument("--seed", type=int, default=None, help="--dbfault-seed for every run (default: random)")
    parser.add_argument("--no-shrink", action="store_true",
                        help="stop at the first failing example (whether a bug is caught, not how long shrinking takes)")
    parser.add_argument("--no-control", action="store_true", help="skip the run on the unmodified tree")
    parser.add_argument("--check", action="store_true", help="only check that every bug applies")
    args = parser.parse_args(argv)

    bugs = [b for b in BUGS if not args.only or any(b.name.startswith(o) for o in args.only)]
    if args.check:
        bad = 0
        with tempfile.TemporaryDirectory() as tmp:
            copy_tree(Path(tmp))
            for bug in bugs:
                text = (Path(tmp) / bug.path).read_text(encoding="utf-8")
                n = text.count(bug.old)
                if n != 1:
                    bad += 1
                    print(f"STALE {bug.name}: site occurs {n} times in {bug.path}")
        print(f"{len(bugs) - bad}/{len(bugs)} bugs apply")
        return 1 if bad else 0

    snapshot = tempfile.TemporaryDirectory(prefix="dbfault-bug-snapshot-")
    SNAPSHOT[0] = Path(snapshot.name)
    copy_tree(SNAPSHOT[0], ROOT)
    print(f"bug finding: {len(bugs)} planted bugs, profile {args.profile}, jobs {args.jobs}, "
          f"timeout {args.timeout:.0f}s", flush=True)
    if not args.no_control:
        outcome, dt, last = run_main_job(None, args.profile, args.timeout, args.seed, args.no_shrink)
        print(f"control (no bug): {outcome} in {dt:.0f}s {last}", flush=True)
        if outcome != "missed":
            print("the main job fails on the unmodified tree: catch rates would mean nothing")
            return 2
    results: dict[str, tuple[str, float, str]] = {}

    def one(bug: Bug) -> None:
        results[bug.name] = run_main_job(bug, args.profile, args.timeout, args.seed, args.no_shrink)
        outcome, dt, last = results[bug.name]
        print(f"{outcome:8} {dt:6.0f}s  {bug.name:42} {last}", flush=True)

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(one, bugs))

    by_prop: dict[int, list[str]] = defaultdict(list)
    for bug in bugs:
        by_prop[bug.prop].append(results[bug.name][0])
    print("\nproperty  bugs  caught  missed  timeout  stale/broken")
    total = caught = 0
    for prop in sorted(by_prop):
        outs = by_prop[prop]
        c = outs.count("caught")
        total += len(outs) - outs.count("stale")
        caught += c
        print(f"P{prop:<8} {len(outs):4}  {c:6}  {outs.count('missed'):6}  {outs.count('timeout'):7}  "
              f"{outs.count('stale') + outs.count('broken'):4}")
    rate = 100.0 * caught / total if total else 0.0
    print(f"\ncaught {caught}/{total} ({rate:.0f}%) with the {args.profile} profile")
    missed = [b.name for b in bugs if results[b.name][0] != "caught"]
    if missed:
        print("not caught: " + ", ".join(missed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
