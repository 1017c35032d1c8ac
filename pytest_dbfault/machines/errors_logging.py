"""P8 user-friendly errors, P9 technical logging and P17 one operation-log record per operation."""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from .workload import Workload


class OperationLogMixin(Workload):
    """Reads the runtime's operation log (JSON lines in the example's directory)."""

    settings_overrides: ClassVar[dict[str, Any]] = {"operation_log": True, "log_json": True}
    oplog_lines_seen = 0

    def make_config(self, **overrides: Any) -> Any:
        return super().make_config(operation_log_path=os.path.join(self.dir, "ops.jsonl"), **overrides)

    def after_reopen(self) -> None:
        super().after_reopen()
        # flushed first: the new runtime may have logged work of its own at startup (a re-anchoring backup)
        self.oplog_lines_seen = len(self.oplog_records(flush=True, all_lines=True))

    def oplog_records(self, flush: bool = True, all_lines: bool = False) -> list[dict[str, Any]]:
        oplog = getattr(self.db, "oplog", None)
        if flush and oplog is not None:
            oplog.flush()
        lines = self._oplog_lines(os.path.join(self.dir, "ops.jsonl"))
        return [r for r in lines[0 if all_lines else self.oplog_lines_seen:] if r is not None]

    def _oplog_lines(self, path: str) -> list[Any]:
        """Every line of the log parsed (None for a blank one), read incrementally: the log only grows,
        and re-reading it whole after every call made long examples quadratic."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return []
        cache = getattr(self, "_oplog_cache", None)
        if cache is None or cache[0] != (st.st_dev, st.st_ino) or st.st_size < cache[1]:
            cache = [(st.st_dev, st.st_ino), 0, []]
            self._oplog_cache = cache
        if st.st_size > cache[1]:
            with open(path, "rb") as fh:
                fh.seek(cache[1])
                data = fh.read()
            end = data.rfind(b"\n") + 1  # a line still being written is read next time
            for line in data[:end].decode("utf-8").splitlines():
                cache[2].append(json.loads(line) if line.strip() else None)
            cache[1] += end
        return cache[2]

    def oplog_tally(self) -> tuple[Counter[tuple[Any, Any]], list[dict[str, Any]]]:
        """Over :meth:`oplog_records` (flushed first): how many records of each ``(kind, outcome)``, and the
        malformed ones (no duration, a negative one, no outcome), in order.

        Kept up to date from the lines added since the last call: counting every record again after every
        call and step made long examples quadratic (the largest harness cost of the under-fault machine
        after the CLI's parser). Counted afresh when the records counted from change (a restart moves
        :attr:`oplog_lines_seen`; a log file replaced or shortened is read again from its start)."""
        oplog = getattr(self.db, "oplog", None)
        if oplog is not None:
            oplog.flush()
        lines = self._oplog_lines(os.path.join(self.dir, "ops.jsonl"))
        tally = getattr(self, "_oplog_tally", None)
        if tally is None or tally[0] is not lines or tally[1] != self.oplog_lines_seen or tally[2] > len(lines):
            tally = self._oplog_tally = [lines, self.oplog_lines_seen, self.oplog_lines_seen, Counter(), []]
        counts, malformed = tally[3], tally[4]
        for r in lines[tally[2]:]:
            if r is None:
                continue
            counts[(r.get("kind"), r.get("outcome"))] += 1
            if not isinstance(r.get("duration_ms"), (int, float)) or r["duration_ms"] < 0 \
                    or r.get("outcome") not in ("ok", "error"):
                malformed.append(r)
        tally[2] = len(lines)
        return counts, malformed

    #: single statements: one call makes one record, whose attempts are the tries the call made
    STATEMENT_OPS: ClassVar[frozenset[str]] = frozenset(("execute", "fetch_one", "fetch_all"))

    def call(self, op: str | None, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """The checked call, and P17 on the one record a single statement makes: its kind and outcome, its
        ``attempts`` equal to the tries the call made (1 + the backoff sleeps it slept), its ``duration_ms`` a
        duration in milliseconds (above zero: a statement through the runtime takes microseconds, so a value
        written in seconds rounds to 0.0000; at most the wall time the call took)."""
        import time

        if op not in self.STATEMENT_OPS or getattr(self.db, "oplog", None) is None:
            return super().call(op, fn, *args, **kwargs)
        before = len(self.oplog_records(all_lines=True))
        sleeps0, t0 = len(self.time.sleeps), time.perf_counter()
        out = super().call(op, fn, *args, **kwargs)
        wall_ms = (time.perf_counter() - t0) * 1000.0
        tries = len(self.time.sleeps) - sleeps0 + 1
        new = self.oplog_records(all_lines=True)[before:]
        if len(new) != 1 or new[0].get("kind") != op:
            return out  # (a replay of queued writes or a reconnect's own work ran too: not one record to judge)
        record = new[0]
        active = kwargs.get("faults") or self.labels()
        self.check(17, record.get("outcome") == ("ok" if out.ok else "error") and record.get("attempts") == tries,
                   lambda: f"the operation record of a {op} that made {tries} attempt(s) and ended "
                           f"{'ok' if out.ok else 'in an error'} says attempts={record.get('attempts')}, "
                           f"outcome={record.get('outcome')}", faults=active)
        duration = record.get("duration_ms")
        self.check(17, isinstance(duration, (int, float)) and 0 < duration <= wall_ms + 1.0,
                   lambda: f"the operation record of a {op} that took {wall_ms:.3f} ms of wall time says "
                           f"duration_ms={duration}", faults=active)
        self.judge_statement_record(op, out, record, active)
        return out

    def judge_statement_record(self, op: str, out: Any, record: dict[str, Any], active: list[str]) -> None:
        """Hook: more checks of the one record a single statement made (none here)."""

    def absorbed_oplog(self) -> None:
        # Count the records a feature call made as expected (they are not the ones under test).
        actual, _ = self.oplog_tally()
        for key, n in (actual - self.model.ledger.oplog).items():
            self.model.ledger.oplog[key] += n

    @precondition(lambda self: self.db is not None)
    @invariant()
    def p17_operation_logging(self) -> None:
        """Each operation made one record with a duration and its outcome."""
        actual, malformed = self.oplog_tally()
        self.check(17, not malformed, lambda: f"operation records without duration/outcome: {malformed[:3]}")
        expected = self.model.ledger.oplog
        if self.opaque_ops:
            short = {k: n for k, n in expected.items() if actual[k] < n}
            self.check(17, not short, lambda: f"operations without a log record: {short}")
            return
        extra = actual - expected
        # A transaction aborted by the application's own exception may or may not be logged as an error.
        tolerated = extra.get(("transaction", "error"), 0) <= self.model.ledger.app_aborts
        extra.pop(("transaction", "error"), None)
        self.check(17, actual.keys() >= {k for k, n in expected.items() if n} and not (expected - actual)
                   and not extra and tolerated,
                   lambda: f"operation log records {dict(actual)} do not match the operations performed "
                           f"{dict(expected)}")


class ErrorsLoggingMachine(OperationLogMixin):
    """Errors of every origin (faults, duplicates, bad SQL) checked for P8/P9 by the workload; P17 here."""

    fault_kinds = ("none", "locked", "disk_full", "disconnect_close", "disconnect_rename", "disconnect_delete")

    def judge_statement_record(self, op: str, out: Any, record: dict[str, Any], active: list[str]) -> None:
        """P17: a failed statement's record names the kind of the error its caller got (``constraint``, ``busy``,
        ``schema`` …: what an operator counts failures by), a successful one's names none; a read's record counts
        the rows its caller got."""
        kind = str(out.error.kind) if not out.ok and getattr(out.error, "kind", None) is not None else None
        if not out.ok and kind is None:
            return  # (not a DatabaseError: P2 judges that)
        ended = f"failed with a {kind} error" if kind else "succeeded"
        self.check(17, record.get("error_kind") == kind,
                   lambda: f"the operation record of a {op} that {ended} says error_kind={record.get('error_kind')!r} "
                           f"(expected {kind!r})", faults=active)
        if out.ok and op in ("fetch_one", "fetch_all"):
            # Every read the workload makes (a key that is stored or not, a scan of any size): its record's rows are
            # the rows its caller got, a fetch_one's 1 or 0 (nothing matched), a fetch_all's the length of its list.
            got = (0 if out.value is None else 1) if op == "fetch_one" else len(out.value)
            self.check(17, record.get("rows") == got,
                       lambda: f"the operation record of a {op} that returned {got} row(s) says rows="
                               f"{record.get('rows')!r}", faults=active)

    #: how many times :meth:`retried_write_log_levels` ran
    leveled_writes = 0

    @precondition(lambda self: self.db is not None and not self.faults and not self.writes_queued())
    @rule(heal_after=st.integers(1, 5), param=st.integers(0, 5), n=st.integers(0, 12))
    def retried_write_log_levels(self, heal_after: int, param: int, n: int) -> None:
        """P9: the technical log's levels tell an operator which errors were absorbed. A write meets a lock held
        by another connection (a real one: the ``locked`` fault), released after ``heal_after`` backoff sleeps
        (maybe never within the retries). Every retried attempt is logged at WARNING, one record per retry with
        its attempt number; only the failure the caller gets is logged at ERROR, once, with the attempt it
        surfaced at. A write that succeeded after retries leaves no ERROR record at all."""
        if not self.inject("locked", param):
            return
        self.leveled_writes += 1
        faults = ["locked"]
        self.heal_after_sleeps(faults, heal_after)
        key, value = f"user-{n}", self.text()
        sql = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
        logs0, sleeps0 = len(self.logs.records), len(self.time.sleeps)
        try:
            t0 = time.perf_counter()
            out = self.call("execute", self.db.execute, sql, (key, value), faults=faults)
            wall = time.perf_counter() - t0
            sleeps, logs1 = len(self.time.sleeps) - sleeps0, len(self.logs.records)
            if "locked" in self.faults:  # (the lock outlasted the write: a maintenance operation meets it too)
                self.maintenance_is_logged(self.MAINTENANCE[(n + param) % len(self.MAINTENANCE)], faults)
        finally:
            self.clear_sleep_hooks()
            self.heal_all()
        if out.ok:
            self.model.kv[key] = value
        tech = [r for r in self.logs.records[logs0:logs1] if getattr(r, "db_kind", None) is not None]
        errors = [r for r in tech if r.levelno >= logging.ERROR]
        retried = [r for r in tech if r.levelno < logging.ERROR]
        shown = [(logging.getLevelName(r.levelno), r.db_kind, getattr(r, "attempt", None)) for r in tech]
        self.check(9, all(r.levelno == logging.WARNING for r in retried)
                   and [getattr(r, "attempt", None) for r in retried] == list(range(1, sleeps + 1)),
                   lambda: f"a write that met a lock and retried {sleeps} time(s) "
                           f"({'then succeeded' if out.ok else f'then failed as {out.error.kind}'}) logged "
                           f"{shown}: each retried attempt must have one WARNING record", faults=faults)
        if out.ok:
            self.check(9, not errors, lambda: f"a write that met a lock, retried {sleeps} time(s) and succeeded "
                                              f"logged {shown}: an error absorbed by a retry is no ERROR record",
                       faults=faults)
        else:
            final = max(out.error.attempts or 1, 1)
            self.check(9, len(errors) == 1 and getattr(errors[0], "attempt", None) == final,
                       lambda: f"a write that met a lock and failed as {out.error.kind} after {final} attempt(s) "
                               f"logged {shown}: only the failure the caller got is an ERROR record (the retried "
                               "attempts are WARNINGs)", faults=faults)
            if len(errors) == 1:
                self.judge_error_record(errors[0], retried, out.error, sql, (key, value), sleeps + 1, wall, faults)

    def judge_error_record(self, record: Any, retried: list[Any], err: Any, sql: str, params: tuple[Any, ...],
                           tries: int, wall: float, faults: list[str]) -> None:
        """P9: every field of the ERROR record of a failed statement against what happened, not against what the
        error says of itself: its ``attempt`` the tries the call really made (1 + the backoff sleeps it slept), its
        ``elapsed`` a duration in seconds from the call's start (at least 0, at most the call's wall time), its
        kind, code and code name those of the error the caller got, its operation id the caller's (the retried
        attempts' WARNING records carry the same one: one operation), its ``sql`` the statement and its
        ``params`` redacted (``'?'`` for each value) unless ``log_sql_params`` shows them."""
        elapsed = getattr(record, "elapsed", None)
        redacted = list(params) if self.config.log_sql_params else ["?"] * len(params)
        fields = {k: getattr(record, k, None) for k in ("attempt", "elapsed", "db_kind", "db_code", "db_code_name",
                                                        "operation_id", "sql", "params")}
        want = {"attempt": tries, "elapsed": f"0..{wall:.6f}", "db_kind": str(err.kind), "db_code": err.code,
                "db_code_name": err.code_name, "operation_id": err.operation_id, "sql": sql, "params": redacted}
        warn_ids = sorted({getattr(r, "operation_id", None) for r in retried})
        self.check(9, fields["attempt"] == tries and isinstance(elapsed, (int, float)) and 0 <= elapsed <= wall
                   and fields["db_kind"] == str(err.kind) and fields["db_code"] == err.code
                   and fields["db_code_name"] == err.code_name and bool(err.operation_id)
                   and fields["operation_id"] == err.operation_id and fields["sql"] == sql
                   and list(fields["params"] or ()) == redacted and warn_ids in ([], [err.operation_id]),
                   lambda: f"the ERROR record of a write that failed as {err.kind} after {tries} attempt(s) in "
                           f"{wall:.6f} s says {fields} (its WARNING records' operation ids {warn_ids}); expected "
                           f"{want}", faults=faults)

    #: maintenance operations :meth:`maintenance_is_logged` runs: (its operation-log kind, the call, its arguments)
    MAINTENANCE: ClassVar[tuple[str, ...]] = ("backup", "check", "check_full", "schema_check")

    def maintenance_is_logged(self, which: str, faults: list[str]) -> None:
        """P17 on maintenance: a backup, a quick or full integrity check, a schema validation run through the
        public API makes exactly one operation record of its own kind (``backup``, ``check``, ``schema_check``),
        whatever else it runs inside: outcome ``ok`` when it returned (even when its report finds problems),
        ``error`` with the kind of the DatabaseError its caller got when it failed (a lock outlasting the
        retries), the attempts that error counts (one when it returned), no SQL text, 0 rows (nothing replayed,
        no migration applied), a duration in milliseconds within the call's wall time."""
        if getattr(self.db, "oplog", None) is None:
            return
        kind, fn, args = {"backup": ("backup", self.db.backup, ()),
                          "check": ("check", self.db.check_integrity, (False,)),
                          "check_full": ("check", self.db.check_integrity, (True,)),
                          "schema_check": ("schema_check", self.db.validate_schema, ())}[which]
        from reliability import DatabaseError

        from .workload import CallOutcome

        before = len(self.oplog_records(all_lines=True))
        t0 = time.perf_counter()
        # Not through call(): the workload's P9 check of a statement's ERROR record is judged elsewhere; here the
        # operation record is (its attempts were 1 whatever the error counted, until session 22 fixed parts.py).
        try:
            out = CallOutcome(True, self.absorb(fn, *args))
        except DatabaseError as err:
            out = CallOutcome(False, error=err)
        wall_ms = (time.perf_counter() - t0) * 1000.0
        added = self.oplog_records(all_lines=True)[before:]
        mine = [r for r in added if r.get("kind") == kind]
        error_kind = None if out.ok else str(out.error.kind)
        ended = "returned" if out.ok else f"failed as {error_kind}"
        attempts = 1 if out.ok else out.error.attempts
        fits = len(mine) == 1 and mine[0].get("outcome") == ("ok" if out.ok else "error") \
            and mine[0].get("error_kind") == error_kind and mine[0].get("attempts") == attempts \
            and mine[0].get("sql") is None and mine[0].get("rows") == 0 \
            and isinstance(mine[0].get("duration_ms"), (int, float)) and 0 <= mine[0]["duration_ms"] <= wall_ms + 1.0
        self.check(17, fits, lambda: f"a {which.replace('_', ' ')} (db.{fn.__name__}{args or '()'}) that {ended} in "
                                     f"{wall_ms:.3f} ms made the operation records {added}: exactly one {kind!r} "
                                     f"record, outcome {'ok' if out.ok else 'error'}, error_kind {error_kind!r}, "
                                     f"{attempts} attempt(s), no sql, 0 rows, its duration "
                                     "in ms", faults=faults)

    #: how many times :meth:`close_keeps_the_last_records` ran (its statements' markers are unique per example)
    closes = 0

    @precondition(lambda self: self.db is not None and getattr(self.db, "oplog", None) is not None
                  and not self.faults)
    @rule(kinds=st.lists(st.sampled_from(("execute", "fetch_one", "fetch_all")), min_size=1, max_size=6))
    def close_keeps_the_last_records(self, kinds: list[str]) -> None:
        """P17 at a clean shutdown: statements made right before ``db.close()`` (then a restart) each have their
        record in the log file afterwards. Records are written in batches off the hot path, so the last ones are
        still buffered when the application closes: close must write them, not drop them. (Every other check
        flushes the log first, so it never saw what a close leaves out.) Each statement names a marker of its own
        in its SQL text, so its record is told apart from any the runtime writes of its own."""
        self.closes += 1
        path = os.path.join(self.dir, "ops.jsonl")
        start = len(self._oplog_lines(path))
        made: list[tuple[str, str, bool]] = []
        for i, kind in enumerate(kinds):
            marker = f"dbfault-close-{self.closes}-{i}"
            # Not through the log's flush (the mixin's call() flushes around a booked statement): op None.
            if kind == "execute":
                value = self.text()
                out = self.call(None, self.db.execute, f"INSERT OR REPLACE INTO kv (k, v) VALUES ('{marker}', ?)",
                                (value,))
                if out.ok:
                    self.model.kv[marker] = value
            elif kind == "fetch_one":
                out = self.call(None, self.db.fetch_one, f"SELECT '{marker}'")
            else:
                out = self.call(None, self.db.fetch_all, f"SELECT k FROM kv WHERE k <> '{marker}'")
            made.append((kind, marker, out.ok))
        self.reopen()  # db.close(), then the application starts again on the same files
        records = [r for r in self._oplog_lines(path)[start:] if r is not None]
        for kind, marker, ok in made:
            mine = [r for r in records if marker in str(r.get("sql"))]
            self.check(17, len(mine) == 1 and mine[0].get("kind") == kind
                       and mine[0].get("outcome") == ("ok" if ok else "error"),
                       lambda kind=kind, marker=marker, mine=mine: (
                           f"{len(made)} statement(s) then db.close(): the {kind} marked {marker!r} has "
                           f"{len(mine)} record(s) in the operation log file {[r.get('kind') for r in mine]} "
                           "(records still buffered at close must be written)"))

    #: how many times :meth:`read_rows_are_counted` ran (its statements' markers are unique per example)
    counted_reads = 0

    @precondition(lambda self: self.db is not None and getattr(self.db, "oplog", None) is not None
                  and not self.faults)
    @rule(columns=st.integers(1, 4), count=st.integers(0, 3))
    def read_rows_are_counted(self, columns: int, count: int) -> None:
        """P17: a read's operation record says how many rows it returned, whatever the number of columns: a
        ``fetch_one`` 1, or 0 when nothing matched; a ``fetch_all`` as many as its list holds. Judged for the first
        read on a connection opened anew (``db.reconnect()``, as after a tool put the file back: it takes another
        path through the runtime), the next one on the open connection, and a ``fetch_all``."""
        self.counted_reads += 1
        self.db.reconnect()
        for step, kind in enumerate(("fetch_one", "fetch_one", "fetch_all")):
            marker = f"dbfault-rows-{self.counted_reads}-{step}"
            # ``count`` rows of ``columns`` columns (the last one names the statement), whatever kv holds
            values = ", ".join(["i", "i * 2", "'x' || i", f"'{marker}'"][-columns:])
            sql = (f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) "
                   f"SELECT {values} FROM n WHERE i <= {count}")
            out = self.call(kind, getattr(self.db, kind), sql)
            if not out.ok:
                return  # (its record's outcome is judged by call())
            returned = (0 if out.value is None else 1) if kind == "fetch_one" else len(out.value)
            mine = [r for r in self.oplog_records(all_lines=True)[-8:] if marker in str(r.get("sql"))]
            first = " (the first read after db.reconnect())" if step == 0 else ""
            self.check(17, len(mine) == 1 and mine[0].get("rows") == returned, lambda kind=kind, returned=returned,
                       first=first, mine=mine: (
                           f"a {kind} of {columns} column(s) that returned {returned} row(s){first} has the operation "
                           f"record(s) {[(r.get('kind'), r.get('rows')) for r in mine]}: its rows must be {returned}"))
        self.maintenance_is_logged(self.MAINTENANCE[(columns + count) % len(self.MAINTENANCE)], [])

    #: how many times :meth:`write_rows_are_counted` ran (its statements' markers are unique per example)
    counted_writes = 0

    @precondition(lambda self: self.db is not None and getattr(self.db, "oplog", None) is not None
                  and not self.faults and not self.writes_queued())
    @rule(count=st.integers(2, 5), updated=st.integers(0, 5), deleted=st.integers(0, 5), missing=st.booleans())
    def write_rows_are_counted(self, count: int, updated: int, deleted: int, missing: bool) -> None:
        """P17: a write's operation record says how many rows it changed, as the cursor its caller got does
        (``rowcount``) and as the model knows: an ``INSERT`` of ``count`` rows in one statement ``count``, an
        ``UPDATE`` of some of them (a key that is not stored among them when ``missing``: it changes nothing) as
        many as it matched, a ``DELETE`` of some as many as it removed, then one of the rest. What an operator sums
        to see how much a job changed."""
        self.counted_writes += 1
        keys = [f"rows-{self.counted_writes}-{i}" for i in range(count)]
        absent = [f"rows-{self.counted_writes}-absent"] if missing else []
        to_update, to_delete = keys[:min(updated, count)], keys[count - min(deleted, count):]
        rest = [k for k in keys if k not in to_delete]
        values = [self.text() for _ in keys]

        def where(params: list[str]) -> str:
            return f"WHERE k IN ({', '.join(['?'] * len(params)) or 'NULL'})"

        extra = " and an absent key" if missing else ""
        steps: list[tuple[str, str, tuple[Any, ...], int]] = [
            (f"INSERT of {count} rows", f"INSERT INTO kv (k, v) VALUES {', '.join(['(?, ?)'] * count)}",
             tuple(x for pair in zip(keys, values, strict=True) for x in pair), count),
            (f"UPDATE of {len(to_update)} stored row(s){extra}", "UPDATE kv SET v = v || '!' "
             + where([*to_update, *absent]), (*to_update, *absent), len(to_update)),
            (f"DELETE of {len(to_delete)} row(s){extra}", "DELETE FROM kv " + where([*to_delete, *absent]),
             (*to_delete, *absent), len(to_delete)),
            (f"DELETE of {len(rest)} row(s)", "DELETE FROM kv " + where(rest), tuple(rest), len(rest)),
        ]
        for step, (what, sql, params, changed) in enumerate(steps):
            marker = f"dbfault-wrows-{self.counted_writes}-{step}"
            sql = f"{sql} /* {marker} */"
            out = self.call("execute", self.db.execute, sql, params)
            if not out.ok:
                return  # (nothing of it stored: its record's outcome is judged by call())
            if step == 0:
                self.model.kv.update(zip(keys, values, strict=True))
            elif step == 1:
                self.model.kv.update({k: self.model.kv[k] + "!" for k in to_update})
            else:
                for k in params:
                    self.model.kv.pop(k, None)
            rowcount = getattr(out.value, "rowcount", None)
            mine = [r for r in self.oplog_records(all_lines=True)[-8:] if marker in str(r.get("sql"))]
            self.check(17, len(mine) == 1 and mine[0].get("rows") == changed == rowcount,
                       lambda what=what, changed=changed, rowcount=rowcount, mine=mine: (
                           f"an {what} through db.execute changed {changed} row(s) (its cursor's rowcount: "
                           f"{rowcount}); its operation record(s) {[(r.get('kind'), r.get('rows')) for r in mine]}: "
                           f"rows must be {changed}"))

    #: the commands :meth:`failed_command_messages` runs, registered on the runtime in use
    _commands_on: Any = None

    def register_error_commands(self) -> None:
        """Two commands as an application registers them: a report (reads a column of a table it is given) and
        an import (writes the rows it is given into ``kv``, in one transaction)."""
        from reliability.degraded import Needs

        commands = self.db.commands
        if self._commands_on is commands:
            return
        self._commands_on = commands
        commands.register("errlog.report", Needs.READ,
                          lambda db, table, column: db.fetch_all(f"SELECT {column} FROM {table}"))

        def import_rows(db: Any, table: str, rows: list[list[str]]) -> int:
            for k, v in rows:
                db.execute(f"INSERT INTO {table} (k, v) VALUES (?, ?)", (k, v))
            return len(rows)

        commands.register("errlog.import", Needs.WRITE, import_rows)

    @precondition(lambda self: self.db is not None and getattr(self.db, "commands", None) is not None
                  and not self.faults and not self.writes_queued())
    @rule(read=st.booleans(), table=st.sampled_from(("absent", "kv")), column=st.sampled_from(("absent", "v")),
          keys=st.lists(st.integers(0, 12), min_size=1, max_size=3))
    def failed_command_messages(self, read: bool, table: str, column: str, keys: list[int]) -> None:
        """P8 through the commands (``db.commands.run``, what a front end shows its user): a command that fails
        on the database answers with the user message of its error's kind, the same one a direct call raises,
        never the driver's text (which names tables, columns and SQLite's wording). A report reads a table or a
        column that does not exist (a ``schema`` error) or one that does; an import writes rows with a key already
        stored or given twice (a ``constraint`` error), into a table that may not exist."""
        from reliability import KIND_INFO, ErrorKind

        from .workload import user_message_problems

        self.register_error_commands()
        n = self.counted_writes + self.steps  # (names unique enough to tell a driver's text apart)
        table_name = f"dbfault_absent_table_{n}" if table == "absent" else "kv"
        column_name = f"dbfault_absent_column_{n}" if column == "absent" else "v"
        rows = [[f"user-{k}", self.text()] for k in keys]
        if read:
            what = f"report reading {column_name} from {table_name}"
            caller_kind = "schema" if "absent" in table_name or "absent" in column_name else None
            result = self.absorb(self.db.commands.run, "errlog.report", table_name, column_name)
        else:
            table_name = f"dbfault_absent_table_{n}" if table == "absent" and column == "absent" else "kv"
            what = f"import of {[k for k, _v in rows]} into {table_name}"
            dup = len({k for k, _v in rows}) < len(rows) or any(k in self.model.kv for k, _v in rows)
            caller_kind = "schema" if table_name != "kv" else "constraint" if dup else None
            result = self.absorb(self.db.commands.run, "errlog.import", table_name, rows)
            if result.status == "ok" or result.status == "queued" and caller_kind is None:
                self.model.kv.update({k: v for k, v in rows})  # (queued: acknowledged, saved when it replays)
        if result.status == "ok":
            self.check(8, caller_kind is None, lambda: f"the {what} succeeded; it must fail as {caller_kind}")
            return
        fault = result.fault
        try:
            kind = ErrorKind(fault)
        except ValueError:
            kind = None
        expected = KIND_INFO[kind].user_message if kind is not None else None
        if not self.fault_history and caller_kind is not None:
            # (No fault was ever injected: the caller's mistake is the only way it can fail.)
            self.check(8, result.status == "error" and fault == caller_kind,
                       lambda: f"the {what} answered {result.status} ({fault}) with {result.message!r}: a command "
                               f"that fails on the caller's own mistake is an error of kind {caller_kind}")
        message = result.message or ""
        if result.status in ("error", "unavailable"):
            self.check(8, message == expected,
                       lambda: f"the {what} failed ({result.status}, {fault}) with the message {message!r}: a failed "
                               f"command's message is the user message of its kind ({expected!r})")
        problems = user_message_problems(message, [self.dir, self.db_path])
        leaked = [name for name in (table_name, column_name, "no such", "constraint failed", "UNIQUE")
                  if name != "kv" and name != "v" and name.lower() in message.lower()]
        self.check(8, not problems and not leaked,
                   lambda: f"the {what} failed ({result.status}, {fault}) with the message {message!r}: "
                           f"{'; '.join(problems + [f'names {x!r} (driver text)' for x in leaked])}")

    # -- the caller-error sweep: every error a user meets, through every entry point ------------------------------
    #: The machine's own table for the sweep: a UNIQUE key, a NOT NULL CHECKed number, a foreign key into ``kv``.
    SWEEP_TABLE = ("CREATE TABLE IF NOT EXISTS errsweep (id INTEGER PRIMARY KEY, k TEXT UNIQUE, "
                   "n INTEGER NOT NULL CHECK (n >= 0), ref TEXT REFERENCES kv (k))")
    #: The key :meth:`caller_error_sweep` keeps stored in ``errsweep`` (what a duplicate collides with).
    SWEEP_TAKEN = "dbfault-sweep-taken"
    #: Situation -> (the kind a user must be told, SQLite's primary code where its message names one (what Python
    #: 3.10 reads from the text), a statement that writes (None: none), one that reads (None: none)). ``{t}`` is a
    #: table that does not exist, ``{c}`` a column that does not exist (names drawn per step); ``?`` the drawn key.
    SWEEP: ClassVar[dict[str, tuple[str, int | None, str | None, str | None]]] = {
        "no_such_table": ("schema", None, "INSERT INTO {t} (k, n) VALUES (?, 1)", "SELECT k FROM {t} WHERE k = ?"),
        "no_such_column": ("schema", None, "UPDATE errsweep SET {c} = 1 WHERE k = ?",
                           "SELECT {c} FROM errsweep WHERE k = ?"),
        "insert_unknown_column": ("schema", None, "INSERT INTO errsweep (k, n, {c}) VALUES (?, 1, 2)", None),
        "syntax_error": ("schema", None, "INSERT INTO errsweep (k, n) VALUES (?, 1))",
                         "SELECT k FROM errsweep WHERE WHERE k = ?"),
        "table_exists": ("schema", None, "CREATE TABLE errsweep (k TEXT, n INTEGER)", None),
        "unique": ("constraint", 19, "INSERT INTO errsweep (k, n) VALUES (?, 1)", None),
        "not_null": ("constraint", 19, "INSERT INTO errsweep (k, n) VALUES (?, NULL)", None),
        "check": ("constraint", 19, "UPDATE errsweep SET n = -1 WHERE k = ?", None),
        "foreign_key": ("constraint", 19, "INSERT INTO errsweep (k, n, ref) VALUES (?, 1, 'dbfault-no-such-kv-key')",
                        None),
        "datatype_mismatch": ("constraint", 20, "INSERT INTO errsweep (id, k, n) VALUES ('not a number', ?, 1)", None),
        "wrong_bindings": ("misuse", None, "INSERT INTO errsweep (k, n) VALUES (?, ?)",
                           "SELECT k FROM errsweep WHERE k = ? AND n = ?"),
    }
    #: The primary codes of :data:`SWEEP` and their names (what SQLite's message names where the driver gives no code).
    PRIMARY_NAMES: ClassVar[dict[int, str]] = {19: "SQLITE_CONSTRAINT", 20: "SQLITE_MISMATCH"}
    #: Entry points a statement that writes goes through, and those of one that reads.
    WRITE_ENTRIES = ("execute", "executemany", "transaction", "run_in_transaction", "command")
    READ_ENTRIES = ("fetch_one", "fetch_all", "execute", "transaction", "command")
    #: the sweep's commands (a write and a read running the SQL they are given), registered on this runtime
    _sweep_commands_on: Any = None
    #: how many times :meth:`caller_error_sweep` ran (its names are unique per example)
    swept = 0

    def sweep_driver_error(self, sql: str, params: tuple[Any, ...], many: bool) -> BaseException | None:
        """What the driver itself raises for ``sql`` on the machine's file (a plain connection of the runtime's
        SQLite build, foreign keys as the runtime sets them, in a transaction rolled back): the oracle of the
        error's class, text and code. None when SQLite accepts it there (then the situation does not arise)."""
        module = self.sqlite_module()
        with self.raw() as conn:
            conn.execute(f"PRAGMA foreign_keys = {'ON' if getattr(self.config, 'foreign_keys', True) else 'OFF'}")
            conn.execute("BEGIN")
            try:
                if many:
                    conn.executemany(sql, [params, params])
                else:
                    conn.execute(sql, params).fetchall()
            except module.Error as exc:
                return exc
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        return None

    @precondition(lambda self: self.db is not None and not self.faults and not self.writes_queued())
    @rule(data=st.data(), n=st.integers(0, 12))
    def caller_error_sweep(self, data: st.DataObject, n: int) -> None:
        """P8/P9/P17 and the error counters (P10) on the errors a user meets with a sound database: a missing table,
        a missing column read, updated or named in an INSERT, a syntax error, a table that already exists, a
        UNIQUE / NOT NULL / CHECK / FOREIGN KEY violation, a value of the wrong type for an INTEGER PRIMARY KEY,
        the wrong number of parameters; each drawn with one of the entry points it can go through (``execute``,
        ``executemany``, a ``db.transaction()`` block, ``run_in_transaction``, ``fetch_one``, ``fetch_all``).

        The oracle is SQLite itself: the same statement on a plain connection gives the driver's exception. The
        caller gets a DatabaseError of the kind the README's table gives that error (``classify`` of the driver's
        exception says the same, not transient); its user message is that kind's, in plain words, naming no
        table, column or driver text; one ERROR record carries the kind, the driver's code and name, the SQL,
        the parameters redacted and a traceback ending with the driver's exception (not the wrapper: the
        wrapper's frames say nothing of where SQLite failed), and both formatters make one line / one JSON
        object of it; the operation log has the statement's record (and the transaction's) naming the kind;
        ``health().errors`` counts the one failure once. Every situation in each run of the rule (a few runs per
        example), in a drawn order, each through a drawn entry point."""
        self.swept += 1
        for sql in (self.SWEEP_TABLE, "INSERT OR IGNORE INTO errsweep (k, n) VALUES (?, 1)"):
            if not self.call("execute", self.db.execute, sql, (self.SWEEP_TAKEN,) if "?" in sql else ()).ok:
                return  # (judged by call())
        self.executemany_rows_are_counted(n % 4 + 1)
        order = data.draw(st.permutations(sorted(self.SWEEP)), label="order")
        for i, situation in enumerate(order):
            kind, _primary, write_sql, read_sql = self.SWEEP[situation]
            entries = [(e, write_sql) for e in self.WRITE_ENTRIES if write_sql] + \
                      [(e, read_sql) for e in self.READ_ENTRIES if read_sql]
            entry, template = data.draw(st.sampled_from(entries), label=f"entry of {situation}")
            newline = data.draw(st.booleans(), label="newline") if "{t}" in template else False
            if not self.sweep_one(situation, entry, template, f"{self.swept}_{n}_{i}", newline):
                return

    def executemany_rows_are_counted(self, count: int) -> None:
        """P17: a ``db.executemany`` of ``count`` new rows (outside a transaction: the runtime wraps it in one) has
        one ``executemany`` record whose rows are the rows it inserted, as its cursor's rowcount says, and the
        transaction's ``ok`` record."""
        if getattr(self.db, "oplog", None) is None:
            return
        sql = "INSERT INTO errsweep (k, n) VALUES (?, ?)"
        rows = [(f"dbfault-sweep-many-{self.swept}-{i}", i) for i in range(count)]
        before = len(self.oplog_records(all_lines=True))
        out = self.call(None, self.absorb, self.db.executemany, sql, rows)
        if not out.ok:
            self.model.ledger.errors[str(out.error.kind)] -= 1  # (booked once: absorb counted it already)
            return
        added = [(r.get("kind"), r.get("sql"), r.get("rows") if r.get("kind") == "executemany" else "-",
                  r.get("outcome")) for r in self.oplog_records(all_lines=True)[before:]]
        rowcount = getattr(out.value, "rowcount", None)
        self.check(17, sorted(added, key=str) == sorted([("executemany", sql, count, "ok"),
                                                         ("transaction", None, "-", "ok")], key=str)
                   and rowcount == count,
                   lambda: f"an executemany of {count} new row(s) (its cursor's rowcount: {rowcount}) made the "
                           f"operation records {added}: one executemany record of {count} row(s) and the "
                           "transaction's")

    def register_sweep_commands(self) -> None:
        """Two commands as an application registers them, running the SQL they are given: a write (in a
        transaction, queued while the database is down) and a read."""
        from reliability.degraded import Needs

        commands = self.db.commands
        if self._sweep_commands_on is commands:
            return
        self._sweep_commands_on = commands
        commands.register("errsweep.write", Needs.WRITE, lambda db, sql, params: db.execute(sql, params).rowcount)
        commands.register("errsweep.read", Needs.READ, lambda db, sql, params: db.fetch_all(sql, params))

    def sweep_command_error(self, what: str, kind: str, result: Any, logs0: int) -> Any:
        """The error a failed command's result tells its user, as a DatabaseError-like record for the sweep's
        checks (its operation id from the one ERROR record the failure logged); None when it did not fail."""
        import types

        from reliability import KIND_INFO, ErrorKind

        self.check(8, result.status == "error" and result.fault == kind,
                   lambda: f"the {what} answered {result.status} ({result.fault}) with {result.message!r}: a command "
                           f"that fails on the caller's own mistake is an error of kind {kind}")
        if result.status != "error" or result.fault not in {k.value for k in ErrorKind}:
            return None
        errors = [r for r in self.logs.records[logs0:] if r.levelno >= logging.ERROR
                  and getattr(r, "db_kind", None) is not None]
        info = KIND_INFO[ErrorKind(result.fault)]
        return types.SimpleNamespace(
            kind=ErrorKind(result.fault), user_message=result.message, transient=info.transient, action=info.action,
            attempts=1, operation_id=errors[0].operation_id if len(errors) == 1 else "",
            code=errors[0].db_code if len(errors) == 1 else None)

    def sweep_one(self, situation: str, entry: str, template: str, tag: str, newline: bool) -> bool:
        """One situation of :meth:`caller_error_sweep` through ``entry``; False when the sweep cannot go on."""
        from reliability import KIND_INFO, DatabaseError, ErrorKind, classify
        from reliability.errors import error_name, is_transient
        from reliability.oplog import JsonFormatter, OneLineFormatter

        from .workload import message_fits_kind, user_message_problems

        kind, primary, write_sql, _r = self.SWEEP[situation]
        missing_table = f'"dbfault_no_table_{tag}{chr(10) if newline else ""}x"'
        missing_column = f"dbfault_no_column_{tag}"
        sql = template.format(t=missing_table, c=missing_column)
        key = self.SWEEP_TAKEN if situation in ("unique", "check") else f"dbfault-sweep-key-{tag}"
        params: tuple[Any, ...] = (key,) if "?" in sql else ()  # (one value: the wrong number for two "?")
        many = entry == "executemany"
        raw = self.sweep_driver_error(sql, params, many)
        if raw is None:
            return True  # (SQLite takes it on this build or with this configuration: nothing to judge)
        what = f"{situation} ({sql!r}) through {entry}"
        expected = ErrorKind(kind)
        self.check(8, classify(raw) is expected and not is_transient(raw),
                   lambda: f"classify() of the driver's {type(raw).__name__}({raw}) says {classify(raw)} "
                           f"(transient: {is_transient(raw)}); a {situation} is a {kind} error, not transient")
        raw_code = getattr(raw, "sqlite_errorcode", None)
        # The code name the runtime gives a driver error (``reliability.errors.error_name``): the driver's own
        # (>= 3.11, the extended one); where the driver gives none (3.10), the primary one SQLite's message names,
        # or nothing: a name (``SQLITE_...``), never the number.
        named = error_name(raw)
        if raw_code is not None:
            self.check(9, named == getattr(raw, "sqlite_errorname", None),
                       lambda: f"error_name() of the driver's {raw!r} says {named!r}, the driver "
                               f"{getattr(raw, 'sqlite_errorname', None)!r}")
        else:
            want_name = self.PRIMARY_NAMES.get(primary) if primary else None
            self.check(9, named == want_name if want_name else named is None or (
                isinstance(named, str) and named.startswith("SQLITE_")),
                       lambda: f"error_name() of the driver's {raw!r} (no code from the driver) says {named!r}; "
                               f"SQLite's message names {want_name or 'a SQLITE_... code or nothing'}")

        def run() -> Any:
            if entry == "command":
                self.register_sweep_commands()
                return self.db.commands.run("errsweep.write" if template == write_sql else "errsweep.read",
                                            sql, params)
            if entry == "execute":
                return self.db.execute(sql, params)
            if entry == "executemany":
                return self.db.executemany(sql, [params, params])
            if entry == "fetch_one":
                return self.db.fetch_one(sql, params)
            if entry == "fetch_all":
                return self.db.fetch_all(sql, params)
            if entry == "run_in_transaction":
                return self.db.run_in_transaction(lambda: self.db.execute(sql, params))
            with self.db.transaction() as conn:
                return conn.execute(sql, params)

        logs0 = len(self.logs.records)
        oplog0 = len(self.oplog_records(all_lines=True)) if getattr(self.db, "oplog", None) is not None else None
        errors0 = dict(self.db.health().errors)
        err: Any = None
        try:
            result = self.absorb(run)
        except DatabaseError as exc:
            err = exc
        except Exception as exc:  # what the caller got instead of a DatabaseError is the finding
            self.check(2, False, f"the {what} raised {type(exc).__name__}: {exc} instead of a DatabaseError")
            return False
        else:
            if entry == "command":  # (a command answers with a result: its error as the user sees it)
                err = self.sweep_command_error(what, kind, result, logs0)
        self.check(8, err is not None, lambda: f"the {what} succeeded; SQLite itself refuses it ({raw})")
        if err is None:
            return False
        # P8: the kind, and what the user reads.
        self.check(8, err.kind is expected,
                   lambda: f"the {what} surfaced as a {err.kind} error (driver: {type(raw).__name__}: {raw}); a "
                           f"{situation} is a {kind} error")
        # The README's table: a caller's mistake is reported to the caller, not retried (its first attempt surfaces).
        self.check(8, not err.transient and str(err.action) == "raise" and err.attempts == 1,
                   lambda: f"the {what} surfaced as transient={err.transient}, action={err.action}, after "
                           f"{err.attempts} attempt(s): a caller's mistake is reported at once, not retried")
        message = err.user_message or ""
        problems = user_message_problems(message, [self.dir, self.db_path])
        misfit = message_fits_kind(kind, message)
        leaked = [x for x in (str(raw), missing_column, "dbfault_no_table", "errsweep", "constraint failed", "syntax")
                  if x and x.lower() in message.lower()]
        self.check(8, message == KIND_INFO[expected].user_message and not problems and misfit is None and not leaked,
                   lambda: f"the {what} failed with the user message {message!r}; expected the {kind} message "
                           f"{KIND_INFO[expected].user_message!r} ({'; '.join(problems)} {misfit or ''} "
                           f"{['names ' + repr(x) for x in leaked]})")
        # P9: the technical record, from the driver's own exception.
        records = [r for r in self.logs.records[logs0:] if r.levelno >= logging.ERROR
                   and getattr(r, "db_kind", None) is not None]
        mine = [r for r in records if getattr(r, "operation_id", None) == err.operation_id]
        shown = [(getattr(r, "operation_id", None), getattr(r, "db_kind", None)) for r in records]
        self.check(9, bool(err.operation_id) and len(mine) == 1,
                   lambda: f"the {what} (operation {err.operation_id!r}) has {len(mine)} ERROR record(s) of its "
                           f"operation; records: {shown}")
        if len(mine) != 1:
            return False
        record = mine[0]
        if raw_code is not None:
            code_ok = record.db_code == raw_code == err.code and record.db_code_name == raw.sqlite_errorname
            want = f"{raw_code}/{raw.sqlite_errorname}"
        else:
            code_ok = record.db_code == err.code and record.db_code in (None, primary)
            want = f"{primary}/-"
        self.check(9, record.db_kind == kind and code_ok and getattr(record, "attempt", None) == 1
                   and isinstance(getattr(record, "elapsed", None), (int, float)) and record.elapsed >= 0,
                   lambda: f"the ERROR record of the {what} says kind {record.db_kind}, code "
                           f"{record.db_code}/{record.db_code_name} (error: {err.code}), attempt "
                           f"{getattr(record, 'attempt', None)}, elapsed {getattr(record, 'elapsed', None)}; the "
                           f"driver's is {want}, the kind {kind}, the first attempt")
        tb = str(getattr(record, "db_traceback", "") or "")
        last = tb.rstrip()[-160:]  # (the driver's text may hold a newline: a quoted name)
        self.check(9, tb.startswith("Traceback") and tb.rstrip().endswith(f"{type(raw).__name__}: {raw}".rstrip()),
                   lambda: f"the ERROR record of the {what} has a db_traceback ending {last!r}: it must end with the "
                           f"driver's exception ({type(raw).__name__}: {raw})")
        shown_params = repr(getattr(record, "params", None))
        self.check(9, getattr(record, "sql", None) == sql
                   and (self.config.log_sql_params or key not in shown_params + record.getMessage()),
                   lambda: f"the ERROR record of the {what} has sql={getattr(record, 'sql', None)!r}, "
                           f"params={shown_params} (the SQL text, the parameters redacted)")
        one_line = OneLineFormatter("%(levelname)s %(name)s: %(message)s").format(record)
        shipped = json.loads(JsonFormatter().format(record))
        self.check(9, "\n" not in one_line and shipped.get("db_kind") == kind and shipped.get("level") == "ERROR"
                   and shipped.get("operation_id") == err.operation_id and shipped.get("db_traceback") == tb,
                   lambda: f"the ERROR record of the {what} formatted: text {one_line!r} (one line), JSON keys "
                           f"{sorted(shipped)} (kind, level, operation id and traceback)")
        # P17: the statement's operation record, and the transaction's around it.
        if oplog0 is not None:
            added = self.oplog_records(all_lines=True)[oplog0:]
            new = [(r.get("kind"), r.get("sql"), r.get("outcome"), r.get("error_kind")) for r in added]
            ids = [r.get("operation_id") for r in self.oplog_records(all_lines=True)[max(oplog0 - 1, 0):]]
            self.check(17, all(r.get("attempts") == 1 for r in added) and len(set(ids)) == len(ids)
                       and all(isinstance(i, str) and i for i in ids),
                       lambda: f"the {what} made the operation records {added}: one attempt each, and an operation "
                               f"id of its own")
            write = template == write_sql
            op = "execute" if entry in ("transaction", "run_in_transaction") or entry == "command" and write \
                else "fetch_all" if entry == "command" else entry
            want_records = [(op, sql, "error", kind)]
            if entry in ("executemany", "transaction", "run_in_transaction") or entry == "command" and write:
                want_records.append(("transaction", None, "error", kind))
            self.check(17, sorted(new, key=str) == sorted(want_records, key=str),
                       lambda: f"the {what} made the operation records {new}; expected {want_records}")
        # P10: one failure, counted once, under its kind.
        report = self.db.health()
        delta = {k: v - errors0.get(k, 0) for k, v in report.errors.items() if v != errors0.get(k, 0)}
        self.check(10, delta == {kind: 1} and str(report.last_error or "").startswith(f"{kind}:"),
                   lambda: f"the {what} failed once as {kind}: health().errors changed by {delta}, last_error "
                           f"{report.last_error!r}")
        return True
