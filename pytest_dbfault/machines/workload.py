"""The shared workload: calls into the runtime with per-call checks, and the data rules most machines use.

Every call goes through :meth:`Workload.call`, which checks on the spot

* P2 — under a fault, the call either succeeds or raises a ``DatabaseError`` of a kind that
  fault can cause, with that kind's user message, within the retry budget (no hang);
* P8 — every surfaced error has a user message free of SQL, paths and stack traces;
* P9 — every surfaced error was logged with its code, kind, operation id and attempt;

and books the outcome in the model's ledger (the expectation for P10 and P17).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from .base import RuntimeMachine, swarm

#: Error kinds each fault may legitimately surface (P2).
FAULT_ERROR_KINDS: dict[str, set[str]] = {
    "locked": {"busy", "locked", "busy_snapshot"},
    "disk_full": {"full"},
    "disconnect_close": {"closed", "unavailable"},
    "disconnect_rename": {"readonly_dbmoved", "cantopen", "unavailable", "closed"},
    "disconnect_delete": {"readonly_dbmoved", "cantopen", "unavailable", "closed"},
    # (another database at the path: its missing tables are the caller kind "schema", allowed everywhere)
    "disconnect_replace": {"readonly_dbmoved", "cantopen", "unavailable", "closed"},
    "corrupt": {"corrupt", "notadb", "ioerr_corruptfs", "unavailable"},
    # the other injected kinds (machines/cells.py, kind rounds)
    "busy_commit": {"busy", "locked"},
    "busy_snapshot": {"busy", "locked", "busy_snapshot"},
    "enospc": {"full"},
    "file_full": {"full", "ioerr"},
    "io_error": {"ioerr", "unavailable", "closed", "cantopen"},
    "short_read": {"corrupt", "notadb", "ioerr_corruptfs", "ioerr", "unavailable"},
    # Not a fault: SQLite rolled a transaction back inside ``db.transaction()`` (a conflict clause ``OR ROLLBACK``)
    # and the application went on; what the block runs after it, and the block, fail as ``rolled_back`` (see
    # reliability.transaction.ended_transaction). A label for those calls only (machines/transactions.py).
    "sqlite_rollback": {"rolled_back"},
}
#: Kinds the workload causes on purpose (duplicate keys, a missing table; writes refused on an untrusted schema).
CALLER_ERROR_KINDS = {"constraint", "schema", "schema_mismatch"}

_SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|BEGIN|COMMIT|ROLLBACK|VALUES)\b")
_PATH = re.compile(r"(?:/[\w.\-]+){2,}|\.db\b|\.sqlite\b|\.jsonl\b")
_STACK = re.compile(r"Traceback|File \"|line \d+|\w+Error\b|sqlite3|SQLITE_|sqlite_\w+")


#: What a user must read for each kind, kept here, apart from the runtime's own table (a wrong entry in that table
#: would agree with itself): words one of which the message holds, and whether it may invite a retry. A message
#: asking to "try again" for a change that will conflict the same way forever misleads; one that does not for a
#: lock that will pass leaves the user stuck.
KIND_WORDING: dict[str, tuple[tuple[str, ...], bool | None]] = {
    "busy": (("busy",), True), "locked": (("busy",), True), "busy_snapshot": (("changed",), True),
    "closed": (("lost", "connection"), True), "readonly_dbmoved": (("moved",), True),
    "unavailable": (("unavailable",), True), "cantopen": (("opened", "open"), True),
    "full": (("full", "space"), False), "constraint": (("conflict", "duplicate", "already"), False),
    "schema": (("structure", "match"), False), "schema_mismatch": (("structure", "version"), False),
    "corrupt": (("damaged",), None), "notadb": (("damaged",), None), "ioerr_corruptfs": (("damaged",), None),
    "auth": (("allowed",), False), "misuse": (("bug",), False),
    # (SQLite undid the transaction after a statement in it failed, often a conflict: a retry meets it again)
    "rolled_back": (("not saved",), False),
}


def message_fits_kind(kind: str, message: str) -> str | None:
    """Why ``message`` does not tell a user what an error of ``kind`` means (None when it does)."""
    words, retry = KIND_WORDING.get(kind, ((), None))
    text = (message or "").lower()
    if words and not any(w in text for w in words):
        return f"says none of {list(words)}"
    invites = "try again" in text
    if retry is not None and invites != retry:
        return "invites a retry that cannot help" if invites else "does not say to try again"
    return None


class AppError(Exception):
    """The application's own failure inside a transaction body (a fault drawn by a rule)."""


def user_message_problems(message: str, secrets: list[str]) -> list[str]:
    """Why ``message`` is not fit for a user (empty list when it is)."""
    problems = []
    if not message or not message.strip():
        problems.append("empty user message")
    if _SQL.search(message):
        problems.append(f"contains SQL ({_SQL.search(message).group(0)!r})")  # type: ignore[union-attr]
    if _PATH.search(message) or any(s and s in message for s in secrets):
        problems.append("contains a file path")
    if _STACK.search(message):
        problems.append(f"contains technical detail ({_STACK.search(message).group(0)!r})")  # type: ignore[union-attr]
    return problems


class CallOutcome:
    """How one call ended: ``ok`` with ``value``, or ``error`` (a DatabaseError)."""

    __slots__ = ("ok", "value", "error")

    def __init__(self, ok: bool, value: Any = None, error: Any = None) -> None:
        self.ok, self.value, self.error = ok, value, error


class Workload(RuntimeMachine):
    """Calls with checks, plus key/value and multi-leg transaction rules."""

    #: The errors booked while a transfer runs (None outside one): see :meth:`unbook_rerun_errors`.
    booked_errors: list[Any] | None = None
    #: when True the machine also uses features whose internal operations the ledger cannot
    #: see (audit, commands, migrations): P10/P17 then check lower bounds instead of equality
    opaque_ops = False
    #: fake sleeps made before the current runtime was built (a restart resets its counters)
    sleeps_base = 0
    #: the last checked call failed: the next one looks whether it reopens a connection the runtime gave up on
    watch_reconnect = False

    def after_start(self) -> None:
        # start() ran two CREATE TABLE statements through the runtime.
        self.model.ledger.ok["execute"] += 2
        self.model.ledger.oplog[("execute", "ok")] += 2

    def after_reopen(self) -> None:
        from .model import Ledger

        self.model.ledger = Ledger()
        self.sleeps_base = len(self.time.sleeps)

    def absorb(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a feature call whose internal operations the ledger cannot predict, adding them to it.

        The runtime's own counters before and after give the operations it made; P10/P17 then
        keep checking everything else exactly.
        """
        before = self.db.health()
        try:
            return fn(*args, **kwargs)
        finally:
            after = self.db.health()
            for key, n in after.operations.items():
                self.model.ledger.ok[key] += n - before.operations.get(key, 0)
            for key, n in after.errors.items():
                self.model.ledger.errors[key] += n - before.errors.get(key, 0)
            self.absorbed_oplog()

    def absorbed_oplog(self) -> None:
        """Hook of the operation-log mixin."""

    # -- the checked call --------------------------------------------------------------------
    def call(self, op: str | None, fn: Callable[..., Any], *args: Any, faults: list[str] | None = None,
             expected_message: bool = True, series: int = 1) -> CallOutcome:
        """Run ``fn(*args)``; check P2/P8/P9 on what comes out; book it under ``op`` (None: not booked).

        ``series`` is how many retry series the call may run (for the no-hang bound).
        """
        from reliability import KIND_INFO, DatabaseError

        start = self.active_fault_names if faults is None else faults
        reconnects0 = self._given_up_handle()
        sleeps0, t0, logs0 = len(self.time.sleeps), self.time.now, len(self.logs.records)
        try:
            value = fn(*args)
        except DatabaseError as err:
            self.watch_reconnect = True
            # Faults struck during the call (mid-transaction) count as in force for it.
            active = sorted(set(start) | set(self.faults)) if faults is None else start
            self._check_error(err, active, logs0, expected_message, KIND_INFO)
            self._check_no_hang(sleeps0, t0, active, series)
            # One failure is one error in the health counters, however many callers it passes
            # through (a statement's error re-raised by the transaction around it is the same one).
            # The runtime counts the error the outermost caller sees: a wrapper of an error already
            # booked (an "unavailable" around a "closed") takes its place.
            if not getattr(err, "_dbfault_counted", None):
                inner = next((e for e in (err.__cause__, err.__context__)
                              if e is not None and getattr(e, "_dbfault_counted", None)), None)
                if inner is not None:
                    self.model.ledger.errors[inner._dbfault_counted] -= 1  # type: ignore[union-attr]
                    inner._dbfault_counted = None  # type: ignore[union-attr]
                self.model.ledger.errors[str(err.kind)] += 1
                err._dbfault_counted = str(err.kind)
                if self.booked_errors is not None:  # (inside a transfer: see unbook_rerun_errors)
                    self.booked_errors.append(err)
            if op is not None:
                self.model.ledger.oplog[(op, "error")] += 1
            return CallOutcome(False, error=err)
        except AppError:
            raise
        except Exception as exc:
            active = sorted(set(start) | set(self.faults)) if faults is None else start
            self.check(2, False, f"{op or 'call'} raised {type(exc).__name__}: {exc} instead of a DatabaseError",
                       faults=active)
            # P2 not enforced (a bite test of another property): carry on with the classified error.
            from reliability import classify

            err = DatabaseError(classify(exc), str(exc))
            self.model.ledger.errors[str(err.kind)] += 1
            return CallOutcome(False, error=err)
        self._check_no_hang(sleeps0, t0, start, series)
        if reconnects0 is not None:
            self._check_reconnect_counted(reconnects0, start)
        if op is not None:
            self.model.ledger.ok[op] += 1
            self.model.ledger.oplog[(op, "ok")] += 1
        return CallOutcome(True, value)

    def _given_up_handle(self) -> tuple[int, Any] | None:
        """After a failed call: the reconnect and recovery counts, when health() says the runtime gave its handle
        up (``reconnecting`` or ``unavailable``); else None. (One health() only after a failure: it costs.)"""
        if not self.watch_reconnect:
            return None
        self.watch_reconnect = False
        report = self.db.health()
        if report.connection_state not in ("reconnecting", "unavailable"):
            return None
        return report.reconnects, (report.extra or {}).get("recoveries")

    def _check_reconnect_counted(self, before: tuple[int, Any], active: list[str]) -> None:
        """P10: a call that succeeded on a handle the runtime had given up (dropped after a lost connection, or
        unavailable once its retries ran out) and left it connected opened it again: health() counts that as a
        reconnect. Not when a recovery ran during the call (``auto_recover``): it closes the handle and installs
        another file, and the open that follows is the recovery's, not a reconnect."""
        report = self.db.health()
        if report.connection_state != "connected" or (report.extra or {}).get("recoveries") != before[1]:
            return
        self.check(10, report.reconnects > before[0], lambda: "a call reopened the connection the runtime had given up "
                   f"(connection_state was reconnecting/unavailable, now connected), yet health().reconnects stayed "
                   f"{report.reconnects}", faults=active)

    def _check_no_hang(self, sleeps0: int, t0: float, active: list[str], series: int) -> None:
        if not active:
            return
        cfg = self.config
        sleeps = len(self.time.sleeps) - sleeps0
        spent = self.time.now - t0
        self.check(2, sleeps <= series * (cfg.retry_attempts - 1) and spent <= series * cfg.retry_budget,
                   lambda: f"a call retried {sleeps} times for {spent:.3f}s of backoff; the policy allows "
                           f"{cfg.retry_attempts - 1} retries within {cfg.retry_budget}s", faults=active)

    def _check_error(self, err: Any, active: list[str], logs0: int, expected_message: bool, kind_info: Any) -> None:
        kind = str(err.kind)
        if active:
            allowed = set(CALLER_ERROR_KINDS).union(*(FAULT_ERROR_KINDS.get(f, set()) for f in active))
            self.check(2, kind in allowed, f"error kind {kind!r} is not one the faults {active} can cause "
                                           f"(expected one of {sorted(allowed)}): {err}", faults=active)
        elif self.last_healed is None and not self.fault_history:
            # No fault yet in this example: only the caller's own mistakes fail (a write refused as readonly, busy
            # or unavailable on a healthy runtime is a defect, not an answer).
            self.check(2, kind in CALLER_ERROR_KINDS, f"error kind {kind!r} with no fault injected yet (expected "
                                                      f"one of {sorted(CALLER_ERROR_KINDS)}): {err}", faults=active)
        if expected_message:
            # The user message is the one of its kind whatever is in force (P8 too: not a technical reason).
            self.check(8 if not active else 2, err.user_message == kind_info[err.kind].user_message,
                       f"user message {err.user_message!r} is not the one for {kind}", faults=active)
        if expected_message:  # (a call with a message of its own, a migration's, makes no claim here)
            misfit = message_fits_kind(kind, err.user_message)
            self.check(8, misfit is None, lambda: f"the user message of a {kind} error {err.user_message!r} {misfit}",
                       faults=active)
        problems = user_message_problems(err.user_message, [self.dir, self.db_path])
        self.check(8, not problems, lambda: f"user message {err.user_message!r}: {'; '.join(problems)}",
                   faults=active)
        self.check_logged(err, logs0, active)

    def check_logged(self, err: Any, logs0: int, active: list[str]) -> None:
        """P9: one ERROR record names this error's kind, code, operation id and attempt."""
        records = self.logs.records[logs0:]
        match = [r for r in records if r.levelno >= 40 and getattr(r, "operation_id", None) == err.operation_id
                 and getattr(r, "db_kind", None) == str(err.kind)]
        # The record's attempt is the one the error surfaced at (err.attempts), not any attempt >= 1.
        good = [r for r in match if getattr(r, "db_code", "missing") == err.code
                and isinstance(getattr(r, "attempt", None), int) and r.attempt == max(err.attempts or 1, 1)]
        self.check(9, bool(err.operation_id) and bool(good),
                   lambda: f"error {err.kind} (operation {err.operation_id!r}, code {err.code}) has no technical "
                           f"log record with kind, code, operation id and attempt; records: "
                           f"{[(r.getMessage()[:80], getattr(r, 'operation_id', None)) for r in records][-5:]}",
                   faults=active)

    def check_backoff(self, number: int, delays: list[tuple[int, float]], sleeps: list[float],
                      faults: list[str]) -> None:
        """The backoff, from above and from below: every computed delay was slept; the delay after
        failed attempt n lies in (0, min(max_delay, base * 2**(n-1))] (full jitter never draws an
        exact 0: a zero delay is a retry that skipped its backoff); attempts count up from 1 in
        each retry series and stay below ``retry_attempts``."""
        cfg = self.config
        # Every sleep is a computed delay, in order; a computed delay may go unslept only where the
        # series stopped because it would have overrun retry_budget.
        rest = list(sleeps)
        for _a, d in delays:
            if rest and rest[0] == d:
                rest.pop(0)
        self.check(number, not rest and len(sleeps) <= len(delays),
                   lambda: f"the runtime slept {sleeps} but the policy computed {delays}", faults=faults)
        expected_attempt = 1
        for attempt, d in delays:
            if attempt != expected_attempt:
                expected_attempt = 1  # a new retry series (a reconnect, the fallback reconcile, the next entry)
            ceiling = min(cfg.retry_max_delay, cfg.retry_base_delay * 2 ** (attempt - 1))
            self.check(number, attempt == expected_attempt and 0 < d <= ceiling + 1e-12
                       and attempt < cfg.retry_attempts,
                       f"retry delay {d:.5f}s after attempt {attempt} is outside (0, {ceiling:.5f}] "
                       f"(base {cfg.retry_base_delay}, doubling, max {cfg.retry_max_delay}, "
                       f"{cfg.retry_attempts} attempts)", faults=faults)
            expected_attempt += 1

    def check_gave_up_fairly(self, number: int, delays: list[tuple[int, float]], spent: float,
                             faults: list[str]) -> None:
        """A call that failed on a fault that was still in force used its retries: it stopped only after
        ``retry_attempts`` tries, or when the next delay could have overrun ``retry_budget``."""
        cfg = self.config
        if any(a != i + 1 for i, (a, _d) in enumerate(delays)):
            return  # several retry series: the budget of each is not visible from here
        made = len(delays) + 1
        ceiling = min(cfg.retry_max_delay, cfg.retry_base_delay * 2 ** (made - 1))
        self.check(number, made >= cfg.retry_attempts or spent + ceiling > cfg.retry_budget,
                   lambda: f"gave up after {made} of {cfg.retry_attempts} attempts with {spent:.3f}s of "
                           f"{cfg.retry_budget}s backoff spent (the next delay fit in the budget)", faults=faults)

    # -- key/value rules ---------------------------------------------------------------------
    @rule(n=st.integers(0, 12))
    def put(self, n: int) -> None:
        """Insert a row (duplicates make real constraint errors)."""
        key, value = f"user-{n}", self.text()
        out = self.call("execute", self.db.execute, "INSERT INTO kv (k, v) VALUES (?, ?)", (key, value))
        if out.ok:
            self.check(6, key not in self.model.kv, f"duplicate key {key!r} was accepted")
            self.model.kv[key] = value
        elif str(out.error.kind) == "constraint":
            self.check(6, key in self.model.kv, f"insert of new key {key!r} refused as a duplicate")

    def upsert(self, n: int) -> CallOutcome:
        """Write ``user-n`` with new text by ``INSERT OR REPLACE`` (unlike :meth:`put`, a stored key is no error to
        judge: it is overwritten), through :meth:`call`, and book it in the model once acknowledged. A step of
        rules that need acknowledged writes before what they judge (damage, a power loss)."""
        key, value = f"user-{n}", self.text()
        sql = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
        if n % 2:
            # Applications tag statements with a leading comment (a request id, the caller): a write so tagged is a
            # write like any other, journaled and replayed (it is not what decides the statement's kind).
            sql = f"/* upsert {key} */ {sql}"
        journal = getattr(self.db, "redo_journal", None)
        sound = journal is not None and journal.error is None and not self.faults
        out = self.call("execute", self.db.execute, sql, (key, value))
        if out.ok:
            self.model.kv[key] = value
            if sound:
                error = journal.error
                self.check(13, error is None, lambda: (
                    f"an acknowledged write ({sql[:40]!r}) with no fault in force left the redo journal saying it "
                    f"cannot replay writes: {error}"))
        return out

    @rule(keys=st.lists(st.integers(0, 12), min_size=2, max_size=4))
    def put_many(self, keys: list[int]) -> None:
        """P6: ``db.executemany`` of a few rows outside a transaction is all or nothing: a duplicate key among them
        (drawn often: keys repeat, or one is already stored) leaves none of the batch."""
        rows = [(f"user-{n}", self.text()) for n in keys]
        before = {k: self.model.kv.get(k) for k, _v in rows}
        out = self.call(None, self.absorb, self.db.executemany, "INSERT INTO kv (k, v) VALUES (?, ?)", rows)
        if out.ok:
            self.check(6, len({k for k, _v in rows}) == len(rows) and all(v is None for v in before.values()),
                       f"executemany of {[k for k, _v in rows]} was accepted with a duplicate key")
            self.model.kv.update(rows)
        else:
            # (booked once: absorb counted the runtime's error already; call() counted it again)
            self.model.ledger.errors[str(out.error.kind)] -= 1
        if self.writes_queued() or self.faults:
            return  # (read once the faults heal: the model is what the invariants compare)
        stored = self.stored_kv()
        self.check(6, all(stored.get(k) == self.model.kv.get(k) for k, _v in rows),
                   lambda: f"executemany of {[k for k, _v in rows]} ({'ok' if out.ok else out.error.kind}) left "
                           f"{ {k: stored.get(k) for k, _v in rows} }, expected "
                           f"{ {k: self.model.kv.get(k) for k, _v in rows} } (all or nothing)")

    def writes_queued(self) -> bool:
        """True while acknowledged writes wait in the durable queue (not yet in the file)."""
        queue = getattr(getattr(self.db, "commands", None), "queue", None)
        return queue is not None and len(queue) > 0

    @rule(n=st.integers(0, 12))
    def get(self, n: int) -> None:
        key = f"user-{n}"
        out = self.call("fetch_one", self.db.fetch_one, "SELECT v FROM kv WHERE k = ?", (key,))
        if out.ok and not self.writes_queued():
            got = out.value[0] if out.value else None
            self.check(6, got == self.model.kv.get(key),
                       f"read {key!r} -> {got!r}, acknowledged value {self.model.kv.get(key)!r}")

    @rule()
    def scan(self) -> None:
        out = self.call("fetch_all", self.db.fetch_all, "SELECT k, v FROM kv")
        # Writes accepted into the durable queue are acknowledged but not yet in the file: a direct
        # read (not a command, which replays the backlog first) cannot see them yet.
        if out.ok and not self.writes_queued():
            self.check(6, dict(out.value) == self.model.kv, "a full read differs from the acknowledged rows")

    @rule()
    def bad_query(self) -> None:
        """A caller mistake: the error must still be user-friendly and logged."""
        out = self.call("fetch_all", self.db.fetch_all, "SELECT * FROM no_such_table_here")
        self.check(8, not out.ok, "a query on a missing table succeeded")

    # -- multi-step transactions -------------------------------------------------------------
    def transfer_body(self, grp: int, legs: list[int], fail_at: int, failure: str,
                      done: list[bool], via: list[Any] | None = None) -> Callable[[], None]:
        """The body of a multi-leg write; ``failure`` strikes once, before leg ``fail_at``. ``via[0]``, when
        set, is the connection ``with db.transaction() as conn`` yielded: the legs are written on it."""

        def body() -> None:
            for i, amount in enumerate(legs):
                if i == fail_at and not done[0]:
                    done[0] = True
                    self.strike(failure)
                note = self.text() * (40 if failure == "disk_full" else 1)
                execute = via[0].execute if via and via[0] is not None else self.db.execute
                out = self.call("execute", execute,
                                "INSERT INTO pairs (grp, leg, amount, note) VALUES (?, ?, ?, ?)",
                                (grp, i if failure != "constraint" or i != fail_at else 0, amount, note),
                                faults=self.active_fault_names + ([failure] if failure in FAULT_ERROR_KINDS else []))
                if not out.ok:
                    raise out.error
        return body

    def unbook_rerun_errors(self, final: Any) -> None:
        """The errors the transfer's body booked that made ``run_in_transaction`` rerun it are retries,
        not errors the caller saw (the runtime counts them in ``retries``): take them out of the ledger.
        The body re-raises every error it meets, so each one that is not the call's ``final`` error (nor
        its cause) ended an attempt that was run again."""
        chain = [final, getattr(final, "__cause__", None), getattr(final, "__context__", None)]
        booked, self.booked_errors = self.booked_errors or [], None
        for err in booked:
            kind = getattr(err, "_dbfault_counted", None)
            if kind and not any(err is e for e in chain if e is not None):
                self.model.ledger.errors[kind] -= 1
                err._dbfault_counted = None

    def strike(self, failure: str) -> None:
        """Make ``failure`` happen now, in the middle of a transaction."""
        if failure == "app_error":
            raise AppError("the application gave up half way")
        if failure in ("disk_full", "disconnect_close", "disconnect_rename"):
            self.inject(failure, 0)

    @precondition(swarm("transfer"))
    @rule(legs=st.lists(st.integers(1, 1000), min_size=2, max_size=4),
          fail_at=st.integers(0, 3),
          failure=st.sampled_from(["none", "app_error", "constraint", "disk_full", "disconnect_close",
                                   "disconnect_rename"]),
          form=st.sampled_from(["run_in_transaction", "context", "context_conn"]))
    def transfer(self, legs: list[int], fail_at: int, failure: str, form: str) -> None:
        """P6/P7: a balanced multi-leg write, maybe struck by a fault half way. ``context_conn`` writes on the
        connection ``db.transaction()`` yields (its writes must be journaled like ``db.execute``'s: P13)."""
        if failure in self.faults or (failure == "constraint" and fail_at == 0):
            failure = "none"
        legs = legs + [-sum(legs)]
        grp = self.model.new_group()
        before = set(self.faults)
        done = [False]
        via: list[Any] = [None]
        body = self.transfer_body(grp, legs, fail_at if fail_at < len(legs) else len(legs), failure, done, via)

        def run_context() -> None:
            with self.db.transaction() as conn:
                if form == "context_conn":
                    via[0] = conn
                body()

        fn = self.db.run_in_transaction if form == "run_in_transaction" else None
        self.booked_errors = []
        try:
            if fn is not None:
                out = self.call("transaction", fn, body, series=1)
            else:
                out = self.call("transaction", run_context, series=1)
        except AppError:
            self.model.ledger.app_aborts += 1
            out = None
        self.unbook_rerun_errors(None if out is None or out.ok else out.error)
        struck = sorted(set(self.faults) - before)
        for kind in struck:  # mid-transaction faults end with the call: heal them to look at the file
            self.heal(kind)
        committed = out is not None and out.ok
        if committed:
            self.model.pairs[grp] = list(enumerate(legs))
        self.after_transfer(grp, committed, struck or ([failure] if failure != "none" else []))

    def after_transfer(self, grp: int, committed: bool, struck: list[str]) -> None:
        """P6 and P7 right after a multi-leg write."""
        if self.faults:
            return  # the file may be unreachable: the invariant checks once the faults are healed
        faults = None  # the struck faults are healed by now: these checks are "after" them
        stored = self.stored_pairs().get(grp, [])
        expected = self.model.pairs.get(grp, [])
        self.check(6, stored == expected,
                   f"group {grp} {'committed' if committed else 'failed'} but the file holds {stored} "
                   f"(expected {expected})", faults=faults)
        if not committed:
            self.check_rolled_back(faults)

    def check_rolled_back(self, faults: list[str] | None) -> None:
        """P7: no transaction left open, no lock held, and the connection works."""
        import sqlite3

        depth = getattr(getattr(self.db, "transactions", None), "depth", 0)
        try:
            open_tx = self.db.connection.in_transaction
        except (sqlite3.ProgrammingError, self.sqlite_module().ProgrammingError):
            # A closed handle (of the runtime's build: pysqlite3's class is its own) holds no transaction;
            # the runtime reopens on next use.
            open_tx = False
        self.check(7, depth == 0 and not open_tx,
                   f"after a failed transaction depth={depth}, in_transaction={open_tx}", faults=faults)
        with self.raw() as raw:
            raw.execute("PRAGMA busy_timeout = 0")
            try:
                raw.execute("BEGIN IMMEDIATE")
                raw.execute("ROLLBACK")
                free = True
            except Exception as exc:
                free = False
                why = str(exc)
        self.check(7, free, lambda: f"the runtime still holds the write lock after a failed transaction: {why}",
                   faults=faults)
        out = self.call("fetch_one", self.db.fetch_one, "SELECT count(*) FROM pairs", faults=faults)
        self.check(7, out.ok, lambda: f"the connection is unusable after the rollback: {out.error}", faults=faults)

    @precondition(swarm("nested"))
    @precondition(lambda self: not self.faults)
    @rule(outer=st.integers(0, 12), inner=st.integers(13, 20), inner_fails=st.booleans(), outer_fails=st.booleans())
    def nested_transaction(self, outer: int, inner: int, inner_fails: bool, outer_fails: bool) -> None:
        """P6/P7: ``db.transaction()`` inside ``db.transaction()`` (a savepoint). A failing inner block
        undoes only its own write; a failing outer block undoes both; the connection is left clean."""
        ok, inner_val = f"user-{outer}", f"user-{inner}"
        values = {ok: self.text(), inner_val: self.text()}

        def run() -> None:
            with self.db.transaction():
                self.db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (ok, values[ok]))
                try:
                    with self.db.transaction():
                        self.db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
                                        (inner_val, values[inner_val]))
                        if inner_fails:
                            raise AppError("the inner step gave up")
                except AppError:
                    pass
                if outer_fails:
                    raise AppError("the outer step gave up")

        # The statements inside are booked by hand: execute runs once per statement that ran.
        try:
            out = self.call("transaction", run)
        except AppError:
            out = None
            self.model.ledger.app_aborts += 1
        self.model.ledger.ok["execute"] += 2
        self.model.ledger.oplog[("execute", "ok")] += 2
        if out is not None and out.ok:
            self.model.kv[ok] = values[ok]
            if not inner_fails:
                self.model.kv[inner_val] = values[inner_val]
        if self.writes_queued():
            return
        stored = self.stored_kv()
        self.check(6, all(stored.get(k) == self.model.kv.get(k) for k in (ok, inner_val)),
                   lambda: f"nested transaction (inner fails: {inner_fails}, outer fails: {outer_fails}) left "
                           f"{ {k: stored.get(k) for k in (ok, inner_val)} }, expected "
                           f"{ {k: self.model.kv.get(k) for k in (ok, inner_val)} }")
        if out is None or not out.ok:
            self.check_rolled_back(None)

    @precondition(swarm("power_loss"))
    @precondition(lambda self: self.powerloss is not None and not self.faults
                  and str(self.config.synchronous).upper() in ("FULL", "EXTRA"))
    @rule()
    def power_loss(self) -> None:
        """A power loss (synchronous FULL/EXTRA promises durability): the runtime's own files keep only
        what was fsynced; the invariants then want every acknowledged write, queued command and audit
        entry back (P6, P13, P14, P15 labelled ``after:power_loss``)."""
        self.simulate_power_loss()

    @precondition(swarm("restart"))
    @precondition(lambda self: self.db is not None)
    @rule()
    def restart(self) -> None:
        """A clean restart (close, open): whatever was acknowledged must still be there (P6, the invariant).

        (A kill -9 restart cannot be simulated in this process: the abandoned runtime would still
        own the redo journal, which a killed process would not; see tests/faults/test_crash_fault.py.)
        """
        self.reopen()

    # -- the truth ---------------------------------------------------------------------------
    def settle(self) -> None:
        """Hook: finish deferred work (a queued backlog) before the file is compared with the model."""

    @precondition(lambda self: self.db is not None and not self.faults)
    @invariant()
    def p06_transaction_atomicity(self) -> None:
        """Without faults in force, the file holds exactly the acknowledged writes."""
        self.settle()
        kv, pairs = self.stored_rows()
        self.check(6, kv == self.model.kv and pairs == self.model.pairs,
                   lambda: f"file differs from acknowledged writes: kv extra "
                           f"{set(kv.items()) ^ set(self.model.kv.items())}, groups "
                           f"{sorted(set(pairs) ^ set(self.model.pairs))}")
